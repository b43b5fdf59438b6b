# SPDX-License-Identifier: BSD-3-Clause
"""``recon.stripe_size``: one default in the schema, the plan and the code, and a chosen value
reaches `reconstruct_scan` through the real rule script."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import yaml

from tomosynth.io import write_dxchange
from tomosynth.plan import RECON_OMITTED_DEFAULTS, recon_params
from tomosynth.recon import reconstruct_scan
from tomosynth.recon.prep import remove_stripes

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def _config(**recon) -> dict:
    base = {"backend": "torch", "filter": "ramlak", "center": 16.0, "stripe_removal": "median"}
    base.update(chunk_rows=16, bad_rows="error", device="cpu", memory_budget_mb=128, threads=1)
    scan = {"center": None, "slices": None, "theta_units": None}
    return {"recon": {**base, **recon}, "scans": {"s": scan}}


def test_schema_default_is_the_code_default():
    schema = yaml.safe_load(SCHEMA.read_text())["properties"]["recon"]["properties"]
    default = schema["stripe_size"]["default"]
    assert default == 11
    assert inspect.signature(reconstruct_scan).parameters["stripe_size"].default == default
    assert inspect.signature(remove_stripes).parameters["size"].default == default
    assert RECON_OMITTED_DEFAULTS["stripe_size"] == default
    assert schema["stripe_size"]["minimum"] == 3  # remove_stripes refuses narrower windows


def test_default_leaves_params_as_before_and_other_values_reach_them():
    # existing reconstructions keep their params (no rerun) when the key is at its default
    assert "stripe_size" not in recon_params(_config(stripe_size=11), "s")
    assert "stripe_size" not in recon_params(_config(), "s")
    assert recon_params(_config(stripe_size=5), "s")["stripe_size"] == 5


_RUNNER = textwrap.dedent(
    """
    import json, runpy, sys, types
    sys.path.insert(0, {scripts!r})
    h5, out, log, params = sys.argv[1:5]
    smk = types.SimpleNamespace(
        input=types.SimpleNamespace(h5=h5),
        output=types.SimpleNamespace(slices=out),
        params=types.SimpleNamespace(recon=json.loads(params)),
        config={{"recon": {{"device": "cpu", "memory_budget_mb": 128}}}},
        resources={{}},
        threads=1,
        log=[log],
        rule="reconstruct",
    )
    runpy.run_path({script!r}, init_globals={{"snakemake": smk}}, run_name="__main__")
    """
)


def _slices(folder: Path) -> np.ndarray:
    import tifffile

    return np.stack([tifffile.imread(p) for p in sorted(folder.glob("slice_*.tiff"))])


def test_a_chosen_stripe_size_reaches_reconstruct_scan(tmp_path):
    rng = np.random.default_rng(0)
    theta = np.linspace(0.0, np.pi, 40, endpoint=False)
    # uneven column gains: windows of 5 and 11 pixels estimate different stripes
    gain = rng.uniform(0.8, 1.0, size=32)
    counts = np.broadcast_to(3000 * gain, (theta.size, 2, 32)).astype(np.uint16)
    flat = np.full((2, 2, 32), 4000, dtype=np.uint16)
    dark = np.full((2, 2, 32), 100, dtype=np.uint16)
    write_dxchange(tmp_path / "scan.h5", counts, flat, dark, theta)

    params = recon_params(_config(stripe_size=5), "s")
    code = _RUNNER.format(
        scripts=str(ROOT / "scripts"), script=str(ROOT / "scripts" / "reconstruct.py")
    )
    out = tmp_path / "out"
    args = [str(tmp_path / "scan.h5"), str(out), str(tmp_path / "log"), json.dumps(params)]
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True)
    assert proc.returncode == 0, (tmp_path / "log").read_text()
    assert json.loads((out / "recon.json").read_text())["stripe_size"] == 5

    kw = dict(backend="torch", device="cpu", center=16.0, stripe_removal="median", threads=1)
    five = reconstruct_scan(tmp_path / "scan.h5", tmp_path / "five", stripe_size=5, **kw)
    eleven = reconstruct_scan(tmp_path / "scan.h5", tmp_path / "eleven", **kw)
    assert (five["stripe_size"], eleven["stripe_size"]) == (5, 11)
    np.testing.assert_allclose(_slices(out), _slices(tmp_path / "five"), rtol=0, atol=1e-6)
    assert np.abs(_slices(out) - _slices(tmp_path / "eleven")).max() > 1e-4

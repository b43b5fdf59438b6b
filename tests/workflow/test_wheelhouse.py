"""The offline install path of a GPU node: `make wheelhouse`, then `pip --no-index`.

A fresh venv stands in for the node's Python. The node's own packages (PyTorch and the
scientific stack, `assumed.txt`) are made visible to it as a folder of links into this
test's environment, holding those packages only, so a package missing from the wheelhouse
fails the import instead of being found in the test's own site-packages.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import wheelhouse  # noqa: E402

pytestmark = pytest.mark.slow


def _link_dists(names: set[str], into: Path) -> None:
    """Link every top-level entry of the named installed distributions into `into`."""
    site = Path(sysconfig.get_paths()["purelib"])
    into.mkdir()
    for name in names:
        dist = metadata.distribution(name)
        tops = {Path(str(f)).parts[0] for f in dist.files or []}
        for top in tops:
            src = site / top
            if src.exists() and not (into / top).exists() and not top.startswith(".."):
                (into / top).symlink_to(src)


def _torch_closure() -> set[str]:
    return set(wheelhouse.installed_closure(["torch", "torchvision"], missing_ok=True))


def test_offline_install_from_the_wheelhouse_runs_the_workflow(tmp_path):
    house = tmp_path / "wheels"
    assert wheelhouse.main([str(house)]) == 0, "the wheelhouse is over its size limit"
    wheels = list(house.glob("*.whl"))
    size_mib = sum(w.stat().st_size for w in wheels) / 2**20
    assert size_mib < 60, f"{size_mib:.1f} MiB"
    names = {w.name.split("-")[0].lower().replace("_", "-") for w in wheels}
    assert {"snakemake", "jsonschema", "pytorch-fid", "finufft"} <= names
    assert not {"torch", "torchvision", "numpy"} & names

    # the "node": a fresh venv that sees only torch and the assumed scientific stack
    venv = tmp_path / "node"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    node_py = venv / "bin" / "python"
    assumed = {line.split("==")[0] for line in (house / "assumed.txt").read_text().split()}
    image = tmp_path / "image_site"
    _link_dists(assumed | (_torch_closure() - names), image)

    site = tmp_path / "site"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    env["PIP_NO_INDEX"] = "1"  # no network: only the folder
    subprocess.run(
        [str(node_py), "-m", "pip", "install", "--no-index", "--no-deps", "-q",
         "--disable-pip-version-check", "--target", str(site), *map(str, wheels)],
        check=True, env=env,
    )  # fmt: skip
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(site), str(image)])
    probe = (
        "import snakemake, jsonschema, pytorch_fid, finufft, torch, tomosynth.cli;"
        "print(snakemake.__file__)"
    )
    out = subprocess.run(
        [str(node_py), "-c", probe], check=True, env=env, capture_output=True, text=True
    )
    assert out.stdout.strip().startswith(str(site)), out.stdout
    # and the workflow parses and plans with that environment alone
    dry = subprocess.run(
        [str(node_py), "-m", "snakemake", "-n", "--cores", "2", "--quiet", "rules"],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr[-3000:]

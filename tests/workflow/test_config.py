"""A bad config value stops the workflow before any job runs, with a message naming the key."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"


def dry_run(tmp_path, overlay: str) -> subprocess.CompletedProcess:
    cfg = tmp_path / "overlay.yaml"
    cfg.write_text(overlay)
    # An empty working directory: a run in progress in the checkout (locks, incomplete
    # files) must not change what the dry run says about the config.
    workdir = tmp_path / "work"
    workdir.mkdir()
    return subprocess.run(
        [
            SNAKEMAKE,
            "-n",
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--configfile",
            str(ROOT / "config.yaml"),
            str(cfg),
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "overlay, key",
    [
        ("preprocess:\n  percentiles: [1, 101]\n", "['preprocess']['percentiles'][1]"),
        ("preprocess:\n  sizes: [64, 3]\n", "['preprocess']['sizes'][1]"),
        ("recon:\n  backend: fast\n", "['recon']['backend']"),
        ("recon:\n  backnd: torch\n", "'backnd'"),
        ("recon:\n  device: tpu\n", "['recon']['device']"),
        ("recon:\n  threads: 0\n", "['recon']['threads']"),
        ("recon:\n  memory_budget_mb: 4\n", "['recon']['memory_budget_mb']"),
        ("simulate:\n  angles: 2\n", "['simulate']['angles']"),
        ("scans:\n  x:\n    builtin: granite\n", "granite"),
    ],
)
def test_bad_value_names_the_key(tmp_path, overlay, key):
    res = dry_run(tmp_path, overlay)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "Error validating config file" in out
    assert key in out


def test_default_config_dry_run_is_clean(tmp_path):
    res = dry_run(tmp_path, "{}\n")
    assert res.returncode == 0, res.stderr[-2000:]

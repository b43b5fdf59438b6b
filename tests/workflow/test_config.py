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


def test_overlay_in_another_run_directory_keeps_config_yaml(tmp_path):
    # `make study` runs with --directory and a --configfile overlay only. Snakemake skips a
    # relative configfile directive that is missing from the run directory when overlays
    # are given, so the workflow used to run on the schema's defaults (no srgan upscaling,
    # whose default methods are bicubic and srcnn). The repository's config.yaml must load.
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("wgan_gp:\n  train:\n    batch_size: 8\n")
    run_dir = tmp_path / "elsewhere"
    res = subprocess.run(
        [SNAKEMAKE, "-n", "--configfile", str(overlay), "--directory", str(run_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-2000:]
    assert "method=srgan" in out  # config.yaml's upscale.methods, not the schema default
    assert "results/upscaled/shale/srgan" in out

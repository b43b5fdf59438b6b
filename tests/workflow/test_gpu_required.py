"""A GPU job on a profile that promises CUDA stops at once when torch cannot use it.

The rule's real script runs through Snakemake with the resource the slurm profile sets
(`cuda_required=1`); on a machine without CUDA (this test's premise) the job must fail
within seconds with the driver/torch message in its log, before any training.
"""

from __future__ import annotations

import subprocess
import time

import numpy as np
import pytest
import torch

from tomosynth.io import write_json, write_png

pytestmark = pytest.mark.workflow


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine where CUDA is unusable")
def test_train_wgan_gp_job_without_cuda_fails_fast_with_driver_message(wf, tmp_path):
    workdir = wf.copy_workflow(tmp_path / "repo")
    png = workdir / "results/png/shale/16px"
    png.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"slice_{i:05d}.png" for i in range(6)]
    for name in names:
        write_png(png / name, rng.integers(0, 256, (16, 16), dtype=np.uint8))
    write_json(
        png.parent / "split.json", {"train": names[:4], "val": names[4:5], "test": names[5:]}
    )
    target = "results/models/wgan_gp/shale_16px/final.pt"
    # A 5-minute budget and no epoch cap: a CPU fallback would run for minutes.
    (workdir / "long.yaml").write_text(
        "wgan_gp: {train: {budget_minutes: 5, max_epochs: 1000000}}\n"
    )
    cmd = wf.snakemake_cmd(
        target, "--cores", "1", "--configfile", "tiny.yaml", "long.yaml",
        "--allowed-rules", "train_wgan_gp", "--default-resources", "cuda_required=1",
    )  # fmt: skip
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=300)
    seconds = time.monotonic() - t0
    assert proc.returncode != 0, "the job trained on the CPU instead of stopping"
    log_file = workdir / "logs/train_wgan_gp/shale_16px.log"
    assert log_file.is_file(), (proc.stdout + proc.stderr)[-3000:]
    log = log_file.read_text()
    assert "DeviceError" in log and "stops instead of running on the CPU" in log, log[-2000:]
    assert f"torch {torch.__version__}" in log
    assert not (workdir / target).exists()
    assert not (workdir / "results/models/wgan_gp/shale_16px/latest.pt").exists()
    assert seconds < 200  # well below the 5-minute budget it would otherwise have spent

"""Full-size rehearsal: the job sizes Snakemake would submit for a Tomobank-sized study.

A DXchange file whose header says 1,500 angles x 2,048 rows x 2,048 columns (chunked and
empty, so it is a few kB on disk) stands in for `tomo_00001`; a config with the thesis'
settings (1,733 kept slices, 64/256 px, 240-minute budgets, the report's SRGAN) points at it.
The default target is dry-run through the `slurm` profile (no sbatch is called) and every
job's runtime, mem_mb, gpu and threads are checked against the formulas documented in
tomosynth/sizing.py and the README, written out again here.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import yaml

from tomosynth.sizing import COSTS, MINKOWSKI_BYTES_PER_VOXEL, MINKOWSKI_SLAB_VOXELS

pytestmark = pytest.mark.workflow

ANGLES, ROWS, COLS = 1500, 2048, 2048
SLICES, SKIP = (0, 1792), 59
KEPT = SLICES[1] - SLICES[0] - SKIP  # 1,733 PNG slices, as in the thesis
MARGIN, OVERHEAD, CAP = 1.5, 10.0, 10080.0  # schema defaults of `sizing`
THREADS = {"clip_bounds": 4, "export_png": 4, "compute_distance": 4}
# compute_bone_metrics' worker processes: one per 4 blocks of 128^3 ROIs (14 x 2 x 2 blocks
# here), at most sizing.threads.compute_bone_metrics (schema default 8)
BONE_WORKERS = 8
GPU_RULES = {
    "reconstruct", "train_wgan_gp", "sample_wgan_gp", "train_srcnn", "upscale", "train_srgan", "super_resolve",
    "compute_distance",
}  # fmt: skip


def _runtime(seconds, budget=None):
    est = MARGIN * seconds / 60
    if budget is not None:
        est = min(est, budget)
    return math.ceil(min(OVERHEAD + est, CAP))


def _mem(need_mb):
    """The policy's memory request: margin x need, rounded up to 100 MB."""
    return math.ceil(MARGIN * need_mb / 100) * 100


def _split(n):
    val, test = round(0.1 * n), round(0.1 * n)
    return n - val - test, val


def expected_sizes() -> dict[str, dict]:
    """The documented formulas, evaluated for the rehearsal's data (per rule)."""
    n_train, n_val = _split(KEPT)
    out = {}
    for rule, key in (("clip_bounds", "clip_s_per_mpix"), ("export_png", "export_s_per_mpix")):
        t = THREADS[rule]
        per_pixel_bytes = 3 * 2 * 4 if rule == "clip_bounds" else 2 * (4 + 8 + 8 + 4)
        out[rule] = {
            "runtime": _runtime(KEPT * COLS**2 / 1e6 * COSTS[key] / t),
            "mem_mb": _mem(1000 + t * COLS**2 * per_pixel_bytes / 1e6),
        }
    # reconstruct (recon defaults: backend auto, device auto -> gpu=1, chunk_rows 16,
    # memory_budget_mb 128, threads 2, not the test's OMP_NUM_THREADS): margin x (stated chunk bound + raw chunk + 1 GB libraries + 1 GB
    # CUDA), and overhead + margin x (slices x the assumed GPU rate, ~0.33 s per 2048/1500
    # slice, + one read at 50 MB/s)
    from tomosynth.recon import recon_memory_bound_mb

    frames, rows = ANGLES + 20 + 20, SLICES[1] - SLICES[0]
    bound = recon_memory_bound_mb(ANGLES, 20, 20, 16, COLS, "auto", 128, 2)  # recon.threads: 2
    mb = bound + 2 * frames * 16 * COLS / 2**20 + 2048
    out["reconstruct"] = {
        "mem_mb": _mem(mb),
        "runtime": _runtime(rows * 5.2e-11 * ANGLES * COLS**2 + 2 * frames * rows * COLS / 50e6),
    }
    # WGAN-GP: budget + margin (thesis 240 min, schema margin 30)
    out["train_wgan_gp"] = {"runtime": 240 + 30, "mem_mb": _mem(10600)}
    # SRCNN: thesis settings (64/32 maps, 9-1-5, whole 256 px slices), max_epochs 10,000,
    # bounded by the schema's 240-minute budget
    macs = 9 * 9 * 64 + 64 * 32 + 32 * 5 * 5
    epoch = (3 * n_train * 256**2 + n_val * 256**2) * macs / (COSTS["srcnn_cpu_gmac_per_s"] * 1e9)
    out["train_srcnn"] = {
        "runtime": _runtime(10000 * epoch, budget=240),
        "mem_mb": _mem(1000 + 4000 + (n_train + n_val) * 256**2 * 12 / 1e6),
    }
    # SRGAN (report: 16 blocks x 64 maps, 9 px outer kernels, x4, 96 px patches, 300 epochs)
    c = 64
    gen = 81 * c + 16 * 18 * c * c + 9 * c * c + (1 + 4) * 36 * c * c + 16 * 81 * c
    macs_lr = 2 * gen
    rate = COSTS["srgan_cpu_gmac_per_s"] * 1e9
    epoch = (3 * n_train * 24**2 * macs_lr + n_val * 64**2 * macs_lr / 2) / rate
    out["train_srgan"] = {
        "runtime": _runtime(300 * epoch, budget=240),
        "mem_mb": _mem(1000 + 6000 + (n_train + n_val) * 256**2 * 8 / 1e6),
    }
    # bone metrics of the SR volume (1,733 x 256^2), one mask + per worker process the larger
    # of one thickness context (block 128 + 2 x 64 halo, capped by the 256 px side, + 1 voxel
    # of padding per face) and one Minkowski tile (the whole 256^2 cross-section), and its
    # own pages; run time divided by Amdahl's speed-up (the measured serial share, each
    # worker's part slowed by the measured per-worker overhead)
    vox = KEPT * 256**2
    slab = max(8, MINKOWSKI_SLAB_VOXELS // 256**2)
    context = (256 + 2) ** 3
    worker = max(
        context * COSTS["bone_context_bytes_per_voxel"],
        MINKOWSKI_BYTES_PER_VOXEL * (slab + 7) * 260**2,
    )
    f, c = COSTS["bone_serial_fraction"], COSTS["bone_worker_overhead"]
    serial_s = 3 * vox / 1e6 * COSTS["bone_s_per_mvoxel"]
    out["compute_bone_metrics"] = {
        "runtime": _runtime(serial_s * (f + (1 - f) * (1 + c) / BONE_WORKERS)),
        "mem_mb": _mem(
            1000
            + (
                COSTS["bone_fixed_bytes"]
                + vox * COSTS["bone_bytes_per_voxel"]
                + BONE_WORKERS * (worker + COSTS["bone_worker_bytes"])
            )
            / 1e6
        ),
        "threads": BONE_WORKERS,
    }
    # distances: 1,733 real + 4 sets x 1,000 samples through Inception (and FRD) once each;
    # 4 sets x 2 references + the real split, each 200 + 5 + 6 + 1 Fréchet distances (2048-d)
    images = KEPT + 4 * 1000
    frd = 16 + 4 * 16  # FRD v1 sees a draw of frd_max_images (schema default 16) per set
    seconds = frd * COSTS["frd_s_per_image"]  # one thread: no thread speed-up assumed
    seconds += images / COSTS["inception_cpu_images_per_s"]  # no GPU figure: the CPU's
    seconds += (4 * 2 + 1) * (200 + 5 + 6 + 1) * COSTS["frechet_2048_s"]
    out["compute_distance"] = {
        "runtime": _runtime(seconds),
        "mem_mb": _mem(1000 + 4000 + images * (2048 + 53) * 16 / 1e6),
    }
    # SR volume of the scan (1,733 x 256^2): HR, SR and bicubic-LR float32 stacks, the x4 LR
    # stack and 2 GB of torch/CUDA libraries
    out["super_resolve"] = {"mem_mb": _mem(2000 + KEPT * 256**2 * (12 + 4 / 16) / 1e6)}
    return out


@pytest.fixture(scope="module")
def rehearsal(wf, tmp_path_factory):
    """(dry-run jobs with their resources, threads per rule) for the full-size study."""
    import h5py

    root = tmp_path_factory.mktemp("fullsize")
    h5 = root / "tomo_00001.h5"
    with h5py.File(h5, "w") as f:  # chunked and never written: ~15 kB on disk
        g = f.create_group("exchange")
        g.create_dataset("data", shape=(ANGLES, ROWS, COLS), dtype="uint16", chunks=(1, 64, COLS))
        for name in ("data_white", "data_dark"):
            g.create_dataset(name, shape=(20, ROWS, COLS), dtype="uint16", chunks=(1, 64, COLS))
        g.create_dataset("theta", data=np.linspace(0, 180, ANGLES, endpoint=False))
    assert h5.stat().st_size < 1_000_000
    workdir = wf.copy_workflow(root / "repo")
    config = {
        "scans": {"tomo": {"path": str(h5), "voxel_um": 0.65, "slices": list(SLICES)}},
        "preprocess": {"skip_slices": SKIP, "sizes": [64, 256]},
        "wgan_gp": {"scans": ["tomo"]},  # schema defaults: 240 min, full channels, 1,000 samples
        "srgan": {"scans": ["tomo"], "train": {"budget_minutes": 240}},
        "upscale": {"methods": ["bicubic", "srcnn", "srgan"]},
        "evaluate": {"methods": ["bicubic", "srcnn", "srgan"]},
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    env = {"TOMOSYNTH_SLURM_PARTITION": "gpu", "TOMOSYNTH_SLURM_ACCOUNT": "study"}
    proc = wf.run_snakemake(
        workdir,
        "--dry-run",
        "--profile",
        "workflow/profiles/slurm",
        # a dry run grants 1 core unless told; a SLURM run grants each job its threads
        "--cores",
        "64",
        env=env,
        timeout=300,
    )
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:\n)", proc.stdout + proc.stderr):
        head = re.match(r"(?:local)?rule (\w+):", block)
        res = re.search(r"^\s+resources: (.*)$", block, flags=re.M)
        if head and head.group(1) != "all":
            pairs = dict(re.findall(r"(\w+)=([^,]+)", res.group(1))) if res else {}
            job_threads = re.search(r"^\s+threads: (\d+)$", block, flags=re.M)
            pairs["threads"] = job_threads.group(1) if job_threads else "1"
            wc = re.search(r"^\s+wildcards: (.*)$", block, flags=re.M)
            pairs.update(
                {f"wildcard_{k}": v for k, v in re.findall(r"(\w+)=([^,]+)", wc.group(1))}
                if wc
                else {}
            )
            jobs.append((head.group(1), pairs))
    # threads per rule through Snakemake's API (the dry-run listing does not print them)
    script = textwrap.dedent(
        """
        import json
        from pathlib import Path
        from snakemake.api import SnakemakeApi
        from snakemake.settings.types import (
            ConfigSettings, OutputSettings, ResourceSettings, StorageSettings)
        with SnakemakeApi(OutputSettings()) as api:
            wf = api.workflow(snakefile=Path("Snakefile"), resource_settings=ResourceSettings(),
                              config_settings=ConfigSettings(),
                              storage_settings=StorageSettings())._workflow
            cores = {}
            for r in wf.rules:
                try:
                    cores[r.name] = getattr(r.resources["_cores"], "value", r.resources["_cores"])
                except ValueError:  # a function of the job (compute_bone_metrics)
                    cores[r.name] = "per job"
            print("@@" + json.dumps({k: v if isinstance(v, int) else str(v)
                                     for k, v in cores.items()}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=workdir, capture_output=True, text=True,
        timeout=300, env={**os.environ, **env},
    )  # fmt: skip
    line = [x for x in out.stdout.splitlines() if x.startswith("@@")]
    assert line, out.stderr[-3000:]
    return jobs, json.loads(line[0][2:])


def test_every_job_has_documented_runtime_memory_gpu_and_threads(rehearsal):
    jobs, threads = rehearsal
    expected = expected_sizes()
    rules = {rule for rule, _ in jobs}
    assert {"reconstruct", "clip_bounds", "export_png", *expected} <= rules
    problems = []
    for rule, res in jobs:
        for key in ("runtime", "mem_mb"):
            if key not in res:
                problems.append(f"{rule}: no {key}")
        gpu = int(res.get("gpu", 0))
        bicubic = rule == "upscale" and res.get("wildcard_method") == "bicubic"
        if gpu != (1 if rule in GPU_RULES and not bicubic else 0):
            problems.append(f"{rule}: gpu={gpu}")
        if rule in GPU_RULES and int(res.get("cuda_required", 0)) != 1:
            problems.append(f"{rule}: the slurm profile must require CUDA for GPU jobs")
        if int(res.get("runtime", 0)) > CAP:
            problems.append(f"{rule}: runtime {res['runtime']} above the cap")
        for key, value in expected.get(rule, {}).items():
            if int(res[key]) != value:
                problems.append(f"{rule}: {key}={res[key]}, formula gives {value}")
    for rule, n in THREADS.items():
        if threads[rule] != n:
            problems.append(f"{rule}: threads={threads[rule]}, config gives {n}")
    assert threads["reconstruct"] == 2  # recon.threads (schema default)
    assert not problems, "\n".join(problems)


def test_full_size_jobs_fit_a_gpu_node(rehearsal):
    """The sizes stay within what a cluster node grants: the constant 2,895 minutes of the
    SRGAN rule became the 240-minute budget + overhead; bone metrics fit in tens of GB."""
    jobs, _ = rehearsal
    size = {
        rule: {k: int(v) for k, v in res.items() if k in ("runtime", "mem_mb")}
        for rule, res in jobs
    }
    assert size["train_srgan"]["runtime"] == 240 + 10
    assert size["train_wgan_gp"]["runtime"] == 270
    assert size["train_srcnn"]["runtime"] == 240 + 10  # was 10,080 without a budget
    assert size["compute_bone_metrics"]["mem_mb"] < 64_000
    assert all(s["mem_mb"] < 128_000 for s in size.values())

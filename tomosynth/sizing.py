"""Job sizes (runtime, memory) of the workflow's rules from the size of the data.

One policy (:class:`Policy`, config ``sizing``) turns every rule's estimated need into its
request: every formula is ``work x measured cost per unit``, then ``runtime = overhead +
margin x seconds`` (minutes, rounded up; capped at ``max_runtime_minutes``) and ``mem_mb =
margin x (base + bytes per unit x units)`` (rounded up to 100 MB); ``gpu`` is 1 only for a
job that runs on CUDA. The per-unit costs in :data:`COSTS` were measured on the CPU of
this project's development machine (one thread, see README "Job sizes"); where the rule runs
on a GPU and no GPU figure was measured (``None``), the CPU figure is used, an upper bound.
Training rules bounded by a wall-clock budget take ``min(budget, estimate)``.

Pure Python (no NumPy): the Snakefile imports it while it builds the job graph.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tomosynth import plan

#: Measured per-unit costs (seconds on one CPU thread unless said otherwise).
COSTS: dict[str, float | None] = {
    # clip_bounds: read one float32 TIFF slice and take its min/max, per megapixel and thread
    # (benchmarks/bench_data_stage.py, 2,048^2 slices: wall x 2 threads / megapixels, on a
    # loaded machine; 0.016 at 1,024^2 on one idle thread)
    "clip_s_per_mpix": 0.06,
    # export_png: read, clip/scale (float64), area-resize, PNG write, per megapixel and thread
    # (the same benchmark, 64 px, the slower size; 0.061 at 1,024^2 on one idle thread)
    "export_s_per_mpix": 0.25,
    # compute_bone_metrics: ROI metrics + local thickness + S2 + SSIM + Minkowski, CPU seconds
    # (user + system, robust on a shared machine) per megavoxel of one volume (the rule
    # measures LR, SR and HR: 3 volumes). benchmarks/bench_bone_memory.py, gyroid texture,
    # one thread, 2 cores shared by 4 jobs, 2026-12-07: 128^3 35 s (5.6), 256^3 296 s
    # (5.9), 320^3 596 s (6.1), the largest figure; 512^3 (the integrator, same day) 2443 s
    # (6.07). 2048^3: about 44 CPU hours.
    "bone_s_per_mvoxel": 6.1,
    # compute_bone_metrics memory (the same runs, peak RSS of a fresh process): 128^3
    # 0.621 GB, 256^3 0.659 GB, 320^3 0.689 GB, imports 0.136 GB; one Minkowski tile at width
    # 2048 (8 slices x 128 rows) 0.47-0.52 GB; projected 2048^3 peak 13.0 GB. Per voxel of
    # the volume: the one bone mask held (bool, 1 B, read slice by slice, never a float
    # copy) plus slice buffers and the bounded S2/Euler temporaries; per voxel of the
    # largest local-thickness context (a block of ROIs, its widest halo and 1 voxel of
    # padding, bone_context_voxels): 220 B, the largest of the runs' working memory above
    # imports and mask over their own largest context (128^3: 220 B over its one 130^3
    # context, an upper bound that also holds the run's Minkowski tiles; 256^3: 163 B over
    # 146^3; 320^3: 122 B over 162^3; 512^3: 0.890 GB peak, 136 B over 162^3); plus the imports. The Minkowski tile
    # (MINKOWSKI_BYTES_PER_VOXEL, worst case) is added by bone_metrics().
    "bone_bytes_per_voxel": 1.5,
    "bone_context_bytes_per_voxel": 220.0,
    "bone_fixed_bytes": 1.4e8,
    # compute_bone_metrics with workers (the rule's threads: forked processes that share the
    # mask). Reading and Otsu, the envelopes, the ROI blocks, the Minkowski mesh tiles and
    # Euler slabs all run on the workers; the parent's own CPU time is the serial share:
    # 0.013 at 256^3 (3.7 of 275.9 s, idle, 2026-12-07) and about 0.025 at 640^3 (264.6 of
    # 4834 s under load, 143 s of it the Euler slabs, since moved to the workers). Each of
    # 2 workers on this 2-core machine took 15 % more CPU than one process (317.3 against
    # 275.9 s: shared caches and memory bandwidth), the per-worker overhead. bone_speedup():
    # 2 workers 1.71x predicted, 1.67x measured (278.1 -> 166.7 s wall). Both are measured
    # at 2 workers only. Each worker holds one thickness context or Minkowski tile and its
    # own copy of the pages it writes (bone_worker_bytes: at most the imports, as the
    # parent's).
    "bone_serial_fraction": 0.025,
    "bone_worker_overhead": 0.15,
    "bone_worker_bytes": 1.4e8,
    # compute_distance: FRD v1 (frd-score's pyradiomics features, LoG + wavelet filters) of one
    # 256 px image on one thread: 18 + 18 images in ~47 s (issue 20's measurement)
    "frd_s_per_image": 1.3,
    # compute_distance: Inception forward passes per second (299 px), CPU one thread / GPU
    "inception_cpu_images_per_s": 1.6,
    "inception_cuda_images_per_s": None,
    # compute_distance: one Fréchet distance of 2048-d features (two eigendecompositions)
    "frechet_2048_s": 0.37,
    # train_srcnn: training (forward + backward) throughput, HR megapixels x (MACs per pixel
    # / 1000) per second, i.e. effective GMAC/s of a training step
    "srcnn_cpu_gmac_per_s": 2.8,
    "srcnn_cuda_gmac_per_s": None,
    # train_srgan: the same for generator + discriminator steps of the SRGAN family
    "srgan_cpu_gmac_per_s": 3.4,
    "srgan_cuda_gmac_per_s": None,
    # reconstruct: seconds per slice per (angle x column^2), one thread, 2,048 columns x 1,500
    # angles (benchmarks/bench_recon.py): fourier ~3.2 slices/s, torch FBP 0.13 slices/s,
    # astra 0.011 slices/s; tomopy gridrec 4.55 slices/s (issue-tracker measurement). On a
    # GPU not measured: assumed no faster than the fourier backend on one CPU thread.
    "recon_fourier_s_per_angle_pix2": 5.2e-11,
    "recon_auto_s_per_angle_pix2": 5.2e-11,
    "recon_torch_s_per_angle_pix2": 1.2e-9,
    "recon_astra_s_per_angle_pix2": 1.5e-8,
    "recon_tomopy_s_per_angle_pix2": 3.5e-11,
    "recon_gpu_s_per_angle_pix2": 5.2e-11,
    # reconstruct: reading uncompressed uint16 counts (bytes per second)
    "recon_read_bytes_per_s": 50e6,
}

#: Needs (minutes, MB) of the small rules nobody has measured: judged from what each does
#: (a plot or table of a few files, one sampling pass), not from a benchmark.
UNMEASURED_NEEDS: dict[str, tuple[float, float]] = {
    "simulate_scan": (10.0, 2600.0),
    "split_manifest": (0.5, 300.0),
    "train_wgan_gp": (0.0, 10600.0),  # runtime: the budget (train_wgan_gp())
    "sample_wgan_gp": (10.0, 5300.0),
    "upscale": (10.0, 2600.0),
    "compute_sr_metrics": (10.0, 2600.0),
    "compute_morphology": (30.0, 2600.0),
    "plot_distance_validation": (30.0, 2600.0),
    "plot": (1.0, 1300.0),  # every plot_* rule
    "compute_table": (1.0, 1300.0),
    "compute_sr_metrics_cv": (1.0, 1300.0),
    "summarize": (0.5, 300.0),
}


#: Peak working memory of :func:`tomosynth.metrics.geometry.minkowski_3d` per voxel of a
#: tile and its 7 halo rows per tiled axis (bytes): float32 padded copy, its Gaussian,
#: marching-cubes temporaries and the mesh. Dense random textures reach ~400-650 B
#: (tracemalloc, tests/unit/test_morphology.py); bone-like volumes about 170 B.
MINKOWSKI_BYTES_PER_VOXEL = 700
#: Default Minkowski tile: about this many voxels (32 slices of 256^2), at least 8 slices.
MINKOWSKI_SLAB_VOXELS = 2_097_152


def minkowski_slab(shape: tuple[int, int, int]) -> int:
    """Slices per tile of ``minkowski_3d`` for a volume of `shape` (z, y, x)."""
    return max(8, MINKOWSKI_SLAB_VOXELS // max(1, shape[1] * shape[2]))


def minkowski_tile(shape: tuple[int, int, int], slab: int | None = None) -> int:
    """Rows (y) per tile of ``minkowski_3d``: the whole cross-section while `slab` slices of
    it fit :data:`MINKOWSKI_SLAB_VOXELS`, else fewer rows (at least 8), so a tile's memory
    grows with the width, not with the cross-section (2048^2: 8 slices x 128 rows)."""
    slab = minkowski_slab(shape) if slab is None else max(1, slab)
    return max(8, MINKOWSKI_SLAB_VOXELS // max(1, slab * shape[2]))


def minkowski_slab_bytes(shape: tuple[int, int, int]) -> float:
    """Working memory (bytes) of one Minkowski tile of a volume of `shape`."""
    slab = min(minkowski_slab(shape), shape[0])
    rows = min(minkowski_tile(shape) + 7, shape[1] + 4)
    return MINKOWSKI_BYTES_PER_VOXEL * (slab + 7) * rows * (shape[2] + 4)


@dataclass(frozen=True)
class Policy:
    """How estimates become requests (config ``sizing``)."""

    margin: float = 1.5
    overhead_minutes: float = 10.0
    max_runtime_minutes: float = 10080.0
    base_mem_mb: int = 1000

    @classmethod
    def from_config(cls, sizing: Mapping[str, Any]) -> Policy:
        """The policy of the config's ``sizing`` block (schema defaults filled in)."""
        keys = ("margin", "overhead_minutes", "max_runtime_minutes")
        return cls(**{k: sizing[k] for k in keys})

    def memory(self, need_mb: float) -> int:
        """``margin x need``, rounded up to 100 MB."""
        return int(math.ceil(self.margin * need_mb / 100.0)) * 100

    def request(
        self, seconds: float, need_mb: float, budget_minutes: float | None = None
    ) -> dict[str, int]:
        """{runtime, mem_mb} of a job that needs `seconds` and `need_mb`."""
        return {
            "runtime": runtime_minutes(seconds, self, budget_minutes),
            "mem_mb": self.memory(need_mb),
        }


def runtime_minutes(seconds: float, policy: Policy, budget_minutes: float | None = None) -> int:
    """``overhead + margin x seconds / 60``, at most ``budget + overhead`` and the cap."""
    est = policy.margin * seconds / 60.0
    if budget_minutes is not None:
        est = min(est, float(budget_minutes))
    return int(math.ceil(min(policy.overhead_minutes + est, policy.max_runtime_minutes)))


def _on_gpu(device: str, gpu: bool) -> bool:
    return gpu and device != "cpu"


def _rate(name: str, device: str, gpu: bool) -> float:
    """A measured rate for the device the job uses (the CPU figure where no GPU one exists)."""
    if _on_gpu(device, gpu):
        value = COSTS.get(f"{name}_cuda_{_UNITS[name]}")
        if value:
            return float(value)
    return float(COSTS[f"{name}_cpu_{_UNITS[name]}"])  # type: ignore[arg-type]


_UNITS = {"inception": "images_per_s", "srcnn": "gmac_per_s", "srgan": "gmac_per_s"}


# --- data stage ---------------------------------------------------------------------------------
def clip_bounds(n_slices: int, columns: int, threads: int, policy: Policy) -> dict[str, int]:
    """Every reconstructed slice (columns^2 float32) read once; `threads` slices at a time
    (TIFF decoding and NumPy release the GIL: the pool is assumed to scale linearly)."""
    seconds = n_slices * columns**2 / 1e6 * COSTS["clip_s_per_mpix"] / max(1, threads)
    return policy.request(seconds, policy.base_mem_mb + 3 * 2 * threads * columns**2 * 4 / 1e6)


def export_png(n_slices: int, columns: int, threads: int, policy: Policy) -> dict[str, int]:
    """Every slice read, scaled in float64 and resized; 2 x threads slices in flight."""
    seconds = n_slices * columns**2 / 1e6 * COSTS["export_s_per_mpix"] / max(1, threads)
    mem = policy.base_mem_mb + 2 * threads * columns**2 * (4 + 8 + 8 + 4) / 1e6
    return policy.request(seconds, mem)


# --- evaluation ----------------------------------------------------------------------------------
#: Blocks of ROIs whose local thickness is computed together (voxels per side), and the
#: widest halo around a block (tomosynth.metrics.bone); they bound the context's memory.
BONE_BLOCK_SIDE = 128
BONE_HALO_MAX = 64


def bone_context_voxels(shape: tuple[int, int, int]) -> int:
    """Voxels of the largest local-thickness context of a volume (block + halo + 1 voxel of
    padding per face)."""
    side = [min(n, BONE_BLOCK_SIDE + 2 * BONE_HALO_MAX) + 2 for n in shape]
    return side[0] * side[1] * side[2]


#: ROI blocks per worker process below which compute_bone_metrics asks for fewer workers
#: (a volume of 4 blocks, e.g. the demo's 36 x 256^2, runs in one process).
BONE_BLOCKS_PER_WORKER = 4


def bone_workers(n_slices: int, size: int, most: int) -> int:
    """Worker processes (the rule's threads) of compute_bone_metrics for a (slices, size,
    size) volume: one per :data:`BONE_BLOCKS_PER_WORKER` blocks of ROIs, 1 to `most`."""
    side = -(-size // BONE_BLOCK_SIDE)
    blocks = -(-n_slices // BONE_BLOCK_SIDE) * side * side
    return max(1, min(int(most), blocks // BONE_BLOCKS_PER_WORKER))


def bone_speedup(workers: int) -> float:
    """Wall-time speed-up of `workers` processes over one: Amdahl's law with the measured
    serial share, each worker's part slowed by the measured per-worker overhead."""
    if workers <= 1:
        return 1.0
    f = float(COSTS["bone_serial_fraction"])  # type: ignore[arg-type]
    c = float(COSTS["bone_worker_overhead"])  # type: ignore[arg-type]
    return 1.0 / (f + (1.0 - f) * (1.0 + c) / workers)


def bone_metrics(
    n_slices: int, size: int, policy: Policy, tissue: str = "roi", workers: int = 1
) -> dict[str, int]:
    """One (slices, size, size) bone mask in memory at a time, three volumes measured; one
    thickness context and one Minkowski tile add their working memory (summed: a bound,
    they do not coexist). Tissue ``envelope`` or a mask holds a tissue mask too (1 B per
    voxel more). 2048^3 needs about 21 GB (roi) or 30 GB (envelope) before the margin.

    With `workers` > 1 processes (sharing the masks copy-on-write), each holds one context
    or one tile (the larger counted) and its own written pages (``bone_worker_bytes``), and
    the run time is divided by :func:`bone_speedup`.
    """
    voxels = n_slices * size**2
    seconds = 3 * voxels / 1e6 * COSTS["bone_s_per_mvoxel"] / bone_speedup(workers)  # type: ignore[operator]
    slab = minkowski_slab_bytes((n_slices, size, size))
    ctx = bone_context_voxels((n_slices, size, size)) * COSTS["bone_context_bytes_per_voxel"]  # type: ignore[operator]
    if workers > 1:  # a worker computes blocks, then (another pool) tiles: never both
        work = workers * (max(ctx, slab) + COSTS["bone_worker_bytes"])  # type: ignore[operator]
    else:
        work = ctx + slab
    per_voxel = COSTS["bone_bytes_per_voxel"] + (0.0 if tissue == "roi" else 1.0)  # type: ignore[operator]
    mem = policy.base_mem_mb + (COSTS["bone_fixed_bytes"] + voxels * per_voxel + work) / 1e6  # type: ignore[operator]
    return policy.request(seconds, mem)


def distance(
    *,
    n_real: int,
    n_generated: int,
    n_sets: int,
    n_references: int,
    replicates: int,
    fid: bool,
    device: str,
    gpu: bool,
    threads: int,
    policy: Policy,
    frd_max_images: int | None = None,
) -> dict[str, int]:
    """Features once per image (real pool + generated sets), then per compared pair
    `replicates` Fréchet distances (bootstrap + baselines + FID-infinity points + 1).
    FRD v1 sees at most `frd_max_images` images of the real pool and of each set
    (evaluate.distance.frd_max_images). `threads` only documents the request (no thread
    speed-up is assumed)."""
    images = n_real + n_generated
    cap = images if frd_max_images is None else frd_max_images
    per_set = -(-n_generated // max(1, n_sets))
    frd_images = min(n_real, cap) + n_sets * min(per_set, cap)
    # FRD features are per-image Python work; the Fréchet distances' eigendecompositions and
    # the CPU Inception use BLAS/torch threads, but no speed-up with threads was measured
    # here (2 shared cores), so none is assumed: the estimate is one thread's.
    seconds = frd_images * COSTS["frd_s_per_image"]  # type: ignore[operator]
    pairs = n_sets * n_references + 1
    # FRD's 53-d distances cost milliseconds; the 2048-d ones dominate.
    if fid:
        seconds += images / _rate("inception", device, gpu)
        seconds += pairs * replicates * float(COSTS["frechet_2048_s"])  # type: ignore[arg-type]
    return policy.request(seconds, policy.base_mem_mb + 4000 + images * (2048 + 53) * 16 / 1e6)


# --- training -------------------------------------------------------------------------------------
def srcnn_macs_per_pixel(channels: list[int], kernels: list[int]) -> float:
    """Multiply-adds per HR pixel of SRCNN's three convolutions (1 -> c1 -> c2 -> 1)."""
    c1, c2 = channels
    k1, k2, k3 = kernels
    return k1**2 * c1 + c1 * c2 * k2**2 + c2 * k3**2


def train_srcnn(
    *,
    n_train: int,
    n_val: int,
    size: int,
    cfg: dict,
    gpu: bool,
    policy: Policy,
) -> dict[str, int]:
    """``max_epochs`` epochs of the training slices (whole or patches) plus validation.

    With ``budget_minutes`` (schema default 240) the budget bounds it; with none the epoch
    cap does (early stopping usually ends it sooner, which no formula can know).
    """
    pix = (cfg["patch_size"] or size) ** 2 * n_train * cfg.get("patches_per_image", 1)
    macs = srcnn_macs_per_pixel(cfg["channels"], cfg["kernels"])
    train_s = 3 * pix * macs / (_rate("srcnn", cfg["device"], gpu) * 1e9)  # fwd + bwd = 3 x fwd
    val_s = n_val * size**2 * macs / (_rate("srcnn", cfg["device"], gpu) * 1e9)
    seconds = cfg["max_epochs"] * (train_s + val_s)
    mem = policy.base_mem_mb + 4000 + (n_train + n_val) * size**2 * 4 * 3 / 1e6
    return policy.request(seconds, mem, cfg["budget_minutes"])


def srgan_macs_per_lr_pixel(generator: dict, scale: int) -> float:
    """Multiply-adds per LR pixel of the generator (and a discriminator of similar cost on
    the HR patch, counted as the generator's again)."""
    c, b, k = generator["channels"], generator["n_blocks"], generator["kernel"]
    ups = int(round(math.log2(scale)))
    gen = k**2 * c + b * 2 * 9 * c**2 + 9 * c**2
    gen += sum(4**i * 9 * c * 4 * c for i in range(ups)) + scale**2 * k**2 * c
    return 2.0 * gen


def train_srgan(
    *,
    n_train: int,
    n_val: int,
    hr_size: int,
    scale: int,
    train: dict,
    generator: dict,
    device: str,
    gpu: bool,
    policy: Policy,
) -> dict[str, int]:
    """``epochs`` epochs of patches plus whole-slice validation; at most the budget."""
    lr_patch = (train["patch_size"] or hr_size) // scale
    macs = srgan_macs_per_lr_pixel(generator, scale)
    rate = _rate("srgan", device, gpu) * 1e9
    train_s = 3 * n_train * train["patches_per_image"] * lr_patch**2 * macs / rate
    val_s = n_val * (hr_size // scale) ** 2 * macs / 2 / rate
    seconds = train["epochs"] * (train_s + val_s)
    mem = policy.base_mem_mb + 6000 + (n_train + n_val) * hr_size**2 * 4 * 2 / 1e6
    return policy.request(seconds, mem, train["budget_minutes"])


def train_wgan_gp(budget_minutes: float, extra_minutes: float, policy: Policy) -> dict[str, int]:
    """A budget-bounded training: the budget plus `extra_minutes` (loading, the last epoch,
    checkpoints: wgan_gp.runtime_margin_minutes), at most the cap; memory not measured."""
    runtime = min(float(budget_minutes) + float(extra_minutes), policy.max_runtime_minutes)
    return {
        "runtime": int(math.ceil(runtime)),
        "mem_mb": policy.memory(UNMEASURED_NEEDS["train_wgan_gp"][1]),
    }


# --- reconstruction and inference -----------------------------------------------------------------
def reconstruct(
    *,
    shape: tuple[int, int, int, int, int],
    chunk_bound_mb: float,
    chunk_rows: int,
    backend: str,
    gpu: bool,
    threads: int,
    policy: Policy,
) -> dict[str, int]:
    """One scan of `shape` (angles, flats, darks, rows reconstructed, columns).

    Memory: the stated bound of one chunk (tomosynth.recon.recon_memory_bound_mb, measured by
    benchmarks/bench_recon.py --memory) + the raw chunk of the sinogram-order copy (2 B x
    frames x rows x columns) + 1 GB of libraries (+1 GB of CUDA libraries on a GPU).
    Runtime: rows x the per-slice cost (the CPU's divided by `threads`) + one read.
    """
    a, f, d, rows, cols = shape
    r = min(chunk_rows, rows)
    need_mb = chunk_bound_mb + 2 * (a + f + d) * r * cols / 2**20 + 1024 * (1 + int(gpu))
    rate = COSTS[f"recon_{'gpu' if gpu else backend}_s_per_angle_pix2"]
    per_slice = float(rate) * a * cols**2 / (1 if gpu else max(1, threads))  # type: ignore[arg-type]
    read = 2 * (a + f + d) * rows * cols / float(COSTS["recon_read_bytes_per_s"])  # type: ignore[arg-type]
    return policy.request(rows * per_slice + read, need_mb)


def super_resolve(n_slices: int, hr_size: int, scale: int, policy: Policy) -> dict[str, int]:
    """The whole volume in memory: HR, SR and bicubic-upsampled LR float32 stacks (12 B per HR
    voxel) + the LR stack + 2 GB of torch and CUDA libraries (derived from the arrays held by
    tomosynth.train.srgan.super_resolve_volume, not measured). Runtime not measured."""
    voxels = n_slices * hr_size**2
    need_mb = 2000 + voxels * (12 + 4 / scale**2) / 1e6
    return {"runtime": runtime_minutes(30 * 60, policy), "mem_mb": policy.memory(need_mb)}


def unmeasured(name: str, policy: Policy) -> dict[str, int]:
    """{runtime, mem_mb} of a rule from its judged need in :data:`UNMEASURED_NEEDS`."""
    minutes, need_mb = UNMEASURED_NEEDS["plot" if name.startswith("plot_") else name]
    return policy.request(minutes * 60, need_mb)


def gpu(device: str, uses_cuda: bool = True) -> int:
    """1 when the job runs on CUDA (a method that uses it, device auto or cuda), else 0."""
    return int(uses_cuda and device != "cpu")


# --- per rule: the work of one job from the config and its wildcards ------------------------------
#: (angles, flats, darks, rows reconstructed, columns) of a scan, from its header.
ScanShape = Callable[[str], tuple[int, int, int, int, int]]


def fid_possible(evaluate: Mapping[str, Any]) -> bool:
    """Whether compute_distance may run the Inception (weights configured and present, or
    pytorch-fid's default); without it only the weight-free FRD is computed."""
    weights = evaluate["fid_weights"]
    return weights is None or Path(weights).is_file()


def distance_gpu(evaluate: Mapping[str, Any]) -> int:
    """1 when compute_distance runs the Inception on CUDA."""
    return gpu(evaluate["device"], fid_possible(evaluate))


def _distance_job(config: Mapping[str, Any], scan: str, n_real: int, policy: Policy) -> dict:
    evaluate = config["evaluate"]
    dist, sets = evaluate["distance"], plan.distance_sets(config, scan)
    fid = fid_possible(evaluate)
    return distance(
        n_real=n_real,
        n_generated=len(sets) * config["wgan_gp"]["sample"]["n"],
        n_sets=len(sets),
        n_references=2,
        replicates=dist["bootstrap"] + dist["baseline_repeats"] + dist["fid_inf_points"] + 1,
        fid=fid,
        device=evaluate["device"],
        gpu=bool(distance_gpu(evaluate)),
        threads=config["sizing"]["threads"]["compute_distance"],
        policy=policy,
        frd_max_images=dist["frd_max_images"],
    )


def _srgan_job(config, wc, scan_shape: ScanShape, fold_of: plan.FoldOf, policy) -> dict:
    srgan = config["srgan"]
    preset = plan.srgan_preset(config, wc["preset"])
    _, specimens = plan.srgan_fold(config, wc["scan"], fold_of)
    counts = [plan.split_counts(config, scan_shape(s)[3]) for s in specimens]
    return train_srgan(
        n_train=sum(c["train"] for c in counts),
        n_val=sum(c["val"] for c in counts),
        hr_size=srgan["hr_size"],
        scale=int(wc["scale"]),
        train=preset["train"],
        generator=preset["generator"],
        device=srgan["device"],
        gpu=True,
        policy=policy,
    )


def job(
    config: Mapping[str, Any],
    name: str,
    wc: Mapping[str, str],
    scan_shape: ScanShape,
    *,
    chunk_bound_mb: float = 0.0,
    fold_of: plan.FoldOf | None = None,
    granted_threads: int | None = None,
) -> dict[str, int]:
    """{runtime, mem_mb} of one job of the workflow's rule `name` with wildcards `wc`.

    `chunk_bound_mb` (reconstruct only): tomosynth.recon.recon_memory_bound_mb of the scan;
    `fold_of` (train_srgan only): tomosynth.sr_data.fold_of. Both are passed in because
    they import NumPy or torch. `granted_threads` (compute_bone_metrics only): the job's
    threads as Snakemake grants them (its worker processes); :func:`job_threads`' when
    None. Rules without a formula take :data:`UNMEASURED_NEEDS`.
    """
    policy, threads = Policy.from_config(config["sizing"]), config["sizing"]["threads"]
    shape = scan_shape(wc["scan"]) if "scan" in wc else None
    kept = plan.kept_slices(config, shape[3]) if shape else 0
    if name in ("clip_bounds", "export_png"):
        return (clip_bounds if name == "clip_bounds" else export_png)(
            kept, shape[4], threads[name], policy
        )
    if name == "reconstruct":
        recon = config["recon"]
        on_gpu = gpu(recon["device"], recon["backend"] in RECON_GPU_BACKENDS)
        return reconstruct(
            shape=shape,
            chunk_bound_mb=chunk_bound_mb,
            chunk_rows=recon["chunk_rows"],
            backend=recon["backend"],
            gpu=bool(on_gpu),
            threads=recon["threads"],
            policy=policy,
        )
    if name == "compute_distance":
        return _distance_job(config, wc["scan"], kept, policy)
    if name == "train_srgan":
        if fold_of is None:
            raise TypeError("sizing.job: train_srgan needs fold_of (tomosynth.sr_data.fold_of)")
        return _srgan_job(config, wc, scan_shape, fold_of, policy)
    if name == "compute_bone_metrics":
        tissue = config.get("evaluate", {}).get("bone", {}).get("tissue", "roi")
        workers = granted_threads or job_threads(config, name, wc, scan_shape)
        size = config["srgan"]["hr_size"]
        return bone_metrics(kept, size, policy, str(tissue), workers=int(workers))
    if name == "super_resolve":
        return super_resolve(kept, config["srgan"]["hr_size"], int(wc["scale"]), policy)
    if name == "train_srcnn":
        counts = plan.split_counts(config, shape[3])
        _, high = plan.low_high(config)
        cfg = config["srcnn"]
        n_train, n_val = counts["train"], counts["val"]
        return train_srcnn(
            n_train=n_train, n_val=n_val, size=high, cfg=cfg, gpu=True, policy=policy
        )
    return unmeasured(name, policy)


def job_threads(
    config: Mapping[str, Any], name: str, wc: Mapping[str, str], scan_shape: ScanShape
) -> int:
    """Threads of one job of rule `name`: ``sizing.threads[name]``; for compute_bone_metrics
    (worker processes) that is the most, fewer on small volumes (:func:`bone_workers`)."""
    most = int(config["sizing"]["threads"][name])
    if name != "compute_bone_metrics":
        return most
    kept = plan.kept_slices(config, scan_shape(wc["scan"])[3])
    size = config["srgan"]["hr_size"]
    workers = bone_workers(kept, size, most)
    limit = config["sizing"].get("max_mem_mb")
    if not limit:
        return workers
    policy = Policy.from_config(config["sizing"])
    tissue = str(config.get("evaluate", {}).get("bone", {}).get("tissue", "roi"))
    return bone_workers_within(kept, size, workers, policy, tissue, int(limit))


def bone_workers_within(
    n_slices: int, size: int, most: int, policy: Policy, tissue: str, limit_mb: int
) -> int:
    """The most workers, up to `most`, whose compute_bone_metrics request fits `limit_mb`
    (``sizing.max_mem_mb``): each worker holds its own context, so a node's memory, not its
    cores, can be what bounds them. 1 when even one does not fit (the parse-time warning
    then names the job)."""
    for workers in range(int(most), 1, -1):
        if bone_metrics(n_slices, size, policy, tissue, workers=workers)["mem_mb"] <= limit_mb:
            return workers
    return 1


#: Reconstruction backends that run on CUDA when the device allows it (auto: tomopy is not
#: in envs/recon.yaml, so auto resolves to one of these there).
RECON_GPU_BACKENDS = ("auto", "torch", "fourier")


def job_gpu(
    config: Mapping[str, Any], name: str, method: str | None = None, device: str | None = None
) -> int:
    """The ``gpu`` request of a job of rule `name`: 1 only where it runs on CUDA.

    `method`: the upscale job's method (bicubic needs no GPU); `device`: the WGAN-GP jobs'
    training device (its per-size parameters). Rules that never use CUDA get 0.
    """
    if name in ("train_wgan_gp", "sample_wgan_gp"):
        return gpu(device or "auto")
    if name == "upscale":
        return gpu(config["upscale"]["device"], method != "bicubic")
    if name == "reconstruct":
        recon = config["recon"]
        return gpu(recon["device"], recon["backend"] in RECON_GPU_BACKENDS)
    if name == "compute_distance":
        return distance_gpu(config["evaluate"])
    sections = {"train_srcnn": "srcnn", "train_srgan": "srgan", "super_resolve": "srgan"}
    return gpu(config[sections[name]]["device"]) if name in sections else 0

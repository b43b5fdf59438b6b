"""Job sizes (runtime, memory) of the workflow's rules from the size of the data.

Every formula is ``work x measured cost per unit``, then ``runtime = overhead + margin x
seconds`` (minutes, rounded up; capped at ``max_runtime_minutes``) and ``mem_mb = base +
bytes per unit x units``. The per-unit costs in :data:`COSTS` were measured on the CPU of
this project's development machine (one thread, see README "Job sizes"); where the rule runs
on a GPU and no GPU figure was measured (``None``), the CPU figure is used, an upper bound.
Training rules bounded by a wall-clock budget take ``min(budget, estimate)``.

Pure Python (no NumPy): the Snakefile imports it while it builds the job graph.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Measured per-unit costs (seconds on one CPU thread unless said otherwise).
COSTS: dict[str, float | None] = {
    # clip_bounds: read one float32 TIFF slice and take its min/max, per megapixel and thread
    # (benchmarks/bench_data_stage.py, 2,048^2 slices: wall x 2 threads / megapixels, on a
    # loaded machine; 0.016 at 1,024^2 on one idle thread)
    "clip_s_per_mpix": 0.06,
    # export_png: read, clip/scale (float64), area-resize, PNG write, per megapixel and thread
    # (the same benchmark, 64 px, the slower size; 0.061 at 1,024^2 on one idle thread)
    "export_s_per_mpix": 0.25,
    # compute_bone_metrics: ROI metrics + local thickness + S2 + SSIM + Minkowski, per
    # megavoxel of one volume (the rule measures LR, SR and HR: 3 volumes)
    "bone_s_per_mvoxel": 15.0,
    # compute_bone_metrics memory (benchmarks/bench_bone_memory.py, peak RSS of a fresh
    # process): per voxel of the volume, the one bone mask held (bool, read slice by slice,
    # never a float copy) and bounded S2/Euler temporaries; per voxel of the largest
    # thickness context (a block of ROIs, its halo and the upper-bound padding: at most
    # (BONE_BLOCK_SIDE + 2 BONE_HALO_MAX + 2 x 24)^3), local thickness of the lower and
    # upper bound maps (48^3 run: 85 MB above the imports for a 96^3 padded context);
    # plus the imports (0.14 GB). The Minkowski slab is added by bone_metrics().
    "bone_bytes_per_voxel": 1.5,
    "bone_context_bytes_per_voxel": 96.0,
    "bone_fixed_bytes": 1.5e8,
    # compute_distance: FRD (radiomics) features of one 256 px image
    "frd_s_per_image": 0.11,
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
}


#: Peak working memory of :func:`tomosynth.metrics.morphology.minkowski_3d` per voxel of a
#: slab and its 7 halo slices (bytes): float32 padded copy, its Gaussian, marching-cubes
#: temporaries and the mesh. Dense random textures reach ~400-650 B (tracemalloc,
#: tests/unit/test_morphology.py); bone-like volumes about 170 B.
MINKOWSKI_BYTES_PER_VOXEL = 700
#: Default Minkowski slab: about this many voxels (32 slices of 256^2), at least 8 slices.
MINKOWSKI_SLAB_VOXELS = 2_097_152


def minkowski_slab(shape: tuple[int, int, int]) -> int:
    """Slices per slab of ``minkowski_3d`` for a volume of `shape` (z, y, x)."""
    return max(8, MINKOWSKI_SLAB_VOXELS // max(1, shape[1] * shape[2]))


def minkowski_slab_bytes(shape: tuple[int, int, int]) -> float:
    """Working memory (bytes) of one Minkowski slab of a volume of `shape`."""
    slab = min(minkowski_slab(shape), shape[0])
    return MINKOWSKI_BYTES_PER_VOXEL * (slab + 7) * (shape[1] + 4) * (shape[2] + 4)


@dataclass(frozen=True)
class Policy:
    """How estimates become requests (config ``sizing``)."""

    margin: float = 1.5
    overhead_minutes: float = 10.0
    max_runtime_minutes: float = 10080.0
    base_mem_mb: int = 1000


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
    mem = policy.base_mem_mb + 3 * 2 * threads * columns**2 * 4 / 1e6
    return {"runtime": runtime_minutes(seconds, policy), "mem_mb": int(math.ceil(mem))}


def export_png(n_slices: int, columns: int, threads: int, policy: Policy) -> dict[str, int]:
    """Every slice read, scaled in float64 and resized; 2 x threads slices in flight."""
    seconds = n_slices * columns**2 / 1e6 * COSTS["export_s_per_mpix"] / max(1, threads)
    mem = policy.base_mem_mb + 2 * threads * columns**2 * (4 + 8 + 8 + 4) / 1e6
    return {"runtime": runtime_minutes(seconds, policy), "mem_mb": int(math.ceil(mem))}


# --- evaluation ----------------------------------------------------------------------------------
#: Blocks of ROIs whose local thickness is computed together (voxels per side), and the
#: widest halo around a block (tomosynth.metrics.bone); they bound the context's memory.
BONE_BLOCK_SIDE = 128
BONE_HALO_MAX = 64


def bone_context_voxels(shape: tuple[int, int, int]) -> int:
    """Voxels of the largest local-thickness context of a volume (block + halo + padding)."""
    side = [min(n, BONE_BLOCK_SIDE + 2 * BONE_HALO_MAX) + 2 * 24 for n in shape]
    return side[0] * side[1] * side[2]


def bone_metrics(n_slices: int, size: int, policy: Policy) -> dict[str, int]:
    """One (slices, size, size) bone mask in memory at a time, three volumes measured; one
    thickness context and the Minkowski functionals' slab add their working memory."""
    voxels = n_slices * size**2
    seconds = 3 * voxels / 1e6 * COSTS["bone_s_per_mvoxel"]  # type: ignore[operator]
    slab = minkowski_slab_bytes((n_slices, size, size))
    ctx = bone_context_voxels((n_slices, size, size)) * COSTS["bone_context_bytes_per_voxel"]  # type: ignore[operator]
    fixed = COSTS["bone_fixed_bytes"] + ctx  # type: ignore[operator]
    mem = policy.base_mem_mb + (fixed + voxels * COSTS["bone_bytes_per_voxel"] + slab) / 1e6
    return {"runtime": runtime_minutes(seconds, policy), "mem_mb": int(math.ceil(mem))}


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
) -> dict[str, int]:
    """Features once per image (real pool + generated sets), then per compared pair
    `replicates` Fréchet distances (bootstrap + baselines + FID-infinity points + 1).
    `threads` only documents the request (no thread speed-up is assumed)."""
    images = n_real + n_generated
    # FRD features are per-image Python work; the Fréchet distances' eigendecompositions and
    # the CPU Inception use BLAS/torch threads, but no speed-up with threads was measured
    # here (2 shared cores), so none is assumed: the estimate is one thread's.
    seconds = images * COSTS["frd_s_per_image"]  # type: ignore[operator]
    pairs = n_sets * n_references + 1
    # FRD's 53-d distances cost milliseconds; the 2048-d ones dominate.
    if fid:
        seconds += images / _rate("inception", device, gpu)
        seconds += pairs * replicates * float(COSTS["frechet_2048_s"])  # type: ignore[arg-type]
    mem = policy.base_mem_mb + 4000 + images * (2048 + 53) * 8 * 2 / 1e6
    return {"runtime": runtime_minutes(seconds, policy), "mem_mb": int(math.ceil(mem))}


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

    No budget: the epoch cap bounds the rule (early stopping usually ends it sooner, which
    no formula can know); with ``budget_minutes`` the budget bounds it.
    """
    pix = (cfg["patch_size"] or size) ** 2 * n_train * cfg.get("patches_per_image", 1)
    macs = srcnn_macs_per_pixel(cfg["channels"], cfg["kernels"])
    train_s = 3 * pix * macs / (_rate("srcnn", cfg["device"], gpu) * 1e9)  # fwd + bwd = 3 x fwd
    val_s = n_val * size**2 * macs / (_rate("srcnn", cfg["device"], gpu) * 1e9)
    seconds = cfg["max_epochs"] * (train_s + val_s)
    mem = policy.base_mem_mb + 4000 + (n_train + n_val) * size**2 * 4 * 3 / 1e6
    return {
        "runtime": runtime_minutes(seconds, policy, cfg.get("budget_minutes")),
        "mem_mb": int(math.ceil(mem)),
    }


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
    return {
        "runtime": runtime_minutes(seconds, policy, train.get("budget_minutes")),
        "mem_mb": int(math.ceil(mem)),
    }

"""Peak memory of compute_bone_metrics (tomosynth.metrics.bone_tables.evaluate_sr_volume) by
size, and its projection to a 2048^3 volume.

For each size N an SR volume folder (lr/, sr/, hr/ float32 TIFF stacks of N^3, a gyroid
trabecular texture of period 24 voxels; SR and LR perturbed) is written slice by slice, and
``evaluate_sr_volume`` runs on it in a fresh Python process that reports its own peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) and its RSS after the imports. A second
fresh process measures one Minkowski tile at the full width W (``--width``, default 2048):
``minkowski_3d`` on a (slab, 2 x tile, W) gyroid mask with the slab and tile that a W^3
volume gets, the only working set that grows with the volume's width.

Projection to W^3 (tissue ``roi``, the default; ``envelope`` adds a whole-volume tissue
mask): the imports, plus the one bone mask held (1 byte per voxel, by its dtype), plus the
largest local-thickness context of a W^3 volume (``tomosynth.sizing.bone_context_voxels``:
a block of ROIs and its widest halo) times the measured working memory per context voxel
(a volume below that size is one context), plus the Minkowski tile at width W. Run time:
the child's CPU seconds (user + system: robust on a shared machine, unlike the wall time,
which is printed too) per megavoxel of each of LR, SR and HR, of the largest size (the
most blocks away from the volume's faces), times 3 W^3.

    python benchmarks/bench_bone_memory.py --sizes 128 256 [--roi 32] [--width 2048]
    python benchmarks/bench_bone_memory.py --sizes 128 --workers 1 2 --block 64 --no-projection

One thread per process (OMP_NUM_THREADS=1). ``--workers`` runs the same volume with each
count of worker processes (``evaluate_sr_volume(workers=...)``): wall time, CPU time of the
parent plus its workers (``RUSAGE_CHILDREN``), the parent's peak RSS and the largest
worker's (``RUSAGE_CHILDREN.ru_maxrss``), and the parent's own CPU time: over one process's
CPU time that is the serial share (Amdahl; ``bone_serial_fraction`` of
``tomosynth.sizing.COSTS``). "parent + workers" is the parent's peak plus
workers x the largest worker's, an upper bound of their sum (a worker's RSS counts the
pages it shares copy-on-write with the parent). ``--block`` sets the ROI block side, so a
small volume has several blocks to share out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys
from tomosynth.metrics.bone_tables import evaluate_sr_volume
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
workers, block = int(sys.argv[3]), int(sys.argv[4])
tables, _ = evaluate_sr_volume(
    sys.argv[1], voxel_um=10.0, roi_size=int(sys.argv[2]), workers=workers, block=block
)
use = resource.getrusage(resource.RUSAGE_SELF)
kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # the forked workers, once joined
cpu = use.ru_utime + use.ru_stime + kids.ru_utime + kids.ru_stime
print(json.dumps({"base_kb": base, "peak_kb": use.ru_maxrss, "child_peak_kb": kids.ru_maxrss,
                  "cpu_s": cpu, "parent_cpu_s": use.ru_utime + use.ru_stime,
                  "rows": len(tables["table"])}))
"""


def gyroid_slice(z: int, n: int, period: float = 24.0, phase: float = 0.0) -> np.ndarray:
    """One slice (n x n, float32 in [0, 1]) of a gyroid texture: plates and rods ~ period/3."""
    k = 2.0 * np.pi / period
    y, x = np.mgrid[:n, :n].astype(np.float64) * k
    zz = z * k + phase
    g = np.sin(x) * np.cos(y) + np.sin(y) * np.cos(zz) + np.sin(zz) * np.cos(x)
    return ((g + 1.5) / 3.0).clip(0, 1).astype(np.float32)


TILE_CHILD = r"""
import json, resource, sys
import numpy as np
from tomosynth.metrics.geometry import minkowski_3d
from tomosynth.sizing import minkowski_slab, minkowski_tile
w = int(sys.argv[1])
slab = minkowski_slab((w, w, w))
tile = minkowski_tile((w, w, w), slab)
rows = min(w, 2 * tile)
k = 2.0 * np.pi / 24.0  # the gyroid of gyroid_slice, `rows` rows only (small temporaries)
y, x = np.mgrid[:rows, :w].astype(np.float64) * k
mask = np.stack([
    np.sin(x) * np.cos(y) + np.sin(y) * np.cos(z * k) + np.sin(z * k) * np.cos(x) > 0.0
    for z in range(slab)
])
del y, x
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
minkowski_3d(mask, slab=slab, tile=tile)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"base_kb": base, "peak_kb": peak, "slab": slab, "tile": tile}))
"""


def measure_tile(width: int) -> dict:
    """Peak RSS above its own start (mask included) of Minkowski tiles at `width` columns."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", TILE_CHILD, str(width)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    res = json.loads(out.stdout.strip().splitlines()[-1])
    return {**res, "above_base_gb": (res["peak_kb"] - res["base_kb"]) * 1024.0 / 1e9}


def write_volume(folder: Path, n: int) -> None:
    """lr/, sr/, hr/ stacks of n slices of n x n, written 32 slices at a time."""
    from tomosynth.io import write_json, write_tiff_slices

    rng = np.random.default_rng(0)
    for kind, phase in (("hr", 0.0), ("sr", 0.15), ("lr", 0.3)):
        for z0 in range(0, n, 32):  # 32 slices at a time: no whole stack in memory
            block = np.stack([gyroid_slice(z, n, phase=phase) for z in range(z0, min(n, z0 + 32))])
            block += rng.normal(0, 0.03, block.shape).astype(np.float32)
            write_tiff_slices(folder / kind, np.clip(block, 0, 1), first_index=z0)
    write_json(folder / "meta.json", {"hr_voxel_um": 10.0})


def measure(n: int, roi: int, keep: Path | None, workers=(1,), block: int = 128) -> list[dict]:
    """Peak RSS, wall and CPU time of evaluate_sr_volume on an n^3 volume (a fresh process
    per worker count, the same volume)."""
    with tempfile.TemporaryDirectory(dir=keep) as tmp:
        folder = Path(tmp) / f"vol{n}"
        write_volume(folder, n)
        return [run_child(folder, n, roi, w, block) for w in workers]


def run_child(folder: Path, n: int, roi: int, workers: int, block: int) -> dict:
    """One evaluate_sr_volume run in a fresh process (see :func:`measure`)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder), str(roi), str(workers), str(block)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - t0
    res = json.loads(out.stdout.strip().splitlines()[-1])
    voxels = n**3
    peak = res["peak_kb"] * 1024.0
    child = res["child_peak_kb"] * 1024.0 if workers > 1 else 0.0
    return {
        "size": n,
        "workers": workers,
        "block": block,
        # parent's peak + workers x the largest worker's peak: an upper bound of the sum
        # (each worker's RSS counts the pages it shares copy-on-write with the parent)
        "child_peak_gb": child / 1e9,
        "sum_peak_bound_gb": (peak + workers * child) / 1e9 if workers > 1 else peak / 1e9,
        "voxels": voxels,
        "peak_gb": peak / 1e9,
        "base_gb": res["base_kb"] * 1024.0 / 1e9,
        "bytes_per_voxel": peak / voxels,
        "above_base_bytes_per_voxel": (peak - res["base_kb"] * 1024.0) / voxels,
        "context_voxels": run_context_voxels(n, roi, block),
        "wall_s": wall,
        "cpu_s": res["cpu_s"],
        # with workers, what the parent itself ran: the serial part (plus the pool's upkeep)
        "parent_cpu_s": res["parent_cpu_s"],
        # per megavoxel of one volume (LR, SR and HR are measured: 3 volumes), the
        # unit of tomosynth.sizing.COSTS["bone_s_per_mvoxel"]
        "cpu_s_per_mvoxel": res["cpu_s"] / (3 * voxels / 1e6),
    }


def run_context_voxels(n: int, roi: int, block: int = 128) -> int:
    """Voxels of the largest local-thickness context of an n^3 run with the first halo
    (``tomosynth.metrics.bone.HALO``; the gyroid's thickest structure, ~12 voxels, needs no
    wider one): its block of ROIs plus the halo, clipped to the volume, plus 1 voxel of
    padding per face. The per-context-voxel figure divides by this, not by the bound of
    ``bone_context_voxels`` (widest halo), which the run does not reach."""
    from tomosynth.metrics.bone import HALO, roi_blocks, split_rois

    best = 0
    for box, _ in roi_blocks(split_rois((n, n, n), roi), block):
        sides = [min(n, b.stop + HALO) - max(0, b.start - HALO) + 2 for b in box]
        best = max(best, sides[0] * sides[1] * sides[2])
    return best


def project(rows: list[dict], tile: dict, width: int) -> dict:
    """Peak at width^3 from the measured parts (see the module docstring): the working
    memory above imports and mask per voxel of the largest thickness context of each run
    (:func:`run_context_voxels`), the largest such figure times the largest context a
    width^3 volume can have (``bone_context_voxels``: widest halo), summed with the tile
    (a bound: they do not coexist)."""
    from tomosynth.sizing import bone_context_voxels

    base = max(r["base_gb"] for r in rows) * 1e9
    per_ctx = max(
        ((r["peak_gb"] - r["base_gb"]) * 1e9 - r["voxels"]) / r["context_voxels"] for r in rows
    )
    ctx = per_ctx * bone_context_voxels((width,) * 3)
    tile_b = tile["above_base_gb"] * 1e9
    peak = base + float(width) ** 3 + ctx + tile_b
    largest = max(rows, key=lambda r: r["size"])  # most blocks away from the volume's faces
    return {
        "width": width,
        "s_per_mvoxel": largest["cpu_s_per_mvoxel"],
        "projected_cpu_h": largest["cpu_s_per_mvoxel"] * 3 * float(width) ** 3 / 1e6 / 3600,
        "imports_gb": base / 1e9,
        "mask_gb": float(width) ** 3 / 1e9,
        "context_bytes_per_voxel": per_ctx,
        "context_gb": ctx / 1e9,
        "minkowski_tile_gb": tile_b / 1e9,
        "projected_peak_gb": peak / 1e9,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--roi", type=int, default=32)
    ap.add_argument("--width", type=int, default=2048, help="projection to width^3")
    ap.add_argument("--keep", type=Path, default=None, help="folder for the temporary volumes")
    ap.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1],
        help="worker processes (one run each, same volume); wall, CPU of parent + workers",
    )
    ap.add_argument("--block", type=int, default=128, help="ROI block side (voxels)")
    ap.add_argument("--no-projection", action="store_true", help="skip the tile and projection")
    args = ap.parse_args()
    rows = []
    for n in args.sizes:
        for r in measure(n, args.roi, args.keep, args.workers, args.block):
            rows.append(r)
            print(
                f"{n}^3, {r['workers']} worker(s), block {r['block']}: peak "
                f"{r['peak_gb']:.3f} GB ({r['bytes_per_voxel']:.1f} B/voxel; imports "
                f"{r['base_gb']:.3f} GB; largest worker {r['child_peak_gb']:.3f} GB, parent + "
                f"workers <= {r['sum_peak_bound_gb']:.3f} GB), {r['wall_s']:.1f} s wall, "
                f"{r['cpu_s']:.1f} s CPU ({r['cpu_s_per_mvoxel']:.1f} s per megavoxel of each "
                f"of LR, SR and HR; the parent's own {r['parent_cpu_s']:.1f} s)",
                flush=True,
            )
        one = [r for r in rows if r["size"] == n and r["workers"] == 1]
        for r in (r for r in rows if r["size"] == n and r["workers"] > 1 and one):
            print(
                f"{n}^3, {r['workers']} workers: serial share (the parent's CPU over one "
                f"process's) {r['parent_cpu_s'] / one[0]['cpu_s']:.3f}; speed-up "
                f"{one[0]['wall_s'] / r['wall_s']:.2f}x",
                flush=True,
            )
    if args.no_projection:
        print(json.dumps({"sizes": rows}, indent=1))
        return
    rows = [r for r in rows if r["workers"] == 1] or rows
    tile = measure_tile(args.width)
    print(
        f"Minkowski tile at width {args.width} ({tile['slab']} slices x {tile['tile']} rows): "
        f"{tile['above_base_gb']:.3f} GB above its start",
        flush=True,
    )
    proj = project(rows, tile, args.width)
    print(
        f"{args.width}^3 -> {proj['projected_peak_gb']:.2f} GB = imports "
        f"{proj['imports_gb']:.2f} + mask {proj['mask_gb']:.2f} + thickness context "
        f"{proj['context_gb']:.2f} ({proj['context_bytes_per_voxel']:.0f} B/voxel) + "
        f"Minkowski tile {proj['minkowski_tile_gb']:.2f}; CPU time "
        f"{proj['projected_cpu_h']:.1f} h at {proj['s_per_mvoxel']:.1f} s per megavoxel "
        f"(the {max(args.sizes)}^3 run's)"
    )
    print(json.dumps({"sizes": rows, "tile": tile, "projection": proj}, indent=1))


if __name__ == "__main__":
    main()

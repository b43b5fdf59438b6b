"""Peak memory of compute_bone_metrics (tomosynth.metrics.bone.evaluate_sr_volume) by size.

For each size N an SR volume folder (lr/, sr/, hr/ float32 TIFF stacks of N^3, a gyroid
trabecular texture of period 24 voxels; SR and LR perturbed) is written slice by slice, and
``evaluate_sr_volume`` runs on it in a fresh Python process that reports its own peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) and its RSS after the imports. The peak is
then fitted as ``fixed + bytes_per_voxel x N^3`` (least squares), the form of the bone entry
of ``tomosynth.sizing.COSTS``.

    python benchmarks/bench_bone_memory.py --sizes 64 96 128 [--roi 32] [--keep DIR]

Single-threaded (OMP_NUM_THREADS=1); each size takes about 3 x 15 s per megavoxel on one
idle core.
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
from tomosynth.metrics.bone import evaluate_sr_volume
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tables, _ = evaluate_sr_volume(sys.argv[1], voxel_um=10.0, roi_size=int(sys.argv[2]))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"base_kb": base, "peak_kb": peak, "rows": len(tables["table"])}))
"""


def gyroid_slice(z: int, n: int, period: float = 24.0, phase: float = 0.0) -> np.ndarray:
    """One slice (n x n, float32 in [0, 1]) of a gyroid texture: plates and rods ~ period/3."""
    k = 2.0 * np.pi / period
    y, x = np.mgrid[:n, :n].astype(np.float64) * k
    zz = z * k + phase
    g = np.sin(x) * np.cos(y) + np.sin(y) * np.cos(zz) + np.sin(zz) * np.cos(x)
    return ((g + 1.5) / 3.0).clip(0, 1).astype(np.float32)


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


def measure(n: int, roi: int, keep: Path | None) -> dict:
    """Peak RSS of one evaluate_sr_volume run on an n^3 volume (fresh process)."""
    with tempfile.TemporaryDirectory(dir=keep) as tmp:
        folder = Path(tmp) / f"vol{n}"
        write_volume(folder, n)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(folder), str(roi)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        wall = time.perf_counter() - t0
    res = json.loads(out.stdout.strip().splitlines()[-1])
    voxels = n**3
    peak = res["peak_kb"] * 1024.0
    return {
        "size": n,
        "voxels": voxels,
        "peak_gb": peak / 1e9,
        "base_gb": res["base_kb"] * 1024.0 / 1e9,
        "bytes_per_voxel": peak / voxels,
        "above_base_bytes_per_voxel": (peak - res["base_kb"] * 1024.0) / voxels,
        "wall_s": wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--roi", type=int, default=32)
    ap.add_argument("--keep", type=Path, default=None, help="folder for the temporary volumes")
    args = ap.parse_args()
    rows = []
    for n in args.sizes:
        rows.append(measure(n, args.roi, args.keep))
        r = rows[-1]
        print(
            f"{n}^3: peak {r['peak_gb']:.3f} GB ({r['bytes_per_voxel']:.1f} B/voxel; "
            f"imports {r['base_gb']:.3f} GB), {r['wall_s']:.0f} s",
            flush=True,
        )
    if len(rows) >= 2:
        v = np.array([r["voxels"] for r in rows], dtype=np.float64)
        p = np.array([r["peak_gb"] * 1e9 for r in rows])
        slope, fixed = np.polyfit(v, p, 1)
        print(f"fit: peak = {fixed / 1e6:.0f} MB + {slope:.2f} B/voxel x voxels")
        print(f"     2048^3 -> {(fixed + slope * 2048**3) / 1e9:.1f} GB")
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

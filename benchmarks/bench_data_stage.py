"""Data stage (reconstruct, clip_bounds, export_png) on a full-width slab of a synthetic scan.

A Tomobank-sized scan has 1,500 angles x 2,048 rows x 2,048 columns. This writes a slab of
it (all 1,500 angles and 2,048 columns, `--rows` detector rows; the default 64) as a DXchange
file, with analytic projections of an off-centre ellipse phantom (exact line integrals, no
simulation cost), flat/dark fields and Poisson noise, then runs each stage in its own process
and reports wall time and peak RSS, and their extrapolation to the full 2,048 rows (or
`--full-rows`): reconstruction, clip and export scale with the number of rows/slices; their
peak memory is bounded by the chunk (reconstruction) or the slices in flight (clip, export)
and does not grow with the scan.

    python benchmarks/bench_data_stage.py --backend torch --rows 64 --out res.json

`--backend` is passed to ``reconstruct_scan`` (auto, torch, astra, tomopy, or any backend
the installed tomosynth adds); `--device cuda` runs the torch FBP on a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# (centre x, centre y, semi-axis a, semi-axis b, rotation rad, attenuation per pixel):
# an asymmetric phantom inside a 2,048-pixel field of view.
ELLIPSES = [
    (0.0, 0.0, 900.0, 820.0, 0.0, 2e-4),
    (210.0, -130.0, 300.0, 160.0, 0.5, 6e-4),
    (-350.0, 260.0, 120.0, 220.0, -0.3, -1e-4),
    (400.0, 380.0, 60.0, 60.0, 0.0, 1.5e-3),
]


def ellipse_projections(theta: np.ndarray, columns: int, row_scale: float) -> np.ndarray:
    """Exact parallel-beam line integrals (angles, columns) of :data:`ELLIPSES`."""
    s = np.arange(columns) - (columns - 1) / 2.0
    out = np.zeros((len(theta), columns))
    for x0, y0, a, b, phi, mu in ELLIPSES:
        a, b = a * row_scale, b * row_scale
        t = theta[:, None] - phi
        r2 = (a * np.cos(t)) ** 2 + (b * np.sin(t)) ** 2
        shift = x0 * np.cos(theta[:, None]) + y0 * np.sin(theta[:, None])
        d2 = r2 - (s[None, :] - shift) ** 2
        out += np.where(d2 > 0, 2 * mu * a * b * np.sqrt(np.clip(d2, 0, None)) / r2, 0.0)
    return out


def write_scan(path: Path, angles: int, rows: int, columns: int, seed: int = 0) -> None:
    from tomosynth.io import write_dxchange

    rng = np.random.default_rng(seed)
    theta = np.linspace(0, np.pi, angles, endpoint=False)
    flat_counts, dark_counts = 20000.0, 100.0
    data = np.empty((angles, rows, columns), dtype=np.uint16)
    for r in range(rows):
        p = ellipse_projections(theta, columns, 1.0 - 0.1 * r / max(rows, 1))
        data[:, r, :] = np.clip(rng.poisson(flat_counts * np.exp(-p)) + dark_counts, 0, 65535)
    flat = (rng.poisson(flat_counts, (8, rows, columns)) + dark_counts).astype(np.uint16)
    dark = rng.poisson(dark_counts, (8, rows, columns)).astype(np.uint16)
    write_dxchange(path, data, flat, dark, theta)


def run_stage(stage: str, work: Path, args: argparse.Namespace) -> dict:
    """Run one stage in this process and return its wall time and this process's peak RSS."""
    from tomosynth import preprocess, recon

    t0 = time.perf_counter()
    if stage == "reconstruct":
        recon.reconstruct_scan(
            work / "scan.h5",
            work / "recon",
            backend=args.backend,
            center=args.center if args.center == "auto" else float(args.center),
            chunk_rows=args.chunk_rows,
            device=args.device,
        )
    elif stage == "clip_bounds":
        preprocess.compute_bounds(
            work / "recon", work / "bounds.json", skip_slices=0, percentiles=(1, 99),
            threads=args.threads,
        )  # fmt: skip
    else:
        size = int(stage.split("_")[-1])
        preprocess.export_png(
            work / "recon", work / "bounds.json", work / f"png{size}", size=size, skip_slices=0,
            threads=args.threads,
        )  # fmt: skip
    seconds = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"stage": stage, "seconds": seconds, "peak_rss_mb": peak_mb}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="auto", help="reconstruction backend")
    ap.add_argument("--device", default="auto", help="torch device of the torch backend")
    ap.add_argument("--angles", type=int, default=1500)
    ap.add_argument("--rows", type=int, default=64, help="detector rows of the slab")
    ap.add_argument("--columns", type=int, default=2048)
    ap.add_argument("--full-rows", type=int, default=2048, help="rows of the full scan")
    ap.add_argument("--chunk-rows", type=int, default=16)
    ap.add_argument("--center", default="auto", help="centre of rotation or auto")
    ap.add_argument("--threads", type=int, default=4, help="clip/export threads")
    ap.add_argument("--sizes", default="64,256")
    ap.add_argument("--out", help="write the results as JSON here")
    ap.add_argument("--stage", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stage:  # child process: one stage, result as the last stdout line
        print(json.dumps(run_stage(args.stage, Path(args.work), args)))
        return

    import torch

    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        write_scan(work / "scan.h5", args.angles, args.rows, args.columns)
        print(f"synthetic slab written in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        stages = ["reconstruct", "clip_bounds"] + [f"export_{s}" for s in args.sizes.split(",")]
        results = []
        for stage in stages:
            cmd = [sys.executable, __file__, *sys.argv[1:], "--stage", stage, "--work", tmp]
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
            if proc.returncode != 0:
                sys.exit(f"{stage} failed:\n{proc.stderr[-3000:]}")
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            scale = args.full_rows / args.rows
            res["full_scan_seconds"] = res["seconds"] * scale
            results.append(res)
            print(
                f"{stage:12s} {res['seconds']:8.1f} s  peak RSS {res['peak_rss_mb']:7.0f} MB  "
                f"-> full scan ({args.full_rows} rows) ~{res['full_scan_seconds'] / 60:.1f} min",
                file=sys.stderr,
            )
    report = {
        "angles": args.angles,
        "rows": args.rows,
        "columns": args.columns,
        "full_rows": args.full_rows,
        "backend": args.backend,
        "device": args.device,
        "cuda": torch.cuda.is_available(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "chunk_rows": args.chunk_rows,
        "threads": args.threads,
        "stages": results,
    }
    print(json.dumps(report, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

# SPDX-License-Identifier: BSD-3-Clause
"""Reconstruction speed and memory: torch FBP vs scikit-image iradon (and astra, tomopy).

Usage::

    .venv/bin/python benchmarks/bench_recon.py                # small defaults, ~1 min on 2 cores
    .venv/bin/python benchmarks/bench_recon.py --size 512 --slices 16 --threads 8

Part 1 reconstructs the SAME sinograms (a Shepp-Logan phantom forward-projected by
`tomosynth.recon.forward_project`) with every available backend and prints slices/s and the
speed ratio to scikit-image's ``iradon``. Part 2 runs `reconstruct_scan` on one chunk of a
synthetic DXchange scan `--big-cols` pixels wide in a fresh subprocess and prints the growth
of its peak resident memory (Linux ``VmHWM``, reset after the imports, minus ``VmRSS``
before the call) next to the bound stated in `reconstruct_scan`'s docstring.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _phantom_sinograms(size: int, n_angles: int, n_slices: int) -> tuple[np.ndarray, np.ndarray]:
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    from tomosynth.recon import forward_project

    img = resize(shepp_logan_phantom(), (size, size), anti_aliasing=True).astype(np.float32)
    vol = np.stack([np.roll(img, k, axis=0) for k in range(n_slices)])
    theta = np.linspace(0.0, np.pi, n_angles, endpoint=False)
    return forward_project(vol, theta, device="cpu"), theta


def _time(fn, repeat: int) -> float:
    """Best wall time of `repeat` runs in seconds (the first run also warms caches)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_speed(args: argparse.Namespace) -> list[dict]:
    import torch
    from skimage.transform import iradon

    from tomosynth import recon

    sino, theta = _phantom_sinograms(args.size, args.angles, args.slices)
    theta_deg = np.rad2deg(theta)
    rows: list[dict] = []

    def iradon_all() -> None:
        for r in range(sino.shape[1]):
            iradon(sino[:, r, :].T, theta_deg, filter_name="ramp", circle=False)

    cases = [("scikit-image iradon (ramp)", iradon_all)]
    cases.append(("tomosynth torch FBP, cpu", lambda: recon.fbp(sino, theta, device="cpu")))
    if torch.cuda.is_available():

        def torch_cuda() -> None:
            recon.fbp(sino, theta, device="cuda")
            torch.cuda.synchronize()

        cases.append(("tomosynth torch FBP, cuda", torch_cuda))
    try:
        import astra  # noqa: F401

        cases.append(("astra-toolbox CPU FBP", lambda: recon.fbp(sino, theta, backend="astra")))
    except ImportError:
        print("astra-toolbox not installed: skipped", file=sys.stderr)
    if recon.tomopy_available():
        cases.append(("tomopy gridrec", lambda: recon.fbp(sino, theta, backend="tomopy")))
    else:
        print("tomopy not installed: skipped", file=sys.stderr)

    for name, fn in cases:
        seconds = _time(fn, args.repeat)
        rows.append({"method": name, "seconds": seconds, "slices_per_s": args.slices / seconds})
    base = rows[0]["slices_per_s"]
    for row in rows:
        row["vs_iradon"] = row["slices_per_s"] / base
    return rows


_MEMORY_CHILD = r"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import torch
torch.set_num_threads(int(sys.argv[4]))
from tomosynth import recon  # every import done before the baseline

def status_mb(key):  # Linux /proc: VmRSS now, VmHWM = peak since exec or the last reset
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024.0

before = status_mb("VmRSS")
Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
t0 = time.perf_counter()
meta = recon.reconstruct_scan(sys.argv[2], sys.argv[3], backend="torch",
                              center=None, chunk_rows=int(sys.argv[5]), device="cpu")
seconds = time.perf_counter() - t0
peak = status_mb("VmHWM")
print(json.dumps({"delta_mb": peak - before, "before_mb": before, "peak_mb": peak,
                  "seconds": seconds, "bound_mb": meta["memory_bound_mb"]}))
"""


def _write_big_scan(path: Path, cols: int, angles: int, rows: int) -> None:
    """A cylinder-like scan with Poisson counts (cheap: no 2D forward projection)."""
    from tomosynth.io import write_dxchange

    rng = np.random.default_rng(0)
    theta = np.linspace(0.0, np.pi, angles, endpoint=False)
    s = np.arange(cols) + 0.5 - cols / 2
    line = 2e-3 * np.sqrt(np.clip((0.4 * cols) ** 2 - s**2, 0, None))
    counts = np.broadcast_to(100 + 3900 * np.exp(-line), (angles, rows, cols))
    write_dxchange(
        path,
        rng.poisson(counts).astype(np.uint16),
        rng.poisson(np.full((4, rows, cols), 4000.0)).astype(np.uint16),
        rng.poisson(np.full((2, rows, cols), 100.0)).astype(np.uint16),
        theta,
    )


def bench_memory(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        scan = Path(tmp) / "big.h5"
        _write_big_scan(scan, args.big_cols, args.big_angles, args.big_rows)
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                _MEMORY_CHILD,
                str(ROOT),
                str(scan),
                str(Path(tmp) / "out"),
                str(args.threads),
                str(args.big_rows),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256, help="detector width = slice size (px)")
    parser.add_argument("--angles", type=int, default=180, help="projections over 180 degrees")
    parser.add_argument("--slices", type=int, default=8, help="sinogram rows reconstructed")
    parser.add_argument("--repeat", type=int, default=2, help="runs per method (best kept)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--big-cols", type=int, default=2048, help="memory test: detector width")
    parser.add_argument("--big-angles", type=int, default=32, help="memory test: projections")
    parser.add_argument("--big-rows", type=int, default=4, help="memory test: rows in the chunk")
    parser.add_argument("--skip-memory", action="store_true", help="only the speed table")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    print(
        f"# speed: {args.slices} slices of {args.size} x {args.size} px from {args.angles} "
        f"projections, ram-lak, torch threads={args.threads}, best of {args.repeat}"
    )
    rows = bench_speed(args)
    print(f"| {'method':<30} | {'seconds':>8} | {'slices/s':>9} | {'vs iradon':>9} |")
    print(f"|{'-' * 32}|{'-' * 10}|{'-' * 11}|{'-' * 11}|")
    for r in rows:
        print(
            f"| {r['method']:<30} | {r['seconds']:8.3f} | {r['slices_per_s']:9.2f} | "
            f"{r['vs_iradon']:8.2f}x |"
        )
    if args.skip_memory:
        return
    print(
        f"\n# peak memory: reconstruct_scan of one chunk of {args.big_rows} rows x "
        f"{args.big_cols} columns, {args.big_angles} projections (torch, cpu)"
    )
    mem = bench_memory(args)
    output_mb = args.big_rows * args.big_cols**2 * 4 / 2**20
    print(f"| {'quantity':<44} | {'MB':>8} |")
    print(f"|{'-' * 46}|{'-' * 10}|")
    print(f"| {'peak RSS growth during reconstruct_scan':<44} | {mem['delta_mb']:8.1f} |")
    print(f"| {'bound from reconstruct_scan (recon.json)':<44} | {mem['bound_mb']:8.1f} |")
    print(f"| {'output slices alone (rows * cols^2 * 4 B)':<44} | {output_mb:8.1f} |")
    print(f"| {'baseline RSS after imports':<44} | {mem['before_mb']:8.1f} |")
    print(f"wall time of the chunk: {mem['seconds']:.1f} s")


if __name__ == "__main__":
    main()

# SPDX-License-Identifier: BSD-3-Clause
"""Reconstruction speed and memory against peers, equal work, side by side.

Usage::

    .venv/bin/python benchmarks/bench_recon.py --quick             # small, ~1 min on 2 cores
    .venv/bin/python benchmarks/bench_recon.py --sizes 512x720,2048x1500 --rows 16
    .venv/bin/python benchmarks/bench_recon.py --only gridrec,fourier --gridrec-src ~/tomopy
    .venv/bin/python benchmarks/bench_recon.py --memory            # peak RSS vs the bound
    .venv/bin/python benchmarks/bench_recon.py --device cuda       # GPU slices/s, peak memory
    .venv/bin/python benchmarks/bench_recon.py --end-to-end --sizes 2048x1500 --rows 32

Speed: every method reconstructs the SAME sinograms (exact projections of a few
off-centre discs, ``--rows`` detector rows, ``N x N`` slices from ``A`` angles over 180
degrees) into ``N x N`` images (no circle mask, plain ramp filter) with the same number of
CPU threads (``--threads``): scikit-image ``iradon`` (``output_size=N``), algotom
``fbp_reconstruction`` and ``dfi_reconstruction`` (numba threads = ``--threads``) when
importable, tomopy gridrec when importable, and every backend of
`tomosynth.recon.BACKENDS` but ``auto`` (astra's is astra-toolbox's CPU FBP). Where tomopy
is not importable, gridrec is tomopy's C code built here from ``--gridrec-src`` (or
``$TOMOSYNTH_GRIDREC_SRC``) by benchmarks/gridrec_build.py. Methods run interleaved, best
of ``--repeat - 1`` rounds after a warm-up. It prints slices/s and the ratios to gridrec,
algotom's FBP and ``iradon``.

Memory (``--memory``): `reconstruct_scan` (torch, CPU, ``chunk_rows=16``) of a synthetic
uint16 DXchange scan 2048 wide with 1,500 angles and ``--memory-rows`` rows, in a fresh
subprocess; prints the growth of its peak resident memory (Linux ``VmHWM`` reset after the
imports, minus ``VmRSS`` before the call) next to `recon_memory_bound_mb`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "benchmarks"):  # tomosynth; gridrec_build beside this file
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

# discs (x, y, radius as fractions of the half-width; attenuation per pixel)
_DISCS = ((0.0, 0.0, 0.8, 0.01), (0.3, 0.35, 0.2, 0.02), (-0.4, -0.1, 0.12, 0.03))


def disc_sinograms(n: int, n_angles: int, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact parallel projections ``(angles, rows, n)`` of off-centre discs (cheap at 2048)."""
    theta = np.linspace(0.0, np.pi, n_angles, endpoint=False)
    s = np.arange(n) + 0.5 - n / 2.0
    half = n / 2.0
    sino = np.zeros((n_angles, n), np.float64)
    for x0, y0, r, mu in _DISCS:
        off = half * (x0 * np.cos(theta) + y0 * np.sin(theta))  # s = x cos + y sin
        chord = (half * r) ** 2 - (s[None, :] - off[:, None]) ** 2
        sino += 2.0 * mu * np.sqrt(np.clip(chord, 0.0, None))
    out = np.repeat(sino.astype(np.float32)[:, None, :], n_rows, axis=1)
    return np.ascontiguousarray(out), theta


def _time(fn: Callable[[], object], repeat: int) -> float:
    """Best wall time of `repeat` runs in seconds."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


#: the gridrec peer built from source when tomopy is not importable (one build per run)
_GRIDREC: dict = {}


def _gridrec_case(
    sino: np.ndarray, theta: np.ndarray, threads: int, src: str | None
) -> Callable[[], None] | None:
    """tomopy gridrec (ramlak, ``ncore=threads``): tomopy's when importable, else its C
    code built here by `gridrec_build` from `src`; None (with a note) when neither works."""
    try:
        import tomopy

        _GRIDREC.setdefault("build", f"tomopy {tomopy.__version__} (installed)")
        return lambda: tomopy.recon(
            sino, theta, algorithm="gridrec", filter_name="ramlak", ncore=threads
        )
    except ImportError:
        pass
    from gridrec_build import Gridrec, GridrecUnavailable

    if "fn" not in _GRIDREC:
        try:
            _GRIDREC["fn"] = Gridrec(src)
            _GRIDREC["build"] = _GRIDREC["fn"].build
            print(f"gridrec built: {_GRIDREC['build']}", file=sys.stderr)
        except GridrecUnavailable as exc:
            _GRIDREC["fn"] = None
            print(f"tomopy not importable and gridrec not built ({exc})", file=sys.stderr)
    fn = _GRIDREC["fn"]
    return None if fn is None else lambda: fn(sino, theta, filter_name="ramlak", threads=threads)


def speed_cases(
    sino: np.ndarray,
    theta: np.ndarray,
    threads: int,
    slice_rows: int,
    gridrec_src: str | None = None,
) -> list[tuple[str, Callable, int]]:
    """(name, callable, slices done) for every method available here.

    Methods that take one slice at a time (iradon, algotom, astra) do the first
    `slice_rows` rows (their cost is linear in the rows); the others take all rows of
    `sino` at once, as `reconstruct_scan` hands them a chunk.
    """
    from skimage.transform import iradon

    from tomosynth import recon

    n_angles, n_rows, n = sino.shape
    deg = np.rad2deg(theta)
    k = max(1, min(n_rows, slice_rows))
    cases: list[tuple[str, Callable, int]] = []

    def per_row(fn: Callable[[np.ndarray], object]) -> Callable[[], None]:
        return lambda: [fn(np.ascontiguousarray(sino[:, r, :])) for r in range(k)]

    def skimage_iradon(s: np.ndarray) -> np.ndarray:
        return iradon(s.T, deg, output_size=n, filter_name="ramp", circle=False)

    cases.append(("scikit-image iradon", per_row(skimage_iradon), k))
    try:
        import numba
        from algotom.rec.reconstruction import dfi_reconstruction, fbp_reconstruction

        numba.set_num_threads(threads)
        centre = n / 2.0 - 0.5  # algotom counts the axis from the first pixel's centre
        kw = dict(angles=theta, filter_name=None, apply_log=False, ratio=1.0)

        def algotom_fbp(s: np.ndarray) -> np.ndarray:
            return fbp_reconstruction(s, centre, gpu=False, ncore=threads, **kw)

        def algotom_dfi(s: np.ndarray) -> np.ndarray:
            return dfi_reconstruction(s, centre, ncore=threads, **kw)

        cases.append(("algotom fbp_reconstruction", per_row(algotom_fbp), k))
        cases.append(("algotom dfi_reconstruction", per_row(algotom_dfi), k))
    except ImportError:
        print("algotom not installed (pip install 'tomosynth[bench]'): skipped", file=sys.stderr)
    gridrec = _gridrec_case(sino, theta, threads, gridrec_src)
    if gridrec is not None:
        cases.append(("tomopy gridrec", gridrec, n_rows))
    for backend in recon.BACKENDS:
        if backend in ("auto", "tomopy"):
            continue  # auto is one of the others; tomopy is timed above with ncore
        if backend == "astra":  # astra's CPU FBP, slice by slice inside recon.fbp

            def astra_fbp() -> None:
                recon.fbp(sino[:, :k], theta, backend="astra")

            cases.append(("astra-toolbox CPU FBP", astra_fbp, k))
            continue

        def run(backend: str = backend) -> None:
            recon.fbp(sino, theta, backend=backend, device="cpu", threads=threads)

        cases.append((f"tomosynth {backend}", run, n_rows))
        if backend == "fourier":  # its other CPU engine (no cached matrix: less memory)

            def finufft_engine() -> None:
                recon._fbp_fourier(sino, theta, n / 2.0, "ramlak", "cpu", threads=threads,
                                   engine="finufft")  # fmt: skip

            cases.append(("tomosynth fourier (finufft)", finufft_engine, n_rows))
    return cases


def bench_speed(
    n: int,
    n_angles: int,
    rows: int,
    threads: int,
    repeat: int,
    slice_rows: int,
    only: list[str] | None = None,
    gridrec_src: str | None = None,
) -> list[dict]:
    """Slices/s of every method (or those whose name contains one of `only`): one
    warm-up each, then `repeat - 1` rounds in which every method runs once in turn
    (interleaved, so a change of load hits all alike); the best round counts."""
    from tomosynth.errors import ConfigError

    sino, theta = disc_sinograms(n, n_angles, rows)
    cases = [
        c
        for c in speed_cases(sino, theta, threads, slice_rows, gridrec_src)
        if not only or any(o in c[0] for o in only)
    ]
    best: dict[str, float] = {}
    for name, fn, _ in cases:
        try:
            if repeat > 1:
                fn()  # warm-up (numba compilation, FFT plans)
            best[name] = float("inf")
        except (ConfigError, ImportError) as exc:
            print(f"{name}: skipped ({exc})", file=sys.stderr)
    for _ in range(max(1, repeat - 1)):
        for name, fn, _ in cases:
            if name in best:
                best[name] = min(best[name], _time(fn, 1))
    out: list[dict] = []
    for name, _, done in cases:
        if name in best:
            sps = done / best[name]
            out.append({"method": name, "seconds": best[name], "slices": done, "slices_per_s": sps})
            print(f"  {name}: {sps:.4g} slices/s", file=sys.stderr, flush=True)
    ref = {r["method"]: r["slices_per_s"] for r in out}
    for r in out:
        for key, peer in (
            ("vs_algotom_fbp", "algotom fbp_reconstruction"),
            ("vs_iradon", "scikit-image iradon"),
            ("vs_gridrec", "tomopy gridrec"),
        ):
            r[key] = r["slices_per_s"] / ref[peer] if peer in ref else float("nan")
    return out


#: tomopy gridrec slices/s recorded in issue 25 (tomopy's source/libtomo/gridrec built with
#: gcc -O3 -march=native, fftw3f, TOMOPY_USE_FFTW; idle 2-core machine, load 1-2), keyed by
#: (width, angles, threads). Printed for reference where tomopy is not importable: these are
#: NOT side-by-side measurements.
RECORDED_GRIDREC = {
    (512, 720, 1): 110.9,
    (512, 720, 2): 205.0,
    (2048, 1500, 1): 5.61,
    (2048, 1500, 2): 11.46,
}


def print_speed(n: int, n_angles: int, threads: int, table: list[dict]) -> None:
    print(f"\n# {n} x {n} px slices from {n_angles} angles, plain ramp, {threads} thread(s)")
    if "build" in _GRIDREC:
        print(f"# gridrec: {_GRIDREC['build']}")
    print(
        f"| {'method':<28} | {'slices':>6} | {'slices/s':>9} | {'vs gridrec':>10} | "
        f"{'vs algotom FBP':>14} | {'vs iradon':>9} |"
    )
    print(f"|{'-' * 30}|{'-' * 8}|{'-' * 11}|{'-' * 12}|{'-' * 16}|{'-' * 11}|")
    for r in table:
        print(
            f"| {r['method']:<28} | {r['slices']:6d} | {r['slices_per_s']:9.4g} | "
            f"{r['vs_gridrec']:9.2f}x | {r['vs_algotom_fbp']:13.2f}x | {r['vs_iradon']:8.2f}x |"
        )
    rates = {r["method"]: r["slices_per_s"] for r in table}
    recorded = RECORDED_GRIDREC.get((n, n_angles, threads))
    if "tomopy gridrec" not in rates and recorded and "tomosynth fourier" in rates:
        print(
            f"gridrec neither importable nor built: gridrec column from the recorded run "
            f"(issue 25, idle): {recorded} slices/s; tomosynth fourier here / recorded gridrec = "
            f"{rates['tomosynth fourier'] / recorded:.2f}x (not side by side: compare loads)"
        )


_MEMORY_CHILD = r"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import torch
torch.set_num_threads(int(sys.argv[4]))
from tomosynth import recon  # every import done before the baseline
import tifffile, h5py, tqdm  # noqa: F401  (imported by reconstruct_scan)

def status_mb(key):  # Linux /proc: VmRSS now, VmHWM = peak since exec or the last reset
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024.0

before = status_mb("VmRSS")
Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
t0 = time.perf_counter()
meta = recon.reconstruct_scan(sys.argv[2], sys.argv[3], backend="torch", center=None,
                              chunk_rows=int(sys.argv[5]), device="cpu")
seconds = time.perf_counter() - t0
peak = status_mb("VmHWM")
print(json.dumps({"delta_mb": peak - before, "before_mb": before, "peak_mb": peak,
                  "seconds": seconds, "bound_mb": meta["memory_bound_mb"]}))
"""


def write_scan(path: Path, cols: int, angles: int, rows: int, gzip: bool = True) -> None:
    """uint16 Poisson counts of the disc phantom, 20 flats and 10 darks: gzip-compressed
    (`tomosynth.io.write_dxchange`), or uncompressed and contiguous as many beamlines
    write them (``gzip=False``, the same DXchange layout)."""
    from tomosynth.io import write_dxchange

    rng = np.random.default_rng(0)
    line, theta = disc_sinograms(cols, angles, 1)
    counts = 100.0 + 3900.0 * np.exp(-line)  # (angles, 1, cols)
    data = np.empty((angles, rows, cols), np.uint16)
    for r in range(rows):
        data[:, r : r + 1] = rng.poisson(counts)
    flat = rng.poisson(np.full((20, rows, cols), 4000.0)).astype(np.uint16)
    dark = rng.poisson(np.full((10, rows, cols), 100.0)).astype(np.uint16)
    write_dxchange(path, data, flat, dark, theta, compress=gzip)


def bench_memory(cols: int, angles: int, rows: int, chunk_rows: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        scan = Path(tmp) / "big.h5"
        write_scan(scan, cols, angles, rows)
        args = [str(ROOT), str(scan), str(Path(tmp) / "out"), str(threads), str(chunk_rows)]
        out = subprocess.run(
            [sys.executable, "-c", _MEMORY_CHILD, *args], check=True, capture_output=True, text=True
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_end_to_end(
    cols: int,
    angles: int,
    rows: int,
    threads: int,
    backend: str,
    device: str,
    repeat: int,
    chunk: int = 16,
    gzip: bool = True,
) -> dict:
    """`reconstruct_scan` (read, normalise, minus-log, backend, TIFF write; centre given)
    against the backend's kernel alone on the same pre-processed chunks of `chunk` rows:
    slices/s of both, best of `repeat` rounds that run each once (interleaved, so that
    load from other processes hits both alike)."""
    from tomosynth import recon
    from tomosynth.io import read_dxchange

    with tempfile.TemporaryDirectory() as tmp:
        scan = Path(tmp) / "scan.h5"
        write_scan(scan, cols, angles, rows, gzip)
        p = read_dxchange(scan)
        sino = recon._preprocess(p.data, p.flat, p.dark, "none", 11, threads)
        theta = np.asarray(p.theta)
        del p

        def kernel() -> None:
            for r0 in range(0, rows, chunk):
                recon.fbp(
                    sino[:, r0 : r0 + chunk],
                    theta,
                    cols / 2.0,
                    "ramlak",
                    backend,
                    device,
                    memory_budget_mb=2048 if device == "cuda" else 128,
                    threads=threads,
                )
            _sync(device)

        def end_to_end() -> None:
            out = Path(tmp) / f"out{time.perf_counter_ns()}"
            recon.reconstruct_scan(
                scan,
                out,
                backend=backend,
                center=cols / 2.0,
                chunk_rows=chunk,
                device=device,
                threads=threads,
                memory_budget_mb=2048 if device == "cuda" else 128,
            )
            _sync(device)

        kernel()  # warm-up: plans, CUDA context
        k = e = float("inf")
        for _ in range(repeat):
            k, e = min(k, _time(kernel, 1)), min(e, _time(end_to_end, 1))
    return {"kernel": rows / k, "end_to_end": rows / e, "ratio": k / e}


def bench_stages(cols: int, angles: int, rows: int, threads: int, repeat: int, gzip: bool) -> list:
    """Each step of one chunk of `reconstruct_scan`, alone, at 1 and at `threads` threads:
    ``(stage, wall ms/slice at 1, at threads, CPU ms/slice at threads, system share)``
    (best of `repeat`; CPU is the process's user + system time, so page faults and the
    kernel's file copies count)."""
    import os

    from tomosynth import recon
    from tomosynth.io import read_dxchange, write_tiff_slices
    from tomosynth.recon.prep import flat_minus_log

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        scan = Path(tmp) / "scan.h5"
        write_scan(scan, cols, angles, rows, gzip)
        p = read_dxchange(scan)
        sino = flat_minus_log(p.data, p.flat, p.dark, threads=threads)
        theta = np.asarray(p.theta)
        rec = recon.fbp(sino, theta, cols / 2.0, "ramlak", "fourier", "cpu", 128, threads=1)
        steps = {
            "read (inflate, checks)": lambda t: read_dxchange(scan, threads=t),
            "flat / dark, minus log": lambda t: flat_minus_log(p.data, p.flat, p.dark, threads=t),
            "fourier kernel": lambda t: recon.fbp(
                sino, theta, cols / 2.0, "ramlak", "fourier", "cpu", 128, threads=t
            ),
            "TIFF write + SHA-256": lambda t: write_tiff_slices(
                Path(tmp) / "tiff", rec, digests={}, threads=t
            ),
        }
        for name, step in steps.items():
            best = {}
            for t in (1, threads):
                for _ in range(repeat):
                    c0, w0 = os.times(), time.perf_counter()
                    step(t)
                    w, c1 = time.perf_counter() - w0, os.times()
                    cpu = c1.user - c0.user + c1.system - c0.system
                    sys_ = c1.system - c0.system
                    if w < best.get(t, (np.inf,))[0]:
                        best[t] = (w, cpu, sys_)
            w1, (wt, cpu, sys_) = best[1][0], best[threads]
            out.append((name, 1e3 * w1 / rows, 1e3 * wt / rows, 1e3 * cpu / rows, sys_ / cpu))
    return out


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def bench_cuda(n: int, n_angles: int, rows: int, repeat: int) -> None:
    """GPU slices/s at `n` x `n_angles`: kernel and end to end, peak GPU memory, and the
    projected time of an ``n``-slice volume (``n / end-to-end slices/s``)."""
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device here (nothing measured)")
    print(
        f"\n# CUDA ({torch.cuda.get_device_name()}): {rows} slices of {n} x {n}, {n_angles} angles"
    )
    print(
        f"| {'backend':<22} | {'kernel slices/s':>15} | {'end-to-end slices/s':>19} | "
        f"{'peak GPU MiB':>12} | {f'projected {n}^3 s':>16} |"
    )
    print(f"|{'-' * 24}|{'-' * 17}|{'-' * 21}|{'-' * 14}|{'-' * 18}|")
    for backend, label in (("fourier", "fourier (torch engine)"), ("torch", "torch FBP")):
        torch.cuda.reset_peak_memory_stats()
        r = bench_end_to_end(n, n_angles, rows, 1, backend, "cuda", repeat)
        peak = torch.cuda.max_memory_allocated() / 2**20
        print(
            f"| {label:<22} | {r['kernel']:15.4g} | {r['end_to_end']:19.4g} | "
            f"{peak:12.0f} | {n / r['end_to_end']:16.1f} |"
        )


def _sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for item in text.split(","):
        n, a = item.lower().split("x")
        out.append((int(n), int(a)))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="512x720,2048x1500", help="comma-separated WIDTHxANGLES")
    parser.add_argument("--rows", type=int, default=16, help="rows of the sinograms (a chunk)")
    parser.add_argument(
        "--slice-rows",
        type=int,
        default=None,
        help="rows done by slice-at-a-time methods (iradon, algotom, astra); default --rows",
    )
    parser.add_argument("--repeat", type=int, default=2, help="runs (first = warm-up)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for every method")
    parser.add_argument("--quick", action="store_true", help="128x90, 4 rows (a smoke test)")
    parser.add_argument(
        "--only",
        default=None,
        help="comma-separated parts of method names to time (e.g. 'gridrec,fourier')",
    )
    parser.add_argument(
        "--gridrec-src",
        default=None,
        help="tomopy checkout or git dir to build gridrec from when tomopy is not importable "
        "(default: $TOMOSYNTH_GRIDREC_SRC; benchmarks/gridrec_build.py)",
    )
    parser.add_argument("--memory", action="store_true", help="only the peak-memory test")
    parser.add_argument("--memory-rows", type=int, default=32, help="rows of the memory scan")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument(
        "--end-to-end",
        action="store_true",
        help="reconstruct_scan against the fourier kernel (--rows rows of the first size)",
    )
    parser.add_argument("--chunk-rows", type=int, default=16, help="chunk_rows of --end-to-end")
    parser.add_argument(
        "--uncompressed", action="store_true", help="--end-to-end reads an uncompressed scan"
    )
    parser.add_argument(
        "--stages",
        action="store_true",
        help="--end-to-end also times each step alone (read, minus-log, kernel, write)",
    )
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    if args.quick:
        args.sizes, args.rows, args.slice_rows = "128x90", 4, 4
    if args.device == "cuda":
        bench_cuda(2048, 1500, max(32, args.rows), max(1, args.repeat))
        return
    if args.end_to_end:
        n, n_angles = _sizes(args.sizes)[0]
        r = bench_end_to_end(
            n, n_angles, args.rows, args.threads, "fourier", "cpu", args.repeat, args.chunk_rows,
            not args.uncompressed,
        )  # fmt: skip
        print(
            f"\n# end to end: reconstruct_scan (fourier, cpu, {args.threads} thread(s)) of "
            f"{args.rows} rows in chunks of {args.chunk_rows}, {n} x {n}, {n_angles} angles, "
            f"{'uncompressed' if args.uncompressed else 'gzip'} scan"
        )
        if not args.uncompressed:
            from tomosynth.io.h5chunks import INFLATE

            print(f"gzip chunks inflated by {INFLATE} (isal: pip install tomosynth[fast-io])")
        print(
            f"kernel {r['kernel']:.4g} slices/s, end to end {r['end_to_end']:.4g} slices/s, "
            f"ratio {r['ratio']:.2f}"
        )
        if args.stages:
            t = args.threads
            print(f"\n# each step alone, {args.chunk_rows} rows (best of {args.repeat})")
            print(
                f"| {'step':<24} | {'ms/slice, 1 thread':>18} | {f'ms/slice, {t} threads':>19} "
                f"| {'speed-up':>8} | {f'CPU ms/slice ({t})':>17} | {'system':>6} |"
            )
            print(f"|{'-' * 26}|{'-' * 20}|{'-' * 21}|{'-' * 10}|{'-' * 19}|{'-' * 8}|")
            stages = bench_stages(
                n, n_angles, args.chunk_rows, t, args.repeat, not args.uncompressed
            )
            for name, w1, wt, cpu, sys_share in stages:
                print(
                    f"| {name:<24} | {w1:18.1f} | {wt:19.1f} | {w1 / wt:7.2f}x | {cpu:17.1f} "
                    f"| {sys_share:5.0%} |"
                )
        return
    if args.memory:
        from tomosynth.recon import recon_memory_bound_mb

        chunk = 16
        mem = bench_memory(2048, 1500, args.memory_rows, chunk, args.threads)
        bound = recon_memory_bound_mb(1500, 20, 10, chunk, 2048, "torch", 128)
        print(
            f"\n# peak memory: reconstruct_scan (torch, cpu, chunk_rows={chunk}) of "
            f"{args.memory_rows} rows x 2048 columns, 1500 angles, uint16 counts"
        )
        print(f"| {'quantity':<44} | {'MiB':>8} |")
        print(f"|{'-' * 46}|{'-' * 10}|")
        print(f"| {'peak RSS growth during reconstruct_scan':<44} | {mem['delta_mb']:8.1f} |")
        print(f"| {'recon_memory_bound_mb':<44} | {bound:8.1f} |")
        print(f"| {'baseline RSS after imports':<44} | {mem['before_mb']:8.1f} |")
        print(f"wall time: {mem['seconds']:.1f} s; bound holds: {mem['delta_mb'] <= bound}")
        if mem["delta_mb"] > bound:
            raise SystemExit("peak RSS growth exceeds recon_memory_bound_mb")
        return
    for n, n_angles in _sizes(args.sizes):
        slice_rows = args.rows if args.slice_rows is None else args.slice_rows
        only = args.only.split(",") if args.only else None
        table = bench_speed(
            n, n_angles, args.rows, args.threads, args.repeat, slice_rows, only, args.gridrec_src
        )
        print_speed(n, n_angles, args.threads, table)


if __name__ == "__main__":
    main()

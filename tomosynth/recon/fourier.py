# SPDX-License-Identifier: BSD-3-Clause
"""Fourier-domain FBP (backend ``fourier``).

FBP writes every pixel as a sum over angles of the filtered projection q_a evaluated at
the detector position u = X cos(theta) + Y sin(theta) + center - 0.5. With q_a expanded
in its discrete Fourier series over a window of L detector pixels,

    f(X, Y) = (pi / angles) / L * sum_a sum_k Q_a[k] exp(2 pi i k (u - lo) / L),

which is a type-1 (adjoint) non-uniform FFT from the polar frequencies
(2 pi k cos(theta) / L, 2 pi k sin(theta) / L) onto the pixel grid: O(N^2 log N) per
slice instead of O(N^3). The interpolation between detector pixels is trigonometric
(exact for band-limited data) where the pixel-driven FBP interpolates linearly. Two
slices travel as one complex sinogram p1 + i p2 (the operator is real and linear, so
the result is f1 + i f2), as in gridrec. Engines of that NUFFT:

- ``sparse`` (CPU default, scipy): finufft's kernel and 1.25x grid, with the spreading
  as a sparse matrix built once per geometry and applied to batches of slice pairs (the
  kernel weights are read once for several pairs); 1.3-1.9x finufft's speed, for a
  cached matrix of ``8 w^2`` bytes per point (72 MiB at 512 / 720, 0.6 GiB at 2048 / 1500)
  and each worker's buffers, kept with it (`_workspace`: ~40 MiB at 512, ~0.65 GiB at 2048).
- ``finufft`` (CPU): finufft's own plans; no cached matrix.
- ``torch`` (CUDA; any device): the same gridding in torch on a 2x grid.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np

from tomosynth.device import select_device
from tomosynth.recon.filters import _angle_weight, ramp_filter
from tomosynth.recon.parallel import cpu_threads, run_workers

if TYPE_CHECKING:  # torch is imported where used: the tomopy backend runs without it
    import torch


#: NUFFT tolerance (single precision). 1e-3 gives finufft's 5-point kernel at upsampling
#: 1.25; measured on a 512^2 Shepp-Logan from 720 angles it changes the slice by 0.05 %
#: (l2; at most 0.13 % of the maximum) against a 1e-6 transform, ~50x less than the gap
#: between this exact-interpolation FBP and astra's linear-interpolation FBP (2.9 %). Its
#: width is odd on purpose: finufft's even-width kernels (4 points, tolerances 4e-3 to
#: 1e-2, ~15 % faster here) are not mirror-symmetric at upsampling 1.25, so a Hermitian
#: input gives a slightly complex output and two slices sharing a transform would leak
#: into each other by ~1e-3 of their values.
#: Against the torch FBP the fourier backend differs by more (r 0.9995 on a noise-free
#: 512^2 / 720 Shepp-Logan, 0.995 with 1 % noise): that gap is the torch FBP's linear
#: interpolation (a sinc(f)^2 low-pass on the filtered projections, 0.41 at Nyquist, plus
#: aliased images), not this tolerance (1e-6 gives the same r to five digits) and not the
#: oversampling; the fourier backend is the one closer to the phantom (r 0.9988 against
#: 0.9975). Measured and tested in tests/unit/test_recon_fourier.py (docs/performance.md, "Reconstruction, 2026-12-07").
#: The sparse engine takes the same kernel width (5) from it; its own kernel is exactly
#: mirror-symmetric, and agrees with finufft's transform to r 0.9999998 (512 and 2048).
_FOURIER_EPS = 1e-3


def _odd_smooth(n: int) -> int:
    """Smallest odd integer >= n whose prime factors are 3, 5, 7, 11 (fast FFT lengths)."""
    m = n + 1 - n % 2
    while True:
        r = m
        for p in (3, 5, 7, 11):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 2


def _fourier_window(n_cols: int, center: float) -> tuple[int, int]:
    """First detector index ``lo`` and odd length ``L`` of the Fourier-series window.

    The window covers every position a pixel of the disc inscribed in the slice (radius
    ``n_cols / 2`` about the axis) projects to, plus a margin against the wrap-around of
    the series; odd so that the series has no unpaired Nyquist term (real in, real out).
    """
    # 4 px: a margin of cols / 2 moves the result by only ~0.2 % (l2, 128 columns)
    margin = 4
    lo = math.floor(center - 0.5 - n_cols / 2.0) - margin
    hi = math.ceil(center - 0.5 + n_cols / 2.0) + margin
    return lo, _odd_smooth(hi - lo + 1)


def _fourier_geometry(
    theta: np.ndarray, n_cols: int, center: float, lo: int, length: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Polar frequencies (radians per pixel) and complex weights, ``(angles, L)`` each.

    Frequencies are in FFT order (``k = 0, 1, ..., -1``). Output axis 0 is the image row
    (``Y`` up, so its frequency is ``-eta``), axis 1 the column (``X``, frequency ``xi``).
    The weight folds in the angular weight, the 1/L of the series, the window start
    relative to the axis (``center - 0.5 - lo``) and the half-pixel offset between the
    NUFFT's integer modes and pixel centres.
    """
    k = np.fft.fftfreq(length, 1.0 / length)  # integers in FFT order
    step = 2.0 * np.pi * k / length
    # column j -> X = (j - n//2) + ox, row i -> Y = -(i - n//2) - ox
    ox = n_cols // 2 + 0.5 - n_cols / 2.0
    x1 = np.empty((theta.size, length), dtype=np.float32)
    x2 = np.empty_like(x1)
    weight = np.empty((theta.size, length), dtype=np.complex64)
    scale = _angle_weight(theta.size) / length
    for a0 in range(0, theta.size, 64):  # float64 blocks: bounded temporaries
        th = theta[a0 : a0 + 64, None]
        xi, eta = step * np.cos(th), step * np.sin(th)
        x1[a0 : a0 + 64], x2[a0 : a0 + 64] = -eta, xi
        weight[a0 : a0 + 64] = scale * np.exp(1j * (step * (center - 0.5 - lo) + ox * (xi - eta)))
    return x1, x2, weight


def _fourier_working_set_bytes(n_angles: int, n_rows: int, n_cols: int, threads: int = 1) -> int:
    """Upper bound on the memory one ``fbp(backend="fourier")`` call allocates on the CPU.

    Includes the returned ``(rows, cols, cols)`` float32 slices and, for the sparse engine
    (the CPU default), its spreading matrix cached for the geometry; excludes the caller's
    sinograms. With ``A`` angles, ``R`` rows, ``C`` columns, ``M`` the ramp filter's
    transform length (``ramp_filter``: power of two >= 2 C), ``L`` the window
    (``_fourier_window``: the next 3-5-7-11-smooth odd length >= C + 10), ``G`` the fine
    grid (2-3-5-smooth >= 1.25 C), ``w`` the kernel width (5 at the default tolerance) and
    ``b = min(4, ceil(R / 2))`` slice pairs a batch::

        4 R C^2 + 4 A R C            # result; float32 copy of the input
      + max(finufft, sparse)
      + 64 MiB                       # allocator slack, FFT plans, kernel tables

        finufft = T * (              # T = min(threads, ceil(R / 2)) workers, each:
          8 A M * 2                  #   one slice pair's padded spectrum + its inverse
        + 8 A L * 3                  #   window (if gathered), its spectrum, weights
        + 8 A L * 3                  #   NUFFT points (2 x float32), sort index (int64)
        + 8 C^2 + 8 (1.25 C + 16)^2 * 2 )  # complex pair output; fine grid + its FFT
        sparse = (8 w^2 + 8) A L     # the matrix: float32 weights, int32 rows, pointers
          + 48 A L                   #   points, tile order and weights of the geometry
          + T' * (                   # T' = min(threads, batches) workspaces, each
            8 A M * 2 + 8 A L * 3    #   (kept with the matrix between calls): one
          + 8 A L b                  #   pair's filtering and window; the batch's
          + 8 G^2 b                  #   coefficients in ray and tile order; fine grids
          + 16 G C b )               #   and kept columns, transformed in place
                                     #   (the workspace is 8 A M + 8 A L + 16 A L b
                                     #   + 8 G^2 b + 8 G C b: less, or within 0.1 MiB)
    (2048 / 1500 angles, 16 rows, 2 threads: 1926 MiB measured, 2829 MiB bound; the
    finufft engine measured 481 MiB.)
    """
    a, r, c = int(n_angles), int(n_rows), int(n_cols)
    pairs = (r + 1) // 2
    workers = max(1, min(int(threads), pairs))
    m = max(64, 1 << int(math.ceil(math.log2(2 * c))))
    length = max(_fourier_window(c, c / 2.0 + f)[1] for f in (0.0, 0.25, 0.5))
    fine = int(1.25 * c) + 16
    per_worker = 16 * a * m + 48 * a * length + 8 * c * c + 16 * fine * fine
    b = min(_SPARSE_BATCH, pairs)
    g = _smooth_even(int(math.ceil(_SPARSE_UPSAMPLING * c)))
    width = int(math.ceil(math.log10(1.0 / _FOURIER_EPS))) + 2
    sparse_workers = max(1, min(int(threads), -(-pairs // _SPARSE_BATCH)))
    per_sparse = 16 * a * m + 24 * a * length + 8 * a * length * b
    per_sparse += 8 * g * g * b + 16 * g * c * b
    sparse = (8 * width**2 + 56) * a * length + sparse_workers * per_sparse
    work = max(workers * per_worker, sparse)
    return 4 * r * c * c + 4 * a * r * c + work + 64 * 2**20


def _fbp_fourier(
    sino: np.ndarray,
    theta: np.ndarray,
    center: float,
    filter_name: str,
    device: str | torch.device = "auto",
    memory_budget_mb: int = 128,
    threads: int | None = None,
    engine: str | None = None,
) -> np.ndarray:
    """Fourier-domain FBP of ``(angles, rows, cols)`` sinograms -> ``(rows, cols, cols)``.

    `engine` is ``"sparse"`` (CPU, scipy: the spreading as a cached sparse matrix shared
    by batches of slice pairs; the default on the CPU, 1.3-1.9x finufft's speed), ``"finufft"``
    (CPU; no cached matrix, so less memory) or ``"torch"`` (own gridding on any torch
    device; the default on CUDA). `memory_budget_mb` bounds the slice pairs the torch
    engine transforms at once (per worker on the CPU); `threads` is the number of workers
    (`tomosynth.recon.parallel`), each with single-threaded transforms and kernels.
    """
    n_angles, n_rows, n = sino.shape
    resp = ramp_filter(n, filter_name)
    if engine is None:
        # a plain "cpu" needs no torch import (its libraries alone are ~0.4 GB resident)
        cpu = device == "cpu" or select_device(device).type == "cpu"
        engine = "sparse" if cpu else "torch"
    if engine == "sparse":
        return _fbp_fourier_sparse(sino, theta, center, resp, cpu_threads(threads))
    if engine == "finufft":
        return _fbp_fourier_finufft(sino, theta, center, resp, cpu_threads(threads))
    if engine == "torch":
        return _fbp_fourier_torch(sino, theta, center, resp, device, memory_budget_mb, threads)
    raise ValueError(f"unknown Fourier engine {engine!r}")


#: finufft plans with their geometry, one per worker, reused while angles, size and centre
#: stay the same (every chunk of a scan): planning and point sorting cost about one pair
_PLAN_CACHE: dict = {}


def _finufft_plan(theta: np.ndarray, n: int, center: float, worker: int = 0) -> tuple:
    """(plan, window start, window length, weights) of worker `worker`, cached.

    Each plan is single-threaded: finufft's own threads add sub-grids in a
    run-dependent order, so its multithreaded output is not bit-reproducible (a rerun
    or a SLURM job would differ from a local run in the last bits). Parallelism comes
    from workers that each transform whole slice pairs instead.
    """
    import hashlib

    import finufft

    key = (hashlib.sha1(theta.tobytes()).hexdigest(), n, float(center), _FOURIER_EPS)
    if _PLAN_CACHE.get("key") != key:
        _PLAN_CACHE.clear()
        _PLAN_CACHE["key"] = key
        lo, length = _fourier_window(n, center)
        x1, x2, weight = _fourier_geometry(theta, n, center, lo, length)
        # finufft keeps references to the point arrays: hold them with the plans
        _PLAN_CACHE["geometry"] = (lo, length, weight, (x1.ravel(), x2.ravel()))
    if worker not in _PLAN_CACHE:
        pts = _PLAN_CACHE["geometry"][3]
        plan = finufft.Plan(
            1, (n, n), 1, _FOURIER_EPS, 1, dtype="complex64", nthreads=1, upsampfac=1.25
        )
        plan.setpts(*pts)
        _PLAN_CACHE[worker] = plan
    lo, length, weight, _ = _PLAN_CACHE["geometry"]
    return _PLAN_CACHE[worker], lo, length, weight


def _fbp_fourier_finufft(
    sino: np.ndarray, theta: np.ndarray, center: float, resp: np.ndarray, threads: int
) -> np.ndarray:
    """Fourier FBP of every row of `sino` with `threads` workers, each on its own rows.

    The output of a slice does not depend on `threads` (bit for bit): each pair of rows
    goes through single-threaded FFTs and a single-threaded NUFFT plan.
    """
    from concurrent.futures import ThreadPoolExecutor

    n_rows, n = sino.shape[1], sino.shape[2]
    out = np.empty((n_rows, n, n), dtype=np.float32)
    pairs = list(range(0, n_rows, 2))
    workers = max(1, min(int(threads), len(pairs)))
    # plan in this thread (finufft's planner is not thread-safe), one plan per worker
    plans = [_finufft_plan(theta, n, center, w) for w in range(workers)]
    groups = [pairs[w::workers] for w in range(workers)]
    if workers == 1:
        _fourier_rows(sino, resp, plans[0], groups[0], out)
        return out
    # finufft (ctypes) and scipy's FFTs release the GIL, so threads run in parallel
    with ThreadPoolExecutor(workers) as pool:
        jobs = [
            pool.submit(_fourier_rows, sino, resp, plan, g, out)
            for plan, g in zip(plans, groups, strict=True)
        ]
        for job in jobs:
            job.result()
    return out


def _pair_coefficients(
    sino: np.ndarray,
    resp: np.ndarray,
    lo: int,
    length: int,
    starts: list[int],
    work: dict | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """``(r, coef)`` for each row pair starting at `starts`: the window spectrum
    ``(angles, L)`` (complex64) of rows ``r`` (real part) and ``r + 1`` (imaginary part,
    zero past the last row), still to be multiplied by the geometry's weights. The
    buffers (`work`'s ``buf`` and ``win``, else new ones) are reused and every transform
    runs in place: use `coef` before the next step."""
    import scipy.fft

    n_angles, n_rows, n = sino.shape
    size = 2 * (resp.shape[0] - 1)
    full = np.concatenate((resp, resp[-2:0:-1])).astype(np.float32)  # real, even: fft layout
    # The detector goes to columns off..off+n of the zero-padded buffer, so that the window
    # (detector index lo..lo+L) is the buffer's first L columns when it fits (circular
    # convolution commutes with the shift); otherwise gather it modulo the buffer length.
    off = min(max(-lo, 0), size - n)
    start = lo + off
    take = None if 0 <= start and start + length <= size else (start + np.arange(length)) % size
    if work is None:
        work = _coefficient_buffers(n_angles, size, length)
    buf, win = work["buf"], work["win"]
    for r in starts:
        buf[:, :off] = 0.0
        buf[:, off + n :] = 0.0
        buf[:, off : off + n].real = sino[:, r]
        buf[:, off : off + n].imag = sino[:, r + 1] if r + 1 < n_rows else 0.0
        # contiguous complex64 with overwrite_x: pocketfft transforms in place (no page
        # faults on fresh output arrays, a third of the time at 512 / 720 otherwise)
        spec = scipy.fft.fft(buf, axis=-1, workers=1, overwrite_x=True)
        spec *= full
        q = scipy.fft.ifft(spec, axis=-1, workers=1, overwrite_x=True)
        if take is None:
            np.copyto(win, q[:, start : start + length])
        else:
            np.take(q, take, axis=1, out=win)
        yield r, scipy.fft.fft(win, axis=-1, workers=1, overwrite_x=True)
        buf = q  # scipy transformed in place (overwrite_x), or handed back a new buffer


def _coefficient_buffers(n_angles: int, size: int, length: int) -> dict:
    """`_pair_coefficients`' buffers: the padded pair ``(angles, M)`` and its window."""
    return {
        "buf": np.zeros((n_angles, size), dtype=np.complex64),
        "win": np.empty((n_angles, length), dtype=np.complex64),
    }


def _fourier_rows(
    sino: np.ndarray, resp: np.ndarray, planned: tuple, starts: list[int], out: np.ndarray
) -> None:
    """Reconstruct the row pairs starting at `starts` into `out` with one worker's
    `_finufft_plan` result (plan, window start, window length, weights)."""
    n_rows, n = sino.shape[1], sino.shape[2]
    plan, lo, length, weight = planned
    pair = np.empty((n, n), dtype=np.complex64)
    for r, coef in _pair_coefficients(sino, resp, lo, length, starts):
        coef *= weight
        plan.execute(coef.reshape(-1), out=pair)
        out[r] = pair.real
        if r + 1 < n_rows:
            out[r + 1] = pair.imag


def _smooth_even(m: int) -> int:
    """Smallest even integer >= m whose prime factors are 2, 3, 5 (fast 2D FFT sizes)."""
    g = m + m % 2
    while True:
        r = g
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        if r == 1:
            return g
        g += 2


def _deapodisation(n: int, g: int, width: int, beta: float) -> np.ndarray:
    """1 / (Fourier transform of the ES kernel) at modes ``-n//2 .. (n-1)//2`` of a ``g``
    grid: the kernel times ``cos(2 pi k z / g)`` integrated by Gauss-Legendre."""
    nodes, wts = np.polynomial.legendre.leggauss(4 * width + 32)
    z = nodes * width / 2.0
    ker = np.exp(beta * (np.sqrt(1.0 - nodes**2) - 1.0))
    k = np.arange(-(n // 2), n - n // 2)
    return 1.0 / ((wts * ker * width / 2.0) @ np.cos(2.0 * np.pi * np.outer(z, k) / g))


#: the sparse engine: fine grid (1.25 n, as finufft's), slice pairs per spreading product
#: (a product's cost per matrix entry is mostly reading the entry: 4 pairs share each read,
#: ~3x cheaper per pair than one), and the cached geometry (one matrix per angles, size,
#: centre: ``8 w^2`` bytes per point, 72 MiB at 512 / 720 angles, 0.6 GiB at 2048 / 1500)
_SPARSE_UPSAMPLING = 1.25
_SPARSE_BATCH = 4
_SPARSE_CACHE: dict = {}


def _sparse_spreader(theta: np.ndarray, n: int, center: float) -> dict:
    """The sparse engine's cached geometry: window (lo, L), weights, the ``(G^2, points)``
    float32 CSC spreading matrix of the ES kernel and the 2D deapodisation.

    The kernel is finufft's exponential of semicircle at the same upsampling with
    ``w = ceil(log10(1 / eps)) + 2`` cells and ``beta = 0.97 pi (1 - 1 / (2 sigma)) w``; a
    column holds one point's ``w x w`` weights (built in blocks: bounded temporaries).
    Points ``(x1, x2)`` are radians per pixel; cells wrap modulo ``G``. The columns go in
    the order ``perm`` of 16 x 16-cell tiles of the grid, not along the rays: the product
    then adds into one small patch of the grid at a time (1.3-1.8x faster than ray order).
    ``pool`` holds the workers' reusable buffers (`_workspace`).
    """
    import hashlib

    import scipy.sparse

    key = (hashlib.sha1(theta.tobytes()).hexdigest(), n, float(center), _FOURIER_EPS)
    if _SPARSE_CACHE.get("key") == key:
        return _SPARSE_CACHE
    _SPARSE_CACHE.clear()
    lo, length = _fourier_window(n, center)
    x1, x2, weight = _fourier_geometry(theta, n, center, lo, length)
    width = int(math.ceil(math.log10(1.0 / _FOURIER_EPS))) + 2
    beta = 0.97 * math.pi * (1.0 - 0.5 / _SPARSE_UPSAMPLING) * width
    g = _smooth_even(max(int(math.ceil(_SPARSE_UPSAMPLING * n)), 2 * width))
    ww = width * width
    n_pts = x1.size
    tiles = [
        np.floor(x.reshape(-1) * (g / (2.0 * np.pi))).astype(np.int32) % g // 16 for x in (x1, x2)
    ]
    perm = np.argsort(tiles[0] * (g // 16 + 1) + tiles[1], kind="stable").astype(np.int32)
    del tiles
    rows = np.empty(n_pts * ww, dtype=np.int32)
    vals = np.empty(n_pts * ww, dtype=np.float32)
    offs = np.arange(width)
    step = x1.shape[1] * 16  # points a block
    for p0 in range(0, n_pts, step):
        idx, val = [], []
        for x in (x1.reshape(-1)[perm[p0 : p0 + step]], x2.reshape(-1)[perm[p0 : p0 + step]]):
            t = x.astype(np.float64) * (g / (2.0 * np.pi))
            cells = np.ceil(t - width / 2.0)[:, None] + offs
            u = (2.0 * (cells - t[:, None]) / width) ** 2
            val.append(np.where(u < 1.0, np.exp(beta * (np.sqrt(np.abs(1.0 - u)) - 1.0)), 0.0))
            idx.append(np.remainder(cells, g).astype(np.int32))
        rows[p0 * ww : (p0 + step) * ww] = (idx[0][:, :, None] * g + idx[1][:, None, :]).ravel()
        vals[p0 * ww : (p0 + step) * ww] = (val[0][:, :, None] * val[1][:, None, :]).ravel()
    ptr = np.arange(0, n_pts * ww + 1, ww, dtype=np.int64 if n_pts * ww >= 2**31 else np.int32)
    mat = scipy.sparse.csc_matrix((vals, rows, ptr), shape=(g * g, n_pts))
    deap = _deapodisation(n, g, width, beta)
    _SPARSE_CACHE.update(
        key=key, lo=lo, length=length, perm=perm, weight=weight, mat=mat, g=g,
        deap2=(deap[:, None] * deap[None, :]).astype(np.float32), pool=[], lock=threading.Lock(),
    )  # fmt: skip
    return _SPARSE_CACHE


def _fbp_fourier_sparse(
    sino: np.ndarray, theta: np.ndarray, center: float, resp: np.ndarray, threads: int
) -> np.ndarray:
    """Fourier FBP of every row of `sino` by the sparse engine (scipy only).

    The same sum as the finufft engine (type-1 NUFFT: spread onto a 1.25x grid, 2D FFT,
    deapodise), but the spreading is one sparse-matrix product per `_SPARSE_BATCH` slice
    pairs, with the kernel weights computed once per geometry. Batches are consecutive
    pairs dealt to `threads` workers (`run_workers`), so which pairs share a product does
    not depend on `threads`: the output is bit-identical whatever the thread count.
    """
    n_rows, n = sino.shape[1], sino.shape[2]
    geo = _sparse_spreader(np.asarray(theta, np.float64), n, center)
    out = np.empty((n_rows, n, n), dtype=np.float32)
    pairs = list(range(0, n_rows, 2))
    batches = [pairs[i : i + _SPARSE_BATCH] for i in range(0, len(pairs), _SPARSE_BATCH)]
    size = 2 * (resp.shape[0] - 1)

    def work(mine: list[list[int]]) -> None:
        with _workspace(geo, sino.shape[0], size, n) as ws:
            _sparse_rows(sino, resp, geo, mine, out, ws)

    run_workers(work, batches, threads)
    return out


@contextmanager
def _workspace(geo: dict, n_angles: int, size: int, n: int) -> Iterator[dict]:
    """One worker's buffers for the sparse engine, kept with the geometry's cache and
    reused by the next call: fresh arrays of this size cost page faults on first touch
    (a third of the time at 512 / 720). A worker takes one from the pool (or makes one)
    and puts it back when done; workers never share one."""
    pool = geo["pool"]
    with geo["lock"]:
        ws = pool.pop() if pool else None
    if ws is None or ws["buf"].shape[1] != size:
        lanes = geo["perm"].size * _SPARSE_BATCH
        ws = {
            **_coefficient_buffers(n_angles, size, geo["length"]),
            "nat": np.empty(lanes, dtype=np.complex64),  # coefficients, ray order
            "dense": np.empty(lanes, dtype=np.complex64),  # the same in tile order
            "grid": np.empty(geo["g"] ** 2 * _SPARSE_BATCH, dtype=np.complex64),
            "modes": np.empty(geo["g"] * n * _SPARSE_BATCH, dtype=np.complex64),
        }
    try:
        yield ws
    finally:
        with geo["lock"]:
            pool.append(ws)


def _spread(mat, dense: np.ndarray, grid: np.ndarray) -> None:
    """``grid = mat @ dense`` (float32 CSC matrix, ``(points, lanes)`` float32) into the
    preallocated `grid` ``(G^2, lanes)``: scipy's own kernel (``csc_matvecs``, the one
    behind ``@``), without the fresh output array; ``@`` where scipy lacks it."""
    try:
        from scipy.sparse._sparsetools import csc_matvecs
    except ImportError:  # pragma: no cover - private name moved: the public product
        grid[...] = mat @ dense
        return
    grid.fill(0.0)
    n_row, n_col = mat.shape
    csc_matvecs(
        n_row, n_col, dense.shape[1], mat.indptr, mat.indices, mat.data, dense.ravel(),
        grid.ravel(),
    )  # fmt: skip


def _sparse_rows(
    sino: np.ndarray,
    resp: np.ndarray,
    geo: dict,
    batches: list[list[int]],
    out: np.ndarray,
    ws: dict,
) -> None:
    """One worker of `_fbp_fourier_sparse`: spread, transform and deapodise its batches
    in its workspace `ws` (`_workspace`), every transform in place."""
    import scipy.fft

    n_rows, n = sino.shape[1], sino.shape[2]
    g, length = geo["g"], geo["length"]
    n_angles, n_pts = sino.shape[0], geo["perm"].size
    for starts in batches:
        b = len(starts)  # lanes of this batch: views of the first b * size of each buffer
        nat = ws["nat"][: n_pts * b].reshape(n_angles, length, b)
        coefs = _pair_coefficients(sino, resp, geo["lo"], length, starts, ws)
        for lane, (_, coef) in enumerate(coefs):  # weighted, ray order, into the batch
            np.multiply(coef, geo["weight"], out=nat[:, :, lane])
        # tile order: one gather of b-lane rows (not b gathers of single values)
        dense = ws["dense"][: n_pts * b].reshape(n_pts, b)
        np.take(nat.reshape(n_pts, b), geo["perm"], axis=0, out=dense)
        grid = ws["grid"][: g * g * b].reshape(g, g, b)
        _spread(geo["mat"], dense.view(np.float32), grid.view(np.float32).reshape(g * g, 2 * b))
        # f(k) = sum_l grid[l] exp(+2 pi i k l / G): unscaled inverse FFTs, the n modes kept
        img = scipy.fft.ifft(grid, axis=1, norm="forward", workers=1, overwrite_x=True)
        modes = ws["modes"][: g * n * b].reshape(g, n, b)
        np.concatenate((img[:, g - n // 2 :], img[:, : n - n // 2]), axis=1, out=modes)
        img = scipy.fft.ifft(modes, axis=0, norm="forward", workers=1, overwrite_x=True)
        _write_slices(img, starts[0], min(2 * b, n_rows - starts[0]), geo["deap2"], out)


def _write_slices(img: np.ndarray, r0: int, count: int, deap2: np.ndarray, out: np.ndarray) -> None:
    """``out[r0 : r0 + count]`` from a batch's transformed grid ``img`` ``(G, n, pairs)``:
    lane ``2 p`` (real) and ``2 p + 1`` (imaginary) of the consecutive pairs become slices
    ``r0 + 2 p`` and ``r0 + 2 p + 1``, deapodised. Image rows ``-n//2 .. -1`` are the
    transform's last ``n//2`` rows and ``0 .. n - n//2 - 1`` its first. In blocks of 8
    rows, so that a block of every lane is read once from memory (not once per lane)."""
    g, n = img.shape[0], img.shape[1]
    h = n // 2
    lanes = img.view(np.float32).reshape(g, n, -1)
    for src, dst, rows in ((g - h, 0, h), (0, h, n - h)):
        for i in range(0, rows, 8):
            k = min(8, rows - i)
            np.multiply(
                lanes[src + i : src + i + k, :, :count].transpose(2, 0, 1),
                deap2[dst + i : dst + i + k],
                out=out[r0 : r0 + count, dst + i : dst + i + k],
            )


#: one cached spreading matrix (geometry key -> tensors); rebuilt when the geometry changes
_GRID_CACHE: dict = {}


def _es_kernel(z: torch.Tensor, width: int, beta: float) -> torch.Tensor:
    """Exponential-of-semicircle kernel on ``|z| < width / 2`` (grid units), 0 outside."""
    import torch

    u = (2.0 * z / width) ** 2
    inside = u < 1.0
    val = torch.exp(beta * (torch.sqrt(torch.clamp(1.0 - u, min=0.0)) - 1.0))
    return torch.where(inside, val, torch.zeros_like(val))


def _gridding_matrix(
    x1: np.ndarray, x2: np.ndarray, n: int, key: tuple, dev: torch.device
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Sparse ``(G*G, points)`` spreading matrix and the deapodisation for ``n`` modes.

    Points ``(x1, x2)`` are radians per pixel in ``[-pi, pi]``; the fine grid has ``G``
    (about ``2 n``) cells per axis and the exponential-of-semicircle kernel ``width``
    cells (the width/shape rule of finufft's kernel for a 2x fine grid). Returns the CSR
    matrix, the 1D deapodisation factors of modes ``-n//2 .. (n-1)//2`` and ``G``.
    """
    import warnings

    import torch

    width = int(math.ceil(math.log10(1.0 / _FOURIER_EPS))) + 2
    beta = 2.30 * width
    g = _smooth_even(2 * n)
    key = (*key, n, width, str(dev))
    if key in _GRID_CACHE:
        return _GRID_CACHE[key]
    _GRID_CACHE.clear()
    n_pts = x1.size
    offs = torch.arange(width, dtype=torch.float64, device=dev)
    idx, val = [], []
    for x in (x1, x2):
        t = torch.as_tensor(x.ravel(), dtype=torch.float64, device=dev) * (g / (2.0 * math.pi))
        start = torch.ceil(t - width / 2.0)
        cells = start[:, None] + offs[None, :]  # (points, width)
        val.append(_es_kernel(cells - t[:, None], width, beta).float())
        idx.append(torch.remainder(cells.long(), g))
        del t, start, cells
    rows = (idx[0][:, :, None] * g + idx[1][:, None, :]).reshape(-1)
    vals = (val[0][:, :, None] * val[1][:, None, :]).reshape(-1)
    cols = torch.arange(n_pts, device=dev).repeat_interleave(width * width)
    del idx, val
    order = torch.argsort(rows)
    crow = torch.zeros(g * g + 1, dtype=torch.int64, device=dev)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=g * g), 0)
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        mat = torch.sparse_csr_tensor(
            crow, cols[order], vals[order], size=(g * g, n_pts), check_invariants=False
        )
    del rows, cols, vals, order
    deap = _deapodisation(n, g, width, beta)
    entry = (mat, torch.as_tensor(deap, dtype=torch.float32, device=dev), g)
    _GRID_CACHE[key] = entry
    return entry


def _fbp_fourier_torch(
    sino: np.ndarray,
    theta: np.ndarray,
    center: float,
    resp: np.ndarray,
    device: str | torch.device,
    memory_budget_mb: int,
    threads: int | None,
) -> np.ndarray:
    """The fourier backend's torch engine (any device); on the CPU the slice pairs are
    shared among `threads` workers (`tomosynth.recon.parallel`), bit-identically."""
    import hashlib

    import torch

    dev = select_device(device)
    n_angles, n_rows, n = sino.shape
    size = 2 * (resp.shape[0] - 1)
    lo, length = _fourier_window(n, center)
    x1, x2, weight_np = _fourier_geometry(theta, n, center, lo, length)
    key = (hashlib.sha1(np.asarray(theta, np.float64).tobytes()).hexdigest(), length)
    mat, deap, g = _gridding_matrix(x1, x2, n, key, dev)
    ctx = {
        "full": torch.as_tensor(
            np.concatenate((resp, resp[-2:0:-1])), dtype=torch.float32, device=dev
        ),
        "weight": torch.as_tensor(weight_np, device=dev)[:, None, :],  # (angles, 1, L)
        "take": torch.as_tensor((lo + np.arange(length)) % size, device=dev),
        "modes": torch.as_tensor(np.arange(-(n // 2), n - n // 2) % g, device=dev),
        "deap2": deap[:, None] * deap[None, :],
        "mat": mat,
        "g": g,
        "size": size,
    }
    n_pairs = (n_rows + 1) // 2
    # per pair: fine grid (complex) + its FFT, padded spectrum + inverse, window coefs
    per_pair = 8 * (2 * g * g + 2 * n_angles * size + 3 * n_angles * length)
    workers = 1 if dev.type == "cuda" else min(cpu_threads(threads), n_pairs)
    # the budget is per worker: a batch size that does not depend on the thread count
    batch = max(1, min(n_pairs, memory_budget_mb * 2**20 // per_pair))
    out = np.empty((n_rows, n, n), dtype=np.float32)
    src = torch.from_numpy(np.ascontiguousarray(sino, dtype=np.float32))

    def work(mine: list[int]) -> None:
        with torch.no_grad():
            for p0 in mine:
                r0, r1 = 2 * p0, min(n_rows, 2 * min(n_pairs, p0 + batch))
                out[r0:r1] = _fourier_torch_batch(src[:, r0:r1].to(dev), ctx)[: r1 - r0]

    if dev.type == "cuda":
        work(list(range(0, n_pairs, batch)))
    else:
        run_workers(work, list(range(0, n_pairs, batch)), workers)
    return out


def _fourier_torch_batch(part: torch.Tensor, ctx: dict) -> np.ndarray:
    """Slices of a block of sinogram rows ``(angles, rows, cols)`` -> ``(rows', n, n)``
    (rows' = rows rounded up to even) with the torch engine's precomputed `ctx`."""
    import torch

    n = part.shape[-1]
    g = ctx["g"]
    if part.shape[1] % 2:
        part = torch.cat((part, torch.zeros_like(part[:, :1])), dim=1)
    z = torch.complex(part[:, 0::2], part[:, 1::2])  # (angles, pairs, cols)
    del part
    q = torch.fft.ifft(torch.fft.fft(z, n=ctx["size"], dim=-1) * ctx["full"], dim=-1)
    del z
    coef = torch.fft.fft(q[..., ctx["take"]], dim=-1) * ctx["weight"]  # (angles, pairs, L)
    del q
    b = coef.shape[1]
    dense = torch.view_as_real(coef.permute(0, 2, 1).reshape(-1, b))  # (pts, b, 2)
    del coef
    grid = torch.sparse.mm(ctx["mat"], dense.reshape(-1, 2 * b).contiguous())
    grid = torch.view_as_complex(grid.reshape(g, g, b, 2).contiguous())
    img = torch.fft.ifft2(grid.permute(2, 0, 1), norm="forward")
    del grid
    modes = ctx["modes"]
    img = img[:, modes][:, :, modes] * ctx["deap2"]
    return torch.stack((img.real, img.imag), dim=1).reshape(-1, n, n).cpu().numpy()

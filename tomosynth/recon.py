# SPDX-License-Identifier: BSD-3-Clause
"""Parallel-beam reconstruction: normalise, minus-log, stripes, centre, projector, FBP.

Geometry (shared by `forward_project`, every `fbp` backend, `find_center`, the simulator)
-----------------------------------------------------------------------------------------
This is astra-toolbox's ``parallel`` geometry, which tomopy uses too (tomopy hands theta
to astra unchanged; gridrec writes its output in the same frame). A slice is an ``(n, n)``
array ``img[i, j]`` (i = row, j = column). Its pixel centres sit at
``x = j + 0.5 - n/2`` (along the columns, to the right) and ``y = n/2 - 0.5 - i`` (up: row 0
is the top), in pixels, with the rotation axis at ``x = y = 0``. At angle ``theta``
(radians) the ray through ``(x, y)`` reaches detector column ``d`` (0-based) at the signed
distance ``s = d + 0.5 - center`` from the axis, where

    s = x cos(theta) + y sin(theta).

So at ``theta = 0`` the rays run down the columns and the detector runs along ``x``; at
``theta = pi/2`` the detector runs along ``y`` (up). There is no ``pi/2`` offset between
our theta, astra's and tomopy's. docs/architecture.md has a picture.

Units: projections are line integrals in pixel units (sum of ``mu * voxel`` along the ray);
reconstructions are attenuation per pixel, so a block of ``mu * voxel = 1`` reconstructs to
about 1 with every backend.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tomosynth.device import select_device
from tomosynth.errors import ConfigError, DataError
from tomosynth.io import (
    SinogramScratch,
    h5_layout,
    inspect_dxchange,
    plan_row_reads,
    read_dxchange,
    scan_digest,
    write_tiff_slices,
)
from tomosynth.recon_center import center_correlation, find_center_vo, opposite_pair
from tomosynth.recon_parallel import cpu_threads, run_workers
from tomosynth.recon_prep import flat_minus_log
from tomosynth.resume import PartialOutput, code_digest
from tomosynth.scan_checks import check_angles, check_rows

if TYPE_CHECKING:  # torch is imported where used: the tomopy backend runs without it
    import torch

_log = logging.getLogger("tomosynth.recon")

__all__ = [
    "fbp",
    "find_center",
    "forward_project",
    "minus_log",
    "normalize",
    "ramp_filter",
    "recon_memory_bound_mb",
    "reconstruct_scan",
    "remove_stripes",
    "resolve_backend",
    "tomopy_available",
]


def _as_theta(
    theta: np.ndarray | torch.Tensor | list[float], n_angles: int | None = None
) -> np.ndarray:
    theta = np.asarray(theta, dtype=np.float64).ravel()
    if n_angles is not None and theta.size != n_angles:
        raise ValueError(f"theta has {theta.size} angles but the data has {n_angles}")
    return theta


def _chunk(total_elems_per_item: int, budget_bytes: int, n_items: int) -> int:
    """Items per chunk so that ``items * elems * 4`` bytes stays within the budget."""
    return int(max(1, min(n_items, budget_bytes // max(1, 4 * total_elems_per_item))))


def forward_project(
    volume: np.ndarray,
    theta: np.ndarray,
    center: float | None = None,
    *,
    step: float = 0.5,
    device: str | torch.device = "auto",
    memory_budget_mb: int = 256,
) -> np.ndarray:
    """Parallel-beam line integrals of a volume (the Radon transform of each slice).

    Parameters
    ----------
    volume : (slices, n, n) array
        Attenuation per pixel (e.g. ``mu * voxel_size``); float32 is used internally.
        A single ``(n, n)`` slice is accepted and gives ``(angles, n)``.
    theta : (angles,) array
        Projection angles in radians.
    center : float, optional
        Rotation axis position in detector pixels; ``None`` means ``n / 2``.
    step : float
        Sampling step along each ray in pixels (bilinear interpolation); 0.5 is accurate to
        well under 1 % for smooth and piecewise-constant objects.
    device : str
        ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
    memory_budget_mb : int
        Bound on the interpolated samples held at once (chunking over angles).

    Returns
    -------
    (angles, slices, n) float32 array
        Line integrals in pixel units; the detector has ``n`` columns.
    """
    vol = np.ascontiguousarray(volume, dtype=np.float32)  # torch takes no negative strides
    squeeze = vol.ndim == 2
    if squeeze:
        vol = vol[None]
    if vol.ndim != 3 or vol.shape[1] != vol.shape[2]:
        raise ValueError(f"volume must be (slices, n, n), got shape {np.shape(volume)}")
    theta = _as_theta(theta)
    n_slices, n, _ = vol.shape
    c = n / 2.0 if center is None else float(center)
    import torch
    import torch.nn.functional as F

    dev = select_device(device)
    vol_t = torch.from_numpy(vol).to(dev)[None]  # (1, C=slices, H=n, W=n)
    # float32 coordinates: < 1e-3 px rounding for detectors up to ~10^4 pixels
    s = torch.arange(n, dtype=torch.float32, device=dev) + 0.5 - c  # detector positions
    half = 0.5 * n * math.sqrt(2.0) + abs(c - n / 2.0) + 1.0
    n_t = int(math.ceil(2 * half / step)) + 1
    t = (torch.arange(n_t, dtype=torch.float32, device=dev) - (n_t - 1) / 2.0) * step
    out = np.empty((theta.size, n_slices, n), dtype=np.float32)
    # per angle and ray sample: x, y, the grid (2) and one value per slice (+1 for the sum)
    per_angle = n * n_t * (n_slices + 5)
    chunk = _chunk(per_angle, memory_budget_mb * 2**20, theta.size)
    for a0 in range(0, theta.size, chunk):
        th = torch.as_tensor(theta[a0 : a0 + chunk], dtype=torch.float64, device=dev)
        cos = torch.cos(th).float()[:, None, None]
        sin = torch.sin(th).float()[:, None, None]
        # the ray of detector position s: (x, y) = s (cos, sin) + t (-sin, cos), so that
        # x cos + y sin = s along it; grid_sample (align_corners=False) wants
        # (column, row) = (2 x / n, -2 y / n) (y points up, rows down)
        gx = (2.0 / n) * (s[None, :, None] * cos - t[None, None, :] * sin)
        gy = (-2.0 / n) * (s[None, :, None] * sin + t[None, None, :] * cos)
        grid = torch.stack((gx, gy), dim=-1).reshape(1, -1, n_t, 2)  # (1, angles*n, n_t, 2)
        del gx, gy
        samples = F.grid_sample(
            vol_t, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )  # (1, slices, angles*n, n_t)
        proj = samples.sum(dim=-1).reshape(n_slices, -1, n) * step
        out[a0 : a0 + chunk] = proj.permute(1, 0, 2).cpu().numpy()
    return out[:, 0] if squeeze else out


# --------------------------------------------------------------------------------------
# Pre-processing
# --------------------------------------------------------------------------------------


def normalize(
    proj: np.ndarray, flat: np.ndarray, dark: np.ndarray, cutoff: float | None = None
) -> np.ndarray:
    """Flat/dark correction, tomopy's formula: ``(proj - <dark>) / (<flat> - <dark>)``.

    Parameters
    ----------
    proj : (angles, rows, cols) array
        Raw counts.
    flat, dark : (n, rows, cols) arrays
        White and dark frames; their means over the first axis are used.
    cutoff : float, optional
        Upper clip for the transmission (e.g. 1.0 removes over-bright pixels).

    Returns
    -------
    (angles, rows, cols) float32
        Transmission, about 0..1. Denominators below 1e-6 are raised to 1e-6 (as tomopy
        does) so dead pixels give large finite values rather than inf.
    """
    proj = np.asarray(proj, dtype=np.float32)
    dark_mean = np.mean(np.asarray(dark, dtype=np.float32), axis=0)
    flat_mean = np.mean(np.asarray(flat, dtype=np.float32), axis=0)
    denom = np.maximum(flat_mean - dark_mean, np.float32(1e-6))
    out = (proj - dark_mean) / denom
    if cutoff is not None:
        np.minimum(out, np.float32(cutoff), out=out)
    return out.astype(np.float32, copy=False)


def minus_log(x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Line integrals from transmission: ``-log(max(x, eps))``, float32.

    Non-positive or tiny transmissions (noise in opaque regions, dead pixels) are clamped to
    `eps` before the logarithm, so the result is finite and at most ``-log(eps)``
    (13.8 for the default); transmissions above 1 give small negative values, kept as is.
    """
    x = np.asarray(x, dtype=np.float32)
    return (-np.log(np.maximum(x, np.float32(eps)))).astype(np.float32, copy=False)


def remove_stripes(sinograms: np.ndarray, method: str = "median", size: int = 11) -> np.ndarray:
    """Suppress ring artefacts by flattening per-column offsets of the sinograms.

    A detector column whose gain differs from its neighbours adds a constant to every angle
    of that column (a stripe in the sinogram, a ring in the slice). The column's mean over
    angles minus a median-filtered (along columns, width `size`) version of those means
    estimates that constant, which is subtracted from every angle. Real structure varies
    slowly across columns in the angular mean and survives the median.
    Limitation: on the steep flanks of the angular mean (near the sample's edge, where its
    change per pixel is comparable to the offset) a median cannot tell an offset from the
    slope, so stripes there are only partly removed.

    Parameters
    ----------
    sinograms : (angles, rows, cols) array
        Minus-log projections.
    method : {"median", "none"}
        ``"none"`` returns the input unchanged (as float32).
    size : int
        Median window across detector columns in pixels (odd, >= 3); wider than the
        widest stripe to remove.
    """
    from scipy.ndimage import median_filter

    sino = np.asarray(sinograms, dtype=np.float32)
    if method == "none":
        return sino
    if method != "median":
        raise ConfigError(f"recon.stripe_removal: unknown method {method!r} (median, none)")
    if int(size) < 3:
        raise ConfigError(f"recon.stripe_size: must be >= 3 pixels, got {size}")
    col_mean = sino.mean(axis=0, dtype=np.float64)  # (rows, cols)
    smooth = median_filter(col_mean, size=(1, int(size)), mode="reflect")
    return (sino - (col_mean - smooth)[None].astype(np.float32)).astype(np.float32, copy=False)


# --------------------------------------------------------------------------------------
# Filtered back-projection
# --------------------------------------------------------------------------------------

FILTERS = ("ramlak", "shepp", "cosine", "hann", "hamming", "parzen", "butterworth", "none")
BACKENDS = ("auto", "torch", "astra", "tomopy", "fourier")


def ramp_filter(n_cols: int, filter_name: str = "ramlak") -> np.ndarray:
    """Frequency response (rfft layout) of the windowed ramp for `n_cols` detector pixels.

    The ramp is the Fourier transform of the band-limited spatial kernel
    (``h[0] = 1/4``, ``h[k] = -1/(pi k)^2`` for odd ``k``, 0 for even), which avoids the
    DC offset of a sampled ``|f|``; it is about ``|f|`` with ``f`` in cycles/pixel
    (0..0.5). The ramp is multiplied by a window W(f) (tomopy's names):

    ============  ===========================================  =============
    name          W(f), f in cycles/pixel, 0 <= f <= 0.5       W(0.5)
    ============  ===========================================  =============
    ramlak        1                                            1
    shepp         sin(pi f) / (pi f)                           0.64
    cosine        cos(pi f)                                    0
    hann          (1 + cos(2 pi f)) / 2                        0
    hamming       0.54 + 0.46 cos(2 pi f)                      0.08
    parzen        (1 - 2 f)**3   (tomopy's formula)            0
    butterworth   1 / (1 + (f / 0.4)**16)  (cut-off 0.4, 8th   0.03
                  order)
    none          no ramp either: the response is 1            (1)
    ============  ===========================================  =============

    ``none`` gives a plain back-projection. The transform length is the next power of two
    >= 2 * n_cols (zero padding against wrap-around); the response has ``size // 2 + 1``
    values for ``np.fft.rfftfreq(size)``.
    """
    if filter_name not in FILTERS:
        raise ConfigError(f"recon.filter: unknown filter {filter_name!r} (one of {FILTERS})")
    size = max(64, 1 << int(math.ceil(math.log2(2 * n_cols))))
    f = np.fft.rfftfreq(size)  # cycles/pixel, 0..0.5
    if filter_name == "none":
        return np.ones_like(f)
    k = np.concatenate((np.arange(0, size // 2 + 1), np.arange(-size // 2 + 1, 0)))
    h = np.zeros(size)
    h[0] = 0.25
    odd = k % 2 == 1
    h[odd] = -1.0 / (np.pi * k[odd]) ** 2
    resp = np.real(np.fft.rfft(h))
    if filter_name == "shepp":
        resp *= np.sinc(f)
    elif filter_name == "cosine":
        resp *= np.cos(np.pi * f)
    elif filter_name == "hann":
        resp *= 0.5 * (1.0 + np.cos(2.0 * np.pi * f))
    elif filter_name == "hamming":
        resp *= 0.54 + 0.46 * np.cos(2.0 * np.pi * f)
    elif filter_name == "parzen":
        resp *= (1.0 - 2.0 * f) ** 3
    elif filter_name == "butterworth":
        resp *= 1.0 / (1.0 + (f / 0.4) ** 16)
    return resp


def _filtered_table(
    sino: np.ndarray, filter_name: str, weight: float, dev: torch.device, workers: int = 1
) -> torch.Tensor:
    """Ramp-filtered sinograms laid out for gathering: ``(angles, cols + 3, rows)``.

    ``table[a, d + 1, r]`` is the filtered value of detector column ``d`` (times `weight`);
    column 0 and the last two are zeros, so that a clamped interpolation index reads the
    zero padding outside the detector. Only this table (about the size of the chunk) is
    kept: the FFTs run over blocks of angles whose spectra and inverse transforms take at
    most about ``_FILTER_BLOCK_BYTES`` (16 MiB) per worker, whatever the chunk. On the
    CPU the blocks are shared among `workers` threads (`tomosynth.recon_parallel`).
    """
    import torch

    n_angles, n_rows, n = sino.shape
    resp = torch.as_tensor(ramp_filter(n, filter_name) * weight, dtype=torch.float32, device=dev)
    size = 2 * (resp.shape[0] - 1)
    table = torch.zeros((n_angles, n + 3, n_rows), dtype=torch.float32, device=dev)
    # per detector line: complex spectrum (size / 2 + 1 complex64 = ~4 size bytes), the
    # real inverse transform (4 size bytes) and a line of FFT scratch: < 12 size bytes
    step = max(1, _FILTER_BLOCK_BYTES // (12 * size * n_rows))
    src = torch.from_numpy(sino)

    def work(blocks: list[int]) -> None:
        for a0 in blocks:
            spec = torch.fft.rfft(src[a0 : a0 + step].to(dev), n=size, dim=-1)
            spec *= resp
            line = torch.fft.irfft(spec, n=size, dim=-1)
            del spec
            table[a0 : a0 + step, 1 : n + 1, :] = line[..., :n].transpose(1, 2)
            del line

    blocks = list(range(0, n_angles, step))
    if dev.type == "cuda":
        work(blocks)
    else:
        run_workers(work, blocks, workers)
    return table


def _angle_weight(n_angles: int) -> float:
    # Riemann sum of the FBP integral over [0, pi): d(theta) = pi / n. A 360-degree scan
    # counts every ray twice over [0, 2 pi), so pi / n is right for it as well.
    return math.pi / n_angles


# Angles summed per step of the torch back-projector. Fixed, so that the summation order
# (and hence every bit of a slice) does not depend on the rows or tiles done at once.
_ANGLE_BLOCK = 32
# Working set of one CPU tile (gathered values, indices, weights, accumulator): small
# enough to stay in the L2 cache, large enough that each torch call does real work.
_CPU_TILE_BYTES = 2 * 2**20
_FILTER_BLOCK_BYTES = 16 * 2**20


def _bp_bytes_per_pixel(n_rows: int) -> int:
    """Back-projection temporaries per tile pixel: detector position, two indices (int32)
    and two weights per angle of a block; accumulator and block sum per row."""
    return _ANGLE_BLOCK * (4 + 8 + 8) + 8 * n_rows


def _fbp_torch(
    sino: np.ndarray,
    theta: np.ndarray,
    center: float,
    filter_name: str,
    device: str | torch.device,
    memory_budget_mb: int = 128,
    roi: int | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """Torch FBP; `roi` reconstructs only the centred ``roi x roi`` square of the slice.

    Threads on the CPU: `threads` workers (`tomosynth.recon_parallel`), each on its own
    tiles with torch at one intra-op thread; the caller's torch setting is left alone.
    """
    import torch

    with torch.no_grad():
        return _backproject(
            sino, theta, center, filter_name, device, memory_budget_mb, roi, threads
        )


def _backproject(
    sino: np.ndarray,
    theta: np.ndarray,
    center: float,
    filter_name: str,
    device: str | torch.device,
    memory_budget_mb: int,
    roi: int | None,
    threads: int | None = None,
) -> np.ndarray:
    """Pixel-driven back-projection with 1D linear interpolation along the detector.

    The filtered chunk becomes a gather table (`_filtered_table`). For each tile of pixels
    and block of `_ANGLE_BLOCK` angles, one ``embedding_bag`` call gathers, for every pixel,
    the two detector samples around its position at each angle and sums them with weights
    ``1 - frac`` and ``frac``: interpolation and angular sum in one pass over all rows of
    the chunk, no angles x pixels x rows tensor. On the CPU the tiles are shared among
    `threads` workers; every pixel sums its angles in the same fixed order whatever the
    tile's worker, so the slices are bit-identical for any thread count.
    """
    import torch

    dev = select_device(device)
    workers = 1 if dev.type == "cuda" else cpu_threads(threads)
    sino = np.ascontiguousarray(sino, dtype=np.float32)
    n_angles, n_rows, n = sino.shape
    table = _filtered_table(sino, filter_name, _angle_weight(n_angles), dev, workers)
    m = n if roi is None else int(min(roi, n))
    first = (n - m) // 2
    # pixel (i, j) sits at x = coords[j], y = -coords[i]; its padded-table position is
    # d + 1 = x cos + y sin + center + 0.5 (float64 here, float32 per block: < 1e-3 px)
    coords = torch.arange(first, first + m, dtype=torch.float64, device=dev) + 0.5 - n / 2.0
    th = torch.as_tensor(np.asarray(theta, dtype=np.float64), device=dev)
    # (m, angles) tables, pixel-major like the blocks below: x cos by column, and
    # center + 0.5 + y sin by row (built in place: at most 16 bytes per entry at once)
    xcos_t = (coords[:, None] * torch.cos(th)[None, :]).float()
    prod = coords[:, None] * torch.sin(th)[None, :]
    ysin_t = prod.neg_().add_(center + 0.5).float()
    del prod
    budget = memory_budget_mb * 2**20
    if dev.type != "cuda":
        budget = min(budget, _CPU_TILE_BYTES)
    pixels = max(1, budget // _bp_bytes_per_pixel(n_rows))
    tile_w = min(m, pixels)
    tile_h = max(1, min(m, pixels // tile_w))
    out = torch.empty((n_rows, m, m), dtype=torch.float32, device=dev)
    tiles = [
        (i0, min(tile_h, m - i0), j0, min(tile_w, m - j0))
        for i0 in range(0, m, tile_h)
        for j0 in range(0, m, tile_w)
    ]

    def work(mine: list[tuple[int, int, int, int]]) -> None:
        with torch.no_grad():
            _backproject_tiles(table, xcos_t, ysin_t, out, mine, tile_h * tile_w)

    if dev.type == "cuda":
        work(tiles)
    else:
        run_workers(work, tiles, workers)
    return out.cpu().numpy()


def _backproject_tiles(
    table: torch.Tensor,
    xcos_t: torch.Tensor,
    ysin_t: torch.Tensor,
    out: torch.Tensor,
    tiles: list[tuple[int, int, int, int]],
    cap: int,
) -> None:
    """One worker's tiles ``(i0, h, j0, w)`` of `_backproject` into `out`, with its own
    buffers (allocated once) for tiles of at most `cap` pixels."""
    import torch
    import torch.nn.functional as F

    dev = table.device
    n_angles, stride, n_rows = table.shape
    n = stride - 3
    flat = table.view(-1, n_rows)  # row a * (n + 3) + d + 1: all rows of one sample
    base = torch.arange(n_angles, dtype=torch.int32, device=dev) * stride  # table row of a
    a_blk = min(_ANGLE_BLOCK, n_angles)
    f32 = dict(dtype=torch.float32, device=dev)
    det = torch.empty(a_blk * cap, **f32)
    # one "bag" per pixel: for each angle of a block the detector sample below its position
    # (weight 1 - frac), then for each the one above (weight frac); embedding_bag gathers
    # and sums a bag in one pass, in this fixed order
    idx = torch.empty((cap, 2, a_blk), dtype=torch.int32, device=dev)
    wgt = torch.empty((cap, 2, a_blk), **f32)
    acc = torch.empty((cap, n_rows), **f32)
    offsets = {}
    for i0, h, j0, w in tiles:
        p = h * w
        acc_t = acc[:p]
        acc_t.zero_()
        for a0 in range(0, n_angles, a_blk):
            ab = min(a_blk, n_angles - a0)
            d = det[: ab * p]
            torch.add(
                xcos_t[None, j0 : j0 + w, a0 : a0 + ab],
                ysin_t[i0 : i0 + h, None, a0 : a0 + ab],
                out=d.view(h, w, ab),
            )
            d.clamp_(0.0, n + 1.0)  # off the detector: the zero padding
            ix, wt = idx[:p, :, :ab], wgt[:p, :, :ab]
            d = d.view(p, ab)
            ix[:, 0].copy_(d)  # truncation = floor for d >= 0
            ix[:, 0].add_(base[a0 : a0 + ab])
            torch.add(ix[:, 0], 1, out=ix[:, 1])
            torch.frac(d, out=wt[:, 1])
            torch.sub(1.0, wt[:, 1], out=wt[:, 0])
            key = (p, ab)
            if key not in offsets:
                offsets[key] = torch.arange(p, dtype=torch.int32, device=dev) * (2 * ab)
            acc_t += F.embedding_bag(
                ix.reshape(-1), flat, offsets[key], mode="sum", per_sample_weights=wt.reshape(-1)
            )
        out[:, i0 : i0 + h, j0 : j0 + w] = acc_t.view(h, w, n_rows).permute(2, 0, 1)


def _fourier_shift(sino: np.ndarray, shift: float) -> np.ndarray:
    """``out[..., e] = sino[..., e + shift]`` by band-limited interpolation (zero padded)."""
    n = sino.shape[-1]
    size = 1 << int(math.ceil(math.log2(2 * n)))
    spec = np.fft.rfft(sino, n=size, axis=-1)
    spec *= np.exp(2j * np.pi * np.fft.rfftfreq(size) * shift)
    return np.fft.irfft(spec, n=size, axis=-1)[..., :n].astype(np.float32)


_ASTRA_FILTERS = {
    "ramlak": "ram-lak",
    "shepp": "shepp-logan",
    "cosine": "cosine",
    "hann": "hann",
    "hamming": "hamming",
    "parzen": "parzen",
    "none": "none",
}


def _fbp_astra(sino: np.ndarray, theta: np.ndarray, center: float, filter_name: str) -> np.ndarray:
    try:
        import astra
    except ImportError as exc:
        raise ConfigError(
            "recon.backend: 'astra' needs astra-toolbox (pip install astra-toolbox)"
        ) from exc
    if filter_name not in _ASTRA_FILTERS:
        raise ConfigError(
            f"recon.filter: {filter_name!r} is not available with the astra backend "
            f"(one of {tuple(_ASTRA_FILTERS)})"
        )
    astra_filter = _ASTRA_FILTERS[filter_name]
    n_angles, n_rows, n = sino.shape
    # astra's CPU FBP only takes the 'parallel' geometry, whose axis is at n/2: move our axis
    # there first. Its angles are ours (same geometry, see the module docstring).
    shift = center - n / 2.0 if abs(center - n / 2.0) > 1e-6 else 0.0
    vol_geom = astra.create_vol_geom(n, n)
    proj_geom = astra.create_proj_geom("parallel", 1.0, n, np.asarray(theta, dtype=np.float64))
    proj_id = astra.create_projector("linear", proj_geom, vol_geom)
    out = np.empty((n_rows, n, n), dtype=np.float32)
    try:
        for r in range(n_rows):
            line = sino[:, r, :] if shift == 0.0 else _fourier_shift(sino[:, r, :], shift)
            sid = astra.data2d.create("-sino", proj_geom, np.ascontiguousarray(line))
            rid = astra.data2d.create("-vol", vol_geom)
            cfg = astra.astra_dict("FBP")
            cfg.update(ProjectorId=proj_id, ProjectionDataId=sid, ReconstructionDataId=rid)
            cfg["FilterType"] = astra_filter
            alg = astra.algorithm.create(cfg)
            try:
                astra.algorithm.run(alg)
                out[r] = astra.data2d.get(rid)
            finally:
                astra.algorithm.delete(alg)
                astra.data2d.delete([sid, rid])
    finally:
        astra.projector.delete(proj_id)
    return out


def _fbp_tomopy(sino: np.ndarray, theta: np.ndarray, center: float, filter_name: str) -> np.ndarray:
    try:
        import tomopy
    except ImportError as exc:
        raise ConfigError(
            "recon.backend: 'tomopy' is not importable here (conda install -c conda-forge tomopy, "
            "or use the envs/tomopy.yaml environment)"
        ) from exc
    rec = tomopy.recon(
        np.ascontiguousarray(sino, dtype=np.float32),
        np.asarray(theta, dtype=np.float32),
        center=float(center),
        algorithm="gridrec",
        filter_name=filter_name,
        sinogram_order=False,
        # the CPUs this process may use (a cluster job's allocation), not the whole node
        ncore=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    )
    return np.asarray(rec, dtype=np.float32)


def tomopy_available() -> bool:
    """Whether tomopy can be imported in this environment."""
    import importlib.util

    return importlib.util.find_spec("tomopy") is not None


def resolve_backend(backend: str) -> str:
    """``"auto"`` -> ``"tomopy"`` when importable, else ``"fourier"``; validates the name."""
    if backend not in BACKENDS:
        raise ConfigError(f"recon.backend: unknown backend {backend!r} (one of {BACKENDS})")
    if backend == "auto":
        return "tomopy" if tomopy_available() else "fourier"
    return backend


def fbp(
    sinograms: np.ndarray,
    theta: np.ndarray,
    center: float | None = None,
    filter_name: str = "ramlak",
    backend: str = "torch",
    device: str | torch.device = "auto",
    memory_budget_mb: int = 128,
    threads: int | None = None,
) -> np.ndarray:
    """Filtered back-projection of minus-log projections.

    Parameters
    ----------
    sinograms : (angles, rows, cols) array
        Line integrals in pixel units (e.g. from `minus_log`).
    theta : (angles,) array
        Radians; uniformly spaced over 180 or 360 degrees (the angular weight is
        ``pi / angles``).
    center : float, optional
        Rotation axis in detector pixels; ``None`` means ``cols / 2``.
    filter_name : {"ramlak", "shepp", "cosine", "hann", "hamming", "parzen", "butterworth", "none"}
        Window of the ramp filter (`ramp_filter`, which states each); ``none`` gives an
        unfiltered back-projection (blurred, in pixel-length units, for diagnostics only).
        ``ramlak`` and ``shepp`` match tomopy's gridrec, whose ``hann`` and ``hamming``
        (default ``filter_par``) are narrower than ours. The astra backend has no
        ``butterworth``.
    backend : {"torch", "astra", "tomopy", "fourier", "auto"}
        ``torch``: this module's FBP (GPU when available, always installed). ``astra``:
        astra-toolbox CPU FBP. ``tomopy``: ``tomopy.recon(algorithm="gridrec")``.
        ``fourier``: the same FBP sum evaluated as a non-uniform FFT (`_fbp_fourier`;
        finufft on the CPU, torch gridding on CUDA), O(N^2 log N) per slice. ``auto``
        is tomopy when importable, else fourier. A missing library raises ConfigError.
    device : str
        Torch device for the torch backend (``"auto"``: CUDA when present).
    memory_budget_mb : int
        Bound on the torch back-projector's tile (indices, weights, accumulator); on the CPU
        the tile is also capped at 2 MiB (cache-sized), on CUDA it is the whole budget.
        Besides the tile the torch backend holds the filtered chunk (about the size of the
        input) and the slices (see `recon_memory_bound_mb`).
    threads : int, optional
        CPU threads of this call (torch and fourier backends): give the job's allocation
        (a Snakemake rule's ``threads``); ``None``: ``OMP_NUM_THREADS`` when set, else every
        CPU this process may use (`tomosynth.recon_parallel.cpu_threads`). The work is
        shared among that many worker threads, each with single-threaded kernels (torch at
        one intra-op thread, in that worker only): the caller's torch setting is never
        changed, a shared core slows the call down gracefully, and the result is
        bit-identical whatever the thread count.

    Returns
    -------
    (rows, cols, cols) float32
        Attenuation per pixel: every backend reconstructs a block of ``mu * voxel = 1``
        to about 1 (tomopy's gridrec and astra's FBP use this scale natively).
    """
    sino = np.asarray(sinograms, dtype=np.float32)
    if sino.ndim == 2:
        sino = sino[:, None, :]
    if sino.ndim != 3:
        raise ValueError(f"sinograms must be (angles, rows, cols), got shape {sino.shape}")
    theta = _as_theta(theta, sino.shape[0])
    if filter_name not in FILTERS:
        raise ConfigError(f"recon.filter: unknown filter {filter_name!r} (one of {FILTERS})")
    c = sino.shape[2] / 2.0 if center is None else float(center)
    backend = resolve_backend(backend)
    if backend == "torch":
        return _fbp_torch(sino, theta, c, filter_name, device, memory_budget_mb, threads=threads)
    if backend == "astra":
        return _fbp_astra(sino, theta, c, filter_name)
    if backend == "fourier":
        return _fbp_fourier(sino, theta, c, filter_name, device, memory_budget_mb, threads)
    return _fbp_tomopy(sino, theta, c, filter_name)


# --------------------------------------------------------------------------------------
# Centre of rotation
# --------------------------------------------------------------------------------------


def _center_sharpness(
    sino: np.ndarray,
    theta: np.ndarray,
    search: float,
    filter_name: str,
    device: str | torch.device,
    roi: int = 256,
    max_angles: int = 360,
    threads: int | None = None,
) -> float:
    # A wrong centre smears every edge into arcs; the correct one gives the most
    # concentrated histogram of the slice, i.e. the lowest Shannon entropy. Only a central
    # roi x roi square of at most 2 rows from at most `max_angles` angles is reconstructed
    # per candidate, at full resolution, so the cost does not grow with the detector width.
    n_angles, n_rows, n = sino.shape
    mid = n_rows // 2
    sino = sino[:, max(0, mid - 1) : mid + 1]
    step_a = max(1, int(math.ceil(n_angles / max_angles)))
    sino, theta = sino[::step_a], theta[::step_a]
    m = min(roi, n)
    inside = np.add.outer(*(2 * [(np.arange(m) + 0.5 - m / 2.0) ** 2])) < (0.48 * m) ** 2

    def recon_roi(c: float) -> np.ndarray:
        return _fbp_torch(sino, theta, c, filter_name, device, roi=m, threads=threads)[:, inside]

    lo, hi = np.percentile(recon_roi(n / 2.0), [0.5, 99.5])
    pad = 0.25 * (hi - lo) + 1e-12
    lo, hi = lo - pad, hi + pad

    def entropy(c: float) -> float:
        hist, _ = np.histogram(np.clip(recon_roi(c), lo, hi), bins=128, range=(lo, hi))
        p = hist[hist > 0] / hist.sum()
        return float(-(p * np.log(p)).sum())

    best = n / 2.0
    lo_c, hi_c = n / 2.0 - search, n / 2.0 + search  # the refinement stays in the range too
    for step in (1.0, 0.25):
        cands = best + np.arange(-search, search + 1e-9, step)
        cands = cands[(cands >= lo_c - 1e-9) & (cands <= hi_c + 1e-9)]
        best = float(cands[int(np.argmin([entropy(c) for c in cands]))])
        search = 2 * step
    return best


#: ``find_center(method="auto")`` takes the opposite-pair correlation only this close to Vo's.
_PAIR_AGREEMENT_PX = 0.5


def find_center(
    proj: np.ndarray,
    theta: np.ndarray,
    method: str = "auto",
    search: float | None = None,
    filter_name: str = "ramlak",
    device: str | torch.device = "auto",
    threads: int | None = None,
) -> float:
    """Find the rotation axis (detector column, pixels) from minus-log projections.

    Parameters
    ----------
    proj : (angles, rows, cols) or (angles, cols) array
        Minus-log projections of a few detector rows.
    theta : (angles,) array
        Radians.
    method : {"auto", "vo", "correlation", "entropy"}
        ``vo``: Vo's Fourier metric over the whole half-turn sinogram
        (`tomosynth.recon_center.find_center_vo`, as tomopy's ``find_center_vo``): about
        0.01-0.3 px on noisy scans, searched within `search` (default 50) pixels of
        ``cols / 2``. ``auto``: ``vo``, replaced by the ``correlation`` result when two
        angles are 180 degrees apart and it lies within 0.5 px of Vo's (exact on clean
        data; a noisy pair, which can be many pixels off, is never used). ``correlation``: mirror the projection 180 degrees from the first
        one and locate its shift by cross-correlation; needs two angles within 0.01
        degrees of 180 apart, and uses only those two projections (noise-sensitive).
        ``entropy``: reconstruct the central 256 x 256 pixels of up to 2 rows at
        candidate centres (1 px, then 0.25 px steps within `search`, default 20, of
        ``cols / 2``) and keep the lowest histogram entropy.
    search : float, optional
        Half-width of the search in pixels.
    threads : int, optional
        CPU threads (`tomosynth.recon_parallel.cpu_threads`).

    Returns
    -------
    float
        Centre in detector pixels, same convention as `fbp` (``cols / 2`` is the middle).
    """
    p = np.asarray(proj, dtype=np.float32)
    if p.ndim == 2:
        p = p[:, None, :]
    theta = _as_theta(theta, p.shape[0])
    pair = opposite_pair(theta, tol=np.deg2rad(0.01))
    if method in ("auto", "vo"):
        found = find_center_vo(p, theta, 50.0 if search is None else search, threads=threads)
        if method == "auto" and pair is not None:
            # an exact opposite pair pins the axis exactly on clean data (Vo's metric is
            # ~0.3 px on small detectors); trusted only where it agrees with Vo's
            paired = center_correlation(p, *pair)
            if abs(paired - found) <= _PAIR_AGREEMENT_PX:
                return paired
        return found
    if method == "correlation":
        if pair is None:
            raise ValueError("find_center: no two angles are 180 degrees apart; use 'vo'")
        return center_correlation(p, *pair)
    if method == "entropy":
        # A centre far outside the middle half of the detector is never plausible; on small
        # detectors an unbounded search finds entropy minima outside the detector itself.
        search = min(20.0 if search is None else float(search), p.shape[-1] / 4.0)
        return _center_sharpness(p, theta, search, filter_name, device, threads=threads)
    raise ConfigError(
        f"recon.center_method: unknown method {method!r} (auto, vo, correlation, entropy)"
    )


# --------------------------------------------------------------------------------------
# Fourier-domain FBP (backend "fourier")
# --------------------------------------------------------------------------------------
#
# FBP writes every pixel as a sum over angles of the filtered projection q_a evaluated at
# the detector position u = X cos(theta) + Y sin(theta) + center - 0.5. With q_a expanded
# in its discrete Fourier series over a window of L detector pixels,
#
#     f(X, Y) = (pi / angles) / L * sum_a sum_k Q_a[k] exp(2 pi i k (u - lo) / L),
#
# which is a type-1 (adjoint) non-uniform FFT from the polar frequencies
# (2 pi k cos(theta) / L, 2 pi k sin(theta) / L) onto the pixel grid: O(N^2 log N) per
# slice instead of O(N^3). The interpolation between detector pixels is trigonometric
# (exact for band-limited data) where the pixel-driven FBP interpolates linearly. Two
# slices travel as one complex sinogram p1 + i p2 (the operator is real and linear, so
# the result is f1 + i f2), as in gridrec. CPU: finufft; CUDA (or without finufft): the
# same sum by this module's own gridding in torch (a sparse spreading matrix built once
# per geometry, one 2D FFT per slice pair).

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

    Includes the returned ``(rows, cols, cols)`` float32 slices; excludes the caller's
    sinograms. With ``A`` angles, ``R`` rows, ``C`` columns, ``M`` the ramp filter's
    transform length (``ramp_filter``: power of two >= 2 C), ``L`` the window
    (``_fourier_window``: the next 3-5-7-11-smooth odd length >= C + 10) and ``T`` the
    workers (``min(threads, ceil(R / 2))``, each with its own buffers and plan)::

        4 R C^2                      # result
      + 4 A R C                      # float32 copy of the input
      + T * (                        # per worker:
          8 A M * 2                  #   one slice pair's padded spectrum + its inverse
        + 8 A L * 3                  #   window (if gathered), its spectrum, weights
        + 8 A L * 3                  #   NUFFT points (2 x float32), sort index (int64)
        + 8 C^2 + 8 (1.25 C + 16)^2 * 2 )  # complex pair output; fine grid + its FFT
      + 64 MiB                       # allocator slack, FFT plans, kernel tables
    """
    a, r, c = int(n_angles), int(n_rows), int(n_cols)
    workers = max(1, min(int(threads), (r + 1) // 2))
    m = max(64, 1 << int(math.ceil(math.log2(2 * c))))
    length = max(_fourier_window(c, c / 2.0 + f)[1] for f in (0.0, 0.25, 0.5))
    fine = int(1.25 * c) + 16
    per_worker = 16 * a * m + 48 * a * length + 8 * c * c + 16 * fine * fine
    return 4 * r * c * c + 4 * a * r * c + workers * per_worker + 64 * 2**20


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

    `engine` is ``"finufft"`` (CPU) or ``"torch"`` (own gridding; any torch device); by
    default finufft on the CPU when importable, torch on CUDA. `memory_budget_mb` bounds
    the slice pairs the torch engine transforms at once (per worker on the CPU); `threads`
    is the number of workers (`tomosynth.recon_parallel`), each with single-threaded
    finufft plans, FFTs and torch kernels.
    """
    n_angles, n_rows, n = sino.shape
    resp = ramp_filter(n, filter_name)
    if engine is None:
        engine = "torch"
        # a plain "cpu" needs no torch import (its libraries alone are ~0.4 GB resident)
        if device == "cpu" or select_device(device).type == "cpu":
            import importlib.util

            if importlib.util.find_spec("finufft") is not None:
                engine = "finufft"
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


def _fourier_rows(
    sino: np.ndarray, resp: np.ndarray, planned: tuple, starts: list[int], out: np.ndarray
) -> None:
    """Reconstruct the row pairs starting at `starts` into `out` with one worker's
    `_finufft_plan` result (plan, window start, window length, weights)."""
    import scipy.fft

    n_angles, n_rows, n = sino.shape
    size = 2 * (resp.shape[0] - 1)
    full = np.concatenate((resp, resp[-2:0:-1])).astype(np.float32)  # real, even: fft layout
    plan, lo, length, weight = planned
    # The detector goes to columns off..off+n of the zero-padded buffer, so that the window
    # (detector index lo..lo+L) is the buffer's first L columns when it fits (circular
    # convolution commutes with the shift); otherwise gather it modulo the buffer length.
    off = min(max(-lo, 0), size - n)
    start = lo + off
    take = None if 0 <= start and start + length <= size else (start + np.arange(length)) % size
    pair = np.empty((n, n), dtype=np.complex64)
    buf = np.zeros((n_angles, size), dtype=np.complex64)
    for r in starts:
        buf[:, :off] = 0.0
        buf[:, off + n :] = 0.0
        buf[:, off : off + n].real = sino[:, r]
        buf[:, off : off + n].imag = sino[:, r + 1] if r + 1 < n_rows else 0.0
        spec = scipy.fft.fft(buf, axis=-1, workers=1, overwrite_x=True)
        spec *= full
        q = scipy.fft.ifft(spec, axis=-1, workers=1, overwrite_x=True)
        win = q[:, start : start + length] if take is None else q[:, take]
        coef = scipy.fft.fft(win, axis=-1, workers=1)
        coef *= weight
        plan.execute(coef.reshape(-1), out=pair)
        buf = q  # scipy transformed in place (overwrite_x), or handed back a new buffer
        out[r] = pair.real
        if r + 1 < n_rows:
            out[r + 1] = pair.imag


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
    g = 2 * n + (2 * n) % 2
    while True:  # 2^a 3^b 5^c: fast 2D FFT lengths
        r = g
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        if r == 1:
            break
        g += 2
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
    # deapodisation: integral of the kernel times cos(k * 2 pi z / G), Gauss-Legendre
    nodes, wts = np.polynomial.legendre.leggauss(4 * width + 32)
    z = nodes * width / 2.0
    ker = np.exp(beta * (np.sqrt(1.0 - nodes**2) - 1.0))
    k = np.arange(-(n // 2), n - n // 2)
    deap = (wts * ker * width / 2.0) @ np.cos(2.0 * np.pi * np.outer(z, k) / g)
    entry = (mat, torch.as_tensor(1.0 / deap, dtype=torch.float32, device=dev), g)
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
    shared among `threads` workers (`tomosynth.recon_parallel`), bit-identically."""
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


# --------------------------------------------------------------------------------------
# Whole scans, chunked over detector rows
# --------------------------------------------------------------------------------------

# Reconstructed voxel = detector pixel: the simulator's `voxel_size_um` (phantom voxel times
# binning) comes before its phantom `voxel_um`.
_VOXEL_ATTRS = ("voxel_size_um", "pixel_size_um", "voxel_um", "voxel_size", "pixel_size")


def _voxel_size(attrs: dict) -> float | None:
    for key in _VOXEL_ATTRS:
        value = attrs.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def _preprocess(
    proj: np.ndarray,
    flat: np.ndarray,
    dark: np.ndarray,
    stripe_removal: str,
    stripe_size: int,
    threads: int | None = None,
) -> np.ndarray:
    """`normalize`, `minus_log` (fused and threaded: `tomosynth.recon_prep`), `remove_stripes`."""
    sino = flat_minus_log(proj, flat, dark, threads=threads)
    return remove_stripes(sino, method=stripe_removal, size=stripe_size)


def _peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB.

    Linux's ``VmHWM`` (reset by exec, unlike ``ru_maxrss``, which keeps the high-water mark
    of the process that spawned us, e.g. Snakemake); ``ru_maxrss`` elsewhere.
    """
    import resource
    import sys

    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024.0  # bytes vs KiB


def recon_memory_bound_mb(
    n_angles: int,
    n_flats: int,
    n_darks: int,
    chunk_rows: int,
    n_cols: int,
    backend: str,
    memory_budget_mb: int,
    threads: int | None = None,
) -> float:
    """Upper bound (MiB) of the peak RSS growth of `reconstruct_scan` above its imports.

    With ``A`` angles, ``F`` flats, ``D`` darks, ``R = chunk_rows``, ``C`` columns,
    ``E = 4 R C`` bytes (one float32 projection of a chunk), ``S`` the filter's FFT length
    (next power of two >= 2 C, `ramp_filter`) and ``B = memory_budget_mb``, in bytes::

        2 * 4 R C**2                        # slices: this chunk's + the previous one's
      + max(prep, backproject)
      + 2 * 4 C**2 + 64 MiB                 # TIFF write of a slice; allocator, libraries

        prep = (A + F + D) E'               # counts read as float32 (E' = E for
             + max(A E' / 4, 3 A E')        # max(R, 8) rows: the centre search reads 8);
                                            # finite-check mask / normalise, minus-log and
                                            # stripe temporaries (three at once at most)
        torch  = A E + A (C + 3) 4 R        # minus-log chunk + filtered gather table
               + t max(16 MiB, 12 S R)      # ramp filter: a block of FFT lines per worker
               + 16 A C                     # per-angle detector offsets (float64 -> 32)
               + 2 t min(B MiB, 2 MiB)      # back-projection tile per worker (+ one copy)
        astra  = A E + 16 A S + 8 A C + 8 C**2   # per slice: Fourier axis shift, copies
        tomopy = 3 A E + 16 t (2 S)**2      # estimate (not measured): copies, t threads'
                                            # gridrec grids
        fourier = A E + `_fourier_working_set_bytes` (A, R, C, t)  # minus-log chunk +
                                            # the NUFFT call (its result slices included)

    ``t`` is `threads` (`tomosynth.recon_parallel.cpu_threads`: by default
    ``OMP_NUM_THREADS``, else the CPUs this process may use).

    Any other backend name (one whose term is not known here) gets the largest of these.
    The torch term is for the CPU device; on CUDA the table and tiles live in GPU memory
    but the CUDA context adds about 0.3-0.5 GB of host memory that this does not count.
    ``benchmarks/bench_recon.py --memory`` measures the torch case at 2048 x 1500.
    """
    a, f, d = int(n_angles), int(n_flats), int(n_darks)
    r, c = int(chunk_rows), int(n_cols)
    e = 4 * r * c
    size = max(64, 1 << int(math.ceil(math.log2(2 * c))))
    rc = max(r, 8)
    e_prep = 4 * rc * c
    prep = (a + f + d) * e_prep + max(a * e_prep // 4, 3 * a * e_prep)
    threads = cpu_threads(threads)
    workers = threads
    terms = {
        "torch": a * e
        + a * (c + 3) * 4 * r
        + workers * max(_FILTER_BLOCK_BYTES, 12 * size * r)
        + 16 * a * c
        + 2 * workers * min(int(memory_budget_mb) * 2**20, _CPU_TILE_BYTES),
        "astra": a * e + 16 * a * size + 8 * a * c + 8 * c * c,
        "tomopy": 3 * a * e + 16 * int(threads or 1) * (2 * size) ** 2,
        "fourier": a * e + _fourier_working_set_bytes(a, r, c, threads or 1),
    }
    if backend == "auto":
        backend = resolve_backend(backend)
    work = terms.get(backend, max(terms.values()))
    total = 2 * 4 * r * c * c + max(prep, work) + 2 * 4 * c * c + 64 * 2**20
    return total / 2**20


def reconstruct_scan(
    h5_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    backend: str = "auto",
    filter_name: str = "ramlak",
    center: float | str | None = "auto",
    stripe_removal: str = "none",
    stripe_size: int = 11,
    chunk_rows: int = 16,
    slices: tuple[int, int] | list[int] | None = None,
    device: str = "auto",
    center_method: str = "auto",
    memory_budget_mb: int = 128,
    threads: int | None = None,
    theta_units: str | None = None,
    bad_rows: str = "error",
) -> dict:
    """Reconstruct a DXchange scan into float32 TIFF slices, chunk by chunk, resumably.

    For each chunk of `chunk_rows` detector rows: read -> `normalize` -> `minus_log` ->
    `remove_stripes` -> `fbp` -> ``slice_{index:05d}.tiff`` (absolute row index). Finished
    chunks go to the partial folder ``.<out_dir name>.partial`` beside `out_dir`
    (`tomosynth.resume.PartialOutput`); when all are done they are renamed onto `out_dir`
    together with ``recon.json`` (the provenance returned here), so `out_dir` appears only
    complete. A killed run leaves the partial folder; rerunning with the same scan and
    settings reuses every finished chunk (the log says ``reusing N of M chunks`` and why),
    and a changed scan, backend, filter, centre or stripe setting discards them (the log
    names the change). Bad input (`DataError`) deletes the partial folder.

    Chunked, compressed HDF5 files whose chunks span many detector rows (e.g. one chunk
    per projection) are first copied once into a sinogram-ordered scratch file in the
    partial folder (`tomosynth.io.plan_row_reads`, `tomosynth.io.SinogramScratch`), so that
    every HDF5 chunk is decompressed once instead of once per chunk of rows; this costs
    disk space equal to the uncompressed scan (rows in range), and is skipped with a
    warning when the disk lacks it.

    Peak memory is bounded by the chunk, not the scan: `recon_memory_bound_mb` states the
    bound (counts, pre-processing temporaries, filter and back-projection working sets,
    this chunk's and the previous chunk's slices, the TIFF write) and is recorded as
    ``memory_bound_mb`` in ``recon.json``; ``benchmarks/bench_recon.py --memory`` measures
    it. For 1,500 angles, 2048 columns and ``chunk_rows=16`` (torch) it is 1,362 MiB.

    Parameters
    ----------
    h5_path : path-like
        DXchange file (see `tomosynth.io.read_dxchange`).
    out_dir : path-like
        Output folder, replaced atomically.
    backend, filter_name, device
        See `fbp`; ``backend="auto"`` is tomopy when importable, else fourier.
    center : float, "auto" or None
        Rotation axis in detector pixels; ``"auto"`` finds it once (`find_center`) from up
        to 8 rows around the middle of the range (cached in the partial folder for a
        rerun); ``None`` is ``cols / 2``.
    stripe_removal, stripe_size
        See `remove_stripes` (``"none"`` or ``"median"``).
    chunk_rows : int
        Detector rows per chunk (>= 1); results do not depend on it.
    slices : (start, stop), optional
        Half-open detector row range to reconstruct; ``None`` is all rows.
    center_method : {"auto", "vo", "correlation", "entropy"}
        See `find_center`; used when ``center="auto"``.
    memory_budget_mb : int
        Working-set target of the torch back-projector (see `fbp`) and of the scratch
        file's transposition.
    threads : int, optional
        CPU threads of the job (the rule's ``threads``): the backend's workers and the
        pre-processing (see `fbp`); ``None``: ``OMP_NUM_THREADS``, else the CPUs this
        process may use. Torch's own thread setting is never changed.
    theta_units : {"degrees", "radians"}, optional
        Unit of ``/exchange/theta`` for files without a ``units`` attribute
        (see `tomosynth.io.inspect_dxchange`).
    bad_rows : {"error", "mask"}
        Saturated or over-flat detector rows stop the run or are masked
        (`tomosynth.scan_checks.check_rows`); stuck angles stop it, gaps are logged.

    Returns
    -------
    dict
        The contents of ``recon.json``: scan, centre (pixels) and how it was chosen,
        backend, filter, stripe settings, row range, chunk_rows, ``voxel_um`` (from the
        file's attributes, else null), seconds, ``peak_rss_mb`` (whole process, imports
        included), ``memory_bound_mb`` (the bound above, on top of the imports),
        ``read_order`` (mode and reason) and ``resume`` (chunks in all, reused, computed,
        and the reason).

    Raises
    ------
    DataError
        Unreadable or inconsistent file, or a slice range outside the scan (naming it).
    ConfigError
        Unknown backend/filter, a backend whose library is missing, ``chunk_rows < 1``.
    """
    from tqdm import tqdm

    start_time = time.perf_counter()
    h5_path = Path(h5_path)
    if int(chunk_rows) < 1:
        raise ConfigError(f"recon.chunk_rows: must be >= 1, got {chunk_rows}")
    chunk_rows = int(chunk_rows)
    backend_used = resolve_backend(backend)
    if filter_name not in FILTERS:
        raise ConfigError(f"recon.filter: unknown filter {filter_name!r} (one of {FILTERS})")
    info = inspect_dxchange(h5_path, theta_units=theta_units)
    check_angles(h5_path, info.theta)  # stuck angles stop; gaps are logged (scan_checks)
    if slices is None:
        r0, r1 = 0, info.n_rows
    else:
        if len(slices) != 2:
            raise ConfigError(f"recon.slices: expected [start, stop], got {slices!r}")
        r0, r1 = int(slices[0]), int(slices[1])
        if not (0 <= r0 < r1 <= info.n_rows):
            raise DataError(
                f"{h5_path}: slice range [{r0}, {r1}) is empty or outside the scan's "
                f"{info.n_rows} detector rows (valid: 0 <= start < stop <= {info.n_rows})"
            )
    if not (center in ("auto", None) or isinstance(center, int | float)) or isinstance(
        center, bool
    ):
        raise ConfigError(f"recon.center: expected a number, 'auto' or null, got {center!r}")

    digest = scan_digest(h5_path, theta_units)
    code = code_digest("tomosynth.recon", "tomosynth.recon_center", "tomosynth.io")
    partial = PartialOutput(out_dir)
    chunks = [(a, min(a + chunk_rows, r1)) for a in range(r0, r1, chunk_rows)]
    try:
        # Read order first: the scratch copy (if any) also serves the centre search.
        mode, why = plan_row_reads(h5_layout(h5_path, theta_units), r1 - r0, chunk_rows)
        scratch = None
        scratch_info: dict = {}
        if mode == "transpose":
            scratch = SinogramScratch(
                partial.scratch, h5_path, (r0, r1), digest, memory_budget_mb, theta_units
            )
            partial.root.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(partial.root).free
            # the file fills frame by frame (sparse until written): what is left to write
            need = scratch.nbytes * (scratch.n_frames - scratch.frames_done()) // scratch.n_frames
            if free < need:
                mode, scratch = "direct", None
                why += (
                    f"; but the scratch copy needs {need / 2**30:.1f} GiB, free {free / 2**30:.1f}"
                )
                _log.warning("%s: %s, reading directly", h5_path, why)
        center_cached = False
        if center == "auto":
            mid = (r0 + r1) // 2
            c0 = max(r0, mid - 4)
            c1 = min(r1, c0 + 8)
            key = {
                "scan": digest,
                "rows": [c0, c1],
                "method": center_method,
                "stripe_removal": stripe_removal,
                "stripe_size": int(stripe_size),
                "code": code,
            }
            found = partial.cached("center", key)
            center_cached = found is not None
            if found is None:
                if scratch is not None:
                    scratch_info = _build_scratch(scratch, h5_path)
                p = (
                    scratch.read(c0, c1)
                    if scratch is not None
                    else read_dxchange(h5_path, (c0, c1), theta_units=theta_units)
                )
                sino = _preprocess(p.data, p.flat, p.dark, stripe_removal, stripe_size, threads)
                found = find_center(
                    sino, info.theta, method=center_method, device=device, threads=threads
                )
                partial.store("center", key, float(found))
                del p, sino
            center_px = float(found)
            center_source = f"auto ({center_method}, rows {c0}..{c1})"
        elif center is None:
            center_px, center_source = info.n_cols / 2.0, "default (cols / 2)"
        else:
            center_px, center_source = float(center), "given"

        provenance = {
            "scan_digest": digest,
            "code": code,
            "numpy": np.__version__,
            "backend": backend_used,
            "filter": filter_name,
            "center": center_px,
            "stripe_removal": stripe_removal,
            "stripe_size": int(stripe_size),
        }
        reason = partial.open(provenance)
        todo = [c for c in chunks if not partial.is_done(*c)]
        n_reused = len(chunks) - len(todo)
        _log.info(
            "%s: reusing %d of %d chunks (%s)", Path(out_dir).name, n_reused, len(chunks), reason
        )
        _log.info("%s: read order %s (%s)", h5_path.name, mode, why)
        if scratch is not None and todo and not scratch_info:
            scratch_info = _build_scratch(scratch, h5_path)

        def read(a: int, b: int):
            if scratch is not None:
                return scratch.read(a, b)
            return read_dxchange(h5_path, rows=(a, b), theta_units=theta_units)

        # torch and the fourier backend's torch engine run where `device` resolves to
        dev_type = (
            select_device(device).type
            if backend_used in ("torch", "fourier") and device != "cpu"
            else "cpu"
        )
        bar = tqdm(total=r1 - r0, desc=f"reconstruct {h5_path.name}", unit="slice")
        bar.update(sum(b - a for a, b in chunks) - sum(b - a for a, b in todo))
        for a, b in todo:
            p = check_rows(read(a, b), h5_path, bad_rows, read)  # saturated rows (scan_checks)
            sino = _preprocess(p.data, p.flat, p.dark, stripe_removal, stripe_size, threads)
            del p
            rec = fbp(
                sino,
                info.theta,
                center_px,
                filter_name,
                backend_used,
                device,
                memory_budget_mb,
                threads=threads,
            )
            del sino
            paths = write_tiff_slices(partial.slices, rec, first_index=a)
            partial.record(a, b, paths, device=dev_type)
            bar.update(b - a)
        bar.close()
        meta = {
            "scan": str(h5_path),
            "center": float(center_px),
            "center_source": center_source,
            "backend": backend_used,
            "backend_requested": backend,
            "filter": filter_name,
            "stripe_removal": stripe_removal,
            "stripe_size": int(stripe_size),
            "rows": [r0, r1],
            "n_slices": r1 - r0,
            "shape": [r1 - r0, info.n_cols, info.n_cols],
            "chunk_rows": chunk_rows,
            "n_angles": info.n_angles,
            "voxel_um": _voxel_size(info.attrs),
            "units": "attenuation per voxel (mu * voxel size)",
            "seconds": round(time.perf_counter() - start_time, 3),
            "peak_rss_mb": round(_peak_rss_mb(), 1),
            "memory_budget_mb": int(memory_budget_mb),
            "memory_bound_mb": round(
                recon_memory_bound_mb(
                    info.n_angles,
                    info.n_flats,
                    info.n_darks,
                    chunk_rows,
                    info.n_cols,
                    backend_used,
                    memory_budget_mb,
                    threads,
                ),
                1,
            ),
            "device": dev_type,
            "threads": threads,
            "read_order": {"mode": mode, "reason": why, **scratch_info},
            "resume": {
                "partial_dir": str(partial.root),
                "chunks": len(chunks),
                "reused_chunks": n_reused,
                "computed_chunks": len(todo),
                "reason": reason,
                "center_cached": center_cached,
            },
        }
        if dev_type == "cuda":
            import torch

            meta["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        partial.publish((r0, r1), meta)
    except (DataError, ConfigError):
        partial.discard()  # bad input or settings: a rerun needs another file or config
        raise
    except BaseException:
        if partial.root.is_dir():
            _log.warning(
                "%s: kept %d finished chunk(s) in %s; rerun to continue",
                Path(out_dir).name,
                partial.n_markers(),
                partial.root,
            )
        raise
    return meta


def _build_scratch(scratch, h5_path: Path) -> dict:
    """Build (or finish) the sinogram-ordered scratch copy; returns its counts for recon.json."""
    done = scratch.frames_done()
    if done < scratch.n_frames:
        _log.info(
            "%s: copying %d frames into sinogram order (%.1f GiB scratch, from frame %d)",
            h5_path.name,
            scratch.n_frames,
            scratch.nbytes / 2**30,
            done,
        )
    stats = scratch.build()
    return {"scratch_bytes": stats["bytes"], "scratch_frames_reused": stats["resumed_at_frame"]}

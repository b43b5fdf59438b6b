# SPDX-License-Identifier: BSD-3-Clause
"""Parallel-beam reconstruction: normalise, minus-log, stripes, centre, projector, FBP.

Geometry (shared by `forward_project`, `fbp` and tomopy)
---------------------------------------------------------
A slice is an ``(n, n)`` array ``img[i, j]``. Its pixel centres sit at
``x = i + 0.5 - n/2`` (first axis) and ``y = j + 0.5 - n/2`` (second axis), in pixels.
At angle ``theta`` (radians) a ray reaches detector column ``d`` (0-based) at the signed
distance ``s = d + 0.5 - center`` from the rotation axis, where

    s = -(x cos(theta) + y sin(theta)).

This is tomopy's convention (``theta + pi/2`` ray direction, pixel-centred detector), so
projections made here reconstruct the right way round with ``tomopy.recon`` as well.

Units: projections are line integrals in pixel units (sum of ``mu * voxel`` along the ray);
reconstructions are attenuation per pixel, so a block of ``mu * voxel = 1`` reconstructs to
about 1 with every backend.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tomosynth.errors import ConfigError

if TYPE_CHECKING:  # torch is imported where used: the tomopy backend runs without it
    import torch

__all__ = [
    "fbp",
    "find_center",
    "forward_project",
    "minus_log",
    "normalize",
    "ramp_filter",
    "reconstruct_scan",
    "remove_stripes",
    "resolve_backend",
    "resolve_device",
    "tomopy_available",
]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Return CUDA when available for ``"auto"``, else the named device."""
    import torch

    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"recon.device: unknown device {device!r}") from exc


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
    vol = np.asarray(volume, dtype=np.float32)
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

    dev = resolve_device(device)
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
        # point = s * (-cos, -sin) + t * (-sin, cos) gives x cos + y sin = -s on the whole ray;
        # grid_sample (align_corners=False) wants 2 * position / size, (column, row) order
        x = (-2.0 / n) * (s[None, :, None] * cos + t[None, None, :] * sin)
        y = (2.0 / n) * (t[None, None, :] * cos - s[None, :, None] * sin)
        grid = torch.stack((y, x), dim=-1).reshape(1, -1, n_t, 2)  # (1, angles*n, n_t, 2)
        del x, y
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

FILTERS = ("ramlak", "shepp", "cosine", "hann", "none")
BACKENDS = ("auto", "torch", "astra", "tomopy")


def ramp_filter(n_cols: int, filter_name: str = "ramlak") -> np.ndarray:
    """Frequency response (rfft layout) of the windowed ramp for `n_cols` detector pixels.

    The ramp is the Fourier transform of the band-limited spatial kernel
    (``h[0] = 1/4``, ``h[k] = -1/(pi k)^2`` for odd ``k``, 0 for even), which avoids the
    DC offset of a sampled ``|f|``; it is about ``|f|`` with ``f`` in cycles/pixel
    (0..0.5). Windows: ``shepp`` sinc(f), ``cosine`` cos(pi f), ``hann``
    (1 + cos(2 pi f)) / 2; ``none`` is 1 (plain back-projection). The transform length is
    the next power of two >= 2 * n_cols (zero padding against wrap-around).
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
    return resp


def _filter_sinograms(sino: torch.Tensor, filter_name: str) -> torch.Tensor:
    """Apply the ramp along the last axis with zero padding; same shape out."""
    import torch

    n = sino.shape[-1]
    resp = torch.as_tensor(ramp_filter(n, filter_name), dtype=torch.float32, device=sino.device)
    size = 2 * (resp.shape[0] - 1)
    spec = torch.fft.rfft(sino, n=size, dim=-1)
    return torch.fft.irfft(spec * resp, n=size, dim=-1)[..., :n].contiguous()


def _angle_weight(n_angles: int) -> float:
    # Riemann sum of the FBP integral over [0, pi): d(theta) = pi / n. A 360-degree scan
    # counts every ray twice over [0, 2 pi), so pi / n is right for it as well.
    return math.pi / n_angles


def _fbp_torch(
    sino: np.ndarray,
    theta: np.ndarray,
    center: float,
    filter_name: str,
    device: str | torch.device,
    memory_budget_mb: int = 128,
    angle_chunk: int = 8,
    roi: int | None = None,
) -> np.ndarray:
    """Torch FBP; `roi` reconstructs only the centred ``roi x roi`` square of the slice."""
    import torch
    import torch.nn.functional as F

    dev = resolve_device(device)
    n_angles, n_rows, n = sino.shape
    sino_t = torch.from_numpy(np.ascontiguousarray(sino, dtype=np.float32)).to(dev)
    filt = _filter_sinograms(sino_t, filter_name) * _angle_weight(n_angles)
    del sino_t
    filt = filt[:, :, None, :]  # (angles, rows, 1, cols): grid_sample input, batch = angle
    m = n if roi is None else int(min(roi, n))
    first = (n - m) // 2
    coords = torch.arange(first, first + m, dtype=torch.float64, device=dev) + 0.5 - n / 2.0
    th = torch.as_tensor(theta, dtype=torch.float64, device=dev)
    cos_t, sin_t = torch.cos(th), torch.sin(th)
    # Fixed angle chunks keep the summation order independent of how many rows are
    # reconstructed at once (chunking over rows gives bit-identical slices); the image is
    # tiled over its first axis so the temporaries stay within the budget. Per image row:
    # grid (2 floats), its separable sum (1) and interpolated values (n_rows) for each
    # angle of the chunk, plus the accumulator and the per-chunk sum (n_rows each).
    a_chunk = max(1, min(angle_chunk, n_angles))
    tile = _chunk(m * (a_chunk * (n_rows + 3) + 2 * n_rows), memory_budget_mb * 2**20, m)
    out = torch.empty((n_rows, m, m), dtype=torch.float32, device=dev)
    for i0 in range(0, m, tile):
        x = coords[i0 : i0 + tile]
        h = x.shape[0]
        acc = torch.zeros((n_rows, h * m), dtype=torch.float32, device=dev)
        for a0 in range(0, n_angles, a_chunk):
            c, s = cos_t[a0 : a0 + a_chunk, None], sin_t[a0 : a0 + a_chunk, None]
            # detector position hit by pixel (x, y): det = -(x cos + y sin) + center - 0.5,
            # as grid_sample's normalised coordinate (2 det + 1) / n - 1; separable in x, y
            gu = ((2.0 * (center - 0.5 - x[None, :] * c) + 1.0) / n - 1.0).float()
            gv = (-2.0 * coords[None, :] * s / n).float()
            grid = torch.zeros((gu.shape[0], h, m, 2), dtype=torch.float32, device=dev)
            torch.add(gu[:, :, None], gv[:, None, :], out=grid[..., 0])
            vals = F.grid_sample(
                filt[a0 : a0 + a_chunk],
                grid.reshape(gu.shape[0], 1, h * m, 2),
                mode="bilinear",
                padding_mode="zeros",
                align_corners=False,
            )  # (a, rows, 1, h*m)
            acc += vals[:, :, 0, :].sum(dim=0)
        out[:, i0 : i0 + h, :] = acc.reshape(n_rows, h, m)
    return out.cpu().numpy()


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
    "none": "none",
}


def _fbp_astra(sino: np.ndarray, theta: np.ndarray, center: float, filter_name: str) -> np.ndarray:
    try:
        import astra
    except ImportError as exc:
        raise ConfigError(
            "recon.backend: 'astra' needs astra-toolbox (pip install astra-toolbox)"
        ) from exc
    n_angles, n_rows, n = sino.shape
    # astra's CPU FBP only takes the 'parallel' geometry, whose axis is at n/2: move our axis
    # there first. astra's angle is ours + pi/2 for the same image and detector orientation.
    if abs(center - n / 2.0) > 1e-6:
        sino = _fourier_shift(sino, center - n / 2.0)
    vol_geom = astra.create_vol_geom(n, n)
    proj_geom = astra.create_proj_geom("parallel", 1.0, n, np.asarray(theta) + np.pi / 2)
    proj_id = astra.create_projector("linear", proj_geom, vol_geom)
    out = np.empty((n_rows, n, n), dtype=np.float32)
    try:
        for r in range(n_rows):
            sid = astra.data2d.create("-sino", proj_geom, np.ascontiguousarray(sino[:, r, :]))
            rid = astra.data2d.create("-vol", vol_geom)
            cfg = astra.astra_dict("FBP")
            cfg.update(ProjectorId=proj_id, ProjectionDataId=sid, ReconstructionDataId=rid)
            cfg["FilterType"] = _ASTRA_FILTERS[filter_name]
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
    """``"auto"`` -> ``"tomopy"`` when importable, else ``"torch"``; validates the name."""
    if backend not in BACKENDS:
        raise ConfigError(f"recon.backend: unknown backend {backend!r} (one of {BACKENDS})")
    if backend == "auto":
        return "tomopy" if tomopy_available() else "torch"
    return backend


def fbp(
    sinograms: np.ndarray,
    theta: np.ndarray,
    center: float | None = None,
    filter_name: str = "ramlak",
    backend: str = "torch",
    device: str | torch.device = "auto",
    memory_budget_mb: int = 128,
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
    filter_name : {"ramlak", "shepp", "cosine", "hann", "none"}
        Window of the ramp filter (`ramp_filter`); ``none`` gives an unfiltered
        back-projection (blurred, in pixel-length units, for diagnostics only). Windows are
        the textbook ones (`ramp_filter`); ``ramlak`` and ``shepp`` match tomopy's gridrec,
        whose ``hann`` (default ``filter_par``) is narrower than ours.
    backend : {"torch", "astra", "tomopy", "auto"}
        ``torch``: this module's FBP (GPU when available, always installed). ``astra``:
        astra-toolbox CPU FBP. ``tomopy``: ``tomopy.recon(algorithm="gridrec")``. ``auto``
        is tomopy when importable, else torch. A missing library raises ConfigError.
    device : str
        Torch device for the torch backend (``"auto"``: CUDA when present).
    memory_budget_mb : int
        Target for the torch backend's interpolation temporaries (grid, interpolated values,
        accumulator); with allocator overhead the measured working set stays below twice it.

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
        return _fbp_torch(sino, theta, c, filter_name, device, memory_budget_mb)
    if backend == "astra":
        return _fbp_astra(sino, theta, c, filter_name)
    return _fbp_tomopy(sino, theta, c, filter_name)


# --------------------------------------------------------------------------------------
# Centre of rotation
# --------------------------------------------------------------------------------------


def _opposite_pair(theta: np.ndarray, tol: float) -> tuple[int, int] | None:
    """Indices (i, j) with theta[j] - theta[i] closest to pi, if within `tol` radians."""
    diff = np.abs(((theta[None, :] - theta[:, None]) - np.pi + np.pi) % (2 * np.pi) - np.pi)
    i, j = np.unravel_index(np.argmin(diff), diff.shape)
    return (int(i), int(j)) if diff[i, j] <= tol else None


def _center_correlation(proj: np.ndarray, i: int, j: int) -> float:
    # p(theta + pi, s) = p(theta, -s); with s = d + 0.5 - c the mirrored opposite projection
    # equals the first one shifted by 2c - n columns. Locate that shift by cross-correlation
    # (summed over rows, zero-padded FFT), then refine it to 0.01 px by evaluating the
    # band-limited correlation r(tau) = sum_f X(f) exp(2 pi i f tau) around the peak.
    a = proj[i].astype(np.float64)
    b = proj[j][:, ::-1].astype(np.float64)
    # No mean removal: a mean-free copy would correlate its fixed detector window as well,
    # which pulls the peak towards zero shift. Minus-log data are ~0 outside the sample.
    n = a.shape[-1]
    size = 1 << int(math.ceil(math.log2(2 * n)))
    cross = (np.fft.fft(b, size, axis=-1) * np.conj(np.fft.fft(a, size, axis=-1))).sum(axis=0)
    xc = np.fft.ifft(cross).real
    k = int(np.argmax(xc))
    k = k if k <= size // 2 else k - size
    taus = k + np.arange(-100, 101) / 100.0
    freqs = np.fft.fftfreq(size)
    r = (cross[None, :] * np.exp(2j * np.pi * freqs[None, :] * taus[:, None])).real.sum(axis=1)
    shift = float(taus[int(np.argmax(r))])  # b[d] = a[d - shift]
    # b(d) = p_j(n - 1 - d) = a(d + 2c - n)  =>  shift = -(2c - n)
    return (n - shift) / 2.0


def _center_sharpness(
    sino: np.ndarray,
    theta: np.ndarray,
    search: float,
    filter_name: str,
    device: str | torch.device,
    roi: int = 256,
    max_angles: int = 360,
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
        return _fbp_torch(sino, theta, c, filter_name, device, roi=m)[:, inside]

    lo, hi = np.percentile(recon_roi(n / 2.0), [0.5, 99.5])
    pad = 0.25 * (hi - lo) + 1e-12
    lo, hi = lo - pad, hi + pad

    def entropy(c: float) -> float:
        hist, _ = np.histogram(np.clip(recon_roi(c), lo, hi), bins=128, range=(lo, hi))
        p = hist[hist > 0] / hist.sum()
        return float(-(p * np.log(p)).sum())

    best = n / 2.0
    for step in (1.0, 0.25):
        cands = best + np.arange(-search, search + 1e-9, step)
        best = float(cands[int(np.argmin([entropy(c) for c in cands]))])
        search = 2 * step
    return best


def find_center(
    proj: np.ndarray,
    theta: np.ndarray,
    method: str = "auto",
    search: float = 20.0,
    filter_name: str = "ramlak",
    device: str | torch.device = "auto",
) -> float:
    """Find the rotation axis (detector column, pixels) from minus-log projections.

    Parameters
    ----------
    proj : (angles, rows, cols) or (angles, cols) array
        Minus-log projections of a few detector rows.
    theta : (angles,) array
        Radians.
    method : {"auto", "correlation", "entropy"}
        ``correlation``: mirror the projection about 180 degrees from the first one and
        locate its shift by cross-correlation (sub-pixel by a parabola through the peak);
        needs two angles within 0.01 degrees of 180 apart. ``entropy``: reconstruct the
        central 256 x 256 pixels of up to 2 rows at candidate centres (1 px, then 0.25 px
        steps within `search` of ``cols / 2``) and keep the lowest histogram entropy. ``auto``: correlation when such a
        pair of angles exists, else entropy.
    search : float
        Half-width of the entropy search in pixels.

    Returns
    -------
    float
        Centre in detector pixels, same convention as `fbp` (``cols / 2`` is the middle).
    """
    p = np.asarray(proj, dtype=np.float32)
    if p.ndim == 2:
        p = p[:, None, :]
    theta = _as_theta(theta, p.shape[0])
    pair = _opposite_pair(theta, tol=np.deg2rad(0.01))
    if method == "auto":
        method = "correlation" if pair is not None else "entropy"
    if method == "correlation":
        if pair is None:
            raise ValueError("find_center: no two angles are 180 degrees apart; use 'entropy'")
        return _center_correlation(p, *pair)
    if method == "entropy":
        # A centre far outside the middle half of the detector is never plausible; on small
        # detectors an unbounded search finds entropy minima outside the detector itself.
        search = min(float(search), p.shape[-1] / 4.0)
        return _center_sharpness(p, theta, search, filter_name, device)
    raise ConfigError(f"recon.center_method: unknown method {method!r}")


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
    proj: np.ndarray, flat: np.ndarray, dark: np.ndarray, stripe_removal: str, stripe_size: int
) -> np.ndarray:
    sino = minus_log(normalize(proj, flat, dark))
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
    theta_units: str | None = None,
) -> dict:
    """Reconstruct a DXchange scan into float32 TIFF slices, chunk by chunk.

    For each chunk of `chunk_rows` detector rows: read -> `normalize` -> `minus_log` ->
    `remove_stripes` -> `fbp` -> ``slice_{index:05d}.tiff`` (absolute row index). The
    folder `out_dir` appears only when complete (`tomosynth.io.atomic_dir`) and also holds
    ``recon.json`` with the provenance returned here.

    Peak memory is bounded by the chunk, not the scan. With ``A`` angles, ``F`` flats,
    ``D`` darks, ``R = chunk_rows``, ``C`` columns and ``B = memory_budget_mb``::

        bytes <= 4 * (A + F + D) * R * C * 3      # counts read + normalised + minus-log
               + 4 * R * C**2 * 2                 # slices: result + one copy
               + 2 * B * 2**20                    # back-projection working set (torch)

    (``memory_bound_mb`` in ``recon.json``; ``benchmarks/bench_recon.py`` measures it.)
    The astra and tomopy backends hold one slice (astra) or the chunk (tomopy) instead.

    Parameters
    ----------
    h5_path : path-like
        DXchange file (see `tomosynth.io.read_dxchange`).
    out_dir : path-like
        Output folder, replaced atomically.
    backend, filter_name, device
        See `fbp`; ``backend="auto"`` is tomopy when importable, else torch.
    center : float, "auto" or None
        Rotation axis in detector pixels; ``"auto"`` finds it once (`find_center`) from up
        to 8 rows around the middle of the range; ``None`` is ``cols / 2``.
    stripe_removal, stripe_size
        See `remove_stripes` (``"none"`` or ``"median"``).
    chunk_rows : int
        Detector rows per chunk (>= 1); results do not depend on it.
    slices : (start, stop), optional
        Half-open detector row range to reconstruct; ``None`` is all rows.
    center_method : {"auto", "correlation", "entropy"}
        See `find_center`; used when ``center="auto"``.
    memory_budget_mb : int
        Working-set target of the torch back-projector (see `fbp`).
    theta_units : {"degrees", "radians"}, optional
        Unit of ``/exchange/theta`` for files without a ``units`` attribute
        (see `tomosynth.io.inspect_dxchange`).

    Returns
    -------
    dict
        The contents of ``recon.json``: scan, centre (pixels) and how it was chosen,
        backend, filter, stripe settings, row range, chunk_rows, ``voxel_um`` (from the
        file's attributes, else null), seconds, ``peak_rss_mb`` (whole process, imports
        included) and ``memory_bound_mb`` (the bound above, on top of the imports).

    Raises
    ------
    DataError
        Unreadable or inconsistent file, or a slice range outside the scan (naming it).
    ConfigError
        Unknown backend/filter, a backend whose library is missing, ``chunk_rows < 1``.
    """
    from tqdm import tqdm

    from tomosynth.errors import DataError
    from tomosynth.io import atomic_dir, inspect_dxchange, read_dxchange, write_tiff_slices

    start_time = time.perf_counter()
    h5_path = Path(h5_path)
    if int(chunk_rows) < 1:
        raise ConfigError(f"recon.chunk_rows: must be >= 1, got {chunk_rows}")
    chunk_rows = int(chunk_rows)
    backend_used = resolve_backend(backend)
    if filter_name not in FILTERS:
        raise ConfigError(f"recon.filter: unknown filter {filter_name!r} (one of {FILTERS})")
    info = inspect_dxchange(h5_path, theta_units=theta_units)
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
    if center == "auto":
        mid = (r0 + r1) // 2
        c0 = max(r0, mid - 4)
        c1 = min(r1, c0 + 8)
        p = read_dxchange(h5_path, rows=(c0, c1), theta_units=theta_units)
        sino = _preprocess(p.data, p.flat, p.dark, stripe_removal, stripe_size)
        center_px = find_center(sino, info.theta, method=center_method, device=device)
        center_source = f"auto ({center_method}, rows {c0}..{c1})"
        del p, sino
    elif center is None:
        center_px, center_source = info.n_cols / 2.0, "default (cols / 2)"
    elif isinstance(center, int | float) and not isinstance(center, bool):
        center_px, center_source = float(center), "given"
    else:
        raise ConfigError(f"recon.center: expected a number, 'auto' or null, got {center!r}")

    with atomic_dir(out_dir) as tmp:
        bar = tqdm(total=r1 - r0, desc=f"reconstruct {h5_path.name}", unit="slice")
        for a in range(r0, r1, chunk_rows):
            b = min(a + chunk_rows, r1)
            p = read_dxchange(h5_path, rows=(a, b), theta_units=theta_units)
            sino = _preprocess(p.data, p.flat, p.dark, stripe_removal, stripe_size)
            del p
            rec = fbp(
                sino, info.theta, center_px, filter_name, backend_used, device, memory_budget_mb
            )
            del sino
            write_tiff_slices(tmp, rec, first_index=a)
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
                (
                    4 * (info.n_angles + info.n_flats + info.n_darks) * chunk_rows * info.n_cols * 3
                    + 4 * chunk_rows * info.n_cols**2 * 2
                )
                / 2**20
                + 2 * memory_budget_mb,
                1,
            ),
        }
        if backend_used == "torch" and resolve_device(device).type == "cuda":
            import torch

            meta["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        (tmp / "recon.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta

# SPDX-License-Identifier: BSD-3-Clause
"""Centre of rotation by Vo's Fourier-domain metric (tomopy's ``find_center_vo``).

Vo, Atwood & Drakopoulos, Opt. Express 22 (2014) 19078. A sinogram over a half turn,
followed by its mirror image (the second half turn: ``p(theta + pi, s) = p(theta, -s)``),
is a continuous sinogram over a full turn only when the mirror is taken about the true
axis. A wrong axis breaks the sinogram into two misaligned halves, which puts energy into
a double wedge of its 2D spectrum where a consistent sinogram has almost none (the
"forbidden" region |omega_angle| > r |omega_detector| for an object of radius r). The
metric is the mean spectral magnitude over that wedge; the axis minimises it.

Differences from tomopy's implementation: our centre convention (``s = d + 0.5 - c``,
i.e. tomopy's centre + 0.5); the rows given are averaged (their sum is the sinogram of the
summed slices, so this only lowers the noise); the half turn is picked from `theta` (full
turns work); angles are thinned to at most 512 after smoothing along the angles; the
fine search ends with a parabola through the minimum; candidates run on `threads` workers.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from tomosynth.errors import ConfigError
from tomosynth.recon.geometry import _as_theta
from tomosynth.recon.parallel import cpu_threads, run_workers
from tomosynth.recon.torch_fbp import _fbp_torch

if TYPE_CHECKING:  # torch is imported where used: the tomopy backend runs without it
    import torch


__all__ = [
    "CENTER_METHODS",
    "center_correlation",
    "find_center",
    "find_center_vo",
    "opposite_pair",
]

#: Angles of the half turn kept for the metric (after smoothing along the angles).
_MAX_ANGLES = 512


def _half_turn(sino: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Rows of `sino` ``(angles, cols)`` whose angle lies in ``[theta0, theta0 + pi)``, in
    angle order (a full turn keeps its first half)."""
    rel = np.mod(theta - theta[0], 2.0 * np.pi)
    spacing = np.pi / max(1, int(np.sum(rel < np.pi - 1e-9)))
    keep = np.flatnonzero(rel < np.pi - 0.5 * spacing)
    keep = keep[np.argsort(rel[keep], kind="stable")]
    return sino[keep]


def _mask(n_rows: int, n_cols: int, radius: float, drop: int) -> np.ndarray:
    """Vo's double-wedge mask (tomopy's ``_create_mask``), in FFT order (not shifted)."""
    du = 1.0 / n_cols
    dv = (n_rows - 1.0) / (n_rows * 2.0 * np.pi)
    cen_row = int(math.ceil(n_rows / 2.0) - 1)
    cen_col = int(math.ceil(n_cols / 2.0) - 1)
    drop = min(drop, int(math.ceil(0.05 * n_rows)))
    mask = np.zeros((n_rows, n_cols), dtype=np.float32)
    for i in range(n_rows):
        pos = int(math.ceil(((i - cen_row) * dv / radius) / du))
        p1, p2 = np.clip(np.sort((-pos + cen_col, pos + cen_col)), 0, n_cols - 1)
        mask[i, p1 : p2 + 1] = 1.0
    mask[max(0, cen_row - drop) : cen_row + drop + 1, :] = 0.0
    mask[:, max(0, cen_col - 1) : cen_col + 2] = 0.0
    return np.fft.ifftshift(mask)


def _metrics(sino: np.ndarray, axes: np.ndarray, ratio: float, drop: int, threads: int):
    """Vo's metric of each candidate axis (our convention) for a half-turn `sino`."""
    import scipy.fft
    from scipy import ndimage

    n_rows, n = sino.shape
    mask = _mask(2 * n_rows, n, 0.5 * ratio * n, drop)
    flip = np.ascontiguousarray(sino[:, ::-1])
    comp = sino[::-1]  # fills the columns the shift leaves empty (as tomopy does)
    out = np.empty(axes.size)

    def work(mine: list[int]) -> None:
        both = np.empty((2 * n_rows, n), dtype=np.float32)
        both[:n_rows] = sino
        for i in mine:
            # mirror about the candidate: column d of the mirror is column 2c - 1 - d
            shift = 2.0 * (axes[i] - 0.5) - (n - 1.0)
            lower = both[n_rows:]
            if shift == round(shift):
                lower[:] = np.roll(flip, int(shift), axis=1)
            else:
                ndimage.shift(flip, (0, shift), output=lower, order=3, mode="nearest")
            if shift >= 0:
                k = int(math.ceil(shift))
                lower[:, :k] = comp[:, :k]
            else:
                k = int(math.floor(shift))
                lower[:, k:] = comp[:, k:]
            spec = scipy.fft.fft2(both, workers=1)
            out[i] = float(np.mean(np.abs(spec) * mask))

    run_workers(work, list(range(axes.size)), threads)
    return out


def _best(axes: np.ndarray, metric: np.ndarray) -> float:
    """Axis of the smallest metric, refined by a parabola through it and its neighbours."""
    k = int(np.argmin(metric))
    if 0 < k < axes.size - 1:
        m0, m1, m2 = metric[k - 1], metric[k], metric[k + 1]
        denom = m0 - 2.0 * m1 + m2
        if denom > 0:
            step = axes[k + 1] - axes[k]
            return float(axes[k] + 0.5 * step * (m0 - m2) / denom)
    return float(axes[k])


def find_center_vo(
    proj: np.ndarray,
    theta: np.ndarray,
    search: float = 50.0,
    ratio: float = 0.5,
    drop: int = 20,
    threads: int | None = None,
) -> float:
    """Rotation axis (detector column, our convention: ``cols / 2`` is the middle) of
    minus-log projections ``(angles, rows, cols)`` or ``(angles, cols)``, within `search`
    pixels of the middle (at most ``cols / 4``). `ratio` is the object's diameter over the detector width
    (tomopy's default 0.5 also suits larger objects); `drop` removes that many rows around
    the spectrum's zero angular frequency (noise, low-frequency drifts).

    Coarse search in 0.5 px steps (on columns binned by 4 above 1024 columns), then 1 px
    and 0.25 px steps at full resolution and a parabola through the minimum: about
    0.1-0.3 px on noisy data.
    """
    from scipy import ndimage

    p = np.asarray(proj, dtype=np.float32)
    if p.ndim == 3:
        p = p.mean(axis=1, dtype=np.float64).astype(np.float32)
    theta = np.asarray(theta, dtype=np.float64).ravel()
    sino = _half_turn(p, theta)
    # tomopy's denoising: smooth along the angles (sigma 3 rows) and a little across
    sino = ndimage.gaussian_filter(sino, (3, 1), mode="reflect").astype(np.float32)
    sino = sino[:: max(1, int(math.ceil(sino.shape[0] / _MAX_ANGLES)))]
    n = sino.shape[1]
    threads = cpu_threads(threads)
    # within the middle half of the detector: farther out the mirror overlaps the data
    # too little and the filler (tomopy's) makes a spuriously consistent sinogram
    search = float(np.clip(search, 1.0, n / 4.0))
    bin_ = 4 if n > 1024 else 1
    coarse = sino[:, : n - n % bin_].reshape(sino.shape[0], -1, bin_).mean(axis=2)
    m = coarse.shape[1]
    lim = min(search / bin_, m / 2.0 - 2.0)
    axes = m / 2.0 + np.arange(-lim, lim + 1e-9, 0.5)
    c = bin_ * float(axes[int(np.argmin(_metrics(coarse, axes, ratio, drop, threads)))])
    lo, hi = n / 2.0 - search, n / 2.0 + search
    for half, step in ((2.0 * bin_, 1.0), (1.0, 0.25)):
        axes = np.clip(c + np.arange(-half, half + 1e-9, step), lo, hi)
        axes = np.unique(axes)
        c = _best(axes, _metrics(sino, axes, ratio, drop, threads))
    return float(np.clip(c, lo, hi))


# ------------------------------------------------------------ opposite-pair correlation


def opposite_pair(theta: np.ndarray, tol: float) -> tuple[int, int] | None:
    """Indices (i, j) with theta[j] - theta[i] closest to pi, if within `tol` radians."""
    diff = np.abs(((theta[None, :] - theta[:, None]) - np.pi + np.pi) % (2 * np.pi) - np.pi)
    i, j = np.unravel_index(np.argmin(diff), diff.shape)
    return (int(i), int(j)) if diff[i, j] <= tol else None


def center_correlation(proj: np.ndarray, i: int, j: int) -> float:
    """Axis (our convention) from projections `i` and `j`, 180 degrees apart."""
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
#: The methods of `find_center` (the schema's ``recon.center_method`` enum; tested equal).
CENTER_METHODS = ("auto", "vo", "correlation", "entropy")


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
        (`tomosynth.recon.center.find_center_vo`, as tomopy's ``find_center_vo``): about
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
        CPU threads (`tomosynth.recon.parallel.cpu_threads`).

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
    raise ConfigError(f"recon.center_method: unknown method {method!r} (one of {CENTER_METHODS})")

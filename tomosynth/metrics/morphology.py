"""Morphological statistics of segmented images and volumes (porous media / bone).

Discretisation (pixel/voxel units throughout; the "phase" is the bright side of the
threshold, ``image > threshold``; porosity is ``1 - phase fraction``):

* two-point correlation S2(r) = P(x and x + r both in the phase), by FFT; non-periodic
  estimates divide by the number of pixel pairs at each displacement (zero padding);
* 2D Minkowski functionals: area = pixel count; perimeter = Crofton estimate with 4
  directions (``skimage.measure.perimeter_crofton``); Euler number = components - holes
  with 8-connected phase (``skimage.measure.euler_number``, connectivity 2);
* 3D Minkowski functionals: volume = voxel count; surface = area of the closed
  marching-cubes mesh after a 0.5-voxel Gaussian (:func:`tomosynth.metrics.bone.mesh`); integral mean curvature M = int (k1 + k2)/2 dS = 1/2 sum over mesh
  edges of length x signed dihedral angle (4 pi R for a ball of radius R); Euler
  characteristic with 26-connected phase (``euler_number``, connectivity 3);
* size distributions: pixel-weighted histograms of local thickness (diameter of the
  largest inscribed disc/sphere, :func:`tomosynth.metrics.bone.local_thickness`) of the
  phase (grains) and of its complement (pores), in 1-px bins; the last bin is open-ended
  (it counts every larger value), so every phase pixel is counted once, and mean sizes
  are the exact means of the values, not of the binned ones;
* sample region: a CT slice of a core shows air around the sample (and often a container
  wall), which the whole-image porosity counts as pore space. :func:`sample_region` finds
  the sample's disc once from the real slices, and the in-sample statistics (``*_sample``)
  use only its pixels: porosity over the region, pores and grains as the region's pixels
  of each phase (the region's edge bounds them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from tomosynth.errors import DataError
from tomosynth.metrics.bone import local_thickness, mesh
from tomosynth.sizing import (  # noqa: F401 - documented here, used by the workflow's sizes
    MINKOWSKI_BYTES_PER_VOXEL,
    MINKOWSKI_SLAB_VOXELS,
    minkowski_slab,
)


# --- segmentation and fractions ----------------------------------------------------------
def segment(image: np.ndarray, threshold: float | None = None) -> tuple[np.ndarray, float]:
    """Phase mask ``image > threshold`` (Otsu's threshold of the image when None)."""
    img = np.asarray(image, dtype=np.float32)
    if threshold is None:
        from skimage.filters import threshold_otsu

        lo, hi = float(img.min()), float(img.max())
        threshold = lo if lo == hi else float(threshold_otsu(img))
    return img > threshold, float(threshold)


def phase_fraction(mask: np.ndarray) -> float:
    """Fraction (0..1) of pixels/voxels in the phase."""
    return float(np.asarray(mask, dtype=bool).mean())


def porosity(mask: np.ndarray) -> float:
    """Fraction (0..1) of pixels/voxels outside the phase (the pores)."""
    return 1.0 - phase_fraction(mask)


# --- two-point correlation ------------------------------------------------------------------
def two_point_map(mask: np.ndarray, periodic: bool = False) -> np.ndarray:
    """S2 for every displacement, centred (zero displacement at ``shape // 2``).

    ``periodic=False`` zero-pads to twice the size and divides the autocorrelation by the
    number of pixel pairs at each displacement, so S2 is unbiased for any r that fits.
    The result has the input's shape for periodic and ``2 n - 1`` per axis otherwise.
    """
    m = np.asarray(mask, dtype=np.float64)
    axes = tuple(range(m.ndim))
    if periodic:
        f = np.fft.rfftn(m, axes=axes)
        s2 = np.fft.irfftn(f * np.conj(f), s=m.shape, axes=axes) / m.size
        return np.clip(np.fft.fftshift(s2), 0.0, 1.0)
    shape = [2 * n - 1 for n in m.shape]
    f = np.fft.rfftn(m, s=shape, axes=axes)
    num = np.fft.fftshift(np.fft.irfftn(f * np.conj(f), s=shape, axes=axes))
    # Pairs at displacement k: prod_i (n_i - |k_i|); zero displacement lands at n - 1.
    pairs = np.ones(shape)
    for i, n in enumerate(m.shape):
        tri = n - np.abs(np.arange(2 * n - 1) - (n - 1))
        pairs = pairs * tri.reshape([-1 if j == i else 1 for j in range(m.ndim)])
    return np.clip(num / pairs, 0.0, 1.0)


def radial_profile(field: np.ndarray, r_max: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean of a centred displacement map over shells of radius ``round(|r|)``.

    Returns radii ``0..r_max`` (pixels) and the shell means; the default r_max is the
    largest radius inside the map (half its smallest side).
    """
    f = np.asarray(field, dtype=np.float64)
    centre = [n // 2 for n in f.shape]
    grids = np.ogrid[tuple(slice(0, n) for n in f.shape)]
    r = np.sqrt(sum((g - c) ** 2 for g, c in zip(grids, centre, strict=True)))
    rb = np.rint(r).astype(np.int64).ravel()
    limit = min(centre) if r_max is None else int(r_max)
    sums = np.bincount(rb, weights=f.ravel())
    counts = np.bincount(rb)
    radii = np.arange(min(limit, len(counts) - 1) + 1)
    return radii, sums[radii] / np.maximum(counts[radii], 1)


def s2_radial(
    mask: np.ndarray, r_max: int | None = None, periodic: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Radial two-point correlation S2(r), r in pixels/voxels (see :func:`two_point_map`)."""
    m = np.asarray(mask, dtype=bool)
    if r_max is None:
        r_max = min(m.shape) // 2
    return radial_profile(two_point_map(m, periodic=periodic), r_max)


def s2_along_axis(mask: np.ndarray, axis: int, r_max: int) -> np.ndarray:
    """Non-periodic S2 at lags ``0..r_max`` along one axis only (directional S2)."""
    m = np.moveaxis(np.asarray(mask, dtype=bool), axis, 0)
    r_max = min(int(r_max), m.shape[0] - 1)
    out = np.empty(r_max + 1)
    for k in range(r_max + 1):
        out[k] = float((m[: m.shape[0] - k] & m[k:]).mean())
    return out


# --- Minkowski functionals --------------------------------------------------------------------
def minkowski_2d(mask: np.ndarray) -> dict[str, float]:
    """Area (px^2), perimeter (px) and Euler number of a 2D phase (see module notes)."""
    from skimage.measure import euler_number, perimeter_crofton

    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise DataError(f"minkowski_2d: expected a 2D mask, got shape {m.shape}")
    padded = np.pad(m, 1)  # objects touching the border are closed by the padding
    return {
        "area": float(m.sum()),
        "perimeter": float(perimeter_crofton(padded, directions=4)),
        "euler": float(euler_number(padded, connectivity=2)),
    }


def _edge_curvature(verts: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per interior mesh edge: midpoint z (first coordinate) and 1/2 length x signed angle.

    Positive where the surface is convex (normals diverge), negative where concave;
    edges not shared by exactly two triangles are skipped.
    """
    tri = verts[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    # Every triangle contributes three directed edges (a, b) with opposite vertex c.
    a = faces[:, [0, 1, 2]].ravel()
    b = faces[:, [1, 2, 0]].ravel()
    c = faces[:, [2, 0, 1]].ravel()
    face = np.repeat(np.arange(len(faces)), 3)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    key = lo.astype(np.int64) * len(verts) + hi
    order = np.argsort(key, kind="stable")
    key, face, c, lo, hi = key[order], face[order], c[order], lo[order], hi[order]
    uniq, start, count = np.unique(key, return_index=True, return_counts=True)
    pair = start[count == 2]
    f1, f2 = face[pair], face[pair + 1]
    n1, n2 = normals[f1], normals[f2]
    cosang = np.clip(np.einsum("ij,ij->i", n1, n2), -1.0, 1.0)
    angle = np.arccos(cosang)
    # skimage's triangles wind so that these normals point into the object: an edge is
    # convex when the far vertex of triangle 2 lies on the inner side of triangle 1's plane.
    far = verts[c[pair + 1]] - verts[lo[pair]]
    sign = np.where(np.einsum("ij,ij->i", n1, far) > 0.0, 1.0, -1.0)
    length = np.linalg.norm(verts[hi[pair]] - verts[lo[pair]], axis=1)
    mid_z = 0.5 * (verts[hi[pair], 0] + verts[lo[pair], 0])
    return mid_z, 0.5 * sign * angle * length


def integral_mean_curvature(verts: np.ndarray, faces: np.ndarray) -> float:
    """1/2 sum over interior mesh edges of edge length x signed dihedral angle.

    Positive where the surface is convex (normals diverge), negative where concave;
    edges not shared by exactly two triangles are skipped.
    """
    return float(np.sum(_edge_curvature(verts, faces)[1]))


def _mesh_slab(mask: np.ndarray, sigma: float, c0: int, c1: int) -> tuple[float, float]:
    """Surface (vx^2) and integral mean curvature (vx) of the closed mesh's cubes c0..c1-1.

    Cube k of the whole-volume mesh (:func:`tomosynth.metrics.bone.mesh` with
    ``closed=True``: 2 voxels of background padding, Gaussian, marching cubes) lies between
    slices k and k + 1 of the padded, smoothed array. Only the slices the Gaussian needs
    (its radius plus one cube on each side) are padded and smoothed, so the values equal
    the whole-volume ones; triangles count where their cube is in [c0, c1), edges where
    their midpoint is (both triangles of such an edge are in the computed cubes).
    """
    from scipy.ndimage import gaussian_filter
    from skimage.measure import marching_cubes, mesh_surface_area

    radius = int(4.0 * sigma + 0.5) if sigma > 0 else 0  # scipy's default truncate = 4
    pad = 2
    lo, hi = c0 - 1 - radius, c1 + 2 + radius  # padded-array slices needed, [lo, hi)
    nz = mask.shape[0]
    block = np.zeros((hi - lo, mask.shape[1] + 2 * pad, mask.shape[2] + 2 * pad), np.float32)
    z0, z1 = max(lo - pad, 0), min(hi - pad, nz)  # mask slices inside the block
    if z1 > z0:
        block[z0 + pad - lo : z1 + pad - lo, pad:-pad, pad:-pad] = mask[z0:z1]
    if sigma > 0:
        block = gaussian_filter(block, sigma, mode="constant")
    first = c0 - 1  # padded-array slice of block row `radius`
    sub = block[radius : radius + (c1 - c0) + 3]
    if not sub.min() < 0.5 < sub.max():
        return 0.0, 0.0
    verts, faces, _, _ = marching_cubes(sub, level=0.5, allow_degenerate=False)
    verts[:, 0] += first
    if len(faces) == 0:
        return 0.0, 0.0
    cz = verts[faces][:, :, 0].mean(axis=1)
    own = (cz >= c0) & (cz < c1)
    area = float(mesh_surface_area(verts, faces[own])) if own.any() else 0.0
    mid_z, contrib = _edge_curvature(verts, faces)
    curvature = float(np.sum(contrib[(mid_z >= c0) & (mid_z < c1)]))
    return area, curvature


def minkowski_3d(mask: np.ndarray, sigma: float = 0.5, slab: int | None = None) -> dict[str, float]:
    """Volume (vx^3), surface (vx^2), integral mean curvature (vx) and Euler characteristic.

    The object is padded with background, so surfaces are closed at the volume faces;
    surface and curvature come from the mesh of :func:`tomosynth.metrics.bone.mesh`
    (Gaussian `sigma` voxels before marching cubes).

    All four functionals are additive, so they are computed `slab` slices at a time and
    summed: working memory is about :data:`tomosynth.sizing.MINKOWSKI_BYTES_PER_VOXEL`
    bytes per voxel of one slab, not of the volume. Mesh cubes and edges belong to exactly one slab (a halo of
    the Gaussian's radius plus one cube is recomputed); the Euler characteristic of
    26-connected voxels (union of closed unit cubes) follows inclusion-exclusion,
    chi(A u B) = chi(A) + chi(B) - chi(A n B), with the shared slice as A n B. The sum equals
    the whole-volume value up to rounding. ``slab=None`` picks :func:`tomosynth.sizing.minkowski_slab`
    slices; ``slab=0`` computes the whole volume at once.
    """
    from skimage.measure import euler_number, mesh_surface_area

    m = np.asarray(mask, dtype=bool)
    if m.ndim != 3:
        raise DataError(f"minkowski_3d: expected a 3D mask, got shape {m.shape}")
    if not m.any():
        return {"volume": 0.0, "surface": 0.0, "mean_curvature": 0.0, "euler": 0.0}
    if slab == 0:
        out = mesh(m, sigma=sigma, closed=True)
        surface, curvature = 0.0, 0.0
        if out is not None:
            surface = float(mesh_surface_area(*out))
            curvature = integral_mean_curvature(*out)
        return {
            "volume": float(m.sum()),
            "surface": surface,
            "mean_curvature": curvature,
            "euler": float(euler_number(np.pad(m, 1), connectivity=3)),
        }
    nz = m.shape[0]
    if slab is None:
        slab = minkowski_slab(m.shape)
    slab = max(1, int(slab))
    volume, surface, curvature, euler = 0.0, 0.0, 0.0, 0.0
    # Euler: slices [z0, z1] of each slab (one shared slice with the next), minus the shared.
    for z0 in range(0, nz, slab):
        z1 = min(z0 + slab, nz)
        volume += float(m[z0:z1].sum())
        euler += float(euler_number(np.pad(m[z0 : min(z1 + 1, nz)], 1), connectivity=3))
        if z1 < nz:
            euler -= float(euler_number(np.pad(m[z1 : z1 + 1], 1), connectivity=3))
    # Mesh cubes of the padded volume (2 voxels of padding) run from 0 to nz + 2.
    n_cubes = nz + 3
    for c0 in range(0, n_cubes, slab):
        a, c = _mesh_slab(m, sigma, c0, min(c0 + slab, n_cubes))
        surface += a
        curvature += c
    return {"volume": volume, "surface": surface, "mean_curvature": curvature, "euler": euler}


# --- size distributions ---------------------------------------------------------------------
def size_values(mask: np.ndarray) -> np.ndarray:
    """Local thickness (px/vx) of every pixel of the phase (empty for an empty or full one)."""
    m = np.asarray(mask, dtype=bool)
    if not m.any() or m.all():
        return np.zeros(0)
    return local_thickness(m)[m]


def size_histogram(mask: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """Counts of local-thickness values (px/vx) of the phase's pixels in `bins` (edges).

    The first and last bins are open-ended: values below ``bins[0]`` or above
    ``bins[-1]`` are counted in them, so the counts sum to the number of phase pixels.
    """
    return binned_sizes(size_values(mask), bins)


def binned_sizes(values: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """Histogram of `values` in `bins` with open-ended first and last bins (nothing lost)."""
    v = np.clip(np.asarray(values, dtype=np.float64), bins[0], bins[-1])
    return np.histogram(v, bins=bins)[0].astype(np.float64)


def hist_distances(h1: np.ndarray, h2: np.ndarray, bins: np.ndarray) -> tuple[float, float]:
    """Wasserstein-1 (in bin units: px) and Kolmogorov-Smirnov distances of two histograms.

    Both are computed from the cumulative distributions at the bin centres; NaN when either
    histogram is empty.
    """
    h1 = np.asarray(h1, dtype=np.float64)
    h2 = np.asarray(h2, dtype=np.float64)
    if h1.sum() <= 0 or h2.sum() <= 0:
        return float("nan"), float("nan")
    c1 = np.cumsum(h1) / h1.sum()
    c2 = np.cumsum(h2) / h2.sum()
    widths = np.diff((bins[:-1] + bins[1:]) / 2.0)
    w1 = float(np.sum(np.abs(c1 - c2)[:-1] * widths))
    ks = float(np.max(np.abs(c1 - c2)))
    return w1, ks


def curve_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Root-mean-square difference of two curves on the same grid (e.g. mean S2)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    n = min(len(a), len(b))
    return float(np.sqrt(np.mean((a[:n] - b[:n]) ** 2)))


# --- 3D consistency -------------------------------------------------------------------------
def slice_ssim(stack: np.ndarray, data_range: float | None = None) -> np.ndarray:
    """SSIM of each pair of consecutive slices of a (n, h, w) stack (n - 1 values).

    `data_range` defaults to the stack's max - min (``skimage.metrics`` SSIM, 7x7 window).
    """
    from skimage.metrics import structural_similarity

    s = np.asarray(stack)  # slices go to float64 one pair at a time, not the whole stack
    if s.ndim != 3 or s.shape[0] < 2:
        raise DataError(f"slice_ssim: expected a stack of >= 2 slices, got shape {s.shape}")
    rng = float(s.max()) - float(s.min()) if data_range is None else float(data_range)
    rng = rng if rng > 0 else 1.0
    out = np.empty(len(s) - 1)
    prev = s[0].astype(np.float64)
    for i in range(len(s) - 1):
        nxt = s[i + 1].astype(np.float64)
        out[i] = structural_similarity(prev, nxt, data_range=rng)
        prev = nxt
    return out


def directional_s2(mask: np.ndarray, r_max: int) -> dict[str, np.ndarray]:
    """S2 along the slice axis (``"slice"``) and in-plane (``"plane"``, mean of y and x)."""
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 3:
        raise DataError(f"directional_s2: expected a 3D stack, got shape {m.shape}")
    r = min(int(r_max), *[n - 1 for n in m.shape])
    return {
        "slice": s2_along_axis(m, 0, r),
        "plane": 0.5 * (s2_along_axis(m, 1, r) + s2_along_axis(m, 2, r)),
    }


# --- image-set evaluation (real, generated, upscaled) ------------------------------------------
def read_image_folder(folder: str | Path, max_images: int | None = None) -> np.ndarray:
    """The first `max_images` ``*.png`` of a folder (sorted names) as a (n, h, w) uint8 stack."""
    from tomosynth.io import list_pngs, read_png_stack

    paths = list_pngs(folder)
    paths = paths[:max_images] if max_images else paths
    return read_png_stack(folder, [p.name for p in paths])


EFFECTIVENESS = 0.8  # sample_region: least Otsu effectiveness that means "sample and air"


def sample_region(images: np.ndarray, margin: float = 0.01) -> np.ndarray:
    """The sample's region in a stack of slices of one scan: a (h, w) boolean mask.

    The slices are averaged (pores and grains average out; the sample, the container wall
    and the air stay), the mean image is split by Otsu's threshold into bright (sample,
    wall) and dark (air), and of the bright connected components the largest *solid* one
    is kept (its pixels fill at least half of its hole-filled outline, which a ring-shaped
    container wall does not), holes filled, then eroded by ``margin`` x the image side
    (rounded; the edge's partial-volume pixels). When no such component covers at least
    5 % of the image, or the mean image is not split into two clearly separate grey
    levels (Otsu's between-class variance below :data:`EFFECTIVENESS` of the total: no
    air, as in a cropped core or a region of interest), the whole image is the region. Assumes the sample is brighter
    than the air around it, as in attenuation images.
    """
    from skimage.filters import threshold_otsu

    imgs = np.asarray(images, dtype=np.float64)
    if imgs.ndim == 2:
        imgs = imgs[None]
    if imgs.ndim != 3 or len(imgs) == 0:
        raise DataError(f"sample_region: expected a (n, h, w) stack, got shape {imgs.shape}")
    mean = imgs.mean(axis=0)
    whole = np.ones(mean.shape, dtype=bool)
    if np.ptp(mean) == 0:
        return whole
    bright = mean > threshold_otsu(mean)
    # Otsu's effectiveness (between-class / total variance): ~0.64 for a unimodal mean
    # image (a cropped core without air), near 1 for sample and air apart
    w1 = bright.mean()
    between = w1 * (1 - w1) * (mean[bright].mean() - mean[~bright].mean()) ** 2
    if w1 > 0.95 or between < EFFECTIVENESS * mean.var():
        return whole
    labels, n = ndimage.label(bright, structure=np.ones((3, 3)))
    best, best_area = None, 0.05 * mean.size
    for i in range(1, n + 1):
        comp = labels == i
        filled = ndimage.binary_fill_holes(comp)
        area = float(filled.sum())
        if comp.sum() >= 0.5 * area and area > best_area:
            best, best_area = filled, area
    if best is None:
        return whole
    steps = int(round(margin * max(mean.shape)))
    if steps > 0:
        best = ndimage.binary_erosion(best, iterations=steps)
    return best if best.any() else whole


def image_set_stats(
    images: np.ndarray,
    *,
    threshold: float | None = None,
    r_max: int = 32,
    periodic: bool = False,
    max_size: int | None = None,
    region: np.ndarray | None = None,
) -> dict:
    """Morphology of a set of 2D images: per-image means and the set's curves.

    Returns a dict with scalar entries (``n_images, threshold, porosity (mean), porosity_std,
    perimeter_density (1/px), euler_density (1/px^2), mean_pore_size, mean_grain_size (px)``)
    over the whole image, the same inside `region` (``sample_fraction`` = region area /
    image area, ``porosity_sample, porosity_sample_std, mean_pore_size_sample,
    mean_grain_size_sample``; `region` None = the whole image), arrays ``r, s2_mean,
    s2_std`` (phase S2 in pixels over the whole image) and ``bins, pore_hist, grain_hist,
    pore_hist_sample, grain_hist_sample`` (pixel counts of local thickness per 1-px bin up
    to `max_size`, default the image's larger side; the last bin counts every larger
    value). Mean sizes are exact means of the local thickness values.
    """
    h, w = int(images.shape[1]), int(images.shape[2])
    region = np.ones((h, w), bool) if region is None else np.asarray(region, dtype=bool)
    if region.shape != (h, w):
        raise DataError(f"sample region of shape {region.shape} for images of {(h, w)}")
    top = max(h, w) if max_size is None else int(max_size)
    bins = np.arange(0.5, top + 1.5, 1.0)
    s2s, por, por_in, per, eul, thr = [], [], [], [], [], []
    hists = {k: np.zeros(len(bins) - 1) for k in ("pore", "grain", "pore_s", "grain_s")}
    sums = dict.fromkeys(hists, 0.0)
    for img in images:
        m, t = segment(img, threshold)
        thr.append(t)
        por.append(porosity(m))
        por_in.append(float((~m & region).sum()) / max(int(region.sum()), 1))
        mk = minkowski_2d(m)
        per.append(mk["perimeter"] / m.size)
        eul.append(mk["euler"] / m.size)
        s2s.append(s2_radial(m, r_max, periodic=periodic)[1])
        masks = {"pore": ~m, "grain": m, "pore_s": ~m & region, "grain_s": m & region}
        for key, mask in masks.items():
            v = size_values(mask)
            hists[key] += binned_sizes(v, bins)
            sums[key] += float(v.sum())
    n = min(len(s) for s in s2s)
    s2 = np.stack([s[:n] for s in s2s])

    def _mean_size(key: str) -> float:
        count = hists[key].sum()
        return float(sums[key] / count) if count > 0 else float("nan")

    return {
        "n_images": len(images),
        "height": h,
        "width": w,
        "threshold": float(np.mean(thr)),
        "porosity": float(np.mean(por)),
        "porosity_std": float(np.std(por)),
        "perimeter_density": float(np.mean(per)),
        "euler_density": float(np.mean(eul)),
        "mean_pore_size": _mean_size("pore"),
        "mean_grain_size": _mean_size("grain"),
        "sample_fraction": float(region.mean()),
        "porosity_sample": float(np.mean(por_in)),
        "porosity_sample_std": float(np.std(por_in)),
        "mean_pore_size_sample": _mean_size("pore_s"),
        "mean_grain_size_sample": _mean_size("grain_s"),
        "r": np.arange(n),
        "s2_mean": s2.mean(axis=0),
        "s2_std": s2.std(axis=0),
        "bins": bins,
        "pore_hist": hists["pore"],
        "grain_hist": hists["grain"],
        "pore_hist_sample": hists["pore_s"],
        "grain_hist_sample": hists["grain_s"],
    }


def evaluate_image_sets(
    sets: dict[str, tuple[str, str | Path]],
    table_csv: str | Path,
    s2_csv: str | Path,
    sizes_csv: str | Path,
    *,
    threshold: float | None = None,
    r_max: int = 32,
    periodic: bool = False,
    max_images: int | None = 64,
    max_size: int | None = None,
    sample: str = "auto",
    sample_margin: float = 0.01,
    provenance: dict | None = None,
) -> None:
    """Morphology tables of named image sets, each compared with the real set of its size.

    `sets` maps a set name to ``(kind, folder)`` with kind ``real``, ``generated`` or
    ``upscaled``. With ``sample="auto"`` the sample region is found once per image size
    from that size's real set (:func:`sample_region`) and applied to every set of that
    size; ``"whole"`` uses the whole image. The table has one row per set (see
    :func:`image_set_stats`: whole-image and ``*_sample`` values) plus ``reference`` (the
    real set of the same image size) and the distances to it: ``s2_rmse`` (RMS difference
    of mean S2 curves), ``pore_w1``/``grain_w1`` (Wasserstein-1, px) and
    ``pore_ks``/``grain_ks`` of the size distributions, ``porosity_diff``, and the same
    inside the sample (``*_sample``). The curve files hold ``set, r, s2_mean, s2_std`` and
    ``set, region (image or sample), phase, size, count, fraction``; the last size bin
    holds every larger value.
    """
    import pandas as pd
    from tqdm import tqdm

    from tomosynth import provenance as prov
    from tomosynth.io import atomic_file

    if sample not in ("auto", "whole"):
        raise DataError(f"morphology sample region {sample!r}: 'auto' or 'whole'")
    images = {name: read_image_folder(folder, max_images) for name, (_, folder) in sets.items()}
    regions: dict[tuple[int, int], np.ndarray] = {}
    real_by_shape: dict[tuple[int, int], str] = {}
    for name, (kind, _) in sets.items():
        shape = images[name].shape[1:]
        if kind == "real" and shape not in real_by_shape:
            real_by_shape[shape] = name
            if sample == "auto":
                regions[shape] = sample_region(images[name], sample_margin)
    stats: dict[str, dict] = {}
    for name, (kind, folder) in tqdm(sets.items(), desc="image sets"):
        imgs = images[name]
        stats[name] = {
            "kind": kind,
            "folder": str(folder),
            **image_set_stats(
                imgs,
                threshold=threshold,
                r_max=r_max,
                periodic=periodic,
                max_size=max_size,
                region=regions.get(imgs.shape[1:]),
            ),
        }
    rows, s2_rows, size_rows = [], [], []
    scalar = [
        "n_images",
        "height",
        "width",
        "threshold",
        "porosity",
        "porosity_std",
        "perimeter_density",
        "euler_density",
        "mean_pore_size",
        "mean_grain_size",
        "sample_fraction",
        "porosity_sample",
        "porosity_sample_std",
        "mean_pore_size_sample",
        "mean_grain_size_sample",
    ]
    nan = float("nan")
    for name, s in stats.items():
        row = {"set": name, "kind": s["kind"], **{k: s[k] for k in scalar}}
        ref_name = real_by_shape.get((s["height"], s["width"]))
        row["reference"] = ref_name
        row["s2_rmse"] = nan
        for suffix in ("", "_sample"):
            for phase in ("pore", "grain"):
                row[f"{phase}_w1{suffix}"] = row[f"{phase}_ks{suffix}"] = nan
            row[f"porosity{suffix}_diff"] = nan
        if ref_name is not None:
            ref = stats[ref_name]
            row["s2_rmse"] = curve_distance(s["s2_mean"], ref["s2_mean"])
            for suffix in ("", "_sample"):
                for phase in ("pore", "grain"):
                    key = f"{phase}_hist{suffix}"
                    row[f"{phase}_w1{suffix}"], row[f"{phase}_ks{suffix}"] = hist_distances(
                        s[key], ref[key], s["bins"]
                    )
                row[f"porosity{suffix}_diff"] = s[f"porosity{suffix}"] - ref[f"porosity{suffix}"]
        rows.append(row)
        s2_rows += [
            {"set": name, "kind": s["kind"], "r": int(r), "s2_mean": float(a), "s2_std": float(b)}
            for r, a, b in zip(s["r"], s["s2_mean"], s["s2_std"], strict=True)
        ]
        centres = 0.5 * (s["bins"][:-1] + s["bins"][1:])
        for region, suffix in (("image", ""), ("sample", "_sample")):
            for phase in ("pore", "grain"):
                h = s[f"{phase}_hist{suffix}"]
                total = h.sum() if h.sum() > 0 else 1.0
                size_rows += [
                    {
                        "set": name,
                        "kind": s["kind"],
                        "region": region,
                        "phase": phase,
                        "size": float(c),
                        "count": float(v),
                        "fraction": float(v / total),
                    }
                    for c, v in zip(centres, h, strict=True)
                ]
    record = prov.provenance(
        sets={k: {"kind": v[0], "folder": str(v[1])} for k, v in sets.items()},
        settings={
            "threshold": threshold,
            "r_max": r_max,
            "periodic": periodic,
            "max_images": max_images,
            "max_size": max_size,
            "sample": sample,
            "sample_margin": sample_margin,
            "sample_fraction": {f"{h}x{w}": float(r.mean()) for (h, w), r in regions.items()},
        },
        **(provenance or {}),
    )
    for df, path in (
        (pd.DataFrame(rows), table_csv),
        (pd.DataFrame(s2_rows), s2_csv),
        (pd.DataFrame(size_rows), sizes_csv),
    ):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as tmp:
            df.to_csv(tmp, index=False)
    prov.write_sidecar(table_csv, record)

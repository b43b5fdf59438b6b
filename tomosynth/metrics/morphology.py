"""Morphological statistics of segmented images and volumes (porous media / bone).

Discretisation (pixel/voxel units throughout; the "phase" is the bright side of the
threshold, ``image > threshold``; porosity is ``1 - phase fraction``):

* two-point correlation S2(r) = P(x and x + r both in the phase), by FFT; non-periodic
  estimates divide by the number of pixel pairs at each displacement (zero padding);
* 2D Minkowski functionals: area = pixel count; perimeter = Crofton estimate with 4
  directions (``skimage.measure.perimeter_crofton``); Euler number = components - holes
  with 8-connected phase (``skimage.measure.euler_number``, connectivity 2);
* 3D Minkowski functionals: volume = voxel count; surface = area of the closed
  marching-cubes mesh after a 0.5-voxel Gaussian (:func:`tomosynth.metrics.geometry.mesh`); integral mean curvature M = int (k1 + k2)/2 dS = 1/2 sum over mesh
  edges of length x signed dihedral angle (4 pi R for a ball of radius R); Euler
  characteristic with 26-connected phase (``euler_number``, connectivity 3);
* size distributions: pixel-weighted histograms of local thickness (diameter of the
  largest inscribed disc/sphere, :func:`tomosynth.metrics.geometry.local_thickness`) of the
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
import pandas as pd
from scipy import ndimage
from tqdm import tqdm

from tomosynth.errors import DataError
from tomosynth.io import list_pngs, read_png_stack
from tomosynth.metrics.geometry import (
    local_thickness,
    minkowski_2d,
    s2_radial,
)
from tomosynth.provenance import provenance as make_provenance
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


# --- image-set evaluation (real, generated, upscaled) ------------------------------------------
def read_image_folder(folder: str | Path, max_images: int | None = None) -> np.ndarray:
    """The first `max_images` ``*.png`` of a folder (sorted names) as a (n, h, w) uint8 stack."""
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
    *,
    threshold: float | None = None,
    r_max: int = 32,
    periodic: bool = False,
    max_images: int | None = 64,
    max_size: int | None = None,
    sample: str = "auto",
    sample_margin: float = 0.01,
    provenance: dict | None = None,
) -> tuple[dict[str, pd.DataFrame], dict]:
    """Morphology tables of named image sets, each compared with the real set of its size.

    Returns ``({"table": ..., "s2": ..., "sizes": ...}, record)``; the caller writes them
    (the record is the table's JSON sidecar).

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
    if sample not in ("auto", "whole"):
        raise DataError(f"morphology sample region {sample!r}: 'auto' or 'whole'")
    images = {name: read_image_folder(folder, max_images) for name, (_, folder) in sets.items()}
    regions, real_by_shape = _reference_regions(sets, images, sample, sample_margin)
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
    for name, s in stats.items():
        rows.append(_table_row(name, s, stats, real_by_shape))
        s2_rows += _s2_rows(name, s)
        size_rows += _size_rows(name, s)
    record = make_provenance(
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
    tables = {
        "table": pd.DataFrame(rows),
        "s2": pd.DataFrame(s2_rows),
        "sizes": pd.DataFrame(size_rows),
    }
    return tables, record


def _reference_regions(
    sets: dict[str, tuple[str, str | Path]],
    images: dict[str, np.ndarray],
    sample: str,
    sample_margin: float,
) -> tuple[dict[tuple[int, int], np.ndarray], dict[tuple[int, int], str]]:
    """Per image size: the sample region (``sample="auto"`` only) and the real set's name.

    The first real set of each size is its reference; its region serves every set of
    that size.
    """
    regions: dict[tuple[int, int], np.ndarray] = {}
    real_by_shape: dict[tuple[int, int], str] = {}
    for name, (kind, _) in sets.items():
        shape = images[name].shape[1:]
        if kind == "real" and shape not in real_by_shape:
            real_by_shape[shape] = name
            if sample == "auto":
                regions[shape] = sample_region(images[name], sample_margin)
    return regions, real_by_shape


#: The scalar columns of the morphology table, in order (see :func:`image_set_stats`).
_SCALAR_KEYS = (
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
)


def _table_row(
    name: str, s: dict, stats: dict[str, dict], real_by_shape: dict[tuple[int, int], str]
) -> dict:
    """The table row of set `name` (stats `s`): its scalars and its distances to the real
    set of its size (NaN when there is none)."""
    nan = float("nan")
    row = {"set": name, "kind": s["kind"], **{k: s[k] for k in _SCALAR_KEYS}}
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
    return row


def _s2_rows(name: str, s: dict) -> list[dict]:
    """Rows ``set, kind, r, s2_mean, s2_std`` of set `name`'s mean S2 curve."""
    return [
        {"set": name, "kind": s["kind"], "r": int(r), "s2_mean": float(a), "s2_std": float(b)}
        for r, a, b in zip(s["r"], s["s2_mean"], s["s2_std"], strict=True)
    ]


def _size_rows(name: str, s: dict) -> list[dict]:
    """Rows ``set, kind, region, phase, size, count, fraction`` of set `name`'s pore and
    grain size histograms, over the image and inside the sample."""
    rows: list[dict] = []
    centres = 0.5 * (s["bins"][:-1] + s["bins"][1:])
    for region, suffix in (("image", ""), ("sample", "_sample")):
        for phase in ("pore", "grain"):
            h = s[f"{phase}_hist{suffix}"]
            total = h.sum() if h.sum() > 0 else 1.0
            rows += [
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
    return rows

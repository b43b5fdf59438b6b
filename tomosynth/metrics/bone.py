"""Bone microstructure metrics on 3D binary volumes (trabecular and cortical sets).

Conventions (declared in every table through :data:`METRICS`):

* Volumes are ``(slices, y, x)`` with isotropic voxels of ``voxel_um`` micrometres;
  results are in millimetres (``mm``, ``mm^2``, ``mm^3``, ``1/mm``).
* BV is a voxel count; BS is the area of the marching-cubes surface at level 0.5 of the
  ROI smoothed by a Gaussian of 0.5 voxel (``skimage.measure``; see :func:`tomosynth.metrics.geometry.mesh`), which
  stays open at the ROI faces, so the cut faces count as intersection surface (i.S),
  never as bone surface.
* Tb.Th and Tb.Sp "direct (BoneJ-style)": the mean over the voxels of the phase (bone or
  marrow) of its local thickness, the diameter of the largest sphere that contains the
  voxel and fits inside the phase (Hildebrand & Ruegsegger 1997).
* "plate model" (parallel-plate, Parfitt; CTAn/ITK-style): Tb.Th = 2 BV/BS,
  Tb.N = (BV/TV)/Tb.Th, Tb.Sp = 1/Tb.N - Tb.Th.
* Tb.Pf (Hahn et al. 1992): (BS1 - BS2)/(BV1 - BV2) before (1) and after (2) a one-voxel
  dilation with the 6-neighbourhood; negative for concave (plate-like, connected)
  structures, positive for convex (rod-like, disconnected) ones.
* Tissue (:data:`TISSUES`): the reference volume of TV and TS, and the marrow is the
  tissue minus the bone. ``roi`` (the default, as CTAn/BoneJ on a drawn ROI): every
  voxel of the ROI, so every non-bone voxel is marrow; right for trabecular cores and
  ROIs inside the bone, where the marrow reaches the volume faces. ``envelope``: the
  periosteal envelope (:func:`envelope`); right for a whole bone in air, whose air is not
  marrow, but without a closed cortex it encloses no marrow and Tb.Sp is NaN. Or a given
  boolean mask of the volume.
* Regions: ``all`` ROIs tile the volume; ``trabecular`` ROIs lie inside the endosteal
  envelope (:func:`endosteal_envelope`), the marrow cavity inside the cortical shell.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from tqdm import tqdm

from tomosynth.errors import ConfigError, DataError
from tomosynth.io import read_json, read_tiff_stack
from tomosynth.metrics.geometry import (
    directional_s2,
    local_thickness,
    mesh,
    minkowski_3d,
    slice_ssim,
)
from tomosynth.metrics.stats import pearson
from tomosynth.provenance import provenance as make_provenance

#: name -> (unit, definition/convention); the column names of :func:`bone_metrics`.
METRICS: dict[str, tuple[str, str]] = {
    "TV": ("mm^3", "tissue volume (see tissue)"),
    "BV": ("mm^3", "bone volume (voxel count)"),
    "BV/TV": ("1", "bone volume fraction"),
    "TS": ("mm^2", "tissue surface (closed marching-cubes surface of the tissue mask)"),
    "BS": ("mm^2", "bone surface (marching cubes, ROI faces excluded)"),
    "i.S": ("mm^2", "intersection surface (bone cut by the ROI faces)"),
    "BS/BV": ("1/mm", "bone surface to volume ratio"),
    "BS/TV": ("1/mm", "bone surface density"),
    "Tb.Th": ("mm", "direct (BoneJ-style) local thickness of bone"),
    "Tb.Sp": ("mm", "direct (BoneJ-style) local thickness of marrow"),
    "Tb.N": ("1/mm", "direct: 1/(Tb.Th + Tb.Sp)"),
    "Tb.Th.pm": ("mm", "plate model: 2 BV/BS"),
    "Tb.Sp.pm": ("mm", "plate model: 1/Tb.N.pm - Tb.Th.pm"),
    "Tb.N.pm": ("1/mm", "plate model: (BV/TV)/Tb.Th.pm"),
    "Tb.Pf": ("1/mm", "trabecular pattern factor (one-voxel dilation)"),
}

#: Tissue definitions (see the module docstring): name -> the table's wording.
TISSUES: dict[str, str] = {
    "roi": "tissue = the ROI (every non-bone voxel is marrow)",
    "envelope": "tissue = periosteal envelope (bone closed by 2 voxels, cavities filled per slice)",
    "mask": "tissue = a given mask",
}

TRABECULAR = [
    "BV/TV",
    "BS/BV",
    "Tb.Th",
    "Tb.Sp",
    "Tb.N",
    "Tb.Th.pm",
    "Tb.Sp.pm",
    "Tb.N.pm",
    "Tb.Pf",
]
CORTICAL = ["TV", "BV", "BV/TV", "TS", "BS", "i.S", "BS/BV", "BS/TV"]


# --- segmentation ---------------------------------------------------------------------------
def binarize(volume: np.ndarray, threshold: float | None = None) -> tuple[np.ndarray, float]:
    """Bone mask ``volume > threshold``; Otsu's threshold of the whole volume when None.

    Returns the boolean mask and the threshold used (in the volume's intensity units).
    """
    vol = np.asarray(volume, dtype=np.float32)
    if vol.ndim != 3:
        raise DataError(f"binarize: expected a 3D volume, got shape {vol.shape}")
    if threshold is None:
        from skimage.filters import threshold_otsu

        if float(vol.min()) == float(vol.max()):
            raise DataError("binarize: constant volume, Otsu's threshold is undefined")
        threshold = float(threshold_otsu(vol))
    return vol > threshold, float(threshold)


# --- surfaces -----------------------------------------------------------------------------------
def surface_area(
    mask: np.ndarray, voxel_mm: float = 1.0, closed: bool = False, sigma: float = 0.5
) -> float:
    """Area (mm^2) of the marching-cubes boundary of a 3D boolean mask (see :func:`tomosynth.metrics.geometry.mesh`)."""
    from skimage.measure import mesh_surface_area

    out = mesh(mask, sigma=sigma, closed=closed, voxel_mm=voxel_mm)
    return 0.0 if out is None else float(mesh_surface_area(*out))


def intersection_surface(mask: np.ndarray, voxel_mm: float = 1.0) -> float:
    """Area (mm^2) of the six faces of the ROI that bone voxels occupy (CTAn's i.S)."""
    m = np.asarray(mask, dtype=bool)
    faces = 0
    for ax in range(3):
        faces += int(np.take(m, 0, axis=ax).sum()) + int(np.take(m, -1, axis=ax).sum())
    return faces * voxel_mm**2


def tissue_mask(bone: np.ndarray, tissue: str | np.ndarray = "roi") -> np.ndarray:
    """Tissue (reference) volume of a bone mask (see :data:`TISSUES`).

    ``"roi"``: every voxel; ``"envelope"``: :func:`envelope` of the bone; a boolean array
    of the bone's shape: that mask.
    """
    bone = np.asarray(bone, dtype=bool)
    if isinstance(tissue, np.ndarray):
        if tissue.shape != bone.shape:
            raise DataError(f"tissue mask of shape {tissue.shape} does not match {bone.shape}")
        return tissue.astype(bool, copy=False)
    if tissue == "roi":
        return np.ones_like(bone)
    if tissue == "envelope":
        return envelope(bone)
    raise ConfigError(
        f"evaluate.bone.tissue: unknown tissue {tissue!r} (roi, envelope or a boolean mask)"
    )


def tissue_name(tissue: str | np.ndarray) -> str:
    """The :data:`TISSUES` key of a tissue argument (``"mask"`` for an array)."""
    return "mask" if isinstance(tissue, np.ndarray) else str(tissue)


def envelope(bone: np.ndarray, closing: int = 2) -> np.ndarray:
    """Periosteal envelope: each slice's bone, closed by `closing` voxels to bridge small
    gaps of a noisy cortex, with the enclosed cavities filled."""
    bone = np.asarray(bone, dtype=bool)
    closed = ndi.binary_closing(bone, iterations=closing, border_value=0) | bone
    return np.stack([ndi.binary_fill_holes(s) for s in closed])


def _disc(diameter: float) -> np.ndarray:
    r = (float(diameter) - 1.0) / 2.0
    k = int(np.floor(r))
    yy, xx = np.mgrid[-k : k + 1, -k : k + 1]
    return yy**2 + xx**2 <= r * r + 1e-9


def endosteal_envelope(bone: np.ndarray, cortex_min_thickness: float = 12.0) -> np.ndarray:
    """The marrow cavity inside the cortical shell, trabeculae included (per slice).

    The marrow inside the periosteal envelope (:func:`envelope`) is closed, slice by slice,
    with a disc of diameter `cortex_min_thickness` voxels: bone narrower than the disc
    (trabeculae) is bridged, bone at least that thick (the cortex) is not, and the air
    outside is not reached. Without a closed cortex the envelope encloses no marrow and
    the result is empty.

    Parameters
    ----------
    bone : (n, h, w) bool
    cortex_min_thickness : float
        Thinnest cortex, thickest trabecula (voxels); >= 2.
    """
    bone = np.asarray(bone, dtype=bool)
    if cortex_min_thickness < 2:
        raise ConfigError(
            f"evaluate.bone.cortex_min_thickness: must be >= 2 voxels, got {cortex_min_thickness}"
        )
    disc = _disc(cortex_min_thickness)
    pad = disc.shape[0]
    periosteal = envelope(bone)
    out = np.zeros_like(bone)
    for i, (p, b) in enumerate(zip(periosteal, bone, strict=True)):
        marrow = np.pad(p & ~b, pad)  # the padding is outside the specimen
        closed = ndi.binary_closing(marrow, structure=disc)[pad:-pad, pad:-pad]
        out[i] = closed & p
    return out


# --- per-ROI metrics ------------------------------------------------------------------------------
def _ratio(a: float, b: float) -> float:
    return float(a / b) if b > 0 else float("nan")


def pattern_factor(bone: np.ndarray, voxel_mm: float = 1.0, sigma: float = 0.5) -> float:
    """Tb.Pf (1/mm): change of BS over change of BV under a one-voxel 6-neighbour dilation."""
    bone = np.asarray(bone, dtype=bool)
    if not bone.any():
        return float("nan")
    dil = ndi.binary_dilation(bone, structure=ndi.generate_binary_structure(3, 1))
    dv = (int(dil.sum()) - int(bone.sum())) * voxel_mm**3
    ds = surface_area(dil, voxel_mm, sigma=sigma) - surface_area(bone, voxel_mm, sigma=sigma)
    return float(ds / dv) if dv > 0 else float("nan")


def bone_metrics(
    bone: np.ndarray,
    voxel_mm: float,
    *,
    thickness_bone: np.ndarray | None = None,
    thickness_marrow: np.ndarray | None = None,
    tissue: str | np.ndarray = "roi",
    sigma: float = 0.5,
) -> dict[str, float]:
    """All of :data:`METRICS` for one binary ROI.

    Parameters
    ----------
    bone : (n, h, w) bool
        Bone mask of the ROI.
    voxel_mm : float
        Isotropic voxel size in mm.
    thickness_bone, thickness_marrow : arrays like `bone`, optional
        Local-thickness maps (voxels) of bone and marrow, computed on the whole volume
        and cropped to this ROI so that structures cut by the ROI faces keep their
        thickness; computed on the ROI itself when omitted.
    tissue : {"roi", "envelope"} or (n, h, w) bool array
        Tissue for TV, TS and the marrow (see :data:`TISSUES`); an array is this ROI's
        part of a tissue mask.
    sigma : float
        Gaussian smoothing (voxels) before marching cubes (see :func:`tomosynth.metrics.geometry.mesh`).
    """
    bone = np.asarray(bone, dtype=bool)
    if bone.ndim != 3:
        raise DataError(f"bone_metrics: expected a 3D ROI, got shape {bone.shape}")
    tis = tissue_mask(bone, tissue)
    if thickness_bone is None:
        thickness_bone = local_thickness(bone)
    if thickness_marrow is None:
        thickness_marrow = local_thickness(~bone & tis)
    v3 = voxel_mm**3
    tv = int(tis.sum()) * v3
    bv = int((bone & tis).sum()) * v3
    if tissue_name(tissue) == "roi":  # the ROI box: exact, marching cubes would chamfer it
        n, h, w = bone.shape
        ts = 2.0 * (n * h + h * w + n * w) * voxel_mm**2
    else:
        ts = surface_area(tis, voxel_mm, closed=True, sigma=sigma)
    bs = surface_area(bone, voxel_mm, sigma=sigma)
    marrow = ~bone & tis
    th = float(thickness_bone[bone].mean()) * voxel_mm if bone.any() else float("nan")
    # Marrow voxels with a thickness (a whole-volume map is 0 outside its tissue).
    marrow = marrow & (thickness_marrow > 0)
    sp = float(thickness_marrow[marrow].mean()) * voxel_mm if marrow.any() else float("nan")
    bv_tv = _ratio(bv, tv)
    th_pm = _ratio(2.0 * bv, bs)
    n_pm = _ratio(bv_tv, th_pm)
    return {
        "TV": tv,
        "BV": bv,
        "BV/TV": bv_tv,
        "TS": ts,
        "BS": bs,
        "i.S": intersection_surface(bone, voxel_mm),
        "BS/BV": _ratio(bs, bv),
        "BS/TV": _ratio(bs, tv),
        "Tb.Th": th,
        "Tb.Sp": sp,
        "Tb.N": _ratio(1.0, th + sp),
        "Tb.Th.pm": th_pm,
        "Tb.Sp.pm": _ratio(1.0, n_pm) - th_pm,
        "Tb.N.pm": n_pm,
        "Tb.Pf": pattern_factor(bone, voxel_mm, sigma),
    }


@dataclass(frozen=True)
class Roi:
    """A cubic sub-volume: index and start corner (slice, y, x) in voxels."""

    index: int
    z: int
    y: int
    x: int
    size: int

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        s = self.size
        return (slice(self.z, self.z + s), slice(self.y, self.y + s), slice(self.x, self.x + s))


def split_rois(shape: tuple[int, ...], size: int, stride: int | None = None) -> list[Roi]:
    """Cubes of `size` voxels tiling a volume of `shape` (step `stride`, default `size`).

    The remainder at the far faces is dropped; a size larger than the volume uses one
    ROI of the largest cube that fits.
    """
    if len(shape) != 3:
        raise DataError(f"split_rois: expected a 3D shape, got {shape}")
    if size < 2:
        raise ConfigError(f"evaluate.bone.roi_size: must be >= 2, got {size}")
    size = min(size, *shape)
    stride = size if stride is None else stride
    if stride < 1:
        raise ConfigError(f"evaluate.bone.roi_stride: must be >= 1, got {stride}")
    starts = [range(0, n - size + 1, stride) for n in shape]
    return [Roi(i, z, y, x, size) for i, (z, y, x) in enumerate(itertools.product(*starts))]


def roi_metrics(
    bone: np.ndarray,
    voxel_mm: float,
    roi_size: int,
    *,
    roi_stride: int | None = None,
    tissue: str | np.ndarray = "roi",
    sigma: float = 0.5,
    progress: bool = True,
) -> Iterator[tuple[Roi, dict[str, float]]]:
    """Metrics of every cubic ROI of a binary volume, thickness maps shared by all ROIs.

    The marrow thickness map is computed on the whole volume's marrow (the tissue minus
    the bone, see :data:`TISSUES`), so marrow cut by an ROI face keeps its width.
    """
    bone = np.asarray(bone, dtype=bool)
    tis = tissue_mask(bone, tissue)
    t_bone = local_thickness(bone, progress=progress)
    t_marrow = local_thickness(~bone & tis, progress=progress)
    rois = split_rois(bone.shape, roi_size, roi_stride)
    for roi in tqdm(rois, desc="ROIs", disable=not progress, leave=False):
        s = roi.slices
        yield (
            roi,
            bone_metrics(
                bone[s],
                voxel_mm,
                thickness_bone=t_bone[s],
                thickness_marrow=t_marrow[s],
                tissue="roi" if tissue_name(tissue) == "roi" else tis[s],
                sigma=sigma,
            ),
        )


def trabecular_rois(
    bone: np.ndarray,
    roi_size: int,
    roi_stride: int | None = None,
    cortex_min_thickness: float = 12.0,
) -> list[Roi]:
    """The ROIs of :func:`split_rois` that lie wholly inside the endosteal envelope."""
    inside = endosteal_envelope(bone, cortex_min_thickness)
    return [r for r in split_rois(bone.shape, roi_size, roi_stride) if inside[r.slices].all()]


# --- SR volume evaluation (LR, SR and HR of one specimen) ------------------------------------
KINDS = ("lr", "sr", "hr")


def read_sr_volume(folder: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """The ``lr/``, ``sr/`` and ``hr/`` float32 stacks of an SR volume folder and its meta.json.

    DataError names the folder when a part is missing or the parts differ in shape.
    """
    folder = Path(folder)
    vols = {}
    for kind in KINDS:
        if not (folder / kind).is_dir():
            raise DataError(f"{folder}: no {kind}/ sub-folder (need lr/, sr/ and hr/)")
        vols[kind] = read_tiff_stack(folder / kind)
    shapes = {k: v.shape for k, v in vols.items()}
    if len(set(shapes.values())) != 1:
        raise DataError(f"{folder}: lr/sr/hr stacks differ in shape: {shapes}")
    meta = read_json(folder / "meta.json") if (folder / "meta.json").is_file() else {}
    return vols, meta


def read_sr_part(folder: str | Path, kind: str) -> np.ndarray:
    """One float32 stack (``lr``, ``sr`` or ``hr``) of an SR volume folder."""
    folder = Path(folder)
    if not (folder / kind).is_dir():
        raise DataError(f"{folder}: no {kind}/ sub-folder (need lr/, sr/ and hr/)")
    return read_tiff_stack(folder / kind)


def roi_table(
    volumes: dict[str, np.ndarray],
    voxel_um: float,
    *,
    threshold: float | None = None,
    roi_size: int = 32,
    roi_stride: int | None = None,
    tissue: str | np.ndarray = "roi",
    sigma: float = 0.5,
    progress: bool = True,
    cortex_min_thickness: float = 12.0,
    reference: str = "hr",
    trabecular: set[int] | None = None,
):
    """Per-ROI metrics of several volumes of one specimen as a pandas DataFrame.

    One row per (kind, region, ROI) with columns ``kind, region, roi, z, y, x, size,
    threshold, tissue`` and the names of :data:`METRICS`. Region ``all`` holds every ROI;
    region ``trabecular`` repeats those inside the endosteal envelope of the `reference`
    volume (the first one when absent; :func:`trabecular_rois`), the same ROIs in every
    volume; `trabecular` gives those ROI indices instead (when the reference volume is
    measured in another call). Each volume is thresholded on its own (`threshold` in its intensity units,
    Otsu's when None); the same ROIs are used in every volume.
    """
    if voxel_um <= 0:
        raise ConfigError(f"voxel_um: must be > 0, got {voxel_um}")
    voxel_mm = voxel_um / 1000.0
    ref_kind = (
        None
        if trabecular is not None
        else (reference if reference in volumes else next(iter(volumes)))
    )
    trabecular = set() if trabecular is None else set(trabecular)
    rows = []
    for kind, vol in volumes.items():
        bone, thr = binarize(vol, threshold)
        if kind == ref_kind:
            trabecular = {
                r.index for r in trabecular_rois(bone, roi_size, roi_stride, cortex_min_thickness)
            }
        for roi, m in roi_metrics(
            bone,
            voxel_mm,
            roi_size,
            roi_stride=roi_stride,
            tissue=tissue,
            sigma=sigma,
            progress=progress,
        ):
            rows.append(
                {
                    "kind": kind,
                    "region": "all",
                    "roi": roi.index,
                    "z": roi.z,
                    "y": roi.y,
                    "x": roi.x,
                    "size": roi.size,
                    "threshold": thr,
                    "tissue": tissue_name(tissue),
                    **m,
                }
            )
    table = pd.DataFrame(rows)
    trab = table[table["roi"].isin(trabecular)].assign(region="trabecular")
    return pd.concat([table, trab], ignore_index=True) if len(trab) else table


def correlation_table(table, reference: str = "hr", confidence: float = 0.95):
    """Pearson r, p and Fisher-z interval of each metric of each kind against `reference`.

    ROIs are paired by their index, per region (``all``, ``trabecular``; a table without
    a ``region`` column is one region ``all``); columns ``kind, region, reference, metric,
    unit, convention, n, r, p, ci_low, ci_high, confidence``. The convention names the
    tissue definition when the table has a ``tissue`` column.
    """
    if "region" not in table.columns:
        table = table.assign(region="all")
    tissue = ""
    if "tissue" in table.columns and len(table):
        tissue = "; " + "; ".join(TISSUES.get(t, str(t)) for t in sorted(table["tissue"].unique()))
    rows = []
    for region, kind in [
        (g, k) for g in table["region"].unique() for k in table["kind"].unique() if k != reference
    ]:
        part = table[table["region"] == region]
        ref = part[part["kind"] == reference].set_index("roi")
        other = part[part["kind"] == kind].set_index("roi").reindex(ref.index)
        for name, (unit, convention) in METRICS.items():
            x, y = other[name].to_numpy(float), ref[name].to_numpy(float)
            r, p, lo, hi = pearson(x, y, confidence)
            n = int((np.isfinite(x) & np.isfinite(y)).sum())
            rows.append(
                {
                    "kind": kind,
                    "region": region,
                    "reference": reference,
                    "metric": name,
                    "unit": unit,
                    "convention": convention + tissue,
                    "n": n,
                    "r": r,
                    "p": p,
                    "ci_low": lo,
                    "ci_high": hi,
                    "confidence": confidence,
                }
            )
    return pd.DataFrame(rows)


def consistency_table(
    volumes: dict[str, np.ndarray], *, threshold: float | None = None, r_max: int = 16
):
    """3D consistency and 3D morphology of each stack: S2 along the slice axis and in-plane,
    slice-to-slice SSIM, and the 3D Minkowski functionals of the bone phase.

    Long format: ``kind, quantity, lag, value`` with quantity ``s2_slice | s2_plane |
    ssim_next | minkowski_volume (vx^3) | minkowski_surface (vx^2) |
    minkowski_mean_curvature (vx) | minkowski_euler``; for ``ssim_next`` the lag column holds
    the first slice of the pair, for the Minkowski functionals it is 0. SSIM uses
    ``data_range=1`` (volumes in [0, 1]).
    """
    rows = []
    for kind, vol in volumes.items():
        bone, _ = binarize(vol, threshold)
        rows += [
            {"kind": kind, "quantity": f"minkowski_{k}", "lag": 0, "value": float(v)}
            for k, v in minkowski_3d(bone).items()
        ]
        s2 = directional_s2(bone, r_max)
        for quantity, key in (("s2_slice", "slice"), ("s2_plane", "plane")):
            rows += [
                {"kind": kind, "quantity": quantity, "lag": k, "value": float(v)}
                for k, v in enumerate(s2[key])
            ]
        if vol.shape[0] >= 2:
            rows += [
                {"kind": kind, "quantity": "ssim_next", "lag": i, "value": float(v)}
                for i, v in enumerate(slice_ssim(vol, data_range=1.0))
            ]
    return pd.DataFrame(rows)


def evaluate_sr_volume(
    volume_dir: str | Path,
    *,
    voxel_um: float | None,
    threshold: float | None = None,
    roi_size: int = 32,
    roi_stride: int | None = None,
    tissue: str | np.ndarray = "roi",
    sigma: float = 0.5,
    confidence: float = 0.95,
    r_max: int = 16,
    provenance: dict | None = None,
    cortex_min_thickness: float = 12.0,
) -> tuple[dict[str, pd.DataFrame], dict]:
    """Bone tables of an SR volume folder (lr/, sr/, hr/) and their provenance record.

    Returns ``({"table": per-ROI metrics, "correlations": SR-vs-HR and LR-vs-HR
    correlations, "consistency": 3D consistency}, record)``; the caller writes them (the
    record is the table's JSON sidecar). The voxel size (um) is the folder's ``meta.json``
    ``hr_voxel_um`` when present, else `voxel_um`.
    """
    folder = Path(volume_dir)
    missing = [k for k in KINDS if not (folder / k).is_dir()]
    if missing:
        raise DataError(f"{folder}: no {missing[0]}/ sub-folder (need lr/, sr/ and hr/)")
    meta = read_json(folder / "meta.json") if (folder / "meta.json").is_file() else {}
    vox = meta.get("hr_voxel_um") or voxel_um
    if vox is None:
        raise ConfigError(f"{volume_dir}: no hr_voxel_um in meta.json and no voxel_um given")
    # One volume in memory at a time: HR first (its endosteal envelope picks the trabecular
    # ROIs of every kind), then LR and SR; tables keep the KINDS order.
    tables, consistency, shapes = {}, {}, {}
    trabecular: set[int] | None = None
    for kind in ("hr", *(k for k in KINDS if k != "hr")):
        vol = read_sr_part(folder, kind)
        shapes[kind] = vol.shape
        if len(set(shapes.values())) != 1:
            raise DataError(f"{folder}: lr/sr/hr stacks differ in shape: {shapes}")
        if trabecular is None:
            bone, _ = binarize(vol, threshold)
            trabecular = {
                r.index for r in trabecular_rois(bone, roi_size, roi_stride, cortex_min_thickness)
            }
            del bone
        tables[kind] = roi_table(
            {kind: vol},
            float(vox),
            threshold=threshold,
            roi_size=roi_size,
            roi_stride=roi_stride,
            tissue=tissue,
            sigma=sigma,
            trabecular=trabecular,
        )
        consistency[kind] = consistency_table({kind: vol}, threshold=threshold, r_max=r_max)
        del vol
    table = pd.concat([tables[k] for k in KINDS], ignore_index=True)
    corr = correlation_table(table, "hr", confidence)
    cons = pd.concat([consistency[k] for k in KINDS], ignore_index=True)
    record = make_provenance(
        volume=str(volume_dir),
        volume_meta=meta,
        voxel_um=float(vox),
        threshold={k: float(t) for k, t in table.groupby("kind")["threshold"].first().items()},
        settings={
            "threshold": threshold,
            "roi_size": roi_size,
            "roi_stride": roi_stride,
            "tissue": tissue_name(tissue),
            "cortex_min_thickness": cortex_min_thickness,
            "surface_sigma": sigma,
            "confidence": confidence,
            "r_max": r_max,
        },
        metrics={k: {"unit": u, "convention": c} for k, (u, c) in METRICS.items()},
        **(provenance or {}),
    )
    return {"table": table, "correlations": corr, "consistency": cons}, record

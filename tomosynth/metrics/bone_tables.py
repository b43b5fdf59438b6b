"""Bone tables of an SR volume folder (LR, SR and HR stacks of one specimen).

Per-ROI metrics (:func:`tomosynth.metrics.bone.roi_metrics`) of each stack, read slice by
slice into one bone mask (1 byte per voxel) at a time; their correlation and agreement
against HR (:func:`correlation_table`: r, p, CI beside bias, MARE, MAE and Bland-Altman
limits); SR's and LR's errors side by side (:func:`relative_error_table`); and the 3D
consistency of each stack (:func:`consistency_table`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tomosynth.errors import ConfigError, DataError
from tomosynth.io import read_json, read_tiff_stack
from tomosynth.metrics.bone import (
    BLOCK_SIDE,
    METRICS,
    TISSUES,
    TRABECULAR,
    binarize,
    minkowski_pooled,
    roi_metrics,
    tissue_name,
    trabecular_rois,
)
from tomosynth.metrics.bone_stream import read_stack_mask, stack_paths
from tomosynth.metrics.geometry import directional_s2, slice_ssim
from tomosynth.metrics.stats import agreement, pearson_test
from tomosynth.provenance import provenance as make_provenance

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
        rows += mask_rows(
            kind,
            bone,
            thr,
            voxel_mm,
            roi_size=roi_size,
            roi_stride=roi_stride,
            tissue=tissue,
            sigma=sigma,
            progress=progress,
        )
    return with_regions(pd.DataFrame(rows), trabecular)


def with_regions(table, trabecular: set[int]):
    """The ``all`` rows of a per-ROI table plus the `trabecular` ROIs again as region
    ``trabecular``."""
    trab = table[table["roi"].isin(trabecular)].assign(region="trabecular")
    return pd.concat([table, trab], ignore_index=True) if len(trab) else table


def mask_rows(
    kind: str,
    bone: np.ndarray,
    threshold: float,
    voxel_mm: float,
    *,
    roi_size: int,
    roi_stride: int | None,
    tissue: str | np.ndarray,
    sigma: float,
    progress: bool,
    workers: int = 1,
    block: int = BLOCK_SIDE,
) -> list[dict]:
    """The region-``all`` rows of :func:`roi_table` for one bone mask (ROI blocks of
    `block` voxels on `workers` processes: :func:`tomosynth.metrics.bone.roi_metrics`)."""
    return [
        {
            "kind": kind,
            "region": "all",
            "roi": roi.index,
            "z": roi.z,
            "y": roi.y,
            "x": roi.x,
            "size": roi.size,
            "threshold": threshold,
            "tissue": tissue_name(tissue),
            **m,
        }
        for roi, m in roi_metrics(
            bone,
            voxel_mm,
            roi_size,
            roi_stride=roi_stride,
            tissue=tissue,
            sigma=sigma,
            progress=progress,
            workers=workers,
            block=block,
        )
    ]


def _paired(table, reference: str):
    """(region, kind, reference rows, the kind's rows re-indexed to them) per region and kind."""
    if "region" not in table.columns:
        table = table.assign(region="all")
    for region in table["region"].unique():
        part = table[table["region"] == region]
        ref = part[part["kind"] == reference].set_index("roi")
        for kind in part["kind"].unique():
            if kind != reference:
                yield (
                    region,
                    kind,
                    ref,
                    part[part["kind"] == kind].set_index("roi").reindex(ref.index),
                )


def correlation_table(table, reference: str = "hr", confidence: float = 0.95):
    """Correlation and agreement of each metric of each kind against `reference`.

    ROIs are paired by their index, per region (``all``, ``trabecular``; a table without
    a ``region`` column is one region ``all``); columns ``kind, region, reference, metric,
    unit, convention, n, r, p, ci_low, ci_high, confidence, r_note`` (why r is NaN, e.g. a
    constant column) and the agreement of :func:`tomosynth.metrics.stats.agreement`:
    ``bias`` (median relative error, a fraction), ``mare`` (median absolute relative
    error), ``mae`` (mean absolute error, the metric's unit), ``mean_diff``, ``sd_diff``,
    ``loa_low``, ``loa_high`` (Bland-Altman 95 % limits of the difference kind - reference).
    The convention names the tissue definition when the table has a ``tissue`` column.
    """
    tissue = ""
    if "tissue" in table.columns and len(table):
        tissue = "; " + "; ".join(TISSUES.get(t, str(t)) for t in sorted(table["tissue"].unique()))
    rows = []
    for region, kind, ref, other in _paired(table, reference):
        for name, (unit, convention) in METRICS.items():
            x, y = other[name].to_numpy(float), ref[name].to_numpy(float)
            c = pearson_test(x, y, confidence)
            a = agreement(x, y)
            rows.append(
                {
                    "kind": kind,
                    "region": region,
                    "reference": reference,
                    "metric": name,
                    "unit": unit,
                    "convention": convention + tissue,
                    "n": c.n,
                    "r": c.r,
                    "p": c.p,
                    "ci_low": c.ci_low,
                    "ci_high": c.ci_high,
                    "confidence": confidence,
                    "r_note": c.reason,
                    "bias": a.bias,
                    "mare": a.mare,
                    "mae": a.mae,
                    "mean_diff": a.mean_diff,
                    "sd_diff": a.sd_diff,
                    "loa_low": a.loa_low,
                    "loa_high": a.loa_high,
                }
            )
    return pd.DataFrame(rows)


def relative_error_table(
    table,
    *,
    reference: str = "hr",
    kinds: tuple[str, str] = ("sr", "lr"),
    region: str = "trabecular",
    metrics: list[str] | None = None,
):
    """Per metric, the median absolute relative error of each of `kinds` against `reference`.

    The bone criterion's question, "is SR closer to HR than LR is?", asked of the errors
    and not only of r: for each metric (default :data:`TRABECULAR`) over the ROIs of
    `region` (all ROIs when the table has no ``region`` column), pairs by ROI index,
    columns ``metric, unit, n, {kind}_mare, {kind}_bias`` for each kind (fractions:
    0.2 = 20 %; bias = median relative error, signed) and ``winner``: the kind of the lower
    error (``""`` when either is NaN, ``"tie"`` when equal).
    """
    if "region" in table.columns:
        table = table[table["region"] == region]
    metrics = list(metrics or TRABECULAR)
    ref = table[table["kind"] == reference].set_index("roi")
    rows = []
    for name in metrics:
        row: dict[str, object] = {"metric": name, "unit": METRICS[name][0]}
        errs = {}
        for kind in kinds:
            other = table[table["kind"] == kind].set_index("roi").reindex(ref.index)
            a = agreement(other[name].to_numpy(float), ref[name].to_numpy(float))
            row["n"] = a.n_rel
            row[f"{kind}_mare"], row[f"{kind}_bias"] = a.mare, a.bias
            errs[kind] = a.mare
        e0, e1 = (errs[k] for k in kinds)
        if not (np.isfinite(e0) and np.isfinite(e1)):
            row["winner"] = ""
        else:
            row["winner"] = "tie" if e0 == e1 else (kinds[0] if e0 < e1 else kinds[1])
        rows.append(row)
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
        ssim = slice_ssim(vol, data_range=1.0) if vol.shape[0] >= 2 else np.array([])
        rows += consistency_rows(kind, bone, ssim, r_max)
    return pd.DataFrame(rows)


def consistency_rows(
    kind: str, bone: np.ndarray, ssim: np.ndarray, r_max: int, workers: int = 1
) -> list[dict]:
    """The :func:`consistency_table` rows of one stack from its bone mask and the SSIM of
    its consecutive slices (Minkowski mesh tiles on `workers` processes)."""
    rows = [
        {"kind": kind, "quantity": f"minkowski_{k}", "lag": 0, "value": float(v)}
        for k, v in minkowski_pooled(bone, workers).items()
    ]
    s2 = directional_s2(bone, r_max)
    for quantity, key in (("s2_slice", "slice"), ("s2_plane", "plane")):
        rows += [
            {"kind": kind, "quantity": quantity, "lag": k, "value": float(v)}
            for k, v in enumerate(s2[key])
        ]
    rows += [
        {"kind": kind, "quantity": "ssim_next", "lag": i, "value": float(v)}
        for i, v in enumerate(ssim)
    ]
    return rows


def _volume_meta(volume_dir: str | Path, voxel_um: float | None) -> tuple[dict, float | int]:
    """``(meta.json contents or {}, voxel size in um)`` of an SR volume folder.

    DataError when a kind's sub-folder is missing; ConfigError when there is no voxel
    size (neither ``hr_voxel_um`` in ``meta.json`` nor `voxel_um`) or it is not > 0.
    """
    folder = Path(volume_dir)
    missing = [k for k in KINDS if not (folder / k).is_dir()]
    if missing:
        raise DataError(f"{folder}: no {missing[0]}/ sub-folder (need lr/, sr/ and hr/)")
    meta = read_json(folder / "meta.json") if (folder / "meta.json").is_file() else {}
    vox = meta.get("hr_voxel_um") or voxel_um
    if vox is None:
        raise ConfigError(f"{volume_dir}: no hr_voxel_um in meta.json and no voxel_um given")
    if float(vox) <= 0:
        raise ConfigError(f"{volume_dir}: voxel size must be > 0, got {vox}")
    return meta, vox


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
    workers: int = 1,
    block: int = BLOCK_SIDE,
) -> tuple[dict[str, pd.DataFrame], dict]:
    """Bone tables of an SR volume folder (lr/, sr/, hr/) and their provenance record.

    Returns ``({"table": per-ROI metrics, "correlations": SR-vs-HR and LR-vs-HR
    correlations, "consistency": 3D consistency}, record)``; the caller writes them (the
    record is the table's JSON sidecar). The voxel size (um) is the folder's ``meta.json``
    ``hr_voxel_um`` when present, else `voxel_um`. `workers` processes compute the ROI
    blocks (of `block` voxels) and the Minkowski mesh tiles (the rule's threads): the
    same tables as one process.
    """
    folder = Path(volume_dir)
    meta, vox = _volume_meta(volume_dir, voxel_um)
    # One bone mask (1 byte per voxel) in memory at a time, read slice by slice; HR first
    # (its endosteal envelope picks the trabecular ROIs of every kind); tables keep KINDS.
    rows: dict[str, list[dict]] = {}
    cons_rows: dict[str, list[dict]] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    trabecular: set[int] = set()
    for kind in ("hr", *(k for k in KINDS if k != "hr")):
        bone, thr, ssim = read_stack_mask(stack_paths(folder, kind), threshold, workers)
        shapes[kind] = bone.shape
        if len(set(shapes.values())) != 1:
            raise DataError(f"{folder}: lr/sr/hr stacks differ in shape: {shapes}")
        if kind == "hr":
            rois = trabecular_rois(
                bone, roi_size, roi_stride, cortex_min_thickness, workers=workers
            )
            trabecular = {r.index for r in rois}
        rows[kind] = mask_rows(
            kind,
            bone,
            thr,
            float(vox) / 1000.0,
            roi_size=roi_size,
            roi_stride=roi_stride,
            tissue=tissue,
            sigma=sigma,
            progress=True,
            workers=workers,
            block=block,
        )
        cons_rows[kind] = consistency_rows(kind, bone, ssim, r_max, workers)
        del bone
    table = with_regions(pd.DataFrame([r for k in KINDS for r in rows[k]]), trabecular)
    corr = correlation_table(table, "hr", confidence)
    cons = pd.DataFrame([r for k in KINDS for r in cons_rows[k]])
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

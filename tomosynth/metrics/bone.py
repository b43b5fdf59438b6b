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
  voxel and fits inside the phase (Hildebrand & Ruegsegger 1997). Beyond the volume's
  faces nothing is known: a voxel whose thickness depends on what lies there (a plate cut
  by a face) is left out of the mean, neither doubled nor halved
  (:func:`tomosynth.metrics.geometry.thickness_known`). The maps are computed per block of
  ROIs on the block plus a halo of the real volume that is grown until it provably covers
  the largest sphere, so an ROI's values equal the whole volume's, in bounded memory.
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

import contextlib
import itertools
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from tqdm import tqdm

from tomosynth.errors import ConfigError, DataError
from tomosynth.metrics.geometry import (
    THICKNESS_MARGIN,
    EulerJob,
    MeshJob,
    euler_slab,
    mesh,
    mesh_tile,
    minkowski_3d,
    thickness_known,
)
from tomosynth.metrics.pool import (
    SHARED,
    check_workers,
    forked_pool,
    pool_map,
    shared_bool,
    slab_runs,
)
from tomosynth.sizing import BONE_BLOCK_SIDE, BONE_HALO_MAX

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


def _check_cortex(cortex_min_thickness: float) -> None:
    if cortex_min_thickness < 2:
        raise ConfigError(
            f"evaluate.bone.cortex_min_thickness: must be >= 2 voxels, got {cortex_min_thickness}"
        )


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
    _check_cortex(cortex_min_thickness)
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


def _known_mean(values: np.ndarray) -> float:
    """Mean of the finite values (NaN = unknown thickness), NaN when there are none."""
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")


def pattern_factor(
    bone: np.ndarray, voxel_mm: float = 1.0, sigma: float = 0.5, bs: float | None = None
) -> float:
    """Tb.Pf (1/mm): change of BS over change of BV under a one-voxel 6-neighbour dilation.

    `bs` is the bone's own :func:`surface_area` (same `voxel_mm` and `sigma`) when the
    caller has it already; computed here when None.
    """
    bone = np.asarray(bone, dtype=bool)
    if not bone.any():
        return float("nan")
    dil = ndi.binary_dilation(bone, structure=ndi.generate_binary_structure(3, 1))
    dv = (int(dil.sum()) - int(bone.sum())) * voxel_mm**3
    if bs is None:
        bs = surface_area(bone, voxel_mm, sigma=sigma)
    ds = surface_area(dil, voxel_mm, sigma=sigma) - bs
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
        Local-thickness maps (voxels; NaN = unknown) of bone and marrow, computed on a
        context larger than this ROI (:func:`roi_metrics`) so that structures cut by the
        ROI faces keep their thickness; computed on the ROI itself, its faces taken as the
        volume's, when omitted.
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
        thickness_bone = thickness_known(bone)[0]
    if thickness_marrow is None:
        thickness_marrow = thickness_known(~bone & tis)[0]
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
    th = _known_mean(thickness_bone[bone]) * voxel_mm
    # Marrow voxels with a known thickness (a whole-volume map is 0 outside its tissue).
    sp = _known_mean(thickness_marrow[marrow & (thickness_marrow > 0)]) * voxel_mm
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
        "Tb.Pf": pattern_factor(bone, voxel_mm, sigma, bs=bs),
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


#: Side (voxels) of the blocks of ROIs whose thickness maps are computed together: larger
#: blocks share their halo among more ROIs, smaller ones bound the memory (120-220 B per voxel
#: of the block and its halo; benchmarks/bench_bone_memory.py).
BLOCK_SIDE = BONE_BLOCK_SIDE
#: First halo (voxels) around a block; grown until it provably covers the largest sphere.
HALO = 16
#: Widest halo (voxels): thicknesses from ``HALO_MAX - 3`` voxels up (wide air or marrow
#: spaces) are left unknown rather than growing the context without bound.
HALO_MAX = BONE_HALO_MAX

Box = tuple[slice, slice, slice]


def context_thickness(
    phase_of: Callable[[Box], np.ndarray],
    shape: tuple[int, int, int],
    box: Box,
    halo: int = HALO,
) -> np.ndarray:
    """Local thickness (voxels, NaN = unknown) of the `box` of a volume's phase.

    Computed on the box plus a halo of the volume (``phase_of(context)`` returns the phase
    of a context box), with the volume's faces unknown and the halo's edges taken as the
    other phase (:func:`tomosynth.metrics.geometry.thickness_known`). A thickness below
    ``halo - margin`` cannot change with a wider halo (a larger sphere would contain a
    sub-sphere of the halo's size inside the context), so the halo is doubled until every
    known thickness of the box is below that: the values equal the whole volume's. At
    :data:`HALO_MAX` the thicknesses it cannot prove are left unknown (NaN).
    """
    h = max(1, int(halo))
    while True:
        ctx = tuple(
            slice(max(0, b.start - h), min(n, b.stop + h)) for b, n in zip(box, shape, strict=True)
        )
        real = [(c.start == 0, c.stop == n) for c, n in zip(ctx, shape, strict=True)]
        t, _ = thickness_known(phase_of(ctx), real)
        inner = tuple(
            slice(b.start - c.start, b.stop - c.start) for b, c in zip(box, ctx, strict=True)
        )
        t = t[inner]
        if all(lo and hi for lo, hi in real):
            return t
        known = t[np.isfinite(t)]
        top = float(known.max()) if known.size else 0.0
        if top < h - THICKNESS_MARGIN:
            return t
        if h >= HALO_MAX:  # bounded memory: thicker is not measured (e.g. air around a bone)
            t[t >= h - THICKNESS_MARGIN] = np.nan
            return t
        h = min(HALO_MAX, max(2 * h, int(np.ceil(top)) + THICKNESS_MARGIN + 1))


def roi_blocks(rois: list[Roi], block: int = BLOCK_SIDE) -> list[tuple[Box, list[Roi]]]:
    """ROIs grouped by the `block`-voxel cube of their corner, with each group's bounding box."""
    groups: dict[tuple[int, int, int], list[Roi]] = {}
    for r in rois:
        groups.setdefault((r.z // block, r.y // block, r.x // block), []).append(r)
    out = []
    for key in sorted(groups):
        members = groups[key]
        box = tuple(
            slice(
                min(getattr(r, a) for r in members),
                max(getattr(r, a) for r in members) + members[0].size,
            )
            for a in ("z", "y", "x")
        )
        out.append((box, members))
    return out


def _block_rows(
    bone: np.ndarray,
    tis: np.ndarray | None,
    box: Box,
    members: list[Roi],
    voxel_mm: float,
    sigma: float,
) -> list[tuple[Roi, dict[str, float]]]:
    """Metrics of the ROIs of one block, from the block's thickness maps on its context."""

    def marrow_of(c: Box) -> np.ndarray:
        return ~bone[c] if tis is None else ~bone[c] & tis[c]

    t_bone = context_thickness(lambda c: bone[c], bone.shape, box)
    t_marrow = context_thickness(marrow_of, bone.shape, box)
    rows = []
    for roi in members:
        s = roi.slices
        local = tuple(
            slice(a.start - b.start, a.stop - b.start) for a, b in zip(s, box, strict=True)
        )
        m = bone_metrics(
            bone[s],
            voxel_mm,
            thickness_bone=t_bone[local],
            thickness_marrow=t_marrow[local],
            tissue="roi" if tis is None else tis[s],
            sigma=sigma,
        )
        rows.append((roi, m))
    return rows


def _shared_block_rows(job: tuple[Box, list[Roi], float, float]) -> list[tuple[Roi, dict]]:
    """:func:`_block_rows` on the masks in :data:`pool.SHARED` (a worker's job, or this
    process's when there is no pool)."""
    box, members, voxel_mm, sigma = job
    return _block_rows(SHARED["bone"], SHARED["tissue"], box, members, voxel_mm, sigma)  # type: ignore[arg-type]


def worker_pool(
    workers: int, bone: np.ndarray, tissue: np.ndarray | None = None
) -> contextlib.AbstractContextManager[ProcessPoolExecutor | None]:
    """A pool of `workers` forked processes that read `bone` and `tissue` copy-on-write
    (:func:`tomosynth.metrics.pool.forked_pool`): no worker copies the masks (one byte per
    voxel each); only block boxes and ROI lists travel to the workers."""
    return forked_pool(workers, bone=bone, tissue=tissue)


def _shared_mesh_tile(job: MeshJob) -> tuple[float, float]:
    """:func:`tomosynth.metrics.geometry.mesh_tile` on the shared bone mask."""
    return mesh_tile(SHARED["bone"], *job)  # type: ignore[arg-type]


def _shared_euler_slab(job: EulerJob) -> tuple[float, float]:
    """:func:`tomosynth.metrics.geometry.euler_slab` on the shared bone mask."""
    return euler_slab(SHARED["bone"], *job)  # type: ignore[arg-type]


def minkowski_pooled(
    bone: np.ndarray,
    workers: int = 1,
    sigma: float = 0.5,
    slab: int | None = None,
    tile: int | None = None,
) -> dict[str, float]:
    """:func:`tomosynth.metrics.geometry.minkowski_3d` of `bone` with its mesh tiles on
    `workers` forked processes (:func:`worker_pool`), and its Euler slabs: the same sums, in
    the same order."""
    bone = np.asarray(bone, dtype=bool)
    with worker_pool(workers, bone) as pool:  # SHARED holds the mask with or without workers
        return minkowski_3d(
            bone,
            sigma,
            slab,
            tile,
            map_tiles=lambda jobs: pool_map(pool, _shared_mesh_tile, jobs),
            map_euler=lambda jobs: pool_map(pool, _shared_euler_slab, jobs),
        )


def roi_metrics(
    bone: np.ndarray,
    voxel_mm: float,
    roi_size: int,
    *,
    roi_stride: int | None = None,
    tissue: str | np.ndarray = "roi",
    sigma: float = 0.5,
    progress: bool = True,
    block: int = BLOCK_SIDE,
    workers: int = 1,
) -> Iterator[tuple[Roi, dict[str, float]]]:
    """Metrics of every cubic ROI of a binary volume, in ROI order.

    The thickness maps of bone and marrow (the tissue minus the bone, see
    :data:`TISSUES`) are computed per block of ROIs on a halo of the volume
    (:func:`context_thickness`), so a structure cut by an ROI face keeps its width while
    memory stays bounded by the block, not the volume. With ``workers > 1`` the blocks are
    computed in that many forked processes (:func:`worker_pool`; one context each, the
    masks shared): the same values as one process, in the same order.
    """
    bone = np.asarray(bone, dtype=bool)
    workers = check_workers(workers)
    if tissue_name(tissue) == "roi":
        tis = None
    elif tissue_name(tissue) == "envelope":
        tis = envelope_slabwise(bone, workers=workers)  # one more byte per voxel
    else:
        tis = tissue_mask(bone, tissue)
    blocks = roi_blocks(split_rois(bone.shape, roi_size, roi_stride), block)
    bar = tqdm(total=len(blocks), desc="ROI blocks", disable=not progress, leave=False)
    rows: dict[int, tuple[Roi, dict[str, float]]] = {}
    jobs = [(b, m, voxel_mm, sigma) for b, m in blocks]
    with worker_pool(max(1, min(workers, len(blocks))), bone, tis) as pool:
        # in block order, one block per task, streamed (here or on the workers: SHARED
        # holds the masks either way)
        for block_rows in (map if pool is None else pool.map)(_shared_block_rows, jobs):
            rows.update((roi.index, (roi, m)) for roi, m in block_rows)
            bar.update()
    bar.close()
    for index in sorted(rows):
        yield rows[index]


#: Slices of the 3D closing's reach in :func:`envelope` (2 dilations + 2 erosions).
_ENVELOPE_HALO = 4


def _on_halo(
    fn: Callable[[np.ndarray], np.ndarray], bone: np.ndarray, z0: int, z1: int
) -> np.ndarray:
    """``fn`` (a closing-based envelope) of the slices [z0, z1) of `bone`, computed on a halo
    of the closing's reach so that it equals the whole volume's there."""
    c0, c1 = max(0, z0 - _ENVELOPE_HALO), min(len(bone), z1 + _ENVELOPE_HALO)
    return fn(bone[c0:c1])[z0 - c0 : z1 - c0]


def _envelope_slab(run: tuple[int, int]) -> None:
    """:func:`envelope` of the slices `run` of the shared bone mask, into the shared output
    (a worker's job, or this process's when there is no pool)."""
    z0, z1 = run
    SHARED["out"][z0:z1] = _on_halo(envelope, SHARED["bone"], z0, z1)  # type: ignore[index,arg-type]


def envelope_slabwise(bone: np.ndarray, slab: int = 32, workers: int = 1) -> np.ndarray:
    """:func:`envelope` of a volume computed `slab` slices at a time with a halo of the
    closing's reach: equal to the whole volume's, with a slab's temporaries; the slabs on
    `workers` forked processes, writing into one shared mask."""
    bone = np.asarray(bone, dtype=bool)
    runs = slab_runs(bone.shape[0], slab)
    workers = max(1, min(check_workers(workers), len(runs)))
    out = shared_bool(bone.shape, shared=workers > 1)
    with forked_pool(workers, bone=bone, out=out) as pool:
        pool_map(pool, _envelope_slab, runs)
    return out


def _inside_slab(job: tuple[int, int, list[Roi], float]) -> dict[int, bool]:
    """Whether each ROI's part in the slices [z0, z1) lies inside the endosteal envelope
    of the shared bone mask (a worker's job, or this process's when there is no pool)."""
    z0, z1, rois, cortex = job
    bone = SHARED["bone"]
    inside = _on_halo(lambda b: endosteal_envelope(b, cortex), bone, z0, z1)  # type: ignore[arg-type]
    out = {}
    for r in rois:
        lo, hi = max(r.z, z0), min(r.z + r.size, z1)
        part = inside[lo - z0 : hi - z0, r.y : r.y + r.size, r.x : r.x + r.size]
        out[r.index] = bool(part.all())
    return out


def trabecular_rois(
    bone: np.ndarray,
    roi_size: int,
    roi_stride: int | None = None,
    cortex_min_thickness: float = 12.0,
    slab: int = 32,
    workers: int = 1,
) -> list[Roi]:
    """The ROIs of :func:`split_rois` that lie wholly inside the endosteal envelope.

    The envelope is computed `slab` slices at a time with a halo of the closing's reach,
    so it equals the whole volume's while its temporaries stay a slab's size; the slabs
    on `workers` forked processes.
    """
    bone = np.asarray(bone, dtype=bool)
    _check_cortex(cortex_min_thickness)
    rois = split_rois(bone.shape, roi_size, roi_stride)
    jobs = [
        (z0, z1, [r for r in rois if r.z < z1 and r.z + r.size > z0], cortex_min_thickness)
        for z0, z1 in slab_runs(bone.shape[0], slab)
    ]
    jobs = [j for j in jobs if j[2]]
    inside_all = {r.index: True for r in rois}
    workers = max(1, min(check_workers(workers), len(jobs)))
    with forked_pool(workers, bone=bone) as pool:
        for part in pool_map(pool, _inside_slab, jobs):
            for index, inside in part.items():
                inside_all[index] &= inside
    return [r for r in rois if inside_all[r.index]]

"""Geometry of binary volumes and images, beneath the bone and the morphology metrics.

Pixel/voxel units throughout; the phase is the ``True`` side of a mask.

* local thickness: the diameter of the largest sphere (disc in 2D) that contains the
  voxel and fits inside the phase (Hildebrand & Ruegsegger 1997), painted from the
  ridge of the Euclidean distance map;
* mesh: the marching-cubes surface at level 0.5 of the mask smoothed by a Gaussian
  (``skimage.measure``), open where the mask touches the volume's faces;
* two-point correlation S2(r) = P(x and x + r both in the phase), by FFT; non-periodic
  estimates divide by the number of pixel pairs at each displacement (zero padding);
* Minkowski functionals in 2D (area, Crofton perimeter, Euler number) and 3D (volume,
  surface, integral mean curvature, Euler characteristic);
* consistency along the slice axis: SSIM of consecutive slices, S2 along and across it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable

import numpy as np
from scipy import ndimage as ndi
from tqdm import tqdm

from tomosynth.errors import DataError
from tomosynth.sizing import MINKOWSKI_SLAB_VOXELS, minkowski_slab, minkowski_tile


# --- local thickness --------------------------------------------------------------------------
def _neighbours(ndim: int) -> list[tuple[int, ...]]:
    return [o for o in itertools.product((-1, 0, 1), repeat=ndim) if any(o)]


def distance_ridge(dist: np.ndarray) -> np.ndarray:
    """Centres of maximal spheres: voxels whose sphere no neighbour's sphere contains.

    The sphere of voxel c (radius ``dist[c]``) lies inside that of a neighbour c' when
    ``dist[c'] >= dist[c] + |c - c'|`` (triangle inequality), so c adds nothing.
    """
    keep = dist > 0
    for off in _neighbours(dist.ndim):
        step = float(np.sqrt(sum(o * o for o in off)))
        # On views, no shifted copy: a neighbour beyond the border (distance 0) never
        # contains a sphere of radius > 0, so only the overlap is tested.
        src = tuple(slice(max(o, 0), n + min(o, 0)) for o, n in zip(off, dist.shape, strict=True))
        dst = tuple(slice(max(-o, 0), n + min(-o, 0)) for o, n in zip(off, dist.shape, strict=True))
        keep[dst] &= dist[src] < dist[dst] + step - 1e-6
    return keep


def _ball_offsets(d2: int, ndim: int = 3) -> np.ndarray:
    """Integer offsets o with ``|o|^2 < d2`` as an (m, ndim) array."""
    r = int(np.ceil(np.sqrt(d2)))
    g = np.arange(-r, r + 1)
    grids = np.meshgrid(*([g] * ndim), indexing="ij")
    inside = sum(c**2 for c in grids) < d2
    return np.stack([c[inside] for c in grids], axis=1)


def _ball_volume(d2: int, ndim: int = 3) -> int:
    """Number of integer offsets with ``|o|^2 < d2`` (estimate: volume of the ball + 1)."""
    return int(np.pi * d2 if ndim == 2 else 4.0 / 3.0 * np.pi * d2**1.5) + 1


def _paint_nearest(
    out: np.ndarray, centres: np.ndarray, d2: np.ndarray, rows: list[tuple[int, int]]
) -> None:
    """``out = max(out, 2 r(c))`` where the nearest centre c of `rows` covers the voxel."""
    idx = np.concatenate([np.arange(a, b) for a, b in rows])
    pts = tuple(centres[idx].T)
    lo = centres[idx].min(axis=0)
    hi = centres[idx].max(axis=0)
    reach = int(np.ceil(np.sqrt(d2[idx].max())))
    box = tuple(
        slice(max(0, int(a) - reach), min(n, int(b) + reach + 1))
        for a, b, n in zip(lo, hi, out.shape, strict=True)
    )
    mask = np.ones(out.shape, dtype=bool)
    mask[pts] = False
    rad = np.zeros(out.shape, dtype=np.float32)
    rad[pts] = np.sqrt(d2[idx])
    near_d, near_i = ndi.distance_transform_edt(mask[box], return_indices=True)
    near_r = rad[box][tuple(near_i)]
    np.maximum(out[box], np.where(near_d < near_r, 2.0 * near_r, 0.0), out=out[box])


def local_thickness(
    phase: np.ndarray,
    *,
    bin_width: float = 0.25,
    chunk: int = 1_000_000,
    progress: bool = False,
) -> np.ndarray:
    """Local thickness (voxels) of every voxel of a 2D or 3D boolean phase; 0 outside it.

    The thickness of voxel p is ``2 max d(c)`` over sphere centres c of the phase with
    ``|p - c| < d(c)``, where d is the Euclidean distance to the nearest voxel of the other
    phase (BoneJ's convention: a plate ``t`` voxels thick gets ``t`` or ``t + 1``; sphere
    centres sit on voxel centres, so a ball centred between voxels gets up to ~1.7 voxels
    less than its diameter, one centred on a voxel its diameter within 1). Voxels
    beyond the array border count as neither phase, so spheres are clipped, not shrunk,
    at the border.

    Spheres are painted per distinct radius, directly (exact) while that is cheaper than a
    distance transform; radii whose spheres are too many to paint (wide marrow spaces)
    are merged into bins of `bin_width` voxels of radius and painted through a distance
    transform of their centres, each voxel taking the sphere of its nearest centre.

    Parameters
    ----------
    phase : (n, h, w) or (h, w) bool
    bin_width : float
        Radius bin (voxels) for the distance-transform path.
    chunk : int
        Elements per painting batch (memory bound, ~16 bytes each).
    """
    phase = np.asarray(phase, dtype=bool)
    if phase.ndim not in (2, 3):
        raise DataError(f"local_thickness: expected a 2D or 3D mask, got shape {phase.shape}")
    out = np.zeros(phase.shape, dtype=np.float32)
    if not phase.any():
        return out
    if phase.all():
        out[:] = np.nan  # no boundary: the thickness is not defined inside the volume
        return out
    dist = ndi.distance_transform_edt(phase)
    ridge = distance_ridge(dist)
    _paint_balls(out, np.argwhere(ridge), dist[ridge], bin_width, chunk, progress)
    out[~phase] = 0.0
    return out


def _paint_balls(
    out: np.ndarray,
    centres: np.ndarray,
    radius: np.ndarray,
    bin_width: float = 0.25,
    chunk: int = 1_000_000,
    progress: bool = False,
) -> None:
    """``out = max(out, 2 r(c))`` over the balls ``|p - c| < r(c)`` (see :func:`local_thickness`)."""
    if len(centres) == 0:
        return
    d2 = np.rint(radius**2).astype(np.int64)  # squared distances are integers
    order = np.argsort(-d2, kind="stable")
    centres, d2 = centres[order], d2[order]
    values, starts = np.unique(-d2, return_index=True)
    groups = list(zip(-values, starts, [*starts[1:], len(d2)], strict=True))
    # A feature transform costs ~30 painted elements per voxel of the volume.
    edt_cost = 30 * out.size
    direct = [(v, a, b) for v, a, b in groups if (b - a) * _ball_volume(v, out.ndim) <= edt_cost]
    binned = [(v, a, b) for v, a, b in groups if (b - a) * _ball_volume(v, out.ndim) > edt_cost]

    if direct:
        # Paint into a padded copy so that sphere offsets never leave the array.
        pad = int(np.ceil(np.sqrt(max(v for v, _, _ in direct))))
        padded = np.zeros(tuple(n + 2 * pad for n in out.shape), dtype=np.float32)
        flat_out = padded.reshape(-1)
        strides = np.array(padded.strides) // padded.itemsize
        flat_centres = (centres + pad) @ strides
        # Smallest radius first: a larger sphere painted later overwrites, so each voxel
        # ends with the largest value without reading it back (a plain scatter).
        for v, a, b in tqdm(
            direct[::-1], desc="local thickness", disable=not progress, leave=False
        ):
            offs = _ball_offsets(int(v), out.ndim) @ strides
            value = np.float32(2.0 * np.sqrt(v))
            step = max(1, chunk // len(offs))
            for s in range(a, b, step):
                idx = flat_centres[s : min(b, s + step), None] + offs[None, :]
                flat_out[idx.reshape(-1)] = value
        inner = tuple(slice(pad, pad + n) for n in out.shape)
        np.maximum(out, padded[inner], out=out)

    # Radii with too many spheres to paint: bins of `bin_width`, painted through the
    # feature transform of their centres (each voxel takes its nearest centre's sphere).
    pending: list[tuple[int, int]] = []
    for v, a, b in binned:
        if pending and np.sqrt(d2[pending[0][0]]) - np.sqrt(v) >= bin_width:
            _paint_nearest(out, centres, d2, pending)
            pending = []
        pending.append((a, b))
    if pending:
        _paint_nearest(out, centres, d2, pending)


#: Margin (voxels) between a thickness and the halo that proves it exact: sphere centres
#: sit on voxel centres, so a continuous sub-sphere argument loses up to ~2 voxels.
THICKNESS_MARGIN = 3


def _face_distance(shape: tuple[int, ...], real: list[tuple[bool, bool]]) -> np.ndarray:
    """Distance (voxels, along the axes) from each voxel to the nearest real face's outside."""
    out = np.full(shape, np.inf, dtype=np.float32)
    for ax, (lo, hi) in enumerate(real):
        idx = np.arange(shape[ax], dtype=np.float32)
        view = [1] * len(shape)
        view[ax] = -1
        if lo:
            out = np.minimum(out, (idx + 1.0).reshape(view))
        if hi:
            out = np.minimum(out, (shape[ax] - idx).reshape(view))
    return out


def thickness_known(
    phase: np.ndarray,
    real_faces: list[tuple[bool, bool]] | None = None,
    *,
    progress: bool = False,
) -> tuple[np.ndarray, float]:
    """Local thickness (voxels) with the outside of the array **unknown**; NaN where it
    may depend on the unknown.

    Beyond a *real* face (the edge of the scanned volume) nothing is known. The map
    ``a`` is computed with the outside as the other phase (so a structure cut by a face is
    never doubled); a voxel is unknown (NaN) when the outside could make it thicker:

    * it lies in a largest sphere of ``a`` that touches a real face (the sphere is
      bounded by the face, not by the structure: a sliver of a plate cut by a face, or a
      half gap), or
    * a sphere centred inside the array grows beyond ``a`` when the outside is the phase
      (upper bound ``b > a``: a plate that reaches a face, however thick inside).

    So a plate or a gap cut by a face, or reaching it, is left out, neither doubled nor
    halved; the rule is conservative (a band about one structure wide along each real face
    is left out too). Only spheres that reach the outside are painted for these tests, so
    the cost is that of ``a`` plus a band along the faces. Beyond an *artificial* face (the
    edge of a context cut from a larger volume) the other phase is assumed in both maps;
    :func:`tomosynth.metrics.bone.context_thickness` keeps a halo wide enough that this
    does not change the ROI (see :data:`THICKNESS_MARGIN`).

    Parameters
    ----------
    phase : (n, h, w) or (h, w) bool
    real_faces : per axis (low face real, high face real); default all real.

    Returns
    -------
    thickness : float32 array like `phase`, 0 outside the phase, NaN where unknown
    a_max : float, the largest thickness, known or not (voxels; 0 for an empty phase)
    """
    phase = np.asarray(phase, dtype=bool)
    real = list(real_faces) if real_faces is not None else [(True, True)] * phase.ndim
    if len(real) != phase.ndim:
        raise DataError(f"thickness_known: {len(real)} face pairs for a {phase.ndim}D mask")
    out = np.zeros(phase.shape, dtype=np.float32)
    if not phase.any():
        return out, 0.0
    inner = tuple(slice(1, -1) for _ in range(phase.ndim))
    dist = ndi.distance_transform_edt(np.pad(phase, 1))[inner]
    ridge = distance_ridge(dist)
    centres, radius = np.argwhere(ridge), dist[ridge]
    _paint_balls(out, centres, radius, progress=progress)
    out[~phase] = 0.0
    a_max = float(out.max())
    if not any(lo or hi for lo, hi in real):
        return out, a_max
    if phase.all():
        out[:] = np.nan  # bounded only by the faces
        return out, a_max
    # Spheres of `a` bounded by a real face (their distance to its outside == radius).
    touch = radius >= _face_distance(phase.shape, real)[ridge] - 1e-6
    covered = np.zeros_like(out)
    _paint_balls(covered, centres[touch], radius[touch], progress=progress)
    del ridge, centres, radius
    # Outside the real faces as the phase, outside the artificial ones as the other phase.
    upper = phase
    for ax, (lo, hi) in enumerate(real):
        widths = [(0, 0)] * phase.ndim
        for side, is_real in ((0, lo), (1, hi)):
            w = list(widths)
            w[ax] = (1, 0) if side == 0 else (0, 1)
            upper = np.pad(upper, w, constant_values=is_real)
    dist_u = ndi.distance_transform_edt(upper)[inner]
    del upper
    grown = distance_ridge(dist_u) & (dist_u > dist + 1e-6)
    b = np.zeros_like(out)
    _paint_balls(b, np.argwhere(grown), dist_u[grown], progress=progress)
    out[phase & ((covered > 0) | (b > out + 1e-4))] = np.nan
    return out, a_max


# --- surfaces -----------------------------------------------------------------------------------
def mesh(
    mask: np.ndarray, sigma: float = 0.5, closed: bool = False, voxel_mm: float = 1.0
) -> tuple[np.ndarray, np.ndarray] | None:
    """Marching-cubes mesh (vertices in mm, triangles) of a binary mask's boundary.

    The mask is smoothed by a Gaussian of `sigma` voxels before the level-0.5 surface is
    taken: on raw binary data the staircase inflates a sphere's area by ~8 %, at
    ``sigma=0.5`` the area of a ball (radius 8-16) or cube is within ~3.5 % and one-voxel
    plates survive. ``closed=False`` leaves the surface open where the object touches the
    array faces (the bone surface of an ROI); ``closed=True`` pads with background first.
    Returns None when there is no surface.
    """
    from skimage.measure import marching_cubes

    m = np.asarray(mask, dtype=np.float32)
    if min(m.shape) < 2 or m.min() == m.max():
        return None
    # Open surfaces: replicate one layer beyond each face and keep the triangles whose
    # centroid lies inside the ROI, so that a plane crossing the ROI has the ROI's area.
    m = np.pad(m, 2) if closed else np.pad(m, 1, mode="edge")
    if sigma > 0:
        m = ndi.gaussian_filter(m, sigma, mode="constant" if closed else "nearest")
    if not m.min() < 0.5 < m.max():
        return None
    verts, faces, _, _ = marching_cubes(m, level=0.5, allow_degenerate=False)
    if not closed:
        centroid = verts[faces].mean(axis=1)
        upper = np.array(m.shape) - 1.5
        faces = faces[np.all((centroid >= 0.5) & (centroid < upper), axis=1)]
    return verts * voxel_mm, faces


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
    n = m.shape[0]
    r_max = min(int(r_max), n - 1)
    out = np.empty(r_max + 1)
    rest = int(np.prod(m.shape[1:]))
    step = max(1, 4_000_000 // max(1, n * int(np.prod(m.shape[2:]))))  # bounded temporaries
    for k in range(r_max + 1):
        hits = 0
        for j in range(0, m.shape[1], step):
            hits += int(np.count_nonzero(m[: n - k, j : j + step] & m[k:, j : j + step]))
        out[k] = hits / ((n - k) * rest)
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
    """Per interior mesh edge: midpoint (z, y, x) and 1/2 length x signed angle.

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
    # Runs of equal keys (already sorted): edges shared by exactly two triangles.
    same = key[1:] == key[:-1]
    before = np.concatenate(([False], same[:-1]))
    after = np.concatenate((same[1:], [False]))
    pair = np.flatnonzero(same & ~before & ~after)
    f1, f2 = face[pair], face[pair + 1]
    n1, n2 = normals[f1], normals[f2]
    cosang = np.clip(np.einsum("ij,ij->i", n1, n2), -1.0, 1.0)
    angle = np.arccos(cosang)
    # skimage's triangles wind so that these normals point into the object: an edge is
    # convex when the far vertex of triangle 2 lies on the inner side of triangle 1's plane.
    far = verts[c[pair + 1]] - verts[lo[pair]]
    sign = np.where(np.einsum("ij,ij->i", n1, far) > 0.0, 1.0, -1.0)
    length = np.linalg.norm(verts[hi[pair]] - verts[lo[pair]], axis=1)
    mid = 0.5 * (verts[hi[pair]] + verts[lo[pair]])
    return mid, 0.5 * sign * angle * length


def integral_mean_curvature(verts: np.ndarray, faces: np.ndarray) -> float:
    """1/2 sum over interior mesh edges of edge length x signed dihedral angle.

    Positive where the surface is convex (normals diverge), negative where concave;
    edges not shared by exactly two triangles are skipped.
    """
    return float(np.sum(_edge_curvature(verts, faces)[1]))


def mesh_tile(
    mask: np.ndarray, sigma: float, cz: tuple[int, int], cy: tuple[int, int]
) -> tuple[float, float]:
    """Surface (vx^2) and integral mean curvature (vx) of the closed mesh's cubes
    ``cz[0]..cz[1]-1`` along z and ``cy[0]..cy[1]-1`` along y (all x).

    Cube k of the whole-volume mesh (:func:`mesh` with ``closed=True``: 2 voxels of
    background padding, Gaussian, marching cubes) lies between rows k and k + 1 of the
    padded, smoothed array along each axis. Only the rows the Gaussian needs (its radius
    plus one cube on each side) are padded and smoothed, so the values equal the
    whole-volume ones; triangles count where their centroid's cube is in the tile, edges
    where their midpoint is (both triangles of such an edge are in the computed cubes).
    """
    from scipy.ndimage import gaussian_filter
    from skimage.measure import marching_cubes, mesh_surface_area

    radius = int(4.0 * sigma + 0.5) if sigma > 0 else 0  # scipy's default truncate = 4
    pad = 2
    lo = [c[0] - 1 - radius for c in (cz, cy)]  # padded-array rows needed, [lo, hi)
    hi = [c[1] + 2 + radius for c in (cz, cy)]
    block = np.zeros((hi[0] - lo[0], hi[1] - lo[1], mask.shape[2] + 2 * pad), np.float32)
    src, dst = [], []
    for ax in range(2):
        a, b = max(lo[ax] - pad, 0), min(hi[ax] - pad, mask.shape[ax])  # mask rows in it
        src.append(slice(a, max(a, b)))
        dst.append(slice(a + pad - lo[ax], a + pad - lo[ax] + max(0, b - a)))
    block[dst[0], dst[1], pad:-pad] = mask[src[0], src[1]]
    if sigma > 0:
        block = gaussian_filter(block, sigma, mode="constant")
    sub = block[radius : radius + (cz[1] - cz[0]) + 3, radius : radius + (cy[1] - cy[0]) + 3]
    if not sub.min() < 0.5 < sub.max():
        return 0.0, 0.0
    verts, faces, _, _ = marching_cubes(sub, level=0.5, allow_degenerate=False)
    if len(faces) == 0:
        return 0.0, 0.0
    verts[:, 0] += cz[0] - 1  # padded-array coordinates of the sub-block's first row
    verts[:, 1] += cy[0] - 1

    def owned(p: np.ndarray) -> np.ndarray:
        return (p[:, 0] >= cz[0]) & (p[:, 0] < cz[1]) & (p[:, 1] >= cy[0]) & (p[:, 1] < cy[1])

    own = owned(verts[faces].mean(axis=1))
    area = float(mesh_surface_area(verts, faces[own])) if own.any() else 0.0
    mid, contrib = _edge_curvature(verts, faces)
    return area, float(np.sum(contrib[owned(mid)]))


#: ``(sigma, cz, cy)`` of one :func:`mesh_tile` of :func:`minkowski_3d`.
MeshJob = tuple[float, tuple[int, int], tuple[int, int]]


#: One Euler slab of :func:`minkowski_3d`: slices [z0, z1) (the slice z1 shared with the next).
EulerJob = tuple[int, int]


def euler_slab(mask: np.ndarray, z0: int, z1: int) -> tuple[float, float]:
    """(voxels, Euler characteristic contribution) of the slices [z0, z1) of `mask`: the
    characteristic of [z0, z1] minus that of the slice z1 it shares with the next slab
    (inclusion-exclusion, 26-connected voxels)."""
    from skimage.measure import euler_number

    nz = mask.shape[0]
    euler = float(euler_number(np.pad(mask[z0 : min(z1 + 1, nz)], 1), connectivity=3))
    if z1 < nz:
        euler -= float(euler_number(np.pad(mask[z1 : z1 + 1], 1), connectivity=3))
    return float(mask[z0:z1].sum()), euler


def minkowski_3d(
    mask: np.ndarray,
    sigma: float = 0.5,
    slab: int | None = None,
    tile: int | None = None,
    map_tiles: Callable[[list[MeshJob]], Iterable[tuple[float, float]]] | None = None,
    map_euler: Callable[[list[EulerJob]], Iterable[tuple[float, float]]] | None = None,
) -> dict[str, float]:
    """Volume (vx^3), surface (vx^2), integral mean curvature (vx) and Euler characteristic.

    The object is padded with background, so surfaces are closed at the volume faces;
    surface and curvature come from the mesh of :func:`mesh`
    (Gaussian `sigma` voxels before marching cubes).

    All four functionals are additive, so they are computed in tiles of `slab` slices by
    `tile` rows (all columns) and summed: working memory is about
    :data:`tomosynth.sizing.MINKOWSKI_BYTES_PER_VOXEL` bytes per voxel of one tile and its
    halo (:func:`tomosynth.sizing.minkowski_slab_bytes`), not of the volume or of a whole
    cross-section. Mesh cubes and edges belong to exactly one tile (a halo of the
    Gaussian's radius plus one cube is recomputed on each side); the Euler characteristic
    of 26-connected voxels (union of closed unit cubes) follows inclusion-exclusion over
    slabs, chi(A u B) = chi(A) + chi(B) - chi(A n B), with the shared slice as A n B. The
    sum equals the whole-volume value up to rounding. ``slab=None`` and ``tile=None`` pick
    :func:`tomosynth.sizing.minkowski_slab` and :func:`tomosynth.sizing.minkowski_tile`;
    ``slab=0`` computes the whole volume at once. `map_tiles` maps :data:`MeshJob` s to
    the :func:`mesh_tile` results of this mask, in order (e.g. on a process pool that
    holds the mask: :func:`tomosynth.metrics.bone.minkowski_pooled`), and `map_euler` the
    :data:`EulerJob` s to the :func:`euler_slab` results; this process when None.
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
    nz, ny = m.shape[:2]
    if slab is None:
        slab = minkowski_slab(m.shape)
    slab = max(1, int(slab))
    tile = max(1, int(tile)) if tile is not None else minkowski_tile(m.shape, slab)
    volume, surface, curvature, euler = 0.0, 0.0, 0.0, 0.0
    # Euler: slices [z0, z1] of each slab (one shared slice with the next), minus the shared;
    # slabs of about MINKOWSKI_SLAB_VOXELS / 8 voxels (skimage's int64 temporaries).
    e_slab = min(slab, max(1, MINKOWSKI_SLAB_VOXELS // (8 * m[0].size)))
    e_jobs: list[EulerJob] = [(z0, min(z0 + e_slab, nz)) for z0 in range(0, nz, e_slab)]
    e_done = (euler_slab(m, *j) for j in e_jobs) if map_euler is None else map_euler(e_jobs)
    for v, e in e_done:  # in slab order: the same sums wherever the slabs ran
        volume += v
        euler += e
    # Mesh cubes of the padded volume (2 voxels of padding) run from 0 to n + 2 per axis.
    jobs: list[MeshJob] = [
        (sigma, (c0, min(c0 + slab, nz + 3)), (e0, min(e0 + tile, ny + 3)))
        for c0 in range(0, nz + 3, slab)
        for e0 in range(0, ny + 3, tile)
    ]
    done = (mesh_tile(m, *j) for j in jobs) if map_tiles is None else map_tiles(jobs)
    for a, c in done:  # in tile order: the same sum wherever the tiles ran
        surface += a
        curvature += c
    return {"volume": volume, "surface": surface, "mean_curvature": curvature, "euler": euler}


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

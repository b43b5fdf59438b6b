"""Synthetic micro-CT scans: shale-like and bone-like phantoms, Beer-Lambert projections.

Phantoms are ``(slices, columns, columns)`` float32 arrays of attenuation **per voxel**
(``mu * voxel_size``, dimensionless), centred on the rotation axis of
`tomosynth.recon.forward_project` (pixel ``(columns - 1) / 2``). Attenuation values scale
as ``1 / columns`` so that the transmission through the sample, and hence the noise level
of a scan, does not depend on its size: about 5-15 % through the shale sample and 8-40 %
through the bone, for any ``columns``.

Every feature is a thresholded, smoothed 3D random field, so structures continue smoothly
from slice to slice as they do in a real volume. The same seed and size give the same
object.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import numpy as np
from scipy import ndimage, special
from tqdm.auto import tqdm

from tomosynth import __version__
from tomosynth.errors import ConfigError
from tomosynth.io import write_dxchange
from tomosynth.recon import forward_project

__all__ = [
    "KINDS",
    "bone_phantom",
    "shale_phantom",
    "simulate_projections",
    "simulate_scan",
    "transmission",
]

UINT16_MAX = 65535


# --------------------------------------------------------------------------------------
# phantoms
# --------------------------------------------------------------------------------------


def _check_size(columns: int, slices: int) -> None:
    if int(columns) != columns or columns < 16:
        raise ConfigError(f"columns must be an integer >= 16, got {columns!r}")
    if int(slices) != slices or slices < 1:
        raise ConfigError(f"slices must be an integer >= 1, got {slices!r}")


def _field(
    rng: np.random.Generator, shape: tuple[int, ...], sigma: tuple[float, ...]
) -> np.ndarray:
    """Gaussian random field: white noise smoothed by `sigma` voxels, mean 0, std 1.

    The slice-axis sigma is at least one voxel so that every feature continues into the
    neighbouring slices.
    """
    sigma = (max(sigma[0], 1.0), *sigma[1:])
    noise = rng.standard_normal(shape, dtype=np.float32)
    out = ndimage.gaussian_filter(noise, sigma=sigma, mode="wrap", truncate=3.0)
    out -= out.mean(dtype=np.float64)
    out /= max(float(out.std(dtype=np.float64)), 1e-12)
    return out


def _top(fraction: float | np.ndarray) -> float | np.ndarray:
    """Threshold above which a standard normal field lies with probability `fraction`."""
    if np.ndim(fraction):
        return (-special.ndtri(fraction)).astype(np.float32)
    return float(-special.ndtri(fraction))


def _radius(columns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distance from the rotation axis and the two in-plane offsets, in voxels."""
    c = (columns - 1) / 2.0  # recon.forward_project puts the axis at pixel centre n/2 - 1/2
    off = np.arange(columns, dtype=np.float32) - np.float32(c)
    y, x = off[:, None], off[None, :]
    return np.hypot(y, x), y, x


def _axial_profiles(seed: int, slices: int, count: int) -> np.ndarray:
    """`count` smooth random profiles along the slice axis, ``(count, slices)``, mean 0, std 1.

    Their correlation length is an eighth of the stack (at least one slice), so a stack shows
    several layers. They come from their own random stream, so the other fields of a phantom
    do not depend on whether they are drawn.
    """
    rng = np.random.default_rng([int(seed), 101])
    noise = rng.standard_normal((count, int(slices)))
    out = ndimage.gaussian_filter1d(noise, sigma=max(slices / 8.0, 1.0), axis=1, mode="wrap")
    out -= out.mean(axis=1, keepdims=True)
    out /= np.maximum(out.std(axis=1, keepdims=True), 1e-12)
    return out.astype(np.float32)


def shale_phantom(
    columns: int = 256, slices: int = 64, seed: int = 0, axial_variety: float = 0.0
) -> np.ndarray:
    """A shale-like core in a container: matrix, aligned pores, bright mineral grains.

    Layout (radii as fractions of `columns`): a cylindrical sample of radius ~0.38 with a
    slightly irregular edge; fine-grained laminated matrix (low-contrast texture, bedding
    along the second in-plane axis); flattened, aligned pores that are more frequent near
    the sample's edge (air pockets); small bright mineral grains at two size scales with
    varying density; air gap; thin brighter container ring (0.425-0.455); air outside.

    Parameters
    ----------
    columns : int
        Width and height of each slice in voxels (>= 16).
    slices : int
        Number of slices (detector rows).
    seed : int
        Seed of every random field.
    axial_variety : float
        0 (default) keeps the sample statistically alike along the axis. Up to 1, it makes
        slices differ along the axis, as layers of a real core do: the pore and grain
        fractions (x e^(+-0.8 v) at one standard deviation), the sample radius (+-4 % v) and
        the matrix density (+-8 % v) follow smooth random profiles along the axis, and the
        features' correlation length along the axis shrinks by ``1 + 2 v``.

    Returns
    -------
    (slices, columns, columns) float32
        Attenuation per voxel, >= 0; about ``3 / columns`` in the matrix, 0 in air.
    """
    _check_size(columns, slices)
    v = float(axial_variety)
    if not (0.0 <= v <= 1.0):
        raise ConfigError(f"axial_variety must be in [0, 1], got {axial_variety!r}")
    n = int(columns)
    shape = (int(slices), n, n)
    rng = np.random.default_rng(seed)
    s = max(n / 256.0, 0.5)  # feature scale: a 256-wide slice shows features of ~1-5 voxels
    unit = 3.0 / n  # matrix attenuation per voxel: ~10 % transmission across the sample

    # along-axis variety: per-slice factors (all 1 / 0 when v == 0, nothing drawn)
    if v > 0:
        prof = _axial_profiles(seed, shape[0], 4)[:, :, None, None]
        pore_f, grain_f = np.exp(0.8 * v * prof[0]), np.exp(0.8 * v * prof[1])
        radius_f, matrix_f = 1.0 + 0.04 * v * prof[2], 1.0 + 0.08 * v * prof[3]
    else:
        pore_f = grain_f = radius_f = matrix_f = 1.0
    az = 1.0 + 2.0 * v  # shorter correlation along the axis

    r, _, _ = _radius(n)
    low = _field(rng, shape, (6 * s / az, 10 * s, 10 * s))  # slow density and edge variation
    r_sample = 0.38 * n * (1.0 + 0.012 * low) * radius_f
    inside = r[None] < r_sample
    edge = np.clip((r[None] - 0.75 * r_sample) / (0.25 * r_sample), 0.0, 1.0)

    # laminated matrix texture: correlated along the bedding (first and last axes)
    texture = _field(rng, shape, (1.5 * s / az, 0.7 * s, 2.5 * s))
    vol = unit * (matrix_f + 0.04 * low + 0.05 * texture)

    # pores: flattened lenses along the bedding, plus air pockets near the edge
    pores = _field(rng, shape, (2.5 * s / az, 0.9 * s, 4.0 * s)) + 0.8 * edge
    pore_top = _top(np.clip(0.035 * pore_f, 0.002, 0.3))
    vol = np.where(pores > pore_top, np.float32(0.05 * unit), vol)
    del pores, texture

    # mineral grains: many small specks and fewer larger grains, density 1.8-3.5x matrix
    density = unit * (2.6 + 0.9 * _field(rng, shape, (4 * s / az, 4 * s, 4 * s)).clip(-1, 1))
    for sigma, fraction in ((0.6 * s, 0.012), (1.6 * s, 0.004)):
        grain_top = _top(np.clip(fraction * grain_f, 1e-4, 0.1))
        grains = _field(rng, shape, (sigma / az, sigma, sigma)) > grain_top
        vol = np.where(grains, density, vol)
    del density, grains

    vol = np.where(inside, vol, np.float32(0.0))
    r_in = 0.425 * n
    r_out = max(0.455 * n, r_in + 1.5)
    ring = (r >= r_in) & (r < r_out)
    vol[:, ring] = np.float32(1.3 * unit)
    return np.ascontiguousarray(vol.clip(0.0, None), dtype=np.float32)


def bone_phantom(
    columns: int = 256,
    slices: int = 64,
    seed: int = 0,
    bone_fraction: float = 0.2,
    trabecular_scale: float = 1.0,
) -> np.ndarray:
    """A bone-like sample: trabecular network in marrow, inside a cortical shell.

    Layout (radii as fractions of `columns`): slightly elliptical cortical shell between
    ~0.29 and ~0.40 whose thickness varies around and along the bone; inside it marrow
    (soft tissue, ~1/4 of bone attenuation) crossed by trabeculae: plates and rods formed by
    the band around the zero level of a smoothed 3D random field (bone volume fraction about
    20 %); air outside.

    Parameters
    ----------
    columns, slices, seed :
        As for `shale_phantom`.
    bone_fraction : float
        Trabecular bone volume fraction BV/TV of the medulla, in (0, 0.6]: the band
        ``|field| < w`` with ``P(|Z| < w) = bone_fraction`` (0.2 by default).
    trabecular_scale : float
        Correlation length of the trabecular field relative to the default, in [0.5, 3]:
        larger gives thicker, more widely spaced trabeculae (Tb.Th and Tb.Sp grow with it,
        Tb.N falls). Specimens of different seeds and structure parameters make a
        leave-one-specimen-out test of super-resolution (bone SRGAN report 4.6).

    Returns
    -------
    (slices, columns, columns) float32
        Attenuation per voxel, >= 0; about ``4.8 / columns`` in cortical bone,
        ``4.2 / columns`` in trabeculae and ``1.3 / columns`` in marrow.
    """
    _check_size(columns, slices)
    if not 0 < bone_fraction <= 0.6:
        raise ConfigError(f"bone_fraction must be in (0, 0.6], got {bone_fraction!r}")
    if not 0.5 <= trabecular_scale <= 3.0:
        raise ConfigError(f"trabecular_scale must be in [0.5, 3], got {trabecular_scale!r}")
    n = int(columns)
    shape = (int(slices), n, n)
    rng = np.random.default_rng(seed)
    s = max(n / 256.0, 0.5)
    unit = 1.6 / n  # cortical bone is 3 units: long chords through the shell transmit ~10 %

    _, y, x = _radius(n)
    r_ell = np.hypot(y / 0.92, x)  # mildly elliptical cross-section
    low = _field(rng, shape, (8 * s, 12 * s, 12 * s))
    r_outer = 0.40 * n * (1.0 + 0.012 * low)
    r_inner = 0.29 * n * (1.0 + 0.04 * _field(rng, shape, (10 * s, 14 * s, 14 * s)))
    cortex = (r_ell[None] < r_outer) & (r_ell[None] >= r_inner)
    medulla = r_ell[None] < r_inner

    # trabeculae: |field| < w keeps the sheet around the zero level set (plates), which
    # breaks up into rods where the sheet is thin; P(|Z| < w) = bone_fraction for a unit
    # normal: w = ndtri((1 + f) / 2) (0.253 for f = 0.2)
    sigma = max(2.5 * s, 2.0) * float(trabecular_scale)  # thinner sheets fall apart
    half_width = float(special.ndtri((1.0 + float(bone_fraction)) / 2.0))
    trab = np.abs(_field(rng, shape, (sigma, sigma, sigma))) < half_width
    texture = _field(rng, shape, (1.0, 1.0, 1.0))

    vol = np.zeros(shape, dtype=np.float32)
    vol[medulla] = 0.8 * unit  # marrow
    vol[medulla & trab] = 2.6 * unit
    vol[cortex] = 3.0 * unit
    vol *= 1.0 + 0.02 * texture  # mineralisation varies a little
    return np.ascontiguousarray(vol, dtype=np.float32)


KINDS = {"shale": shale_phantom, "bone": bone_phantom}


# --------------------------------------------------------------------------------------
# projections
# --------------------------------------------------------------------------------------


def _check_volume(volume: np.ndarray, binning: int, blur_sigma: float) -> None:
    if volume.ndim != 3 or volume.shape[1] != volume.shape[2]:
        raise ConfigError(f"volume must be (slices, n, n), got shape {volume.shape}")
    if int(binning) != binning or binning < 1:
        raise ConfigError(f"binning must be an integer >= 1, got {binning!r}")
    if volume.shape[0] % binning or volume.shape[1] % binning:
        raise ConfigError(
            f"binning {binning} must divide slices {volume.shape[0]} and columns {volume.shape[1]}"
        )
    if not (blur_sigma >= 0 and math.isfinite(blur_sigma)):
        raise ConfigError(f"blur_sigma must be >= 0 detector pixels, got {blur_sigma!r}")


def _slab_rows(n_out_rows: int, n_angles: int, n_cols_full: int, binning: int) -> int:
    """Output rows per slab so that a slab's float32 line integrals take ~64 MiB."""
    budget = 64 * 2**20
    per_row = 4 * max(1, n_angles) * n_cols_full * binning
    return int(max(1, min(n_out_rows, budget // per_row)))


def _transmission_slabs(
    volume: np.ndarray,
    theta: np.ndarray,
    binning: int,
    blur_sigma: float,
    slab_rows: int | None,
    desc: str,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(o0, o1, T)``: noise-free transmission of output rows ``[o0, o1)``."""
    b = int(binning)
    n_rows = volume.shape[0] // b
    n_cols = volume.shape[1] // b
    step = slab_rows or _slab_rows(n_rows, theta.size, volume.shape[1], b)
    # a blurred slab needs neighbouring rows (halo) to equal the blur of the whole image
    halo = int(math.ceil(4.0 * blur_sigma)) if blur_sigma > 0 else 0
    for o0 in tqdm(range(0, n_rows, step), desc=desc, unit="slab", leave=False):
        o1 = min(o0 + step, n_rows)
        h0, h1 = max(0, o0 - halo), min(n_rows, o1 + halo)
        line = forward_project(volume[h0 * b : h1 * b], theta)  # (angles, rows, cols)
        trans = np.exp(-line, dtype=np.float32)
        del line
        if b > 1:  # a b x b detector pixel integrates the intensity over its area
            a = trans.shape[0]
            trans = trans.reshape(a, h1 - h0, b, n_cols, b).mean(axis=(2, 4), dtype=np.float32)
        if halo:
            trans = ndimage.gaussian_filter(
                trans, sigma=(0.0, blur_sigma, blur_sigma), mode="nearest", truncate=4.0
            )
        yield o0, o1, np.ascontiguousarray(trans[:, o0 - h0 : o1 - h0])


def transmission(
    volume: np.ndarray,
    theta: np.ndarray,
    *,
    binning: int = 1,
    blur_sigma: float = 0.0,
    slab_rows: int | None = None,
) -> np.ndarray:
    """Noise-free transmission ``I / I0`` seen by the detector (0..1).

    Beer-Lambert ``exp(-line integral)`` at the phantom's resolution, averaged over
    ``binning x binning`` detector pixels, then blurred by a Gaussian of `blur_sigma`
    output pixels (detector point-spread).

    Parameters
    ----------
    volume : (slices, n, n) array
        Attenuation per voxel.
    theta : (angles,) array
        Angles in radians.
    binning : int
        Detector binning; must divide ``slices`` and ``n``.
    blur_sigma : float
        Detector blur in output pixels (0 = none).
    slab_rows : int, optional
        Output rows projected at once (default: a ~64 MiB budget).

    Returns
    -------
    (angles, slices / binning, n / binning) float32
    """
    volume = np.asarray(volume, dtype=np.float32)
    theta = np.asarray(theta, dtype=np.float64).ravel()
    _check_volume(volume, binning, blur_sigma)
    b = int(binning)
    out = np.empty((theta.size, volume.shape[0] // b, volume.shape[1] // b), np.float32)
    for o0, o1, trans in _transmission_slabs(
        volume, theta, b, blur_sigma, slab_rows, "transmission"
    ):
        out[:, o0:o1] = trans
    return out


def _poisson_uint16(rng: np.random.Generator, lam: np.ndarray) -> np.ndarray:
    return np.minimum(rng.poisson(lam), UINT16_MAX).astype(np.uint16)


def simulate_projections(
    volume: np.ndarray,
    theta: np.ndarray,
    *,
    photons: float,
    dark_counts: float,
    n_flats: int,
    n_darks: int,
    seed: int,
    binning: int = 1,
    blur_sigma: float = 0.0,
    slab_rows: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noisy parallel-beam counts of `volume` with flat and dark frames.

    Expected counts per detector pixel are ``photons * T + dark_counts`` for a projection
    with transmission ``T`` (see `transmission`), ``photons + dark_counts`` for a flat and
    ``dark_counts`` for a dark frame; every frame is a Poisson draw around them. With
    ``binning = b`` a detector pixel covers ``b x b`` phantom pixels and `photons` is still
    the open-beam count of one *output* pixel (the sum of ``b**2`` pixels receiving
    ``photons / b**2`` each): the same object seen at a ``b`` times coarser voxel size.

    Parameters
    ----------
    volume : (slices, n, n) array
        Attenuation per voxel (a phantom).
    theta : (angles,) array
        Angles in radians.
    photons : float
        Mean open-beam counts per detector pixel above the dark level (> 0).
    dark_counts : float
        Mean dark-current counts per pixel (>= 0).
    n_flats, n_darks : int
        Number of flat and dark frames (>= 1).
    seed : int
        Noise seed; the noise of output row ``r`` depends only on ``(seed, r)``.
    binning : int
        Detector binning (>= 1), dividing ``slices`` and ``n``.
    blur_sigma : float
        Gaussian detector blur in output pixels.
    slab_rows : int, optional
        Output rows projected at once (memory bound; does not change the result).

    Returns
    -------
    data, flat, dark : uint16 arrays
        ``(angles, slices/b, n/b)``, ``(n_flats, slices/b, n/b)``, ``(n_darks, slices/b, n/b)``.
    """
    volume = np.asarray(volume, dtype=np.float32)
    theta = np.asarray(theta, dtype=np.float64).ravel()
    _check_volume(volume, binning, blur_sigma)
    if not np.all(np.isfinite(volume)) or volume.min() < 0:
        raise ConfigError("volume must hold finite attenuation values >= 0")
    if theta.size < 1 or not np.all(np.isfinite(theta)):
        raise ConfigError(f"theta must hold >= 1 finite angles, got {theta.size}")
    if not (math.isfinite(photons) and photons > 0):
        raise ConfigError(f"photons must be > 0, got {photons!r}")
    if not (math.isfinite(dark_counts) and dark_counts >= 0):
        raise ConfigError(f"dark_counts must be >= 0, got {dark_counts!r}")
    peak = photons + dark_counts
    if peak + 6.0 * math.sqrt(peak) > UINT16_MAX:
        raise ConfigError(
            f"photons + dark_counts = {peak:g} would overflow uint16 counts (max {UINT16_MAX})"
        )
    for key, value in (("n_flats", n_flats), ("n_darks", n_darks)):
        if int(value) != value or value < 1:
            raise ConfigError(f"{key} must be an integer >= 1, got {value!r}")

    b = int(binning)
    n_rows, n_cols = volume.shape[0] // b, volume.shape[1] // b
    data = np.empty((theta.size, n_rows, n_cols), dtype=np.uint16)
    for o0, o1, trans in _transmission_slabs(volume, theta, b, blur_sigma, slab_rows, "project"):
        lam = trans * np.float32(photons) + np.float32(dark_counts)
        for r in range(o0, o1):
            rng = np.random.default_rng([int(seed), 0, r])
            data[:, r] = _poisson_uint16(rng, lam[:, r - o0])
    rng = np.random.default_rng([int(seed), 1])
    flat = _poisson_uint16(rng, np.full((int(n_flats), n_rows, n_cols), peak))
    dark = _poisson_uint16(rng, np.full((int(n_darks), n_rows, n_cols), float(dark_counts)))
    return data, flat, dark


def _check_scan(
    kind: str,
    columns: int,
    slices: int,
    angles: int,
    seed: int,
    voxel_um: float,
    binning: int,
) -> None:
    """ConfigError naming the first invalid scan setting of :func:`simulate_scan`."""
    if kind not in KINDS:
        raise ConfigError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
    if int(angles) != angles or angles < 2:
        raise ConfigError(f"angles must be an integer >= 2, got {angles!r}")
    if not (math.isfinite(voxel_um) and voxel_um > 0):
        raise ConfigError(f"voxel_um must be > 0, got {voxel_um!r}")
    if int(seed) != seed:
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    _check_size(columns, slices)
    if int(binning) != binning or binning < 1 or columns % binning or slices % binning:
        raise ConfigError(
            f"binning must be an integer >= 1 dividing columns {columns} and slices {slices}, "
            f"got {binning!r}"
        )


def _phantom_extra(
    kind: str,
    axial_variety: float,
    bone_fraction: float | None,
    trabecular_scale: float | None,
) -> dict[str, float]:
    """The phantom's structure keywords: axial_variety for shale, the given structure
    parameters (None: the phantom's defaults) for bone."""
    # axial_variety applies to the shale phantom only, the structure parameters to bone only
    if kind == "shale":
        return {"axial_variety": float(axial_variety)}
    return {
        k: float(v)
        for k, v in (("bone_fraction", bone_fraction), ("trabecular_scale", trabecular_scale))
        if v is not None
    }


def simulate_scan(
    path: str | os.PathLike,
    kind: str,
    *,
    columns: int,
    slices: int,
    angles: int,
    photons: float,
    dark_counts: float,
    n_flats: int,
    n_darks: int,
    seed: int,
    voxel_um: float,
    binning: int = 1,
    blur_sigma: float = 0.0,
    axial_variety: float = 0.0,
    bone_fraction: float | None = None,
    trabecular_scale: float | None = None,
) -> None:
    """Simulate a scan of a built-in phantom and write it as DXchange, atomically.

    The phantom is ``(slices, columns, columns)`` (same `seed` -> same object whatever the
    binning); angles are ``linspace(0, pi, angles, endpoint=False)``; the file holds
    ``(angles, slices/binning, columns/binning)`` uint16 counts (see
    `simulate_projections`). Root attributes record every parameter, the phantom's voxel
    size ``voxel_um`` and the scan's voxel size ``voxel_size_um = voxel_um * binning``
    (micrometres). `bone_fraction` and `trabecular_scale` (bone only; None = the phantom's
    defaults) make specimens of different structure (:func:`bone_phantom`).

    Raises
    ------
    ConfigError
        Unknown `kind` (``"shale"`` or ``"bone"``) or an invalid value, naming the key.
    """
    _check_scan(kind, columns, slices, angles, seed, voxel_um, binning)
    extra = _phantom_extra(kind, axial_variety, bone_fraction, trabecular_scale)
    volume = KINDS[kind](int(columns), int(slices), int(seed), **extra)
    theta = np.linspace(0.0, np.pi, int(angles), endpoint=False)
    data, flat, dark = simulate_projections(
        volume,
        theta,
        photons=photons,
        dark_counts=dark_counts,
        n_flats=n_flats,
        n_darks=n_darks,
        seed=seed,
        binning=binning,
        blur_sigma=blur_sigma,
    )
    del volume
    attrs = {
        "simulator": f"tomosynth.simulate {__version__}",
        "kind": kind,
        "columns": int(columns),
        "slices": int(slices),
        "angles": int(angles),
        "photons": float(photons),
        "dark_counts": float(dark_counts),
        "n_flats": int(n_flats),
        "n_darks": int(n_darks),
        "seed": int(seed),
        "binning": int(binning),
        "blur_sigma": float(blur_sigma),
        "axial_variety": float(axial_variety),
        **(extra if kind == "bone" else {}),  # the bone structure parameters given
        "voxel_um": float(voxel_um),
        "voxel_size_um": float(voxel_um) * int(binning),
        "attenuation_units": "per phantom voxel (mu * voxel_um)",
    }
    write_dxchange(path, data, flat, dark, theta, attrs=attrs)

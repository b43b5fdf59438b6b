# SPDX-License-Identifier: BSD-3-Clause
"""DXchange / Tomobank scans: write, inspect, read, and the checks of theta and counts."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tomosynth.errors import DataError
from tomosynth.io.atomic import _denied, atomic_file, permission_message
from tomosynth.io.h5chunks import read_rows

if TYPE_CHECKING:
    import h5py


DATA = "/exchange/data"
FLAT = "/exchange/data_white"
DARK = "/exchange/data_dark"
THETA = "/exchange/theta"
_RADIAN_UNITS = {"rad", "radian", "radians"}
_DEGREE_UNITS = {"deg", "degree", "degrees"}


@dataclass
class ScanInfo:
    """Shape and angles of a DXchange scan, read without loading the projections.

    Attributes
    ----------
    path : Path
        The file.
    n_angles, n_rows, n_cols : int
        Shape of ``/exchange/data`` (angles, detector rows, detector columns).
    n_flats, n_darks : int
        Number of flat (white) and dark frames.
    theta : np.ndarray
        Projection angles, float64, **radians**.
    attrs : dict
        Root attributes of the file (provenance; JSON strings decoded), possibly empty.
    """

    path: Path
    n_angles: int
    n_rows: int
    n_cols: int
    n_flats: int
    n_darks: int
    theta: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Projections:
    """A chunk of detector rows of a scan, as float32 counts.

    Attributes
    ----------
    data : np.ndarray
        (angles, r1 - r0, columns) float32 counts.
    flat, dark : np.ndarray
        (n_flats, r1 - r0, columns) and (n_darks, r1 - r0, columns) float32 counts.
    theta : np.ndarray
        (angles,) float64, radians.
    rows : tuple[int, int]
        The detector row range ``[r0, r1)`` these arrays hold.
    """

    data: np.ndarray
    flat: np.ndarray
    dark: np.ndarray
    theta: np.ndarray
    rows: tuple[int, int]
    #: Per-row statistics of the counts as read (`RowStats`), shared by the checks of
    #: `read_dxchange` and `tomosynth.scan_checks`; None once the counts were changed.
    stats: RowStats | None = None


@dataclass
class RowStats:
    """Per detector row of a chunk: the means (float64) of the data, flats and darks over
    frames and columns, and the data's largest value.

    Taken in one pass over each array (`row_stats`): the float64 sums also tell whether
    every value is finite (a float64 sum of float32 values cannot overflow), so the checks
    of `read_dxchange` and `tomosynth.scan_checks.check_rows` scan the counts once.
    """

    data: np.ndarray
    flat: np.ndarray
    dark: np.ndarray
    data_max: np.ndarray


def _attr_value(value: Any) -> Any:
    """Make an attribute HDF5-storable: dicts/lists/None become JSON strings."""
    if isinstance(value, dict | list | tuple) or value is None:
        return "json:" + json.dumps(value)
    if isinstance(value, Path):
        return str(value)
    return value


def _decode_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str) and value.startswith("json:"):
        return json.loads(value[5:])
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def write_dxchange(
    path: str | os.PathLike,
    data: np.ndarray,
    flat: np.ndarray,
    dark: np.ndarray,
    theta_rad: np.ndarray,
    *,
    attrs: dict[str, Any] | None = None,
    compress: bool = True,
) -> None:
    """Write a scan in the DXchange/Tomobank layout, atomically.

    Datasets: ``/exchange/data`` (angles, rows, columns), ``/exchange/data_white``
    (n_flats, rows, columns), ``/exchange/data_dark`` (n_darks, rows, columns), all in the
    dtype given (the simulator writes uint16 counts), gzip-compressed and chunked in slabs
    of detector rows so that a row range reads cheaply; ``/exchange/theta`` (angles,)
    float64 in **degrees** with attribute ``units="degrees"``, as Tomobank stores it.

    Parameters
    ----------
    path : path-like
        Output ``.h5`` file; replaced only once complete.
    data, flat, dark : np.ndarray
        Projections, flat (white) and dark frames; 3D with equal rows and columns.
    theta_rad : np.ndarray
        (angles,) projection angles in radians.
    attrs : dict, optional
        Provenance (simulator parameters, ``voxel_um``, ...) stored as root attributes;
        dict/list values are stored as JSON and decoded again by `inspect_dxchange`.
    compress : bool
        False: the frames uncompressed and contiguous, as many beamlines write them.
    """
    path = Path(path)
    data = np.asarray(data)
    flat = np.asarray(flat)
    dark = np.asarray(dark)
    theta_rad = np.asarray(theta_rad, dtype=np.float64)
    for name, arr in (("data", data), ("flat", flat), ("dark", dark)):
        if arr.ndim != 3:
            raise DataError(f"{path}: {name} must be 3D (frames, rows, columns), got {arr.shape}")
        if 0 in arr.shape:
            raise DataError(f"{path}: {name} is empty, shape {arr.shape}")
    if flat.shape[1:] != data.shape[1:] or dark.shape[1:] != data.shape[1:]:
        raise DataError(
            f"{path}: flat {flat.shape} / dark {dark.shape} rows and columns differ from "
            f"data {data.shape}"
        )
    if theta_rad.shape != (data.shape[0],):
        raise DataError(
            f"{path}: theta has shape {theta_rad.shape}, expected ({data.shape[0]},) angles"
        )
    import h5py

    with atomic_file(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("implements", data="exchange")
        for key, arr in ((DATA, data), (FLAT, flat), (DARK, dark)):
            if not compress:
                f.create_dataset(key, data=arr)
                continue
            n, rows, cols = arr.shape
            chunks = (max(1, min(n, 32)), max(1, min(rows, 16)), max(1, cols))
            f.create_dataset(
                key, data=arr, chunks=chunks, compression="gzip", compression_opts=1, shuffle=True
            )
        ds = f.create_dataset(THETA, data=np.rad2deg(theta_rad))
        ds.attrs["units"] = "degrees"
        for key, value in (attrs or {}).items():
            f.attrs[key] = _attr_value(value)


def _theta_radians(path: Path, ds: h5py.Dataset, theta_units: str | None = None) -> np.ndarray:
    if ds.ndim != 1:
        raise DataError(f"{path}: {THETA} must be 1D (angles,), got shape {ds.shape}")
    theta = np.asarray(ds[()], dtype=np.float64)
    units = _theta_units(path, ds, theta_units)
    if units in _RADIAN_UNITS:
        return theta
    if units in _DEGREE_UNITS:
        return np.deg2rad(theta)
    raise DataError(f"{path}: {THETA} has unknown units {units!r} (expected degrees or radians)")


def _open_h5(path: Path) -> h5py.File:
    import h5py

    if path.is_dir():
        raise DataError(f"{path}: is a directory, not a DXchange .h5 scan file")
    if not path.is_file():
        raise DataError(f"{path}: scan file does not exist")
    if not os.access(path, os.R_OK):
        raise DataError(permission_message(path))
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        if _denied(exc):
            raise DataError(permission_message(path)) from exc
        raise DataError(f"{path}: not a readable HDF5 file (truncated or corrupt?): {exc}") from exc


def _inspect_open(path: Path, f: h5py.File, theta_units: str | None = None) -> ScanInfo:
    import h5py

    for key in (DATA, FLAT, DARK, THETA):
        if key not in f or not isinstance(f[key], h5py.Dataset):
            raise DataError(f"{path}: missing dataset {key} (not a DXchange scan)")
    data, flat, dark = f[DATA], f[FLAT], f[DARK]
    for key, ds in ((DATA, data), (FLAT, flat), (DARK, dark)):
        if ds.ndim != 3:
            raise DataError(f"{path}: {key} must be 3D (frames, rows, columns), got {ds.shape}")
        if ds.shape[0] == 0 or ds.shape[1] == 0 or ds.shape[2] == 0:
            raise DataError(f"{path}: {key} is empty, shape {ds.shape}")
        if ds.dtype.kind not in "uif":
            raise DataError(f"{path}: {key} has non-numeric dtype {ds.dtype}")
    for key, ds in ((FLAT, flat), (DARK, dark)):
        if ds.shape[1:] != data.shape[1:]:
            raise DataError(
                f"{path}: {key} rows x columns {ds.shape[1:]} differ from {DATA} {data.shape[1:]}"
            )
    theta = _theta_radians(path, f[THETA], theta_units)
    if theta.shape[0] != data.shape[0]:
        raise DataError(
            f"{path}: {THETA} has {theta.shape[0]} angles but {DATA} has {data.shape[0]} "
            "projections"
        )
    if not np.all(np.isfinite(theta)):
        raise DataError(f"{path}: {THETA} contains NaN or infinite angles")
    check_theta(path, theta, theta_units)
    attrs = {k: _decode_attr(v) for k, v in f.attrs.items()}
    n_angles, n_rows, n_cols = (int(s) for s in data.shape)
    return ScanInfo(
        path=path,
        n_angles=n_angles,
        n_rows=n_rows,
        n_cols=n_cols,
        n_flats=int(flat.shape[0]),
        n_darks=int(dark.shape[0]),
        theta=theta,
        attrs=attrs,
    )


def inspect_dxchange(path: str | os.PathLike, theta_units: str | None = None) -> ScanInfo:
    """Validate a DXchange file's layout and return its shape and angles.

    Reads only metadata and ``/exchange/theta``, never the projections. Angles are
    returned in radians: ``/exchange/theta`` is taken as **degrees** (Tomobank's
    convention, attribute ``units="degrees"`` or no attribute) unless its ``units``
    attribute says ``rad``/``radians``. `theta_units` (``"degrees"``/``"radians"``, the
    per-scan config key ``theta_units``) sets the unit of a file without the attribute.
    The angles are checked for what a tomographic scan allows (`check_theta`).

    Raises
    ------
    DataError
        Naming the file and the problem: missing file, not HDF5 or truncated, a missing
        ``/exchange/{data,data_white,data_dark,theta}``, wrong number of dimensions,
        flat/dark rows or columns different from the data's, ``theta`` length different
        from the number of projections, non-finite or unknown-unit angles, an angular
        span implausible for the unit, mostly repeated angles.
    """
    path = Path(path)
    f = _open_h5(path)
    try:
        with f:
            return _inspect_open(path, f, theta_units)
    except OSError as exc:
        raise DataError(
            f"{path}: cannot read HDF5 metadata (truncated or corrupt?): {exc}"
        ) from exc


def read_dxchange(
    path: str | os.PathLike,
    rows: tuple[int, int] | None = None,
    *,
    theta_units: str | None = None,
    threads: int = 1,
) -> Projections:
    """Read detector rows ``[r0, r1)`` of a DXchange scan as float32.

    Only the requested rows are read from disk (``data[:, r0:r1, :]``), so peak memory is
    about ``4 * (angles + n_flats + n_darks) * (r1 - r0) * columns`` bytes whatever the
    scan's size.

    Parameters
    ----------
    path : path-like
        The ``.h5`` file.
    rows : (int, int), optional
        Half-open detector row range; ``None`` reads all rows.
    theta_units : {"degrees", "radians"}, optional
        Unit of ``/exchange/theta`` when the file has no ``units`` attribute.
    threads : int
        Threads that inflate gzip chunks (`tomosynth.io.h5chunks.read_rows`); the values
        do not depend on it.

    Returns
    -------
    Projections
        float32 data/flat/dark counts and theta in radians (see `inspect_dxchange`).

    Raises
    ------
    DataError
        Every problem `inspect_dxchange` reports; a row range that is empty or outside
        ``[0, n_rows]``; NaN/inf counts in the chunk; flats not brighter than darks (over
        the chunk, mean flat minus mean dark is at most ``max(1, 3 * std(dark))`` counts,
        i.e. within the dark noise: a closed shutter or swapped datasets); negative counts
        or projections brighter than the flats (`check_counts`).
    """
    path = Path(path)
    f = _open_h5(path)
    try:
        with f:
            info = _inspect_open(path, f, theta_units)
            r0, r1 = (0, info.n_rows) if rows is None else (int(rows[0]), int(rows[1]))
            if not (0 <= r0 < r1 <= info.n_rows):
                raise DataError(
                    f"{path}: row range [{r0}, {r1}) is empty or out of bounds; valid rows are "
                    f"0..{info.n_rows} (half-open, {info.n_rows} detector rows)"
                )
            # gzip chunks are inflated by ISA-L when it is installed (`h5chunks`)
            out = {key: read_rows(f[key], r0, r1, threads=threads) for key in (DATA, FLAT, DARK)}
    except OSError as exc:
        raise DataError(f"{path}: cannot read HDF5 data (truncated or corrupt?): {exc}") from exc
    return _checked_projections(path, out[DATA], out[FLAT], out[DARK], info.theta, (r0, r1))


def _checked_projections(
    path: Path,
    data: np.ndarray,
    flat: np.ndarray,
    dark: np.ndarray,
    theta: np.ndarray,
    rows: tuple[int, int],
) -> Projections:
    """`Projections` of float32 counts, after the checks `read_dxchange` documents."""
    r0, r1 = rows
    stats = row_stats(data, flat, dark)
    for key, means in ((DATA, stats.data), (FLAT, stats.flat), (DARK, stats.dark)):
        if not np.all(np.isfinite(means)):  # a float64 sum is finite iff every value is
            raise DataError(f"{path}: {key} contains NaN or infinite values in rows [{r0}, {r1})")
    flat_mean = float(flat.mean(dtype=np.float64))
    dark_mean = float(dark.mean(dtype=np.float64))
    # Flats within the dark noise carry no beam: normalising by them would amplify noise.
    margin = max(1.0, 3.0 * float(dark.std(dtype=np.float64)))
    if flat_mean - dark_mean <= margin:
        raise DataError(
            f"{path}: flat fields are not brighter than dark fields in rows [{r0}, {r1}) "
            f"(mean flat {flat_mean:.4g}, mean dark {dark_mean:.4g}, dark noise margin "
            f"{margin:.3g})"
        )
    check_counts(path, data, flat, dark, (r0, r1), stats)
    return Projections(data=data, flat=flat, dark=dark, theta=theta, rows=(r0, r1), stats=stats)


def _row_means(arr: np.ndarray) -> np.ndarray:
    """Per-row (axis 1) float64 means over frames and columns, as ``arr.mean(axis=(0, 2),
    dtype=np.float64)`` computes them."""
    return arr.sum(axis=(0, 2), dtype=np.float64) / (arr.shape[0] * arr.shape[2])


def row_stats(data: np.ndarray, flat: np.ndarray, dark: np.ndarray) -> RowStats:
    """`RowStats` of a chunk's (frames, rows, columns) counts."""
    return RowStats(_row_means(data), _row_means(flat), _row_means(dark), data.max(axis=(0, 2)))


#: Smallest angular span (degrees) accepted for a scan: below it FBP cannot reconstruct, and
#: radians read as degrees (a half turn = 3.14 "degrees") land here.
MIN_SPAN_DEG = 20.0
#: Largest span (degrees): two full turns; degrees read as radians (180 "rad") land above it.
MAX_SPAN_DEG = 720.0
#: Fraction of negative raw counts tolerated in ``/exchange/data`` (dark-subtracted float
#: files may dip below zero in noise; more than this is not raw counts).
MAX_NEGATIVE_FRACTION = 0.01


def _theta_units(path: Path, ds: h5py.Dataset, theta_units: str | None) -> str:
    """Unit of the theta dataset: its ``units`` attribute, else `theta_units`, else degrees."""
    if theta_units is not None:
        given = str(theta_units).strip().lower()
        if given not in _RADIAN_UNITS | _DEGREE_UNITS:
            raise DataError(f"{path}: theta_units {theta_units!r} is not 'degrees' or 'radians'")
    if "units" not in ds.attrs:
        return "degrees" if theta_units is None else given
    units = str(_decode_attr(ds.attrs["units"])).strip().lower()
    if theta_units is not None and (
        (units in _RADIAN_UNITS and given in _DEGREE_UNITS)
        or (units in _DEGREE_UNITS and given in _RADIAN_UNITS)
    ):
        raise DataError(
            f"{path}: {THETA} says units={units!r} but the config sets theta_units: "
            f"{theta_units}; remove theta_units from the scan's config entry"
        )
    return units


def _outlier_angles(theta: np.ndarray) -> np.ndarray:
    """Indices of angles far outside the bulk (a glitched reading among plausible ones).

    An angle is an outlier when it lies more than the bulk's own 10-90 % range (at least
    10 degrees) beyond the 10th or 90th percentile, and the others then span a plausible
    scan (`MIN_SPAN_DEG` to `MAX_SPAN_DEG`); none when most angles are implausible (a unit
    problem, reported as such).
    """
    if theta.size < 10:
        return np.empty(0, dtype=np.int64)
    deg = np.rad2deg(theta)
    q10, q90 = np.percentile(deg, [10, 90])
    reach = max(q90 - q10, 10.0)
    out = np.flatnonzero((deg < q10 - reach) | (deg > q90 + reach))
    if out.size == 0 or out.size > 0.05 * theta.size:
        return np.empty(0, dtype=np.int64)
    rest = np.delete(deg, out)
    if not MIN_SPAN_DEG <= rest.max() - rest.min() <= MAX_SPAN_DEG:
        return np.empty(0, dtype=np.int64)
    return out


def check_theta(path: str | os.PathLike, theta_rad: np.ndarray, theta_units: str | None) -> None:
    """Reject angles no tomographic scan has; the message says what to set.

    Parameters
    ----------
    path : path-like
        The scan (named in the message).
    theta_rad : np.ndarray
        (angles,) projection angles in radians, as read.
    theta_units : str or None
        The configured unit override (the message suggests it when the span is implausible).

    Raises
    ------
    DataError
        The span ``max - min`` is below `MIN_SPAN_DEG` (radians stored without a ``units``
        attribute read as degrees) or above `MAX_SPAN_DEG` (degrees marked as radians), a
        few angles lie far outside the others (named with their indices), or
        more than half of the angles repeat another one (the projections cannot be put in
        angular order). Unsorted but distinct angles are fine: each projection keeps its angle.
    """
    theta = np.asarray(theta_rad, dtype=np.float64)
    if theta.size < 2:
        raise DataError(f"{path}: {THETA} has {theta.size} angle(s); a scan needs several")
    span = float(np.rad2deg(theta.max() - theta.min()))
    if span < MIN_SPAN_DEG:
        hint = (
            "the angles look like radians read as degrees: set theta_units: radians in the "
            "scan's config entry (or a units='radians' attribute on /exchange/theta)"
            if theta_units is None and span <= 7.0
            else "check /exchange/theta and its units"
        )
        raise DataError(
            f"{path}: {THETA} spans only {span:.3g} degrees (at least {MIN_SPAN_DEG:g} needed "
            f"for a reconstruction); {hint}"
        )
    outliers = _outlier_angles(theta)
    if outliers.size:
        deg = np.rad2deg(theta)
        rest = np.delete(deg, outliers)
        shown = ", ".join(f"index {i}: {deg[i]:.6g}" for i in outliers[:5].tolist())
        more = f" (+{outliers.size - 5} more)" if outliers.size > 5 else ""
        raise DataError(
            f"{path}: {THETA} has {outliers.size} outlier angle(s) far outside the others "
            f"({rest.min():.4g} to {rest.max():.4g} degrees): {shown} degrees{more}; a "
            "glitched encoder reading? fix those values in /exchange/theta or drop those "
            "projections (the units are not the problem)"
        )
    if span > MAX_SPAN_DEG:
        raise DataError(
            f"{path}: {THETA} spans {span:.4g} degrees (more than {MAX_SPAN_DEG:g}); the "
            "angles look like degrees read as radians: set theta_units: degrees in the "
            "scan's config entry (or fix the units attribute of /exchange/theta)"
        )
    distinct = np.unique(np.round(np.mod(theta, 2 * np.pi), 9)).size
    if distinct * 2 < theta.size:
        raise DataError(
            f"{path}: {THETA} has only {distinct} distinct angles for {theta.size} "
            "projections; the angles cannot be sorted into a scan (repeated or constant values)"
        )


def check_counts(
    path: str | os.PathLike,
    data: np.ndarray,
    flat: np.ndarray,
    dark: np.ndarray,
    rows: tuple[int, int],
    stats: RowStats | None = None,
) -> None:
    """Reject counts that raw detector data cannot hold (on arrays already read; `stats`:
    their `RowStats`, when already taken).

    Raises
    ------
    DataError
        More than `MAX_NEGATIVE_FRACTION` of the projection, flat or dark values are negative
        (the file holds processed data, e.g. -log or normalised projections, not raw counts),
        or in most rows the mean projection minus dark exceeds 1.5 times the flat minus
        dark (projections brighter than the open beam: data and data_white swapped).
    """
    for key, arr in ((DATA, data), (FLAT, flat), (DARK, dark)):
        if arr.dtype.kind == "u" or not arr.min() < 0:  # counting needs a pass more
            continue
        neg = int(np.count_nonzero(arr < 0))
        if neg > MAX_NEGATIVE_FRACTION * arr.size:
            raise DataError(
                f"{path}: {key} has {100.0 * neg / arr.size:.3g}% negative values in rows "
                f"[{rows[0]}, {rows[1]}) (min {float(arr.min()):.4g}); raw detector counts are "
                ">= 0: give the raw projections with their data_white and data_dark, not "
                "normalised or -log data"
            )
    # Per detector row, swapped when most rows are: one saturated or over-flat row is not a
    # swap (tomosynth.scan_checks names such rows; recon.bad_rows chooses what to do).
    if stats is None:
        stats = row_stats(data, flat, dark)
    dark_row = stats.dark
    beam_row = stats.flat - dark_row
    signal_row = stats.data - dark_row
    bright = (beam_row > 0) & (signal_row > 1.5 * beam_row)
    beam, signal = float(np.median(beam_row)), float(np.median(signal_row))
    if np.count_nonzero(bright) * 2 > bright.size:  # most rows
        raise DataError(
            f"{path}: {DATA} is brighter than {FLAT} in rows [{rows[0]}, {rows[1]}) (median "
            f"row {signal:.4g} vs {beam:.4g} counts above dark): transmission above 1, are "
            "data and data_white swapped? (if only a few detector rows are this bright, they "
            "are saturated: set recon.bad_rows: mask)"
        )

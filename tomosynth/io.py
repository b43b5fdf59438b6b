"""File input/output: atomic writes, DXchange scans, TIFF/PNG stacks, JSON."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tomosynth.errors import DataError
from tomosynth.jobs import pid_alive
from tomosynth.manifest import verify_folder, write_manifest

if TYPE_CHECKING:
    import h5py

# h5py, tifffile and Pillow are imported where used, so that the atomic-write and JSON
# helpers work in every rule's environment, including ones without HDF5.


def _tmp_prefix(path: Path) -> str:
    """Prefix of the temporaries of `path`: ``.NAME.PID-`` (the writer's pid, so that a later
    job can tell a stale one from one being written)."""
    return f".{path.name}.{os.getpid()}-"


_TMP_RE = r"^\.{name}\.(?:(\d+)-)?[a-z0-9_]{{8}}\.tmp$"


def clean_stale_temporaries(path: str | os.PathLike, any_name: bool = False) -> list[Path]:
    """Delete the temporaries that `atomic_file`/`atomic_dir` left beside `path` when their
    process was killed (``.NAME.PID-XXXXXXXX.tmp`` of a dead pid, or the older
    ``.NAME.XXXXXXXX.tmp``); returns what was deleted.

    Called at the start of every atomic write: a killed export otherwise leaves a hidden
    folder of partial images forever. Temporaries of a live process are kept. `any_name`
    cleans those of every name in the folder `path` itself (once per folder of slices).
    """
    path = Path(path)
    folder = path if any_name else path.parent
    if not folder.is_dir():
        return []
    name = ".+" if any_name else re.escape(path.name)
    pattern = re.compile(_TMP_RE.format(name=name))
    removed = []
    with os.scandir(folder) as entries:
        stale = [
            Path(e.path)
            for e in entries
            if (m := pattern.match(e.name)) and not (m.group(1) and pid_alive(int(m.group(1))))
        ]
    for entry in sorted(stale):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def write_failure(path: str | os.PathLike, nbytes: int) -> Exception:
    """The error for a writer that only says it failed (OpenCV's ``imwrite`` returns False):
    ``no space left on <folder>`` when the disk lacks `nbytes` plus 1 MiB, else a DataError."""
    where = Path(path).parent
    free = shutil.disk_usage(where).free if where.is_dir() else 0
    if free < nbytes + 2**20:
        return OSError(
            errno.ENOSPC,
            f"no space left on {where} (free {free / 2**20:.1f} MiB) while writing {path}: "
            "free some space and run again",
        )
    return DataError(f"{path}: could not write the file")


def _in_temporary(path: Path) -> bool:
    """Whether `path` is written inside an `atomic_dir` temporary (nothing stale there)."""
    return path.parent.name.startswith(".") and path.parent.name.endswith(".tmp")


def no_space_error(exc: OSError, path: str | os.PathLike) -> OSError | None:
    """A one-line ``OSError(ENOSPC)`` saying ``no space left on <folder>`` for a full disk
    (ENOSPC, EDQUOT, or a short write such as numpy's "4096 requested and 3004 written"),
    else None. Not a DataError: the input is fine, and a rerun after freeing space resumes
    (a reconstruction keeps its finished chunks)."""
    text = str(exc)
    if "no space left on" in text:
        return None  # already said by an inner writer (a file inside an atomic folder)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT) or ("requested and" in text and "written" in text):
        where = Path(path).parent
        free = shutil.disk_usage(where).free if where.is_dir() else 0
        return OSError(
            errno.ENOSPC,
            f"no space left on {where} (free {free / 2**20:.0f} MiB) while writing {path}: "
            f"free some space and run again ({exc})",
        )
    return None


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, clean: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only on success.

    A crash or exception leaves no half-written file under the final name; a full disk is
    reported as ``no space left on <folder>`` (`no_space_error`). `clean`: delete stale
    temporaries of `path` first (`clean_stale_temporaries`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if clean and not _in_temporary(path):
        clean_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        full = no_space_error(exc, path)
        if full is not None:
            raise full from exc
        raise
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; move it onto `path` only on success.

    An existing folder at `path` is replaced only once the new one is complete. The folder
    gets a ``MANIFEST.json`` (names, sizes, sha256 of its files; `tomosynth.manifest`)
    before it is moved, which the readers of this module check. Stale temporaries of a
    killed earlier run are deleted first; a full disk is reported as ``no space left``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(path)
    tmp_path = Path(tempfile.mkdtemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        yield tmp_path
        write_manifest(tmp_path)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp_path, path)
    except OSError as exc:
        shutil.rmtree(tmp_path, ignore_errors=True)
        full = no_space_error(exc, path)
        if full is not None:
            raise full from exc
        raise
    except BaseException:
        shutil.rmtree(tmp_path, ignore_errors=True)
        raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as indented JSON, atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_csv(path: str | os.PathLike, table: Any, float_format: str | None = None) -> None:
    """Write a pandas DataFrame as CSV without its index, atomically (parent made if absent).

    `float_format` (e.g. ``"%.6g"``) is pandas' ``to_csv`` option; ``None`` writes full
    precision.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        table.to_csv(tmp, index=False, float_format=float_format)


def read_json(path: str | os.PathLike, rule: str | None = None) -> Any:
    """Read a JSON file; DataError naming it when it is unreadable or not JSON.

    `rule`: the Snakemake rule that writes the file, named in the fix.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except PermissionError as exc:
        raise DataError(permission_message(path)) from exc
    try:
        return json.loads(data.decode("utf-8"))
    except ValueError as exc:
        fix = f"snakemake --forcerun {rule}, or delete it" if rule else "delete it"
        raise DataError(
            f"{path}: damaged, not valid JSON ({exc}); regenerate it: {fix} and run snakemake again"
        ) from exc


def permission_message(path: str | os.PathLike) -> str:
    """One line for a file this user may not read."""
    return (
        f"{path}: permission denied (not readable by this user); fix its permissions "
        f"(chmod u+r {path}) or run as its owner"
    )


def _denied(exc: BaseException) -> bool:
    """Whether `exc` (possibly from h5py, which wraps errno in its text) is EACCES/EPERM."""
    if isinstance(exc, PermissionError):
        return True
    text = str(exc)
    return "errno = 13" in text or "Permission denied" in text


# --------------------------------------------------------------------------------------
# DXchange / Tomobank scans
# --------------------------------------------------------------------------------------

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
            out = {}
            for key in (DATA, FLAT, DARK):
                ds = f[key]
                arr = np.empty((ds.shape[0], r1 - r0, ds.shape[2]), dtype=np.float32)
                ds.read_direct(arr, np.s_[:, r0:r1, :])
                out[key] = arr
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
    for key, arr in ((DATA, data), (FLAT, flat), (DARK, dark)):
        if not np.all(np.isfinite(arr)):
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
    check_counts(path, data, flat, dark, (r0, r1))
    return Projections(data=data, flat=flat, dark=dark, theta=theta, rows=(r0, r1))


# --------------------------------------------------------------------------------------
# Scan identity and HDF5 read order (chunked / compressed Tomobank files)
# --------------------------------------------------------------------------------------


@dataclass
class H5Layout:
    """Storage layout of ``/exchange/data`` (flats and darks are read the same way).

    Attributes
    ----------
    chunks : tuple of int or None
        HDF5 chunk shape (frames, rows, columns); ``None`` for a contiguous dataset.
    compression : str or None
        Name of the first filter that must decompress whole chunks (``gzip``, ``lzf``,
        a plugin's id, ...); ``None`` when the chunks are stored raw.
    dtype : str
        Stored element type of the data.
    """

    chunks: tuple[int, ...] | None
    compression: str | None
    dtype: str


def h5_layout(path: str | os.PathLike, theta_units: str | None = None) -> H5Layout:
    """Chunk shape and compression of a DXchange file's ``/exchange/data`` (`theta_units`:
    see `inspect_dxchange`)."""
    path = Path(path)
    f = _open_h5(path)
    try:
        with f:
            _inspect_open(path, f, theta_units)
            ds = f[DATA]
            compression = ds.compression
            if compression is None:
                # plugin filters (blosc, bitshuffle-lz4, ...) are not named by h5py
                filters = [k for k in ds._filters if k not in ("shuffle", "fletcher32")]
                compression = str(filters[0]) if filters else None
            return H5Layout(
                chunks=tuple(int(c) for c in ds.chunks) if ds.chunks else None,
                compression=compression,
                dtype=str(ds.dtype),
            )
    except OSError as exc:
        raise DataError(
            f"{path}: cannot read HDF5 metadata (truncated or corrupt?): {exc}"
        ) from exc


def scan_digest(path: str | os.PathLike, theta_units: str | None = None) -> str:
    """SHA-256 identifying a scan's content cheaply (milliseconds, whatever its size).

    Hashes the file size and modification time (ns), every exchange dataset's shape, dtype,
    chunking and filters, ``/exchange/theta``, the root attributes, and a content sample:
    the middle detector row of the first and last projection, first flat and first dark
    (one HDF5 chunk each in any layout). A rewritten or replaced file changes the size,
    the time stamp or the sample; finished reconstruction chunks are reused only while the
    digest is unchanged (`tomosynth.resume`).
    """
    import hashlib

    path = Path(path)
    stat = path.stat() if path.is_file() else None
    if stat is None:
        raise DataError(f"{path}: scan file does not exist")
    h = hashlib.sha256()
    h.update(f"size={stat.st_size};mtime_ns={stat.st_mtime_ns};".encode())
    f = _open_h5(path)
    try:
        with f:
            info = _inspect_open(path, f, theta_units)
            mid = info.n_rows // 2
            for key in (DATA, FLAT, DARK):
                ds = f[key]
                h.update(
                    f"{key}:{ds.shape}:{ds.dtype.str}:{ds.chunks}:{sorted(ds._filters)};".encode()
                )
                for frame in sorted({0, ds.shape[0] - 1}):
                    h.update(np.ascontiguousarray(ds[frame, mid, :]).tobytes())
            h.update(np.ascontiguousarray(info.theta).tobytes())
            h.update(json.dumps(info.attrs, sort_keys=True, default=str).encode())
    except OSError as exc:
        raise DataError(f"{path}: cannot read HDF5 data (truncated or corrupt?): {exc}") from exc
    return h.hexdigest()


def plan_row_reads(layout: H5Layout, n_rows: int, chunk_rows: int) -> tuple[str, str]:
    """Choose how to read a scan in chunks of `chunk_rows` detector rows.

    Reading rows ``[a, a + chunk_rows)`` of every projection must decompress every HDF5
    chunk those rows fall in, whole. With Tomobank's common layout of one chunk per
    projection, ``chunks = (1, rows, cols)``, each projection is then decompressed once per
    reconstruction chunk: ``rows / chunk_rows`` times in all (128 times for 2048 rows and
    16-row chunks). Raw (uncompressed) chunks and contiguous datasets are read partially
    by HDF5 at no extra cost.

    Returns
    -------
    (mode, reason)
        ``"direct"``: read each chunk of rows from the file (`read_dxchange`), when every
        HDF5 chunk is decompressed at most twice (contiguous, raw, or chunks spanning at most
        ``2 * chunk_rows`` rows). ``"transpose"``: read whole projections once, in blocks,
        into a sinogram-ordered scratch file (`SinogramScratch`) and read the chunks from it.
        `reason` says why, for the log.
    """
    if layout.chunks is None:
        return "direct", "contiguous dataset"
    if layout.compression is None:
        return "direct", f"uncompressed chunks {layout.chunks}"
    span = min(layout.chunks[1], n_rows)
    passes = -(-span // max(1, chunk_rows))
    if passes <= 2:
        return "direct", (
            f"{layout.compression} chunks {layout.chunks} span <= 2 reconstruction chunks"
        )
    return "transpose", (
        f"{layout.compression} chunks {layout.chunks}: direct reads of {chunk_rows} rows "
        f"would decompress every chunk about {passes} times"
    )


class SinogramScratch:
    """Sinogram-ordered, uncompressed copy of detector rows ``[r0, r1)``, built resumably.

    The file ``sino.bin`` holds ``(rows, frames, cols)`` in raw counts (frames: projections,
    then flats, then darks), so one chunk of rows is one contiguous read. `build` reads
    whole frames in blocks of about ``memory_budget_mb / 2``, aligned to the HDF5 chunks, so
    every HDF5 chunk is decompressed exactly once; after each block the file is synced and
    ``sino.json`` records how many frames are done, so a killed build continues from there
    (only when the scan digest and row range still match).

    Costs: disk ``rows x frames x cols x itemsize`` (the uncompressed scan; uint16 counts
    stay uint16). Peak memory of `build`: the block read from HDF5 plus its transposed copy,
    ``memory_budget_mb`` together (at least two HDF5 chunks' frames), plus HDF5's
    decompression buffers (measured: 147 MB growth at 128 MB on a 2048-wide file,
    ``benchmarks/bench_recon_io.py``), below the back-projection's own ``2 x budget``.
    `read` holds the raw chunk (``R x frames x cols x itemsize``) next to the float32
    arrays `read_dxchange` would return.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        scan: str | os.PathLike,
        rows: tuple[int, int],
        digest: str,
        memory_budget_mb: int = 128,
        theta_units: str | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.scan = Path(scan)
        self.r0, self.r1 = int(rows[0]), int(rows[1])
        self.digest = digest
        self.memory_budget_mb = int(memory_budget_mb)
        self.bin_path = self.folder / "sino.bin"
        self.json_path = self.folder / "sino.json"
        info = inspect_dxchange(self.scan, theta_units)
        self.info = info
        self.counts = (info.n_angles, info.n_flats, info.n_darks)
        self.n_frames = sum(self.counts)
        f = _open_h5(self.scan)
        with f:
            dtypes = [f[k].dtype for k in (DATA, FLAT, DARK)]
        dt = np.result_type(*dtypes)
        self.dtype = dt if dt.kind in "ui" and dt.itemsize <= 2 else np.dtype(np.float32)

    @property
    def nbytes(self) -> int:
        """Size of the scratch file in bytes."""
        return (self.r1 - self.r0) * self.n_frames * self.info.n_cols * self.dtype.itemsize

    def _key(self) -> dict:
        return {
            "digest": self.digest,
            "rows": [self.r0, self.r1],
            "frames": self.n_frames,
            "cols": self.info.n_cols,
            "dtype": self.dtype.str,
        }

    def frames_done(self) -> int:
        """Frames already in the scratch file (0 when it is absent or from another scan)."""
        if not (self.json_path.is_file() and self.bin_path.is_file()):
            return 0
        try:
            state = read_json(self.json_path)
        except (OSError, ValueError):
            return 0
        if state.get("key") != self._key() or self.bin_path.stat().st_size != self.nbytes:
            return 0
        return int(state.get("frames_done", 0))

    def build(self, log: Any = None) -> dict:
        """Fill the scratch file (continuing a killed build); returns counts for the log."""
        import time

        t0 = time.perf_counter()
        self.folder.mkdir(parents=True, exist_ok=True)
        done = self.frames_done()
        start = done
        if done == 0:
            with open(self.bin_path, "wb") as fh:
                fh.truncate(self.nbytes)
        if done < self.n_frames:
            self._fill(done, log)
        return {
            "frames": self.n_frames,
            "resumed_at_frame": start,
            "bytes": self.nbytes,
            "seconds": round(time.perf_counter() - t0, 3),
        }

    def _fill(self, done: int, log: Any) -> None:
        n_rows, n_cols = self.r1 - self.r0, self.info.n_cols
        frame_bytes = n_rows * n_cols * self.dtype.itemsize
        f = _open_h5(self.scan)
        fd = os.open(self.bin_path, os.O_WRONLY)
        try:
            with f:
                offset = 0
                for key, count in zip((DATA, FLAT, DARK), self.counts, strict=True):
                    ds = f[key]
                    along = ds.chunks[0] if ds.chunks else 1
                    per_block = max(1, (self.memory_budget_mb * 2**20) // (2 * frame_bytes))
                    per_block = max(along, per_block // along * along)
                    first = max(0, done - offset)
                    first -= first % along  # restart at a chunk boundary
                    for a in range(first, count, per_block):
                        b = min(a + per_block, count)
                        block = np.asarray(ds[a:b, self.r0 : self.r1, :], dtype=self.dtype)
                        sino = np.ascontiguousarray(block.transpose(1, 0, 2))  # (rows, b-a, cols)
                        del block
                        item = self.dtype.itemsize
                        for r in range(n_rows):
                            pos = ((r * self.n_frames) + offset + a) * n_cols * item
                            os.pwrite(fd, sino[r], pos)
                        del sino
                        os.fsync(fd)  # ENOSPC surfaces here at the latest
                        write_json(self.json_path, {"key": self._key(), "frames_done": offset + b})
                        if log is not None:
                            log(offset + b, self.n_frames)
                    offset += count
        except OSError as exc:
            full = no_space_error(exc, self.bin_path)
            if full is not None:
                raise full from exc
            raise DataError(
                f"{self.scan}: cannot read HDF5 data (truncated or corrupt?): {exc}"
            ) from exc
        finally:
            os.close(fd)

    def read(self, a: int, b: int) -> Projections:
        """Detector rows ``[a, b)`` (absolute, inside the scratch's range) as `read_dxchange`
        returns them, with the same checks; the scratch must be complete."""
        if not (self.r0 <= a < b <= self.r1):
            raise DataError(
                f"{self.bin_path}: rows [{a}, {b}) outside the scratch rows [{self.r0}, {self.r1})"
            )
        n_cols = self.info.n_cols
        per_row = self.n_frames * n_cols
        raw = np.fromfile(
            self.bin_path,
            dtype=self.dtype,
            count=(b - a) * per_row,
            offset=(a - self.r0) * per_row * self.dtype.itemsize,
        ).reshape(b - a, self.n_frames, n_cols)
        na, nf, _ = self.counts
        parts = []
        for lo, hi in ((0, na), (na, na + nf), (na + nf, self.n_frames)):
            parts.append(np.ascontiguousarray(raw[:, lo:hi].transpose(1, 0, 2), dtype=np.float32))
        del raw
        return _checked_projections(self.scan, *parts, self.info.theta, (a, b))


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
) -> None:
    """Reject counts that raw detector data cannot hold (on arrays already read).

    Raises
    ------
    DataError
        More than `MAX_NEGATIVE_FRACTION` of the projection, flat or dark values are negative
        (the file holds processed data, e.g. -log or normalised projections, not raw counts),
        or in most rows the mean projection minus dark exceeds 1.5 times the flat minus
        dark (projections brighter than the open beam: data and data_white swapped).
    """
    for key, arr in ((DATA, data), (FLAT, flat), (DARK, dark)):
        if arr.dtype.kind == "u":
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
    dark_row = dark.mean(axis=(0, 2), dtype=np.float64)
    beam_row = flat.mean(axis=(0, 2), dtype=np.float64) - dark_row
    signal_row = data.mean(axis=(0, 2), dtype=np.float64) - dark_row
    bright = (beam_row > 0) & (signal_row > 1.5 * beam_row)
    beam, signal = float(np.median(beam_row)), float(np.median(signal_row))
    if np.count_nonzero(bright) * 2 > bright.size:  # most rows
        raise DataError(
            f"{path}: {DATA} is brighter than {FLAT} in rows [{rows[0]}, {rows[1]}) (median "
            f"row {signal:.4g} vs {beam:.4g} counts above dark): transmission above 1, are "
            "data and data_white swapped? (if only a few detector rows are this bright, they "
            "are saturated: set recon.bad_rows: mask)"
        )


# --------------------------------------------------------------------------------------
# Slice stacks (float32 TIFF, 8-bit PNG)
# --------------------------------------------------------------------------------------


def slice_name(index: int, ext: str) -> str:
    """File name of slice `index`: ``slice_{index:05d}.{ext}`` (`ext` without the dot)."""
    return f"slice_{int(index):05d}.{ext.lstrip('.')}"


def write_tiff_slices(
    folder: str | os.PathLike, volume: np.ndarray, first_index: int = 0
) -> list[Path]:
    """Write `volume` (n, h, w) as float32 TIFFs ``slice_{first_index + i:05d}.tiff``.

    `folder` is created if needed; callers writing a rule output pass the temporary folder
    of `atomic_dir`. Returns the written paths in order.
    """
    folder = Path(folder)
    volume = np.asarray(volume)
    if volume.ndim == 2:
        volume = volume[None]
    if volume.ndim != 3:
        raise DataError(f"{folder}: expected a (n, h, w) volume, got shape {volume.shape}")
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(folder, any_name=True)  # slices of a killed chunk
    paths = []
    for i, img in enumerate(volume):
        path = folder / slice_name(first_index + i, "tiff")
        with atomic_file(path, clean=False) as tmp:
            tifffile.imwrite(tmp, np.ascontiguousarray(img, dtype=np.float32))
        paths.append(path)
    return paths


def _verify(folder: Path) -> None:
    """Check a folder output against its MANIFEST.json (DataError naming a missing/changed file)."""
    if folder.is_dir():
        verify_folder(folder)


def list_slices(folder: str | os.PathLike, ext: str | Sequence[str]) -> list[Path]:
    """Sorted ``slice_*.{ext}`` files in `folder` (`ext` one suffix or several, any case);
    DataError if there are none, or if the folder does not match its manifest."""
    folder = Path(folder)
    exts = [e.lstrip(".").lower() for e in ([ext] if isinstance(ext, str) else ext)]
    if not folder.is_dir():
        raise DataError(f"{folder}: slice folder does not exist")
    _verify(folder)
    paths = sorted(
        p for p in folder.glob("slice_*") if p.suffix.lower().lstrip(".") in exts and p.is_file()
    )
    if not paths:
        raise DataError(f"{folder}: no {' or '.join(f'slice_*.{e}' for e in exts)} files")
    return paths


def list_pngs(folder: str | os.PathLike) -> list[Path]:
    """Sorted PNG files of an image folder (any names); DataError if it is missing or empty."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    _verify(folder)
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png" and p.is_file())
    if not paths:
        raise DataError(f"{folder}: holds no PNG images")
    return paths


def read_tiff_stack(
    folder_or_paths: str | os.PathLike | Sequence[str | os.PathLike],
) -> np.ndarray:
    """Read 2D TIFF slices into a (n, h, w) float32 array.

    `folder_or_paths` is a folder (all ``slice_*.tiff``, sorted) or an explicit list of
    files (kept in the given order). DataError names any unreadable, non-2D or
    differently sized file.
    """
    if isinstance(folder_or_paths, str | os.PathLike):
        paths = list_slices(folder_or_paths, "tiff")
    else:
        paths = [Path(p) for p in folder_or_paths]
        if not paths:
            raise DataError("read_tiff_stack: empty list of TIFF files")
        for parent in sorted({p.parent for p in paths}):
            _verify(parent)
    stack: np.ndarray | None = None
    for i, path in enumerate(paths):
        img = read_tiff(path)
        if stack is None:
            stack = np.empty((len(paths), *img.shape), dtype=np.float32)
        elif img.shape != stack.shape[1:]:
            raise DataError(f"{path}: slice shape {img.shape} differs from {stack.shape[1:]}")
        stack[i] = img
    assert stack is not None
    return stack


def read_tiff(path: str | os.PathLike) -> np.ndarray:
    """One 2D TIFF slice as stored (no manifest check: the folder readers do that)."""
    import tifffile

    try:
        img = tifffile.imread(path)
    except (OSError, ValueError, tifffile.TiffFileError) as exc:
        if _denied(exc):
            raise DataError(permission_message(path)) from exc
        raise DataError(f"{path}: cannot read TIFF: {exc}") from exc
    if img.ndim != 2:
        raise DataError(f"{path}: expected a 2D slice, got shape {img.shape}")
    return img


def write_png(path: str | os.PathLike, img_uint8: np.ndarray) -> None:
    """Write a 2D uint8 (0..255) grayscale PNG, atomically."""
    path = Path(path)
    img = np.asarray(img_uint8)
    if img.dtype != np.uint8 or img.ndim != 2:
        raise DataError(f"{path}: PNG slices must be 2D uint8, got {img.dtype} {img.shape}")
    from PIL import Image

    with atomic_file(path) as tmp:
        Image.fromarray(img).save(tmp, format="PNG")


def read_png(path: str | os.PathLike) -> np.ndarray:
    """One PNG as 2D uint8 (colour converted to luminance; no manifest check: the folder
    readers do that)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "1", "P", "RGB", "RGBA", "LA"):
                raise DataError(f"{path}: PNG mode {im.mode} is not 8-bit")
            return np.asarray(im if im.mode == "L" else im.convert("L"), dtype=np.uint8)
    except (OSError, SyntaxError) as exc:  # Pillow signals broken files with these
        if _denied(exc):
            raise DataError(permission_message(path)) from exc
        raise DataError(f"{path}: cannot read PNG: {exc}") from exc


def read_png_stack(folder: str | os.PathLike, names: list[str] | None = None) -> np.ndarray:
    """Read grayscale PNG slices into a (n, h, w) uint8 array.

    Parameters
    ----------
    folder : path-like
        Folder of ``slice_*.png`` files.
    names : list of str, optional
        File names inside `folder` to read, in this order (e.g. a split manifest's list);
        ``None`` reads all ``slice_*.png``, sorted. Colour images are converted to
        luminance.

    Raises
    ------
    DataError
        Missing, unreadable or non-8-bit files, or a size different from the first file's.
    """
    folder = Path(folder)
    if names is None:
        paths = list_slices(folder, "png")
    else:
        paths = [folder / n for n in names]
        if not paths:
            raise DataError(f"{folder}: empty list of PNG names")
        _verify(folder)
    stack: np.ndarray | None = None
    for i, path in enumerate(paths):
        if not path.is_file():
            raise DataError(f"{path}: PNG slice does not exist")
        img = read_png(path)
        if stack is None:
            stack = np.empty((len(paths), *img.shape), dtype=np.uint8)
        elif img.shape != stack.shape[1:]:
            raise DataError(f"{path}: image size {img.shape} differs from {stack.shape[1:]}")
        stack[i] = img
    assert stack is not None
    return stack

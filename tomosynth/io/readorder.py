# SPDX-License-Identifier: BSD-3-Clause
"""Scan identity and HDF5 read order (chunked / compressed Tomobank files): layout,
content digest, row-read plan, and the sinogram-order scratch copy."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tomosynth.errors import DataError
from tomosynth.io.atomic import no_space_error
from tomosynth.io.dxchange import (
    DARK,
    DATA,
    FLAT,
    Projections,
    _checked_projections,
    _inspect_open,
    _open_h5,
    inspect_dxchange,
)
from tomosynth.io.h5chunks import read_block
from tomosynth.io.jsonio import read_json, write_json


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
    every HDF5 chunk is decompressed exactly once (gzip chunks by `read_block`'s fast path,
    on `threads` threads); after each block the file is synced and
    ``sino.json`` records how many frames are done, so a killed build continues from there
    (only when the scan digest and row range still match).

    Costs: disk ``rows x frames x cols x itemsize`` (the uncompressed scan; uint16 counts
    stay uint16). Peak memory of `build`: the block read from HDF5 plus its transposed copy,
    ``memory_budget_mb`` together (at least two HDF5 chunks' frames), plus the chunks
    being decoded (at most `tomosynth.io.h5chunks.DECODE_BYTES`; measured with the copy's
    reads: 130-132 MB growth at 128 MB on a 2048-wide gzip file with 1 and 2 threads,
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
        threads: int = 1,
    ) -> None:
        self.folder = Path(folder)
        self.threads = max(1, int(threads))
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
                        block = read_block(ds, (a, b), (self.r0, self.r1), self.dtype, self.threads)
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

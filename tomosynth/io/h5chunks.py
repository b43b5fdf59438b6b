# SPDX-License-Identifier: BSD-3-Clause
"""Reading a row range of a gzip-chunked HDF5 dataset without HDF5's filter pipeline.

`read_rows` returns ``ds[:, r0:r1, :]`` as float32, and `read_block` returns
``ds[fa:fb, r0:r1, :]`` in a given dtype (the blocks of the sinogram scratch copy). When the
dataset's filter pipeline is exactly deflate (gzip), optionally after byte shuffle, as
`tomosynth.io.write_dxchange` and many beamlines write it, the raw chunks are read with
``read_direct_chunk`` and inflated with ISA-L (`isal.isal_zlib`, 2-3x faster than zlib;
zlib where the package is missing), the shuffle is undone in NumPy and the values cast
straight into the output. At 2048 columns and 1,500 angles HDF5's own gzip read was the
largest step around the reconstruction kernel (44 ms of CPU per slice against 19 ms
uncompressed; docs/performance.md). Any other layout or filter (lzf, szip, fletcher32,
plugins, a chunk stored with a filter skipped, a chunk never written) reads through h5py,
which also reports any damage.

With ``threads > 1`` the chunks are decoded on that many threads (ISA-L, zlib and NumPy's
copies release the GIL; h5py serialises the raw reads itself). Each chunk fills its own
region of the output, so the result does not depend on the thread count. (One thread
inflating every chunk would leave a 16-thread job's kernel waiting on one core.) Each
decoding thread holds about three copies of a chunk (raw, inflated, unshuffled), so the
threads are capped at ``DECODE_BYTES`` in all: 4 threads for Tomobank's 8 MiB chunks of
one 2048^2 projection, 16 for 2 MiB chunks (`tomosynth.recon.recon_memory_bound_mb`
counts it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

try:  # ISA-L's inflate: same format and API as zlib, 2-3x faster
    from isal import isal_zlib as _zlib
except ImportError:  # pragma: no cover - depends on the environment
    import zlib as _zlib

from tomosynth.io.threads import run_threads

if TYPE_CHECKING:
    import h5py

__all__ = ["INFLATE", "fast_filters", "read_block", "read_rows"]

#: The inflate implementation in use (``isal.isal_zlib`` or ``zlib``).
INFLATE = _zlib.__name__

#: Most bytes that the threads of one read hold in chunk buffers (three per thread).
DECODE_BYTES = 96 * 2**20


class _Fallback(Exception):
    """A chunk the fast path does not handle: read the dataset through h5py instead."""


def fast_filters(ds: h5py.Dataset) -> bool | None:
    """Whether `ds` can be read by the fast path: ``None`` when not, else whether its
    chunks are byte-shuffled before deflate (native-order numbers, 3D, chunked)."""
    from h5py import h5z

    if ds.chunks is None or ds.ndim != 3 or ds.dtype.kind not in "uif" or not ds.dtype.isnative:
        return None
    dcpl = ds.id.get_create_plist()
    pipeline = [dcpl.get_filter(i)[0] for i in range(dcpl.get_nfilters())]
    if pipeline == [h5z.FILTER_DEFLATE]:
        return False
    if pipeline == [h5z.FILTER_SHUFFLE, h5z.FILTER_DEFLATE]:
        return True
    return None


def _chunk_values(ds: h5py.Dataset, offset: tuple[int, ...], shuffled: bool) -> np.ndarray:
    """The chunk of `ds` at `offset`, decoded, in the chunk's full shape."""
    shape = tuple(int(c) for c in ds.chunks)
    itemsize = ds.dtype.itemsize
    nbytes = int(np.prod(shape)) * itemsize
    try:
        mask, raw = ds.id.read_direct_chunk(offset)
    except Exception as exc:  # a chunk never written (fill value), or unreadable
        raise _Fallback from exc
    if mask:  # a filter was skipped for this chunk
        raise _Fallback
    try:
        buf = _zlib.decompress(raw, bufsize=nbytes)
    except Exception as exc:  # damaged: h5py's read reports it
        raise _Fallback from exc
    if len(buf) != nbytes:
        raise _Fallback
    flat = np.frombuffer(buf, dtype=np.uint8)
    if shuffled and itemsize > 1:
        # HDF5's shuffle stores byte k of every element together: undo it, one byte plane
        # at a time (10x faster than a transposed copy)
        planes = flat.reshape(itemsize, -1)
        flat = np.empty((planes.shape[1], itemsize), dtype=np.uint8)
        for k in range(itemsize):
            flat[:, k] = planes[k]
    return flat.view(ds.dtype).reshape(shape)


def _chunk_offsets(
    ds: h5py.Dataset, frames: tuple[int, int], rows: tuple[int, int]
) -> list[tuple[int, int, int]]:
    """Offsets of every chunk that frames ``[fa, fb)`` and rows ``[r0, r1)`` touch, in
    storage order."""
    cf, cr, cc = (int(c) for c in ds.chunks)
    (fa, fb), (r0, r1) = frames, rows
    return [
        (f0, g0, c0)
        for f0 in range(fa - fa % cf, fb, cf)
        for g0 in range(r0 - r0 % cr, r1, cr)
        for c0 in range(0, ds.shape[2], cc)
    ]


def _read_fast(
    ds: h5py.Dataset,
    frames: tuple[int, int],
    rows: tuple[int, int],
    out: np.ndarray,
    shuffled: bool,
    threads: int = 1,
) -> None:
    """Every chunk that `frames` x `rows` touch, inflated on `threads` threads, cast into
    its own region of `out`."""
    cols = ds.shape[2]
    cf, cr, cc = (int(c) for c in ds.chunks)
    (fa, fb), (r0, r1) = frames, rows

    def place(offset: tuple[int, int, int]) -> None:
        f0, g0, c0 = offset
        f1, c1 = min(f0 + cf, fb), min(c0 + cc, cols)
        e0, a, b = max(fa, f0), max(r0, g0), min(r1, g0 + cr)
        chunk = _chunk_values(ds, offset, shuffled)
        out[e0 - fa : f1 - fa, a - r0 : b - r0, c0:c1] = chunk[
            e0 - f0 : f1 - f0, a - g0 : b - g0, : c1 - c0
        ]

    offsets = _chunk_offsets(ds, frames, rows)
    chunk_bytes = cf * cr * cc * ds.dtype.itemsize
    run_threads(place, offsets, min(threads, DECODE_BYTES // (3 * chunk_bytes)), "inflate")


def read_block(
    ds: h5py.Dataset,
    frames: tuple[int, int],
    rows: tuple[int, int],
    dtype: np.dtype | type = np.float32,
    threads: int = 1,
) -> np.ndarray:
    """``ds[fa:fb, r0:r1, :]`` as `dtype`, by the fast path when the filters allow it (see
    the module docstring), else by h5py. `threads` decode chunks in parallel (fast path
    only; the values do not depend on it).

    Raises
    ------
    OSError
        From h5py, for a damaged or unreadable dataset.
    """
    (fa, fb), (r0, r1) = (int(frames[0]), int(frames[1])), (int(rows[0]), int(rows[1]))
    out = np.empty((fb - fa, r1 - r0, ds.shape[2]), dtype=dtype)
    shuffled = fast_filters(ds)
    if shuffled is not None:
        try:
            _read_fast(ds, (fa, fb), (r0, r1), out, shuffled, max(1, int(threads)))
            return out
        except _Fallback:
            pass
    ds.read_direct(out, np.s_[fa:fb, r0:r1, :])
    return out


def read_rows(ds: h5py.Dataset, r0: int, r1: int, threads: int = 1) -> np.ndarray:
    """``ds[:, r0:r1, :]`` as float32: `read_block` of every frame."""
    return read_block(ds, (0, ds.shape[0]), (r0, r1), np.float32, threads)

"""The gzip fast path of `tomosynth.io.h5chunks` against h5py's own read (the oracle)."""

from __future__ import annotations

import threading
import time
import zlib

import h5py
import numpy as np
import pytest

from tomosynth.io import h5chunks
from tomosynth.io.h5chunks import fast_filters, read_block, read_rows


def _dataset(path, arr, **kw):
    with h5py.File(path, "w") as f:
        f.create_dataset("d", data=arr, **kw)


def _counts(dtype, shape=(37, 21, 19), seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.normal(1000.0, 50.0, shape).astype(dtype)
    return rng.integers(0, 60000 if np.dtype(dtype).itemsize > 1 else 250, shape).astype(dtype)


def _no_h5py_read(monkeypatch):
    """Make h5py's read fail, so a passing test proves the fast path did the reading."""

    def refuse(*args, **kwargs):
        raise AssertionError("read through h5py instead of the fast path")

    monkeypatch.setattr(h5py.Dataset, "read_direct", refuse)


@pytest.mark.parametrize("dtype", ["uint16", "int32", "float32", "uint8", "float64"])
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("rows", [(0, 21), (3, 11), (8, 9), (14, 21)])
@pytest.mark.parametrize("threads", [1, 3])
def test_fast_path_equals_h5py(tmp_path, monkeypatch, dtype, shuffle, rows, threads):
    arr = _counts(dtype)
    path = tmp_path / "s.h5"
    # edge chunks in every axis (37 = 3 * 10 + 7 frames, 21 rows, 19 columns)
    _dataset(path, arr, chunks=(10, 4, 8), compression="gzip", compression_opts=1, shuffle=shuffle)
    with h5py.File(path, "r") as f:
        ds = f["d"]
        assert fast_filters(ds) is shuffle
        expected = ds[:, rows[0] : rows[1], :].astype(np.float32)
        _no_h5py_read(monkeypatch)
        got = read_rows(ds, *rows, threads=threads)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got, arr[:, rows[0] : rows[1]].astype(np.float32))


@pytest.mark.parametrize("frames", [(0, 37), (3, 29), (10, 20), (36, 37)])
@pytest.mark.parametrize("dtype", ["uint16", "float32"])
@pytest.mark.parametrize("threads", [1, 3])
def test_block_of_frames_equals_h5py(tmp_path, monkeypatch, frames, dtype, threads):
    arr = _counts("uint16")
    path = tmp_path / "s.h5"
    _dataset(path, arr, chunks=(10, 4, 8), compression="gzip", shuffle=True)
    with h5py.File(path, "r") as f:
        expected = f["d"][frames[0] : frames[1], 5:18, :].astype(dtype)
        _no_h5py_read(monkeypatch)
        got = read_block(f["d"], frames, (5, 18), dtype, threads=threads)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, expected)


def test_chunks_are_decoded_on_the_threads_asked(tmp_path, monkeypatch):
    arr = _counts("uint16", shape=(64, 8, 19))
    path = tmp_path / "s.h5"
    _dataset(path, arr, chunks=(4, 8, 19), compression="gzip", shuffle=True)  # 16 chunks
    decode = h5chunks._chunk_values
    seen: set[int] = set()

    def slow_decode(*args):
        seen.add(threading.get_ident())
        time.sleep(0.01)  # long enough that one thread cannot take every chunk
        return decode(*args)

    monkeypatch.setattr(h5chunks, "_chunk_values", slow_decode)
    with h5py.File(path, "r") as f:
        got = read_rows(f["d"], 1, 7, threads=3)
    np.testing.assert_array_equal(got, arr[:, 1:7].astype(np.float32))
    assert len(seen) == 3 and threading.get_ident() not in seen
    seen.clear()
    with h5py.File(path, "r") as f:
        read_rows(f["d"], 1, 7)  # default: one thread, the caller's
    assert seen == {threading.get_ident()}


def test_decoding_threads_are_capped_by_the_chunk_buffers(tmp_path, monkeypatch):
    """Each decoding thread holds ~3 chunk buffers: no more threads than DECODE_BYTES allows."""
    arr = _counts("uint16", shape=(64, 8, 19))
    path = tmp_path / "s.h5"
    _dataset(path, arr, chunks=(4, 8, 19), compression="gzip", shuffle=True)  # 16 chunks
    chunk_bytes = 4 * 8 * 19 * 2
    monkeypatch.setattr(h5chunks, "DECODE_BYTES", 2 * 3 * chunk_bytes)  # room for 2 threads
    decode = h5chunks._chunk_values
    seen: set[int] = set()

    def slow_decode(*args):
        seen.add(threading.get_ident())
        time.sleep(0.01)
        return decode(*args)

    monkeypatch.setattr(h5chunks, "_chunk_values", slow_decode)
    with h5py.File(path, "r") as f:
        got = read_rows(f["d"], 0, 8, threads=8)
    np.testing.assert_array_equal(got, arr.astype(np.float32))
    assert len(seen) == 2


def test_zlib_without_isal_equals_h5py(tmp_path, monkeypatch):
    arr = _counts("uint16")
    path = tmp_path / "s.h5"
    _dataset(path, arr, chunks=(8, 5, 19), compression="gzip", shuffle=True)
    monkeypatch.setattr(h5chunks, "_zlib", zlib)
    with h5py.File(path, "r") as f:
        got = read_rows(f["d"], 2, 17)
    np.testing.assert_array_equal(got, arr[:, 2:17].astype(np.float32))


@pytest.mark.parametrize(
    "kw",
    [
        {"chunks": (8, 4, 19), "compression": "lzf"},
        {"chunks": (8, 4, 19), "compression": "gzip", "fletcher32": True},
        {"chunks": (8, 4, 19), "shuffle": True},  # shuffle alone
        {"chunks": (8, 4, 19)},  # chunked, no filter
        {},  # contiguous
    ],
)
def test_other_layouts_fall_back_to_h5py(tmp_path, kw):
    arr = _counts("uint16")
    path = tmp_path / "s.h5"
    _dataset(path, arr, **kw)
    with h5py.File(path, "r") as f:
        assert fast_filters(f["d"]) is None
        got = read_rows(f["d"], 5, 13)
    np.testing.assert_array_equal(got, arr[:, 5:13].astype(np.float32))


def test_big_endian_falls_back(tmp_path):
    arr = _counts("uint16").astype(">u2")
    path = tmp_path / "s.h5"
    _dataset(path, arr, chunks=(8, 4, 19), compression="gzip", shuffle=True)
    with h5py.File(path, "r") as f:
        assert fast_filters(f["d"]) is None
        got = read_rows(f["d"], 0, 21)
    np.testing.assert_array_equal(got, arr.astype(np.float32))


def test_unwritten_chunks_read_their_fill_value(tmp_path):
    path = tmp_path / "s.h5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset(
            "d",
            shape=(16, 8, 10),
            dtype="uint16",
            chunks=(8, 4, 10),
            compression="gzip",
            fillvalue=7,
        )
        ds[:8] = 3  # frames 8..15 never written: no chunk stored
    expected = np.full((16, 4, 10), 7, np.float32)
    expected[:8] = 3
    for threads in (1, 2):
        with h5py.File(path, "r") as f:
            got = read_rows(f["d"], 2, 6, threads=threads)
        np.testing.assert_array_equal(got, expected)


def test_damaged_chunk_reads_through_h5py_and_raises(tmp_path):
    arr = _counts("uint16", shape=(8, 4, 64))
    path = tmp_path / "s.h5"
    _dataset(path, arr, chunks=(8, 4, 64), compression="gzip")
    with h5py.File(path, "r") as f:
        offset = f["d"].id.get_chunk_info(0).byte_offset
    raw = bytearray(path.read_bytes())
    raw[offset + 10 : offset + 40] = b"\xff" * 30
    path.write_bytes(bytes(raw))
    for threads in (1, 2):
        with h5py.File(path, "r") as f, pytest.raises(OSError):
            read_rows(f["d"], 0, 4, threads=threads)

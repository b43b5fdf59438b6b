"""HDF5 read order: layout detection, the sinogram-ordered scratch copy, scan digests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from tomosynth.errors import DataError
from tomosynth.io import (
    H5Layout,
    SinogramScratch,
    h5_layout,
    plan_row_reads,
    read_dxchange,
    scan_digest,
)

REPO = Path(__file__).resolve().parents[2]


def _write(
    path: Path,
    n_angles: int = 20,
    rows: int = 12,
    cols: int = 24,
    chunks: tuple | None = "projection",
    compression: str | None = "gzip",
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """A DXchange file written with plain h5py in the given layout; returns its arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        "data": rng.integers(500, 4000, (n_angles, rows, cols), dtype=np.uint16),
        "data_white": rng.integers(4000, 4200, (3, rows, cols), dtype=np.uint16),
        "data_dark": rng.integers(90, 110, (2, rows, cols), dtype=np.uint16),
    }
    with h5py.File(path, "w") as f:
        for name, arr in arrays.items():
            kw = {}
            if chunks == "projection":
                kw["chunks"] = (1, rows, cols)
            elif chunks is not None:
                kw["chunks"] = tuple(min(c, n) for c, n in zip(chunks, arr.shape, strict=True))
            if compression is not None:
                kw["compression"] = compression
            f.create_dataset(f"/exchange/{name}", data=arr, **kw)
        f.create_dataset("/exchange/theta", data=np.linspace(0, 180, n_angles, endpoint=False))
    return arrays


def test_h5_layout_detects_chunks_and_compression(tmp_path):
    _write(tmp_path / "gz.h5")
    _write(tmp_path / "raw.h5", chunks=None, compression=None)
    _write(tmp_path / "lzf.h5", chunks=(4, 6, 24), compression="lzf")
    assert h5_layout(tmp_path / "gz.h5") == H5Layout((1, 12, 24), "gzip", "uint16")
    assert h5_layout(tmp_path / "raw.h5") == H5Layout(None, None, "uint16")
    assert h5_layout(tmp_path / "lzf.h5") == H5Layout((4, 6, 24), "lzf", "uint16")


@pytest.mark.parametrize(
    ("layout", "rows", "chunk_rows", "mode"),
    [
        (H5Layout(None, None, "uint16"), 2048, 16, "direct"),
        (H5Layout((1, 2048, 2048), None, "uint16"), 2048, 16, "direct"),  # raw: partial I/O
        (H5Layout((1, 2048, 2048), "gzip", "uint16"), 2048, 16, "transpose"),
        (H5Layout((32, 16, 2048), "gzip", "uint16"), 2048, 16, "direct"),
        (H5Layout((1, 32, 2048), "gzip", "uint16"), 2048, 16, "direct"),  # 2 passes: fine
        (H5Layout((1, 64, 2048), "gzip", "uint16"), 2048, 16, "transpose"),
        (H5Layout((1, 2048, 2048), "gzip", "uint16"), 20, 16, "direct"),  # range < 2 chunks
    ],
)
def test_plan_row_reads(layout, rows, chunk_rows, mode):
    got, reason = plan_row_reads(layout, rows, chunk_rows)
    assert got == mode, reason
    assert reason


def _scratch(tmp_path: Path, scan: Path, rows=(0, 12), budget: int = 1) -> SinogramScratch:
    return SinogramScratch(tmp_path / "scratch", scan, rows, scan_digest(scan), budget)


@pytest.mark.parametrize("rows", [(0, 12), (3, 10)])
def test_scratch_reads_equal_the_file(tmp_path, rows):
    scan = tmp_path / "scan.h5"
    arrays = _write(scan)
    scratch = _scratch(tmp_path, scan, rows)
    stats = scratch.build()
    assert stats["frames"] == 25 and stats["resumed_at_frame"] == 0
    assert scratch.bin_path.stat().st_size == (rows[1] - rows[0]) * 25 * 24 * 2  # uint16 kept
    for a, b in [(rows[0], rows[0] + 1), (rows[0] + 1, rows[1]), rows]:
        got = scratch.read(a, b)
        assert got.rows == (a, b)
        for key, arr in (("data", got.data), ("data_white", got.flat), ("data_dark", got.dark)):
            assert arr.dtype == np.float32 and arr.flags.c_contiguous
            np.testing.assert_array_equal(arr, arrays[key][:, a:b, :].astype(np.float32))
        direct = read_dxchange(scan, rows=(a, b))
        np.testing.assert_array_equal(got.data, direct.data)
        np.testing.assert_array_equal(got.theta, direct.theta)
    with pytest.raises(DataError, match="outside the scratch rows"):
        scratch.read(rows[0], rows[1] + 1)


def test_scratch_reads_every_hdf5_chunk_once(tmp_path, monkeypatch):
    """The copy asks for blocks of whole chunks, each frame exactly once."""
    from tomosynth.io import readorder

    scan = tmp_path / "scan.h5"
    _write(scan, n_angles=23, chunks=(2, 12, 24))
    selections: list[tuple[str, int, int]] = []
    original = readorder.read_block

    def spy(ds, frames, rows, dtype, threads):
        selections.append((ds.name, *frames))
        return original(ds, frames, rows, dtype, threads)

    monkeypatch.setattr(readorder, "read_block", spy)
    # budget 1 MB with 576-byte frames would allow ~900 frames per block: force small blocks
    scratch = _scratch(tmp_path, scan)
    scratch.memory_budget_mb = 0
    scratch.build()
    monkeypatch.undo()
    for name, n in (("/exchange/data", 23), ("/exchange/data_white", 3)):
        spans = sorted((a, b) for ds, a, b in selections if ds == name)
        covered = [i for a, b in spans for i in range(a, b)]
        assert covered == list(range(n)), (name, spans)  # each frame once, none twice
        assert all(a % 2 == 0 for a, _ in spans), spans  # blocks start on chunk boundaries


@pytest.mark.parametrize("threads", [1, 3])
def test_scratch_inflates_gzip_chunks_itself_on_its_threads(tmp_path, monkeypatch, threads):
    """gzip chunks go through `read_block`'s fast path (never h5py's read), on `threads`."""
    import threading

    from tomosynth.io import h5chunks

    scan = tmp_path / "scan.h5"
    arrays = _write(scan, n_angles=23, chunks=(2, 5, 24))  # edge chunks in frames and rows
    decode, seen = h5chunks._chunk_values, set()

    def recorded(*args):
        seen.add(threading.get_ident())
        return decode(*args)

    def refuse(*args, **kwargs):
        raise AssertionError("read through h5py instead of the fast path")

    getitem = h5py.Dataset.__getitem__

    def only_small(self, key):  # theta and attributes, not frames
        if isinstance(key, tuple) and key and isinstance(key[0], slice):
            refuse()
        return getitem(self, key)

    digest = scan_digest(scan)
    monkeypatch.setattr(h5chunks, "_chunk_values", recorded)
    monkeypatch.setattr(h5py.Dataset, "read_direct", refuse)
    monkeypatch.setattr(h5py.Dataset, "__getitem__", only_small)
    scratch = SinogramScratch(tmp_path / "s", scan, (3, 11), digest, 0, threads=threads)
    scratch.build()
    monkeypatch.undo()
    got = scratch.read(3, 11)
    for key, arr in (("data", got.data), ("data_white", got.flat), ("data_dark", got.dark)):
        np.testing.assert_array_equal(arr, arrays[key][:, 3:11].astype(np.float32))
    assert (len(seen) > 1) == (threads > 1)


def test_scratch_build_resumes_and_rejects_other_scans(tmp_path):
    scan = tmp_path / "scan.h5"
    arrays = _write(scan)
    scratch = _scratch(tmp_path, scan)
    scratch.build()
    # a build killed after 7 frames: the marker says 7, later bytes are garbage
    state = json.loads(scratch.json_path.read_text())
    state["frames_done"] = 7
    scratch.json_path.write_text(json.dumps(state))
    raw = np.memmap(scratch.bin_path, dtype=np.uint16, mode="r+", shape=(12, 25, 24))
    raw[:, 7:] = 0
    raw.flush()
    del raw
    assert scratch.frames_done() == 7
    stats = scratch.build()
    assert stats["resumed_at_frame"] == 7
    np.testing.assert_array_equal(scratch.read(0, 12).data, arrays["data"].astype(np.float32))
    # the same folder for another scan (other digest) or row range starts from scratch
    assert SinogramScratch(scratch.folder, scan, (0, 12), "0" * 64).frames_done() == 0
    assert SinogramScratch(scratch.folder, scan, (1, 12), scratch.digest).frames_done() == 0


def test_scan_digest_tracks_content_and_time(tmp_path):
    scan = tmp_path / "scan.h5"
    _write(scan)
    d0 = scan_digest(scan)
    assert scan_digest(scan) == d0 and len(d0) == 64
    st = scan.stat()
    os.utime(scan, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    d1 = scan_digest(scan)
    assert d1 != d0  # touched: treated as possibly changed
    _write(scan, seed=1)  # other counts, same layout and size
    os.utime(scan, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert scan_digest(scan) not in (d0, d1)
    with pytest.raises(DataError, match="does not exist"):
        scan_digest(tmp_path / "missing.h5")


def test_scratch_build_peak_memory_is_bounded(tmp_path):
    """Copying a 96 MB per-projection gzip file holds about the budget, not the scan."""
    scan = tmp_path / "big.h5"
    ramp = np.add.outer(np.arange(128), np.arange(512)).astype(np.uint16)  # compresses fast
    with h5py.File(scan, "w") as f:
        kw = dict(chunks=(1, 128, 512), compression="gzip", compression_opts=1)
        ds = f.create_dataset("/exchange/data", shape=(768, 128, 512), dtype=np.uint16, **kw)
        for a in range(0, 768, 64):
            ds[a : a + 64] = ramp[None] + np.arange(a, a + 64, dtype=np.uint16)[:, None, None]
        f.create_dataset("/exchange/data_white", data=np.full((2, 128, 512), 4000, np.uint16))
        f.create_dataset("/exchange/data_dark", data=np.full((2, 128, 512), 100, np.uint16))
        f.create_dataset("/exchange/theta", data=np.linspace(0, 180, 768, endpoint=False))
    code = textwrap.dedent(
        f"""
        import json, sys
        from pathlib import Path
        from tomosynth.io import SinogramScratch, scan_digest
        from tomosynth.recon import _peak_rss_mb
        def rss():
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        scan = Path({str(scan)!r})
        s = SinogramScratch(Path({str(tmp_path)!r}) / "s", scan, (0, 128), scan_digest(scan), 16)
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        before = rss()
        s.build()
        print(json.dumps({{"growth": _peak_rss_mb() - before}}))
        """
    )
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux /proc to reset the peak RSS")
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stderr
    growth = json.loads(proc.stdout.strip().splitlines()[-1])["growth"]
    # budget 16 MB (block + transposed copy) plus HDF5's chunk cache and allocator slack;
    # reading the whole dataset at once would need 96 MB
    assert growth < 48, f"peak RSS grew by {growth:.1f} MB"

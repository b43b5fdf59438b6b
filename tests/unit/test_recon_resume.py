"""Resuming `reconstruct_scan` after a kill: finished chunks reused only when provenance matches.

A real run is started in a subprocess and killed with SIGKILL once some chunks are finished
(a short sleep after each chunk's FBP gives the test time to catch it mid-run); the rerun
must reuse those chunks and produce the same bytes as a run that was never interrupted.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from tomosynth import recon
from tomosynth.errors import DataError
from tomosynth.recon import backends

REPO = Path(__file__).resolve().parents[2]
ROWS, COLS, ANGLES, CHUNK = 24, 48, 61, 2
N_CHUNKS = ROWS // CHUNK
KW = dict(backend="torch", device="cpu", chunk_rows=CHUNK, threads=1)


def _write_scan(path: Path, layout: str) -> None:
    """Beer-Lambert scan of an asymmetric object, in the given HDF5 layout."""
    yy, xx = np.mgrid[:COLS, :COLS] + 0.5 - COLS / 2
    base = ((xx**2 + yy**2) < (0.4 * COLS) ** 2) * 0.02
    base = base + (((xx - 6) ** 2 + (yy + 9) ** 2) < 25) * 0.05  # off-centre marker
    vol = np.stack([np.roll(base, k, axis=0) for k in range(ROWS)]).astype(np.float32)
    theta = np.linspace(0.0, np.pi, ANGLES)
    line = recon.forward_project(vol, theta, center=24.0, device="cpu")
    counts = np.round(100 + 3900 * np.exp(-line)).astype(np.uint16)
    kw = {}
    if layout == "gzip-per-projection":  # Tomobank-like: the scratch copy is used
        kw = dict(chunks=(1, ROWS, COLS), compression="gzip")
    with h5py.File(path, "w") as f:
        f.create_dataset("/exchange/data", data=counts, **kw)
        f.create_dataset("/exchange/data_white", data=np.full((3, ROWS, COLS), 4000, np.uint16))
        f.create_dataset("/exchange/data_dark", data=np.full((2, ROWS, COLS), 100, np.uint16))
        f.create_dataset("/exchange/theta", data=np.rad2deg(theta))


_KILLED_RUN = textwrap.dedent(
    """
    import sys, time
    from tomosynth import recon
    from tomosynth.recon import chunks
    fbp = chunks.fbp
    def slow_fbp(*args, **kwargs):  # a slow backend, so the test can kill mid-run
        out = fbp(*args, **kwargs)
        time.sleep(0.3)
        return out
    chunks.fbp = slow_fbp  # where reconstruct_scan looks it up
    recon.reconstruct_scan(sys.argv[1], sys.argv[2], backend="torch", device="cpu",
                           chunk_rows=int(sys.argv[3]), threads=1)
    """
)


def _kill_mid_run(scan: Path, out: Path, min_chunks: int = 3) -> int:
    """Run reconstruct_scan in a subprocess, SIGKILL it after `min_chunks` chunks."""
    markers = out.parent / f".{out.name}.partial" / "chunks"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_RUN, str(scan), str(out), str(CHUNK)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if markers.is_dir() and len(list(markers.glob("rows_*.json"))) >= min_chunks:
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.02)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, (
        f"run was not killed mid-way (exit {proc.returncode}): {proc.stderr.read().decode()}"
    )
    assert not out.exists(), "a killed run must not publish its output"
    return len(list(markers.glob("rows_*.json")))


@pytest.fixture(scope="module", params=["gzip-per-projection", "contiguous"])
def killed(request, tmp_path_factory):
    """A scan, the partial folder of a killed run, and an uninterrupted run's output."""
    root = tmp_path_factory.mktemp(request.param)
    scan = root / "scan.h5"
    _write_scan(scan, request.param)
    n_markers = _kill_mid_run(scan, root / "killed")
    ref = root / "reference"
    recon.reconstruct_scan(scan, ref, **KW)
    return dict(
        scan=scan,
        partial=root / ".killed.partial",
        ref=ref,
        n_markers=n_markers,
        layout=request.param,
    )


def _resume_copy(killed: dict, tmp_path: Path) -> Path:
    """A copy of the killed run's partial folder beside a fresh output path; returns it."""
    out = tmp_path / "recon"
    shutil.copytree(killed["partial"], tmp_path / ".recon.partial")
    return out


def _slice_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("slice_*.tiff"))}


def test_killed_run_resumes_with_identical_bytes(killed, tmp_path, caplog):
    out = _resume_copy(killed, tmp_path)
    assert 3 <= killed["n_markers"] < N_CHUNKS
    with caplog.at_level(logging.INFO, logger="tomosynth.recon"):
        meta = recon.reconstruct_scan(killed["scan"], out, **KW)
    reused = meta["resume"]["reused_chunks"]
    assert reused == killed["n_markers"]  # every finished chunk, and only those
    assert meta["resume"]["chunks"] == N_CHUNKS
    assert meta["resume"]["computed_chunks"] == N_CHUNKS - reused
    assert meta["resume"]["center_cached"] is True  # the centre search is not repeated
    assert f"reusing {reused} of {N_CHUNKS} chunks" in caplog.text
    assert meta["read_order"]["mode"] == (
        "transpose" if killed["layout"] == "gzip-per-projection" else "direct"
    )
    ref = json.loads((killed["ref"] / "recon.json").read_text())
    assert meta["center"] == ref["center"]
    assert _slice_bytes(out) == _slice_bytes(killed["ref"])  # byte for byte
    assert len(_slice_bytes(out)) == ROWS
    # the output holds slices, recon.json and its manifest only; the partial folder is gone
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*_slice_bytes(out), "recon.json", "MANIFEST.json"]
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recon"]


def test_incomplete_chunk_is_recomputed(killed, tmp_path):
    out = _resume_copy(killed, tmp_path)
    partial = tmp_path / ".recon.partial"
    marker = sorted((partial / "chunks").glob("rows_*.json"))[1]
    a, _ = json.loads(marker.read_text())["rows"]
    tiff = partial / "slices" / f"slice_{a:05d}.tiff"
    tiff.write_bytes(tiff.read_bytes()[:100])  # as if killed while writing it
    meta = recon.reconstruct_scan(killed["scan"], out, **KW)
    assert meta["resume"]["reused_chunks"] == killed["n_markers"] - 1
    assert "1 incomplete or stale marker(s) dropped" in meta["resume"]["reason"]
    assert _slice_bytes(out) == _slice_bytes(killed["ref"])


@pytest.mark.parametrize("killed", ["contiguous"], indirect=True)  # one layout is enough
@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (dict(filter_name="shepp"), "filter changed ('ramlak' -> 'shepp')"),
        (dict(center=23.5), "center changed"),
        (dict(stripe_removal="median"), "stripe_removal changed ('none' -> 'median')"),
    ],
)
def test_changed_parameter_discards_partial_chunks(killed, tmp_path, caplog, change, reason):
    out = _resume_copy(killed, tmp_path)
    with caplog.at_level(logging.INFO, logger="tomosynth.recon"):
        meta = recon.reconstruct_scan(killed["scan"], out, **{**KW, **change})
    assert meta["resume"]["reused_chunks"] == 0
    assert reason in meta["resume"]["reason"] and reason in caplog.text
    assert f"reusing 0 of {N_CHUNKS} chunks" in caplog.text
    fresh = recon.reconstruct_scan(killed["scan"], tmp_path / "fresh", **{**KW, **change})
    assert fresh["resume"]["reason"] == "no partial results"
    assert _slice_bytes(out) == _slice_bytes(tmp_path / "fresh")
    assert _slice_bytes(out) != _slice_bytes(killed["ref"])  # the change did change the result


@pytest.mark.parametrize("killed", ["contiguous"], indirect=True)  # one layout is enough
def test_changed_scan_discards_partial_chunks(killed, tmp_path):
    scan = tmp_path / "scan.h5"
    shutil.copyfile(killed["scan"], scan)  # same bytes, new modification time
    out = _resume_copy(killed, tmp_path)
    meta = recon.reconstruct_scan(scan, out, **KW)
    assert meta["resume"]["reused_chunks"] == 0
    assert "scan_digest changed" in meta["resume"]["reason"]
    assert meta["resume"]["center_cached"] is False


def test_other_chunking_reuses_finished_rows(killed, tmp_path):
    """Finished rows count whatever chunking made them (results do not depend on it)."""
    out = _resume_copy(killed, tmp_path)
    meta = recon.reconstruct_scan(killed["scan"], out, **{**KW, "chunk_rows": 4})
    done_rows = killed["n_markers"] * CHUNK  # markers are the first chunks, in order
    assert meta["resume"]["reused_chunks"] == done_rows // 4 > 0
    assert _slice_bytes(out) == _slice_bytes(killed["ref"])


def test_shorter_range_publishes_only_its_slices(killed, tmp_path):
    out = _resume_copy(killed, tmp_path)
    meta = recon.reconstruct_scan(killed["scan"], out, **{**KW, "slices": (0, 4)})
    assert meta["resume"]["reused_chunks"] == 2
    ref = _slice_bytes(killed["ref"])
    assert _slice_bytes(out) == {k: v for k, v in ref.items() if k < "slice_00004"}


@pytest.mark.parametrize("killed", ["contiguous"], indirect=True)  # one layout is enough
def test_rerun_replaces_a_published_output(killed, tmp_path):
    out = tmp_path / "recon"
    shutil.copytree(killed["ref"], out)
    (out / "stray.txt").write_text("old")
    meta = recon.reconstruct_scan(killed["scan"], out, **{**KW, "slices": (0, 2)})
    assert meta["resume"]["reason"] == "no partial results"
    assert sorted(p.name for p in out.iterdir()) == [
        "MANIFEST.json",
        "recon.json",
        "slice_00000.tiff",
        "slice_00001.tiff",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recon"]


@pytest.mark.parametrize("killed", ["contiguous"], indirect=True)  # one layout is enough
def test_bad_input_deletes_the_partial_folder(killed, tmp_path):
    """DataError: the file must change before a rerun, so finished chunks are of no use."""
    scan = tmp_path / "scan.h5"
    shutil.copyfile(killed["scan"], scan)
    with h5py.File(scan, "r+") as f:
        data = f["/exchange/data"][()].astype(np.float32)
        data[:, 10:, :] = np.nan
        del f["/exchange/data"]
        f.create_dataset("/exchange/data", data=data)
    out = _resume_copy(killed, tmp_path)
    with pytest.raises(DataError, match="NaN"):
        recon.reconstruct_scan(scan, out, **{**KW, "center": 24.0})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.h5"]


def test_threads_never_change_the_callers_torch_setting():
    # `threads` sets the backend's worker threads (tests/unit/test_recon_threads.py); the
    # caller's torch thread count is the same inside and after the call, with or without it
    import torch

    rng = np.random.default_rng(0)
    sino = rng.random((30, 2, 32)).astype(np.float32)
    theta = np.linspace(0, np.pi, 30, endpoint=False)
    seen = []
    original = backends._fbp_torch  # looked up in recon.backends by `fbp`

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        backends._fbp_torch = spy
        one = recon.fbp(sino, theta, backend="torch", device="cpu", threads=1)
        after = torch.get_num_threads()
        unset = recon.fbp(sino, theta, backend="torch", device="cpu")
    finally:
        backends._fbp_torch = original
        torch.set_num_threads(before)
    assert seen == [2, 2]
    assert after == 2
    assert one.tobytes() == unset.tobytes()  # bit-identical whatever the threads


def test_scratch_copy_skipped_when_the_disk_lacks_space(tmp_path, monkeypatch, caplog):
    scan = tmp_path / "scan.h5"
    _write_scan(scan, "gzip-per-projection")
    kw = {**KW, "center": 24.0}
    ref = recon.reconstruct_scan(scan, tmp_path / "ref", **kw)
    assert ref["read_order"]["mode"] == "transpose"
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage._replace(free=1000))
    with caplog.at_level(logging.WARNING, logger="tomosynth.recon"):
        meta = recon.reconstruct_scan(scan, tmp_path / "out", **kw)
    assert meta["read_order"]["mode"] == "direct"
    assert "the scratch copy needs" in meta["read_order"]["reason"]
    assert "reading directly" in caplog.text
    assert _slice_bytes(tmp_path / "out") == _slice_bytes(tmp_path / "ref")


def test_code_digest_covers_every_module_of_a_package(tmp_path, monkeypatch):
    # the reconstruction code is a package: an edit in any of its modules (not only in
    # __init__.py) must change the digest, so chunks of the old code are not reused
    import hashlib

    from tomosynth.resume import code_digest

    pkg = tmp_path / "digestpkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "A = 1\n",
        "b.py": "B = 2\n",
        "sub/__init__.py": "",
        "sub/c.py": "C = 3\n",
    }
    for rel, text in files.items():
        (pkg / rel).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    # independent reference: name, then each file's relative path and bytes, sorted by path
    h = hashlib.sha256(b"digestpkg")
    for rel in sorted(files, key=lambda r: Path(r).parts):
        h.update(rel.encode())
        h.update(files[rel].encode())
    assert code_digest("digestpkg") == h.hexdigest()
    before = code_digest("digestpkg")
    (pkg / "sub" / "c.py").write_text("C = 4\n")
    assert code_digest("digestpkg") != before
    assert code_digest("tomosynth.recon") != code_digest("tomosynth.recon.chunks")


def _manifest_matches_the_files(out: Path) -> None:
    """Every entry of MANIFEST.json has the SHA-256 and size of the file on disk."""
    import hashlib

    manifest = json.loads((out / "MANIFEST.json").read_text())
    files = sorted(p.name for p in out.iterdir() if p.name != "MANIFEST.json")
    assert sorted(manifest["files"]) == files
    for name, entry in manifest["files"].items():
        data = (out / name).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest(), name
        assert entry["size"] == len(data), name


@pytest.mark.parametrize("killed", ["contiguous"], indirect=True)  # one layout is enough
def test_publish_uses_the_digests_hashed_as_written(killed, tmp_path, monkeypatch):
    """A fresh run reads back only recon.json for its manifest: every slice was hashed in
    the writer as it was written; the digests are those of the files."""
    from tomosynth import manifest

    hashed = []
    original = manifest.file_sha256
    monkeypatch.setattr(
        manifest, "file_sha256", lambda p: hashed.append(Path(p).name) or original(p)
    )
    out = tmp_path / "fresh"
    recon.reconstruct_scan(killed["scan"], out, **KW)
    assert hashed == ["recon.json"]
    _manifest_matches_the_files(out)


@pytest.mark.parametrize("strip", [False, True])
def test_manifest_after_a_resume_holds_the_files_digests(killed, tmp_path, strip):
    """Reused chunks: digests from their markers, or (markers of older code, without
    digests) hashed at publish; either way those of the files."""
    out = _resume_copy(killed, tmp_path)
    markers = sorted((tmp_path / ".recon.partial" / "chunks").glob("rows_*.json"))
    for marker in markers:
        record = json.loads(marker.read_text())
        assert set(record["sha256"]) == set(record["files"])  # the killed run recorded them
        if strip:
            del record["sha256"]
            marker.write_text(json.dumps(record))
    meta = recon.reconstruct_scan(killed["scan"], out, **KW)
    assert meta["resume"]["reused_chunks"] == killed["n_markers"]
    _manifest_matches_the_files(out)
    assert _slice_bytes(out) == _slice_bytes(killed["ref"])


@pytest.mark.parametrize("killed", ["contiguous"], indirect=True)  # one layout is enough
def test_a_reused_slice_changed_since_its_marker_is_hashed_again(killed, tmp_path):
    """A reused slice whose bytes changed (same size: the chunk is still reused) gets the
    digest of what is on disk, not the stale one of its marker."""
    out = _resume_copy(killed, tmp_path)
    tiff = tmp_path / ".recon.partial" / "slices" / "slice_00000.tiff"
    data = bytearray(tiff.read_bytes())
    data[-4:] = b"\x00\x00\x80\x3f"  # the last pixel, 1.0
    time.sleep(0.01)  # a later modification time
    tiff.write_bytes(bytes(data))
    meta = recon.reconstruct_scan(killed["scan"], out, **KW)
    assert meta["resume"]["reused_chunks"] == killed["n_markers"]
    assert (out / "slice_00000.tiff").read_bytes() == bytes(data)
    _manifest_matches_the_files(out)

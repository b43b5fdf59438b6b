# SPDX-License-Identifier: BSD-3-Clause
"""Resumable chunked outputs: finished chunks survive a killed job and are reused once checked.

`reconstruct_scan` writes each chunk of slices into a *partial folder* beside its output,
``<parent>/.<name>.partial/``, which is not a declared Snakemake output, so Snakemake does not
delete it when the job dies or before the rerun. Layout::

    .<name>.partial/
        provenance.json      what the chunks depend on (scan digest, backend, filter, ...)
        slices/              finished slice_*.tiff; renamed onto <name>/ when all are done
        chunks/rows_A_B.json one marker per finished chunk, written (atomically) after its
                             TIFFs; lists each file with its size, and its SHA-256 (hashed
                             when written) and mtime, which MANIFEST.json takes at publish
        scratch/             optional sinogram-ordered copy of the scan (resumable itself)
        values.json          cached values (the automatically found centre)

A chunk is reused only when its marker exists, carries the current provenance hash and all
its files exist with the recorded sizes. A chunk killed mid-write has no marker (the marker
is written last), so it is recomputed. When the provenance changes (another scan file or
content, backend, filter, centre, stripe settings, this package's reconstruction code),
every finished chunk is discarded and the log says which key changed.

Guarantees are against a killed process (SIGKILL, SIGTERM, preemption, out-of-memory kill):
files are renamed into place, never written in place. After a crash of the machine itself,
delete the partial folder if in doubt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from tomosynth.io import atomic_file, read_json, write_json
from tomosynth.manifest import write_manifest

__all__ = ["PartialOutput", "code_digest", "provenance_hash"]

log = logging.getLogger("tomosynth.recon")


def code_digest(*modules: str) -> str:
    """SHA-256 of the source files of `modules` (e.g. ``"tomosynth.recon"``).

    A package counts with every module in it (all ``*.py`` below its folder, sorted by
    relative path, each path hashed before its bytes). Part of the provenance: a
    reconstruction finished by other code (an upgrade, a fix of the geometry) is never
    mixed with chunks from this code.
    """
    import importlib.util

    h = hashlib.sha256()
    for name in modules:
        spec = importlib.util.find_spec(name)
        h.update(name.encode())
        if spec is None:
            continue
        if spec.submodule_search_locations:  # a package: all of its modules
            for folder in map(Path, spec.submodule_search_locations):
                for path in sorted(folder.rglob("*.py")):
                    h.update(path.relative_to(folder).as_posix().encode())
                    h.update(path.read_bytes())
        elif spec.origin and Path(spec.origin).is_file():
            h.update(Path(spec.origin).read_bytes())
    return h.hexdigest()


def provenance_hash(provenance: dict) -> str:
    """Stable SHA-256 of a JSON-able provenance dict (key order does not matter)."""
    return hashlib.sha256(json.dumps(provenance, sort_keys=True).encode()).hexdigest()


def _changed(old: Any, new: dict) -> str:
    if not isinstance(old, dict):
        return "the partial folder has no readable provenance"
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    parts = []
    for k in keys:
        a, b = old.get(k), new.get(k)
        if isinstance(a, str) and isinstance(b, str) and len(a) == len(b) == 64:
            parts.append(f"{k} changed")  # digests: the values say nothing to a reader
        else:
            parts.append(f"{k} changed ({a!r} -> {b!r})")
    return ", ".join(parts)


class PartialOutput:
    """The partial folder of one output folder (see the module docstring).

    Parameters
    ----------
    out_dir : path-like
        The final output folder (``results/recon/{scan}``).
    """

    def __init__(self, out_dir: str | os.PathLike) -> None:
        self.out = Path(out_dir)
        self.root = self.out.parent / f".{self.out.name}.partial"
        self.slices = self.root / "slices"
        self.chunks = self.root / "chunks"
        self.scratch = self.root / "scratch"
        self.provenance: dict | None = None
        self._hash = ""
        self._done: dict[tuple[int, int], dict] = {}

    # ---- cached values (keyed by their own provenance) --------------------------------
    def cached(self, name: str, key: dict) -> Any:
        """A value stored by `store` under `name` with an equal `key`, else None."""
        path = self.root / "values.json"
        try:
            entry = read_json(path).get(name) if path.is_file() else None
        except (OSError, ValueError):
            return None
        if isinstance(entry, dict) and entry.get("key") == json.loads(json.dumps(key)):
            return entry.get("value")
        return None

    def store(self, name: str, key: dict, value: Any) -> None:
        """Remember `value` for `name` under `key` (atomically)."""
        path = self.root / "values.json"
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            values = read_json(path) if path.is_file() else {}
        except (OSError, ValueError):
            values = {}
        values[name] = {"key": key, "value": value}
        write_json(path, values)

    # ---- chunks ------------------------------------------------------------------------
    def open(self, provenance: dict) -> str:
        """Adopt `provenance`; keep the finished chunks made under it, drop the rest.

        Returns a one-line reason for the log: how many chunks were found valid, or why the
        previous ones were discarded.
        """
        self.provenance = json.loads(json.dumps(provenance))
        self._hash = provenance_hash(self.provenance)
        self._done = {}
        prov_path = self.root / "provenance.json"
        reason = ""
        if not (prov_path.exists() or self.slices.exists() or self.chunks.exists()):
            reason = "no partial results"
        else:
            try:
                old = read_json(prov_path) if prov_path.is_file() else None
            except (OSError, ValueError):
                old = None
            if old != self.provenance:
                if self.slices.exists() or self.chunks.exists():
                    reason = "discarded partial results: " + _changed(old, self.provenance)
                shutil.rmtree(self.slices, ignore_errors=True)
                shutil.rmtree(self.chunks, ignore_errors=True)
        self.root.mkdir(parents=True, exist_ok=True)
        write_json(prov_path, self.provenance)
        self.slices.mkdir(exist_ok=True)
        self.chunks.mkdir(exist_ok=True)
        bad = 0
        for marker in sorted(self.chunks.glob("rows_*.json")):
            record = self._valid(marker)
            if record is None:
                marker.unlink(missing_ok=True)
                bad += 1
            else:
                a, b = record["rows"]
                self._done[(int(a), int(b))] = record
        if not reason:
            reason = f"{len(self._done)} finished chunk(s) with matching provenance"
            if bad:
                reason += f", {bad} incomplete or stale marker(s) dropped"
        return reason

    def _valid(self, marker: Path) -> dict | None:
        try:
            record = read_json(marker)
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("provenance") != self._hash:
            return None
        files = record.get("files")
        if not isinstance(files, dict) or not files:
            return None
        for name, size in files.items():
            path = self.slices / name
            if not path.is_file() or path.stat().st_size != size:
                return None
        return record

    def n_markers(self) -> int:
        """Chunk markers on disk (finished chunks, before `open` checks them)."""
        return len(list(self.chunks.glob("rows_*.json"))) if self.chunks.is_dir() else 0

    def done_rows(self) -> set[int]:
        """Detector rows whose slices are finished and valid."""
        rows: set[int] = set()
        for a, b in self._done:
            rows.update(range(a, b))
        return rows

    def is_done(self, a: int, b: int) -> bool:
        """Whether every slice of rows ``[a, b)`` is finished (by any earlier chunking)."""
        done = self.done_rows()
        return all(r in done for r in range(a, b))

    def records(self) -> list[dict]:
        """The markers of the finished chunks (valid under the current provenance)."""
        return [self._done[k] for k in sorted(self._done)]

    def record(
        self, a: int, b: int, paths: list[Path], digests: dict[str, str] | None = None, **extra: Any
    ) -> None:
        """Mark rows ``[a, b)`` finished; call after their files are completely written.

        `digests`: file name -> SHA-256 of the bytes written (`write_tiff_slices`), kept in
        the marker with each file's mtime so that `publish` need not read the files again.
        """
        stats = {Path(p).name: Path(p).stat() for p in paths}
        record = {
            "rows": [int(a), int(b)],
            "provenance": self._hash,
            "files": {name: st.st_size for name, st in stats.items()},
            **extra,
        }
        if digests:
            record["sha256"] = {
                name: {"sha256": digests[name], "mtime_ns": st.st_mtime_ns}
                for name, st in stats.items()
                if name in digests
            }
        write_json(self.chunks / f"rows_{int(a):05d}_{int(b):05d}.json", record)
        self._done[(int(a), int(b))] = record

    def publish(self, rows: tuple[int, int], meta: dict, file_name: str = "recon.json") -> None:
        """Move the finished slices onto the output folder, atomically, with `meta` and a
        ``MANIFEST.json`` (`tomosynth.manifest`).

        Slices outside ``[rows)`` (left from an earlier, longer range) are deleted first; the
        old output folder, if any, is replaced; the partial folder is removed last.
        """
        keep = {f"slice_{r:05d}.tiff" for r in range(*rows)}
        for path in self.slices.glob("slice_*.tiff"):
            if path.name not in keep:
                path.unlink()
        with atomic_file(self.slices / file_name) as tmp:
            tmp.write_text(json.dumps(meta, indent=2) + "\n")
        # consumers and `tomosynth verify` check the folder; the slices' digests come from
        # the markers (hashed when written), a file changed since is hashed again
        write_manifest(self.slices, known=self._known_digests())
        old = self.out.parent / f".{self.out.name}.old"
        if old.exists():
            shutil.rmtree(old)
        if self.out.exists():
            os.replace(self.out, old)
        os.replace(self.slices, self.out)
        shutil.rmtree(old, ignore_errors=True)
        self.discard()

    def _known_digests(self) -> dict[str, dict[str, Any]]:
        """Slice name -> ``{"size", "mtime_ns", "sha256"}`` from the finished chunks' markers."""
        known: dict[str, dict[str, Any]] = {}
        for record in self.records():
            hashed = record.get("sha256")
            if not isinstance(hashed, dict):
                continue  # a marker written without digests: publish hashes its files
            for name, entry in hashed.items():
                if isinstance(entry, dict) and name in record["files"]:
                    known[name] = {"size": record["files"][name], **entry}
        return known

    def discard(self) -> None:
        """Delete the partial folder (after publishing, or when its input is unusable)."""
        shutil.rmtree(self.root, ignore_errors=True)

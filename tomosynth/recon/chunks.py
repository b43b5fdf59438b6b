# SPDX-License-Identifier: BSD-3-Clause
"""Whole scans, chunked over detector rows: `reconstruct_scan`, resumable.

`reconstruct_scan`: for each chunk of `chunk_rows` detector rows: read -> `normalize` -> `minus_log` ->
`remove_stripes` -> `fbp` -> ``slice_{index:05d}.tiff`` (absolute row index). The chunks are
pipelined (`_compute_chunks`): the next one is read and pre-processed, and the previous one
written, while one reconstructs. Finished
chunks go to the partial folder ``.<out_dir name>.partial`` beside `out_dir`
(`tomosynth.resume.PartialOutput`); when all are done they are renamed onto `out_dir`
together with ``recon.json`` (the provenance returned here), so `out_dir` appears only
complete. A killed run leaves the partial folder; rerunning with the same scan and
settings reuses every finished chunk (the log says ``reusing N of M chunks`` and why),
and a changed scan, backend, filter, centre or stripe setting discards them (the log
names the change). Bad input (`DataError`) deletes the partial folder.

Chunked, compressed HDF5 files whose chunks span many detector rows (e.g. one chunk
per projection) are first copied once into a sinogram-ordered scratch file in the
partial folder (`tomosynth.io.plan_row_reads`, `tomosynth.io.SinogramScratch`), so that
every HDF5 chunk is decompressed once instead of once per chunk of rows; this costs
disk space equal to the uncompressed scan (rows in range), and is skipped with a
warning when the disk lacks it.

Peak memory is bounded by the chunk, not the scan: `recon_memory_bound_mb` states the
bound (counts, pre-processing temporaries, filter and back-projection working sets,
this chunk's and the previous chunk's slices, the TIFF write, the gzip chunks being
inflated) and is recorded as ``memory_bound_mb`` in ``recon.json``;
``benchmarks/bench_recon.py --memory`` measures it. For 1,500 angles, 2048 columns and
``chunk_rows=16`` (torch, 1 thread) it is 1,900 MiB (the next chunk is pre-processed while
one reconstructs: `_compute_chunks`).

``recon.json`` (returned by `reconstruct_scan`) holds: scan, centre (pixels) and how it
was chosen, backend, filter, stripe settings, row range, chunk_rows, ``voxel_um`` (from
the file's attributes, else null), seconds, ``peak_rss_mb`` (whole process, imports
included), ``memory_bound_mb`` (the bound above, on top of the imports), ``read_order``
(mode and reason), ``resume`` (chunks in all, reused, computed, and the reason) and
``bad_rows`` (the policy, and the ``masked`` detector rows: row, reason, replacement row).

The driver is a short sequence of steps (`_open_run`: `_check_settings`, `_row_range`;
`_reconstruct_resumably`: `_plan_reads`, `_choose_center`, `_compute_chunks`,
`_metadata`), each small enough to read at once; `_Run` carries the scan and the
settings between them.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tomosynth.device import select_device
from tomosynth.errors import ConfigError, DataError
from tomosynth.io import (
    Projections,
    ScanInfo,
    SinogramScratch,
    h5_layout,
    inspect_dxchange,
    plan_row_reads,
    read_dxchange,
    scan_digest,
    write_tiff_slices,
)
from tomosynth.recon.backends import fbp, resolve_backend
from tomosynth.recon.center import find_center
from tomosynth.recon.filters import FILTERS
from tomosynth.recon.memory import _peak_rss_mb, recon_memory_bound_mb
from tomosynth.recon.parallel import cpu_threads
from tomosynth.recon.prep import flat_minus_log, remove_stripes
from tomosynth.resume import PartialOutput, code_digest
from tomosynth.scan_checks import check_angles, check_rows

_log = logging.getLogger("tomosynth.recon")

# Reconstructed voxel = detector pixel: the simulator's `voxel_size_um` (phantom voxel times
# binning) comes before its phantom `voxel_um`.
_VOXEL_ATTRS = ("voxel_size_um", "pixel_size_um", "voxel_um", "voxel_size", "pixel_size")


def _voxel_size(attrs: dict) -> float | None:
    for key in _VOXEL_ATTRS:
        value = attrs.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def _preprocess(
    proj: np.ndarray,
    flat: np.ndarray,
    dark: np.ndarray,
    stripe_removal: str,
    stripe_size: int,
    threads: int | None = None,
) -> np.ndarray:
    """`normalize`, `minus_log` (fused and threaded: `tomosynth.recon.prep`), `remove_stripes`."""
    sino = flat_minus_log(proj, flat, dark, threads=threads)
    return remove_stripes(sino, method=stripe_removal, size=stripe_size)


def reconstruct_scan(
    h5_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    backend: str = "auto",
    filter_name: str = "ramlak",
    center: float | str | None = "auto",
    stripe_removal: str = "none",
    stripe_size: int = 11,
    chunk_rows: int = 16,
    slices: tuple[int, int] | list[int] | None = None,
    device: str = "auto",
    center_method: str = "auto",
    memory_budget_mb: int = 128,
    threads: int | None = None,
    theta_units: str | None = None,
    bad_rows: str = "error",
) -> dict:
    """Reconstruct a DXchange scan into float32 TIFF slices, chunk by chunk, resumably.

    Returns the contents of ``recon.json``. Steps, resuming, the scratch copy, the memory bound
    and the keys of ``recon.json``: see the module docstring.

    Parameters
    ----------
    h5_path : path-like
        DXchange file (see `tomosynth.io.read_dxchange`).
    out_dir : path-like
        Output folder, replaced atomically.
    backend, filter_name, device
        See `fbp`; ``backend="auto"`` is tomopy when importable, else fourier.
    center : float, "auto" or None
        Rotation axis in detector pixels; ``"auto"`` finds it once (`find_center`) from up to 8
        rows around the middle of the range (cached in the partial folder for a rerun);
        ``None`` is ``cols / 2``.
    stripe_removal, stripe_size
        See `remove_stripes` (``"none"`` or ``"median"``).
    chunk_rows : int
        Detector rows per chunk (>= 1); results do not depend on it.
    slices : (start, stop), optional
        Half-open detector row range to reconstruct; ``None`` is all rows.
    center_method : {"auto", "vo", "correlation", "entropy"}
        See `find_center`; used when ``center="auto"``.
    memory_budget_mb : int
        Working-set target of the torch back-projector (see `fbp`) and of the scratch file's
        transposition.
    threads : int, optional
        CPU threads of the job (the rule's ``threads``): the backend's workers and the pre-
        processing (see `fbp`); ``None``: ``OMP_NUM_THREADS``, else the CPUs this process may
        use. Torch's own thread setting is never changed.
    theta_units : {"degrees", "radians"}, optional
        Unit of ``/exchange/theta`` for files without a ``units`` attribute (`inspect_dxchange`).
    bad_rows : {"error", "mask"}
        Saturated or over-flat detector rows stop the run or are masked
        (`tomosynth.scan_checks.check_rows`); stuck angles stop it, gaps are logged.

    Raises
    ------
    DataError
        Unreadable or inconsistent file, or a slice range outside the scan (naming it).
    ConfigError
        Unknown backend/filter, a backend whose library is missing, ``chunk_rows < 1``.
    """
    start_time = time.perf_counter()
    run = _open_run(
        Path(h5_path),
        slices,
        center,
        theta_units,
        backend=backend,
        filter_name=filter_name,
        stripe_removal=stripe_removal,
        stripe_size=stripe_size,
        chunk_rows=chunk_rows,
        device=device,
        memory_budget_mb=memory_budget_mb,
        threads=threads,
    )
    return _reconstruct_resumably(run, out_dir, center, center_method, bad_rows, start_time)


def _open_run(
    h5_path: Path,
    slices: tuple[int, int] | list[int] | None,
    center: float | str | None,
    theta_units: str | None,
    *,
    backend: str,
    filter_name: str,
    stripe_removal: str,
    stripe_size: int,
    chunk_rows: int,
    device: str,
    memory_budget_mb: int,
    threads: int | None,
) -> _Run:
    """Check the settings, the scan (angles, row range) and `center`, in that order (the
    first bad one raises); the `_Run` that describes this call."""
    chunk_rows, backend_used = _check_settings(chunk_rows, backend, filter_name)
    info = inspect_dxchange(h5_path, theta_units=theta_units)
    check_angles(h5_path, info.theta)  # stuck angles stop; gaps are logged (scan_checks)
    r0, r1 = _row_range(h5_path, slices, info.n_rows)
    _check_center(center)
    return _Run(
        h5_path=h5_path,
        info=info,
        rows=(r0, r1),
        backend=backend,
        backend_used=backend_used,
        filter_name=filter_name,
        stripe_removal=stripe_removal,
        stripe_size=int(stripe_size),
        chunk_rows=chunk_rows,
        device=device,
        memory_budget_mb=memory_budget_mb,
        threads=threads,
        theta_units=theta_units,
        digest=scan_digest(h5_path, theta_units),
        code=code_digest("tomosynth.recon", "tomosynth.io"),
    )


def _reconstruct_resumably(
    run: _Run,
    out_dir: str | os.PathLike,
    center: float | str | None,
    center_method: str,
    bad_rows: str,
    start_time: float,
) -> dict:
    """`_reconstruct` into the partial folder of `out_dir`: discarded on bad input or
    settings, kept (with a warning naming it) on any other failure."""
    partial = PartialOutput(out_dir)
    try:
        meta = _reconstruct(
            run, partial, Path(out_dir).name, center, center_method, bad_rows, start_time
        )
    except (DataError, ConfigError):
        partial.discard()  # bad input or settings: a rerun needs another file or config
        raise
    except BaseException:
        if partial.root.is_dir():
            _log.warning(
                "%s: kept %d finished chunk(s) in %s; rerun to continue",
                Path(out_dir).name,
                partial.n_markers(),
                partial.root,
            )
        raise
    return meta


def _reconstruct(
    run: _Run,
    partial: PartialOutput,
    out_name: str,
    center: float | str | None,
    center_method: str,
    bad_rows: str,
    start_time: float,
) -> dict:
    """Read order, centre, the chunks still to do, ``recon.json``; publishes `partial`."""
    r0, r1 = run.rows
    chunks = [(a, min(a + run.chunk_rows, r1)) for a in range(r0, r1, run.chunk_rows)]
    # Read order first: the scratch copy (if any) also serves the centre search.
    mode, why = _plan_reads(run, partial)
    center_px, center_source, center_cached = _choose_center(run, partial, center, center_method)
    reason = partial.open(_provenance(run, center_px))
    todo = [c for c in chunks if not partial.is_done(*c)]
    _log.info(
        "%s: reusing %d of %d chunks (%s)",
        out_name,
        len(chunks) - len(todo),
        len(chunks),
        reason,
    )
    _log.info("%s: read order %s (%s)", run.h5_path.name, mode, why)
    if todo:
        run.build_scratch()
    dev_type = _device_type(run)
    _compute_chunks(run, partial, chunks, todo, center_px, dev_type, bad_rows)
    resume = {
        "partial_dir": str(partial.root),
        "chunks": len(chunks),
        "reused_chunks": len(chunks) - len(todo),
        "computed_chunks": len(todo),
        "reason": reason,
        "center_cached": center_cached,
    }
    read_order = {"mode": mode, "reason": why, **run.scratch_info}
    center_meta = {"center": float(center_px), "center_source": center_source}
    meta = _metadata(run, center_meta, start_time, dev_type, read_order, resume)
    meta["bad_rows"] = {"policy": bad_rows, "masked": _masked_rows(partial, run.rows)}
    partial.publish(run.rows, meta)
    return meta


@dataclass
class _Run:
    """One call of `reconstruct_scan`: the scan, the settings, and the read path chosen."""

    h5_path: Path
    info: ScanInfo
    rows: tuple[int, int]
    backend: str  # as requested ("auto" included)
    backend_used: str
    filter_name: str
    stripe_removal: str
    stripe_size: int
    chunk_rows: int
    device: str
    memory_budget_mb: int
    threads: int | None
    theta_units: str | None
    digest: str  # of the scan (`tomosynth.io.scan_digest`)
    code: str  # of this package and tomosynth.io (`tomosynth.resume.code_digest`)
    scratch: SinogramScratch | None = None
    scratch_info: dict = field(default_factory=dict)

    def read(self, a: int, b: int) -> Projections:
        """Detector rows ``[a, b)``: from the scratch copy when there is one."""
        if self.scratch is not None:
            return self.scratch.read(a, b)
        return read_dxchange(
            self.h5_path, rows=(a, b), theta_units=self.theta_units, threads=self.cpus
        )

    @property
    def cpus(self) -> int:
        """CPU threads of this job (`tomosynth.recon.parallel.cpu_threads`)."""
        return cpu_threads(self.threads)

    def preprocess(self, p: Projections) -> np.ndarray:
        """Minus-log sinograms of projections `p`, stripes removed."""
        return _preprocess(
            p.data, p.flat, p.dark, self.stripe_removal, self.stripe_size, self.threads
        )

    def build_scratch(self) -> None:
        """Build (or finish) the scratch copy once, if this run reads through one."""
        if self.scratch is not None and not self.scratch_info:
            self.scratch_info = _build_scratch(self.scratch, self.h5_path)


def _check_settings(chunk_rows: int, backend: str, filter_name: str) -> tuple[int, str]:
    """``(chunk_rows, backend used)``; ConfigError for a bad chunk size, backend or filter."""
    if int(chunk_rows) < 1:
        raise ConfigError(f"recon.chunk_rows: must be >= 1, got {chunk_rows}")
    backend_used = resolve_backend(backend)
    if filter_name not in FILTERS:
        raise ConfigError(f"recon.filter: unknown filter {filter_name!r} (one of {FILTERS})")
    return int(chunk_rows), backend_used


def _row_range(
    h5_path: Path, slices: tuple[int, int] | list[int] | None, n_rows: int
) -> tuple[int, int]:
    """Half-open detector row range ``(r0, r1)`` of `slices` (``None``: all rows)."""
    if slices is None:
        return 0, n_rows
    if len(slices) != 2:
        raise ConfigError(f"recon.slices: expected [start, stop], got {slices!r}")
    r0, r1 = int(slices[0]), int(slices[1])
    if not (0 <= r0 < r1 <= n_rows):
        raise DataError(
            f"{h5_path}: slice range [{r0}, {r1}) is empty or outside the scan's "
            f"{n_rows} detector rows (valid: 0 <= start < stop <= {n_rows})"
        )
    return r0, r1


def _check_center(center: float | str | None) -> None:
    """ConfigError unless `center` is a number, ``"auto"`` or ``None``."""
    if not (center in ("auto", None) or isinstance(center, int | float)) or isinstance(
        center, bool
    ):
        raise ConfigError(f"recon.center: expected a number, 'auto' or null, got {center!r}")


def _plan_reads(run: _Run, partial: PartialOutput) -> tuple[str, str]:
    """Read order ``(mode, why)``; sets ``run.scratch`` when the rows are read transposed.

    The scratch copy is dropped (reading directly, with a warning) when the disk lacks
    what is left to write of it.
    """
    r0, r1 = run.rows
    layout = h5_layout(run.h5_path, run.theta_units)
    mode, why = plan_row_reads(layout, r1 - r0, run.chunk_rows)
    if mode != "transpose":
        return mode, why
    scratch = SinogramScratch(
        partial.scratch,
        run.h5_path,
        run.rows,
        run.digest,
        run.memory_budget_mb,
        run.theta_units,
        threads=run.cpus,
    )
    partial.root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(partial.root).free
    # the file fills frame by frame (sparse until written): what is left to write
    need = scratch.nbytes * (scratch.n_frames - scratch.frames_done()) // scratch.n_frames
    if free < need:
        why += f"; but the scratch copy needs {need / 2**30:.1f} GiB, free {free / 2**30:.1f}"
        _log.warning("%s: %s, reading directly", run.h5_path, why)
        return "direct", why
    run.scratch = scratch
    return mode, why


def _choose_center(
    run: _Run, partial: PartialOutput, center: float | str | None, center_method: str
) -> tuple[float, str, bool]:
    """``(centre in pixels, how it was chosen, whether it came from the partial folder)``."""
    if center == "auto":
        return _auto_center(run, partial, center_method)
    if center is None:
        return run.info.n_cols / 2.0, "default (cols / 2)", False
    return float(center), "given", False


def _auto_center(run: _Run, partial: PartialOutput, center_method: str) -> tuple[float, str, bool]:
    """`find_center` on up to 8 rows around the middle of the range, cached in `partial`."""
    r0, r1 = run.rows
    mid = (r0 + r1) // 2
    c0 = max(r0, mid - 4)
    c1 = min(r1, c0 + 8)
    key = {
        "scan": run.digest,
        "rows": [c0, c1],
        "method": center_method,
        "stripe_removal": run.stripe_removal,
        "stripe_size": run.stripe_size,
        "code": run.code,
    }
    found = partial.cached("center", key)
    cached = found is not None
    if found is None:
        run.build_scratch()
        sino = run.preprocess(run.read(c0, c1))
        found = find_center(
            sino, run.info.theta, method=center_method, device=run.device, threads=run.threads
        )
        partial.store("center", key, float(found))
        del sino
    return float(found), f"auto ({center_method}, rows {c0}..{c1})", cached


def _provenance(run: _Run, center_px: float) -> dict:
    """What finished chunks must share to be reused (`tomosynth.resume.PartialOutput`)."""
    return {
        "scan_digest": run.digest,
        "code": run.code,
        "numpy": np.__version__,
        "backend": run.backend_used,
        "filter": run.filter_name,
        "center": center_px,
        "stripe_removal": run.stripe_removal,
        "stripe_size": run.stripe_size,
    }


def _device_type(run: _Run) -> str:
    """Where the work runs: torch and the fourier backend's torch engine go where `device`
    resolves to; every other backend runs on the CPU."""
    if run.backend_used in ("torch", "fourier") and run.device != "cpu":
        return select_device(run.device).type
    return "cpu"


def _compute_chunks(
    run: _Run,
    partial: PartialOutput,
    chunks: list[tuple[int, int]],
    todo: list[tuple[int, int]],
    center_px: float,
    dev_type: str,
    bad_rows: str,
) -> None:
    """Reconstruct the chunks still `todo` into the partial folder, one marker each.

    Pipelined: while chunk ``i`` reconstructs, one reader thread reads, checks and
    pre-processes chunk ``i + 1`` and one writer thread writes chunk ``i - 1``'s slices
    and then its marker (one of each in flight, markers in chunk order). In turn with the
    kernel, the HDF5 read and the TIFF writes left a core idle for 40-50 % of the time at
    2048 / 1,500 angles. The reader inflates gzip chunks, and the writer writes and hashes
    slices, on the job's threads too: one reader thread (33 ms per slice at 2048 / 1,500
    angles) would cap a many-core job at about 30 slices/s whatever the kernel's speed.
    """
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    r0, r1 = run.rows
    bar = tqdm(total=r1 - r0, desc=f"reconstruct {run.h5_path.name}", unit="slice")
    bar.update(sum(b - a for a, b in chunks) - sum(b - a for a, b in todo))

    def load(a: int, b: int) -> tuple[np.ndarray, list]:
        p, masked = check_rows(run.read(a, b), run.h5_path, bad_rows, run.read)  # saturated rows
        return run.preprocess(p), masked

    def save(a: int, b: int, rec: np.ndarray, masked: list) -> None:
        digests: dict[str, str] = {}  # hashed here, for MANIFEST.json at publish
        paths = write_tiff_slices(
            partial.slices, rec, first_index=a, digests=digests, threads=run.cpus
        )
        partial.record(a, b, paths, digests, device=dev_type, masked_rows=masked)

    with (
        ThreadPoolExecutor(1, thread_name_prefix="recon-read") as reader,
        ThreadPoolExecutor(1, thread_name_prefix="recon-write") as writer,
    ):
        ahead = reader.submit(load, *todo[0]) if todo else None
        written = None
        for i, (a, b) in enumerate(todo):
            sino, masked = ahead.result()
            ahead = reader.submit(load, *todo[i + 1]) if i + 1 < len(todo) else None
            rec = fbp(
                sino,
                run.info.theta,
                center_px,
                run.filter_name,
                run.backend_used,
                run.device,
                run.memory_budget_mb,
                threads=run.threads,
            )
            del sino
            if written is not None:
                written.result()  # at most one chunk's slices waiting to be written
                bar.update(todo[i - 1][1] - todo[i - 1][0])
            written = writer.submit(save, a, b, rec, masked)
            del rec
        if written is not None:
            written.result()
            bar.update(todo[-1][1] - todo[-1][0])
    bar.close()


def _masked_rows(partial: PartialOutput, rows: tuple[int, int]) -> list[dict]:
    """The masked detector rows in `rows`, from every finished chunk's marker (reused ones
    included), in row order."""
    found = {}
    for record in partial.records():
        for entry in record.get("masked_rows", []):
            if rows[0] <= entry["row"] < rows[1]:
                found[entry["row"]] = entry
    return [found[r] for r in sorted(found)]


def _metadata(
    run: _Run,
    center_meta: dict,
    start_time: float,
    dev_type: str,
    read_order: dict,
    resume: dict,
) -> dict:
    """The contents of ``recon.json`` (its keys: see the module docstring)."""
    info = run.info
    r0, r1 = run.rows
    bound = recon_memory_bound_mb(
        info.n_angles,
        info.n_flats,
        info.n_darks,
        run.chunk_rows,
        info.n_cols,
        run.backend_used,
        run.memory_budget_mb,
        run.threads,
    )
    meta = {
        "scan": str(run.h5_path),
        **center_meta,
        "backend": run.backend_used,
        "backend_requested": run.backend,
        "filter": run.filter_name,
        "stripe_removal": run.stripe_removal,
        "stripe_size": run.stripe_size,
        "rows": [r0, r1],
        "n_slices": r1 - r0,
        "shape": [r1 - r0, info.n_cols, info.n_cols],
        "chunk_rows": run.chunk_rows,
        "n_angles": info.n_angles,
        "voxel_um": _voxel_size(info.attrs),
        "units": "attenuation per voxel (mu * voxel size)",
        "seconds": round(time.perf_counter() - start_time, 3),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "memory_budget_mb": int(run.memory_budget_mb),
        "memory_bound_mb": round(bound, 1),
        "device": dev_type,
        "threads": run.threads,
        "read_order": read_order,
        "resume": resume,
    }
    if dev_type == "cuda":
        import torch

        meta["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return meta


def _build_scratch(scratch, h5_path: Path) -> dict:
    """Build (or finish) the sinogram-ordered scratch copy; returns its counts for recon.json."""
    done = scratch.frames_done()
    if done < scratch.n_frames:
        _log.info(
            "%s: copying %d frames into sinogram order (%.1f GiB scratch, from frame %d)",
            h5_path.name,
            scratch.n_frames,
            scratch.nbytes / 2**30,
            done,
        )
    stats = scratch.build()
    return {"scratch_bytes": stats["bytes"], "scratch_frames_reused": stats["resumed_at_frame"]}

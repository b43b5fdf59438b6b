# SPDX-License-Identifier: BSD-3-Clause
"""Whole scans, chunked over detector rows: `reconstruct_scan`, resumable."""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np

from tomosynth.device import select_device
from tomosynth.errors import ConfigError, DataError
from tomosynth.io import (
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

    For each chunk of `chunk_rows` detector rows: read -> `normalize` -> `minus_log` ->
    `remove_stripes` -> `fbp` -> ``slice_{index:05d}.tiff`` (absolute row index). Finished
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
    this chunk's and the previous chunk's slices, the TIFF write) and is recorded as
    ``memory_bound_mb`` in ``recon.json``; ``benchmarks/bench_recon.py --memory`` measures
    it. For 1,500 angles, 2048 columns and ``chunk_rows=16`` (torch) it is 1,362 MiB.

    Parameters
    ----------
    h5_path : path-like
        DXchange file (see `tomosynth.io.read_dxchange`).
    out_dir : path-like
        Output folder, replaced atomically.
    backend, filter_name, device
        See `fbp`; ``backend="auto"`` is tomopy when importable, else fourier.
    center : float, "auto" or None
        Rotation axis in detector pixels; ``"auto"`` finds it once (`find_center`) from up
        to 8 rows around the middle of the range (cached in the partial folder for a
        rerun); ``None`` is ``cols / 2``.
    stripe_removal, stripe_size
        See `remove_stripes` (``"none"`` or ``"median"``).
    chunk_rows : int
        Detector rows per chunk (>= 1); results do not depend on it.
    slices : (start, stop), optional
        Half-open detector row range to reconstruct; ``None`` is all rows.
    center_method : {"auto", "vo", "correlation", "entropy"}
        See `find_center`; used when ``center="auto"``.
    memory_budget_mb : int
        Working-set target of the torch back-projector (see `fbp`) and of the scratch
        file's transposition.
    threads : int, optional
        CPU threads of the job (the rule's ``threads``): the backend's workers and the
        pre-processing (see `fbp`); ``None``: ``OMP_NUM_THREADS``, else the CPUs this
        process may use. Torch's own thread setting is never changed.
    theta_units : {"degrees", "radians"}, optional
        Unit of ``/exchange/theta`` for files without a ``units`` attribute
        (see `tomosynth.io.inspect_dxchange`).
    bad_rows : {"error", "mask"}
        Saturated or over-flat detector rows stop the run or are masked
        (`tomosynth.scan_checks.check_rows`); stuck angles stop it, gaps are logged.

    Returns
    -------
    dict
        The contents of ``recon.json``: scan, centre (pixels) and how it was chosen,
        backend, filter, stripe settings, row range, chunk_rows, ``voxel_um`` (from the
        file's attributes, else null), seconds, ``peak_rss_mb`` (whole process, imports
        included), ``memory_bound_mb`` (the bound above, on top of the imports),
        ``read_order`` (mode and reason) and ``resume`` (chunks in all, reused, computed,
        and the reason).

    Raises
    ------
    DataError
        Unreadable or inconsistent file, or a slice range outside the scan (naming it).
    ConfigError
        Unknown backend/filter, a backend whose library is missing, ``chunk_rows < 1``.
    """
    from tqdm import tqdm

    start_time = time.perf_counter()
    h5_path = Path(h5_path)
    if int(chunk_rows) < 1:
        raise ConfigError(f"recon.chunk_rows: must be >= 1, got {chunk_rows}")
    chunk_rows = int(chunk_rows)
    backend_used = resolve_backend(backend)
    if filter_name not in FILTERS:
        raise ConfigError(f"recon.filter: unknown filter {filter_name!r} (one of {FILTERS})")
    info = inspect_dxchange(h5_path, theta_units=theta_units)
    check_angles(h5_path, info.theta)  # stuck angles stop; gaps are logged (scan_checks)
    if slices is None:
        r0, r1 = 0, info.n_rows
    else:
        if len(slices) != 2:
            raise ConfigError(f"recon.slices: expected [start, stop], got {slices!r}")
        r0, r1 = int(slices[0]), int(slices[1])
        if not (0 <= r0 < r1 <= info.n_rows):
            raise DataError(
                f"{h5_path}: slice range [{r0}, {r1}) is empty or outside the scan's "
                f"{info.n_rows} detector rows (valid: 0 <= start < stop <= {info.n_rows})"
            )
    if not (center in ("auto", None) or isinstance(center, int | float)) or isinstance(
        center, bool
    ):
        raise ConfigError(f"recon.center: expected a number, 'auto' or null, got {center!r}")

    digest = scan_digest(h5_path, theta_units)
    code = code_digest("tomosynth.recon", "tomosynth.io")
    partial = PartialOutput(out_dir)
    chunks = [(a, min(a + chunk_rows, r1)) for a in range(r0, r1, chunk_rows)]
    try:
        # Read order first: the scratch copy (if any) also serves the centre search.
        mode, why = plan_row_reads(h5_layout(h5_path, theta_units), r1 - r0, chunk_rows)
        scratch = None
        scratch_info: dict = {}
        if mode == "transpose":
            scratch = SinogramScratch(
                partial.scratch, h5_path, (r0, r1), digest, memory_budget_mb, theta_units
            )
            partial.root.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(partial.root).free
            # the file fills frame by frame (sparse until written): what is left to write
            need = scratch.nbytes * (scratch.n_frames - scratch.frames_done()) // scratch.n_frames
            if free < need:
                mode, scratch = "direct", None
                why += (
                    f"; but the scratch copy needs {need / 2**30:.1f} GiB, free {free / 2**30:.1f}"
                )
                _log.warning("%s: %s, reading directly", h5_path, why)
        center_cached = False
        if center == "auto":
            mid = (r0 + r1) // 2
            c0 = max(r0, mid - 4)
            c1 = min(r1, c0 + 8)
            key = {
                "scan": digest,
                "rows": [c0, c1],
                "method": center_method,
                "stripe_removal": stripe_removal,
                "stripe_size": int(stripe_size),
                "code": code,
            }
            found = partial.cached("center", key)
            center_cached = found is not None
            if found is None:
                if scratch is not None:
                    scratch_info = _build_scratch(scratch, h5_path)
                p = (
                    scratch.read(c0, c1)
                    if scratch is not None
                    else read_dxchange(h5_path, (c0, c1), theta_units=theta_units)
                )
                sino = _preprocess(p.data, p.flat, p.dark, stripe_removal, stripe_size, threads)
                found = find_center(
                    sino, info.theta, method=center_method, device=device, threads=threads
                )
                partial.store("center", key, float(found))
                del p, sino
            center_px = float(found)
            center_source = f"auto ({center_method}, rows {c0}..{c1})"
        elif center is None:
            center_px, center_source = info.n_cols / 2.0, "default (cols / 2)"
        else:
            center_px, center_source = float(center), "given"

        provenance = {
            "scan_digest": digest,
            "code": code,
            "numpy": np.__version__,
            "backend": backend_used,
            "filter": filter_name,
            "center": center_px,
            "stripe_removal": stripe_removal,
            "stripe_size": int(stripe_size),
        }
        reason = partial.open(provenance)
        todo = [c for c in chunks if not partial.is_done(*c)]
        n_reused = len(chunks) - len(todo)
        _log.info(
            "%s: reusing %d of %d chunks (%s)", Path(out_dir).name, n_reused, len(chunks), reason
        )
        _log.info("%s: read order %s (%s)", h5_path.name, mode, why)
        if scratch is not None and todo and not scratch_info:
            scratch_info = _build_scratch(scratch, h5_path)

        def read(a: int, b: int):
            if scratch is not None:
                return scratch.read(a, b)
            return read_dxchange(h5_path, rows=(a, b), theta_units=theta_units)

        # torch and the fourier backend's torch engine run where `device` resolves to
        dev_type = (
            select_device(device).type
            if backend_used in ("torch", "fourier") and device != "cpu"
            else "cpu"
        )
        bar = tqdm(total=r1 - r0, desc=f"reconstruct {h5_path.name}", unit="slice")
        bar.update(sum(b - a for a, b in chunks) - sum(b - a for a, b in todo))
        for a, b in todo:
            p = check_rows(read(a, b), h5_path, bad_rows, read)  # saturated rows (scan_checks)
            sino = _preprocess(p.data, p.flat, p.dark, stripe_removal, stripe_size, threads)
            del p
            rec = fbp(
                sino,
                info.theta,
                center_px,
                filter_name,
                backend_used,
                device,
                memory_budget_mb,
                threads=threads,
            )
            del sino
            paths = write_tiff_slices(partial.slices, rec, first_index=a)
            partial.record(a, b, paths, device=dev_type)
            bar.update(b - a)
        bar.close()
        meta = {
            "scan": str(h5_path),
            "center": float(center_px),
            "center_source": center_source,
            "backend": backend_used,
            "backend_requested": backend,
            "filter": filter_name,
            "stripe_removal": stripe_removal,
            "stripe_size": int(stripe_size),
            "rows": [r0, r1],
            "n_slices": r1 - r0,
            "shape": [r1 - r0, info.n_cols, info.n_cols],
            "chunk_rows": chunk_rows,
            "n_angles": info.n_angles,
            "voxel_um": _voxel_size(info.attrs),
            "units": "attenuation per voxel (mu * voxel size)",
            "seconds": round(time.perf_counter() - start_time, 3),
            "peak_rss_mb": round(_peak_rss_mb(), 1),
            "memory_budget_mb": int(memory_budget_mb),
            "memory_bound_mb": round(
                recon_memory_bound_mb(
                    info.n_angles,
                    info.n_flats,
                    info.n_darks,
                    chunk_rows,
                    info.n_cols,
                    backend_used,
                    memory_budget_mb,
                    threads,
                ),
                1,
            ),
            "device": dev_type,
            "threads": threads,
            "read_order": {"mode": mode, "reason": why, **scratch_info},
            "resume": {
                "partial_dir": str(partial.root),
                "chunks": len(chunks),
                "reused_chunks": n_reused,
                "computed_chunks": len(todo),
                "reason": reason,
                "center_cached": center_cached,
            },
        }
        if dev_type == "cuda":
            import torch

            meta["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        partial.publish((r0, r1), meta)
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

# SPDX-License-Identifier: BSD-3-Clause
"""File input/output: atomic writes, DXchange scans, TIFF/PNG stacks, JSON.

A package by concern (`atomic`, `jsonio`, `dxchange`, `readorder`, `stacks`, and the
helpers `h5chunks` and `threads` behind them); every public name of the five is
re-exported here, so callers import from ``tomosynth.io``. h5py, tifffile and Pillow are imported where used, so that the
atomic-write and JSON helpers work in every rule's environment, including ones without
HDF5."""

from __future__ import annotations

from tomosynth.io.atomic import (
    atomic_dir,
    atomic_file,
    clean_stale_temporaries,
    no_space_error,
    permission_message,
    write_failure,
)
from tomosynth.io.dxchange import (
    DARK,
    DATA,
    FLAT,
    MAX_NEGATIVE_FRACTION,
    MAX_SPAN_DEG,
    MIN_SPAN_DEG,
    THETA,
    Projections,
    RowStats,
    ScanInfo,
    check_counts,
    check_theta,
    inspect_dxchange,
    read_dxchange,
    row_stats,
    write_dxchange,
)
from tomosynth.io.jsonio import (
    read_json,
    write_csv,
    write_json,
)
from tomosynth.io.readorder import (
    H5Layout,
    SinogramScratch,
    h5_layout,
    plan_row_reads,
    scan_digest,
)
from tomosynth.io.stacks import (
    list_pngs,
    list_slices,
    read_png,
    read_png_stack,
    read_tiff,
    read_tiff_stack,
    slice_name,
    write_png,
    write_tiff_slices,
)

__all__ = [
    "DARK",
    "DATA",
    "FLAT",
    "H5Layout",
    "MAX_NEGATIVE_FRACTION",
    "MAX_SPAN_DEG",
    "MIN_SPAN_DEG",
    "Projections",
    "RowStats",
    "ScanInfo",
    "SinogramScratch",
    "THETA",
    "atomic_dir",
    "atomic_file",
    "check_counts",
    "check_theta",
    "clean_stale_temporaries",
    "h5_layout",
    "inspect_dxchange",
    "list_pngs",
    "list_slices",
    "no_space_error",
    "permission_message",
    "plan_row_reads",
    "read_dxchange",
    "read_json",
    "read_png",
    "read_png_stack",
    "read_tiff",
    "read_tiff_stack",
    "row_stats",
    "scan_digest",
    "slice_name",
    "write_csv",
    "write_dxchange",
    "write_failure",
    "write_json",
    "write_png",
    "write_tiff_slices",
]

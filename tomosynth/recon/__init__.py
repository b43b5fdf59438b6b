# SPDX-License-Identifier: BSD-3-Clause
"""Parallel-beam reconstruction: normalise, minus-log, stripes, centre, projector, FBP.

A package by step; the public names (and the private ones the tests and benchmarks
reach) are re-exported here, so callers import from ``tomosynth.recon``:

- `geometry`: the geometry convention shared by the projector, every backend, the centre
  search and the simulator (its module docstring states it), and `forward_project`;
- `prep`: `normalize`, `minus_log`, `remove_stripes`, the fused `flat_minus_log`;
- `filters`: `ramp_filter` and the filtered-projection table;
- `backends`: `resolve_backend`, `fbp`; the backends in `torch_fbp`, `fourier` and
  `external` (astra, tomopy);
- `center`: `find_center` (Vo, correlation, entropy);
- `memory`: `recon_memory_bound_mb`; `chunks`: `reconstruct_scan`;
- `parallel`: the CPU threads of all of these.

Patch a name in the module that looks it up (e.g. ``tomosynth.recon.chunks.fbp``), not
here.
"""

from __future__ import annotations

from tomosynth.recon.backends import BACKENDS, fbp, resolve_backend, tomopy_available
from tomosynth.recon.center import find_center
from tomosynth.recon.chunks import _preprocess as _preprocess
from tomosynth.recon.chunks import reconstruct_scan
from tomosynth.recon.filters import FILTERS, ramp_filter
from tomosynth.recon.fourier import _fbp_fourier as _fbp_fourier
from tomosynth.recon.fourier import _fbp_fourier_finufft as _fbp_fourier_finufft
from tomosynth.recon.fourier import _fbp_fourier_torch as _fbp_fourier_torch
from tomosynth.recon.fourier import _fourier_working_set_bytes as _fourier_working_set_bytes
from tomosynth.recon.geometry import forward_project
from tomosynth.recon.memory import _peak_rss_mb as _peak_rss_mb
from tomosynth.recon.memory import recon_memory_bound_mb
from tomosynth.recon.prep import minus_log, normalize, remove_stripes
from tomosynth.recon.torch_fbp import _fbp_torch as _fbp_torch

__all__ = [
    "BACKENDS",
    "FILTERS",
    "fbp",
    "find_center",
    "forward_project",
    "minus_log",
    "normalize",
    "ramp_filter",
    "recon_memory_bound_mb",
    "reconstruct_scan",
    "remove_stripes",
    "resolve_backend",
    "tomopy_available",
]

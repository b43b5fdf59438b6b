# SPDX-License-Identifier: BSD-3-Clause
"""Memory of a reconstruction: the stated bound per chunk and the measured peak."""

from __future__ import annotations

import math
from pathlib import Path

from tomosynth.io.h5chunks import DECODE_BYTES
from tomosynth.recon.backends import resolve_backend
from tomosynth.recon.filters import _FILTER_BLOCK_BYTES
from tomosynth.recon.fourier import _fourier_working_set_bytes
from tomosynth.recon.parallel import cpu_threads
from tomosynth.recon.torch_fbp import _CPU_TILE_BYTES


def _peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB.

    Linux's ``VmHWM`` (reset by exec, unlike ``ru_maxrss``, which keeps the high-water mark
    of the process that spawned us, e.g. Snakemake); ``ru_maxrss`` elsewhere.
    """
    import resource
    import sys

    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024.0  # bytes vs KiB


def recon_memory_bound_mb(
    n_angles: int,
    n_flats: int,
    n_darks: int,
    chunk_rows: int,
    n_cols: int,
    backend: str,
    memory_budget_mb: int,
    threads: int | None = None,
) -> float:
    """Upper bound (MiB) of the peak RSS growth of `reconstruct_scan` above its imports.

    With ``A`` angles, ``F`` flats, ``D`` darks, ``R = chunk_rows``, ``C`` columns,
    ``E = 4 R C`` bytes (one float32 projection of a chunk), ``S`` the filter's FFT length
    (next power of two >= 2 C, `ramp_filter`) and ``B = memory_budget_mb``, in bytes::

        2 * 4 R C**2                        # slices: this chunk's + the previous one's
      + prep + backproject                  # the next chunk is read and pre-processed
                                            # while this one reconstructs (pipelined)
      + 2 * 4 C**2 + 64 MiB                 # TIFF write of a slice; allocator, libraries
      + DECODE_BYTES                        # gzip chunks being inflated (96 MiB at most,
                                            # `tomosynth.io.h5chunks`)

        prep = (A + F + D) E'               # counts read as float32 (E' = E for
             + max(A E' / 4, 3 A E')        # max(R, 8) rows: the centre search reads 8);
                                            # finite-check mask / normalise, minus-log and
                                            # stripe temporaries (three at once at most)
        torch  = A E + A (C + 3) 4 R        # minus-log chunk + filtered gather table
               + t max(16 MiB, 12 S R)      # ramp filter: a block of FFT lines per worker
               + 16 A C                     # per-angle detector offsets (float64 -> 32)
               + 2 t min(B MiB, 2 MiB)      # back-projection tile per worker (+ one copy)
        astra  = A E + 16 A S + 8 A C + 8 C**2   # per slice: Fourier axis shift, copies
        tomopy = 3 A E + 16 t (2 S)**2      # estimate (not measured): copies, t threads'
                                            # gridrec grids
        fourier = A E + `_fourier_working_set_bytes` (A, R, C, t)  # minus-log chunk +
                                            # the NUFFT call (its result slices included)

    ``t`` is `threads` (`tomosynth.recon.parallel.cpu_threads`: by default
    ``OMP_NUM_THREADS``, else the CPUs this process may use).

    Any other backend name (one whose term is not known here) gets the largest of these.
    The torch term is for the CPU device; on CUDA the table and tiles live in GPU memory
    but the CUDA context adds about 0.3-0.5 GB of host memory that this does not count.
    ``benchmarks/bench_recon.py --memory`` measures the torch case at 2048 x 1500.
    """
    a, f, d = int(n_angles), int(n_flats), int(n_darks)
    r, c = int(chunk_rows), int(n_cols)
    e = 4 * r * c
    size = max(64, 1 << int(math.ceil(math.log2(2 * c))))
    rc = max(r, 8)
    e_prep = 4 * rc * c
    prep = (a + f + d) * e_prep + max(a * e_prep // 4, 3 * a * e_prep)
    threads = cpu_threads(threads)
    workers = threads
    terms = {
        "torch": a * e
        + a * (c + 3) * 4 * r
        + workers * max(_FILTER_BLOCK_BYTES, 12 * size * r)
        + 16 * a * c
        + 2 * workers * min(int(memory_budget_mb) * 2**20, _CPU_TILE_BYTES),
        "astra": a * e + 16 * a * size + 8 * a * c + 8 * c * c,
        "tomopy": 3 * a * e + 16 * int(threads or 1) * (2 * size) ** 2,
        "fourier": a * e + _fourier_working_set_bytes(a, r, c, threads or 1),
    }
    if backend == "auto":
        backend = resolve_backend(backend)
    work = terms.get(backend, max(terms.values()))
    total = 2 * 4 * r * c * c + prep + work + 2 * 4 * c * c + 64 * 2**20 + DECODE_BYTES
    return total / 2**20

"""Forked worker processes that share the parent's arrays (bone metrics' parallel work).

Arrays are put in :data:`SHARED` just before the fork, so workers read them copy-on-write
and only small jobs (boxes, ROI lists, slice runs) and results travel between processes.
An array from :func:`shared_bool` is also written by the workers, and the parent sees it.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from tomosynth.errors import ConfigError

#: The arrays that forked workers read ("bone", "tissue", ...); set by :func:`forked_pool`
#: in the parent just before the workers start, never pickled.
SHARED: dict[str, object] = {}
#: Libraries' thread-pool variables a worker sets to 1 (one process per core).
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def init_worker() -> None:
    """Worker start: one thread per library, so ``workers`` processes use ``workers`` cores."""
    for var in _THREAD_VARS:
        os.environ[var] = "1"


def check_workers(workers: int) -> int:
    """`workers` as an int >= 1 (ConfigError otherwise)."""
    if isinstance(workers, bool) or not isinstance(workers, int | np.integer) or workers < 1:
        raise ConfigError(
            f"compute_bone_metrics workers: must be an integer >= 1, got {workers!r} "
            "(the rule's threads: sizing.threads.compute_bone_metrics)"
        )
    return int(workers)


def can_fork() -> bool:
    """Whether worker processes can be forked here (Linux, macOS; not Windows)."""
    return "fork" in multiprocessing.get_all_start_methods()


@contextlib.contextmanager
def forked_pool(workers: int, **arrays: object) -> Iterator[ProcessPoolExecutor | None]:
    """A pool of `workers` forked processes that see `arrays` in :data:`SHARED`.

    Yields None (run in this process) for one worker, or where ``fork`` is not available;
    `arrays` are in :data:`SHARED` then too, so a job function reads them the same way in
    either case (`pool_map`). The parent must not have started an OpenMP pool (no torch
    imported); each worker sets its thread variables to 1. A worker that dies (e.g. killed
    for memory) fails the run (``BrokenProcessPool``) instead of leaving it waiting for a
    lost job. :data:`SHARED` gets its previous contents back afterwards, so the arrays are
    not held past the pool.
    """
    workers = check_workers(workers)
    fork = workers > 1 and can_fork()
    if workers > 1 and not fork:
        logging.getLogger(__name__).warning(
            "bone metrics: no fork start method here; %d workers run in one process", workers
        )
    saved = dict(SHARED)
    SHARED.update(arrays)
    try:
        if not fork:
            yield None
            return
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=init_worker) as pool:
            yield pool
    finally:
        SHARED.clear()
        SHARED.update(saved)


def pool_map(pool: ProcessPoolExecutor | None, fn: Callable, items: list, *args: object) -> list:
    """``[fn(item, *args) for item in items]``, in order, on `pool` (or here when None)."""
    if pool is None:
        return [fn(item, *args) for item in items]
    return list(pool.map(fn, items, *([a] * len(items) for a in args)))


def shared_bool(shape: tuple[int, ...], shared: bool = True) -> np.ndarray:
    """A zeroed bool array; in an anonymous shared mapping when `shared`, so forked workers
    write into it and the parent sees their writes (one byte per voxel, freed with it)."""
    if not shared:
        return np.zeros(shape, dtype=bool)
    size = int(np.prod(shape))
    buf = mmap.mmap(-1, max(size, 1))
    return np.frombuffer(buf, dtype=bool, count=size).reshape(shape)


def slab_runs(n: int, slab: int) -> list[tuple[int, int]]:
    """[start, stop) runs of `slab` slices (the last shorter) covering `n` slices."""
    step = max(1, int(slab))
    return [(z0, min(n, z0 + step)) for z0 in range(0, n, step)]


def even_runs(n: int, parts: int) -> list[tuple[int, int]]:
    """`n` slices as at most `parts` contiguous, nearly equal [start, stop) runs."""
    edges = np.linspace(0, n, min(max(1, parts), n) + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]

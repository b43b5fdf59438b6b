# SPDX-License-Identifier: BSD-3-Clause
"""CPU threads of the reconstruction kernels: how many, and workers that stay fast when shared.

Every CPU backend parallelises the same way: `threads` Python worker threads, each running
its own share of the work (tiles, slice pairs, angle blocks) with *single-threaded* kernels
(torch at one intra-op thread, finufft plans and scipy FFTs with one thread). Torch, numpy,
scipy and finufft release the GIL inside their kernels, so the workers run in parallel.

Why not torch's own OpenMP threads: measured with one other busy process on two cores,
``torch.set_num_threads(2)`` ran the torch FBP 5x slower than one thread (OpenMP workers
spin at barriers waiting for a descheduled partner), and changing torch's thread count after
parallel work with numba/algotom's OpenMP loaded in the same process cost another 3-10x.
Workers that never synchronise inside a kernel degrade gracefully instead: two workers on a
shared core take about as long as one doing all the work. The caller's torch setting is
never touched: `torch.set_num_threads` in a worker thread is local to that thread (the
OpenMP and MKL thread counts are per-thread settings).

Each worker's output depends only on its share of the input, never on the thread count, so
results are bit-identical whatever `threads` is.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

__all__ = ["cpu_threads", "run_workers"]


def cpu_threads(threads: int | None) -> int:
    """Threads to use: `threads` (the job's allocation, e.g. a Snakemake rule's
    ``threads``), else ``OMP_NUM_THREADS`` when set, else the CPUs this process may use."""
    if threads is not None:
        return max(1, int(threads))
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _single_torch_thread() -> None:
    """Run this thread's torch kernels on one intra-op thread (thread-local setting)."""
    import sys

    torch = sys.modules.get("torch")  # only when the caller uses torch: no import here
    # another thread may be importing torch right now (`reconstruct_scan` pre-processes
    # the next chunk while the torch backend starts): a half-initialised module has no
    # `get_num_threads` yet, and a worker that runs before torch exists never needs it
    if torch is None or getattr(getattr(torch, "__spec__", None), "_initializing", False):
        return
    get = getattr(torch, "get_num_threads", None)
    if get is not None and get() != 1:
        torch.set_num_threads(1)


def run_workers(fn: Callable[[list[T]], None], shares: Sequence[T], threads: int) -> None:
    """Run the shares on ``min(threads, len(shares))`` worker threads: ``fn(mine)`` once per
    worker with its list of shares (so it can allocate its buffers once).

    Shares are dealt out round-robin up front (worker ``w`` gets shares ``w, w + T, ...``),
    so which worker computes what is fixed. Even one worker runs in its own thread, so that
    the calling thread's torch setting is never changed (changing it back and forth is
    itself a slow path next to other OpenMP runtimes). Exceptions propagate to the caller.
    """
    workers = max(1, min(int(threads), len(shares)))

    def work(w: int) -> None:
        _single_torch_thread()
        fn(list(shares[w::workers]))

    errors: list[BaseException] = []

    def guarded(w: int) -> None:
        try:
            work(w)
        except BaseException as exc:  # re-raised in the caller below
            errors.append(exc)

    # one thread per worker (a pool could hand two workers' shares to one thread)
    pool = [
        threading.Thread(target=guarded, args=(w,), name=f"recon-worker-{w}", daemon=True)
        for w in range(workers)
    ]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]

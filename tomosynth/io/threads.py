# SPDX-License-Identifier: BSD-3-Clause
"""Running independent I/O jobs (chunk decoding, slice writing) on a few threads."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

__all__ = ["run_threads"]


def run_threads(fn: Callable[[T], None], items: Sequence[T], threads: int, name: str) -> None:
    """``fn(item)`` for every item: in this thread when `threads` <= 1 (or one item), else
    on ``min(threads, len(items))`` threads named `name`. The jobs must write disjoint
    outputs and release the GIL in their heavy parts (zlib, ISA-L, file writes, SHA-256,
    NumPy copies). The first failure is re-raised here, after the running jobs finish."""
    if threads <= 1 or len(items) < 2:
        for item in items:
            fn(item)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(int(threads), len(items)), thread_name_prefix=name) as pool:
        for _ in pool.map(fn, items):
            pass

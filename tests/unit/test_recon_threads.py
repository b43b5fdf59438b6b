# SPDX-License-Identifier: BSD-3-Clause
"""CPU threads of the reconstruction backends: the count used follows `threads`, the result
does not, and the caller's torch setting is never changed (tomosynth.recon.parallel)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tomosynth import recon
from tomosynth.recon import parallel, torch_fbp


def _sino(n_angles: int = 40, rows: int = 3, n: int = 48) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    theta = np.linspace(0.0, np.pi, n_angles, endpoint=False)
    return rng.random((n_angles, rows, n), dtype=np.float32), theta


def test_cpu_threads_follows_argument_then_environment(monkeypatch):
    assert parallel.cpu_threads(3) == 3
    assert parallel.cpu_threads(0) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    assert parallel.cpu_threads(None) == 5
    monkeypatch.delenv("OMP_NUM_THREADS")
    import os

    assert parallel.cpu_threads(None) == len(os.sched_getaffinity(0))


def test_run_workers_deals_shares_to_that_many_threads():
    seen: dict[str, list[int]] = {}
    lock = threading.Lock()

    def fn(mine: list[int]) -> None:
        with lock:
            seen[threading.current_thread().name] = mine

    parallel.run_workers(fn, list(range(7)), 3)
    assert seen == {"recon-worker-0": [0, 3, 6], "recon-worker-1": [1, 4], "recon-worker-2": [2, 5]}
    with pytest.raises(ZeroDivisionError):
        parallel.run_workers(lambda mine: 1 / 0, [1], 2)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_torch_backend_runs_threads_single_threaded_workers(monkeypatch, threads):
    # Spy on the back-projector's kernel: which threads ran it, with how many torch threads.
    calls: list[tuple[str, int]] = []
    real = F.embedding_bag

    def spy(*args, **kwargs):
        calls.append((threading.current_thread().name, torch.get_num_threads()))
        return real(*args, **kwargs)

    monkeypatch.setattr(F, "embedding_bag", spy)
    monkeypatch.setattr(torch_fbp, "_CPU_TILE_BYTES", 64 * 1024)  # several tiles at 48 px
    sino, theta = _sino()
    before = torch.get_num_threads()
    recon.fbp(sino, theta, backend="torch", device="cpu", threads=threads)
    assert torch.get_num_threads() == before  # the caller's setting is left alone
    assert len({ident for ident, _ in calls}) == threads
    assert {n for _, n in calls} == {1}  # one intra-op thread per worker
    assert threading.current_thread().name not in {ident for ident, _ in calls}


def test_default_threads_come_from_the_environment(monkeypatch):
    calls: list[str] = []
    real = F.embedding_bag

    def spy(*args, **kwargs):
        calls.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(F, "embedding_bag", spy)
    monkeypatch.setattr(torch_fbp, "_CPU_TILE_BYTES", 64 * 1024)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    sino, theta = _sino()
    recon.fbp(sino, theta, backend="torch", device="cpu")
    assert len(set(calls)) == 2


@pytest.mark.parametrize("backend", ["torch", "fourier"])
def test_results_are_bit_identical_whatever_the_threads(monkeypatch, backend):
    monkeypatch.setattr(torch_fbp, "_CPU_TILE_BYTES", 64 * 1024)
    sino, theta = _sino(rows=5)
    one = recon.fbp(sino, theta, 23.7, backend=backend, device="cpu", threads=1)
    for threads in (2, 3):
        again = recon.fbp(sino, theta, 23.7, backend=backend, device="cpu", threads=threads)
        assert again.tobytes() == one.tobytes(), f"{backend}: threads={threads} changed bits"


def test_fourier_torch_engine_workers_are_bit_identical():
    sino, theta = _sino(rows=5)
    resp = recon.ramp_filter(sino.shape[2], "ramlak")
    args = (sino, theta, 24.0, resp, "cpu", 1)  # 1 MiB budget: one pair per batch
    one = recon._fbp_fourier_torch(*args, 1)
    before = torch.get_num_threads()
    two = recon._fbp_fourier_torch(*args, 2)
    assert torch.get_num_threads() == before
    assert two.tobytes() == one.tobytes()


def test_thread_count_changes_between_calls_keep_results_and_setting():
    # Users change torch's thread count between calls (and mix OpenMP libraries): our
    # calls neither depend on nor change it.
    sino, theta = _sino(rows=2)
    ref = recon.fbp(sino, theta, backend="torch", device="cpu", threads=1)
    before = torch.get_num_threads()
    try:
        for n in (2, 1, 2):
            torch.set_num_threads(n)
            out = recon.fbp(sino, theta, backend="torch", device="cpu", threads=2)
            assert torch.get_num_threads() == n
            assert out.tobytes() == ref.tobytes()
    finally:
        torch.set_num_threads(before)

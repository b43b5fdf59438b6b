"""Training plumbing: device, seeds, RNG state, checkpoints, stop signals, budget, CSV log."""

import csv
import os
import random
import signal
import time

import numpy as np
import pytest
import torch

from tomosynth.errors import ConfigError, DataError, DeviceError
from tomosynth.train.common import (
    Budget,
    CsvLog,
    StopRequested,
    StopSignal,
    gpu_job_requires_cuda,
    load_checkpoint,
    package_versions,
    rng_state,
    save_checkpoint,
    seed_everything,
    select_device,
    set_rng_state,
)


def _draws():
    return (random.random(), float(np.random.rand()), torch.rand(3).tolist())


def test_select_device():
    assert select_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device("auto").type == expected
    with pytest.raises(ConfigError, match="device"):
        select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA"):
            select_device("cuda")


def test_gpu_job_without_cuda_stops_naming_driver_and_torch_build(monkeypatch):
    """A job given a GPU (gpu=1 on a profile with cuda_required=1) never falls back to the CPU."""
    if torch.cuda.is_available():  # on a GPU machine, take CUDA away as a broken driver would
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError) as exc:
        select_device("auto", require_cuda=True)
    msg = str(exc.value)
    assert "stops instead of running on the CPU" in msg
    assert f"torch {torch.__version__}" in msg
    build = torch.version.cuda
    assert (f"built for CUDA {build}" in msg) if build else ("CPU-only build" in msg)
    assert "nvidia-smi" in msg or "NVIDIA driver" in msg
    # Explicit CPU stays possible; without the requirement auto still falls back.
    assert select_device("cpu", require_cuda=True) == torch.device("cpu")
    assert select_device("auto", require_cuda=False) == torch.device("cpu")


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        ({"gpu": 1, "cuda_required": 1}, True),
        ({"gpu": 1, "cuda_required": 0}, False),  # CI's fake GPU
        ({"gpu": 1}, False),  # local default profile
        ({"gpu": 0, "cuda_required": 1}, False),  # a CPU rule on the cluster
    ],
)
def test_gpu_job_requires_cuda(resources, expected):
    from types import SimpleNamespace

    assert gpu_job_requires_cuda(resources) is expected
    assert gpu_job_requires_cuda(SimpleNamespace(**resources)) is expected


def test_seed_everything_repeats_and_differs():
    seed_everything(123)
    a = _draws()
    seed_everything(123)
    assert _draws() == a
    seed_everything(124)
    assert _draws() != a
    with pytest.raises(ConfigError):
        seed_everything(-1)


def test_rng_state_round_trip_through_checkpoint(tmp_path):
    seed_everything(7)
    np.random.randn()  # leave a cached Gaussian in NumPy's state
    save_checkpoint(tmp_path / "c.pt", {"rng": rng_state()})
    expected = _draws()
    _draws()  # move every generator on
    # weights_only loading must accept the snapshot (plain data only)
    state = load_checkpoint(tmp_path / "c.pt")
    set_rng_state(state["rng"])
    assert _draws() == expected


def test_save_checkpoint_is_atomic(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, {"w": torch.arange(3), "epoch": 1})
    with pytest.raises(Exception):  # noqa: B017 - pickling a lambda fails in torch.save
        save_checkpoint(path, {"bad": lambda: 0})
    assert torch.equal(load_checkpoint(path)["w"], torch.arange(3))  # old file intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt"]  # no temporary left


def test_load_checkpoint_missing_and_corrupt(tmp_path):
    assert load_checkpoint(tmp_path / "none.pt") is None
    path = tmp_path / "ck.pt"
    save_checkpoint(path, {"w": torch.randn(100)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="ck.pt"):
        load_checkpoint(path)
    path.write_text("not a checkpoint")
    with pytest.raises(DataError, match="ck.pt"):
        load_checkpoint(path)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_stop_signal_sets_flag_and_restores_handler(sig):
    before = signal.getsignal(sig)
    with StopSignal() as stop:
        assert not stop.requested
        os.kill(os.getpid(), sig)
        for _ in range(100):  # Python runs handlers between bytecodes; give it a moment
            if stop.requested:
                break
            time.sleep(0.01)
        assert stop.requested and stop.signum == sig
    assert signal.getsignal(sig) == before


def test_stop_requested_carries_signal():
    exc = StopRequested("x", signum=signal.SIGTERM)
    assert exc.signum == signal.SIGTERM and str(exc) == "x"


def test_budget_counts_resumed_time():
    b = Budget(minutes=1.0, spent_s=59.9)
    assert 59.9 <= b.elapsed() < 61
    time.sleep(0.15)
    assert b.exhausted()
    fresh = Budget(minutes=1.0)
    assert fresh.elapsed() < 1 and not fresh.exhausted()
    with pytest.raises(ConfigError, match="budget_minutes"):
        Budget(0)


def test_csv_log_append_and_truncate(tmp_path):
    path = tmp_path / "log.csv"
    log = CsvLog(path, ["epoch", "loss"])
    for e in range(1, 5):
        log.append({"epoch": e, "loss": e / 10})
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(int(r["epoch"]), float(r["loss"])) for r in rows] == [(e, e / 10) for e in range(1, 5)]
    CsvLog(path, ["epoch", "loss"]).truncate_after(2)
    with open(path, newline="") as fh:
        assert [r["epoch"] for r in csv.DictReader(fh)] == ["1", "2"]
    with pytest.raises(DataError, match="header"):
        CsvLog(path, ["epoch", "other"])


def test_package_versions_survive_weights_only_load(tmp_path):
    v = package_versions()
    assert v["torch"] == torch.__version__ and v["numpy"] == np.__version__
    assert set(v) >= {"python", "tomosynth", "torch_cuda"}
    save_checkpoint(tmp_path / "v.pt", {"versions": v})
    assert load_checkpoint(tmp_path / "v.pt")["versions"] == v

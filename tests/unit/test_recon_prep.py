# SPDX-License-Identifier: BSD-3-Clause
"""The fused, threaded pre-processing against the reference chain normalize -> minus_log, and
the device recorded in recon.json."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tomosynth import recon
from tomosynth.io import write_dxchange
from tomosynth.recon import chunks
from tomosynth.recon.prep import flat_minus_log


def _counts(rng, shape, dtype):
    proj = rng.integers(0, 4000, size=shape).astype(dtype)
    flat = rng.integers(3000, 4000, size=(3, *shape[1:])).astype(dtype)
    dark = rng.integers(90, 110, size=(2, *shape[1:])).astype(dtype)
    flat[0, 0, :3] = dark[0, 0, :3]  # dead pixels: zero denominators
    dark[:, 0, :3] = flat[0, 0, :3]
    proj[:5, 0, 5] = 0  # opaque: transmission <= 0
    return proj, flat, dark


@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.float64])
def test_bit_identical_to_normalize_then_minus_log(dtype):
    rng = np.random.default_rng(3)
    proj, flat, dark = _counts(rng, (301, 4, 700), dtype)  # several angle blocks
    ref = recon.minus_log(recon.normalize(proj, flat, dark))
    for threads in (1, 2, 3):
        out = flat_minus_log(proj, flat, dark, threads=threads)
        assert out.dtype == np.float32
        assert out.tobytes() == ref.tobytes(), f"threads={threads}"
    # an independent float64 formula, within float32 rounding
    d, f = dark.mean(0, dtype=np.float64), flat.mean(0, dtype=np.float64)
    t = (proj - d) / np.maximum(f - d, 1e-6)
    np.testing.assert_allclose(out, -np.log(np.maximum(t, 1e-6)), rtol=1e-5, atol=1e-5)


def _scan(path, n=32, rows=4):
    theta = np.linspace(0.0, np.pi, 40, endpoint=False)
    counts = np.full((theta.size, rows, n), 3000, dtype=np.uint16)
    flat = np.full((2, rows, n), 4000, dtype=np.uint16)
    dark = np.full((2, rows, n), 100, dtype=np.uint16)
    write_dxchange(path, counts, flat, dark, theta)


@pytest.mark.parametrize(("resolved", "label"), [("cuda", "cuda"), ("cpu", "cpu")])
def test_recon_json_names_the_device_the_fourier_backend_ran_on(
    tmp_path, monkeypatch, resolved, label
):
    # The fourier backend runs its torch engine on CUDA when `device` resolves there; the
    # record must say so (it said "cpu" for every non-torch backend).
    _scan(tmp_path / "scan.h5")
    seen = {}

    def fake_fbp(sino, theta, center, filter_name, backend, device, *args, **kwargs):
        seen["backend"], seen["device"] = backend, device
        return np.zeros((sino.shape[1], sino.shape[2], sino.shape[2]), np.float32)

    monkeypatch.setattr(chunks, "fbp", fake_fbp)  # looked up in recon.chunks
    monkeypatch.setattr(chunks, "select_device", lambda device="auto": torch.device(resolved))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a, **k: 0)
    meta = recon.reconstruct_scan(
        tmp_path / "scan.h5", tmp_path / "out", backend="fourier", center=16.0, device="auto"
    )
    assert seen == {"backend": "fourier", "device": "auto"}
    assert meta["device"] == label
    assert json.loads((tmp_path / "out" / "recon.json").read_text())["device"] == label
    cpu = recon.reconstruct_scan(
        tmp_path / "scan.h5", tmp_path / "out2", backend="fourier", center=16.0, device="cpu"
    )
    assert cpu["device"] == "cpu"

"""SRCNN: network shape, early stopping, best-checkpoint choice, data checks, and a short
training that must beat bicubic upscaling on held-out pairs."""

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from skimage.metrics import peak_signal_noise_ratio

import tomosynth.train.srcnn as srcnn_train
from tomosynth.errors import ConfigError, DataError
from tomosynth.models.srcnn import SRCNN, load_srcnn
from tomosynth.resample import bicubic
from tomosynth.train.common import StopRequested, StopSignal, load_checkpoint
from tomosynth.train.srcnn import (
    EarlyStopping,
    SRCNNData,
    is_better,
    load_srcnn_pairs,
    train_srcnn,
)
from tomosynth.upscale import upscale_folder

torch.set_num_threads(1)


# --- data helpers -------------------------------------------------------------------------
def _grains(rng, size):
    """Shale-like texture: smooth blobs thresholded to grains, slightly blurred, plus noise."""
    g = gaussian_filter(rng.standard_normal((size, size)), 3)
    f = gaussian_filter((g > 0.05).astype(float), 0.7)
    f += 0.1 * gaussian_filter(rng.standard_normal((size, size)), 1)
    f = (f - f.min()) / (f.max() - f.min())
    return np.rint(f * 255).astype(np.uint8)


def _area_down(img, factor):
    h, w = img.shape
    low = img.reshape(h // factor, factor, w // factor, factor).astype(float).mean(axis=(1, 3))
    return np.rint(low).astype(np.uint8)


def _make_pairs(root: Path, n: int = 20, n_val: int = 4, size: int = 64, seed: int = 0):
    rng = np.random.default_rng(seed)
    (root / "low").mkdir(parents=True)
    (root / "high").mkdir()
    names = [f"slice_{i:05d}.png" for i in range(n)]
    for name in names:
        high = _grains(rng, size)
        cv2.imwrite(str(root / "high" / name), high)
        cv2.imwrite(str(root / "low" / name), _area_down(high, 4))
    split = {"train": names[:-n_val], "val": names[-n_val:], "test": []}
    (root / "split.json").write_text(json.dumps(split))
    return root / "low", root / "high", root / "split.json", split


# --- model --------------------------------------------------------------------------------
def test_srcnn_915_shape_and_size():
    model = SRCNN()
    # Dong et al. 9-1-5 with 64/32 maps: 9*9*64 + 64*32 + 5*5*32 = 8032 weights, + 97 biases
    assert sum(p.numel() for p in model.parameters()) == 8032 + 64 + 32 + 1
    assert [c.kernel_size for c in model.layers] == [(9, 9), (1, 1), (5, 5)]
    x = torch.rand(2, 1, 37, 50)
    assert model(x).shape == x.shape
    wide = SRCNN(channels=(8, 4), kernels=(5, 3, 3), padding_mode="zeros")
    assert wide(x).shape == x.shape


def test_srcnn_rejects_bad_shapes():
    with pytest.raises(ConfigError, match="kernels"):
        SRCNN(kernels=(9, 2, 5))
    with pytest.raises(ConfigError, match="channels"):
        SRCNN(channels=(64,))


# --- early stopping -----------------------------------------------------------------------
def _first_stop(stopper, values):
    for i, v in enumerate(values, start=1):
        if stopper.step(v):
            return i
    return None


def test_early_stopping_stops_at_20th_non_improving_epoch():
    values = [0.5, 0.4] + [0.4] * 30
    # epoch 2 is the last improvement; epochs 3..22 are the 20 non-improving ones
    assert _first_stop(EarlyStopping(patience=20, min_delta=1e-5, decimals=6), values) == 22


def test_early_stopping_small_improvement_does_not_reset():
    base = [0.5] + [0.5] * 9 + [0.5 - 2e-6] + [0.5] * 20
    assert _first_stop(EarlyStopping(20, 1e-5, 6), base) == 21
    # a real improvement (2e-5) at the same epoch does reset the count
    real = [0.5] + [0.5] * 9 + [0.5 - 2e-5] + [0.5] * 30
    assert _first_stop(EarlyStopping(20, 1e-5, 6), real) == 31


def test_early_stopping_exactly_min_delta_is_no_improvement():
    # 3e-5 - 2e-5 is 1.0000000000000003e-05 in floats; rounded to 6 decimals it equals
    # min_delta, which is not "more than" min_delta
    stopper = EarlyStopping(patience=2, min_delta=1e-5, decimals=6)
    assert _first_stop(stopper, [3e-5, 2e-5, 2.5e-5]) == 3
    assert _first_stop(EarlyStopping(2, 1e-5, 6), [3e-5, 1.5e-5, 1.4e-5, 0.0]) is None


def test_best_is_by_psnr_with_ssim_breaking_ties():
    best = {"val_psnr": 30.0, "val_ssim": 0.80}
    assert is_better(30.5, 0.10, best)
    assert not is_better(29.9, 0.99, best)
    assert is_better(30.0, 0.81, best)
    assert not is_better(30.0, 0.80, best)
    assert is_better(1.0, 0.0, None)


def test_training_keeps_best_checkpoint_and_stops_on_val_mse(tmp_path, monkeypatch):
    """Scripted validation metrics: the best PSNR is at epoch 3, MSE stops improving after 2."""
    low, high, split, _ = _make_pairs(tmp_path / "data", n=6, n_val=2, size=32)
    scripted = iter(
        [  # (mse, psnr, ssim) per epoch
            (0.010, 20.0, 0.5),
            (0.009, 21.0, 0.5),
            (0.009, 25.0, 0.6),  # best PSNR, MSE not improved (count 1)
            (0.0090095, 24.0, 0.9),  # count 2
            (0.009, 25.0, 0.55),  # PSNR ties epoch 3, lower SSIM: not best; count 3 -> stop
            (0.001, 40.0, 0.99),  # never reached
        ]
    )
    weights = {}

    def fake_evaluate(model, inputs, targets, batch_size=16):
        if model is None:
            return {"mse": 0.02, "psnr": 17.0, "ssim": 0.4}
        m, p, s = next(scripted)
        weights[len(weights) + 1] = model.layers[0].weight.detach().clone()
        return {"mse": m, "psnr": p, "ssim": s}

    monkeypatch.setattr(srcnn_train, "evaluate", fake_evaluate)
    out = tmp_path / "model"
    result = train_srcnn(
        {
            "channels": (4, 4),
            "kernels": (3, 1, 3),
            "lr": 1e-2,
            "patch_size": 16,
            "max_epochs": 50,
            "patience": 3,
            "device": "cpu",
        },
        SRCNNData(low, high, split),
        out,
    )
    assert result["epochs"] == 5 and result["stopped"] == "early_stopping"
    best = load_checkpoint(out / "best.pt")
    assert best["epoch"] == 3 and best["val_psnr"] == 25.0
    assert torch.equal(best["model"]["layers.0.weight"], weights[3])
    assert not torch.equal(best["model"]["layers.0.weight"], weights[5])
    rows = (out / "log.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 5


# --- data checks --------------------------------------------------------------------------
def test_mismatched_pair_counts(tmp_path):
    low, high, _, _ = _make_pairs(tmp_path, n=4, n_val=1, size=32)
    cv2.imwrite(str(low / "slice_09999.png"), np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match=r"5 PNGs.*4"):
        load_srcnn_pairs(low, high)


def test_mismatched_sizes_name_the_file(tmp_path):
    low, high, _, _ = _make_pairs(tmp_path, n=4, n_val=1, size=32)
    cv2.imwrite(str(high / "slice_00002.png"), np.zeros((40, 40), np.uint8))
    with pytest.raises(DataError, match=r"slice_00002.png: .*size"):
        load_srcnn_pairs(low, high)


def test_missing_pair_names_the_folder(tmp_path):
    low, high, _, _ = _make_pairs(tmp_path, n=4, n_val=1, size=32)
    (high / "slice_00001.png").rename(high / "slice_00077.png")
    with pytest.raises(DataError, match="high: missing 1 paired image"):
        load_srcnn_pairs(low, high, ["slice_00000.png", "slice_00001.png"])


def test_pairs_are_bicubic_inputs_and_real_targets(tmp_path):
    low, high, _, split = _make_pairs(tmp_path, n=3, n_val=1, size=32)
    inputs, targets = load_srcnn_pairs(low, high, split["val"])
    name = split["val"][0]
    ref_in = cv2.resize(cv2.imread(str(low / name), 0), (32, 32), interpolation=cv2.INTER_CUBIC)
    assert inputs.shape == targets.shape == (1, 32, 32)
    np.testing.assert_array_equal(targets[0], cv2.imread(str(high / name), 0))
    assert np.abs(inputs[0].astype(int) - ref_in).max() <= 1  # OpenCV's fixed-point rounding


# --- training -----------------------------------------------------------------------------
def test_short_training_beats_bicubic_on_held_out_pairs(tmp_path):
    low, high, split, names = _make_pairs(tmp_path / "data", n=20, n_val=4, size=64)
    out = tmp_path / "model"
    result = train_srcnn(
        {
            "channels": (32, 16),
            "lr": 3e-3,
            "last_layer_lr_scale": 1.0,
            "batch_size": 16,
            "patch_size": 32,
            "patches_per_image": 4,
            "max_epochs": 30,
            "patience": 30,
            "seed": 0,
            "device": "cpu",
        },
        SRCNNData(low, high, split),
        out,
    )
    # the held-out pairs, upscaled through the public folder API and scored by skimage
    val_low = tmp_path / "val_low"
    val_low.mkdir()
    for name in names["val"]:
        (val_low / name).write_bytes((low / name).read_bytes())
    upscale_folder(val_low, tmp_path / "bicubic", "bicubic", 64)
    upscale_folder(
        val_low, tmp_path / "srcnn", "srcnn", 64, model_path=out / "best.pt", device="cpu"
    )

    def mean_psnr(folder):
        return np.mean(
            [
                peak_signal_noise_ratio(
                    cv2.imread(str(high / n), 0), cv2.imread(str(folder / n), 0), data_range=255
                )
                for n in names["val"]
            ]
        )

    p_bicubic, p_srcnn = mean_psnr(tmp_path / "bicubic"), mean_psnr(tmp_path / "srcnn")
    assert p_srcnn > p_bicubic + 0.5, (p_srcnn, p_bicubic)
    # the logged baseline and best epoch agree with the independent scores (uint8 rounding aside)
    assert result["bicubic"]["psnr"] == pytest.approx(p_bicubic, abs=1e-6)
    assert result["best"]["val_psnr"] == pytest.approx(p_srcnn, abs=0.1)
    rows = [line.split(",") for line in (out / "log.csv").read_text().splitlines()]
    header, body = rows[0], rows[1:]
    psnrs = [float(r[header.index("val_psnr")]) for r in body]
    assert result["best"]["epoch"] == 1 + int(np.argmax(psnrs))
    model, info = load_srcnn(out / "best.pt", device="cpu")
    assert info["low_size"] == 16 and info["high_size"] == 64 and info["seed"] == 0
    with pytest.raises(ConfigError, match="trained to upscale to 64px"):
        upscale_folder(val_low, tmp_path / "x", "srcnn", 128, model_path=out / "best.pt")


def test_resume_after_stop_signal_matches_uninterrupted_run(tmp_path, monkeypatch):
    low, high, split, _ = _make_pairs(tmp_path / "data", n=6, n_val=2, size=32)
    kwargs = dict(
        channels=(4, 4), kernels=(3, 1, 3), lr=1e-2, patch_size=16, patches_per_image=2,
        max_epochs=4, patience=10, seed=3, device="cpu",
    )  # fmt: skip
    train_srcnn(kwargs, SRCNNData(low, high, split), tmp_path / "full")

    stop = StopSignal()
    real_step = EarlyStopping.step

    def step_then_signal(self, value):
        if self.bad_epochs == 0 and not math.isinf(self.best):
            stop.request()  # arrives during epoch 2 (or later)
        return real_step(self, value)

    monkeypatch.setattr(EarlyStopping, "step", step_then_signal)
    with pytest.raises(StopRequested):
        train_srcnn(kwargs, SRCNNData(low, high, split), tmp_path / "cut", stop=stop)
    monkeypatch.setattr(EarlyStopping, "step", real_step)
    (tmp_path / "cut" / "best.pt").unlink()  # as Snakemake removes outputs of failed jobs
    (tmp_path / "cut" / "log.csv").unlink()
    train_srcnn(kwargs, SRCNNData(low, high, split), tmp_path / "cut")

    full = (tmp_path / "full" / "log.csv").read_text().splitlines()
    cut = (tmp_path / "cut" / "log.csv").read_text().splitlines()
    header = full[0].split(",")
    keep = [i for i, k in enumerate(header) if k not in ("elapsed_s", "images_per_s")]
    assert len(keep) == len(header) - 2 and "val_psnr" in header
    assert len(cut) == len(full) == 5
    for a, b in zip(full, cut, strict=True):
        fa, fb = a.split(","), b.split(",")
        assert [fa[i] for i in keep] == [fb[i] for i in keep]
    fa = load_checkpoint(tmp_path / "full" / "best.pt")["model"]
    fb = load_checkpoint(tmp_path / "cut" / "best.pt")["model"]
    assert all(torch.equal(fa[k], fb[k]) for k in fa)


def test_bicubic_clips_overshoot_and_keeps_constants():
    edge = np.zeros((8, 8), np.uint8)
    edge[:, 4:] = 255
    up = bicubic(edge, 32)
    assert up.dtype == np.uint8 and up.shape == (32, 32)
    assert up.min() == 0 and up.max() == 255  # cubic overshoot clipped, not wrapped
    assert (up[:, :12] == 0).all() and (up[:, -12:] == 255).all()
    np.testing.assert_array_equal(bicubic(np.full((5, 7), 77, np.uint8), (10, 14)), 77)


def test_upscale_folder_checks_inputs(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "sample_00000.png"), np.zeros((8, 8), np.uint8))
    cv2.imwrite(str(src / "sample_00001.png"), np.zeros((8, 9), np.uint8))
    with pytest.raises(DataError, match=r"sample_00001.png: .*size"):
        upscale_folder(src, tmp_path / "out", "bicubic", 32)
    assert not (tmp_path / "out").exists()  # nothing half-written
    with pytest.raises(ConfigError, match="method"):
        upscale_folder(src, tmp_path / "out", "lanczos", 32)
    with pytest.raises(ConfigError, match="model"):
        upscale_folder(src, tmp_path / "out", "srcnn", 32)


def test_training_figure_marks_best_epoch(tmp_path):
    from tomosynth.plots.upscale import plot_srcnn_training, srcnn_training_figure

    log = tmp_path / "log.csv"
    rows = ["epoch,train_mse,val_mse,val_psnr,val_ssim,bicubic_mse,bicubic_psnr,bicubic_ssim"]
    psnrs = [20.0, 23.0, 22.0]
    rows += [f"{i + 1},0.01,0.01,{p},0.5,0.02,21.0,0.4" for i, p in enumerate(psnrs)]
    log.write_text("\n".join(rows) + "\n")
    fig = srcnn_training_figure({"shale": log})
    marker = [ln for ln in fig.axes[1].lines if ln.get_marker() == "o"][0]
    assert list(marker.get_xdata()) == [2] and list(marker.get_ydata()) == [23.0]
    plot_srcnn_training({"shale": log}, tmp_path / "t.png", tmp_path / "t.pdf")
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "t.pdf").read_bytes()[:4] == b"%PDF"


def test_changed_data_starts_a_new_training(tmp_path):
    low, high, split, names = _make_pairs(tmp_path / "data", n=6, n_val=2, size=32)
    kwargs = dict(
        channels=(4, 4), kernels=(3, 1, 3), lr=1e-2, patch_size=16, max_epochs=2, device="cpu"
    )
    train_srcnn(kwargs, SRCNNData(low, high, split), tmp_path / "m")
    before = (tmp_path / "m" / "log.csv").read_text().splitlines()
    first = names["train"][0]
    cv2.imwrite(str(high / first), 255 - cv2.imread(str(high / first), 0))
    result = train_srcnn(kwargs, SRCNNData(low, high, split), tmp_path / "m")
    after = (tmp_path / "m" / "log.csv").read_text().splitlines()
    assert result["epochs"] == 2 and len(after) == 3
    assert before[1].split(",")[1] != after[1].split(",")[1]  # epoch 1 was trained again

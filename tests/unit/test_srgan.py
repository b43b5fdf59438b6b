"""SRGAN family: architecture, losses against hand computations, training, SR volumes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import tifffile
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torch import nn

from tomosynth.errors import ConfigError
from tomosynth.losses import (
    l1_content,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
    total_variation,
)
from tomosynth.metrics.sr import cv_sr_table, sr_slice_metrics, summarize_sr_metrics
from tomosynth.models.srgan import (
    Discriminator,
    DiscriminatorConfig,
    Generator,
    GeneratorConfig,
    ProgressiveGenerator,
    SEBlock,
    StackedGenerator,
    build_generator,
    load_srgan_generator,
)
from tomosynth.sr_data import bicubic_downscale, bicubic_upscale
from tomosynth.train.common import StopRequested, StopSignal
from tomosynth.train.srgan import (
    SRGANData,
    SRGANTrainConfig,
    SRGANTrainer,
    super_resolve_volume,
    train_srgan,
)

torch.set_num_threads(1)

TINY = {"channels": 4, "n_blocks": 2, "kernel": 3, "se_reduction": 2}
TINY_D = {"base_features": 4, "max_features": 8, "n_layers": 4}


# --- architecture ----------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [2, 4, 8])
def test_generator_shape_range_and_pixel_shuffles(scale):
    torch.manual_seed(0)
    g = Generator(GeneratorConfig(scale=scale, **TINY))
    out = g(torch.rand(2, 1, 5, 7))
    assert out.shape == (2, 1, 5 * scale, 7 * scale)
    assert out.min() >= 0 and out.max() <= 1
    shuffles = [m for m in g.modules() if isinstance(m, nn.PixelShuffle)]
    assert len(shuffles) == int(math.log2(scale))
    assert all(m.upscale_factor == 2 for m in shuffles)


def test_generator_default_is_the_reports_architecture():
    g = Generator(GeneratorConfig(scale=4))
    assert len(g.trunk) == 16
    assert g.head[0].kernel_size == (9, 9) and g.tail.kernel_size == (9, 9)
    assert g.head[0].out_channels == 64
    block = g.trunk[0].body
    kinds = [type(m) for m in block]
    assert kinds == [nn.Conv2d, nn.BatchNorm2d, nn.PReLU, nn.Conv2d, nn.BatchNorm2d]


@pytest.mark.parametrize(
    ("se", "expected"), [("none", []), ("all", [0, 1, 2, 3]), ("first_half", [0, 1])]
)
def test_se_placement(se, expected):
    g = Generator(GeneratorConfig(scale=2, channels=4, n_blocks=4, kernel=3, se=se))
    with_se = [i for i, b in enumerate(g.trunk) if any(isinstance(m, SEBlock) for m in b.modules())]
    assert with_se == expected


def test_se_block_with_zero_excitation_weights_halves_every_channel():
    se = SEBlock(8, reduction=2)
    for m in se.modules():
        if isinstance(m, nn.Linear):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
    x = torch.randn(3, 8, 5, 4)
    torch.testing.assert_close(se(x), 0.5 * x)


def test_se_block_gate_follows_channel_means():
    torch.manual_seed(1)
    se = SEBlock(6, reduction=3)
    x = torch.randn(2, 6, 4, 4)
    w1, b1 = se.excite[0].weight, se.excite[0].bias
    w2, b2 = se.excite[2].weight, se.excite[2].bias
    z = x.mean(dim=(2, 3))
    gate = torch.sigmoid(torch.relu(z @ w1.T + b1) @ w2.T + b2)
    torch.testing.assert_close(se(x), x * gate[:, :, None, None])


def test_patch_discriminator_returns_a_spatial_map_and_dense_a_score():
    x = torch.rand(2, 1, 32, 32)
    patch = Discriminator(DiscriminatorConfig(head="patch", base_features=4, max_features=32))
    # 8 convs with strides 1, 2, 1, 2, ...: four halvings
    assert patch(x).shape == (2, 1, 2, 2)
    dense = Discriminator(DiscriminatorConfig(head="dense", base_features=4, max_features=32))
    assert dense(x).shape == (2, 1)


def test_discriminator_features_grow_64_to_512():
    d = Discriminator(DiscriminatorConfig())
    convs = [m for m in d.features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert [c.stride[0] for c in convs] == [1, 2, 1, 2, 1, 2, 1, 2]


def test_progressive_x8_returns_x2_x4_x8():
    g = ProgressiveGenerator(GeneratorConfig(scale=8, kind="progressive", **TINY))
    outs = g(torch.rand(1, 1, 4, 6))
    assert [tuple(o.shape[-2:]) for o in outs] == [(8, 12), (16, 24), (32, 48)]
    shuffles = [m for m in g.modules() if isinstance(m, nn.PixelShuffle)]
    assert len(shuffles) == 3


def test_stacked_x2_then_x2_equals_x4_shape():
    cfg = GeneratorConfig(scale=4, kind="stacked", stack_scales=[2, 2], **TINY)
    g = build_generator(cfg)
    assert isinstance(g, StackedGenerator)
    x = torch.rand(2, 1, 6, 5)
    inter, final = g(x)
    assert inter.shape == (2, 1, 12, 10)
    assert final.shape == Generator(GeneratorConfig(scale=4, **TINY))(x).shape == (2, 1, 24, 20)
    torch.testing.assert_close(final, g.g2(g.g1(x)))
    with pytest.raises(ConfigError, match="multiply"):
        GeneratorConfig(scale=8, kind="stacked", stack_scales=[2, 2])


def test_bad_generator_options_are_config_errors():
    with pytest.raises(ConfigError, match="scale"):
        GeneratorConfig(scale=3)
    with pytest.raises(ConfigError, match="se"):
        GeneratorConfig(se="half")
    with pytest.raises(ConfigError, match="head"):
        DiscriminatorConfig(head="sigmoid")


# --- losses ------------------------------------------------------------------------------------
def test_l1_content_by_hand():
    sr = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    hr = torch.tensor([[[[1.0, 1.0], [0.0, 3.0]]]])
    # |diffs| = 1, 0, 2, 0
    assert l1_content(sr, hr).item() == pytest.approx(0.75)


def test_lsgan_losses_by_hand():
    fake = torch.tensor([0.5, 1.0, 3.0])
    # ((0.5 - 1)^2 + 0 + (3 - 1)^2) / 3
    assert lsgan_generator_loss(fake).item() == pytest.approx(4.25 / 3)
    real = torch.tensor([1.0, 0.0])
    fake = torch.tensor([0.0, 2.0])
    # real: (0 + 1) / 2 = 0.5; fake: (0 + 4) / 2 = 2; average of the two terms
    assert lsgan_discriminator_loss(real, fake).item() == pytest.approx(1.25)
    # a perfect discriminator has zero loss
    assert lsgan_discriminator_loss(torch.ones(2, 1, 3, 3), torch.zeros(2, 1, 3, 3)).item() == 0.0


def test_total_variation_by_hand_and_against_numpy():
    x = torch.tensor([[[[0.0, 1.0], [3.0, 5.0]]]])
    # vertical diffs 3, 4 -> (9 + 16) / 2; horizontal diffs 1, 2 -> (1 + 4) / 2
    assert total_variation(x).item() == pytest.approx(12.5 + 2.5)
    assert total_variation(torch.full((2, 1, 7, 5), 0.3)).item() == 0.0
    rng = np.random.default_rng(0)
    a = rng.random((2, 1, 6, 9))
    ref = np.mean(np.diff(a, axis=2) ** 2) + np.mean(np.diff(a, axis=3) ** 2)
    assert total_variation(torch.from_numpy(a)).item() == pytest.approx(ref)


# --- training ----------------------------------------------------------------------------------
def _bone_like(n: int, size: int, seed: int) -> np.ndarray:
    """Bone-like slices in [0, 1] (the simulator's phantom when present)."""
    try:
        from tomosynth.simulate import bone_phantom
    except ImportError:  # pragma: no cover - fallback until the simulator exists
        bone_phantom = None
    if bone_phantom is not None:
        vol = bone_phantom(size, n, seed=seed)
        return np.clip(vol / vol.max(), 0, 1).astype(np.float32)
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal((n, size, size)), (1.5, 2, 2))
    field /= field.std()
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    r = np.hypot(yy, xx)[None]
    vol = np.where(r < 0.3 * size, 0.3 + 0.6 * (np.abs(field) < 0.25), 0.0)
    vol = np.where((r >= 0.3 * size) & (r < 0.4 * size), 1.0, vol)
    return vol.astype(np.float32)


def _tiny_cfg(**kw) -> SRGANTrainConfig:
    base = {
        "scale": 2,
        "generator": dict(TINY),
        "discriminator": dict(TINY_D),
        "weights": {"l1": 1.0, "adversarial": 1e-3, "tv": 0.0},
        "epochs": 3,
        "pretrain_epochs": 1,
        "batch_size": 4,
        "lr": 1e-3,
        "patch_size": 16,
        "seed": 0,
        "device": "cpu",
    }
    return SRGANTrainConfig(**{**base, **kw})


def test_short_training_beats_bicubic_on_held_out_slices(tmp_path):
    vol = _bone_like(20, 64, seed=3)
    train, val, test = vol[:14], vol[14:17], vol[17:]
    scale = 2
    cfg = _tiny_cfg(
        scale=scale,
        generator={"channels": 16, "n_blocks": 2, "kernel": 5},
        discriminator={"base_features": 8, "max_features": 32, "n_layers": 4},
        epochs=16,
        pretrain_epochs=8,
        batch_size=8,
        patch_size=32,
        patches_per_image=4,
    )
    result = train_srgan(
        cfg,
        SRGANData(train, bicubic_downscale(train, scale), val, bicubic_downscale(val, scale)),
        tmp_path / "model",
    )
    assert 1 <= result["best_epoch"] <= 16
    g, meta = load_srgan_generator(tmp_path / "model" / "best.pt")
    assert meta["epoch"] == result["best_epoch"] and meta["seed"] == 0
    lr = bicubic_downscale(test, scale)
    with torch.no_grad():
        sr = g(torch.from_numpy(lr[:, None]))[:, 0].numpy()
    bic = bicubic_upscale(lr, scale)
    psnr_sr = np.mean(
        [peak_signal_noise_ratio(h, s, data_range=1) for h, s in zip(test, sr, strict=True)]
    )
    psnr_bic = np.mean(
        [peak_signal_noise_ratio(h, b, data_range=1) for h, b in zip(test, bic, strict=True)]
    )
    assert psnr_sr > psnr_bic + 0.5
    log = pd.read_csv(tmp_path / "model" / "log.csv")
    assert list(log["epoch"]) == list(range(1, 17))
    assert set(log["phase"]) == {"pretrain", "adversarial"}
    assert (log.loc[log["phase"] == "pretrain", "loss_d"] == 0).all()
    assert (log.loc[log["phase"] == "adversarial", "loss_d"] > 0).all()


def test_interrupted_training_resumes_to_the_same_result(tmp_path):
    vol = _bone_like(6, 32, seed=1)
    hr, val = vol[:4], vol[4:]
    lr, val_lr = bicubic_downscale(hr, 2), bicubic_downscale(val, 2)
    cfg = _tiny_cfg(epochs=3)
    ref = train_srgan(cfg, SRGANData(hr, lr, val, val_lr), tmp_path / "ref")

    stop = StopSignal()
    stop.request()  # as a SIGTERM would: stop after the first epoch
    with pytest.raises(StopRequested):
        train_srgan(cfg, SRGANData(hr, lr, val, val_lr), tmp_path / "run", stop=stop)
    assert len(pd.read_csv(tmp_path / "run" / "log.csv")) == 1
    (tmp_path / "run" / "best.pt").unlink()  # as Snakemake removes outputs before a rerun
    again = train_srgan(cfg, SRGANData(hr, lr, val, val_lr), tmp_path / "run")
    assert again == ref
    a = pd.read_csv(tmp_path / "ref" / "log.csv")
    b = pd.read_csv(tmp_path / "run" / "log.csv")
    pd.testing.assert_series_equal(a["val_psnr"], b["val_psnr"])
    ga, _ = load_srgan_generator(tmp_path / "ref" / "best.pt")
    gb, _ = load_srgan_generator(tmp_path / "run" / "best.pt")
    for (ka, va), (kb, vb) in zip(ga.state_dict().items(), gb.state_dict().items(), strict=True):
        assert ka == kb
        torch.testing.assert_close(va, vb)

    other = _tiny_cfg(epochs=1, lr=1e-4)
    with pytest.raises(ConfigError, match="another config"):
        train_srgan(
            other, SRGANData(hr, lr, val, val_lr), tmp_path / "run", restart_on_mismatch=False
        )
    fresh = train_srgan(
        other, SRGANData(hr, lr, val, val_lr), tmp_path / "run", restart_on_mismatch=True
    )
    assert fresh == train_srgan(other, SRGANData(hr, lr, val, val_lr), tmp_path / "fresh")
    assert len(pd.read_csv(tmp_path / "run" / "log.csv")) == 1


def _generator_weights(path, key=("model", "generator")) -> dict:
    state = torch.load(path, map_location="cpu", weights_only=True)
    for k in key:
        state = state[k]
    return state


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_best_checkpoint_holds_the_best_epochs_weights_not_the_last(tmp_path):
    # Validation engineered so that training makes it worse: the validation HR images are
    # the inverted truth, so the better the generator learns LR -> HR, the lower the
    # validation PSNR; the best epoch is the first, not the last.
    vol = _bone_like(6, 32, seed=1)
    hr, val = vol[:4], vol[4:]
    lr, val_lr = bicubic_downscale(hr, 2), bicubic_downscale(val, 2)
    cfg = _tiny_cfg(epochs=3, pretrain_epochs=3, lr=1e-2)
    ref = train_srgan(cfg, SRGANData(hr, lr, 1.0 - val, val_lr), tmp_path / "ref")
    log = pd.read_csv(tmp_path / "ref" / "log.csv")
    best = int(log.loc[log["val_psnr"].idxmax(), "epoch"])
    assert ref["best_epoch"] == best == 1 and log["val_psnr"].is_monotonic_decreasing

    # The weights of every epoch, read from latest.pt of a run stepped one epoch at a time
    # (each call stops after one epoch, as a SIGTERM would, and the next one resumes).
    per_epoch = {}
    for epoch in range(1, cfg.epochs):
        stop = StopSignal()
        stop.request()
        with pytest.raises(StopRequested):
            train_srgan(cfg, SRGANData(hr, lr, 1.0 - val, val_lr), tmp_path / "run", stop=stop)
        per_epoch[epoch] = _generator_weights(tmp_path / "run" / "latest.pt")
    (tmp_path / "run" / "best.pt").unlink()  # as Snakemake removes outputs before a rerun
    assert train_srgan(cfg, SRGANData(hr, lr, 1.0 - val, val_lr), tmp_path / "run") == ref
    per_epoch[cfg.epochs] = _generator_weights(tmp_path / "run" / "latest.pt")
    final = _generator_weights(tmp_path / "ref" / "latest.pt")
    assert _same_weights(per_epoch[cfg.epochs], final)  # stepping reproduces the run
    assert not _same_weights(per_epoch[best], final)

    # best.pt of the uninterrupted run, the copy inside its latest.pt, and the best.pt a
    # resumed run rebuilds from latest.pt all hold the best epoch's weights.
    for path, key in (
        (tmp_path / "ref" / "best.pt", ("generator",)),
        (tmp_path / "ref" / "latest.pt", ("best", "generator")),
        (tmp_path / "run" / "best.pt", ("generator",)),
    ):
        assert _same_weights(_generator_weights(path, key), per_epoch[best]), (path, key)
    g, meta = load_srgan_generator(tmp_path / "run" / "best.pt")
    assert meta["epoch"] == best
    assert meta["val_psnr"] == pytest.approx(log["val_psnr"].iloc[0], rel=1e-12)


@pytest.mark.parametrize("kind", ["progressive", "stacked"])
def test_high_scale_generators_train(tmp_path, kind):
    vol = _bone_like(4, 32, seed=2)
    gen = {**TINY, "kind": kind, "n_blocks": 1, "stack_scales": [2, 2]}
    cfg = _tiny_cfg(scale=4, generator=gen, epochs=2, patch_size=16)
    r = train_srgan(
        cfg,
        SRGANData(vol[:3], bicubic_downscale(vol[:3], 4), vol[3:], bicubic_downscale(vol[3:], 4)),
        tmp_path,
    )
    assert np.isfinite(r["best_psnr"])
    g, _ = load_srgan_generator(tmp_path / "best.pt")
    assert (
        type(g).__name__
        == {"progressive": "ProgressiveGenerator", "stacked": "StackedGenerator"}[kind]
    )


def test_stacked_g1_gets_only_its_own_loss_gradient():
    """With only the L1 weight, G1 learns from L1(G1(x), HR degraded), never from G2's L1."""
    torch.manual_seed(0)
    gen = {**TINY, "kind": "stacked", "stack_scales": [2, 2]}
    cfg = _tiny_cfg(scale=4, generator=gen, weights={"l1": 1.0, "adversarial": 0.0, "tv": 0.0})
    trainer = SRGANTrainer(cfg, torch.device("cpu"))
    trainer.opt_g = torch.optim.SGD(trainer.generator.parameters(), lr=0.0)  # keep weights
    lr, hr = torch.rand(2, 1, 4, 4), torch.rand(2, 1, 16, 16)
    trainer.step(lr, hr, adversarial=True)
    g1 = trainer.generator.g1
    got = [p.grad.clone() for p in g1.parameters()]
    g1.zero_grad()
    l1_content(g1(lr), bicubic_downscale(hr, 2)).backward()
    for a, p in zip(got, g1.parameters(), strict=True):
        torch.testing.assert_close(a, p.grad)


# --- SR volumes and tables -----------------------------------------------------------------
def test_super_resolve_volume_layout_and_metrics(tmp_path):
    import cv2

    vol = _bone_like(6, 32, seed=4)
    hr_dir = tmp_path / "png"
    hr_dir.mkdir()
    names = []
    for i, img in enumerate(vol, start=4):
        names.append(f"slice_{i:05d}.png")
        cv2.imwrite(str(hr_dir / names[-1]), np.rint(img * 255).astype(np.uint8))
    hr8 = np.stack([cv2.imread(str(hr_dir / n), cv2.IMREAD_UNCHANGED) for n in names]) / 255.0
    cfg = _tiny_cfg(epochs=1)
    hr = hr8.astype(np.float32)
    train_srgan(
        cfg,
        SRGANData(hr[:4], bicubic_downscale(hr[:4], 2), hr[4:], bicubic_downscale(hr[4:], 2)),
        tmp_path / "m",
    )
    out = tmp_path / "sr" / "exp_d_x2"
    meta = {"scan": "bone", "preset": "exp_d", "fold": None, "seed": 0}
    n = super_resolve_volume(
        tmp_path / "m" / "best.pt", out, scale=2, hr_folder=hr_dir, device="cpu", meta=meta
    )
    assert n == 6
    for part in ("sr", "lr", "hr"):
        files = sorted(p.name for p in (out / part).iterdir())
        assert files == [f"slice_{i:05d}.tiff" for i in range(4, 10)]
        img = tifffile.imread(out / part / files[0])
        assert img.dtype == np.float32 and img.shape == (32, 32)
    np.testing.assert_allclose(tifffile.imread(out / "hr" / "slice_00005.tiff"), hr[1], atol=1e-7)
    lr_up = bicubic_upscale(bicubic_downscale(hr[1], 2), 2)
    np.testing.assert_allclose(tifffile.imread(out / "lr" / "slice_00005.tiff"), lr_up, atol=1e-6)
    with pytest.raises(ConfigError, match="scale"):
        super_resolve_volume(tmp_path / "m" / "best.pt", tmp_path / "x", scale=4, hr_folder=hr_dir)

    test_names = ["slice_00006.png", "slice_00008.png"]
    per_slice = sr_slice_metrics(out, test_names, ssim_window="uniform")
    assert len(per_slice) == 4
    assert per_slice["convention"].str.contains("7x7 uniform").all()
    sr = np.stack([tifffile.imread(out / "sr" / f"slice_0000{i}.tiff") for i in (6, 8)])
    ref_psnr = [peak_signal_noise_ratio(hr[k], sr[j], data_range=1) for j, k in enumerate((2, 4))]
    ref_ssim = [structural_similarity(hr[k], sr[j], data_range=1) for j, k in enumerate((2, 4))]
    rows = per_slice[per_slice["method"] == "srgan"]
    np.testing.assert_allclose(rows["psnr"], ref_psnr, rtol=1e-6)
    np.testing.assert_allclose(rows["ssim"], ref_ssim, atol=1e-6)

    # a second preset at the same scale: one bicubic row only
    table = summarize_sr_metrics(
        pd.concat(
            [
                per_slice,
                per_slice.assign(
                    preset=lambda d: np.where(d["method"] == "srgan", "exp_a", d["preset"])
                ),
            ]
        )
    )
    assert sorted(table["preset"]) == ["bicubic", "exp_a", "exp_d"]
    row = table[table["preset"] == "exp_d"].iloc[0]
    assert row["n_slices"] == 2
    assert row["psnr_mean"] == pytest.approx(np.mean(ref_psnr))
    assert row["psnr_std"] == pytest.approx(np.std(ref_psnr))
    assert row["ssim_mean"] == pytest.approx(np.mean(ref_ssim), abs=1e-6)


def test_sr_table_bicubic_row_is_opencv_inter_cubic_with_the_gaussian_ssim(tmp_path):
    """The SR table's bicubic row, recomputed here from the HR PNGs with OpenCV and
    scikit-image alone: LR = INTER_CUBIC shrink, bicubic = INTER_CUBIC enlargement."""
    import cv2

    vol = _bone_like(6, 32, seed=7)
    vol[:, 4:12, 20:30] = 0.85  # an off-centre block: no symmetry to hide a transposition
    hr_dir = tmp_path / "png"
    hr_dir.mkdir()
    names = [f"slice_{i:05d}.png" for i in range(4, 10)]
    for name, img in zip(names, vol, strict=True):
        cv2.imwrite(str(hr_dir / name), np.rint(img * 255).astype(np.uint8))
    cfg = _tiny_cfg(scale=4, epochs=1)
    hr = vol[:4]
    train_srgan(
        cfg,
        SRGANData(hr, bicubic_downscale(hr, 4), vol[4:], bicubic_downscale(vol[4:], 4)),
        tmp_path / "m",
    )
    out = tmp_path / "sr" / "exp_d_x4"
    super_resolve_volume(
        tmp_path / "m" / "best.pt",
        out,
        scale=4,
        hr_folder=hr_dir,
        device="cpu",
        meta={"scan": "bone", "preset": "exp_d", "seed": 0},
    )
    test_names = names[1::2]
    table = summarize_sr_metrics(sr_slice_metrics(out, test_names))
    row = table[table["method"] == "bicubic"].iloc[0]

    ref_psnr, ref_ssim = [], []
    for name in test_names:
        h = cv2.imread(str(hr_dir / name), cv2.IMREAD_UNCHANGED).astype(np.float32) / 255.0
        lr = np.clip(cv2.resize(h, (8, 8), interpolation=cv2.INTER_CUBIC), 0, 1)
        up = np.clip(cv2.resize(lr, (32, 32), interpolation=cv2.INTER_CUBIC), 0, 1)
        ref_psnr.append(peak_signal_noise_ratio(h, up, data_range=1))
        ref_ssim.append(
            structural_similarity(
                h, up, data_range=1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
            )
        )
    assert row["n_slices"] == 3
    assert row["psnr_mean"] == pytest.approx(np.mean(ref_psnr), abs=1e-5)
    assert row["psnr_std"] == pytest.approx(np.std(ref_psnr), abs=1e-5)
    assert row["ssim_mean"] == pytest.approx(np.mean(ref_ssim), abs=1e-6)
    assert row["ssim_std"] == pytest.approx(np.std(ref_ssim), abs=1e-6)
    assert "Gaussian window sigma 1.5" in row["convention"]
    assert "INTER_CUBIC" in row["convention"]


def test_cv_table_per_fold_and_pooled():
    rows = []
    values = {("a", 0): [30.0, 32.0], ("b", 1): [20.0]}
    for (scan, fold), psnrs in values.items():
        for i, p in enumerate(psnrs):
            rows.append(
                {
                    "scan": scan,
                    "preset": "exp_d",
                    "scale": 4,
                    "method": "srgan",
                    "fold": fold,
                    "slice": f"s{i}",
                    "psnr": p,
                    "ssim": p / 100,
                    "seed": 0,
                    "convention": "c",
                }
            )
    table = cv_sr_table(pd.DataFrame(rows))
    assert set(table["convention"]) == {"c"}
    by_fold = table.set_index("fold")
    assert by_fold.loc["0", "psnr_mean"] == 31.0 and by_fold.loc["0", "n_slices"] == 2
    assert by_fold.loc["1", "psnr_mean"] == 20.0
    # pooled over slices, not over folds: (30 + 32 + 20) / 3
    assert by_fold.loc["pooled", "psnr_mean"] == pytest.approx(82 / 3)
    assert by_fold.loc["pooled", "psnr_std"] == pytest.approx(np.std([30, 32, 20]))
    assert by_fold.loc["pooled", "scans"] == "a+b"


def test_super_resolve_real_pairs_and_missing_test_slices(tmp_path):
    import cv2

    rng = np.random.default_rng(5)
    for folder, indices, size in (("hr", range(4, 8), 16), ("lr", range(2, 3), 8)):
        (tmp_path / folder).mkdir()
        for i in indices:
            img = rng.integers(0, 256, (size, size), dtype=np.uint8)
            cv2.imwrite(str(tmp_path / folder / f"slice_{i:05d}.png"), img)
    vol = _bone_like(3, 16, seed=6)
    train_srgan(
        _tiny_cfg(epochs=1, patch_size=8),
        SRGANData(vol[:2], bicubic_downscale(vol[:2], 2), vol[2:], bicubic_downscale(vol[2:], 2)),
        tmp_path / "m",
    )
    out = tmp_path / "sr"
    n = super_resolve_volume(
        tmp_path / "m" / "best.pt",
        out,
        scale=2,
        hr_folder=tmp_path / "hr",
        lr_folder=tmp_path / "lr",
        slice_stride=2,
        device="cpu",
        meta={"scan": "bone", "preset": "exp_d"},
    )
    # HR slices 4 and 5 pair with LR slice 2; 6 and 7 would need the absent LR slice 3
    assert n == 2 and sorted(p.name for p in (out / "sr").iterdir()) == [
        "slice_00004.tiff",
        "slice_00005.tiff",
    ]
    lr2 = cv2.imread(str(tmp_path / "lr" / "slice_00002.png"), cv2.IMREAD_UNCHANGED) / 255.0
    np.testing.assert_allclose(
        tifffile.imread(out / "lr" / "slice_00005.tiff"),
        bicubic_upscale(lr2.astype(np.float32), 2),
        atol=1e-6,
    )
    per_slice = sr_slice_metrics(out, ["slice_00005.png", "slice_00006.png"])
    assert set(per_slice["slice"]) == {"slice_00005.tiff"}


def test_bicubic_skip_adds_the_network_to_a_bicubic_upscaling():
    # generator.skip: bicubic. With the last convolution zeroed the generator is a bicubic
    # upscaler: compare with OpenCV's INTER_CUBIC (the project's baseline, an independent
    # implementation) away from the borders, where the two differ only in edge handling
    import cv2

    torch.manual_seed(0)
    g = Generator(GeneratorConfig(scale=4, channels=8, n_blocks=1, kernel=3, skip="bicubic"))
    g.eval()
    lr = np.random.default_rng(1).random((2, 1, 12, 10)).astype(np.float32) * 0.6 + 0.2
    with torch.no_grad():
        nn.init.zeros_(g.tail.weight)
        nn.init.zeros_(g.tail.bias)
        out = g(torch.from_numpy(lr)).numpy()
        plain = Generator(GeneratorConfig(scale=4, channels=8, n_blocks=1, kernel=3))
        nn.init.zeros_(plain.tail.weight)
        nn.init.zeros_(plain.tail.bias)
        assert np.allclose(plain.eval()(torch.from_numpy(lr)).numpy(), 0.5)  # (tanh 0 + 1) / 2
    assert out.shape == (2, 1, 48, 40)
    for i in range(2):
        ref = cv2.resize(lr[i, 0], (40, 48), interpolation=cv2.INTER_CUBIC)
        np.testing.assert_allclose(out[i, 0, 8:-8, 8:-8], ref[8:-8, 8:-8], atol=1e-5)
    # the correction is learnt on top: a non-zero tail changes the output
    nn.init.constant_(g.tail.bias, 0.05)
    with torch.no_grad():
        assert np.abs(g(torch.from_numpy(lr)).numpy() - out).max() == pytest.approx(0.05, abs=1e-5)
    with pytest.raises(ConfigError, match="skip"):
        GeneratorConfig(kind="progressive", skip="bicubic")
    with pytest.raises(ConfigError, match="skip"):
        GeneratorConfig(skip="nearest")

"""LR-pitch peaks (checkerboard), HF energy, ICNR and resize-convolution, straight-through
clamp of the SRGAN generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from tomosynth.errors import ConfigError
from tomosynth.losses import lr_pitch_penalty, lr_pitch_power
from tomosynth.metrics.degrade import dot_grid
from tomosynth.metrics.spectral import (
    hf_energy,
    lr_phase_means,
    lr_pitch_energy,
    lr_pitch_peak,
    lr_pitch_ratio,
)
from tomosynth.models.srgan import (
    GeneratorConfig,
    UpsampleBlock,
    build_generator,
    clamp_unit_st,
    icnr_,
)
from tomosynth.sr_data import bicubic_downscale
from tomosynth.train.srgan import SRGANTrainConfig

torch.set_num_threads(1)


def _smooth_images(n: int = 4, size: int = 128, sigma: float = 2.0, seed: int = 0) -> np.ndarray:
    """Stationary textures in [0, 1] without any grid (stand-ins for HR slices)."""
    rng = np.random.default_rng(seed)
    x = np.stack([ndimage.gaussian_filter(rng.random((size, size)), sigma) for _ in range(n)])
    return ((x - x.min()) / (x.max() - x.min())).astype(np.float32)


# --- the measure --------------------------------------------------------------------------------
def test_white_noise_is_at_the_floor_and_a_dot_grid_is_a_peak():
    rng = np.random.default_rng(1)
    noise = rng.standard_normal((16, 64, 64))
    # a flat spectrum: the pitch bins are as high as the ring around them
    assert lr_pitch_peak(noise, 4) == pytest.approx(1.0, abs=0.15)
    grid = np.zeros((64, 64))
    grid[::4, ::4] = 1.0  # dots at the 4 px LR pitch: lines at every (a/4, b/4)
    dotted = noise + 2.0 * grid
    assert lr_pitch_peak(dotted, 4) > 5.0
    # the pitch-2 frequencies (multiples of 1/2) are among the dot grid's lines too
    assert lr_pitch_peak(dotted, 2) > 5.0


def test_a_cosine_at_half_the_lr_pitch_frequency_is_not_counted():
    rng = np.random.default_rng(2)
    noise = rng.standard_normal((8, 64, 64))
    j = np.arange(64)
    off_pitch = np.cos(2 * np.pi * j * 6 / 64)[None, None, :]  # 6/64 cycles: between pitches
    on_pitch = np.cos(2 * np.pi * j * 16 / 64)[None, None, :]  # 1/4 cycles: the x4 pitch
    assert lr_pitch_peak(noise + off_pitch, 4) == pytest.approx(lr_pitch_peak(noise, 4), rel=0.1)
    assert lr_pitch_peak(noise + on_pitch, 4) > 10 * lr_pitch_peak(noise, 4)


def test_real_hr_is_the_floor_and_its_ratio_is_one():
    from tomosynth.simulate import bone_phantom

    hr = bone_phantom(128, 6, seed=1)
    hr = (hr - hr.min()) / (hr.max() - hr.min())
    assert lr_pitch_ratio(hr, hr, 4) == pytest.approx(1.0)
    assert 0.5 < lr_pitch_peak(hr, 4) < 1.5
    grid = np.zeros(hr.shape[-2:])
    grid[1::4, 2::4] = 0.1
    assert lr_pitch_ratio(hr + grid, hr, 4) > 1.2
    assert lr_pitch_peak(hr + grid, 4) > 2 * lr_pitch_peak(hr, 4)
    # a smoother version of HR (an L1-trained look) has less energy there, not more
    assert lr_pitch_ratio(ndimage.gaussian_filter(hr, (0, 1, 1)), hr, 4) < 0.5


def test_pitch_energy_of_a_cosine_by_parseval():
    # a cosine of amplitude A at the pitch frequency 1/4 along x: with the Hann window its
    # power sits in the 3 bins around +-f (the window's main lobe); Parseval on the
    # windowed image gives energy per pixel A^2 / 2 * mean(hann^2) (both lines together)
    n, amp = 64, 0.7
    j = np.arange(n)
    img = np.repeat(amp * np.cos(2 * np.pi * j / 4)[None], n, axis=0)
    hann = np.outer(np.hanning(n), np.hanning(n))
    expected = np.sum((img * hann) ** 2) / n**2
    assert lr_pitch_energy(img, 4) == pytest.approx(expected, rel=0.02)


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="multiples"):
        lr_pitch_peak(np.zeros((30, 32)), 4)
    with pytest.raises(ValueError, match="multiples"):
        lr_pitch_peak(np.zeros((8, 8)), 4)  # too small for the ring


def test_hf_energy_against_an_explicit_stencil():
    rng = np.random.default_rng(3)
    x = rng.random((3, 9, 11))
    p = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="symmetric")  # scipy's 'reflect'
    lap = p[:, :-2, 1:-1] + p[:, 2:, 1:-1] + p[:, 1:-1, :-2] + p[:, 1:-1, 2:] - 4 * x
    assert hf_energy(x) == pytest.approx(np.mean(lap**2))
    assert hf_energy(np.full((5, 5), 0.3)) == 0.0
    # smoothing lowers it
    assert hf_energy(ndimage.gaussian_filter(x, (0, 1, 1))) < hf_energy(x) / 4


# --- ICNR and resize-convolution ------------------------------------------------------------------
def test_icnr_gives_every_subpixel_the_same_kernel():
    torch.manual_seed(0)
    conv = icnr_(torch.nn.Conv2d(3, 12, 3, padding=1))
    w = conv.weight.reshape(3, 4, 3, 3, 3)
    for k in range(1, 4):
        torch.testing.assert_close(w[:, k], w[:, 0])
    assert torch.all(conv.bias == 0)
    # so conv + PixelShuffle(2) is nearest-neighbour upsampling of one 3-channel conv
    x = torch.randn(2, 3, 5, 6)
    shuffled = torch.nn.PixelShuffle(2)(conv(x))
    single = torch.nn.functional.conv2d(x, w[:, 0], padding=1)
    torch.testing.assert_close(shuffled, single.repeat_interleave(2, 2).repeat_interleave(2, 3))


def _untrained_sr(seed: int, skip: str, upsample: str, plain: bool = False) -> np.ndarray:
    hr = _smooth_images()
    torch.manual_seed(seed)
    g = build_generator(
        GeneratorConfig(scale=4, channels=16, n_blocks=2, skip=skip, upsample=upsample)
    )
    if plain:  # PyTorch's default init: independent kernels and biases per sub-pixel
        for m in g.modules():
            if isinstance(m, UpsampleBlock):
                m.conv.reset_parameters()
    g.eval()
    with torch.no_grad():
        return g(torch.from_numpy(bicubic_downscale(hr, 4)[:, None]))[:, 0].numpy()


def _peak_ratio(sr: np.ndarray, hr: np.ndarray) -> float:
    return lr_pitch_peak(sr, 4) / lr_pitch_peak(hr, 4)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_icnr_generator_has_no_lr_pitch_peak_and_a_plain_init_has_one(seed):
    hr = _smooth_images()
    for upsample in ("pixelshuffle", "resize"):
        sr = _untrained_sr(seed, "bicubic", upsample)
        assert _peak_ratio(sr, hr) <= 1.2
        assert lr_pitch_ratio(sr, hr, 4) <= 1.2
    plain = _untrained_sr(seed, "bicubic", "pixelshuffle", plain=True)
    assert _peak_ratio(plain, hr) > 10 and lr_pitch_ratio(plain, hr, 4) > 10
    # without the skip the output is a small texture around 0.5: no peak with ICNR either
    icnr = _peak_ratio(_untrained_sr(seed, "none", "pixelshuffle"), hr)
    plain = _peak_ratio(_untrained_sr(seed, "none", "pixelshuffle", plain=True), hr)
    assert plain > 100 * icnr


def test_resize_upsample_has_no_pixel_shuffle_and_bad_mode_is_a_config_error():
    g = build_generator(GeneratorConfig(scale=4, channels=4, n_blocks=1, upsample="resize"))
    assert not any(isinstance(m, torch.nn.PixelShuffle) for m in g.modules())
    assert g(torch.rand(1, 1, 5, 6)).shape == (1, 1, 20, 24)
    with pytest.raises(ConfigError, match="upsample"):
        GeneratorConfig(upsample="deconv")


# --- straight-through clamp ----------------------------------------------------------------------
def test_straight_through_clamp_keeps_the_gradient_of_saturated_pixels():
    x = torch.tensor([-0.5, 0.3, 1.7], requires_grad=True)
    y = clamp_unit_st(x)
    torch.testing.assert_close(y, torch.tensor([0.0, 0.3, 1.0]))
    (y * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([1.0, 2.0, 3.0]))
    # a plain clamp would have cut the saturated ones
    x2 = x.detach().clone().requires_grad_(True)
    (x2.clamp(0, 1) * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    torch.testing.assert_close(x2.grad, torch.tensor([0.0, 2.0, 0.0]))


def test_saturated_bicubic_skip_generator_still_gets_content_gradients():
    torch.manual_seed(0)
    g = build_generator(GeneratorConfig(scale=2, channels=4, n_blocks=1, kernel=3, skip="bicubic"))
    with torch.no_grad():  # push every output pixel far above 1
        g.tail.bias.fill_(5.0)
    lr = torch.rand(2, 1, 6, 6)
    out = g(lr)
    assert torch.all(out == 1.0)
    torch.nn.functional.l1_loss(out, torch.full_like(out, 0.5)).backward()
    assert g.tail.bias.grad.item() > 0  # the L1 pull towards 0.5 lowers the bias


# --- the LR-pitch penalty of the generator loss ---------------------------------------------------
def _hr_like(n: int = 4, size: int = 64, seed: int = 5) -> np.ndarray:
    """Bone-phantom slices with noise (as reconstructed slices): no grid at any pitch."""
    from tomosynth.simulate import bone_phantom

    hr = bone_phantom(size, n, seed=seed)
    hr = (hr - hr.min()) / (hr.max() - hr.min())
    rng = np.random.default_rng(seed)
    return hr + 0.05 * ndimage.gaussian_filter(rng.standard_normal(hr.shape), (0, 0.7, 0.7))


def _t(x: np.ndarray, grad: bool = False) -> torch.Tensor:
    return torch.tensor(x[:, None], dtype=torch.float64, requires_grad=grad)


@pytest.mark.parametrize("scale", [2, 4])
def test_lr_pitch_power_is_numpys_lr_pitch_energy(scale):
    hr = _hr_like()
    grid = hr + 0.05 * dot_grid(hr.shape[-2:], phase=(1, 2), pitch=scale)
    for x in (hr, grid, ndimage.gaussian_filter(hr, (0, 1, 1))):
        assert lr_pitch_power(_t(x), scale).item() == pytest.approx(
            lr_pitch_energy(x, scale), rel=1e-9
        )


@pytest.mark.parametrize("scale", [2, 4])
def test_pitch_penalty_is_zero_without_a_grid_and_pulls_on_a_dot_grid(scale):
    hr = _hr_like()
    # HR-like images without a grid: HR itself and a smoothed (L1-trained looking) version
    for x in (hr, ndimage.gaussian_filter(hr, (0, 1, 1))):
        sr = _t(x, grad=True)
        penalty = lr_pitch_penalty(sr, _t(hr), scale)
        assert penalty.item() == 0.0
        penalty.backward()
        assert torch.count_nonzero(sr.grad) == 0  # no pull at all
    # a dot grid at the LR pitch: the excess over HR, of the batch and of its mean image
    # (content averages out there, the grid does not), as numpy measures it
    dotted = hr + 0.1 * dot_grid(hr.shape[-2:], phase=(1, 1), pitch=scale)
    batch = np.log(lr_pitch_energy(dotted, scale) / lr_pitch_energy(hr, scale))
    mean = np.log(lr_pitch_energy(dotted.mean(0), scale) / lr_pitch_energy(hr.mean(0), scale))
    assert batch > 0.2 and mean > 0.2
    expected = batch + mean
    sr = _t(dotted, grad=True)
    penalty = lr_pitch_penalty(sr, _t(hr), scale)
    assert penalty.item() == pytest.approx(expected, rel=1e-6)  # eps 1e-12 in E
    penalty.backward()
    assert torch.isfinite(sr.grad).all() and sr.grad.abs().sum() > 0
    # a small step down the gradient lowers the grid's power at the pitch
    stepped = (sr - 1e-3 * sr.grad / sr.grad.abs().max()).detach().numpy()[:, 0]
    assert lr_pitch_energy(stepped, scale) < lr_pitch_energy(dotted, scale)


def test_pitch_penalty_rejects_mismatched_or_small_batches():
    with pytest.raises(ValueError, match="sr"):
        lr_pitch_penalty(torch.zeros(1, 1, 32, 32), torch.zeros(1, 1, 16, 16), 4)
    with pytest.raises(ValueError, match="multiples"):
        lr_pitch_penalty(torch.zeros(1, 1, 12, 12), torch.zeros(1, 1, 12, 12), 4)
    with pytest.raises(ConfigError, match="pitch_weight"):
        SRGANTrainConfig(scale=4, patch_size=8, pitch_weight=0.1)
    with pytest.raises(ConfigError, match="pitch_weight"):
        SRGANTrainConfig(scale=4, pitch_weight=-1.0)


def test_training_with_the_pitch_penalty_ends_with_less_lr_pitch_energy(tmp_path, monkeypatch):
    """Same seed and data, penalty off and on: a generator that starts with a checkerboard
    (sub-pixel convs with PyTorch's plain init instead of ICNR) keeps more of it without the
    penalty than with it."""
    import pandas as pd

    import tomosynth.models.srgan as srgan_models
    from tomosynth.sr_data import SRGANData
    from tomosynth.train.srgan import train_srgan

    monkeypatch.setattr(srgan_models, "icnr_", lambda conv, factor=2: conv)
    hr = _smooth_images(n=10, size=64, seed=2)
    lr = bicubic_downscale(hr, 4)
    data = SRGANData(hr[:8], lr[:8], hr[8:], lr[8:])
    pitch = {}
    for w in (0.0, 0.01):
        cfg = SRGANTrainConfig(
            scale=4,
            generator={"channels": 8, "n_blocks": 1, "kernel": 3, "skip": "bicubic"},
            discriminator={"base_features": 4, "max_features": 8, "n_layers": 4},
            epochs=6,
            pretrain_epochs=6,
            batch_size=4,
            lr=1e-3,
            patch_size=64,
            patches_per_image=4,
            device="cpu",
            pitch_weight=w,
        )
        train_srgan(cfg, data, tmp_path / str(w), progress_bar=False)
        pitch[w] = pd.read_csv(tmp_path / str(w) / "log.csv")["val_pitch"].to_numpy()
    assert pitch[0.0][0] > 10  # the plain init's checkerboard
    assert pitch[0.01][-1] < 0.8 * pitch[0.0][-1]


def test_lr_phase_means_by_explicit_loops():
    rng = np.random.default_rng(4)
    x = rng.random((2, 8, 12))
    ref = np.zeros((4, 4))
    for p in range(4):
        for q in range(4):
            ref[p, q] = np.mean(
                [x[i, p + 4 * k, q + 4 * m] for i in range(2) for k in range(2) for m in range(3)]
            )
    np.testing.assert_allclose(lr_phase_means(x, 4), ref)
    # a dot grid is a peak at its phase; noise-free HR-like content has none
    grid = lr_phase_means(dot_grid((64, 64), phase=(1, 2), pitch=4), 4)
    assert grid[1, 2] == pytest.approx(1 - 1 / 16) and np.delete(grid.ravel(), 6) == pytest.approx(
        -1 / 16
    )
    with pytest.raises(ValueError, match="multiple"):
        lr_phase_means(np.zeros((10, 12)), 4)

"""PSNR and SSIM against scikit-image's reference implementations."""

import math

import numpy as np
import pytest
import torch
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from tomosynth.errors import DataError
from tomosynth.metrics.image import mse, psnr, ssim

torch.set_num_threads(1)


def _ref(fn, a, b, data_range):
    return np.array([fn(x, y, data_range=data_range) for x, y in zip(a, b, strict=True)])


@pytest.fixture
def float_pair():
    rng = np.random.default_rng(7)
    a = rng.random((4, 33, 47))
    b = np.clip(a + 0.15 * rng.standard_normal(a.shape), 0.0, 1.0)
    return a, b


@pytest.fixture
def camera_pair():
    """Real-image crops (uint8) and a noisy, shifted copy of them."""
    cam = data.camera()
    a = np.stack([cam[0:96, 0:128], cam[200:296, 150:278], cam[400:496, 300:428]])
    rng = np.random.default_rng(3)
    noisy = a.astype(int) + rng.integers(-25, 26, a.shape) + 5
    return a, np.clip(noisy, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("data_range", [1.0, 2.5])
def test_float_images_match_skimage(float_pair, data_range):
    a, b = float_pair
    np.testing.assert_allclose(
        psnr(a, b, data_range), _ref(peak_signal_noise_ratio, a, b, data_range), rtol=0, atol=1e-6
    )
    np.testing.assert_allclose(
        ssim(a, b, data_range), _ref(structural_similarity, a, b, data_range), rtol=0, atol=1e-6
    )


def test_real_uint8_images_match_skimage(camera_pair):
    a, b = camera_pair
    ref_ssim = _ref(structural_similarity, a, b, 255)
    assert ref_ssim.std() > 0.01  # the crops differ, so a batch mix-up would show
    np.testing.assert_allclose(ssim(a, b, 255), ref_ssim, rtol=0, atol=1e-6)
    np.testing.assert_allclose(
        psnr(a, b, 255), _ref(peak_signal_noise_ratio, a, b, 255), rtol=0, atol=1e-6
    )


def test_torch_inputs_batched_and_channel_layouts(camera_pair):
    a, b = camera_pair
    ta, tb = torch.from_numpy(a)[:, None], torch.from_numpy(b)[:, None]  # (N, 1, H, W)
    out_ssim, out_psnr = ssim(ta, tb, 255), psnr(ta, tb, 255)
    assert isinstance(out_ssim, torch.Tensor) and out_ssim.shape == (3,)
    np.testing.assert_allclose(
        out_ssim.numpy(), _ref(structural_similarity, a, b, 255), rtol=0, atol=1e-6
    )
    np.testing.assert_allclose(
        out_psnr.numpy(), _ref(peak_signal_noise_ratio, a, b, 255), rtol=0, atol=1e-6
    )
    # a single 2-D image gives a scalar equal to skimage's
    assert ssim(a[1], b[1], 255) == pytest.approx(
        structural_similarity(a[1], b[1], data_range=255), abs=1e-6
    )


def test_float32_unit_range_images(camera_pair):
    """[0, 1] float32 model outputs scored with data range 1 equal skimage on float64."""
    a, b = camera_pair
    fa, fb = (a / 255.0).astype(np.float32), (b / 255.0).astype(np.float32)
    a64, b64 = fa.astype(np.float64), fb.astype(np.float64)
    np.testing.assert_allclose(
        ssim(torch.from_numpy(fa), torch.from_numpy(fb), 1.0).numpy(),
        _ref(structural_similarity, a64, b64, 1.0),
        rtol=0,
        atol=1e-6,
    )


def _wang(x, y, data_range):
    """scikit-image's SSIM with Wang et al.'s Gaussian window."""
    return structural_similarity(
        x, y, data_range=data_range, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )


@pytest.mark.parametrize("data_range", [1.0, 2.5])
def test_gaussian_window_ssim_matches_skimage_wang_settings(float_pair, data_range):
    a, b = float_pair
    ref = _ref(_wang, a, b, data_range)
    np.testing.assert_allclose(ssim(a, b, data_range, window="gaussian"), ref, rtol=0, atol=1e-6)
    # the two windows give different numbers on the same images
    assert np.abs(ref - _ref(structural_similarity, a, b, data_range)).min() > 1e-3


def test_gaussian_window_on_real_uint8_and_torch(camera_pair):
    a, b = camera_pair
    ref = _ref(_wang, a, b, 255)
    assert ref.std() > 0.01
    ta, tb = torch.from_numpy(a)[:, None], torch.from_numpy(b)[:, None]
    out = ssim(ta, tb, 255, window="gaussian")
    assert isinstance(out, torch.Tensor) and out.shape == (3,)
    np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=1e-6)
    uniform = ssim(a, b, 255, window="uniform")
    np.testing.assert_allclose(uniform, _ref(structural_similarity, a, b, 255), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="window"):
        ssim(a, b, 255, window="box")
    with pytest.raises(DataError, match="11px window"):
        ssim(a[:, :9, :9], b[:, :9, :9], 255, window="gaussian")


def test_closed_forms():
    a = np.zeros((2, 16, 16))
    b = a + 0.1  # MSE = 0.01 -> PSNR = 10 log10(1 / 0.01) = 20 dB
    np.testing.assert_allclose(mse(a, b), [0.01, 0.01], rtol=1e-12)
    np.testing.assert_allclose(psnr(a, b, 1.0), [20.0, 20.0], rtol=1e-12)
    assert math.isinf(psnr(a[0], a[0], 1.0))
    assert ssim(b[0], b[0], 1.0) == pytest.approx(1.0, abs=1e-12)


def test_bad_inputs():
    a = np.zeros((8, 8))
    with pytest.raises(DataError, match="shapes differ"):
        psnr(a, np.zeros((8, 9)), 1.0)
    with pytest.raises(DataError, match="smaller than"):
        ssim(np.zeros((5, 5)), np.zeros((5, 5)), 1.0)
    with pytest.raises(ValueError, match="data_range"):
        psnr(a, a, 0.0)
    with pytest.raises(TypeError):
        ssim(a, a)  # data_range is required

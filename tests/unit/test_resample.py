"""The one bicubic and the one area resize: against OpenCV called directly, against the
closed form of Keys' kernel, and against scikit-image's block means."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from skimage.transform import downscale_local_mean

from tomosynth.errors import DataError
from tomosynth.resample import area, bicubic
from tomosynth.sr_data import bicubic_downscale, bicubic_upscale

torch.set_num_threads(1)


def _asymmetric(shape, seed=0) -> np.ndarray:
    """Smooth ramp plus noise plus an off-centre bright block: no symmetry to hide a flip
    or a transposition of height and width."""
    rng = np.random.default_rng(seed)
    *lead, h, w = shape
    yy, xx = np.mgrid[:h, :w]
    img = 0.3 * xx / w + 0.1 * (yy / h) ** 2
    img = img + 0.3 * rng.random(shape)
    img[..., h // 5 : h // 2, w // 7 : w // 3] += 0.25
    return img.astype(np.float32)


def _cv2_each(x: np.ndarray, hw: tuple[int, int], interpolation: int) -> np.ndarray:
    flat = x.reshape(-1, *x.shape[-2:])
    out = [cv2.resize(img, (hw[1], hw[0]), interpolation=interpolation) for img in flat]
    return np.stack(out).reshape(*x.shape[:-2], *hw)


def _keys(t: np.ndarray, a: float = -0.75) -> np.ndarray:
    t = np.abs(t)
    near = (a + 2) * t**3 - (a + 3) * t**2 + 1
    far = a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def _keys_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of cubic convolution at pixel centres, edges replicated."""
    m = np.zeros((n_out, n_in))
    for j in range(n_out):
        u = (j + 0.5) * n_in / n_out - 0.5
        i0 = int(np.floor(u))
        for i in range(i0 - 1, i0 + 3):
            m[j, min(max(i, 0), n_in - 1)] += _keys(u - i)
    return m


@pytest.mark.parametrize(("shape", "hw"), [((13, 21), (39, 42)), ((24, 40), (12, 10))])
def test_bicubic_is_keys_cubic_convolution_in_closed_form(shape, hw):
    img = _asymmetric(shape).astype(np.float64)
    ref = _keys_matrix(shape[0], hw[0]) @ img @ _keys_matrix(shape[1], hw[1]).T
    out = bicubic(img, hw)
    assert out.dtype == np.float64 and out.shape == hw
    np.testing.assert_allclose(out, ref, atol=1e-6)  # OpenCV keeps its weights in float32


@pytest.mark.parametrize(
    ("shape", "hw"),
    [((12, 20), (36, 50)), ((3, 24, 40), (6, 10)), ((2, 3, 17, 11), (34, 33))],
)
def test_bicubic_equals_opencv_numpy_and_torch(shape, hw):
    img = _asymmetric(shape)
    ref = _cv2_each(img, hw, cv2.INTER_CUBIC)
    out = bicubic(img, hw)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == ref.shape
    np.testing.assert_array_equal(out, ref)
    assert (ref.min() < img.min()) or (ref.max() > img.max()) or hw[0] < shape[-2]
    t = bicubic(torch.from_numpy(img), hw)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.device.type == "cpu"
    np.testing.assert_array_equal(t.numpy(), ref)
    clipped = bicubic(img, hw, clip=(0.2, 0.6))
    np.testing.assert_array_equal(clipped, np.clip(ref, 0.2, 0.6))


def test_bicubic_uint8_rounds_and_saturates_the_float_result():
    img = np.rint(_asymmetric((2, 15, 22)) * 255 / 1.05).astype(np.uint8)
    img[0, :, 11:] = 255  # an edge: the cubic overshoot must saturate, not wrap
    ref = _cv2_each(img.astype(np.float32), (45, 44), cv2.INTER_CUBIC)
    out = bicubic(img, (45, 44))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.clip(np.rint(ref), 0, 255).astype(np.uint8))
    assert ref.max() > 255.5 and out.max() == 255
    square = bicubic(img[0], 30)
    assert square.shape == (30, 30)


def test_bicubic_shrinking_is_not_antialiased():
    # One bright pixel: a cubic at the new pixel centres sees it only through its 4 taps.
    img = np.zeros((16, 16), np.float32)
    img[5, 5] = 1.0
    out = bicubic(img, (4, 4))  # centres at 1.5, 5.5, 9.5, 13.5
    w = _keys(np.array([4.0, 0.5, 3.5]))  # distances 5 - 1.5, 5 - 5.5, 9.5 - 5
    assert out[1, 1] == pytest.approx(w[1] ** 2, abs=1e-6)
    assert out[0, 0] == pytest.approx(0.0, abs=1e-7) and w[0] == 0 and w[2] == 0


def test_area_equals_block_means_and_opencv():
    img = _asymmetric((2, 24, 36))
    out = area(img, (6, 12))
    np.testing.assert_allclose(
        out, np.stack([downscale_local_mean(i, (4, 3)) for i in img]), atol=1e-6
    )
    odd = area(torch.from_numpy(img), (10, 14))  # non-integer factors: OpenCV's area weights
    np.testing.assert_array_equal(odd.numpy(), _cv2_each(img, (10, 14), cv2.INTER_AREA))


def test_sr_pairs_use_the_one_bicubic_clipped_to_unit_range():
    hr = _asymmetric((3, 32, 48)) / 1.2
    lr = bicubic_downscale(hr, 4)
    np.testing.assert_array_equal(lr, np.clip(_cv2_each(hr, (8, 12), cv2.INTER_CUBIC), 0, 1))
    up = bicubic_upscale(lr, 4)
    np.testing.assert_array_equal(up, np.clip(_cv2_each(lr, (32, 48), cv2.INTER_CUBIC), 0, 1))
    t = bicubic_downscale(torch.from_numpy(hr[:, None]), 2)
    assert tuple(t.shape) == (3, 1, 16, 24)
    np.testing.assert_array_equal(
        t[:, 0].numpy(), np.clip(_cv2_each(hr, (16, 24), cv2.INTER_CUBIC), 0, 1)
    )


def test_bad_shapes_and_sizes():
    with pytest.raises(DataError, match="bicubic"):
        bicubic(np.zeros(5, np.float32), 4)
    with pytest.raises(DataError, match="size"):
        area(np.zeros((4, 4), np.float32), (0, 2))

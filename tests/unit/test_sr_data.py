"""LR/HR pairs: bicubic degradation, real pairs, aligned patches, augmentation, folds."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from tomosynth.errors import ConfigError, DataError
from tomosynth.sr_data import (
    bicubic_downscale,
    bicubic_upscale,
    fold_of,
    load_pairs,
    read_image,
    read_stack,
    sample_patches,
    specimen_folds,
)

torch.set_num_threads(1)


def test_bicubic_downscale_is_opencv_inter_cubic_clipped():
    # The degradation is the project's one bicubic (OpenCV INTER_CUBIC), not an
    # antialiased PIL/MATLAB-style kernel.
    rng = np.random.default_rng(0)
    img = rng.random((32, 48)).astype(np.float32)
    ours = bicubic_downscale(img, 4)
    ref = cv2.resize(img, (12, 8), interpolation=cv2.INTER_CUBIC)
    assert ours.shape == (8, 12)
    np.testing.assert_array_equal(ours, np.clip(ref, 0, 1))
    pil = np.asarray(Image.fromarray(img, mode="F").resize((12, 8), Image.BICUBIC))
    assert np.abs(ours - pil).max() > 0.1  # the antialiased kernel is a different one


def test_bicubic_downscale_keeps_batches_and_constants():
    img = np.full((3, 16, 16), 0.25, dtype=np.float32)
    out = bicubic_downscale(img, 2)
    assert out.shape == (3, 8, 8)
    np.testing.assert_allclose(out, 0.25, atol=1e-6)
    t = torch.full((2, 1, 8, 8), 0.5)
    assert bicubic_downscale(t, 4).shape == (2, 1, 2, 2)
    with pytest.raises(DataError, match="multiple of the scale"):
        bicubic_downscale(np.zeros((10, 12), np.float32), 4)


def test_bicubic_upscale_matches_opencv_everywhere():
    rng = np.random.default_rng(1)
    img = (0.2 + 0.6 * rng.random((16, 12))).astype(np.float32)
    ours = bicubic_upscale(img, 2)
    ref = cv2.resize(img, (24, 32), interpolation=cv2.INTER_CUBIC)
    # same kernel (a = -0.75), pixel-centre convention and border: one implementation
    np.testing.assert_array_equal(ours, np.clip(ref, 0, 1))


def _write_pngs(folder, indices, size, rng):
    folder.mkdir(parents=True, exist_ok=True)
    images = {}
    for i in indices:
        img = rng.integers(0, 256, (size, size), dtype=np.uint8)
        cv2.imwrite(str(folder / f"slice_{i:05d}.png"), img)
        images[i] = img.astype(np.float32) / 255.0
    return images


def test_load_pairs_bicubic_and_real_with_row_binning(tmp_path):
    rng = np.random.default_rng(2)
    hr_imgs = _write_pngs(tmp_path / "hr", range(4, 10), 8, rng)
    lr_imgs = _write_pngs(tmp_path / "lr", range(2, 4), 4, rng)  # LR slice 4 is missing
    names = [f"slice_{i:05d}.png" for i in range(4, 10)]

    hr, lr, kept = load_pairs(tmp_path / "hr", names, 2)
    assert kept == names
    np.testing.assert_allclose(hr[0], hr_imgs[4])
    np.testing.assert_allclose(lr, bicubic_downscale(hr, 2))

    hr, lr, kept = load_pairs(tmp_path / "hr", names, 2, tmp_path / "lr", slice_stride=2)
    assert kept == names[:4]  # HR 8 and 9 would need LR slice 4
    for k, i in enumerate(range(4, 8)):
        np.testing.assert_allclose(hr[k], hr_imgs[i])
        np.testing.assert_allclose(lr[k], lr_imgs[i // 2])

    with pytest.raises(DataError, match="not 1/4"):
        load_pairs(tmp_path / "hr", names, 4, tmp_path / "lr", slice_stride=2)


def test_read_image_tiff_bounds_and_png_names(tmp_path):
    vol = np.array([[-1.0, 0.0], [1.0, 3.0]], dtype=np.float32)
    tifffile.imwrite(tmp_path / "slice_00001.tiff", vol)
    np.testing.assert_allclose(
        read_image(tmp_path / "slice_00001.tiff", bounds=(0.0, 2.0)), [[0, 0], [0.5, 1]]
    )
    with pytest.raises(DataError, match="outside"):
        read_image(tmp_path / "slice_00001.tiff")
    stack, names = read_stack(tmp_path, ["slice_00001.png"], bounds=(0.0, 2.0))
    assert names == ["slice_00001.tiff"] and stack.shape == (1, 2, 2)
    with pytest.raises(DataError, match="missing"):
        read_stack(tmp_path, ["slice_00002.png"], bounds=(0.0, 2.0))


def test_patches_are_aligned_under_every_augmentation():
    rng = np.random.default_rng(3)
    scale = 4
    lr = rng.random((3, 10, 12)).astype(np.float32)
    # block-constant HR: every HR pixel equals its LR pixel, in any orientation
    hr = np.stack([np.kron(x, np.ones((scale, scale), np.float32)) for x in lr])
    seen = set()
    for _ in range(60):
        hp, lp = sample_patches(hr, lr, scale, 16, rng, [0, 1, 2, 2], augment=True)
        assert hp.shape == (4, 1, 16, 16) and lp.shape == (4, 1, 4, 4)
        for a, b in zip(hp[:, 0], lp[:, 0], strict=True):
            np.testing.assert_array_equal(a, np.kron(b, np.ones((scale, scale))))
            # which of the 8 orientations of the source block was drawn
            for i in range(3):
                for k in range(4):
                    for flip in (False, True):
                        c = np.rot90(lr[i], k)
                        c = c[:, ::-1] if flip else c
                        h, w = c.shape
                        for y in range(h - 3):
                            for x in range(w - 3):
                                if np.array_equal(c[y : y + 4, x : x + 4], b):
                                    seen.add((k, flip))
    assert len(seen) == 8


def test_patches_full_image_and_errors():
    rng = np.random.default_rng(4)
    hr = rng.random((2, 16, 16)).astype(np.float32)
    lr = bicubic_downscale(hr, 2)
    hp, lp = sample_patches(hr, lr, 2, None, rng, [1, 0], augment=False)
    np.testing.assert_array_equal(hp[:, 0], hr[[1, 0]])
    np.testing.assert_array_equal(lp[:, 0], lr[[1, 0]])
    with pytest.raises(ConfigError, match="multiple"):
        sample_patches(hr, lr, 4, 10, rng, [0])
    with pytest.raises(ConfigError, match="larger"):
        sample_patches(hr, lr, 2, 32, rng, [0])


def test_specimen_folds():
    assert specimen_folds(["bone3", "bone", "bone2"], 3) == [["bone"], ["bone2"], ["bone3"]]
    folds = specimen_folds(["a", "b", "c", "d", "e"], 2)
    assert folds == [["a", "b", "c"], ["d", "e"]]
    assert fold_of("d", ["a", "b", "c", "d", "e"], 2) == (1, ["a", "b", "c"])
    assert fold_of("bone2", ["bone", "bone2", "bone3"], 3) == (1, ["bone", "bone3"])
    with pytest.raises(ConfigError):
        specimen_folds(["a", "b"], 3)
    with pytest.raises(ConfigError, match="not a listed"):
        fold_of("z", ["a", "b"], 2)

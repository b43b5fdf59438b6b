"""Bone specimens of different structure (held-out-specimen SR tests) and the
neighbour-average baseline of a within-specimen split."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from skimage.metrics import peak_signal_noise_ratio

from tomosynth.errors import ConfigError
from tomosynth.io import write_json
from tomosynth.metrics.sr import neighbour_average, sr_slice_metrics
from tomosynth.simulate import bone_phantom

N = 96


def _central_bone(vol: np.ndarray) -> np.ndarray:
    """Bone mask of the central medulla (radius < 0.2 n: trabeculae in marrow only)."""
    n = vol.shape[-1]
    off = np.arange(n) - (n - 1) / 2
    disc = np.hypot(off[:, None], off[None, :]) < 0.2 * n
    unit = 1.6 / n
    return (vol > 1.7 * unit)[:, disc]  # trabeculae 2.6 units, marrow 0.8


def _mean_run(mask: np.ndarray) -> float:
    """Mean length of runs of True along the last axis (independent of the phantom code)."""
    runs = []
    for line in mask.reshape(-1, mask.shape[-1]):
        edges = np.diff(np.concatenate([[0], line.astype(int), [0]]))
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        runs.extend(stops - starts)
    return float(np.mean(runs))


def test_bone_fraction_sets_the_trabecular_volume_fraction():
    for fraction in (0.12, 0.2, 0.3):
        vol = bone_phantom(N, 16, seed=4, bone_fraction=fraction)
        assert _central_bone(vol).mean() == pytest.approx(fraction, abs=0.04)


def test_trabecular_scale_thickens_the_trabeculae_and_defaults_are_unchanged():
    n = 128
    base = bone_phantom(n, 12, seed=5)
    assert np.array_equal(base, bone_phantom(n, 12, seed=5, bone_fraction=0.2))
    off = np.arange(n) - (n - 1) / 2
    disc = np.hypot(off[:, None], off[None, :]) < 0.2 * n
    runs = []
    for scale in (0.8, 1.0, 1.6):
        vol = bone_phantom(n, 12, seed=5, trabecular_scale=scale)
        bone = (vol > 1.7 * 1.6 / n) & disc[None]
        runs.append(_mean_run(bone[:, disc.any(axis=1)][:, :, disc.any(axis=0)]))
    assert runs[0] < runs[1] < runs[2]
    assert runs[2] / runs[1] > 1.15  # thickness grows with the scale


def test_specimens_of_other_seeds_differ_and_bad_parameters_raise():
    a = bone_phantom(N, 4, seed=1)
    b = bone_phantom(N, 4, seed=2, trabecular_scale=1.3, bone_fraction=0.15)
    assert np.mean(_central_bone(a) != _central_bone(b)) > 0.1
    with pytest.raises(ConfigError, match="bone_fraction"):
        bone_phantom(N, 4, bone_fraction=0.0)
    with pytest.raises(ConfigError, match="trabecular_scale"):
        bone_phantom(N, 4, trabecular_scale=5.0)


# --- neighbour-average baseline --------------------------------------------------------------
def test_neighbour_average_uses_the_nearest_training_slices_on_each_side():
    rng = np.random.default_rng(0)
    hr = rng.random((8, 6, 6)).astype(np.float32)
    names = [f"slice_{i:05d}.tiff" for i in range(8)]
    train = [names[i] for i in (0, 1, 4, 7)]
    test = [names[i] for i in (2, 5, 6)]
    images, used = neighbour_average(hr, names, test, train)
    # slice 2: training neighbours 1 and 4; slice 5 and 6: 4 and 7
    np.testing.assert_allclose(images[0], (hr[1] + hr[4]) / 2)
    np.testing.assert_allclose(images[1], (hr[4] + hr[7]) / 2)
    np.testing.assert_allclose(images[2], (hr[4] + hr[7]) / 2)
    assert used == [
        ("slice_00001.tiff", "slice_00004.tiff"),
        ("slice_00004.tiff", "slice_00007.tiff"),
    ] + [("slice_00004.tiff", "slice_00007.tiff")]
    # a test slice at the end has one training neighbour: that slice alone
    images, _ = neighbour_average(hr, names, [names[7]], [names[5]])
    np.testing.assert_allclose(images[0], hr[5])


def _volume(tmp_path, fold):
    rng = np.random.default_rng(1)
    hr = rng.random((6, 16, 16)).astype(np.float32)
    for part, vol in (("hr", hr), ("sr", np.clip(hr + 0.05, 0, 1)), ("lr", hr * 0.9)):
        (tmp_path / part).mkdir(parents=True)
        for i, img in enumerate(vol):
            tifffile.imwrite(tmp_path / part / f"slice_{i:05d}.tiff", img)
    meta = {"scan": "bone", "preset": "exp_d", "scale": 4, "fold": fold, "seed": 0}
    write_json(tmp_path / "meta.json", meta)
    return hr


def test_within_specimen_table_has_the_neighbour_baseline_and_says_so(tmp_path):
    hr = _volume(tmp_path, fold=None)
    names = [f"slice_{i:05d}.png" for i in range(6)]
    df = sr_slice_metrics(tmp_path, [names[2]], train_names=[names[1], names[3], names[5]])
    assert set(df["method"]) == {"srgan", "bicubic", "neighbour_average"}
    assert set(df["protocol"]) == {"within-specimen"}
    row = df[df["method"] == "neighbour_average"].iloc[0]
    ref = peak_signal_noise_ratio(hr[2], (hr[1] + hr[3]) / 2, data_range=1.0)
    assert row["psnr"] == pytest.approx(ref, rel=1e-5)


def test_held_out_specimen_table_has_no_neighbour_baseline(tmp_path):
    _volume(tmp_path, fold=0)
    df = sr_slice_metrics(tmp_path, None, train_names=["slice_00001.png"])
    assert set(df["method"]) == {"srgan", "bicubic"}
    assert set(df["protocol"]) == {"held-out specimen"}

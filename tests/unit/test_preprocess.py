"""Intensity stage: clip bounds, 0..255 scaling, area resize, split, PNG export."""

import statistics

import numpy as np
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image
from skimage.exposure import rescale_intensity
from skimage.transform import downscale_local_mean

from tomosynth.errors import ConfigError, DataError
from tomosynth.io import read_json
from tomosynth.preprocess import (
    area_resize,
    clip_bounds,
    compute_bounds,
    export_png,
    make_split,
    to_uint8,
    write_split,
)

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=32)


@st.composite
def extrema(draw):
    n = draw(st.integers(1, 40))
    mins = draw(arrays(np.float64, n, elements=finite))
    spans = draw(arrays(np.float64, n, elements=st.floats(1e-2, 1e3)))
    return mins, mins + spans


@given(extrema())
def test_bounds_at_extreme_percentiles_are_min_of_minima_and_max_of_maxima(mm):
    mins, maxs = mm
    low, high = clip_bounds(mins, maxs, (0, 100))
    assert low == mins.min()
    assert high == maxs.max()


@given(extrema())
def test_median_bounds_equal_statistics_median(mm):
    mins, maxs = mm
    try:
        low, high = clip_bounds(mins, maxs, (50, 50))
    except DataError:
        # Only allowed when the medians really give an empty range.
        assert statistics.median(mins) >= statistics.median(maxs)
        return
    assert low == pytest.approx(statistics.median(mins), rel=1e-12, abs=1e-9)
    assert high == pytest.approx(statistics.median(maxs), rel=1e-12, abs=1e-9)


@given(extrema(), st.floats(0, 49), st.floats(51, 100))
def test_bounds_lie_within_the_distributions(mm, p_low, p_high):
    mins, maxs = mm
    try:
        low, high = clip_bounds(mins, maxs, (p_low, p_high))
    except DataError:
        return
    assert mins.min() <= low <= mins.max()
    assert maxs.min() <= high <= maxs.max()
    # Widening the percentiles never narrows the range.
    low0, high0 = clip_bounds(mins, maxs, (0, 100))
    assert low0 <= low and high <= high0


def test_bounds_follow_the_thesis_percentiles():
    rng = np.random.default_rng(3)
    mins = rng.normal(-1.0, 0.1, 500)
    maxs = rng.normal(2.0, 0.2, 500)
    low, high = clip_bounds(mins, maxs, (1, 99))
    # Independent reference: linear-interpolated order statistics.
    s_min, s_max = np.sort(mins), np.sort(maxs)
    pos_lo, pos_hi = 0.01 * (len(mins) - 1), 0.99 * (len(maxs) - 1)
    ref_lo = s_min[int(pos_lo)] + (pos_lo % 1) * (s_min[int(pos_lo) + 1] - s_min[int(pos_lo)])
    ref_hi = s_max[int(pos_hi)] + (pos_hi % 1) * (s_max[int(pos_hi) + 1] - s_max[int(pos_hi)])
    assert low == pytest.approx(ref_lo, rel=1e-12)
    assert high == pytest.approx(ref_hi, rel=1e-12)


def test_bad_bounds_inputs():
    with pytest.raises(DataError, match="NaN"):
        clip_bounds(np.array([0.0, np.nan]), np.array([1.0, 2.0]))
    with pytest.raises(DataError, match="empty intensity range"):
        clip_bounds(np.zeros(4), np.zeros(4))
    with pytest.raises(ConfigError, match="percentiles"):
        clip_bounds(np.zeros(4), np.ones(4), (-1, 99))


@settings(deadline=None)
@given(
    arrays(np.float32, (7, 5), elements=finite),
    st.floats(-500, 500),
    st.floats(1e-3, 500),
)
def test_uint8_scaling_matches_skimage(img, low, span):
    high = low + span
    out = to_uint8(img, low, high)
    assert out.dtype == np.uint8
    ref = rescale_intensity(
        np.clip(img.astype(np.float64), low, high), in_range=(low, high), out_range=(0.0, 255.0)
    )
    assert np.abs(out.astype(np.float64) - ref).max() <= 0.5 + 1e-3
    img64 = img.astype(np.float64)  # compare as the scaling does, not in float32
    assert (out[img64 <= low] == 0).all()
    assert (out[img64 >= high] == 255).all()
    # Monotone: a brighter input never gives a darker output.
    order = np.argsort(img, axis=None, kind="stable")
    assert (np.diff(out.ravel()[order].astype(int)) >= 0).all()


def test_area_resize_equals_block_mean():
    img = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    np.testing.assert_allclose(area_resize(img, 16), downscale_local_mean(img, (4, 4)), atol=1e-6)
    np.testing.assert_array_equal(area_resize(img, 64), img)
    with pytest.raises(ConfigError, match="larger"):
        area_resize(img, 128)


@given(st.integers(3, 200), st.integers(0, 2**31 - 1))
def test_split_is_a_seeded_partition(n, seed):
    names = [f"slice_{i:05d}.png" for i in range(n)]
    fr = {"train": 0.8, "val": 0.1, "test": 0.1}
    a = make_split(names, fr, seed)
    assert a == make_split(list(reversed(names)), fr, seed)
    together = a["train"] + a["val"] + a["test"]
    assert sorted(together) == names
    assert len(a["val"]) >= 1 and len(a["test"]) >= 1 and len(a["train"]) >= 1
    assert abs(len(a["val"]) - 0.1 * n) <= 1


def test_split_depends_on_seed_and_checks_fractions():
    names = [f"s{i}" for i in range(100)]
    fr = {"train": 0.5, "val": 0.25, "test": 0.25}
    assert make_split(names, fr, 1) != make_split(names, fr, 2)
    with pytest.raises(ConfigError, match="sum to 1"):
        make_split(names, {"train": 0.5, "val": 0.1, "test": 0.1}, 0)


def _write_recon(folder, n=6, size=32, seed=0):
    rng = np.random.default_rng(seed)
    vols = rng.normal(0.0, 1.0, (n, size, size)).astype(np.float32)
    folder.mkdir(parents=True)
    for i, img in enumerate(vols):
        tifffile.imwrite(folder / f"slice_{i + 10:05d}.tiff", img)
    return vols


def test_export_png_end_to_end(tmp_path):
    vols = _write_recon(tmp_path / "recon")
    bounds = compute_bounds(
        tmp_path / "recon", tmp_path / "bounds.json", skip_slices=2, percentiles=(1, 99)
    )
    kept = vols[2:]
    ref_low = np.percentile(kept.reshape(len(kept), -1).min(1), 1)
    assert bounds["low"] == pytest.approx(ref_low)
    assert read_json(tmp_path / "bounds.json")["n_slices"] == 4
    n = export_png(
        tmp_path / "recon", tmp_path / "bounds.json", tmp_path / "png16", size=16, skip_slices=2
    )
    assert n == 4
    files = sorted(p.name for p in (tmp_path / "png16").iterdir())
    assert files == ["MANIFEST.json"] + [f"slice_{i:05d}.png" for i in range(12, 16)]
    assert sorted(read_json(tmp_path / "png16" / "MANIFEST.json")["files"]) == files[1:]
    got = np.asarray(Image.open(tmp_path / "png16" / "slice_00012.png"))
    unit = (np.clip(kept[0], bounds["low"], bounds["high"]) - bounds["low"]) / (
        bounds["high"] - bounds["low"]
    )
    ref = np.rint(downscale_local_mean(unit, (2, 2)) * 255)
    assert got.dtype == np.uint8 and got.shape == (16, 16)
    assert np.abs(got.astype(float) - ref).max() <= 1
    manifest = write_split(
        tmp_path / "recon",
        tmp_path / "split.json",
        scan="t",
        skip_slices=2,
        fractions={"train": 0.5, "val": 0.25, "test": 0.25},
        seed=0,
    )
    assert sorted(manifest["train"] + manifest["val"] + manifest["test"]) == files[1:]


def test_export_png_leaves_nothing_on_corrupt_slice(tmp_path):
    _write_recon(tmp_path / "recon")
    compute_bounds(tmp_path / "recon", tmp_path / "b.json", skip_slices=0, percentiles=(1, 99))
    (tmp_path / "recon" / "slice_00013.tiff").write_bytes(b"not a tiff")
    with pytest.raises(DataError, match="slice_00013.tiff"):
        export_png(
            tmp_path / "recon", tmp_path / "b.json", tmp_path / "out", size=16, skip_slices=0
        )
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_nan_slice_is_named(tmp_path):
    vols = _write_recon(tmp_path / "recon", n=3)
    vols[1, 3, 3] = np.nan
    tifffile.imwrite(tmp_path / "recon" / "slice_00011.tiff", vols[1])
    with pytest.raises(DataError, match="slice_00011.tiff.*NaN"):
        compute_bounds(tmp_path / "recon", tmp_path / "b.json", skip_slices=0, percentiles=(1, 99))
    assert not (tmp_path / "b.json").exists()


def test_skip_all_slices_is_a_config_error(tmp_path):
    _write_recon(tmp_path / "recon", n=3)
    with pytest.raises(ConfigError, match="skip_slices"):
        compute_bounds(tmp_path / "recon", tmp_path / "b.json", skip_slices=3, percentiles=(1, 99))


def test_threaded_clip_and_export_equal_one_thread(tmp_path):
    """Slices handled on 3 threads give the same bounds and byte-identical PNGs."""
    _write_recon(tmp_path / "recon")
    b1 = compute_bounds(
        tmp_path / "recon", tmp_path / "b1.json", skip_slices=1, percentiles=(5, 95)
    )
    b3 = compute_bounds(
        tmp_path / "recon", tmp_path / "b3.json", skip_slices=1, percentiles=(5, 95), threads=3
    )
    assert (b1["low"], b1["high"]) == (b3["low"], b3["high"])
    for threads in (1, 3):
        export_png(tmp_path / "recon", tmp_path / "b1.json", tmp_path / f"p{threads}", size=16,
                   skip_slices=1, threads=threads)  # fmt: skip
    one = sorted((tmp_path / "p1").glob("*.png"))  # MANIFEST.json holds write times
    assert [p.name for p in one] == sorted(p.name for p in (tmp_path / "p3").glob("*.png"))
    assert len(one) == 5  # six slices, the first skipped
    assert all(p.read_bytes() == (tmp_path / "p3" / p.name).read_bytes() for p in one)


def test_threaded_export_stops_on_a_corrupt_slice(tmp_path):
    _write_recon(tmp_path / "recon")
    compute_bounds(tmp_path / "recon", tmp_path / "b.json", skip_slices=0, percentiles=(1, 99))
    (tmp_path / "recon" / "slice_00013.tiff").write_bytes(b"not a tiff")
    with pytest.raises(DataError, match="slice_00013.tiff"):
        export_png(tmp_path / "recon", tmp_path / "b.json", tmp_path / "out", size=16,
                   skip_slices=0, threads=4)  # fmt: skip
    assert not (tmp_path / "out").exists()

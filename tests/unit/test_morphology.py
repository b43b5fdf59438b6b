"""Morphological statistics on synthetic images with known answers."""

import numpy as np
import pytest
from scipy import ndimage, stats
from skimage.metrics import structural_similarity

from tomosynth.metrics.geometry import (
    directional_s2,
    minkowski_2d,
    minkowski_3d,
    radial_profile,
    s2_along_axis,
    s2_radial,
    slice_ssim,
    two_point_map,
)
from tomosynth.metrics.morphology import (
    curve_distance,
    hist_distances,
    phase_fraction,
    porosity,
    segment,
    size_histogram,
)


def _disc(n, r):
    g = np.mgrid[:n, :n] - n // 2
    return (g**2).sum(0) <= r * r


@pytest.mark.parametrize("periodic", [True, False])
def test_s2_random_set(periodic):
    p = 0.3
    m = np.random.default_rng(0).random((160, 160)) < p
    r, s2 = s2_radial(m, 30, periodic=periodic)
    frac = phase_fraction(m)
    assert r[0] == 0 and s2[0] == pytest.approx(frac, abs=1e-9)
    assert np.all(np.abs(s2[2:] - p * p) < 0.01)


def test_s2_map_matches_direct_count():
    m = np.random.default_rng(1).random((12, 10)) < 0.5
    s2 = two_point_map(m)
    c = (11, 9)
    for dy, dx in [(0, 3), (2, -1), (-4, 5), (7, 0)]:
        a = m[max(0, -dy) : 12 - max(0, dy), max(0, -dx) : 10 - max(0, dx)]
        b = m[max(0, dy) : 12 + min(0, dy), max(0, dx) : 10 + min(0, dx)]
        assert s2[c[0] + dy, c[1] + dx] == pytest.approx((a & b).mean(), abs=1e-9)


def test_s2_checkerboard():
    g = np.indices((64, 64)).sum(0)
    board = (g % 2) == 0
    s2 = two_point_map(board, periodic=True)
    c = 32
    assert s2[c, c] == pytest.approx(0.5)
    assert s2[c, c + 1] == pytest.approx(0.0, abs=1e-12)  # a neighbour has the other colour
    assert s2[c + 1, c + 1] == pytest.approx(0.5)
    assert s2[c, c + 2] == pytest.approx(0.5)


def test_s2_of_a_disc_against_lens_area():
    # For a disc of radius R in a large field, S2(r) * A = lens area of two discs at r.
    n, radius = 128, 20
    m = _disc(n, radius)
    r, s2 = s2_radial(m, 30, periodic=True)
    for k in (0, 10, 20, 30):
        d = k / (2 * radius)
        lens = 2 * radius**2 * (np.arccos(d) - d * np.sqrt(1 - d * d))
        assert s2[k] * n * n == pytest.approx(lens, rel=0.04)


def test_radial_profile_constant_and_3d():
    f = np.full((9, 9, 9), 2.5)
    r, prof = radial_profile(f)
    assert list(r) == [0, 1, 2, 3, 4] and np.allclose(prof, 2.5)
    m = np.random.default_rng(2).random((40, 40, 40)) < 0.2
    r, s2 = s2_radial(m, 10)
    assert s2[0] == pytest.approx(m.mean()) and abs(s2[5] - m.mean() ** 2) < 0.005


def test_minkowski_2d_disc_and_ring():
    r = 20
    d = _disc(80, r)
    m = minkowski_2d(d)
    assert m["area"] == pytest.approx(np.pi * r * r, rel=0.01)
    assert m["perimeter"] == pytest.approx(2 * np.pi * r, rel=0.03)
    assert m["euler"] == 1
    ring = d & ~_disc(80, 10)
    assert minkowski_2d(ring)["euler"] == 0
    two = np.zeros((40, 40), bool)
    two[5:10, 5:10] = two[20:30, 20:30] = True
    assert minkowski_2d(two)["euler"] == 2


def test_minkowski_3d_ball_and_torus():
    n, r = 40, 12
    g = np.mgrid[:n, :n, :n] - n // 2
    ball = (g**2).sum(0) <= r * r
    m = minkowski_3d(ball)
    assert m["volume"] == pytest.approx(4 / 3 * np.pi * r**3, rel=0.02)
    assert m["surface"] == pytest.approx(4 * np.pi * r**2, rel=0.04)
    assert m["mean_curvature"] == pytest.approx(4 * np.pi * r, rel=0.05)
    assert m["euler"] == 1
    big, small = 12, 5
    gt = np.mgrid[:16, :40, :40] - np.array([8, 20, 20])[:, None, None, None]
    rho = np.sqrt(gt[1] ** 2 + gt[2] ** 2)
    torus = (rho - big) ** 2 + gt[0] ** 2 <= small**2
    mt = minkowski_3d(torus)
    assert mt["euler"] == 0
    assert mt["surface"] == pytest.approx(4 * np.pi**2 * big * small, rel=0.04)
    assert mt["mean_curvature"] == pytest.approx(2 * np.pi**2 * big, rel=0.06)


@pytest.mark.parametrize("slab", [1, 3, 8, 40])
def test_minkowski_3d_slabwise_equals_whole_volume(slab):
    """Slab sums (with the Gaussian halo and Euler inclusion-exclusion) equal the one-pass
    whole-volume functionals on an asymmetric random structure touching every face."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(11)
    m = ndi.gaussian_filter(rng.random((37, 29, 23)), 1.5) > 0.5
    m[3:9, 2:5, 1:20] = True  # an off-centre plate
    m[20:30, 10:12, 10:12] = True  # a rod along the slab axis
    whole = minkowski_3d(m, slab=0)
    got = minkowski_3d(m, slab=slab)
    assert whole["euler"] != 0 and whole["mean_curvature"] != 0
    assert got["volume"] == whole["volume"] == m.sum()
    assert got["euler"] == whole["euler"]
    # the mesh vertices are float32 (skimage): sums agree to its rounding
    assert got["surface"] == pytest.approx(whole["surface"], rel=1e-6)
    assert got["mean_curvature"] == pytest.approx(whole["mean_curvature"], rel=1e-5)


def test_minkowski_3d_slabs_bound_memory():
    """Peak traced memory of slab-wise functionals follows the slab, not the volume."""
    import tracemalloc

    from scipy import ndimage as ndi

    from tomosynth.metrics.morphology import MINKOWSKI_BYTES_PER_VOXEL

    rng = np.random.default_rng(2)
    m = ndi.gaussian_filter(rng.random((96, 64, 64), dtype=np.float32), 1.0) > 0.5
    peaks = {}
    for slab in (0, 8):
        tracemalloc.start()
        minkowski_3d(m, slab=slab)
        peaks[slab] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks[8] < 0.3 * peaks[0]
    # The documented per-voxel cost bounds a slab's working memory (slab + halo slices).
    assert peaks[8] <= MINKOWSKI_BYTES_PER_VOXEL * (8 + 7) * 68 * 68
    assert peaks[0] <= MINKOWSKI_BYTES_PER_VOXEL * 100 * 68 * 68


def test_size_histogram_of_discs_and_distances():
    bins = np.arange(0.5, 41.5, 1.0)
    d10 = _disc(40, 5)
    h = size_histogram(d10, bins)
    centres = (bins[:-1] + bins[1:]) / 2
    assert abs(np.average(centres, weights=h) - 10) <= 1.0
    h2 = size_histogram(_disc(40, 8), bins)
    w1, ks = hist_distances(h, h2, bins)
    ref_w1 = stats.wasserstein_distance(centres, centres, h, h2)
    assert w1 == pytest.approx(ref_w1, rel=1e-9)
    assert ks == pytest.approx(1.0)  # disjoint supports
    assert hist_distances(h, h, bins) == (0.0, 0.0)


def test_segment_porosity_and_curve_distance():
    img = np.zeros((10, 10), np.uint8)
    img[:3] = 200
    mask, thr = segment(img)
    assert mask.sum() == 30 and 0 <= thr < 200
    assert porosity(mask) == pytest.approx(0.7)
    mask, thr = segment(img, 250)
    assert not mask.any()
    assert curve_distance([0, 1, 2], [0, 1, 4]) == pytest.approx(np.sqrt(4 / 3))


def test_3d_consistency():
    rng = np.random.default_rng(4)
    # Columns along the slice axis: perfectly correlated across slices, not in-plane.
    plane = rng.random((32, 32)) < 0.4
    stack = np.broadcast_to(plane, (12, 32, 32))
    s2 = directional_s2(stack, 5)
    assert np.allclose(s2["slice"], plane.mean())
    assert abs(s2["plane"][3] - plane.mean() ** 2) < 0.03
    assert s2_along_axis(stack, 1, 0)[0] == pytest.approx(plane.mean())
    img = rng.random((5, 24, 24))
    ssim = slice_ssim(img, data_range=1.0)
    ref = [structural_similarity(img[i], img[i + 1], data_range=1.0) for i in range(4)]
    assert np.allclose(ssim, ref)
    assert np.allclose(slice_ssim(np.broadcast_to(img[0], (3, 24, 24))), 1.0)


def test_evaluate_image_sets(tmp_path):
    from PIL import Image

    from tomosynth.metrics.morphology import evaluate_image_sets

    rng = np.random.default_rng(6)
    for name, p in (("real", 0.3), ("same", 0.3), ("denser", 0.6)):
        (tmp_path / name).mkdir()
        for i in range(3):
            img = ((rng.random((32, 32)) < p) * 255).astype(np.uint8)
            Image.fromarray(img).save(tmp_path / name / f"slice_{i:05d}.png")
    sets = {
        "real": ("real", tmp_path / "real"),
        "same": ("generated", tmp_path / "same"),
        "denser": ("generated", tmp_path / "denser"),
    }
    tables, _ = evaluate_image_sets(sets, r_max=8, max_size=16)
    t = tables["table"].set_index("set")
    assert t.loc["real", "porosity"] == pytest.approx(0.7, abs=0.03)
    assert t.loc["denser", "porosity"] == pytest.approx(0.4, abs=0.03)
    assert (t["reference"] == "real").all()
    assert t.loc["real", "s2_rmse"] == 0.0
    assert t.loc["same", "s2_rmse"] < t.loc["denser", "s2_rmse"]
    s2 = tables["s2"]
    first = s2[(s2.set == "real") & (s2.r == 0)].iloc[0]
    assert first.s2_mean == pytest.approx(1 - t.loc["real", "porosity"])
    # random textures fill the image: the sample region is the whole image
    assert (t["sample_fraction"] == 1.0).all()
    np.testing.assert_allclose(t["porosity_sample"], t["porosity"])
    sizes = tables["sizes"]
    assert set(sizes["region"]) == {"image", "sample"}
    pores = sizes[(sizes.set == "real") & (sizes.phase == "pore") & (sizes.region == "image")]
    assert pores["count"].sum() == pytest.approx(t.loc["real", "porosity"] * 3 * 32 * 32)


def test_morphology_figure_curves_are_table_values(tmp_path):
    import pandas as pd

    from tomosynth.plots.morphology import morphology_figure

    s2 = pd.DataFrame(
        {
            "set": ["a"] * 3 + ["b"] * 3,
            "kind": ["real"] * 3 + ["generated"] * 3,
            "r": [0, 1, 2] * 2,
            "s2_mean": [0.5, 0.3, 0.25, 0.4, 0.2, 0.16],
            "s2_std": 0.01,
        }
    )
    sizes = pd.DataFrame(
        {
            "set": ["a", "a", "b", "b"],
            "kind": ["real", "real", "generated", "generated"],
            "phase": ["pore", "grain", "pore", "grain"],
            "size": 1.0,
            "count": 1.0,
            "fraction": [1.0, 1.0, 1.0, 1.0],
        }
    )
    table = pd.DataFrame(
        {
            "set": ["a", "b"],
            "kind": ["real", "generated"],
            "porosity": [0.5, 0.6],
            "s2_rmse": [0.0, 0.1],
            "pore_w1": [0.0, 1.0],
            "pore_ks": [0.0, 0.2],
            "grain_w1": [0.0, 2.0],
            "grain_ks": [0.0, 0.3],
        }
    )
    fig = morphology_figure(table, s2, sizes)
    lines = fig.axes[0].get_lines()
    np.testing.assert_allclose(lines[1].get_ydata(), [0.4, 0.2, 0.16])
    assert "S2 RMSE 0.1000" in lines[1].get_label()


# --- open-ended size bins and the sample region ------------------------------------------------
def test_size_histogram_loses_no_pixel():
    from tomosynth.metrics.geometry import local_thickness
    from tomosynth.metrics.morphology import image_set_stats

    big = _disc(80, 25)  # local thickness ~50 px, far beyond the 16 px of the bins
    bins = np.arange(0.5, 17.5, 1.0)
    h = size_histogram(big, bins)
    assert h.sum() == big.sum()  # every phase pixel counted once
    assert h[-1] > 0.9 * big.sum()  # the large values sit in the open last bin
    rng = np.random.default_rng(0)
    imgs = np.where(rng.random((3, 48, 48)) < 0.5, 200, 20).astype(np.uint8)
    imgs[:, 4:40, 4:40] = 20  # one large pore per image, larger than max_size
    st = image_set_stats(imgs, threshold=100, max_size=8)
    pores = sum(int((im <= 100).sum()) for im in imgs)
    assert st["pore_hist"].sum() == pores and st["pore_hist_sample"].sum() == pores
    assert st["grain_hist"].sum() == 3 * 48 * 48 - pores
    # mean size: the exact mean of the local thickness values, not of clipped bins
    exact = np.mean(np.concatenate([local_thickness(im <= 100)[im <= 100] for im in imgs]))
    assert st["mean_pore_size"] == pytest.approx(exact, rel=1e-6) and exact > 8


def _container_stack(n=96, radius=30, centre=(50, 44), k=10, seed=0):
    """Slices of a disc-shaped sample (grey 120, small dark pores) in a bright container
    ring (grey 200, radii 38-41) with noisy air (grey ~20) between and around."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:n, :n]
    r = np.hypot(yy - centre[0], xx - centre[1])
    stack = []
    for _ in range(k):
        img = 20 + rng.normal(0, 6, (n, n))
        img[r < radius] = 120 + rng.normal(0, 10, (r < radius).sum())
        pores = (rng.random((n, n)) < 0.03) & (r < radius)
        img[ndimage.binary_dilation(pores)] = 25
        img[(r >= 38) & (r < 41)] = 200
        stack.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(stack), r


def test_sample_region_of_a_container_with_known_radius():
    from tomosynth.metrics.morphology import sample_region

    stack, r = _container_stack()
    region = sample_region(stack, margin=0.0)
    truth = r < 30
    assert region.sum() == pytest.approx(truth.sum(), rel=0.03)
    assert (region & ~truth).sum() <= 0.02 * truth.sum()  # not the wall, not the air gap
    eroded = sample_region(stack, margin=0.03)  # 3 px at 96 px
    assert r[eroded].max() <= 30 - 2 and r[eroded].max() >= 30 - 4
    # a cropped core (no air anywhere): the whole image
    full = stack[:, 30:70, 24:64]
    assert sample_region(full).all()


def test_in_sample_statistics_of_simulated_shale_slices():
    from _shale import shale_slices

    from tomosynth.metrics.morphology import image_set_stats, sample_region

    n = 64
    slices = shale_slices(n, 16)
    region = sample_region(slices)
    c = (n - 1) / 2
    yy, xx = np.mgrid[:n, :n]
    r = np.hypot(yy - c, xx - c) / n
    # the phantom's sample radius is 0.38 n (+-1.2 %); the container starts at 0.425 n
    assert r[region].max() < 0.39 and (region | (r > 0.34)).all()
    st = image_set_stats(slices, region=region)
    assert st["porosity"] > 0.3  # the whole image counts air and gap as pore space
    assert 0.01 < st["porosity_sample"] < 0.1  # the phantom's pores: ~3.5 % of the sample
    assert st["mean_pore_size_sample"] < st["mean_pore_size"]

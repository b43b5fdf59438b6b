"""The offline distance rises with every kind of degradation (Heusel et al. 2017's check),
and the degradations themselves do what they say."""

import numpy as np
import pytest
from _shale import shale_slices
from scipy import ndimage

from tomosynth.errors import ConfigError
from tomosynth.metrics import degrade as G
from tomosynth.metrics import distance as D
from tomosynth.metrics import features as F
from tomosynth.metrics import frd as R


@pytest.fixture(scope="module")
def table():
    # 32 reconstructed 64 px slices of the simulated shale scan: 16 reference, 16 degraded;
    # the secondary metric only (FRD v1 takes ~1 s an image: test_frd_v1_validation, slow)
    return G.degradation_table(shale_slices(64, 32), seed=0, frd_images=0)


def test_distance_rises_monotonically_with_each_degradation(table):
    assert set(table["kind"]) == set(G.KINDS)
    for kind, sub in table.groupby("kind"):
        sub = sub.sort_values("level")
        assert list(sub["level"]) == [0, 1, 2, 3, 4]
        values = sub["value"].to_numpy()
        assert np.all(np.diff(values) > 0), f"{kind}: {values}"
        np.testing.assert_allclose(values, np.log(sub["fd"].to_numpy()))


def test_kid_in_the_same_space_rises_and_is_readable(table):
    # raw KID spans ~1e3..1e12 here; log KID = ln(1 + max(KID, 0)) is 0 for real vs real
    # (the unbiased estimate is around 0) and rises with every kind on a 0..~30 axis
    np.testing.assert_allclose(
        table["log_kid"], np.log1p(np.clip(table["kid_mean"].to_numpy(), 0, None))
    )
    for kind, sub in table.groupby("kind"):
        values = sub.sort_values("level")["log_kid"].to_numpy()
        assert np.all(np.diff(values) > 0), f"{kind}: {values}"
    base = table.loc[table["level"] == 0, "log_kid"]
    assert (base < 1.0).all()
    mild = table.loc[table["level"] == 1].set_index("kind")["log_kid"]
    assert (mild.drop("periodic") > 2.0).all() and mild["periodic"] > 1.0  # faint 8-level grid
    assert table["log_kid"].max() < 40 and table["kid_mean"].max() > 1e6


def test_scale_is_readable(table):
    # log FRD: real vs real a few units, the mildest degradation clearly above it, the
    # strongest ones within ~20: one axis holds them all
    base = table.loc[table["level"] == 0, "value"].to_numpy()
    assert np.allclose(base, base[0]) and 0 < base[0] < 6
    mild = table.loc[table["level"] == 1].set_index("kind")["value"]
    # every kind's mildest level is clearly above real vs real, but for the dot grid of 8
    # grey levels on one pixel in 16, which these features see only faintly
    assert (mild.drop("periodic") > base[0] + 1.0).all() and mild["periodic"] > base[0]
    assert table["value"].max() < 20
    assert (table["metric"] == F.METRIC_NAME).all() and F.METRIC_NAME.startswith("log FRD")


def test_degradations_against_direct_definitions():
    rng = np.random.default_rng(0)
    img = rng.integers(40, 200, size=(32, 40)).astype(np.uint8)
    assert np.array_equal(G.degrade(img, "noise", 0), img)
    noisy = G.degrade(img, "noise", 16, seed=3).astype(float) - img
    assert noisy.std() == pytest.approx(16, rel=0.1) and abs(noisy.mean()) < 1.5
    blurred = G.degrade(img, "blur", 2.0)
    ref = np.clip(np.rint(ndimage.gaussian_filter(img.astype(float), 2.0)), 0, 255)
    assert np.array_equal(blurred, ref)
    sp = G.degrade(img, "salt_pepper", 0.3, seed=1)
    changed = sp != img
    assert changed.mean() == pytest.approx(0.3, abs=0.05)
    assert set(np.unique(sp[changed])) <= {0, 255}
    low = G.degrade(img, "contrast", 0.5).astype(float)
    assert low.std() == pytest.approx(0.5 * img.std(), rel=0.02)
    assert low.mean() == pytest.approx(img.mean(), abs=0.5)
    rect = G.degrade(np.full((64, 64), 100, np.uint8), "rectangles", 0.25, seed=2)
    assert 0 < (rect == 0).mean() <= 5 * 0.25**2 + 1e-9
    # stronger levels disturb a superset of the pixels of weaker ones
    weak = G.degrade(np.full((64, 64), 100, np.uint8), "rectangles", 0.125, seed=2) == 0
    assert np.all(rect[weak] == 0)
    # the periodic disturbance: +a (1 - 1/16) on one pixel of each 4 x 4 cell, -a/16 elsewhere
    flat = np.full((32, 40), 100, np.uint8)
    grid = G.degrade(flat, "periodic", 32, seed=4).astype(float) - 100
    dots = np.zeros((32, 40), bool)
    py, px = np.argwhere(grid > 0)[0]
    dots[py % 4 :: 4, px % 4 :: 4] = True
    assert np.all(grid[dots] == 30) and np.all(grid[~dots] == -2)  # 32 * 15/16, -32/16
    assert dots.sum() == 8 * 10 and abs(grid.mean()) < 0.01
    with pytest.raises(ConfigError, match="kind"):
        G.degrade(img, "swirl", 0.1)
    with pytest.raises(ConfigError, match="amount"):
        G.degrade(img, "contrast", 1.5)


def test_standardiser_drops_degenerate_features_and_names_them():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(20, 4)) * [1.0, 2.0, 0.0, 1.0] + [0.0, 1.0, 5.0, 0.0]
    ref[:, 3] = 0.3 + rng.normal(scale=1e-5, size=20)  # spread below the 1e-4 threshold
    scaler = D.fit_standardiser(ref, min_std=1e-4)
    assert list(scaler.keep) == [True, True, False, False]
    assert scaler.dropped(["a", "b", "c", "d"]) == ["c", "d"]
    x = rng.normal(size=(7, 4))
    sd = ref.std(0, ddof=1)
    np.testing.assert_allclose(scaler(x), (x[:, :2] - ref.mean(0)[:2]) / sd[:2])
    # with no threshold only the exactly constant (or rounding-level) feature goes
    assert list(D.fit_standardiser(ref, min_std=0.0).keep) == [True, True, False, True]
    with pytest.raises(Exception, match="constant"):
        D.fit_standardiser(np.ones((5, 3)))


def test_log_scale_of_a_row():
    row = {"value": np.e**2, "ci_low": np.e, "ci_high": np.e**3, "baseline_same_n": 1.0,
           "fid_inf": 5.0}  # fmt: skip
    out = D.to_log_scale(row)
    assert out["value"] == pytest.approx(2.0) and out["ci_low"] == pytest.approx(1.0)
    assert out["ci_high"] == pytest.approx(3.0) and out["baseline_same_n"] == 0.0
    assert out["fd"] == pytest.approx(np.e**2) and out["fid_inf"] == 5.0  # linear
    assert D.log_distance(0.0) == -np.inf and np.isnan(D.log_distance(-1.0))


def test_validation_figure_draws_the_table(table, tmp_path):
    from tomosynth.plots.distance import degradation_figure, plot_degradation

    fig, drawn = degradation_figure(table)
    ax = fig.axes[0]
    lines = {line.get_label().split(":")[0]: line for line in ax.get_lines()}
    assert set(lines) == set(G.KINDS) and "periodic" in lines
    for kind, line in lines.items():
        sub = table[table["kind"] == kind].sort_values("level")
        np.testing.assert_allclose(line.get_ydata(), sub["value"])
        assert drawn[F.METRIC_NAME][kind]["value"] == pytest.approx(list(sub["value"]))
        kid_line = [x for x in fig.axes[1].get_lines() if x.get_label() == line.get_label()][0]
        np.testing.assert_allclose(kid_line.get_ydata(), sub["log_kid"])
    assert F.METRIC_NAME in ax.get_ylabel() and "KID" in fig.axes[1].get_ylabel()
    plot_degradation(table, tmp_path / "v.png", tmp_path / "v.pdf")
    assert (tmp_path / "v.png").stat().st_size > 0 and (tmp_path / "v.pdf").stat().st_size > 0


@pytest.mark.slow  # FRD v1 of 6 + 6 x 8 images through pyradiomics (~1 s each)
def test_frd_v1_validation_rises_with_blur_and_dot_grid():
    levels = {k: G.LEVELS[k] for k in ("blur", "periodic")}
    table = G.degradation_table(shale_slices(64, 16), levels, seed=0, frd_images=6)
    v1 = table[table["metric"] == R.METRIC_NAME]
    assert len(v1) == 10 and (v1["n_set"] == 6).all() and (v1["n_ref"] == 6).all()
    blur = v1[v1["kind"] == "blur"].sort_values("level")["value"].to_numpy()
    assert np.all(np.diff(blur) > 0), blur
    # the 4 px dot grid: FRD v1 of 6 images sees it from 16 grey levels on (measured with
    # amplitudes 4..32: 6.93 undisturbed, 6.87 / 6.89 at 4 / 8, 7.14 at 16, 8.14 at 32); the
    # secondary metric rises at every amplitude (test_distance_rises_monotonically_...)
    grid = v1[v1["kind"] == "periodic"].sort_values("level")["value"].to_numpy()
    assert grid[4] > grid[3] > grid[2] > grid[0] + 0.1, grid
    own = table[table["metric"] == F.METRIC_NAME]
    assert len(own) == 10  # the secondary metric beside it, on all 8 images per half

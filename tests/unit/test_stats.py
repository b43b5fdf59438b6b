"""Pearson correlation against scipy.stats.pearsonr; agreement against numpy."""

import numpy as np
import pytest
from scipy import stats

from tomosynth.errors import DataError
from tomosynth.metrics.stats import agreement, pearson, pearson_test


@pytest.mark.parametrize("n", [4, 5, 12, 300])
@pytest.mark.parametrize("slope", [0.0, 0.4, -2.0])
def test_pearson_matches_scipy(n, slope):
    rng = np.random.default_rng(n)
    x = rng.normal(size=n)
    y = slope * x + rng.normal(size=n)
    r, p, lo, hi = pearson(x, y, confidence=0.9)
    ref = stats.pearsonr(x, y)
    ci = ref.confidence_interval(confidence_level=0.9)
    assert r == pytest.approx(ref.statistic, abs=1e-12)
    assert p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-15)
    assert lo == pytest.approx(ci.low, abs=1e-12)
    assert hi == pytest.approx(ci.high, abs=1e-12)


def test_pearson_three_points_and_degenerate():
    x, y = [1.0, 2.0, 3.5], [2.0, 1.0, 4.0]
    r, p, lo, hi = pearson(x, y)
    ref = stats.pearsonr(x, y)
    assert (r, p) == pytest.approx((ref.statistic, ref.pvalue), abs=1e-12)
    assert np.isnan(lo) and np.isnan(hi)
    assert all(np.isnan(pearson([1, 2, 3], [5, 5, 5])))
    assert all(np.isnan(pearson([1, 2], [3, 4])))
    r, p, lo, hi = pearson([1, 2, 3, 4, 5], [2, 4, 6, 8, 10])
    assert r == pytest.approx(1.0) and p == pytest.approx(0.0, abs=1e-12)


def test_pearson_drops_nan_pairs_and_checks_lengths():
    x = np.array([1.0, 2.0, np.nan, 4.0, 5.0, 7.0])
    y = np.array([1.0, 3.0, 2.0, np.nan, 4.0, 6.5])
    keep = np.isfinite(x) & np.isfinite(y)
    ref = stats.pearsonr(x[keep], y[keep])
    assert pearson(x, y)[:2] == pytest.approx((ref.statistic, ref.pvalue), abs=1e-12)
    with pytest.raises(DataError):
        pearson([1, 2, 3], [1, 2])


def test_constant_sample_is_nan_with_a_reason_as_scipy():
    # A constant column whose float mean is not its value (rounding): r would be +-1.
    x = np.full(7, 0.1)
    assert np.mean(x) != x[0]  # the case that gave r = 1, p = 0, CI [1, 1]
    y = np.arange(7.0)
    with pytest.warns(stats.ConstantInputWarning):
        ref = stats.pearsonr(x, y)
    assert np.isnan(ref.statistic)
    res = pearson_test(x, y)
    assert np.isnan([res.r, res.p, res.ci_low, res.ci_high]).all()
    assert "constant x" in res.reason and res.n == 7
    assert all(np.isnan(pearson(y, x)))
    assert "fewer than 3" in pearson_test([1.0, 2.0], [3.0, 4.0]).reason
    assert pearson_test(y, y**2).reason == ""


def test_agreement_matches_numpy_bland_altman():
    rng = np.random.default_rng(0)
    ref = rng.uniform(1, 3, 40)
    x = ref * 1.2 + rng.normal(0, 0.1, 40)
    x[3] = np.nan  # dropped pair
    keep = np.isfinite(x)
    d = x[keep] - ref[keep]
    a = agreement(x, ref)
    assert a.n == 39 and a.reason == ""
    assert a.mean_diff == pytest.approx(d.mean())
    assert a.sd_diff == pytest.approx(np.sqrt(((d - d.mean()) ** 2).sum() / 38))
    assert a.loa_low == pytest.approx(d.mean() - 1.96 * d.std(ddof=1))
    assert a.loa_high == pytest.approx(d.mean() + 1.96 * d.std(ddof=1))
    assert a.mae == pytest.approx(np.abs(d).mean())
    assert a.bias == pytest.approx(np.median(d / ref[keep]))
    assert a.mare == pytest.approx(np.median(np.abs(d / ref[keep])))
    zero = agreement([1.0, 2.0], [0.0, 0.0])
    assert np.isnan(zero.bias) and "relative error undefined" in zero.reason

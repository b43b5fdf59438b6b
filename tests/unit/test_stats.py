"""Pearson correlation against scipy.stats.pearsonr."""

import numpy as np
import pytest
from scipy import stats

from tomosynth.errors import DataError
from tomosynth.metrics.stats import pearson


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

"""KID against torchmetrics' implementation and a direct reading of the formula."""

import numpy as np
import pytest
import torch
from torchmetrics.image.kid import KernelInceptionDistance, poly_mmd

from tomosynth.errors import DataError
from tomosynth.metrics.kid import kid, log_kid, mmd2_unbiased, polynomial_kernel

# Tolerance: both sides compute in float64 on the same features, so they agree to round-off.
RTOL = 1e-9


class _Identity(torch.nn.Module):
    """Hands torchmetrics our features as its "Inception" output."""

    num_features = 16

    def forward(self, x):
        return x


def _features(seed, n=40, d=16, shift=0.0):
    return np.random.default_rng(seed).normal(size=(n, d)) + shift


def _mmd2_by_definition(x, y):
    """Unbiased MMD^2 (Bińkowski et al. 2018, eq. as in torch-fidelity), written as loops."""
    m, d = x.shape

    def k(a, b):
        return (float(a @ b) / d + 1.0) ** 3

    kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / m**2
    return kxx + kyy - 2 * kxy


def test_mmd_equals_torchmetrics_and_the_definition():
    x, y = _features(0, 12), _features(1, 12, shift=0.4)
    ours = mmd2_unbiased(x, y)
    tm = poly_mmd(torch.tensor(x), torch.tensor(y)).item()
    assert ours == pytest.approx(tm, rel=RTOL)
    assert ours == pytest.approx(_mmd2_by_definition(x, y), rel=RTOL)


def test_kernel_is_cubic_polynomial():
    a, b = _features(2, 3, 5), _features(3, 4, 5)
    np.testing.assert_allclose(polynomial_kernel(a, b), (a @ b.T / 5 + 1) ** 3)


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance`:UserWarning")
def test_full_set_kid_equals_torchmetrics_metric():
    real, fake = _features(0), _features(1, shift=0.3)
    metric = KernelInceptionDistance(feature=_Identity(), subsets=3, subset_size=40)
    metric.update(torch.tensor(real), real=True)
    metric.update(torch.tensor(fake), real=False)
    tm_mean, tm_std = (v.item() for v in metric.compute())
    mean, std, m = kid(fake, real, subsets=3, subset_size=40)
    assert m == 40
    assert mean == pytest.approx(tm_mean, rel=RTOL)
    assert std == pytest.approx(tm_std, abs=1e-12)  # subsets = the whole sets: std 0


def test_subset_kid_aggregates_like_torchmetrics():
    real, fake = _features(0, 50), _features(1, 60, shift=0.2)
    mean, std, m = kid(fake, real, subsets=20, subset_size=25, seed=7)
    # the same subsets, drawn in kid()'s order, scored by torchmetrics' poly_mmd
    rng = np.random.default_rng(7)
    vals = []
    for _ in range(20):
        r = real[rng.permutation(50)[:25]]
        f = fake[rng.permutation(60)[:25]]
        vals.append(poly_mmd(torch.tensor(r), torch.tensor(f)).item())
    vals = torch.tensor(vals, dtype=torch.float64)
    assert m == 25
    assert mean == pytest.approx(vals.mean().item(), rel=RTOL)
    assert std == pytest.approx(vals.std(unbiased=False).item(), rel=RTOL)


def test_kid_is_unbiased_near_zero_for_one_distribution():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    mean, std, _ = kid(x, y, subsets=50, subset_size=100)
    shifted, _, _ = kid(x + 0.5, y, subsets=50, subset_size=100)
    assert abs(mean) < 3 * std  # zero within its spread
    assert shifted > 10 * abs(mean)


def test_subset_size_capped_and_small_sets_refused():
    _, _, m = kid(_features(0, 7), _features(1, 9), subsets=2, subset_size=1000)
    assert m == 7
    with pytest.raises(DataError):
        kid(_features(0, 1), _features(1, 9))


def test_log_kid_is_log1p_of_the_positive_part():
    assert log_kid(0.0) == 0.0 and log_kid(-0.4) == 0.0  # estimator noise around 0
    assert log_kid(np.e - 1.0) == pytest.approx(1.0)
    assert log_kid(1e12) == pytest.approx(np.log(1e12), rel=1e-12)
    assert np.isnan(log_kid(float("nan")))
    values = [-1.0, 0.0, 1e-3, 0.5, 3.0, 1e6, 1e15]
    assert np.all(np.diff([log_kid(v) for v in values]) >= 0)  # monotone: same ranking

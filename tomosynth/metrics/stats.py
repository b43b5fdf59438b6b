"""Correlation statistics: Pearson r with its two-sided p-value and Fisher-z interval."""

from __future__ import annotations

import math

import numpy as np
from scipy import special
from scipy.stats import norm

from tomosynth.errors import DataError


def pearson(
    x: np.ndarray, y: np.ndarray, confidence: float = 0.95
) -> tuple[float, float, float, float]:
    """Pearson correlation of paired samples.

    Returns ``(r, p, ci_low, ci_high)``: r in [-1, 1]; the two-sided p-value of r = 0
    under bivariate normality (Student t with n - 2 degrees of freedom, as
    ``scipy.stats.pearsonr``); the `confidence` interval of r from Fisher's z transform,
    ``tanh(atanh(r) +- z_{(1+c)/2} / sqrt(n - 3))``. Pairs with a NaN are dropped. All four
    are NaN when fewer than 3 pairs remain or either sample is constant; the interval is NaN
    for n = 3.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise DataError(f"pearson: samples differ in length ({x.size} vs {y.size})")
    if not 0.0 < confidence < 1.0:
        raise DataError(f"pearson: confidence must be in (0, 1), got {confidence}")
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = x.size
    nan = float("nan")
    if n < 3:
        return nan, nan, nan, nan
    xm, ym = x - x.mean(), y - y.mean()
    nx, ny = np.linalg.norm(xm), np.linalg.norm(ym)
    if nx == 0.0 or ny == 0.0:
        return nan, nan, nan, nan
    r = float(np.clip(np.dot(xm / nx, ym / ny), -1.0, 1.0))
    dof = n - 2
    if abs(r) == 1.0:
        p = 0.0
    else:
        # p = P(|T| >= |t|), t = r sqrt(dof / (1 - r^2)), via the regularised incomplete beta.
        t2 = r * r * dof / (1.0 - r * r)
        p = float(special.betainc(0.5 * dof, 0.5, dof / (dof + t2)))
    if n <= 3:
        return r, p, nan, nan
    z = math.atanh(r) if abs(r) < 1.0 else math.copysign(math.inf, r)
    half = float(norm.ppf(0.5 * (1.0 + confidence))) / math.sqrt(n - 3)
    return r, p, math.tanh(z - half), math.tanh(z + half)

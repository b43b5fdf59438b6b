"""Paired-sample statistics: Pearson r with its two-sided p-value and Fisher-z interval,
and agreement (bias, MAE, Bland-Altman limits) of a method against a reference."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special
from scipy.stats import norm

from tomosynth.errors import DataError

NAN = float("nan")


@dataclass(frozen=True)
class Pearson:
    """Pearson r, its p-value and interval, the number of pairs, and why they are NaN."""

    r: float
    p: float
    ci_low: float
    ci_high: float
    n: int
    reason: str = ""  # empty when r is defined


def _pairs(x: np.ndarray, y: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Paired float64 samples without the pairs holding a NaN or an infinity."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise DataError(f"{name}: samples differ in length ({x.size} vs {y.size})")
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def pearson_test(x: np.ndarray, y: np.ndarray, confidence: float = 0.95) -> Pearson:
    """Pearson correlation of paired samples, with the reason when it is undefined.

    r in [-1, 1]; the two-sided p-value of r = 0 under bivariate normality (Student t with
    n - 2 degrees of freedom, as ``scipy.stats.pearsonr``); the `confidence` interval of r
    from Fisher's z transform, ``tanh(atanh(r) +- z_{(1+c)/2} / sqrt(n - 3))``. Pairs with
    a NaN are dropped. All four are NaN, with the reason, when fewer than 3 pairs remain
    or a sample is constant (every value equal, as scipy tests it: a constant column's
    mean can differ from its values by rounding, which would otherwise give r = +-1);
    the interval is NaN for n = 3.
    """
    if not 0.0 < confidence < 1.0:
        raise DataError(f"pearson: confidence must be in (0, 1), got {confidence}")
    x, y = _pairs(x, y, "pearson")
    n = x.size
    if n < 3:
        return Pearson(NAN, NAN, NAN, NAN, n, f"fewer than 3 finite pairs (n = {n})")
    for name, v in (("x", x), ("y", y)):
        if np.all(v == v[0]):
            return Pearson(NAN, NAN, NAN, NAN, n, f"constant {name} (every value {v[0]:.6g})")
    xm, ym = x - x.mean(), y - y.mean()
    nx, ny = np.linalg.norm(xm), np.linalg.norm(ym)
    if nx == 0.0 or ny == 0.0:
        return Pearson(NAN, NAN, NAN, NAN, n, "no variance")
    r = float(np.clip(np.dot(xm / nx, ym / ny), -1.0, 1.0))
    dof = n - 2
    if abs(r) == 1.0:
        p = 0.0
    else:
        # p = P(|T| >= |t|), t = r sqrt(dof / (1 - r^2)), via the regularised incomplete beta.
        t2 = r * r * dof / (1.0 - r * r)
        p = float(special.betainc(0.5 * dof, 0.5, dof / (dof + t2)))
    if n <= 3:
        return Pearson(r, p, NAN, NAN, n, "")
    z = math.atanh(r) if abs(r) < 1.0 else math.copysign(math.inf, r)
    half = float(norm.ppf(0.5 * (1.0 + confidence))) / math.sqrt(n - 3)
    return Pearson(r, p, math.tanh(z - half), math.tanh(z + half), n, "")


def pearson(
    x: np.ndarray, y: np.ndarray, confidence: float = 0.95
) -> tuple[float, float, float, float]:
    """``(r, p, ci_low, ci_high)`` of :func:`pearson_test` (NaN where it gives a reason)."""
    res = pearson_test(x, y, confidence)
    return res.r, res.p, res.ci_low, res.ci_high


@dataclass(frozen=True)
class Agreement:
    """Agreement of a method with a reference over paired samples (Bland & Altman 1986).

    ``bias`` is the median relative error ``median((x - ref) / ref)`` (a fraction, -0.5 =
    50 % low); ``mare`` the median absolute relative error; ``mae`` the mean absolute error
    in the samples' unit; ``mean_diff`` and ``sd_diff`` the mean and sample standard
    deviation (ddof 1) of ``x - ref``; ``loa_low``/``loa_high`` the 95 % limits of agreement
    ``mean_diff -+ 1.96 sd_diff``. ``n`` finite pairs (``n_rel`` of them with ref != 0 for
    the relative errors); ``reason`` says why a value is NaN.
    """

    n: int
    n_rel: int
    bias: float
    mare: float
    mae: float
    mean_diff: float
    sd_diff: float
    loa_low: float
    loa_high: float
    reason: str = ""


def agreement(x: np.ndarray, reference: np.ndarray) -> Agreement:
    """Bias, errors and Bland-Altman limits of `x` against `reference` (see :class:`Agreement`)."""
    x, ref = _pairs(x, reference, "agreement")
    n = x.size
    if n == 0:
        return Agreement(0, 0, NAN, NAN, NAN, NAN, NAN, NAN, NAN, "no finite pairs")
    diff = x - ref
    nz = ref != 0
    rel = diff[nz] / ref[nz]
    bias = float(np.median(rel)) if rel.size else NAN
    mare = float(np.median(np.abs(rel))) if rel.size else NAN
    mean_diff = float(diff.mean())
    sd = float(diff.std(ddof=1)) if n >= 2 else NAN
    reasons = []
    if not rel.size:
        reasons.append("reference is 0 in every pair (relative error undefined)")
    if n < 2:
        reasons.append("one pair (no spread for the limits of agreement)")
    return Agreement(
        n=n,
        n_rel=int(rel.size),
        bias=bias,
        mare=mare,
        mae=float(np.abs(diff).mean()),
        mean_diff=mean_diff,
        sd_diff=sd,
        loa_low=mean_diff - 1.96 * sd,
        loa_high=mean_diff + 1.96 * sd,
        reason="; ".join(reasons),
    )

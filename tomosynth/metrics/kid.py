"""Kernel Inception Distance: unbiased MMD^2 with a cubic polynomial kernel.

KID (Bińkowski et al. 2018) is unbiased at any N, unlike the Fréchet distance, which
makes it the better small-sample companion of FID. The kernel and estimator follow
torchmetrics / torch-fidelity: k(x, y) = (x . y / d + 1)^3, mean and population std of
MMD^2 over random subsets of equal size m drawn without replacement.

Reported scale. In Inception space KID is small (~1e-3 to 1e-1). In the z-scored space of
the offline radiomics features it is not: the cubic kernel grows like the sixth power of
a set's offset in reference standard deviations, so generators score 1e9-1e15 while two
halves of the real slices score ~0 (the unbiased estimate is negative about half the time
when the sets do not differ). :func:`log_kid` puts these on one readable axis, as the log
does for the Fréchet distance: ``ln(1 + max(KID, 0))``, 0 for "not distinguishable at this
subset size", ~ln KID once KID >> 1.
"""

from __future__ import annotations

import numpy as np

from tomosynth.errors import DataError


def polynomial_kernel(a: np.ndarray, b: np.ndarray, degree: int = 3) -> np.ndarray:
    """k(x, y) = (x . y / d + 1)^degree for all rows of `a` against all rows of `b`."""
    d = a.shape[1]
    return (a @ b.T / d + 1.0) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int = 3) -> float:
    """Unbiased MMD^2 between two equal-size ``(m, d)`` samples (m >= 2).

    MMD^2 = sum_{i!=j} k(x_i,x_j)/(m(m-1)) + sum_{i!=j} k(y_i,y_j)/(m(m-1))
    - 2 sum_{i,j} k(x_i,y_j)/m^2 (the cross term keeps i = j, as torch-fidelity does).
    """
    m = x.shape[0]
    if y.shape[0] != m or m < 2:
        raise DataError(f"KID subsets of sizes {x.shape[0]} and {y.shape[0]}: need equal, >= 2")
    kxx = polynomial_kernel(x, x, degree)
    kyy = polynomial_kernel(y, y, degree)
    kxy = polynomial_kernel(x, y, degree)
    sxx = kxx.sum() - np.trace(kxx)
    syy = kyy.sum() - np.trace(kyy)
    return float((sxx + syy) / (m * (m - 1)) - 2.0 * kxy.sum() / m**2)


def log_kid(value: float) -> float:
    """``ln(1 + max(KID, 0))``: the reported scale of KID (module docstring); NaN stays NaN.

    Monotone in KID, so a ranking by KID is a ranking by this; a KID at or below 0 (the
    unbiased estimate's noise around identical distributions) maps to 0.
    """
    value = float(value)
    if np.isnan(value):
        return float("nan")
    return float(np.log1p(max(value, 0.0)))


def kid(
    x: np.ndarray,
    ref: np.ndarray,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
    degree: int = 3,
) -> tuple[float, float, int]:
    """KID of feature sets `x` and `ref`: mean and std of MMD^2 over random subsets.

    `subset_size` is capped at min(len(x), len(ref)) (torchmetrics refuses instead); the
    size used is returned so it can be reported beside the score.

    Returns
    -------
    (mean, std over subsets (ddof=0, as torchmetrics), subset size used)
    """
    x = np.asarray(x, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    m = min(int(subset_size), len(x), len(ref))
    if m < 2:
        raise DataError(f"KID needs >= 2 images per set, got {len(x)} and {len(ref)}")
    rng = np.random.default_rng(seed)
    vals = np.array(
        [
            mmd2_unbiased(
                ref[rng.permutation(len(ref))[:m]], x[rng.permutation(len(x))[:m]], degree
            )
            for _ in range(subsets)
        ]
    )
    return float(vals.mean()), float(vals.std()), m

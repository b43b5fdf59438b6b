"""Fréchet distance of Gaussian feature statistics and its small-sample statistics.

The kernels beneath :mod:`tomosynth.metrics.distance` (Inception FID, FRD v1 and the
tomosynth radiomics features all use them): Gaussian statistics of a feature array, the
Fréchet distance (exact for rank-deficient covariances, NumPy or float64 torch), a seeded
bootstrap interval, a real-vs-real baseline at a given N, and the FID-infinity
extrapolation of Chong & Forsyth (2020) with the rule that says when it is valid
(:func:`fid_inf_validity`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from tomosynth.errors import DataError


@dataclass
class Stats:
    """Gaussian statistics of one feature set (as pytorch-fid's ``--save-stats``).

    Attributes
    ----------
    mu : (d,) float64 mean feature vector.
    sigma : (d, d) float64 covariance (``np.cov``, ddof=1).
    n : number of images the statistics come from.
    """

    mu: np.ndarray
    sigma: np.ndarray
    n: int


def feature_stats(features: np.ndarray) -> Stats:
    """Mean and covariance (ddof=1, as pytorch-fid) of an ``(n, d)`` feature array, n >= 2."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise DataError(f"feature array of shape {x.shape}: need (n >= 2, d)")
    return Stats(mu=x.mean(axis=0), sigma=np.atleast_2d(np.cov(x, rowvar=False)), n=x.shape[0])


def _clip_roundoff(w: np.ndarray) -> np.ndarray:
    """Set eigenvalues within round-off of zero (|w| <= d * eps * max|w|) to exactly zero.

    sqrt() magnifies round-off near zero (1e-14 -> 1e-7), which summed over the many null
    directions of a rank-deficient covariance (N < d) would bias tr sqrt by ~1e-5.
    """
    tol = w.size * np.finfo(np.float64).eps * max(float(np.abs(w).max(initial=0.0)), 1e-300)
    return np.where(w > tol, w, 0.0)


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (round-off eigenvalues -> 0)."""
    w, v = np.linalg.eigh((sigma + sigma.T) / 2)
    return (v * np.sqrt(_clip_roundoff(w))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr sqrt(S1 S2) for symmetric PSD S1, S2, via an eigen-decomposition.

    S1 S2 is similar to sqrt(S1) S2 sqrt(S1), which is symmetric PSD, so its eigenvalues
    are real and non-negative and tr sqrt(S1 S2) is the sum of their square roots. This
    avoids ``scipy.linalg.sqrtm`` of the non-symmetric product (and its deprecated args).
    """
    s1 = _psd_sqrt(np.atleast_2d(sigma1))
    m = s1 @ np.atleast_2d(sigma2) @ s1
    w = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(_clip_roundoff(w)).sum())


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """Fréchet distance ||mu1 - mu2||^2 + tr(S1 + S2 - 2 sqrt(S1 S2)) of two Gaussians.

    Units are squared feature units; 0 for identical statistics.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise DataError(f"statistics of different dimension: {mu1.shape} vs {mu2.shape}")
    diff = mu1 - mu2
    tr = np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2)
    return float(diff @ diff + tr)


def frechet_distance_features(x1: np.ndarray, x2: np.ndarray) -> float:
    """Fréchet distance between the Gaussian statistics of two ``(n, d)`` feature arrays.

    Exactly :func:`frechet_distance` of :func:`feature_stats`, but when n < d it uses
    tr sqrt(S1 S2) = nuclear norm of A1 A2^T with S_i = A_i^T A_i and
    A_i = centred X_i / sqrt(n_i - 1): an n1 x n2 problem instead of d x d (the nonzero
    eigenvalues of S1 S2 are the squared singular values of A1 A2^T). This keeps the
    bootstrap of 2048-d Inception features on a few hundred images cheap.
    """
    x1 = np.asarray(x1, dtype=np.float64)
    x2 = np.asarray(x2, dtype=np.float64)
    n1, d = x1.shape
    n2 = x2.shape[0]
    if x2.shape[1] != d or n1 < 2 or n2 < 2:
        raise DataError(f"feature arrays {x1.shape} and {x2.shape}: need (n >= 2, same d)")
    if max(n1, n2) >= d:
        s1, s2 = feature_stats(x1), feature_stats(x2)
        return frechet_distance(s1.mu, s1.sigma, s2.mu, s2.sigma)
    mu1, mu2 = x1.mean(0), x2.mean(0)
    a1 = (x1 - mu1) / np.sqrt(n1 - 1)
    a2 = (x2 - mu2) / np.sqrt(n2 - 1)
    nuclear = np.linalg.svd(a1 @ a2.T, compute_uv=False).sum()
    diff = mu1 - mu2
    return float(diff @ diff + (a1 * a1).sum() + (a2 * a2).sum() - 2.0 * nuclear)


def frechet_distance_torch(x: np.ndarray, y: np.ndarray, device: str = "cuda") -> float:
    """:func:`frechet_distance_features` in float64 torch on `device` (same two paths).

    For 2048-d Inception features of thousands of images the d x d eigen-decompositions
    take seconds each on a CPU, and the bootstrap needs hundreds: on a GPU they are cheap.
    """
    import torch

    xt = torch.as_tensor(np.asarray(x), dtype=torch.float64, device=device)
    yt = torch.as_tensor(np.asarray(y), dtype=torch.float64, device=device)
    (n1, d), n2 = xt.shape, yt.shape[0]
    if yt.shape[1] != d or n1 < 2 or n2 < 2:
        raise DataError(
            f"feature arrays {tuple(xt.shape)} and {tuple(yt.shape)}: need (n >= 2, same d)"
        )
    mu1, mu2 = xt.mean(0), yt.mean(0)
    a1 = (xt - mu1) / (n1 - 1) ** 0.5
    a2 = (yt - mu2) / (n2 - 1) ** 0.5
    if max(n1, n2) >= d:
        s1, s2 = a1.T @ a1, a2.T @ a2
        w, v = torch.linalg.eigh(s1)
        r = (v * _clip_roundoff_t(w).sqrt()) @ v.T
        m = r @ s2 @ r
        tr_sqrt = _clip_roundoff_t(torch.linalg.eigvalsh((m + m.T) / 2)).sqrt().sum()
    else:
        tr_sqrt = torch.linalg.svdvals(a1 @ a2.T).sum()
    diff = mu1 - mu2
    return float(diff @ diff + (a1 * a1).sum() + (a2 * a2).sum() - 2.0 * tr_sqrt)


def _clip_roundoff_t(w):
    """Torch twin of :func:`_clip_roundoff`."""
    import torch

    tol = w.numel() * torch.finfo(torch.float64).eps * w.abs().max().clamp_min(1e-300)
    return torch.where(w > tol, w, torch.zeros_like(w))


Distance = Callable[[np.ndarray, np.ndarray], float]


def distance_function(device: str = "cpu") -> Distance:
    """The Fréchet distance of feature arrays to use on `device`: NumPy on the CPU, torch
    (float64) on a CUDA device."""
    if str(device).startswith("cuda"):
        return lambda x, y: frechet_distance_torch(x, y, device)
    return frechet_distance_features


def bootstrap_ci(
    x: np.ndarray,
    ref: np.ndarray,
    n_boot: int = 200,
    level: float = 0.95,
    seed: int = 0,
    distance: Distance = frechet_distance_features,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``distance(x, ref)``, resampling both sets.

    Each replicate draws len(x) rows of `x` and len(ref) rows of `ref` with replacement
    (seeded). Duplicated rows shrink the spread of a resample, so replicates of a Fréchet
    distance lean high; at a true distance near zero the interval can sit above the
    full-sample value (read it with the real-vs-real baseline).

    Returns
    -------
    (low, high) at the two-sided `level`.
    """
    rng = np.random.default_rng(seed)
    vals = np.empty(n_boot)
    for b in tqdm(range(n_boot), desc="bootstrap", leave=False, disable=n_boot < 50):
        i = rng.integers(0, len(x), len(x))
        j = rng.integers(0, len(ref), len(ref))
        vals[b] = distance(x[i], ref[j])
    alpha = (1.0 - level) / 2.0
    if np.isnan(vals).all():
        return float("nan"), float("nan")
    lo, hi = np.nanquantile(vals, [alpha, 1.0 - alpha])  # NaN: a degenerate resample
    return float(lo), float(hi)


def split_baseline(
    real: np.ndarray,
    n: int | None = None,
    repeats: int = 5,
    seed: int = 0,
    distance: Distance = frechet_distance_features,
) -> tuple[float, int]:
    """Real-vs-real distance between two disjoint random subsets of `real` of size n each.

    With ``n=None`` the subsets are two equal halves (the thesis' real-split baseline).
    `n` is capped at len(real) // 2 so the subsets never share an image; the result is the
    mean over `repeats` seeded draws.

    Returns
    -------
    (mean distance, n actually used per subset)
    """
    half = len(real) // 2
    if half < 2:
        raise DataError(f"real-split baseline needs >= 4 real images, got {len(real)}")
    n = half if n is None else min(int(n), half)
    n = max(n, 2)
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(repeats):
        perm = rng.permutation(len(real))
        vals.append(distance(real[perm[:n]], real[perm[n : 2 * n]]))
    return float(np.mean(vals)), n


def fid_infinity(
    x: np.ndarray,
    ref: np.ndarray,
    n_points: int = 15,
    min_fraction: float = 0.1,
    repeats: int = 1,
    seed: int = 0,
    distance: Distance = frechet_distance_features,
) -> tuple[float, np.ndarray, np.ndarray]:
    """FID-infinity of Chong & Forsyth (2020): the distance extrapolated to N = infinity.

    "Effectively unbiased FID and Inception Score and where to find them" (CVPR 2020,
    section 3): the reference statistics stay those of the **full** reference set; only the
    compared set `x` is subsampled (without replacement) to N images, for `n_points` values
    of N evenly spaced from ``min_fraction * len(x)`` to ``len(x)`` (the paper: 15 values,
    5,000 to 50,000). The plug-in bias of the Fréchet distance is linear in 1/N to first
    order, so a least-squares line of the distance against 1/N, read at 1/N = 0, removes
    the bias due to the finite compared set. What remains is the (smaller, fixed) bias of
    the finite reference set. `repeats` draws per N are averaged (the paper: one).

    Returns
    -------
    (intercept at 1/N = 0, the N values, the mean distance at each N); NaN when fewer
    than two distinct N >= 2 are available.
    """
    n_max = len(x)
    n_min = fid_inf_smallest_n(n_max, min_fraction)
    ns = np.unique(np.linspace(n_min, n_max, max(int(n_points), 2)).round().astype(int))
    ns = ns[ns >= 2]
    if len(ns) < 2:
        return float("nan"), ns, np.full(len(ns), np.nan)
    rng = np.random.default_rng(seed)
    means = np.array(
        [
            np.mean([distance(x[rng.permutation(n_max)[:n]], ref) for _ in range(repeats)])
            for n in ns
        ]
    )
    _slope, intercept = np.polyfit(1.0 / ns, means, 1)
    return float(intercept), ns, means


def fid_inf_smallest_n(n_set: int, min_fraction: float) -> int:
    """The smallest N of :func:`fid_infinity`'s fit for a compared set of `n_set` images."""
    return max(2, int(round(min_fraction * n_set)))


def fid_inf_validity(n_set: int, dim: int, min_fraction: float, min_n_per_dim: float) -> str:
    """Why FID-infinity is not reported for this set, or "" when it is.

    The extrapolation assumes the bias is linear in 1/N, which holds only when every N of
    the fit is well above the feature dimension d: with N near or below d the covariance is
    rank-deficient and the distance bends away from the line (true distance 0, 2048-d
    Inception features and N of a few hundred gave -3.7). Rule: the smallest N of the fit
    must be at least ``min_n_per_dim * d`` (Chong & Forsyth's smallest N, 5,000 for
    2,048-d features, is 2.4 d). A Gaussian check (d = 32, identical distributions, a
    reference of 10 d, mean of 20 draws): smallest N of 0.2-0.9 d gave -0.6 to +10 against
    the finite-reference asymptote of 0.95; 1.5 d gave 0.6, 3 d 0.9.
    """
    n_min = fid_inf_smallest_n(n_set, min_fraction)
    need = float(min_n_per_dim) * int(dim)
    if n_min >= need:
        return ""
    return (
        f"not reported: smallest N of the fit {n_min} < {min_n_per_dim:g} x feature dim {dim} "
        "(evaluate.distance.fid_inf_min_n_per_dim); the 1/N extrapolation is not valid there"
    )

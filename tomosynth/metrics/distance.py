"""Fréchet distances between feature sets, with small-sample statistics.

The same machinery serves the Inception FID (features from :mod:`tomosynth.metrics.fid`)
and the weight-free "log FRD (tomosynth radiomics features)" (features from
:mod:`tomosynth.metrics.features`): Gaussian statistics, the Fréchet distance, a seeded
bootstrap confidence interval, a real-vs-real baseline at a given N, KID and the
FID-infinity extrapolation of Chong & Forsyth (2020).

Scale of the offline metric. As FRD v1 (Konz et al. 2024), every radiomics feature is
z-scored by the reference set (the training split) and the reported value is the natural
log of the Fréchet distance in that space. Real slices of one sample are statistically
very alike (the features' spread across them is ~0.3-2 % of their value), so any visible
change moves many features by tens of reference standard deviations and the linear
distance spans orders of magnitude: on reconstructed slices of the simulated shale scan
(128 px, 24 vs 24, :func:`tomosynth.metrics.degrade.degradation_table`) the real-vs-real
FD is ~17 (log 2.8), Gaussian noise of 4 grey levels gives ~490 (log 6.2) and of 32 grey
levels ~2e5 (log 12.3). The log keeps those on one readable axis.
Features whose reference spread is degenerate (std <= ``frd_min_std``) are dropped and
named in the table. KID and FID-infinity are computed in the same z-scored space. KID's
cubic kernel makes it grow like the sixth power of the z offset (1e9-1e15 for generators,
~0 real vs real), so the table adds ``log_kid`` = ln(1 + max(KID, 0))
(:func:`tomosynth.metrics.kid.log_kid`) beside the raw ``kid_mean`` / ``kid_std``: on the
degraded shale slices above it reads 0 real vs real, 4-13 at the mildest levels and 20-29
at the strongest. FID rows are untouched: Inception features, linear FD (their
``log_kid`` is on the same ln(1 + max(KID, 0)) map, ~KID itself when KID is small).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tomosynth.errors import ConfigError, DataError
from tomosynth.io import atomic_file
from tomosynth.metrics import features as frd
from tomosynth.metrics import fid
from tomosynth.metrics.kid import kid, log_kid
from tomosynth.provenance import sha256_file


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


def save_stats(path: str | os.PathLike, features: np.ndarray, **extra: object) -> None:
    """Write ``mu``, ``sigma``, ``n`` (pytorch-fid's ``.npz`` keys) plus the raw ``features``.

    The features are kept because the bootstrap, KID and FID-infinity need them.
    Extra scalars or strings (metric name, cache key) are stored beside them.
    """
    st = feature_stats(features)
    with atomic_file(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(  # uncompressed: compressing a 2048^2 covariance takes seconds
                fh,
                mu=st.mu,
                sigma=st.sigma,
                n=np.int64(st.n),
                features=np.asarray(features, dtype=np.float64),
                **{k: np.asarray(v) for k, v in extra.items()},
            )


def load_stats(path: str | os.PathLike) -> dict:
    """Read a file written by :func:`save_stats` into a dict of arrays (strings as ``str``)."""
    with np.load(path, allow_pickle=False) as f:
        out = {k: f[k] for k in f.files}
    return {k: (str(v) if v.dtype.kind == "U" else v) for k, v in out.items()}


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
    lo, hi = np.quantile(vals, [alpha, 1.0 - alpha])
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
    n_min = max(2, int(round(min_fraction * n_max)))
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


# --- the offline metric's feature space -----------------------------------------------------
@dataclass
class Standardiser:
    """Per-feature z-scoring by a reference set, without its degenerate features.

    Attributes
    ----------
    mean, std : (d,) reference mean and standard deviation (ddof=1) of every feature.
    keep : (d,) bool, the features used: reference std above the threshold.
    """

    mean: np.ndarray
    std: np.ndarray
    keep: np.ndarray

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """``(features - mean) / std`` of the kept features, shape ``(n, keep.sum())``."""
        x = np.asarray(features, dtype=np.float64)
        return (x[:, self.keep] - self.mean[self.keep]) / self.std[self.keep]

    def dropped(self, names: list[str]) -> list[str]:
        """Names of the features left out (reference spread at or below the threshold)."""
        return [n for n, k in zip(names, self.keep, strict=True) if not k]


def fit_standardiser(ref: np.ndarray, min_std: float = 1e-4) -> Standardiser:
    """Standardiser of the reference feature set `ref` (n >= 2 rows).

    A feature whose reference std is at most `min_std` (feature units; the radiomics
    features are computed on images scaled to [0, 1], so 1e-4 is 1/40 of a grey level) or
    at rounding level (``1e-9 (1 + |mean|)``, e.g. a percentile that always falls on one
    grey value) has no usable z-score: dividing by it would let that one feature decide
    the distance. It is dropped; :meth:`Standardiser.dropped` lists it.
    """
    r = np.asarray(ref, dtype=np.float64)
    if r.ndim != 2 or len(r) < 2:
        raise DataError(f"reference features of shape {r.shape}: need (n >= 2, d)")
    mu, sd = r.mean(axis=0), r.std(axis=0, ddof=1)
    keep = sd > np.maximum(float(min_std), 1e-9 * (1.0 + np.abs(mu)))
    if not keep.any():
        raise DataError(
            f"every feature is constant in the reference (std <= {min_std}): no distance"
        )
    return Standardiser(mean=mu, std=np.where(keep, sd, 1.0), keep=keep)


def zscore(features: np.ndarray, ref: np.ndarray, min_std: float = 1e-4) -> np.ndarray:
    """Features z-scored by `ref` without its degenerate features (:func:`fit_standardiser`)."""
    return fit_standardiser(ref, min_std)(features)


def log_distance(fd: float) -> float:
    """Natural log of a Fréchet distance (the reported "log FRD"); -inf at 0, NaN below."""
    fd = float(fd)
    if not np.isfinite(fd) or fd < 0:
        return float("nan")
    return float(np.log(fd)) if fd > 0 else float("-inf")


LOG_COLUMNS = ("value", "ci_low", "ci_high", "baseline_same_n")


def to_log_scale(row: dict) -> dict:
    """A :func:`compare_sets` row of the offline metric on the reported scale: ``fd`` keeps
    the Fréchet distance, and `value`, its CI and the same-N baseline become natural logs
    (a monotone map, so the percentile CI maps to the CI of the log). ``fid_inf`` stays a
    linear Fréchet distance: the extrapolation is linear in FD and may reach 0 or below."""
    out = dict(row, fd=row["value"])
    for key in LOG_COLUMNS:
        out[key] = log_distance(row[key])
    return out


# --- tables: every score with its N, CI, baseline, KID and FID-infinity ----------------------
TABLE_COLUMNS = [
    "scan",
    "set",
    "reference",
    "metric",
    "value",
    "ci_low",
    "ci_high",
    "n_set",
    "n_ref",
    "baseline_same_n",
    "kid_mean",
    "kid_std",
    "log_kid",
    "fid_inf",
    "feature_dim",
    "warning",
    "label",
    "baseline_n",
    "kid_subset_size",
    "fd",
    "dropped_features",
]


@dataclass
class DistanceSettings:
    """Statistical settings of :func:`distance_table` (all from ``config['evaluate']``).

    Attributes
    ----------
    bootstrap : bootstrap replicates for the CI (0 = no CI).
    ci_level : two-sided confidence level in (0, 1).
    seed : seed of every random draw (bootstrap, splits, subsets).
    kid_subsets, kid_subset_size : KID subsets and their size (capped at the smaller N).
    fid_inf_points : number of N values in the FID-infinity fit.
    fid_inf_min_fraction : smallest N of the fit as a fraction of the compared set's N.
    frd_min_std : reference std (feature units) at or below which a radiomics feature is
        dropped from the offline metric (:func:`fit_standardiser`).
    validation_images : real training slices used by the degradation check (rule
        plot_distance_validation, :func:`tomosynth.metrics.degrade.degradation_table`).
    baseline_repeats : random real-vs-real splits averaged for ``baseline_same_n``.
    """

    bootstrap: int = 200
    ci_level: float = 0.95
    seed: int = 0
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    fid_inf_points: int = 6
    baseline_repeats: int = 5
    fid_inf_min_fraction: float = 0.3
    frd_min_std: float = 1e-4
    validation_images: int = 64


def files_digest(files: list[str], metric: str) -> str:
    """sha256 over the metric name, file names and file contents (the stats cache key)."""

    h = hashlib.sha256(metric.encode())
    for f in files:
        h.update(Path(f).name.encode())
        h.update(Path(f).read_bytes())
    return h.hexdigest()


def cached_features(
    files: list[str],
    metric: str,
    extract: Callable[[list[str]], np.ndarray],
    cache: str | os.PathLike | None,
) -> np.ndarray:
    """Features of `files`, read from the `cache` ``.npz`` when its key matches, else computed
    and written there (``mu``, ``sigma``, ``n`` as pytorch-fid's ``--save-stats`` + features)."""
    key = files_digest(files, metric)
    if cache is not None and Path(cache).is_file():
        st = load_stats(cache)
        if st.get("key") == key:
            return st["features"]
    feats = extract(files)
    if cache is not None:
        save_stats(cache, feats, key=key, metric=metric)
    return feats


def content_cached_features(
    files: list[str],
    metric: str,
    extract: Callable[[list[str]], np.ndarray],
    cache_dir: str | os.PathLike,
    extractor_id: str = "",
) -> np.ndarray:
    """Features of `files` from a content-addressed cache folder, extracting only on a miss.

    The key is the sha256 of `metric`, `extractor_id` (e.g. the Inception weights' digest)
    and the files' names and contents, so a cached array is reused by every rerun and every
    rule that asks for the same images, and never for changed ones. The folder is not a
    declared Snakemake output, so Snakemake does not delete it before a rerun.
    """
    key = files_digest(files, f"{metric}\n{extractor_id}")
    path = Path(cache_dir) / f"{key}.npy"
    if path.is_file():
        try:
            feats = np.load(path)
        except (OSError, ValueError):  # a damaged cache entry is recomputed
            feats = None
        if feats is not None and feats.shape[0] == len(files):
            return feats
    feats = np.asarray(extract(files))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, feats)
    return feats


def compare_sets(
    x: np.ndarray,
    ref: np.ndarray,
    real_pool: np.ndarray,
    settings: DistanceSettings,
    distance: Distance = frechet_distance_features,
) -> dict:
    """Distance of `x` to `ref` with N, CI, same-N real baseline, KID and FID-infinity.

    `real_pool` (all real images' features) supplies the real-vs-real baseline at the
    generated set's N.
    """
    s = settings
    n_set, n_ref, dim = len(x), len(ref), x.shape[1]
    warnings = []
    value = distance(x, ref)
    if s.bootstrap > 0:
        ci = bootstrap_ci(x, ref, s.bootstrap, s.ci_level, s.seed, distance)
    else:
        ci = (float("nan"), float("nan"))
    if min(n_set, n_ref) < dim:
        warnings.append(
            f"N={min(n_set, n_ref)} < feature dim {dim}: covariance is rank-deficient and the "
            "distance is biased upwards; compare with baseline_same_n and KID"
        )
    try:
        base, base_n = split_baseline(real_pool, n_set, s.baseline_repeats, s.seed, distance)
        if base_n < n_set:
            warnings.append(
                f"real pool of {len(real_pool)} images: baseline uses disjoint subsets of "
                f"{base_n}, not {n_set}"
            )
    except DataError as exc:
        base, base_n = float("nan"), 0
        warnings.append(str(exc))
    if np.isfinite(ci[0]) and not ci[0] <= value <= ci[1]:
        warnings.append(
            "bootstrap CI excludes the full-sample value: resampling with replacement "
            "inflates the distance, i.e. small-sample bias dominates this score"
        )
    k_mean, k_std, k_m = kid(x, ref, s.kid_subsets, s.kid_subset_size, s.seed)
    f_inf, _, _ = fid_infinity(
        x, ref, s.fid_inf_points, s.fid_inf_min_fraction, seed=s.seed, distance=distance
    )
    return {
        "value": value,
        "ci_low": ci[0],
        "ci_high": ci[1],
        "n_set": n_set,
        "n_ref": n_ref,
        "baseline_same_n": base,
        "baseline_n": base_n,
        "kid_mean": k_mean,
        "kid_std": k_std,
        "log_kid": log_kid(k_mean),
        "kid_subset_size": k_m,
        "fid_inf": f_inf,
        "feature_dim": dim,
        "warning": "; ".join(warnings),
        "fd": value,
        "dropped_features": "",
    }


def distance_table(
    scan: str,
    sets: dict[str, tuple[str, list[str]]],
    references: dict[str, list[str]],
    real_pool: list[str],
    stats_dir: str | os.PathLike | None = None,
    fid_weights: str | None = None,
    offline_fallback: bool = True,
    device: str = "cpu",
    batch_size: int = 32,
    settings: DistanceSettings | None = None,
    cache_dir: str | os.PathLike | None = None,
):
    """Distances of generated/upscaled image sets to real reference sets, as a DataFrame.

    Parameters
    ----------
    scan : scan name (first column).
    sets : set name -> (plot label, image files) of the compared sets.
    references : reference name -> image files (the thesis compares with "train"; the
        first reference also defines the FRD z-scoring, so every FRD of one table lives
        in the same feature space).
    real_pool : all real high-resolution images: the real-split row (two seeded random
        equal halves) and the same-N baselines are drawn from it.
    stats_dir : folder for per-set ``{metric}_{set}.npz`` statistics (None: no cache).
    cache_dir : content-addressed feature cache (:func:`content_cached_features`) that
        survives reruns; None keeps only the stats_dir cache. Either way the real pool goes
        through the extractor once and the references are row subsets of its array.
    fid_weights : local FID Inception weights, or None for the file in torch hub's cache
        (pytorch-fid's default location; never downloaded).
    offline_fallback : when the weights are missing or unreadable, report FRD
        only (True) or stop with a ConfigError saying where to put the file (False).

    Returns
    -------
    pandas.DataFrame with :data:`TABLE_COLUMNS`; FRD rows always, FID rows when the
    weights are available.
    """
    import pandas as pd

    log = logging.getLogger(__name__)
    settings = settings or DistanceSettings()
    extractors: dict[str, Callable[[list[str]], np.ndarray]] = {
        frd.METRIC_NAME: frd.radiomics_features
    }
    note, model, reason = "", None, ""
    weights_path = Path(fid_weights) if fid_weights is not None else fid.default_weights_path()
    try:  # None: the file in torch hub's cache, never a download
        model = fid.load_inception(fid_weights, device)
    except ConfigError:  # load_inception's own check: no such file
        reason = f"{weights_path}: file missing"
    except (OSError, RuntimeError) as exc:  # unreadable or not a state dict
        reason = f"{weights_path}: {type(exc).__name__}: {exc}"
    if model is not None:
        extractors = {
            fid.METRIC_NAME: lambda f: fid.inception_features(f, model, batch_size, device),
            **extractors,
        }
    elif offline_fallback:
        note = "FID weights unavailable: offline FRD reported instead (not FID)"
        log.warning("%s (%s). %s", note, reason, fid.missing_weights_message(fid_weights, False))
    else:
        raise ConfigError(f"{fid.missing_weights_message(fid_weights, False)} ({reason})")

    dist = distance_function(device)
    safe = {name: name.replace("/", "__") for name in [*sets, *references, "real"]}
    rows = []
    extractor_ids = {frd.METRIC_NAME: ",".join(frd.feature_names())}
    if model is not None:
        extractor_ids[fid.METRIC_NAME] = sha256_file(weights_path)
    for metric, extract in extractors.items():
        tag = "fid" if metric == fid.METRIC_NAME else "frd"
        if cache_dir is not None:
            extract = partial(  # noqa: PLW2901 - the cached extractor replaces the plain one
                content_cached_features,
                metric=metric,
                extract=extract,
                cache_dir=Path(cache_dir) / tag,
                extractor_id=extractor_ids[metric],
            )

        def feats(name: str, files: list[str], tag=tag, metric=metric, extract=extract):
            cache = None if stats_dir is None else Path(stats_dir) / f"{tag}_{safe[name]}.npz"
            return cached_features(files, metric, extract, cache)

        pool = feats("real", real_pool)
        # References drawn from the real pool are row subsets of its array: each real image
        # goes through the extractor once (their stats files are still written).
        row_of = {str(f): i for i, f in enumerate(real_pool)}
        refs = {}
        for name, files in references.items():
            if all(str(f) in row_of for f in files):
                sub = pool[[row_of[str(f)] for f in files]]
                refs[name] = feats(name, files, extract=lambda _f, sub=sub: sub)
            else:
                refs[name] = feats(name, files)
        scale, dropped = (lambda f: f), ""
        if tag == "frd":  # z-score by the first reference (the training split), log FD
            scale = fit_standardiser(next(iter(refs.values())), settings.frd_min_std)
            dropped = "; ".join(scale.dropped(frd.feature_names()))
            pool = scale(pool)
            refs = {k: scale(v) for k, v in refs.items()}

        def report(row: dict, tag=tag, dropped=dropped) -> dict:
            row = to_log_scale(row) if tag == "frd" else row
            return dict(row, dropped_features=dropped)

        # the real-split row: two seeded random equal halves of the real pool
        perm = np.random.default_rng(settings.seed).permutation(len(pool))
        half = len(pool) // 2
        a, b = pool[perm[:half]], pool[perm[half : 2 * half]]
        row = compare_sets(a, b, pool, settings, dist)
        row["baseline_same_n"], row["baseline_n"] = row["value"], half
        row = report(row)
        if note:
            row["warning"] = "; ".join(w for w in (note, row["warning"]) if w)
        rows.append(
            {
                "scan": scan,
                "set": "real_split/half_a",
                "reference": "real_split/half_b",
                "metric": metric,
                "label": "real split",
                **row,
            }
        )
        for name, (label, files) in sets.items():
            x = scale(feats(name, files))
            for ref_name, ref in refs.items():
                row = report(compare_sets(x, ref, pool, settings, dist))
                if note:
                    row["warning"] = "; ".join(w for w in (note, row["warning"]) if w)
                rows.append(
                    {
                        "scan": scan,
                        "set": name,
                        "reference": ref_name,
                        "metric": metric,
                        "label": label,
                        **row,
                    }
                )
                log.info(
                    "%s %s vs %s: %.4g [%.4g, %.4g] (N=%d vs N_ref=%d; real baseline at N=%d: %.4g)",
                    metric,
                    name,
                    ref_name,
                    row["value"],
                    row["ci_low"],
                    row["ci_high"],
                    row["n_set"],
                    row["n_ref"],
                    row["baseline_n"],
                    row["baseline_same_n"],
                )
    for r in rows:
        if r["warning"]:
            log.warning("%s %s vs %s: %s", r["metric"], r["set"], r["reference"], r["warning"])
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)

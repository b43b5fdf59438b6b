"""Distance tables: every score with its N, bootstrap CI, same-N real baseline, KID,
FID-infinity (where valid) and whether it is separated from the next-ranked set.

Metrics. The offline distance of the ranking is **FRD v1** (Fréchet Radiomics Distance,
Konz et al.; ``frd-score`` 1.0.1, :mod:`tomosynth.metrics.frd`): 398 pyradiomics features
of the original image and 4 wavelet bands (frd-score's 2D path yields no LoG features),
z-scored by the reference set, reported as ln(Fréchet distance).
Inception FID (:mod:`tomosynth.metrics.fid`) is added when its weights are on the machine.
The former offline metric, "log FRD (tomosynth radiomics features)" (53 features of our
own, :mod:`tomosynth.metrics.features`, z-scored by the first reference), is kept only as
the secondary column :data:`SECONDARY_COLUMN`; its numbers compare with nothing published.

Scale. Real slices of one sample are statistically very alike, so any visible change moves
many features by tens of reference standard deviations and the linear distance spans orders
of magnitude; the log keeps those on one readable axis. ``fd`` keeps the linear Fréchet
distance. KID is computed in the same z-scored space; its cubic kernel makes it grow like
the sixth power of the z offset, so the table adds ``log_kid`` = ln(1 + max(KID, 0))
(:func:`tomosynth.metrics.kid.log_kid`) beside the raw ``kid_mean`` / ``kid_std``.
FID rows are untouched: Inception features, linear FD.

The Fréchet-distance kernels (statistics, bootstrap, baselines, FID-infinity) live in
:mod:`tomosynth.metrics.frechet` and are re-exported here.
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

from tomosynth.errors import ConfigError, DataError
from tomosynth.io import atomic_dir, atomic_file, write_csv
from tomosynth.metrics import features as own_features
from tomosynth.metrics import fid
from tomosynth.metrics import frd as frd_v1
from tomosynth.metrics.frechet import (  # noqa: F401 - re-exported: the public API of distances
    Distance,
    Stats,
    bootstrap_ci,
    distance_function,
    feature_stats,
    fid_inf_validity,
    fid_infinity,
    frechet_distance,
    frechet_distance_features,
    frechet_distance_torch,
    split_baseline,
    trace_sqrt_product,
)
from tomosynth.metrics.kid import kid, log_kid
from tomosynth.provenance import sha256_file

#: The secondary, labelled column: our own 53-feature offline distance (log scale).
SECONDARY_COLUMN = "log_frd_tomosynth"
SECONDARY_NAME = own_features.METRIC_NAME


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
    "vs_next",
    "n_set",
    "n_ref",
    "n_total",
    "baseline_same_n",
    "kid_mean",
    "kid_std",
    "log_kid",
    "fid_inf",
    "fid_inf_note",
    "feature_dim",
    "warning",
    "label",
    "baseline_n",
    "kid_subset_size",
    "fd",
    "dropped_features",
    SECONDARY_COLUMN,
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
    fid_inf_min_n_per_dim : FID-infinity is reported only when the smallest N of its fit is
        at least this multiple of the feature dimension (:func:`fid_inf_validity`).
    frd_min_std : reference std (feature units) at or below which a tomosynth radiomics
        feature is dropped from the secondary metric (:func:`fit_standardiser`).
    frd_max_images : images per set and per reference that go through FRD v1 (a seeded
        draw; pyradiomics takes ~1 s per 256 px image); ``n_total`` says how many there were.
    frd_validation_images : undisturbed and degraded images per half of the FRD v1
        degradation check (:func:`tomosynth.metrics.degrade.degradation_table`).
    validation_images : real training slices drawn for the degradation check (rule
        plot_distance_validation); the secondary metric uses them all.
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
    fid_inf_min_n_per_dim: float = 2.0
    frd_min_std: float = 1e-4
    frd_max_images: int = 16
    frd_validation_images: int = 6
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


Space = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def compare_sets(
    x: np.ndarray,
    ref: np.ndarray,
    real_pool: np.ndarray,
    settings: DistanceSettings,
    distance: Distance = frechet_distance_features,
    space: Space | None = None,
) -> dict:
    """Distance of `x` to `ref` with N, CI, same-N real baseline, KID and FID-infinity.

    `real_pool` (all real images' features) supplies the real-vs-real baseline at the
    generated set's N. `space` maps ``(x, ref)`` into the space `distance` measures in
    (FRD v1: z-scored by `ref`), for KID and the feature dimension; None = as given.
    FID-infinity is NaN, with the reason in ``fid_inf_note``, where
    :func:`fid_inf_validity` rules it out.
    """
    s = settings
    xs, rs = space(x, ref) if space is not None else (x, ref)
    n_set, n_ref, dim = len(x), len(ref), xs.shape[1]
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
    k_mean, k_std, k_m = kid(xs, rs, s.kid_subsets, s.kid_subset_size, s.seed)
    note = fid_inf_validity(n_set, dim, s.fid_inf_min_fraction, s.fid_inf_min_n_per_dim)
    f_inf = float("nan")
    if not note:
        f_inf = fid_infinity(
            x, ref, s.fid_inf_points, s.fid_inf_min_fraction, seed=s.seed, distance=distance
        )[0]
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
        "fid_inf_note": note,
        "feature_dim": dim,
        "warning": "; ".join(warnings),
        "fd": value,
        "dropped_features": "",
    }


def draw_files(files: list[str], n: int, seed: int = 0) -> list[str]:
    """At most `n` of `files`, a seeded draw kept in the files' order (all when n >= len)."""
    files = list(files)
    if len(files) <= n:
        return files
    keep = np.random.default_rng(seed).choice(len(files), int(n), replace=False)
    return [files[i] for i in sorted(keep)]


def mark_separation(table, ranked_by: str = "value"):
    """Column ``vs_next`` of a distance table: is each set told apart from the next-ranked?

    Within each (metric, reference) the compared sets (not the real split) are ranked by
    `ranked_by`, lowest first. A set is "not separated" from the next-ranked one when their
    difference is smaller than the bootstrap spread, i.e. than the wider of the two
    bootstrap CI half-widths; "separated" otherwise; "" for the last set, the real split
    and rows without a CI.
    """
    table = table.copy()
    table["vs_next"] = ""
    real = table["set"].astype(str).str.startswith("real_split")
    for _, block in table[~real].groupby(["metric", "reference"], sort=False):
        block = block.sort_values(ranked_by, kind="stable")
        half = (block["ci_high"] - block["ci_low"]).to_numpy(float) / 2
        vals = block[ranked_by].to_numpy(float)
        for k in range(len(block) - 1):
            spread = max(half[k], half[k + 1])
            if not np.isfinite(spread):
                continue
            gap = abs(vals[k + 1] - vals[k])
            word = "separated" if gap >= spread else "not separated"
            table.loc[block.index[k], "vs_next"] = (
                f"{word} from {block['set'].iloc[k + 1]} (|diff| {gap:.3g}, spread {spread:.3g})"
            )
    return table


@dataclass
class _Metric:
    """One metric of the table: its name, cache tag, feature extractor and extractor id."""

    name: str
    tag: str
    extract: Callable[[list[str]], np.ndarray]
    extractor_id: str


def _fid_metric(
    fid_weights: str | None, device: str, batch_size: int, offline_fallback: bool
) -> tuple[_Metric | None, str]:
    """The Inception FID metric when its weights load (never downloaded), else None and the
    note every row then carries (or a ConfigError when the fallback is off)."""
    weights_path = Path(fid_weights) if fid_weights is not None else fid.default_weights_path()
    model, reason = None, ""
    try:  # None: the file in torch hub's cache, never a download
        model = fid.load_inception(fid_weights, device)
    except ConfigError:  # load_inception's own check: no such file
        reason = f"{weights_path}: file missing"
    except (OSError, RuntimeError) as exc:  # unreadable or not a state dict
        reason = f"{weights_path}: {type(exc).__name__}: {exc}"
    if model is not None:
        return (
            _Metric(
                fid.METRIC_NAME,
                "fid",
                lambda f: fid.inception_features(f, model, batch_size, device),
                sha256_file(weights_path),
            ),
            "",
        )
    if not offline_fallback:
        raise ConfigError(f"{fid.missing_weights_message(fid_weights, False)} ({reason})")
    note = f"FID weights unavailable: {frd_v1.METRIC_NAME} reported instead (not FID)"
    logging.getLogger(__name__).warning(
        "%s (%s). %s", note, reason, fid.missing_weights_message(fid_weights, False)
    )
    return None, note


def frd_v1_metric() -> _Metric:
    """FRD v1 through frd-score (:mod:`tomosynth.metrics.frd`), keyed by the pinned versions."""
    ident = ", ".join(f"{k} {v}" for k, v in frd_v1.versions().items())
    return _Metric(frd_v1.METRIC_NAME, "frd_v1", frd_v1.feature_array, ident)


def frd_v1_distance(device: str = "cpu") -> tuple[Distance, Space]:
    """FRD v1's Fréchet distance of raw feature arrays (the second is D1, the reference),
    and its feature space. The distance is the exact eigen/SVD one of
    :mod:`tomosynth.metrics.frechet` on frd-score's normalised features: equal to
    frd-score's ``sqrtm`` path (checked in the tests) and ~1000x faster, for the bootstrap."""
    fd = distance_function(device)

    def space(x: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xz, rz, _keep = frd_v1.normalise(x, ref)
        return xz.astype(np.float64), rz.astype(np.float64)

    def distance(x: np.ndarray, ref: np.ndarray) -> float:
        try:
            return fd(*space(x, ref))
        except DataError:  # a bootstrap resample of one repeated reference image
            return float("nan")

    return distance, space


def secondary_values(
    sets: dict[str, tuple[str, list[str]]],
    references: dict[str, list[str]],
    real_pool: list[str],
    feats: Callable[..., np.ndarray],
    settings: DistanceSettings,
) -> dict[tuple[str, str], float]:
    """The secondary metric, "log FRD (tomosynth radiomics features)" (53 features of
    :mod:`tomosynth.metrics.features`, z-scored by the first reference, log Fréchet
    distance) of every (set, reference) pair and of the real split, on the full sets."""
    pool = feats("real", real_pool)
    row_of = {str(f): i for i, f in enumerate(real_pool)}
    refs = {  # row subsets of the pool, as in _metric_rows
        n: feats(n, files, pool[[row_of[str(f)] for f in files]]) for n, files in references.items()
    }
    scale = fit_standardiser(next(iter(refs.values())), settings.frd_min_std)
    pool, refs = scale(pool), {k: scale(v) for k, v in refs.items()}
    perm = np.random.default_rng(settings.seed).permutation(len(pool))
    half = len(pool) // 2
    out = {
        ("real_split/half_a", "real_split/half_b"): log_distance(
            frechet_distance_features(pool[perm[:half]], pool[perm[half : 2 * half]])
        )
    }
    for name, (_label, files) in sets.items():
        x = scale(feats(name, files))
        for ref_name, ref in refs.items():
            out[(name, ref_name)] = log_distance(frechet_distance_features(x, ref))
    return out


def _feature_reader(
    metric: _Metric,
    stats_dir: str | os.PathLike | None,
    cache_dir: str | os.PathLike | None,
) -> Callable[..., np.ndarray]:
    """``feats(name, files)``: features through the content cache and the per-set stats file."""
    extract = metric.extract
    if cache_dir is not None:
        extract = partial(
            content_cached_features,
            metric=metric.name,
            extract=metric.extract,
            cache_dir=Path(cache_dir) / metric.tag,
            extractor_id=metric.extractor_id,
        )

    def feats(name: str, files: list[str], rows: np.ndarray | None = None) -> np.ndarray:
        """Features of `files` (`rows`: already known, only the stats file is written)."""
        safe = name.replace("/", "__")
        cache = None if stats_dir is None else Path(stats_dir) / f"{metric.tag}_{safe}.npz"
        ext = extract if rows is None else (lambda _f: rows)
        return cached_features(files, metric.name, ext, cache)

    return feats


def _metric_rows(
    metric: _Metric,
    sets: dict[str, tuple[str, list[str]]],
    references: dict[str, list[str]],
    real_pool: list[str],
    feats: Callable[..., np.ndarray],
    settings: DistanceSettings,
    device: str,
) -> list[dict]:
    """Rows of one metric: the real split, then every (set, reference) pair.

    FRD v1 works on a seeded draw of at most ``settings.frd_max_images`` images of every set
    and reference (``n_total`` keeps the full count) and its real pool is the union of the
    drawn references; each pair lives in the space z-scored by its own reference (D1), and
    ``value`` is frd-score's own number (:func:`tomosynth.metrics.frd.frd_v1`). FID uses
    the whole `real_pool`.
    """
    is_v1 = metric.tag == "frd_v1"
    cap = settings.frd_max_images if is_v1 else None
    drawn = {n: draw_files(f, cap, settings.seed) if cap else f for n, f in references.items()}
    pool_files = list(real_pool)  # FRD v1: only the drawn references (each image costs ~1 s)
    if cap:
        pool_files = list(dict.fromkeys(f for files in drawn.values() for f in files))
    pool = feats("real", pool_files)
    row_of = {str(f): i for i, f in enumerate(pool_files)}
    refs = {  # row subsets of the pool: every real image goes through the extractor once
        n: feats(n, files, pool[[row_of[str(f)] for f in files]]) for n, files in drawn.items()
    }
    if is_v1:
        dist, space = frd_v1_distance(device)
    else:
        dist, space = distance_function(device), None

    def row(x, ref, n_total: int) -> dict:
        r = compare_sets(x, ref, pool, settings, dist, space)
        if is_v1:
            r = to_log_scale(r)
            r["value"] = frd_v1.frd_v1(x, ref)  # frd-score's own sqrtm path
            kept = int(frd_v1.normalise(x, ref)[2].sum())
            r["dropped_features"] = f"{x.shape[1] - kept} of {x.shape[1]} (NaN/inf z-score)"
            if n_total > len(x):
                r["warning"] = "; ".join(
                    w
                    for w in (
                        f"FRD v1 on a seeded draw of {len(x)} of {n_total} images "
                        "(evaluate.distance.frd_max_images)",
                        r["warning"],
                    )
                    if w
                )
        return dict(r, n_total=n_total)

    perm = np.random.default_rng(settings.seed).permutation(len(pool))
    half = len(pool) // 2
    a, b = pool[perm[:half]], pool[perm[half : 2 * half]]
    first = dict(row(a, b, len(a)), label="real split")  # the halves use every drawn image
    first["baseline_same_n"], first["baseline_n"] = first["value"], half
    rows = [dict(first, set="real_split/half_a", reference="real_split/half_b")]
    for name, (label, files) in sets.items():
        use = draw_files(files, cap, settings.seed) if cap else files
        x = feats(name, use)
        for ref_name, ref in refs.items():
            r = row(x, ref, len(files))
            rows.append(dict(r, set=name, reference=ref_name, label=label))
    return [dict(r, metric=metric.name) for r in rows]


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
    references : reference name -> image files (the thesis compares with "train"); every
        file must be in `real_pool`.
    real_pool : all real high-resolution images: the real-split row (two seeded random
        equal halves) and the same-N baselines are drawn from it (FRD v1: from the union
        of the drawn references).
    stats_dir : folder for per-set ``{tag}_{set}.npz`` statistics (None: no cache).
    cache_dir : content-addressed feature cache (:func:`content_cached_features`) that
        survives reruns; None keeps only the stats_dir cache.
    fid_weights : local FID Inception weights, or None for the file in torch hub's cache
        (pytorch-fid's default location; never downloaded).
    offline_fallback : when the weights are missing or unreadable, report FRD v1 only
        (True) or stop with a ConfigError saying where to put the file (False).

    Returns
    -------
    pandas.DataFrame with :data:`TABLE_COLUMNS`: FRD v1 rows always (the offline
    distance of the ranking), FID rows when the weights are available, the secondary
    "log FRD (tomosynth radiomics features)" in column :data:`SECONDARY_COLUMN`, and
    ``vs_next`` from :func:`mark_separation`.
    """
    import pandas as pd

    log = logging.getLogger(__name__)
    settings = settings or DistanceSettings()
    missing = [f for files in references.values() for f in files if f not in set(real_pool)]
    if missing:
        raise DataError(f"reference images not in the real pool, e.g. {missing[0]}")
    fid_metric, note = _fid_metric(fid_weights, device, batch_size, offline_fallback)
    metrics = [fid_metric] if fid_metric is not None else []
    if fid_metric is None or frd_v1.missing() is None:
        metrics.append(frd_v1_metric())
    else:  # a GPU node's offline install (make wheelhouse) carries FID, not FRD v1's stack
        log.warning(
            "%s not computed: %s; the table holds FID", frd_v1.METRIC_NAME, frd_v1.missing()
        )
    rows = []
    for metric in metrics:
        feats = _feature_reader(metric, stats_dir, cache_dir)
        rows += _metric_rows(metric, sets, references, real_pool, feats, settings, str(device))
    own = _Metric(
        own_features.METRIC_NAME, "frd", own_features.radiomics_features,
        ",".join(own_features.feature_names()),
    )  # fmt: skip
    secondary = secondary_values(
        sets, references, real_pool, _feature_reader(own, stats_dir, cache_dir), settings
    )
    for r in rows:
        r["scan"] = scan
        r[SECONDARY_COLUMN] = secondary.get((r["set"], r["reference"]), float("nan"))
        if note:
            r["warning"] = "; ".join(w for w in (note, r["warning"]) if w)
        log.info(
            "%s %s vs %s: %.4g [%.4g, %.4g] (N=%d of %d vs N_ref=%d; real baseline: %.4g)",
            *(r[k] for k in ("metric", "set", "reference", "value", "ci_low", "ci_high")),
            *(r[k] for k in ("n_set", "n_total", "n_ref", "baseline_same_n")),
        )
        if r["warning"]:
            log.warning("%s %s vs %s: %s", r["metric"], r["set"], r["reference"], r["warning"])
    return mark_separation(pd.DataFrame(rows, columns=TABLE_COLUMNS))


def write_distance_outputs(
    table_path: str | os.PathLike,
    stats_dir: str | os.PathLike,
    scan: str,
    sets: dict[str, tuple[str, list[str]]],
    references: dict[str, list[str]],
    real_pool: list[str],
    **kwargs,
):
    """:func:`distance_table` written as the rule's outputs: the per-set statistics folder
    published whole (``atomic_dir``, with its ``MANIFEST.json``) and the CSV atomically, so
    a killed job leaves neither half-written. `kwargs` go to :func:`distance_table`.
    Returns the table."""
    with atomic_dir(stats_dir) as tmp:
        table = distance_table(scan, sets, references, real_pool, stats_dir=tmp, **kwargs)
    write_csv(table_path, table)
    return table

"""Objective criteria of a study run: did the generators learn the sample, and does SR help?

Each criterion is computed from a finished results tree (``results/`` layout of the workflow)
and reported with its value, its threshold and whether it passed:

- **geometry**: the radially averaged intensity profile (mean over angle as a function of
  the distance from the sample disc's centre) of the low-resolution WGAN-GP samples
  correlates (Pearson r) with that of the real training slices, and the container ring
  shows in it: a peak near the real profile's outermost peak (:func:`radial_profile`,
  :func:`ring_check`);
- **diversity**: the mean pairwise SSIM among generated samples is no higher than among real
  training slices plus an allowance (:func:`mean_pairwise_ssim`);
- **thesis comparison**: the distances of every generated set to the training split, ranked,
  with their CIs and the real-split baseline (:func:`thesis_ranking`; reported, no threshold);
- **SR vs bicubic**: an SRGAN preset beats bicubic by a PSNR margin on held-out test slices,
  with SSIM not lower (:func:`sr_vs_bicubic`), and the bone-metric correlations of SR and LR
  against HR side by side (:func:`bone_correlation_table`; reported).

:func:`study_criteria` gathers them; :func:`write_criteria` writes ``criteria.md`` and
``criteria.csv`` (``tomosynth study-criteria results/ docs/study/``).
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import signal
from skimage.filters import threshold_otsu

from tomosynth.errors import DataError
from tomosynth.io import atomic_file, read_json, read_png_stack
from tomosynth.metrics.image import ssim

__all__ = [
    "Criterion",
    "bone_correlation_table",
    "disc_center",
    "mean_pairwise_ssim",
    "profile_correlation",
    "radial_profile",
    "ring_check",
    "sr_vs_bicubic",
    "study_criteria",
    "thesis_ranking",
    "write_criteria",
]

#: Thresholds of the study's criteria (the issue's acceptance values).
MIN_PROFILE_R = 0.9
SSIM_ALLOWANCE = 0.1
MIN_SR_GAIN_DB = 1.0
#: A generated ring peak must be within this many px of the real one and reach this
#: fraction of the real peak's prominence.
RING_WINDOW_PX = 2.0
RING_MIN_RELATIVE_PROMINENCE = 0.25


@dataclass
class Criterion:
    """One criterion: its value, the threshold it is held to and whether it passed.

    ``passed`` is None for reported-only items (no threshold).
    """

    name: str
    value: float
    threshold: str
    passed: bool | None
    detail: str = ""


# --------------------------------------------------------------------------------------
# geometry: radial profile and container ring
# --------------------------------------------------------------------------------------


def _stack(images: np.ndarray) -> np.ndarray:
    arr = np.asarray(images, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] == 0:
        raise DataError(f"expected images (n, h, w) with n >= 1, got shape {arr.shape}")
    return arr


def disc_center(image: np.ndarray) -> tuple[float, float]:
    """Centre (row, col) in px of the bright sample disc: centroid of the pixels above Otsu.

    Parameters
    ----------
    image : (h, w) array
        A slice or the mean of a set of slices (sample and container bright, air dark).
    """
    img = np.asarray(image, dtype=np.float64)
    if img.max() == img.min():
        return (img.shape[0] - 1) / 2.0, (img.shape[1] - 1) / 2.0
    rows, cols = np.nonzero(img > threshold_otsu(img))
    return float(rows.mean()), float(cols.mean())


def radial_profile(
    images: np.ndarray, center: tuple[float, float] | None = None, bin_px: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged intensity profile of the mean image of `images`.

    Parameters
    ----------
    images : (n, h, w) or (h, w) array
        Slices in any intensity unit (the profile keeps it).
    center : (row, col), optional
        Centre in px; by default the centre of the image (pixel ``(h - 1) / 2``), which is
        the rotation axis of a reconstructed slice. :func:`disc_center` finds the sample's.
    bin_px : float
        Width of the radius bins in px.

    Returns
    -------
    radii : (k,) float
        Bin centres in px, up to the largest circle inside the image.
    profile : (k,) float
        Mean intensity over all pixels (all angles) whose distance falls in each bin.
    """
    mean = _stack(images).mean(axis=0)
    h, w = mean.shape
    cy, cx = ((h - 1) / 2.0, (w - 1) / 2.0) if center is None else center
    yy, xx = np.indices((h, w), dtype=np.float64)
    r = np.hypot(yy - cy, xx - cx)
    r_max = min(cy, cx, h - 1 - cy, w - 1 - cx) + 0.5
    n_bins = max(int(r_max // bin_px), 1)
    idx = (r / bin_px).astype(np.int64)
    keep = idx < n_bins
    sums = np.bincount(idx[keep], weights=mean[keep], minlength=n_bins)
    counts = np.bincount(idx[keep], minlength=n_bins)
    radii = (np.arange(n_bins) + 0.5) * bin_px
    ok = counts > 0
    return radii[ok], sums[ok] / counts[ok]


def profile_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r of two profiles on the same radii (nan if either is constant)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise DataError(f"profiles differ in length: {a.shape} vs {b.shape}")
    if a.std() == 0 or b.std() == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def _peaks(profile: np.ndarray, min_prominence: float) -> tuple[np.ndarray, np.ndarray]:
    # pad with the edge minimum so a peak in the outermost bin can still be found
    padded = np.concatenate([profile, [profile.min()]])
    idx, props = signal.find_peaks(padded, prominence=min_prominence)
    keep = idx < len(profile)
    return idx[keep], props["prominences"][keep]


def ring_check(
    radii: np.ndarray,
    generated: np.ndarray,
    real: np.ndarray,
    window_px: float = RING_WINDOW_PX,
    min_relative_prominence: float = RING_MIN_RELATIVE_PROMINENCE,
) -> dict:
    """Does the container ring of the real profile show in the generated one?

    The real ring is the outermost peak of the real profile whose prominence is at least
    10 % of the profile's range. The generated profile shows it if it has a peak within
    `window_px` of that radius whose prominence is at least `min_relative_prominence` of the
    real peak's.

    Returns
    -------
    dict
        ``real_radius``, ``real_prominence`` (nan when the real profile has no ring),
        ``generated_radius``, ``generated_prominence`` (nan when none is found) and ``shows``.
    """
    real = np.asarray(real, dtype=np.float64)
    gen = np.asarray(generated, dtype=np.float64)
    out = {
        "real_radius": math.nan,
        "real_prominence": math.nan,
        "generated_radius": math.nan,
        "generated_prominence": math.nan,
        "shows": False,
    }
    span = float(real.max() - real.min())
    idx, prom = _peaks(real, 0.1 * span) if span > 0 else (np.array([], int), np.array([]))
    if len(idx) == 0:
        return out
    k = int(np.argmax(radii[idx]))
    out["real_radius"], out["real_prominence"] = float(radii[idx[k]]), float(prom[k])
    gidx, gprom = _peaks(gen, 0.0)
    near = np.abs(radii[gidx] - out["real_radius"]) <= window_px
    if near.any():
        j = int(np.argmax(np.where(near, gprom, -np.inf)))
        out["generated_radius"], out["generated_prominence"] = (
            float(radii[gidx[j]]),
            float(gprom[j]),
        )
        out["shows"] = bool(gprom[j] >= min_relative_prominence * out["real_prominence"])
    return out


# --------------------------------------------------------------------------------------
# diversity
# --------------------------------------------------------------------------------------


def mean_pairwise_ssim(
    images: np.ndarray,
    data_range: float = 255.0,
    max_pairs: int | None = 500,
    seed: int = 0,
    window: str = "gaussian",
) -> float:
    """Mean SSIM over pairs of distinct images of one set (1 = all identical).

    Parameters
    ----------
    images : (n, h, w) array, n >= 2
    data_range : float
        255 for 8-bit images.
    max_pairs : int, optional
        A seeded random subset of the ``n (n - 1) / 2`` pairs when there are more.
    window : {"gaussian", "uniform"}
        SSIM window (:func:`tomosynth.metrics.image.ssim`); Gaussian, sigma 1.5 px, by default.
    """
    arr = _stack(images)
    n = arr.shape[0]
    if n < 2:
        raise DataError(f"mean_pairwise_ssim needs at least 2 images, got {n}")
    pairs = list(itertools.combinations(range(n), 2))
    if max_pairs is not None and len(pairs) > max_pairs:
        rng = np.random.default_rng(seed)
        pairs = [pairs[i] for i in sorted(rng.choice(len(pairs), max_pairs, replace=False))]
    i, j = np.array(pairs).T
    values = ssim(arr[i], arr[j], data_range=data_range, window=window)
    return float(np.mean(values))


# --------------------------------------------------------------------------------------
# tables of a results tree
# --------------------------------------------------------------------------------------


def thesis_ranking(distance: pd.DataFrame, reference: str = "train") -> pd.DataFrame:
    """Generated sets ranked by their distance to `reference`, plus the real-split baseline.

    Parameters
    ----------
    distance : DataFrame
        A ``results/metrics/distance/{scan}.csv`` table (one metric per row group).
    reference : str
        The reference split of the thesis protocol (``train``).

    Returns
    -------
    DataFrame
        Columns ``metric, rank, label, set, value, ci_low, ci_high, n_set, baseline_same_n,
        separated_from_next`` (the CI does not overlap the next-ranked set's), and ``vs_next``
        where the table has it ("not separated": the difference to the next-ranked set is
        smaller than the bootstrap spread); the real split is the row with rank 0. One
        block per metric.
    """
    need = {"set", "reference", "metric", "value", "ci_low", "ci_high", "n_set"}
    missing = need - set(distance.columns)
    if missing:
        raise DataError(f"distance table lacks columns {sorted(missing)}")
    out = []
    for metric, block in distance.groupby("metric", sort=False):
        real = block[block["set"].astype(str).str.startswith("real_split")]
        gen = block[
            (block["reference"] == reference)
            & ~block["set"].astype(str).str.startswith("real_split")
        ].sort_values("value", kind="stable")
        rows = []
        for _, r in real.iterrows():
            rows.append({**r.to_dict(), "rank": 0})
        for k, (_, r) in enumerate(gen.iterrows(), start=1):
            rows.append({**r.to_dict(), "rank": k})
        table = pd.DataFrame(rows)
        sep = []
        for k in range(len(table)):
            if k + 1 < len(table) and table["rank"].iloc[k] >= 1:
                sep.append(bool(table["ci_high"].iloc[k] < table["ci_low"].iloc[k + 1]))
            else:
                sep.append(None)
        table["separated_from_next"] = sep
        table["metric"] = metric
        if "label" not in table:
            table["label"] = table["set"]
        if "baseline_same_n" not in table:
            table["baseline_same_n"] = math.nan
        out.append(table)
    cols = [
        "metric",
        "rank",
        "label",
        "set",
        "value",
        "ci_low",
        "ci_high",
        "n_set",
        "baseline_same_n",
        "separated_from_next",
    ]
    cols += ["vs_next"] if "vs_next" in distance.columns else []  # distance.mark_separation
    return pd.concat(out, ignore_index=True)[cols]


def sr_vs_bicubic(
    sr: pd.DataFrame, preset: str = "exp_d", scale: int = 4, min_gain_db: float = MIN_SR_GAIN_DB
) -> dict:
    """PSNR/SSIM of an SRGAN preset against bicubic at one scale, from an SR table.

    Parameters
    ----------
    sr : DataFrame
        A ``results/metrics/sr/{scan}.csv`` table (held-out test slices): columns ``preset,
        scale, method, psnr_mean, ssim_mean``.

    Returns
    -------
    dict
        ``psnr_srgan, psnr_bicubic, ssim_srgan, ssim_bicubic, gain_db, passed`` (gain >=
        `min_gain_db` and SSIM not lower), ``n_slices``.
    """
    rows = sr[sr["scale"].astype(int) == int(scale)]
    bic = rows[rows["method"] == "bicubic"]
    net = rows[(rows["method"] != "bicubic") & (rows["preset"] == preset)]
    if bic.empty or net.empty:
        raise DataError(f"SR table has no bicubic and {preset} rows at x{scale}")
    b, s = bic.iloc[0], net.iloc[0]
    gain = float(s["psnr_mean"] - b["psnr_mean"])
    return {
        "psnr_srgan": float(s["psnr_mean"]),
        "psnr_bicubic": float(b["psnr_mean"]),
        "ssim_srgan": float(s["ssim_mean"]),
        "ssim_bicubic": float(b["ssim_mean"]),
        "gain_db": gain,
        "n_slices": int(s.get("n_slices", 0)),
        "passed": bool(gain >= min_gain_db and s["ssim_mean"] >= b["ssim_mean"]),
    }


def bone_correlation_table(corr: pd.DataFrame) -> pd.DataFrame:
    """Pearson r (and CI) of each bone metric against HR, SR and LR side by side.

    Parameters
    ----------
    corr : DataFrame
        A ``results/metrics/bone/{scan}_{preset}_x{scale}_correlations.csv`` table: columns
        ``kind`` (sr/lr), ``metric``, ``n``, ``r``, ``ci_low``, ``ci_high`` and optionally
        ``region``.

    Returns
    -------
    DataFrame
        One row per (region,) metric: ``n, r_sr, ci_sr, r_lr, ci_lr, sr_closer`` (``|r|`` of
        SR above LR's; None where either r is undefined).
    """
    keys = ["region", "metric"] if "region" in corr.columns else ["metric"]
    rows = []
    for key, block in corr.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(keys, key, strict=True))
        for kind in ("sr", "lr"):
            k = block[block["kind"] == kind]
            r = float(k["r"].iloc[0]) if len(k) else math.nan
            row["n"] = int(k["n"].iloc[0]) if len(k) else row.get("n", 0)
            row[f"r_{kind}"] = r
            row[f"ci_{kind}"] = (
                f"[{k['ci_low'].iloc[0]:.3f}, {k['ci_high'].iloc[0]:.3f}]"
                if len(k) and np.isfinite(k["ci_low"].iloc[0])
                else ""
            )
        ok = np.isfinite(row["r_sr"]) and np.isfinite(row["r_lr"])
        row["sr_closer"] = bool(abs(row["r_sr"]) > abs(row["r_lr"])) if ok else None
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------
# the whole study
# --------------------------------------------------------------------------------------


def _sizes(results: Path, scan: str) -> list[int]:
    found = []
    for p in (results / "samples" / "wgan_gp").glob(f"{scan}_*px"):
        if p.is_dir():
            try:
                found.append(int(p.name[len(scan) + 1 : -2]))
            except ValueError:
                continue
    return sorted(found)


def _pngs(folder: Path, names: list[str] | None = None) -> np.ndarray:
    if names is None:
        names = sorted(p.name for p in folder.glob("*.png"))
    if not names:
        raise DataError(f"{folder}: no PNG images")
    return read_png_stack(folder, names).astype(np.float64)


def study_criteria(
    results: str | os.PathLike,
    scan: str = "shale",
    bone_scan: str = "bone",
    preset: str = "exp_d",
    scale: int = 4,
) -> tuple[list[Criterion], dict[str, pd.DataFrame]]:
    """Evaluate every criterion on a results tree.

    Parameters
    ----------
    results : path-like
        The workflow's ``results/`` folder of a finished study run.
    scan, bone_scan : str
        The WGAN-GP scan and the SR scan.
    preset, scale : str, int
        The SRGAN preset and scale held to the PSNR criterion.

    Returns
    -------
    criteria : list of Criterion
    tables : dict of DataFrame
        ``profiles`` (radius, real, generated), ``ranking`` and ``bone_correlations``.
    """
    root = Path(results)
    sizes = _sizes(root, scan)
    if not sizes:
        raise DataError(f"{root}/samples/wgan_gp: no {scan}_<size>px sample folders")
    low = sizes[0]
    split = read_json(root / "png" / scan / "split.json")
    real = _pngs(root / "png" / scan / f"{low}px", list(split["train"]))
    gen = _pngs(root / "samples" / "wgan_gp" / f"{scan}_{low}px")
    crit: list[Criterion] = []
    tables: dict[str, pd.DataFrame] = {}

    center = disc_center(real.mean(axis=0))
    radii, p_real = radial_profile(real, center)
    _, p_gen = radial_profile(gen, center)
    r = profile_correlation(p_gen, p_real)
    tables["profiles"] = pd.DataFrame({"radius_px": radii, "real": p_real, "generated": p_gen})
    crit.append(
        Criterion(
            f"{low} px radial profile r (generated vs real)",
            r,
            f">= {MIN_PROFILE_R}",
            bool(r >= MIN_PROFILE_R),
            f"{len(gen)} samples vs {len(real)} training slices, centre {center[0]:.1f}, "
            f"{center[1]:.1f} px",
        )
    )
    ring = ring_check(radii, p_gen, p_real)
    crit.append(
        Criterion(
            f"{low} px container ring in the generated profile",
            ring["generated_prominence"],
            f"peak within {RING_WINDOW_PX:g} px of the real ring, prominence >= "
            f"{RING_MIN_RELATIVE_PROMINENCE:g} x real",
            ring["shows"],
            f"real ring at {ring['real_radius']:.1f} px (prominence "
            f"{ring['real_prominence']:.2f}); generated peak at {ring['generated_radius']:.1f} px",
        )
    )
    s_gen, s_real = mean_pairwise_ssim(gen), mean_pairwise_ssim(real)
    crit.append(
        Criterion(
            f"{low} px mean pairwise SSIM of generated samples",
            s_gen,
            f"<= real {s_real:.3f} + {SSIM_ALLOWANCE:g}",
            bool(s_gen <= s_real + SSIM_ALLOWANCE),
            "Gaussian window, sigma 1.5 px, 8-bit range",
        )
    )

    dist_csv = root / "metrics" / "distance" / f"{scan}.csv"
    if dist_csv.is_file():
        ranking = thesis_ranking(pd.read_csv(dist_csv))
        tables["ranking"] = ranking
        for metric, block in ranking.groupby("metric", sort=False):
            order = " < ".join(
                f"{lab} {v:.2f}" for lab, v in zip(block["label"], block["value"], strict=True)
            )
            first = block[block["rank"] == 1]
            crit.append(
                Criterion(
                    f"thesis comparison ({metric}), closest to train",
                    float(first["value"].iloc[0]) if len(first) else math.nan,
                    "reported",
                    None,
                    order,
                )
            )

    sr_csv = root / "metrics" / "sr" / f"{bone_scan}.csv"
    if sr_csv.is_file():
        res = sr_vs_bicubic(pd.read_csv(sr_csv), preset, scale)
        crit.append(
            Criterion(
                f"SRGAN {preset} x{scale} PSNR gain over bicubic (dB)",
                res["gain_db"],
                f">= {MIN_SR_GAIN_DB:g} dB and SSIM not lower",
                res["passed"],
                f"PSNR {res['psnr_srgan']:.2f} vs {res['psnr_bicubic']:.2f} dB, SSIM "
                f"{res['ssim_srgan']:.3f} vs {res['ssim_bicubic']:.3f}, "
                f"{res['n_slices']} test slices",
            )
        )
    corr_csv = root / "metrics" / "bone" / f"{bone_scan}_{preset}_x{scale}_correlations.csv"
    if corr_csv.is_file():
        table = bone_correlation_table(pd.read_csv(corr_csv))
        tables["bone_correlations"] = table
        valid = table.dropna(subset=["r_sr", "r_lr"])
        crit.append(
            Criterion(
                "bone metrics: SR correlates with HR better than LR",
                float(valid["sr_closer"].mean()) if len(valid) else math.nan,
                "reported (fraction of metrics)",
                None,
                f"{int(valid['sr_closer'].sum())} of {len(valid)} metric rows",
            )
        )
    return crit, tables


def _fmt(x) -> str:
    if isinstance(x, float):
        return "" if math.isnan(x) else f"{x:.4g}"
    return str(x)


def criteria_markdown(criteria: list[Criterion], tables: dict[str, pd.DataFrame]) -> str:
    """The criteria and the ranking and correlation tables as Markdown."""
    lines = ["# Study criteria", "", "| criterion | value | threshold | passed | detail |"]
    lines.append("|---|---|---|---|---|")
    for c in criteria:
        ok = "reported" if c.passed is None else ("yes" if c.passed else "**no**")
        lines.append(f"| {c.name} | {_fmt(c.value)} | {c.threshold} | {ok} | {c.detail} |")
    for name, title in (("ranking", "Thesis comparison"), ("bone_correlations", "Bone metrics")):
        if name in tables:
            t = tables[name]
            lines += ["", f"## {title}", "", "| " + " | ".join(t.columns) + " |"]
            lines.append("|" + "---|" * len(t.columns))
            for _, row in t.iterrows():
                lines.append("| " + " | ".join(_fmt(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def write_criteria(results: str | os.PathLike, out_dir: str | os.PathLike, **kw) -> list[Path]:
    """Write ``criteria.md``, ``criteria.csv`` and the tables' CSVs of `results` to `out_dir`."""
    crit, tables = study_criteria(results, **kw)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with atomic_file(out / "criteria.md") as tmp:
        Path(tmp).write_text(criteria_markdown(crit, tables))
    written.append(out / "criteria.md")
    with atomic_file(out / "criteria.csv") as tmp:
        pd.DataFrame([asdict(c) for c in crit]).to_csv(tmp, index=False)
    written.append(out / "criteria.csv")
    for name, table in tables.items():
        with atomic_file(out / f"criteria_{name}.csv") as tmp:
            table.to_csv(tmp, index=False)
        written.append(out / f"criteria_{name}.csv")
    return written

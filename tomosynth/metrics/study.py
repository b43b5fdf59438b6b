"""Objective criteria of a study run: did the generators learn the sample, and does SR help?

Each criterion is computed from a finished results tree (``results/`` layout of the workflow)
and reported with its value, its threshold and whether it passed:

- **in-sample criteria of every set** (:mod:`tomosynth.metrics.criteria`, gathered by
  :mod:`tomosynth.metrics.study_sets`): each generator and the trivial baselines (mean
  image + noise, one slice repeated + noise, training slices blurred, the training slices,
  the held-out real slices) measured by the same code against the held-out real slices.
  Held: the thresholds fail every trivial baseline (a)-(c) on at least one criterion and
  pass the held-out set on all; reported: whether each generator passes all;
- **thesis comparison**: the distances of every generated set to the training split, ranked,
  with their CIs and the real-split baseline (:func:`thesis_ranking`; reported, no threshold);
- **SR vs bicubic**: an SRGAN preset beats bicubic by a PSNR margin on held-out test slices,
  with SSIM not lower (:func:`sr_vs_bicubic`), and the bone-metric correlations of SR and LR
  against HR side by side (:func:`bone_correlation_table`; reported).

:func:`study_criteria` gathers them; :func:`write_criteria` writes ``criteria.md``,
``criteria.csv``, the per-set table ``criteria_sets.csv`` and every set's images
(``images/{set}/``), from which ``tomosynth study-check`` recomputes the table.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from tomosynth.errors import DataError
from tomosynth.io import atomic_file
from tomosynth.metrics.bone_tables import correlation_table
from tomosynth.metrics.criteria import disc_center, profile_correlation, ring_check
from tomosynth.metrics.study_sets import gather_sets, sets_markdown, sets_table, write_sets
from tomosynth.plan import HELD_OUT

__all__ = [
    "Criterion",
    "bone_correlation_table",
    "disc_center",
    "profile_correlation",
    "ring_check",
    "primary_sr_table",
    "sr_vs_bicubic",
    "study_criteria",
    "thesis_ranking",
    "write_criteria",
]

#: Thresholds of the study's criteria (the issue's acceptance values): SR against bicubic
#: on test slices interleaved with the training slices (a run without a held-out specimen)
#: and on a specimen never seen in training (the SRGAN issue's +0.5 dB goal).
MIN_SR_GAIN_DB = 1.0
MIN_HELD_OUT_GAIN_DB = 0.5
#: Agreement columns of a bone correlations table carried into the study's bone table
#: where present (median relative error, mean absolute error).
AGREEMENT_COLUMNS = ("bias", "mare", "mae", "loa_low", "loa_high")
#: The trivial baselines that must fail at least one in-sample criterion.
TRIVIAL = ("mean_noise", "repeated_noise", "blurred")


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


def _psnr_ssim(rows: pd.DataFrame, method: str, preset: str | None = None) -> tuple[float, float]:
    sel = rows[rows["method"] == method]
    if preset is not None:
        sel = sel[sel["preset"] == preset]
    if sel.empty:
        return math.nan, math.nan
    return float(sel["psnr_mean"].iloc[0]), float(sel["ssim_mean"].iloc[0])


def primary_sr_table(sr_dir: str | os.PathLike, within_scan: str) -> tuple[Path, bool] | None:
    """(table, held out) of the SR table the study holds to its criterion: a held-out
    specimen's where the run has one (a within-specimen test is matched by the average of
    the neighbouring training slices, so it cannot show learning), else `within_scan`'s."""
    for path in sorted(Path(sr_dir).glob("*.csv")):
        cols = pd.read_csv(path, nrows=0).columns
        if "protocol" in cols and (pd.read_csv(path)["protocol"] == HELD_OUT).any():
            return path, True
    within = Path(sr_dir) / f"{within_scan}.csv"
    return (within, False) if within.is_file() else None


def sr_protocol_criteria(
    sr_dir: str | os.PathLike, preset: str = "exp_d", scale: int = 4
) -> list[Criterion]:
    """Per SR table (one per scan, with its ``protocol``): the network's PSNR gain over
    bicubic and, for a within-specimen split, over the average of the two neighbouring
    training slices. Reported, not held: a within-specimen gain may be no more than what the
    neighbours give, and only a held-out specimen shows what the model learned."""
    out = []
    for path in sorted(Path(sr_dir).glob("*.csv")):
        sr = pd.read_csv(path)
        if not {"method", "preset", "scale", "psnr_mean", "protocol"} <= set(sr.columns):
            continue  # the pooled cross-validation table and other layouts
        rows = sr[sr["scale"].astype(int) == int(scale)]
        net = rows[(rows["preset"] == preset) & (rows["method"] != "bicubic")]
        if net.empty:
            continue
        method = str(net["method"].iloc[0])
        p_net, s_net = _psnr_ssim(rows, method, preset)
        p_bic, s_bic = _psnr_ssim(rows, "bicubic")
        protocol = str(net["protocol"].iloc[0])
        detail = f"PSNR {p_net:.2f} vs bicubic {p_bic:.2f} dB, SSIM {s_net:.3f} vs {s_bic:.3f}"
        out.append(
            Criterion(
                f"{preset} x{scale} on {path.stem} ({protocol}): PSNR gain over bicubic (dB)",
                p_net - p_bic,
                "reported",
                None,
                detail,
            )
        )
        p_nb, s_nb = _psnr_ssim(rows, "neighbour_average")
        if not math.isnan(p_nb):
            out.append(
                Criterion(
                    f"{preset} x{scale} on {path.stem} ({protocol}): PSNR gain over the "
                    "neighbour average (dB)",
                    p_net - p_nb,
                    "reported",
                    None,
                    f"PSNR {p_net:.2f} vs neighbour average {p_nb:.2f} dB, SSIM {s_net:.3f} "
                    f"vs {s_nb:.3f}",
                )
            )
    return out


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
        One row per (region,) metric: ``n, r_sr, ci_sr, r_lr, ci_lr``, then
        ``{col}_sr, {col}_lr`` for each of :data:`AGREEMENT_COLUMNS` the input has, and
        ``sr_closer`` (``|r|`` of SR above LR's; None where either r is undefined) and,
        where the input has ``mare``, ``sr_lower_error`` (SR's median absolute relative
        error below LR's; None where either is undefined).
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
            for col in AGREEMENT_COLUMNS:  # bias / MAE columns, where the bone table has them
                if col in block.columns:
                    row[f"{col}_{kind}"] = float(k[col].iloc[0]) if len(k) else math.nan
        ok = np.isfinite(row["r_sr"]) and np.isfinite(row["r_lr"])
        row["sr_closer"] = bool(abs(row["r_sr"]) > abs(row["r_lr"])) if ok else None
        if "mare" in block.columns:
            e_sr, e_lr = row["mare_sr"], row["mare_lr"]
            both = np.isfinite(e_sr) and np.isfinite(e_lr)
            row["sr_lower_error"] = bool(e_sr < e_lr) if both else None
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------
# the whole study
# --------------------------------------------------------------------------------------


def set_summary(table: pd.DataFrame) -> list[Criterion]:
    """Criteria over the per-set table: the thresholds tell the trivial baselines from the
    held-out real slices (held), and whether each generator passes all (reported)."""
    out = []
    for key, block in table.groupby("set", sort=False):
        label, n = str(block["label"].iloc[0]), len(block)
        failed = list(block.loc[~block["passed"].astype(bool), "criterion"])
        passed_n = n - len(failed)
        detail = "fails: " + "; ".join(failed) if failed else "passes every criterion"
        if key in TRIVIAL:
            name, thr, ok = f"baseline {label} fails at least one", f"< {n} passed", bool(failed)
        elif key == "heldout":
            name, thr, ok = f"{label} passes all", f"{n} of {n}", not failed
        elif key == "training":
            name, thr, ok = f"{label}: reported", "reported", None
        else:
            name, thr, ok = f"{label} passes every in-sample criterion", "reported", None
        out.append(Criterion(name, float(passed_n), thr, ok, detail))
    return out


def _ranking_criteria(ranking: pd.DataFrame) -> list[Criterion]:
    """One reported row per metric: the sets in the order of their distance to train."""
    out = []
    for metric, block in ranking.groupby("metric", sort=False):
        order = " < ".join(
            f"{lab} {v:.2f}" for lab, v in zip(block["label"], block["value"], strict=True)
        )
        first = block[block["rank"] == 1]
        out.append(
            Criterion(
                f"thesis comparison ({metric}), closest to train",
                float(first["value"].iloc[0]) if len(first) else math.nan,
                "reported",
                None,
                order,
            )
        )
    return out


def study_criteria(
    results: str | os.PathLike,
    scan: str = "shale",
    bone_scan: str = "bone",
    preset: str = "exp_d",
    scale: int = 4,
    sets: tuple[dict[str, np.ndarray], dict[str, str]] | None = None,
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
    sets : (images, labels), optional
        The sets of :func:`tomosynth.metrics.study_sets.gather_sets` (gathered from
        `results` when None).

    Returns
    -------
    criteria : list of Criterion
    tables : dict of DataFrame
        ``sets`` (the per-set criteria, long), ``ranking`` and ``bone_correlations``.
    """
    root = Path(results)
    images, labels = gather_sets(root, scan) if sets is None else sets
    tables: dict[str, pd.DataFrame] = {"sets": sets_table(images, labels)}
    crit = set_summary(tables["sets"])

    dist_csv = root / "metrics" / "distance" / f"{scan}.csv"
    if dist_csv.is_file():
        tables["ranking"] = thesis_ranking(pd.read_csv(dist_csv))
        crit += _ranking_criteria(tables["ranking"])

    primary = primary_sr_table(root / "metrics" / "sr", bone_scan)
    if primary is not None:
        sr_csv, held_out = primary
        min_gain = MIN_HELD_OUT_GAIN_DB if held_out else MIN_SR_GAIN_DB
        res = sr_vs_bicubic(pd.read_csv(sr_csv), preset, scale, min_gain)
        crit.append(
            Criterion(
                f"SRGAN {preset} x{scale} PSNR gain over bicubic (dB)"
                + (f" on a held-out specimen ({sr_csv.stem})" if held_out else ""),
                res["gain_db"],
                f">= {min_gain:g} dB and SSIM not lower",
                res["passed"],
                f"PSNR {res['psnr_srgan']:.2f} vs {res['psnr_bicubic']:.2f} dB, SSIM "
                f"{res['ssim_srgan']:.3f} vs {res['ssim_bicubic']:.3f}, "
                f"{res['n_slices']} test slices",
            )
        )
    crit += sr_protocol_criteria(root / "metrics" / "sr", preset, scale)
    for scan_name, corr in bone_correlations(root / "metrics" / "bone", preset, scale).items():
        table = bone_correlation_table(corr)
        tables["bone_correlations" + ("" if scan_name == bone_scan else f"_{scan_name}")] = table
        crit += _bone_criteria(table, "" if scan_name == bone_scan else f" ({scan_name})")
    return crit, tables


def bone_correlations(
    bone_dir: str | os.PathLike, preset: str = "exp_d", scale: int = 4
) -> dict[str, pd.DataFrame]:
    """Each SR scan's correlation table (``{scan}_{preset}_x{scale}_correlations.csv``).

    A table written before the agreement columns existed is recomputed from the run's own
    per-ROI table (same ROI values) by :func:`tomosynth.metrics.bone_tables.correlation_table`,
    and says so in its ``source`` column."""
    out = {}
    suffix = f"_{preset}_x{scale}_correlations.csv"
    for path in sorted(Path(bone_dir).glob(f"*{suffix}")):
        corr = pd.read_csv(path)
        rois = path.with_name(path.name.replace("_correlations.csv", ".csv"))
        if "mare" not in corr.columns and rois.is_file():
            corr = correlation_table(pd.read_csv(rois)).assign(
                source=f"agreement recomputed by the report from {rois.name}"
            )
        out[path.name[: -len(suffix)]] = corr
    return out


#: The microstructure goal (SRGAN issue): SR's median absolute relative error below LR's
#: for these metrics in the trabecular ROIs of a held-out specimen.
GOAL_METRICS = ("BV/TV", "Tb.Th", "Tb.Sp", "Tb.N")


def _bone_criteria(table: pd.DataFrame, label: str = "") -> list[Criterion]:
    """Reported rows of one SR scan's bone table: correlation and error of SR against LR,
    and the microstructure goal."""
    valid = table.dropna(subset=["r_sr", "r_lr"])
    out = [
        Criterion(
            f"bone metrics{label}: SR correlates with HR better than LR",
            float(valid["sr_closer"].mean()) if len(valid) else math.nan,
            "reported (fraction of metrics)",
            None,
            f"{int(valid['sr_closer'].sum())} of {len(valid)} metric rows",
        )
    ]
    if "sr_lower_error" not in table.columns:
        return out
    err = _bone_error_criterion(table)
    out.append(replace(err, name=err.name.replace("bone metrics", f"bone metrics{label}")))
    part = table[table["region"] == "trabecular"] if "region" in table.columns else table
    goal = part[part["metric"].isin(GOAL_METRICS)]
    met = [m for m, ok in zip(goal["metric"], goal["sr_lower_error"], strict=True) if ok is True]
    detail = "; ".join(
        f"{r['metric']} SR {r['mare_sr']:.0%} vs LR {r['mare_lr']:.0%} (bias {r['bias_sr']:+.0%} "
        f"vs {r['bias_lr']:+.0%})"
        for _, r in goal.iterrows()
    )
    out.append(
        Criterion(
            f"microstructure goal{label}: SR's median abs. relative error below LR's for "
            + ", ".join(GOAL_METRICS),
            float(len(met)),
            f"{len(GOAL_METRICS)} of {len(GOAL_METRICS)} (reported)",
            None,
            detail,
        )
    )
    return out


def _bone_error_criterion(table: pd.DataFrame) -> Criterion:
    """Fraction of the trabecular metric rows (all rows without regions) where SR's median
    absolute relative error against HR is below LR's."""
    part = table[table["region"] == "trabecular"] if "region" in table.columns else table
    if "region" in table.columns and part.empty:
        part = table[table["region"] == "all"]
    valid = part[part["sr_lower_error"].notna()]
    wins = int(valid["sr_lower_error"].astype(bool).sum())
    return Criterion(
        "bone metrics: SR's median abs. relative error below LR's",
        wins / len(valid) if len(valid) else math.nan,
        "reported (fraction of metrics)",
        None,
        f"{wins} of {len(valid)} metric rows"
        + (f" ({part['region'].iloc[0]} ROIs)" if "region" in part.columns and len(part) else ""),
    )


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
    if "sets" in tables:
        lines += [
            "",
            "## In-sample criteria of every set (against the held-out real slices)",
            "",
            "Measured inside the sample disc at the smallest PNG size by the same code for "
            "every set (`tomosynth.metrics.criteria`); images under `images/{set}/`; "
            "`tomosynth study-check` recomputes this table from them.",
            "",
            sets_markdown(tables["sets"]).rstrip(),
        ]
    titles = {"ranking": "Thesis comparison", "bone_correlations": "Bone metrics"}
    for name in [n for n in tables if n == "ranking" or n.startswith("bone_correlations")]:
        if name in tables:
            t = tables[name]
            title = titles.get(name, "Bone metrics, " + name.removeprefix("bone_correlations_"))
            lines += ["", f"## {title}", "", "| " + " | ".join(t.columns) + " |"]
            lines.append("|" + "---|" * len(t.columns))
            for _, row in t.iterrows():
                lines.append("| " + " | ".join(_fmt(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def write_criteria(
    results: str | os.PathLike, out_dir: str | os.PathLike, scan: str = "shale", **kw
) -> list[Path]:
    """Write ``criteria.md``, ``criteria.csv``, the tables' CSVs (``criteria_{table}.csv``)
    and every set's images (``images/{set}/``, uint8 PNG) of `results` to `out_dir`."""
    sets = gather_sets(results, scan)
    crit, tables = study_criteria(results, scan=scan, sets=sets, **kw)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = write_sets(sets[0], out)
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

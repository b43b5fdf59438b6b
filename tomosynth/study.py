"""Gather a finished study run into a folder for the repository (``make study``).

A study run is the ordinary workflow with an overlay config (``config/study.yaml``) run in
its own working directory, so its ``results/`` and ``logs/`` (Snakemake benchmarks in ``logs/benchmark/``) do not mix with
the demo's. :func:`collect_study` copies the figures (PNG), tables (CSV) and their
provenance sidecars (JSON), the summary and the sample contact sheets into the output
folder, writes the wall time per stage from Snakemake's benchmark files and the criteria of
:mod:`tomosynth.metrics.study`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from tomosynth.errors import DataError
from tomosynth.io import atomic_file
from tomosynth.metrics.study import write_criteria

__all__ = [
    "bias_lines",
    "collect_study",
    "earlier_jobs",
    "ranking_vs_thesis",
    "sr_split_lines",
    "srgan_training_summary",
    "stage_times",
    "study_markdown",
]

#: Published numbers the study is set beside: the thesis' FID on tomo_00001 (4 h of GPU per
#: resolution, vs the training set) and the bone SR report's exp_d at x4 (its loss
#: experiments: PSNR in dB on 8-bit images, SSIM; LR made from HR).
THESIS_FID = {
    "real split": 2.14,
    "bicubic": 177.24,
    "srcnn": 180.82,
    "256": 249.93,
}
REPORT_SR_X4 = {"exp_d": (32.977, 0.8693)}


def _thesis_key(label: str) -> str | None:
    low = label.lower()
    if low.startswith("real split"):
        return "real split"
    for key in ("bicubic", "srcnn"):
        if key in low:
            return key
    if low.startswith("256") or "256 px gan" in low:
        return "256"
    return None


def srgan_training_summary(log_csv: str | os.PathLike) -> dict:
    """Where an SRGAN run's kept checkpoint came from, read off its ``log.csv``.

    The trainer keeps the epoch of highest validation PSNR, which may lie in the L1 warm-up;
    a table row named after an adversarial preset then shows the warm-up's network, and the
    study says so.

    Returns
    -------
    dict
        ``epochs``, ``pretrain_epochs``, ``adversarial_epochs``, ``minutes``, ``best_epoch``,
        ``best_phase``, ``best_val_psnr``, ``last_val_psnr``, ``bicubic_val_psnr``.
    """
    log = pd.read_csv(log_csv)
    if log.empty or "val_psnr" not in log.columns:
        raise DataError(f"{log_csv}: no epochs with a validation PSNR")
    best = log.loc[log["val_psnr"].idxmax()]
    phases = log["phase"].value_counts()
    return {
        "epochs": int(len(log)),
        "pretrain_epochs": int(phases.get("pretrain", 0)),
        "adversarial_epochs": int(phases.get("adversarial", 0)),
        "minutes": float(log["elapsed_s"].iloc[-1]) / 60.0,
        "best_epoch": int(best["epoch"]),
        "best_phase": str(best["phase"]),
        "best_val_psnr": float(best["val_psnr"]),
        "last_val_psnr": float(log["val_psnr"].iloc[-1]),
        "bicubic_val_psnr": float(log["bicubic_psnr"].iloc[-1]),
    }


def _srgan_training_lines(out: Path) -> list[str]:
    """study.md lines on each SRGAN run's phases and the epoch its checkpoint holds."""
    lines = []
    for log_csv in sorted((out / "models" / "srgan").glob("*/log.csv")):
        t = srgan_training_summary(log_csv)
        where = "the L1 warm-up" if t["best_phase"] == "pretrain" else "the adversarial phase"
        lines.append(
            f"- `{log_csv.parent.name}`: {t['epochs']} epochs ({t['pretrain_epochs']} L1 "
            f"warm-up, {t['adversarial_epochs']} adversarial) in {t['minutes']:.1f} min. The "
            f"kept checkpoint is epoch {t['best_epoch']}, from {where} (validation PSNR "
            f"{t['best_val_psnr']:.2f} dB, bicubic {t['bicubic_val_psnr']:.2f} dB); the last "
            f"epoch scored {t['last_val_psnr']:.2f} dB."
        )
    if not lines:
        return []
    return ["", "## SRGAN trainings (which epoch the tables show)", "", *lines]


#: The thesis' order of its sets by FID to the training set (lowest first).
THESIS_ORDER = ("bicubic", "srcnn", "256")
THESIS_NAMES = {"bicubic": "64 px GAN + bicubic", "srcnn": "64 px GAN + SRCNN", "256": "256 px GAN"}


def ranking_vs_thesis(ranking: pd.DataFrame) -> list[str]:
    """One sentence per metric: whether the study's order of the thesis' sets is the
    thesis' (bicubic < SRCNN < 256 px GAN by FID), and how it differs."""
    lines = []
    for metric, block in ranking[ranking["rank"] >= 1].groupby("metric", sort=False):
        order = [k for k in (_thesis_key(str(lab)) for lab in block["label"]) if k]
        study = " < ".join(THESIS_NAMES[k] for k in order)
        thesis = " < ".join(THESIS_NAMES[k] for k in THESIS_ORDER if k in order)
        extra = [str(lab) for lab in block["label"] if not _thesis_key(str(lab))]
        same = order == [k for k in THESIS_ORDER if k in order]
        text = f"By {metric}, the study orders the thesis' sets {study}: " + (
            "the thesis' order." if same else f"not the thesis' order ({thesis} by FID)."
        )
        if extra:
            text += f" Not in the thesis: {', '.join(extra)}."
        lines.append(f"- {text}")
    return lines


def _compute_columns(out: Path) -> dict[str, tuple[str, str]]:
    """Set name -> (generator budget and run time, total compute incl. upscaler training),
    from ``metrics/compute.csv`` (empty when absent)."""
    path = out / "metrics" / "compute.csv"
    if not path.is_file():
        return {}
    table = pd.read_csv(path)
    models = table[table["row_type"] == "model"].set_index("name")
    cols = {}
    for _, r in table[table["row_type"] == "pipeline"].iterrows():
        names = str(r["models"]).split(";")
        gen = models.loc[names[0]] if names[0] in models.index else None
        gen_text = (
            ""
            if gen is None
            else f"{gen['budget_minutes']:g} min budget, ran {gen['wall_s'] / 60:.1f} min"
        )
        ups = [n for n in names[1:] if n in models.index]
        parts = " + ".join(f"{n} {models.loc[n, 'wall_s'] / 60:.1f}" for n in ups)
        total = f"{r['wall_s'] / 60:.1f} min" + (f" (generator + {parts} min)" if ups else "")
        cols[str(r["name"])] = (gen_text, total)
    return cols


def _srcnn_training_lines(out: Path) -> list[str]:
    """study.md lines on each SRCNN run: the epoch its kept checkpoint holds."""
    lines = []
    for log_csv in sorted((out / "models" / "srcnn").glob("*/log.csv")):
        log = pd.read_csv(log_csv)
        if log.empty or "val_psnr" not in log.columns:
            continue
        best = log.loc[log["val_psnr"].idxmax()]
        lines.append(
            f"- SRCNN `{log_csv.parent.name}` (one phase, MSE): {len(log)} epochs in "
            f"{log['elapsed_s'].iloc[-1] / 60:.1f} min; the kept checkpoint is epoch "
            f"{int(best['epoch'])} (best validation PSNR {best['val_psnr']:.2f} dB)."
        )
    return lines


def sr_split_lines(out: Path) -> list[str]:
    """What the SR test slices are, per SR table, from its provenance's volume records."""
    lines = []
    for prov in sorted((out / "metrics" / "sr").glob("*.json")):
        try:
            volumes = json.loads(prov.read_text()).get("volumes", {})
        except (OSError, ValueError):
            continue
        for name, meta in volumes.items() if isinstance(volumes, dict) else ():
            if not isinstance(meta, dict):
                continue
            if meta.get("test_split"):
                how = str(meta["test_split"])
            elif meta.get("fold") is None and meta.get("lr_scan") is None:
                how = (
                    "within-specimen: the split manifest's test slices of the scan the model "
                    "trained on, interleaved with its training slices (not another specimen)"
                )
            else:
                how = (
                    f"held-out specimen (fold {meta.get('fold')}): every slice of a scan the "
                    "model never saw; it trained on the other specimens of srgan.cv.specimens"
                )
            lines.append(f"- `{Path(name).name}` ({prov.stem}): {how}.")
    return lines


def bias_lines(out: Path) -> list[str]:
    """Where the bone metrics' agreement (bias, MAE, Bland-Altman) is shown, if the run has it."""
    figs = sorted(p.name for p in (out / "plots").glob("*bland*.png"))
    tables = [
        p.relative_to(out).as_posix()
        for p in sorted((out / "metrics" / "bone").glob("*.csv"))
        if {"bias", "mae"} & set(pd.read_csv(p, nrows=0).columns)
    ]
    tables += [  # SR and LR side by side; recomputed from the ROI tables where the run had none
        p.name
        for p in sorted(out.glob("criteria_bone_correlations*.csv"))
        if "bias_sr" in pd.read_csv(p, nrows=0).columns
    ]
    if not figs and not tables:
        return ["- This run has no bias (median relative error) or MAE columns in its bone tables."]
    out_lines = []
    if tables:
        out_lines.append(
            "- Bias and MAE of SR and LR against HR: " + ", ".join(f"`{t}`" for t in tables) + "."
        )
    if figs:
        out_lines.append("- Bland-Altman figures: " + ", ".join(f"`plots/{f}`" for f in figs) + ".")
    return out_lines


def earlier_jobs(
    bench_root: str | os.PathLike, total_wall_s: float, now: float | None = None
) -> int:
    """How many Snakemake benchmark files were written before this invocation began (now -
    `total_wall_s`, one minute of slack): jobs of an earlier, resumed run, whose time the
    end-to-end wall time does not hold."""
    start = (time.time() if now is None else now) - total_wall_s - 60.0
    return sum(1 for f in Path(bench_root).rglob("*.tsv") if f.stat().st_mtime < start)


def run_earlier_jobs(bench_root: str | os.PathLike, total_wall_s: float) -> int:
    """:func:`earlier_jobs` of an invocation that ended with its last benchmarked job, so
    that a report regenerated later does not count the run's first jobs as a resumed run's."""
    ended = max((f.stat().st_mtime for f in Path(bench_root).rglob("*.tsv")), default=None)
    return earlier_jobs(bench_root, total_wall_s, now=ended)


def _wall_line(total_wall_s: float, earlier: int) -> str:
    line = f"End to end (`make study`, one invocation): {total_wall_s / 60:.1f} min."
    if earlier:
        line += (
            f" **{earlier} job(s) ran before this invocation** (a resumed run): this is "
            "the last invocation's time only, not the whole study's."
        )
    return line


def _ranking_lines(out: Path) -> list[str]:
    """study.md's thesis comparison: the ranking with both budgets and the thesis' FIDs."""
    ranking = out / "criteria_ranking.csv"
    if not ranking.is_file():
        return []
    t = pd.read_csv(ranking)
    budgets = _compute_columns(out)
    lines = [
        "",
        "## Thesis comparison (distance to the training split)",
        "",
        "Compute: the generator's budget (the thesis' protocol: equal per generator) and "
        "the total compute of the pipeline, every upscaler's training included "
        "(`metrics/compute.csv`).",
        "",
        "| rank | set | study: metric, value [CI] | N | generator | total compute "
        "| thesis FID (tomo_00001, 4 h GPU) |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, r in t.iterrows():
        ref = THESIS_FID.get(_thesis_key(str(r["label"])) or "", "")
        gen, total = budgets.get(str(r["set"]), ("", ""))
        lines.append(
            f"| {r['rank']} | {r['label']} | {r['metric']}: {r['value']:.3g} "
            f"[{r['ci_low']:.3g}, {r['ci_high']:.3g}] | {r['n_set']} | {gen} | {total} "
            f"| {ref} |"
        )
    return lines + ["", *ranking_vs_thesis(t)]


def _sr_table_lines(out: Path) -> list[str]:
    """study.md's SR tables, each headed by how its test slices relate to the training data."""
    lines: list[str] = []
    for sr_csv in sorted((out / "metrics" / "sr").glob("*.csv")):
        t = pd.read_csv(sr_csv)
        if not {"method", "scale", "psnr_mean", "ssim_mean"} <= set(t.columns):
            continue
        protocol = ", ".join(sorted(set(t["protocol"].astype(str)))) if "protocol" in t else ""
        if "fold" in t:  # the cross-validation table: per fold (its held-out scans) and pooled
            protocol = "leave-one-specimen-out, per fold and pooled"
        fold = ["fold (held out)"] if "fold" in t else []
        lines += [
            "",
            f"## Super-resolution, {sr_csv.stem}" + (f" ({protocol})" if protocol else ""),
            "",
            "| "
            + " | ".join([*fold, "scale", "method", "PSNR (dB)", "SSIM"])
            + " | report, x4 (PSNR / SSIM) |",
            "|---" * (len(fold) + 5) + "|",
        ]
        for _, r in t.iterrows():
            lead = f"| {r['fold']} ({r.get('scans', '')}) " if fold else ""
            ref = ""
            if int(r["scale"]) == 4:
                key = "" if r["method"] == "bicubic" else str(r.get("preset", ""))
                if key in REPORT_SR_X4:
                    ref = "{} / {}".format(*REPORT_SR_X4[key])
            lines.append(
                f"{lead}| x{r['scale']} | {r['method']} | {r['psnr_mean']:.2f} "
                f"| {r['ssim_mean']:.3f} | {ref} |"
            )
    return lines


def study_markdown(
    out_dir: str | os.PathLike, total_wall_s: float | None = None, earlier: int = 0
) -> str:
    """``study.md``: the study's numbers beside the thesis' and the report's, the criteria.

    Reads what :func:`collect_study` wrote to `out_dir` (``criteria_ranking.csv``,
    ``metrics/sr/*.csv``, ``criteria.md``, ``wall_times.md``).
    """
    out = Path(out_dir)
    lines = [
        "# The study (`make study`)",
        "",
        "Recipe: `config/study.yaml`. Criteria: `criteria.md`; wall time per stage: "
        "`wall_times.md`; every table under `metrics/`, every figure under `plots/` (each with "
        "its provenance `.json`).",
    ]
    if total_wall_s is not None:
        lines += ["", _wall_line(total_wall_s, earlier)]
    lines += _ranking_lines(out) + _sr_table_lines(out)
    lines += _srgan_training_lines(out)
    srcnn = _srcnn_training_lines(out)
    if srcnn:
        lines += ["", "## SRCNN trainings", "", *srcnn]
    split = sr_split_lines(out)
    if split:
        lines += ["", "## SR test split", "", *split]
    lines += ["", "## Bone metrics: bias beside correlation", "", *bias_lines(out)]
    lines += [
        "",
        "The thesis' and the report's numbers come from other data (a real shale scan with "
        "Inception FID; mouse bone scans for the report, which gives no bicubic row), so they "
        "frame the study's values rather than match them.",
    ]
    crit = out / "criteria.md"
    if crit.is_file():
        lines += ["", crit.read_text().replace("# Study criteria", "## Criteria", 1)]
    return "\n".join(lines) + "\n"


def stage_times(bench_root: str | os.PathLike) -> pd.DataFrame:
    """Wall time per rule from Snakemake benchmark files ``{bench_root}/{rule}/*.tsv``.

    Returns
    -------
    DataFrame
        Columns ``stage, jobs, wall_s, max_rss_mb`` (summed seconds, the largest peak RSS),
        longest first.
    """
    rows = []
    for rule_dir in sorted(p for p in Path(bench_root).iterdir() if p.is_dir()):
        files = sorted(rule_dir.rglob("*.tsv"))
        if not files:
            continue
        tables = [pd.read_csv(f, sep="\t") for f in files]
        wall = sum(float(t["s"].iloc[0]) for t in tables if "s" in t)
        rss = [float(t["max_rss"].iloc[0]) for t in tables if "max_rss" in t]
        rows.append(
            {
                "stage": rule_dir.name,
                "jobs": len(files),
                "wall_s": round(wall, 1),
                "max_rss_mb": round(max(rss), 1) if rss else float("nan"),
            }
        )
    table = pd.DataFrame(rows, columns=["stage", "jobs", "wall_s", "max_rss_mb"])
    return table.sort_values("wall_s", ascending=False, ignore_index=True)


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)


def collect_study(
    workdir: str | os.PathLike,
    out_dir: str | os.PathLike,
    total_wall_s: float | None = None,
    recipe: str | os.PathLike | None = None,
    figures: Callable[[Path], list[Path]] | None = None,
) -> list[Path]:
    """Copy a study run's figures, tables and provenance to `out_dir`; write times and criteria.

    Parameters
    ----------
    workdir : path-like
        The run's working directory (holding ``results/`` and ``logs/benchmark/``).
    out_dir : path-like
        Destination, e.g. ``docs/study``: ``plots/``, ``metrics/``, ``samples/``,
        ``summary.md``, ``wall_times.csv``/``.md``, ``criteria.md``/``.csv``.
    total_wall_s : float, optional
        End-to-end wall time of the run (recorded in ``wall_times.md``).
    recipe : path-like, optional
        The overlay config the run used, copied as ``recipe.yaml`` so that a test can tell
        committed results from a changed recipe.
    figures : callable, optional
        Draws report-time figures into ``out_dir`` (the caller's: figures live on a floor
        above this module) before ``study.md`` lists them; returns the files written.
    """
    work = Path(workdir)
    results = work / "results"
    if not (results / "summary.md").is_file():
        raise DataError(f"{results}/summary.md: no finished run to collect")
    out = Path(out_dir)
    written: list[Path] = []
    for pattern, sub in (("plots/*.png", "plots"), ("plots/*.json", "plots")):
        for src in sorted(results.glob(pattern)):
            _copy(src, out / sub / src.name)
            written.append(out / sub / src.name)
    for src in sorted((results / "metrics").rglob("*")):
        if src.suffix in (".csv", ".json") and src.is_file():
            dst = out / "metrics" / src.relative_to(results / "metrics")
            _copy(src, dst)
            written.append(dst)
    for src in sorted((results / "samples").rglob("*_contact_sheet.png")):
        _copy(src, out / "samples" / src.name)
        written.append(out / "samples" / src.name)
    for src in sorted((results / "models").glob("*/*/log.csv")):  # training curves, small
        for name in ("log.csv", "train.json"):
            if (src.parent / name).is_file():
                dst = out / "models" / src.parent.relative_to(results / "models") / name
                _copy(src.parent / name, dst)
                written.append(dst)
    _copy(results / "summary.md", out / "summary.md")
    written.append(out / "summary.md")
    if recipe is not None:
        _copy(Path(recipe), out / "recipe.yaml")
        written.append(out / "recipe.yaml")

    bench = work / "logs" / "benchmark"
    times = stage_times(bench) if bench.is_dir() else pd.DataFrame()
    with atomic_file(out / "wall_times.csv") as tmp:
        times.to_csv(tmp, index=False)
    lines = ["# Wall time per stage", ""]
    earlier = run_earlier_jobs(bench, total_wall_s) if total_wall_s and bench.is_dir() else 0
    if total_wall_s is not None:
        lines += [_wall_line(total_wall_s, earlier), ""]
    lines += ["| stage | jobs | wall (min) | peak RSS (MB) |", "|---|---|---|---|"]
    for _, r in times.iterrows():
        lines.append(
            f"| {r['stage']} | {r['jobs']} | {r['wall_s'] / 60:.2f} | {r['max_rss_mb']:.0f} |"
        )
    with atomic_file(out / "wall_times.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    written += [out / "wall_times.csv", out / "wall_times.md"]
    written += write_criteria(results, out)
    if figures is not None:
        written += figures(out)
    with atomic_file(out / "study.md") as tmp:
        tmp.write_text(study_markdown(out, total_wall_s, earlier))
    written.append(out / "study.md")
    return written

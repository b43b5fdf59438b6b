"""Gather a finished study run into a folder for the repository (``make study``).

A study run is the ordinary workflow with an overlay config (``config/study.yaml``) run in
its own working directory, so its ``results/`` and ``logs/`` (Snakemake benchmarks in ``logs/benchmark/``) do not mix with
the demo's. :func:`collect_study` copies the figures (PNG), tables (CSV) and their
provenance sidecars (JSON), the summary and the sample contact sheets into the output
folder, writes the wall time per stage from Snakemake's benchmark files and the criteria of
:mod:`tomosynth.metrics.study`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd

from tomosynth.errors import DataError
from tomosynth.io import atomic_file
from tomosynth.metrics.study import write_criteria

__all__ = ["collect_study", "srgan_training_summary", "stage_times", "study_markdown"]

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


def study_markdown(out_dir: str | os.PathLike, total_wall_s: float | None = None) -> str:
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
        lines += ["", f"End to end: {total_wall_s / 60:.1f} min."]
    ranking = out / "criteria_ranking.csv"
    if ranking.is_file():
        t = pd.read_csv(ranking)
        lines += [
            "",
            "## Thesis comparison (distance to the training split)",
            "",
            "| rank | set | study: metric, value [CI] | N | thesis FID (tomo_00001, 4 h GPU) |",
            "|---|---|---|---|---|",
        ]
        for _, r in t.iterrows():
            ref = THESIS_FID.get(_thesis_key(str(r["label"])) or "", "")
            lines.append(
                f"| {r['rank']} | {r['label']} | {r['metric']}: {r['value']:.3g} "
                f"[{r['ci_low']:.3g}, {r['ci_high']:.3g}] | {r['n_set']} | {ref} |"
            )
    for sr_csv in sorted((out / "metrics" / "sr").glob("*.csv")):
        t = pd.read_csv(sr_csv)
        if not {"method", "scale", "psnr_mean", "ssim_mean"} <= set(t.columns):
            continue
        lines += [
            "",
            f"## Super-resolution, {sr_csv.stem} (held-out test slices)",
            "",
            "| scale | method | PSNR (dB) | SSIM | report, x4 (PSNR / SSIM) |",
            "|---|---|---|---|---|",
        ]
        for _, r in t.iterrows():
            ref = ""
            if int(r["scale"]) == 4:
                key = "" if r["method"] == "bicubic" else str(r.get("preset", ""))
                if key in REPORT_SR_X4:
                    ref = "{} / {}".format(*REPORT_SR_X4[key])
            lines.append(
                f"| x{r['scale']} | {r['method']} | {r['psnr_mean']:.2f} | {r['ssim_mean']:.3f} "
                f"| {ref} |"
            )
    lines += _srgan_training_lines(out)
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
    if total_wall_s is not None:
        lines += [f"End to end (`make study`): {total_wall_s / 60:.1f} min.", ""]
    lines += ["| stage | jobs | wall (min) | peak RSS (MB) |", "|---|---|---|---|"]
    for _, r in times.iterrows():
        lines.append(
            f"| {r['stage']} | {r['jobs']} | {r['wall_s'] / 60:.2f} | {r['max_rss_mb']:.0f} |"
        )
    with atomic_file(out / "wall_times.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    written += [out / "wall_times.csv", out / "wall_times.md"]
    written += write_criteria(results, out)
    with atomic_file(out / "study.md") as tmp:
        tmp.write_text(study_markdown(out, total_wall_s))
    written.append(out / "study.md")
    return written

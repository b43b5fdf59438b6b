"""``tomosynth`` command line: ``tomosynth verify [results/]`` checks every folder manifest;
``tomosynth check-config FILE...`` parses config files (``file:line: message``);
``tomosynth run ARGS...`` runs ``snakemake ARGS...`` once its ``--configfile`` files parse;
``tomosynth study-report WORKDIR OUT`` gathers a study run (figures, tables, wall times,
criteria) into OUT; ``tomosynth study-check OUT`` recomputes OUT's per-set criteria table
from its committed images and fails on any mismatch."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd

from tomosynth.config_checks import configfile_args, yaml_problem
from tomosynth.errors import DataError
from tomosynth.manifest import verify_tree
from tomosynth.metrics.study import bone_correlations
from tomosynth.metrics.study_sets import TABLE, check_sets
from tomosynth.plots import save_figure
from tomosynth.plots.bone import bland_altman_figure
from tomosynth.study import collect_study


def verify(root: Path, fast: bool = False) -> int:
    """Check every ``MANIFEST.json`` under `root`; print one line per damaged folder.

    Returns the exit status: 0 all intact, 1 damage found, 2 no such folder or no manifest.
    """
    if not root.is_dir():
        print(f"tomosynth verify: {root} is not a folder", file=sys.stderr)
        return 2
    manifests, damaged = verify_tree(root, full=not fast)
    if not manifests and not damaged:
        print(f"tomosynth verify: no {root}/**/MANIFEST.json found (nothing to check)")
        return 2
    files = 0
    for m in sorted(set(manifests) | set(damaged)):  # damaged: also folders without one
        import json

        try:
            files += int(json.loads(m.read_text()).get("count", 0))
        except (OSError, ValueError):
            pass
        problems = damaged.get(m)
        if problems:
            print(f"DAMAGED {m.parent}: {len(problems)} problem(s)")
            for line in problems[:20]:
                print(f"  {line}")
            if len(problems) > 20:
                print(f"  ... and {len(problems) - 20} more")
    how = "sizes and times" if fast else "sha256"
    status = f"{len(damaged)} damaged" if damaged else "all intact"
    print(
        f"{len(set(manifests) | set(damaged))} folders, {files} files checked ({how}) under {root}: {status}"
    )
    if damaged:
        print(
            "regenerate a damaged folder: snakemake --forcerun <the rule named above>, or "
            "delete the folder and run snakemake again"
        )
    return 1 if damaged else 0


def study_check(out: Path) -> int:
    """Recompute ``{out}/criteria_sets.csv`` from ``{out}/images/``; print each mismatch.

    Returns the exit status: 0 all equal, 1 a mismatch, 2 missing or unreadable files.
    """
    try:
        problems = check_sets(out)
    except DataError as exc:
        print(f"tomosynth study-check: {exc}", file=sys.stderr)
        return 2
    for line in problems:
        print(f"MISMATCH {line}")
    if problems:
        print(f"{len(problems)} mismatch(es) between {out}/{TABLE} and its images")
        return 1
    print(f"{out}/{TABLE}: every criterion of every set recomputed from {out}/images/: equal")
    return 0


def check_config(files: list) -> int:
    """Print ``file:line:column: message`` for each config file that does not parse.

    Returns the exit status: 0 all parse, 1 otherwise.
    """
    problems = [x for x in map(yaml_problem, files) if x is not None]
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


def run_snakemake(args: list[str]) -> int:
    """``snakemake ARGS...`` (this Python's), after checking the ``--configfile`` files.

    Snakemake reads ``--configfile`` overlays before the Snakefile runs and reports a YAML
    error without the file or the line, and a missing file with a traceback; here either
    is one line. Snakemake replaces this process, so Ctrl-C and signals reach it directly.
    Returns 1 for a bad config file (otherwise does not return).
    """
    status = check_config(configfile_args(args))
    if status:
        return status
    os.execv(sys.executable, [sys.executable, "-m", "snakemake", *args])
    return 0  # not reached


class _PlainParser(argparse.ArgumentParser):
    """An argument parser whose help shows text, not reST markup (docstrings keep theirs)."""

    def format_help(self) -> str:
        return super().format_help().replace("``", "").replace("`", "")

    def format_usage(self) -> str:
        return super().format_usage().replace("``", "").replace("`", "")


def main(argv: list[str] | None = None) -> int:
    parser = _PlainParser(
        prog="tomosynth",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("verify", help="check every folder output of a results tree")
    p.add_argument("root", nargs="?", default="results", type=Path)
    p.add_argument("--fast", action="store_true", help="sizes and times only, no hashing")
    s = sub.add_parser("study-report", help="gather a study run into a folder, with criteria")
    s.add_argument(
        "workdir", type=Path, help="the run's folder holding results/ and logs/benchmark/"
    )
    s.add_argument("out", type=Path, help="destination, e.g. docs/study")
    s.add_argument("--wall-s", type=float, default=None, help="end-to-end wall time, s")
    s.add_argument(
        "--recipe", type=Path, default=None, help="the overlay config of the run (recipe.yaml)"
    )
    c = sub.add_parser("study-check", help="recompute a study folder's criteria from its images")
    c.add_argument("out", type=Path, help="the study folder, e.g. docs/study")
    k = sub.add_parser("check-config", help="parse config files: file:line: message per error")
    k.add_argument("files", nargs="+", type=Path)
    sub.add_parser("run", help="snakemake ARGS..., its --configfile files checked first")
    argv = sys.argv[1:] if argv is None else argv
    if not argv:  # no command: the help text, not argparse's one-line error
        parser.print_help()
        return 0
    if argv[0] == "run":  # everything after it is Snakemake's (argparse would take -n etc.)
        return run_snakemake(argv[1:])
    args = parser.parse_args(argv)
    if args.command == "study-check":
        return study_check(args.out)
    if args.command == "check-config":
        return check_config(args.files)
    if args.command == "study-report":
        try:
            files = collect_study(
                args.workdir, args.out, args.wall_s, args.recipe, figures=bland_altman_figures
            )
        except DataError as exc:
            print(f"tomosynth study-report: {exc}", file=sys.stderr)
            return 2
        print(f"{len(files)} files written under {args.out}; criteria: {args.out}/criteria.md")
        print((args.out / "criteria.md").read_text())
        return 0
    return verify(args.root, fast=args.fast)


def bland_altman_figures(out: Path) -> list[Path]:
    """A Bland-Altman figure per SR scan of a study folder whose run drew none (runs before
    the agreement columns): from its per-ROI table and the report's agreement."""
    written = []
    for scan, corr in bone_correlations(out / "metrics" / "bone").items():
        png = out / "plots" / f"bone_bland_altman_{scan}_exp_d_x4.png"
        rois = out / "metrics" / "bone" / f"{scan}_exp_d_x4.csv"
        if (out / "plots" / f"bland_altman_{scan}_exp_d_x4.png").is_file():  # rule plot_bone's
            png.unlink(missing_ok=True)  # a report-drawn figure of an earlier run is stale
            continue
        if png.is_file() or not rois.is_file():
            continue
        title = f"{scan} exp_d x4: SR and LR against HR (agreement computed by the report)"
        save_figure(bland_altman_figure(pd.read_csv(rois), corr, title=title), png)
        written.append(png)
    return written


if __name__ == "__main__":
    sys.exit(main())

"""``tomosynth`` command line: ``tomosynth verify [results/]`` checks every folder manifest;
``tomosynth study-report WORKDIR OUT`` gathers a study run (figures, tables, wall times,
criteria) into OUT."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tomosynth.errors import DataError
from tomosynth.manifest import verify_tree
from tomosynth.study import collect_study


def verify(root: Path, fast: bool = False) -> int:
    """Check every ``MANIFEST.json`` under `root`; print one line per damaged folder.

    Returns the exit status: 0 all intact, 1 damage found, 2 no such folder or no manifest.
    """
    if not root.is_dir():
        print(f"tomosynth verify: {root} is not a folder", file=sys.stderr)
        return 2
    manifests, damaged = verify_tree(root, full=not fast)
    if not manifests:
        print(f"tomosynth verify: no {root}/**/MANIFEST.json found (nothing to check)")
        return 2
    files = 0
    for m in manifests:
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
    print(f"{len(manifests)} folders, {files} files checked ({how}) under {root}: {status}")
    if damaged:
        print("regenerate a damaged folder: delete it and run snakemake again")
    return 1 if damaged else 0


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
    argv = sys.argv[1:] if argv is None else argv
    if not argv:  # no command: the help text, not argparse's one-line error
        parser.print_help()
        return 0
    args = parser.parse_args(argv)
    if args.command == "study-report":
        try:
            files = collect_study(args.workdir, args.out, args.wall_s, args.recipe)
        except DataError as exc:
            print(f"tomosynth study-report: {exc}", file=sys.stderr)
            return 2
        print(f"{len(files)} files written under {args.out}; criteria: {args.out}/criteria.md")
        print((args.out / "criteria.md").read_text())
        return 0
    return verify(args.root, fast=args.fast)


if __name__ == "__main__":
    sys.exit(main())

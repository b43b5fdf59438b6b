"""The run's one-page summary (`results/summary.md`): every metrics table and plot, linked."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from tomosynth import __version__
from tomosynth.io import atomic_file


def markdown_table(df: pd.DataFrame, float_format: str = "{:.4g}") -> str:
    """A GitHub-flavoured markdown table of `df` (no extra dependency)."""

    def fmt(v: object) -> str:
        if isinstance(v, float):
            return "" if pd.isna(v) else float_format.format(v)
        return str(v).replace("|", "\\|")

    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    rows = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


def write_summary(
    out_md: str | os.PathLike,
    tables: Mapping[str, str | os.PathLike],
    plots: Sequence[str | os.PathLike] = (),
    notes: Sequence[str] = (),
) -> None:
    """Write a markdown summary: one section per metrics table, then links to the plots.

    Paths in the summary are relative to its own folder, so the file can be opened in place.
    """
    out_md = Path(out_md)
    lines = ["# tomosynth results", "", f"tomosynth {__version__}.", ""]
    lines += [f"- {n}" for n in notes]
    if notes:
        lines.append("")
    for title, path in tables.items():
        df = pd.read_csv(path)
        rel = os.path.relpath(path, out_md.parent)
        lines += [f"## {title}", "", f"Source: [`{rel}`]({rel}), {len(df)} rows.", ""]
        lines += [markdown_table(df), ""]
    if plots:
        lines += ["## Plots", ""]
        for p in plots:
            rel = os.path.relpath(p, out_md.parent)
            lines.append(f"- [{Path(p).name}]({rel})")
        lines.append("")
    with atomic_file(out_md) as tmp:
        tmp.write_text("\n".join(lines))

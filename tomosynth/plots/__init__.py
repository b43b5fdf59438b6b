"""Figures, one module per kind; :func:`save_figure` is how every one of them is written."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files: no display is needed or wanted
import matplotlib.pyplot as plt  # noqa: E402

from tomosynth.io import atomic_file  # noqa: E402


def save_figure(fig: plt.Figure, *paths: str | os.PathLike | None, dpi: int = 150) -> None:
    """Write `fig` to each path (format from its suffix: png, pdf, ...), atomically, and
    close it. None paths are skipped (an optional PDF)."""
    for path in paths:
        if path is None:
            continue
        with atomic_file(path) as tmp:
            fig.savefig(tmp, format=Path(path).suffix.lstrip("."), dpi=dpi, bbox_inches="tight")
    plt.close(fig)

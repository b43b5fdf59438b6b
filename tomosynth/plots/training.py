"""Training figures: GAN loss curves per epoch and per wall-clock second, progress grids."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from tomosynth.errors import DataError
from tomosynth.io import read_png
from tomosynth.plots import save_figure

LOSS_COLUMNS = {
    "g_loss": "generator loss",
    "c_loss": "critic loss",
    "wasserstein": "Wasserstein estimate",
}
_EPOCH_PNG = re.compile(r"epoch_(\d+)\.png$")


def _read_log(path: str | os.PathLike) -> pd.DataFrame:
    path = Path(path)
    try:
        df = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: cannot read training log: {exc}") from exc
    missing = {"epoch", "wall_s", *LOSS_COLUMNS} - set(df.columns)
    if missing:
        raise DataError(f"{path}: training log lacks columns {sorted(missing)}")
    return df


def plot_gan_losses(
    log_csvs: dict[str, str | os.PathLike],
    out_png: str | os.PathLike,
    out_pdf: str | os.PathLike | None = None,
) -> None:
    """Generator loss, critic loss and Wasserstein estimate of several trainings.

    Rows: the three quantities; left column against the epoch, right column against the
    wall-clock seconds (the budget axis on which the resolutions are compared fairly).

    Parameters
    ----------
    log_csvs : dict
        Label (e.g. ``"64 px"``) -> ``log.csv`` of :func:`tomosynth.train.wgan_gp.train_wgan_gp`.
    out_png, out_pdf : path-like
        Figure files (the PDF is optional).
    """
    if not log_csvs:
        raise DataError("plot_gan_losses: no training logs given")
    logs = {label: _read_log(path) for label, path in log_csvs.items()}
    fig, axes = plt.subplots(3, 2, figsize=(10, 9), sharex="col", squeeze=False)
    for label, df in logs.items():
        for row, (col, title) in enumerate(LOSS_COLUMNS.items()):
            axes[row, 0].plot(df["epoch"], df[col], label=label, lw=1)
            axes[row, 1].plot(df["wall_s"], df[col], label=label, lw=1)
            axes[row, 0].set_ylabel(title)
    for row in range(3):
        for ax in axes[row]:
            ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("epoch")
    axes[-1, 1].set_xlabel("wall-clock time (s)")
    axes[0, 0].set_title("per epoch")
    axes[0, 1].set_title("per wall-clock second")
    axes[0, 1].legend(loc="best", fontsize="small")
    fig.tight_layout()
    save_figure(fig, out_png, out_pdf)


def plot_progress(
    progress_dir: str | os.PathLike, out_png: str | os.PathLike, max_panels: int = 8
) -> None:
    """Progress grids at up to `max_panels` epochs spread evenly over the training, first and
    last included, each titled with its epoch.

    Parameters
    ----------
    progress_dir : path-like
        Folder of ``epoch_XXXXX.png`` grids (uint8) written during training.
    out_png : path-like
        Figure file.
    """
    files = sorted(Path(progress_dir).glob("epoch_*.png"))
    if not files:
        raise DataError(f"{progress_dir}: no epoch_*.png progress grids")
    if max_panels < 1:
        raise DataError(f"plot_progress: max_panels must be >= 1, got {max_panels}")
    picks = np.unique(
        np.linspace(0, len(files) - 1, min(max_panels, len(files))).round().astype(int)
    )
    chosen = [files[i] for i in picks]
    ncols = min(4, len(chosen))
    nrows = math.ceil(len(chosen) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3 * ncols, 3.2 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, path in zip(axes.flat, chosen, strict=False):
        ax.imshow(read_png(path), cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"epoch {int(_EPOCH_PNG.search(path.name).group(1))}")
    fig.tight_layout()
    save_figure(fig, out_png)

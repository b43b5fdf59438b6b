"""Super-resolution figure: PSNR and SSIM per scan, preset and scale, bicubic included."""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from tomosynth.plots import save_figure


def plot_sr_metrics(table: pd.DataFrame, png: str | os.PathLike, pdf: str | os.PathLike) -> None:
    """Bar plots of PSNR and SSIM (mean +- std) per scan, preset and scale, bicubic included."""
    labels = [f"{r.scan}\n{r.preset} x{r.scale}" for r in table.itertuples()]
    colors = ["0.6" if m == "bicubic" else "tab:blue" for m in table["method"]]
    x = np.arange(len(table))
    fig, axes = plt.subplots(
        1, 2, figsize=(max(6.0, 0.8 * len(table) + 2), 3.6), constrained_layout=True
    )
    for ax, metric, unit in ((axes[0], "psnr", "PSNR (dB)"), (axes[1], "ssim", "SSIM")):
        ax.bar(x, table[f"{metric}_mean"], yerr=table[f"{metric}_std"], color=colors, capsize=3)
        ax.set_xticks(x, labels, fontsize=7)
        ax.set_ylabel(unit)
        if metric == "psnr" and len(table):
            low = float((table["psnr_mean"] - table["psnr_std"]).min())
            ax.set_ylim(max(0.0, low - 2.0), None)
    axes[0].set_title("super-resolution vs HR (grey: bicubic)")
    save_figure(fig, png, pdf)

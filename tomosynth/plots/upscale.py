"""Figures of the upscaling stage: SRCNN training curves, and bicubic vs SRCNN vs real with
an enlarged crop (as the thesis' figure 9)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Rectangle

from tomosynth.errors import DataError
from tomosynth.io import list_pngs, read_png_stack
from tomosynth.metrics.image import psnr, ssim
from tomosynth.plots import save_figure


def srcnn_training_figure(logs: Mapping[str, str | os.PathLike]) -> plt.Figure:
    """Train/validation MSE, validation PSNR (dB) and SSIM per epoch, one colour per scan.

    Dashed lines are the bicubic baseline on the same validation slices; a dot marks the
    best epoch (highest PSNR, kept as ``best.pt``).

    Parameters
    ----------
    logs : scan name -> ``log.csv`` written by :func:`tomosynth.train.srcnn.train_srcnn`
    """
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for i, (scan, path) in enumerate(sorted(logs.items())):
        df = pd.read_csv(path)
        if df.empty:
            raise DataError(f"{path}: the SRCNN log has no epochs")
        colour = f"C{i}"
        best = int(df["val_psnr"].idxmax())
        axes[0].plot(df["epoch"], df["train_mse"], color=colour, alpha=0.5, label=f"{scan} train")
        axes[0].plot(df["epoch"], df["val_mse"], color=colour, label=f"{scan} val")
        axes[0].axhline(df["bicubic_mse"].iloc[0], color=colour, ls="--", lw=0.8)
        for ax, key in ((axes[1], "psnr"), (axes[2], "ssim")):
            ax.plot(df["epoch"], df[f"val_{key}"], color=colour, label=f"{scan} SRCNN")
            ax.axhline(df[f"bicubic_{key}"].iloc[0], color=colour, ls="--", lw=0.8,
                       label=f"{scan} bicubic")  # fmt: skip
            ax.plot(df["epoch"].iloc[best], df[f"val_{key}"].iloc[best], "o", color=colour)
    axes[0].set_yscale("log")
    for ax, title in zip(
        axes, ("MSE ([0, 1] images)", "validation PSNR (dB)", "validation SSIM"), strict=True
    ):
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_srcnn_training(
    logs: Mapping[str, str | os.PathLike], png: str | os.PathLike, pdf: str | os.PathLike
) -> None:
    """Write :func:`srcnn_training_figure` as PNG and PDF (atomically)."""
    save_figure(srcnn_training_figure(logs), png, pdf)


def srcnn_comparison_figure(
    rows: Mapping[str, Mapping[str, np.ndarray]],
    crop: Sequence[float] = (0.375, 0.375, 0.25),
    generated: Mapping[str, Mapping[str, np.ndarray]] | None = None,
) -> plt.Figure:
    """Bicubic vs SRCNN vs real, whole slices above and the red region enlarged below.

    Parameters
    ----------
    rows : scan name -> {"bicubic", "srcnn", "real"} uint8 (H, W) images of one real slice
        (PSNR/SSIM against the real slice are printed in the titles)
    crop : (top, left, side) of the enlarged region as fractions of the image size
    generated : optional scan name -> {"bicubic", "srcnn"} of one upscaled generated sample,
        drawn the same way below the real slice (as the thesis' figure 9; no reference)
    """
    generated = generated or {}
    blocks = []
    for scan in sorted(rows):
        blocks.append((f"{scan} (held-out slice)", rows[scan]))
        if scan in generated:
            blocks.append((f"{scan} (generated)", generated[scan]))
    fig, axes = plt.subplots(2 * len(blocks), 3, figsize=(9.6, 6.6 * len(blocks)), squeeze=False)
    titles = {"bicubic": "bicubic", "srcnn": "SRCNN", "real": "real"}
    for b, (name, images) in enumerate(blocks):
        h, w = images["bicubic"].shape
        side = max(2, int(round(crop[2] * min(h, w))))
        y0 = min(int(round(crop[0] * h)), h - side)
        x0 = min(int(round(crop[1] * w)), w - side)
        real = images.get("real")
        for c, key in enumerate(("bicubic", "srcnn", "real")):
            top, bottom = axes[2 * b, c], axes[2 * b + 1, c]
            if key not in images:
                top.axis("off")
                bottom.axis("off")
                continue
            img = images[key]
            label = f"{name}: {titles[key]}"
            if real is not None and key != "real":
                label += f"\nPSNR {psnr(real, img, 255):.2f} dB, SSIM {ssim(real, img, 255):.3f}"
            top.imshow(img, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            top.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), side, side, fill=False, ec="red", lw=1.2))
            top.set_title(label, fontsize=9)
            bottom.imshow(img[y0 : y0 + side, x0 : x0 + side], cmap="gray", vmin=0, vmax=255,
                          interpolation="nearest")  # fmt: skip
            bottom.set_title(f"enlarged ({side} x {side} px)", fontsize=9)
            for ax in (top, bottom):
                ax.set_xticks([])
                ax.set_yticks([])
            for spine in bottom.spines.values():
                spine.set_edgecolor("red")
    fig.tight_layout()
    return fig


def generated_images(
    bicubic_dir: str | os.PathLike, srcnn_dir: str | os.PathLike
) -> dict[str, np.ndarray]:
    """The first (sorted) upscaled generated sample of the bicubic and SRCNN folders."""

    name = [p.name for p in list_pngs(bicubic_dir)[:1]]
    return {
        "bicubic": read_png_stack(bicubic_dir, name)[0],
        "srcnn": read_png_stack(srcnn_dir, name)[0],
    }


def plot_srcnn_comparison(
    rows: Mapping[str, Mapping[str, np.ndarray]],
    png: str | os.PathLike,
    pdf: str | os.PathLike,
    crop: Sequence[float] = (0.375, 0.375, 0.25),
    generated: Mapping[str, Mapping[str, np.ndarray]] | None = None,
) -> None:
    """Write :func:`srcnn_comparison_figure` as PNG and PDF (atomically)."""
    save_figure(srcnn_comparison_figure(rows, crop, generated), png, pdf)

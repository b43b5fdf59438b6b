"""Figures of the data stage: a slice at every PNG size with an enlarged crop, and the clip bounds."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

from tomosynth.io import read_json, read_png
from tomosynth.plots import save_figure
from tomosynth.preprocess import read_slice


def plot_scan_overview(
    png_dirs: Mapping[int, str | os.PathLike],
    recon_dir: str | os.PathLike,
    bounds_json: str | os.PathLike,
    out_png: str | os.PathLike,
    out_pdf: str | os.PathLike | None = None,
    crop_fraction: float = 0.25,
) -> str:
    """One middle slice at every PNG size (true relative scale) with the same region enlarged
    (as the thesis' figure 3), and the float histogram of that slice with the clip bounds.

    Returns the slice name shown.
    """
    sizes = sorted(png_dirs)
    names = sorted(p.name for p in Path(png_dirs[sizes[0]]).glob("slice_*.png"))
    name = names[len(names) // 2]
    bounds = read_json(bounds_json)
    raw = read_slice(Path(recon_dir) / name.replace(".png", ".tiff"))

    fig, axes = plt.subplots(2, len(sizes) + 1, figsize=(3.2 * (len(sizes) + 1), 6.4))
    for col, size in enumerate(sizes):
        img = read_png(Path(png_dirs[size]) / name)
        c = max(2, int(size * crop_fraction))
        y0 = x0 = size // 2 - c // 2
        ax = axes[0, col]
        ax.imshow(img, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), c, c, fill=False, ec="red", lw=1.2))
        ax.set_title(f"{size} x {size} px")
        ax.axis("off")
        ax = axes[1, col]
        ax.imshow(
            img[y0 : y0 + c, x0 : x0 + c], cmap="gray", vmin=0, vmax=255, interpolation="nearest"
        )
        ax.set_title(f"enlarged crop ({c} px)")
        ax.axis("off")
    ax = axes[0, -1]
    ax.hist(raw.ravel(), bins=128, color="0.4")
    for v, label in ((bounds["low"], "low"), (bounds["high"], "high")):
        ax.axvline(v, color="red", ls="--", lw=1)
        ax.text(v, ax.get_ylim()[1] * 0.95, f" {label}", color="red", va="top")
    p_lo, p_hi = bounds["percentiles"]
    ax.set_title(
        f"{name}: float values\nclip = P{p_lo:g} of minima, P{p_hi:g} of maxima", fontsize=9
    )
    ax.set_xlabel("reconstructed attenuation (1/pixel)")
    axes[1, -1].axis("off")
    axes[1, -1].text(
        0.0,
        0.9,
        f"{bounds['n_slices']} slices kept\n(first {bounds['skip_slices']} skipped)\n"
        f"low = {bounds['low']:.4g}\nhigh = {bounds['high']:.4g}",
        va="top",
        family="monospace",
    )
    save_figure(fig, out_png, out_pdf)
    return name

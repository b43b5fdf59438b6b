"""Real-vs-generated sample grid: a few images of every set side by side, with enlarged crops."""

from __future__ import annotations

import os
from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from tomosynth.io import list_pngs, read_png_stack
from tomosynth.plots import save_figure


def pick_images(folder: str | os.PathLike, n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """`n` seeded random PNG names of a folder (sorted listing first) and their images."""
    names = [p.name for p in list_pngs(folder)]
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(names, size=min(n, len(names)), replace=False).tolist())
    return chosen, read_png_stack(folder, chosen)


def plot_sample_grid(
    sets: Mapping[str, str | os.PathLike],
    out_png: str | os.PathLike,
    out_pdf: str | os.PathLike | None = None,
    *,
    n: int = 4,
    seed: int = 0,
    crop_fraction: float = 0.25,
) -> dict[str, list[str]]:
    """One row per image set (label -> PNG folder): `n` images, then the centre crop of
    each enlarged, so that real and generated textures can be compared at full detail.

    Returns the file names shown per set (the same seed picks the same names).
    """
    shown: dict[str, list[str]] = {}
    fig, axes = plt.subplots(
        len(sets), 2 * n, figsize=(1.6 * 2 * n, 1.75 * len(sets)), squeeze=False
    )
    for row, (label, folder) in enumerate(sets.items()):
        names, imgs = pick_images(folder, n, seed)
        shown[label] = names
        for col in range(n):
            ax_full, ax_crop = axes[row, col], axes[row, n + col]
            for ax in (ax_full, ax_crop):
                ax.set_xticks([])
                ax.set_yticks([])
            if col >= len(imgs):
                ax_full.axis("off")
                ax_crop.axis("off")
                continue
            img = imgs[col]
            h, w = img.shape
            c = max(4, int(min(h, w) * crop_fraction))
            y0, x0 = (h - c) // 2, (w - c) // 2
            ax_full.imshow(img, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            ax_full.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), c, c, fill=False, ec="red", lw=0.8))
            ax_crop.imshow(
                img[y0 : y0 + c, x0 : x0 + c],
                cmap="gray",
                vmin=0,
                vmax=255,
                interpolation="nearest",
            )
        axes[row, 0].set_ylabel(label, fontsize=8)
    axes[0, 0].set_title("samples", fontsize=9, loc="left")
    axes[0, n].set_title("enlarged centre crops", fontsize=9, loc="left")
    fig.tight_layout()
    save_figure(fig, out_png, out_pdf)
    return shown

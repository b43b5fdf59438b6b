"""Morphology figure: S2 curves and pore/grain size distributions of real, generated and
upscaled image sets, overlaid."""

from __future__ import annotations

import os

import matplotlib.pyplot as plt

from tomosynth.plots import save_figure

STYLES = {"real": "-", "generated": "--", "upscaled": ":"}


def morphology_figure(table, s2, sizes, title: str = "") -> plt.Figure:
    """Three panels: mean S2(r) with a +-1 std band per set; pore and grain size
    distributions inside the sample region (fraction of phase pixels per 1-px
    local-thickness bin; the whole image when the tables have no ``region`` column).
    Legends give each set's porosity (whole image and in the sample) and its distance to
    the real set of the same image size."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    info = table.set_index("set")
    in_sample = "region" in sizes.columns
    suffix = "_sample" if in_sample and "pore_w1_sample" in table.columns else ""
    if in_sample:
        sizes = sizes[sizes["region"] == "sample"]
    for name in table["set"]:
        kind = info.loc[name, "kind"]
        ls = STYLES.get(kind, "-.")
        d = s2[s2["set"] == name]
        label = f"{name} (porosity {info.loc[name, 'porosity']:.3f}"
        if "porosity_sample" in table.columns:
            label += f", in sample {info.loc[name, 'porosity_sample']:.3f}"
        if kind != "real" and info.loc[name, "s2_rmse"] == info.loc[name, "s2_rmse"]:
            label += f", S2 RMSE {info.loc[name, 's2_rmse']:.4f}"
        (line,) = axes[0].plot(d["r"], d["s2_mean"], ls=ls, label=label + ")")
        axes[0].fill_between(
            d["r"],
            d["s2_mean"] - d["s2_std"],
            d["s2_mean"] + d["s2_std"],
            color=line.get_color(),
            alpha=0.15,
        )
        for ax, phase in ((axes[1], "pore"), (axes[2], "grain")):
            h = sizes[(sizes["set"] == name) & (sizes["phase"] == phase)]
            lab = name
            w1 = info.loc[name, f"{phase}_w1{suffix}"]
            if kind != "real" and w1 == w1:
                lab += f" (W1 {w1:.2f} px, KS {info.loc[name, f'{phase}_ks{suffix}']:.3f})"
            ax.step(h["size"], h["fraction"], where="mid", ls=ls, color=line.get_color(), label=lab)
    axes[0].set_xlabel("r [px]")
    axes[0].set_ylabel("S2(r) of the bright phase")
    where = " in the sample" if in_sample else ""
    axes[1].set_xlabel(f"pore size (local thickness){where} [px]; last bin: all larger")
    axes[2].set_xlabel(f"grain size (local thickness){where} [px]; last bin: all larger")
    for ax in axes[1:]:
        ax.set_ylabel("fraction of phase pixels")
    for ax in axes:
        ax.legend(fontsize=6)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_morphology(
    table_csv: str | os.PathLike,
    s2_csv: str | os.PathLike,
    sizes_csv: str | os.PathLike,
    png: str | os.PathLike,
    pdf: str | os.PathLike,
    title: str = "",
) -> None:
    """Write :func:`morphology_figure` of the morphology tables as PNG and PDF."""
    import pandas as pd

    fig = morphology_figure(
        pd.read_csv(table_csv), pd.read_csv(s2_csv), pd.read_csv(sizes_csv), title
    )
    save_figure(fig, png, pdf)

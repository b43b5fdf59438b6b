"""Bone figures: metric scatter of SR and LR against HR with Pearson r and p (the report's
figure 16, per ROI), Bland-Altman agreement of SR and LR with HR, and the 3D-consistency
figure of SR stacks."""

from __future__ import annotations

import math
import os

import matplotlib.pyplot as plt
import numpy as np

from tomosynth.metrics.bone import METRICS
from tomosynth.plots import save_figure

#: Metrics drawn by default: the report's trabecular set, both conventions, and BS/BV.
DEFAULT_METRICS = ["BV/TV", "BS/BV", "Tb.Th", "Tb.Th.pm", "Tb.Sp", "Tb.Sp.pm", "Tb.N", "Tb.Pf"]
COLOURS = {"sr": "tab:blue", "lr": "tab:orange"}
LABELS = {"sr": "SR", "lr": "LR (bicubic)", "hr": "HR"}


def bone_figure(table, corr, metrics: list[str] | None = None, title: str = "") -> plt.Figure:
    """Scatter of each metric per ROI: SR and LR (y) against HR (x), identity line, and the
    Pearson r, p and n of the correlations table in the legend.

    With a ``region`` column, the points are the ``all`` ROIs, and the ``trabecular`` ones
    are ringed, with their own r, p and n in the legend.
    """
    metrics = [m for m in (metrics or DEFAULT_METRICS) if m in table.columns]
    ncol = min(4, len(metrics))
    nrow = math.ceil(len(metrics) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.4 * ncol, 3.2 * nrow), squeeze=False)
    if "region" not in table.columns:
        table = table.assign(region="all")
    if "region" not in corr.columns:
        corr = corr.assign(region="all")
    regions = [g for g in ("all", "trabecular") if g in set(table["region"])]
    for ax, name in zip(axes.ravel(), metrics, strict=False):
        unit, convention = METRICS[name]
        for region in regions:
            part = table[table["region"] == region]
            hr = part[part["kind"] == "hr"].set_index("roi")
            for kind in ("sr", "lr"):
                sub = part[part["kind"] == kind].set_index("roi").reindex(hr.index)
                if sub[name].isna().all():
                    continue
                row = corr[
                    (corr["kind"] == kind) & (corr["metric"] == name) & (corr["region"] == region)
                ]
                label = LABELS[kind] + (", trabecular" if region == "trabecular" else "")
                if len(row):
                    r, p, n = row.iloc[0][["r", "p", "n"]]
                    label += f": r={r:.3f}, p={p:.2g} (n={int(n)})"
                style = (
                    {"s": 10, "alpha": 0.7, "color": COLOURS[kind]}
                    if region == "all"
                    else {"s": 30, "facecolors": "none", "edgecolors": COLOURS[kind], "lw": 0.8}
                )
                ax.scatter(hr[name], sub[name], label=label, **style)
        vals = np.concatenate([table[name].to_numpy(float)])
        vals = vals[np.isfinite(vals)]
        if vals.size:
            lo, hi = float(vals.min()), float(vals.max())
            ax.plot([lo, hi], [lo, hi], color="0.5", lw=0.8, ls="--")
        ax.set_title(f"{name} [{unit}]", fontsize=9)
        ax.set_xlabel(f"HR {name}", fontsize=8)
        ax.set_ylabel(f"SR / LR {name}", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, loc="upper left", title=convention, title_fontsize=6)
    for ax in axes.ravel()[len(metrics) :]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def bland_altman_figure(
    table, corr, metrics: list[str] | None = None, title: str = "", region: str | None = None
) -> plt.Figure:
    """Bland-Altman plots per metric: for SR and LR, the ROI's mean of (kind, HR) against
    the difference kind - HR, with the mean difference (bias) as a solid line and the 95 %
    limits of agreement (mean +- 1.96 sd, from the correlations table) dashed; the legend
    gives them with the median relative error and the MAE.

    `region` picks the ROIs (default ``trabecular`` when the table has it, else ``all``).
    """
    metrics = [m for m in (metrics or DEFAULT_METRICS) if m in table.columns]
    if "region" not in table.columns:
        table = table.assign(region="all")
    if "region" not in corr.columns:
        corr = corr.assign(region="all")
    if region is None:
        region = "trabecular" if "trabecular" in set(table["region"]) else "all"
    part = table[table["region"] == region]
    ncol = min(4, max(1, len(metrics)))
    nrow = max(1, math.ceil(len(metrics) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 3.2 * nrow), squeeze=False)
    hr = part[part["kind"] == "hr"].set_index("roi")
    for ax, name in zip(axes.ravel(), metrics, strict=False):
        unit = METRICS[name][0]
        for kind in ("sr", "lr"):
            sub = part[part["kind"] == kind].set_index("roi").reindex(hr.index)
            x, ref = sub[name].to_numpy(float), hr[name].to_numpy(float)
            ok = np.isfinite(x) & np.isfinite(ref)
            if not ok.any():
                continue
            c = COLOURS[kind]
            ax.scatter((x[ok] + ref[ok]) / 2.0, x[ok] - ref[ok], s=10, alpha=0.7, color=c)
            row = corr[
                (corr["kind"] == kind) & (corr["metric"] == name) & (corr["region"] == region)
            ]
            if not len(row) or "mean_diff" not in row.columns:
                continue
            r = row.iloc[0]
            label = (
                f"{LABELS[kind]}: bias {r['mean_diff']:.3g}, LoA [{r['loa_low']:.3g}, "
                f"{r['loa_high']:.3g}]; median rel. err. {100 * r['bias']:+.0f} %, "
                f"MAE {r['mae']:.3g}"
            )
            ax.axhline(r["mean_diff"], color=c, lw=1.2, label=label)
            for lim in (r["loa_low"], r["loa_high"]):
                if np.isfinite(lim):
                    ax.axhline(lim, color=c, lw=0.9, ls="--")
        ax.axhline(0.0, color="0.6", lw=0.6)
        ax.set_title(f"{name} [{unit}], {region} ROIs", fontsize=9)
        ax.set_xlabel(f"mean of method and HR [{unit}]", fontsize=8)
        ax.set_ylabel(f"method - HR [{unit}]", fontsize=8)
        ax.tick_params(labelsize=7)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=5.5, loc="upper left")
    for ax in axes.ravel()[len(metrics) :]:
        ax.axis("off")
    fig.suptitle(
        (title + ": " if title else "") + "Bland-Altman (solid: bias, dashed: 95 % limits)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def consistency_figure(cons, title: str = "") -> plt.Figure:
    """Left: S2 along the slice axis (solid) and in-plane (dashed) per stack; right:
    SSIM of consecutive slices per stack, with its mean in the legend."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    colours = {"hr": "black", **COLOURS}
    for kind in [k for k in ("hr", "sr", "lr") if k in set(cons["kind"])]:
        c = colours[kind]
        sub = cons[cons["kind"] == kind]
        for q, ls in (("s2_slice", "-"), ("s2_plane", "--")):
            s = sub[sub["quantity"] == q]
            where = "slice axis" if q == "s2_slice" else "in-plane"
            a1.plot(s["lag"], s["value"], ls=ls, color=c, label=f"{LABELS[kind]}, {where}")
        s = sub[sub["quantity"] == "ssim_next"]
        if len(s):
            a2.plot(
                s["lag"],
                s["value"],
                color=c,
                label=f"{LABELS[kind]} (mean {s['value'].mean():.3f})",
            )
    a1.set_xlabel("lag r [voxels]")
    a1.set_ylabel("S2(r) of bone")
    a1.legend(fontsize=7)
    a2.set_xlabel("slice i (pair i, i+1)")
    a2.set_ylabel("SSIM of consecutive slices")
    a2.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _plot_table_pair(figure, table_csv, corr_csv, png, pdf, metrics, title) -> None:
    import pandas as pd

    save_figure(figure(pd.read_csv(table_csv), pd.read_csv(corr_csv), metrics, title), png, pdf)


def plot_bone(
    table_csv: str | os.PathLike,
    corr_csv: str | os.PathLike,
    png: str | os.PathLike,
    pdf: str | os.PathLike,
    metrics: list[str] | None = None,
    title: str = "",
) -> None:
    """Write :func:`bone_figure` of a bone table and its correlations as PNG and PDF."""
    _plot_table_pair(bone_figure, table_csv, corr_csv, png, pdf, metrics, title)


def plot_consistency(
    cons_csv: str | os.PathLike, png: str | os.PathLike, pdf: str | os.PathLike, title: str = ""
) -> None:
    """Write :func:`consistency_figure` of a consistency table as PNG and PDF."""
    import pandas as pd

    save_figure(consistency_figure(pd.read_csv(cons_csv), title), png, pdf)


def plot_bland_altman(
    table_csv: str | os.PathLike,
    corr_csv: str | os.PathLike,
    png: str | os.PathLike,
    pdf: str | os.PathLike,
    metrics: list[str] | None = None,
    title: str = "",
) -> None:
    """Write :func:`bland_altman_figure` of a bone table and its correlations as PNG and PDF."""
    _plot_table_pair(bland_altman_figure, table_csv, corr_csv, png, pdf, metrics, title)

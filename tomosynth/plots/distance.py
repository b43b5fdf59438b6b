"""Bar plot of distribution distances (thesis figure 11 style), with CIs and N."""

from __future__ import annotations

import os

import numpy as np

from tomosynth.plots import save_figure

#: Columns of a drawn bar, in `distance_figure`'s record.
DRAWN_KEYS = (
    "set",
    "reference",
    "label",
    "value",
    "ci_low",
    "ci_high",
    "n_set",
    "n_ref",
    "baseline_same_n",
)


def distance_figure(table, ci_level: float = 0.95):
    """Figure with one panel per metric: a bar per (set, reference), real-split bar first.

    Parameters
    ----------
    table : DataFrame from :func:`tomosynth.metrics.distance.distance_table`.
    ci_level : confidence level of the table's CIs (for the title).

    Returns
    -------
    (figure, drawn): `drawn` maps metric -> list of {set, reference, label, value, ci_low,
    ci_high, n_set, n_ref, baseline_same_n} in bar order (bar heights are ``value``).
    Error bars span [ci_low, ci_high]; a black tick marks the real-vs-real baseline at
    the set's N; the y label names the metric; tick labels give N (set / reference).
    """
    import matplotlib.pyplot as plt  # the Agg backend is set by tomosynth.plots

    metrics = list(dict.fromkeys(table["metric"]))
    n_bars = max(len(table[table["metric"] == m]) for m in metrics)
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(max(6.0, 1.1 * n_bars + 1.5) * len(metrics), 4.8), squeeze=False
    )
    drawn: dict[str, list[dict]] = {}
    for ax, metric in zip(axes[0], metrics, strict=True):
        sub = table[table["metric"] == metric]
        sub = sub.assign(_real=~sub["set"].str.startswith("real_split")).sort_values(
            ["_real"], kind="stable"
        )
        _distance_panel(ax, sub, metric, ci_level)
        drawn[metric] = [
            {k: (r[k].item() if hasattr(r[k], "item") else r[k]) for k in DRAWN_KEYS}
            for _, r in sub.iterrows()
        ]
    fig.tight_layout()
    return fig, drawn


def _bar_labels(sub, colours: dict[str, str]) -> tuple[list[str], list[str]]:
    """Tick label (set, reference, N) and colour of every bar of a panel."""
    labels, colors = [], []
    for _, r in sub.iterrows():
        if r["_real"]:
            labels.append(f"{r['label']}\nvs {r['reference']}\nN={r['n_set']} / {r['n_ref']}")
            colors.append(colours.get(r["reference"], "tab:purple"))
        else:
            labels.append(f"real split\n(two halves)\nN={r['n_set']} / {r['n_ref']}")
            colors.append("tab:gray")
    return labels, colors


def _distance_panel(ax, sub, metric: str, ci_level: float) -> None:
    """One metric's bars (real split first), CIs, real-vs-real ticks, values and legend."""
    from matplotlib.patches import Patch

    refs = list(dict.fromkeys(sub.loc[sub["_real"], "reference"]))
    colours = {r: c for r, c in zip(refs, ["tab:blue", "tab:orange", "tab:green"], strict=False)}
    values = sub["value"].to_numpy(float)
    lo = values - sub["ci_low"].to_numpy(float)
    hi = sub["ci_high"].to_numpy(float) - values
    yerr = np.nan_to_num(np.vstack([lo, hi]), nan=0.0).clip(min=0)
    labels, colors = _bar_labels(sub, colours)
    x = np.arange(len(sub))
    ax.bar(x, values, yerr=yerr, capsize=4, color=colors, label=None, gid="distance-bars")
    base = sub["baseline_same_n"].to_numpy(float)
    ax.plot(x, base, "k_", markersize=18, mew=2, label="real vs real at the set's N")
    handles = [Patch(color=colours[r], label=f"vs {r} split") for r in refs]
    handles += [Patch(color="tab:gray", label="real split (two halves)")]
    handles += ax.get_legend_handles_labels()[0]
    for xi, v in zip(x, values, strict=True):
        ax.annotate(
            f"{v:.3g}",
            (xi, v),
            ha="center",
            va="bottom",
            fontsize=8,
            xytext=(0, 2),
            textcoords="offset points",
        )
    ax.set_xticks(x, labels, fontsize=7)
    positive = values[np.isfinite(values) & (values > 0)]
    log_scale = positive.size > 1 and positive.max() > 100 * positive.min()
    if log_scale:  # scores spanning orders of magnitude: keep the baseline visible
        ax.set_yscale("log")
    ax.set_ylabel(f"{metric}{', log scale' if log_scale else ''}\nlower = closer to real")
    ax.set_title(f"{sub['scan'].iloc[0]}: {metric}, {100 * ci_level:g}% bootstrap CI")
    ax.legend(handles=handles, fontsize=7, loc="upper left")


def plot_distance(
    table, png: str | os.PathLike, pdf: str | os.PathLike, ci_level: float = 0.95
) -> dict:
    """Write :func:`distance_figure` as PNG and PDF (atomically); returns its `drawn` dict."""

    fig, drawn = distance_figure(table, ci_level)
    save_figure(fig, png, pdf)
    return drawn


def degradation_figure(table):
    """Distances of degraded real images vs degradation level (Heusel et al. 2017).

    Parameters
    ----------
    table : DataFrame from :func:`tomosynth.metrics.degrade.degradation_table`.

    Returns
    -------
    (figure, drawn): one panel per metric (FRD v1 first, then the secondary metric), then
    the first metric's log KID; `drawn` maps metric -> kind -> {"level", "amount", "value",
    "log_kid"} in plotted order (the y values are the table's ``value``, a log distance).
    Level 0 is the real-vs-real distance of the two halves (the same point for every kind).
    """
    import matplotlib.pyplot as plt  # the Agg backend is set by tomosynth.plots

    metrics = list(dict.fromkeys(table["metric"]))
    fig, axes = plt.subplots(1, len(metrics) + 1, figsize=(6.0 * (len(metrics) + 1), 4.5))
    axes = list(np.atleast_1d(axes))
    drawn: dict[str, dict[str, dict[str, list]]] = {}
    for ax, metric in zip(axes, metrics, strict=False):
        block = table[table["metric"] == metric]
        drawn[metric] = {}
        for kind, sub in block.groupby("kind", sort=False):
            sub = sub.sort_values("level")
            amounts = ", ".join(f"{a:g}" for a in sub["amount"].iloc[1:])
            label = f"{kind}: {sub['unit'].iloc[0]} {amounts}"
            (line,) = ax.plot(sub["level"], sub["value"], "o-", label=label)
            drawn[metric][str(kind)] = {
                "level": [int(v) for v in sub["level"]],
                "amount": [float(v) for v in sub["amount"]],
                "value": [float(v) for v in sub["value"]],
                "log_kid": [float(v) for v in sub["log_kid"]],
            }
            if metric == metrics[0]:
                axes[-1].plot(
                    sub["level"], sub["log_kid"], "o-", color=line.get_color(), label=label
                )
        first = block.iloc[0]
        ax.set_ylabel(f"{metric}\nlower = closer to real")
        ax.set_title(
            f"Degraded vs real slices (N = {first['n_set']} / {first['n_ref']})", fontsize=10
        )
        ax.legend(fontsize=7)
    axes[-1].set_ylabel(
        f"log KID = ln(1 + max(KID, 0)), {metrics[0]} space\nlower = closer to real"
    )
    axes[-1].set_title("KID in the same z-scored space (0: not distinguishable)", fontsize=10)
    for a in axes:
        a.set_xticks(sorted(set(int(v) for v in table["level"])))
        a.set_xlabel("degradation level (0 = undisturbed real images)")
        a.grid(alpha=0.3)
    fig.tight_layout()
    return fig, drawn


def plot_degradation(table, png: str | os.PathLike, pdf: str | os.PathLike) -> dict:
    """Write :func:`degradation_figure` as PNG and PDF (atomically); returns its `drawn`."""
    fig, drawn = degradation_figure(table)
    save_figure(fig, png, pdf)
    return drawn

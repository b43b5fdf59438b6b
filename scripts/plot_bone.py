"""Rule plot_bone: bone metrics SR vs HR and LR vs HR with r and p (the report's figure 16,
per ROI), their Bland-Altman agreement, and the 3D-consistency figure."""

import _bootstrap  # noqa: F401

from tomosynth.plots.bone import plot_bland_altman, plot_bone, plot_consistency
from tomosynth.provenance import figure_provenance

title = snakemake.params.title
out = snakemake.output
for draw, png, pdf in (
    (plot_bone, out.png, out.pdf),
    (plot_bland_altman, out.bland_altman_png, out.bland_altman_pdf),
):
    draw(
        snakemake.input.table,
        snakemake.input.correlations,
        png,
        pdf,
        metrics=snakemake.params.metrics,
        title=title,
    )
plot_consistency(
    snakemake.input.consistency,
    snakemake.output.consistency_png,
    snakemake.output.consistency_pdf,
    title=title,
)
for figure in (
    snakemake.output.png,
    snakemake.output.bland_altman_png,
    snakemake.output.consistency_png,
):
    figure_provenance(figure, snakemake.input, scans=[snakemake.wildcards.scan])

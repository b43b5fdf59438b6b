"""Rule plot_morphology: S2 curves and size distributions of the image sets, overlaid."""

import _bootstrap  # noqa: F401

from tomosynth.plots.morphology import plot_morphology
from tomosynth.provenance import figure_provenance

plot_morphology(
    snakemake.input.table,
    snakemake.input.s2,
    snakemake.input.sizes,
    snakemake.output.png,
    snakemake.output.pdf,
    title=snakemake.params.title,
)
figure_provenance(snakemake.output.png, snakemake.input, scans=[snakemake.wildcards.scan])

"""Rule plot_scan_overview: one slice at every size with an enlarged crop, and the clip bounds."""

import _bootstrap  # noqa: F401

from tomosynth.plots.data import plot_scan_overview
from tomosynth.provenance import figure_provenance

plot_scan_overview(
    dict(zip(snakemake.params.sizes, snakemake.input.png, strict=True)),
    snakemake.input.slices,
    snakemake.input.bounds,
    snakemake.output.png,
    snakemake.output.pdf,
)
figure_provenance(snakemake.output.png, snakemake.input, scans=[snakemake.wildcards.scan])

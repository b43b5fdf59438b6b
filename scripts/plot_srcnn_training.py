"""Rule plot_srcnn_training: SRCNN training curves over the scans."""

import _bootstrap  # noqa: F401

from tomosynth.plots.upscale import plot_srcnn_training
from tomosynth.provenance import figure_provenance

p = snakemake.params
plot_srcnn_training(
    dict(zip(p.scans, snakemake.input.logs, strict=True)),
    snakemake.output.png,
    snakemake.output.pdf,
)
figure_provenance(snakemake.output.png, snakemake.input, scans=p.scans)

"""Rule plot_gan_losses: generator/critic losses vs epoch and wall-clock for every size."""

import _bootstrap  # noqa: F401

from tomosynth.plots.training import plot_gan_losses
from tomosynth.provenance import figure_provenance

plot_gan_losses(
    dict(zip(snakemake.params.labels, snakemake.input.logs, strict=True)),
    snakemake.output.png,
    snakemake.output.pdf,
)
figure_provenance(
    snakemake.output.png,
    snakemake.input,
    scans=[snakemake.wildcards.scan],
    seed=snakemake.params.seed,
)

"""Rule plot_gan_progress: the fixed-latent progress grids over the epochs of one training."""

import _bootstrap  # noqa: F401

from tomosynth.plots.training import plot_progress
from tomosynth.provenance import figure_provenance

plot_progress(snakemake.input.progress, snakemake.output.png)
figure_provenance(
    snakemake.output.png,
    snakemake.input,
    scans=[snakemake.wildcards.scan],
    seed=snakemake.params.seed,
)

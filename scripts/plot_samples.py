"""Rule plot_samples: real vs generated/upscaled images of a scan, with enlarged crops."""

import _bootstrap  # noqa: F401

from tomosynth.plots.samples import plot_sample_grid
from tomosynth.provenance import figure_provenance

plot_sample_grid(
    dict(zip(snakemake.params.labels, snakemake.input, strict=True)),
    snakemake.output.png,
    snakemake.output.pdf,
    n=snakemake.params.n,
    seed=snakemake.params.seed,
)
figure_provenance(
    snakemake.output.png,
    snakemake.input,
    scans=[snakemake.wildcards.scan],
    pick_seed=snakemake.params.seed,
)

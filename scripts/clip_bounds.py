"""Rule clip_bounds: global intensity clip bounds from per-slice extrema (thesis 5.1)."""

import _bootstrap  # noqa: F401

from tomosynth.preprocess import compute_bounds

compute_bounds(
    snakemake.input.slices,
    snakemake.output.bounds,
    skip_slices=snakemake.params.skip_slices,
    percentiles=snakemake.params.percentiles,
    threads=snakemake.threads,
)

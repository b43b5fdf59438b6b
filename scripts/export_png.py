"""Rule export_png: clip, scale to 0..255 and area-downscale the kept slices to PNGs."""

import _bootstrap  # noqa: F401

from tomosynth.preprocess import export_png

export_png(
    snakemake.input.slices,
    snakemake.input.bounds,
    snakemake.output.png,
    size=int(snakemake.wildcards.size),
    skip_slices=snakemake.params.skip_slices,
    threads=snakemake.threads,
)

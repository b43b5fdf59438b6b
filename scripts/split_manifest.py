"""Rule split_manifest: seeded train/validation/test split of the kept slices."""

import _bootstrap  # noqa: F401

from tomosynth.preprocess import write_split

write_split(
    snakemake.input.slices,
    snakemake.output.split,
    scan=snakemake.wildcards.scan,
    skip_slices=snakemake.params.skip_slices,
    fractions=snakemake.params.fractions,
    seed=snakemake.params.seed,
)

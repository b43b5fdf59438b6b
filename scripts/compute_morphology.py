"""Rule compute_morphology: porosity, S2, Minkowski functionals and size distributions of
real, generated and upscaled image sets, each compared with the real set (issue 8 item 2)."""

import _bootstrap  # noqa: F401

from tomosynth.metrics.morphology import evaluate_image_sets

p = snakemake.params.morphology
# params.sets: input key -> [set name, kind]; the folder is the input of that key.
sets = {name: (kind, snakemake.input[key]) for key, (name, kind) in snakemake.params.sets.items()}
evaluate_image_sets(
    sets,
    snakemake.output.table,
    snakemake.output.s2,
    snakemake.output.sizes,
    threshold=p["threshold"],
    r_max=p["r_max"],
    periodic=p["periodic"],
    max_images=p["max_images"],
    max_size=p["max_size"],
    sample=p["sample"],
    sample_margin=p["sample_margin"],
    provenance=snakemake.params.provenance,
)

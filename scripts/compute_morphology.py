"""Rule compute_morphology: porosity, S2, Minkowski functionals and size distributions of
real, generated and upscaled image sets, each compared with the real set."""

import _bootstrap  # noqa: F401

from tomosynth.io import write_csv
from tomosynth.metrics.morphology import evaluate_image_sets
from tomosynth.provenance import write_sidecar

p = snakemake.params.morphology
# params.sets: input key -> [set name, kind]; the folder is the input of that key.
sets = {name: (kind, snakemake.input[key]) for key, (name, kind) in snakemake.params.sets.items()}
tables, record = evaluate_image_sets(
    sets,
    threshold=p["threshold"],
    r_max=p["r_max"],
    periodic=p["periodic"],
    max_images=p["max_images"],
    max_size=p["max_size"],
    sample=p["sample"],
    sample_margin=p["sample_margin"],
    provenance=snakemake.params.provenance,
)
for key in ("table", "s2", "sizes"):
    write_csv(snakemake.output[key], tables[key])
write_sidecar(snakemake.output.table, record)

"""Rule plot_distance_validation: FRD v1 and the secondary offline distance of degraded real
training slices (noise, blur, black rectangles, salt and pepper, contrast loss, a 4 px dot
grid at 4 levels) to undisturbed ones, as a table and a figure (Heusel et al. 2017's check
of FID)."""

from pathlib import Path

import _bootstrap  # noqa: F401
import numpy as np

from tomosynth.io import atomic_file, read_json, read_png_stack
from tomosynth.metrics import frd as frd_v1
from tomosynth.metrics.degrade import LEVELS, degradation_table
from tomosynth.plots.distance import plot_degradation
from tomosynth.provenance import provenance, write_sidecar

inp, out, params = snakemake.input, snakemake.output, snakemake.params
names = sorted(read_json(inp.split)["train"])
rng = np.random.default_rng(params.seed)
names = [names[i] for i in sorted(rng.permutation(len(names))[: params.max_images])]
images = read_png_stack(inp.png, names)
table = degradation_table(
    images, seed=params.seed, min_std=params.min_std, frd_images=params.frd_images
)
Path(out.table).parent.mkdir(parents=True, exist_ok=True)
with atomic_file(out.table) as tmp:
    table.to_csv(tmp, index=False)
drawn = plot_degradation(table, out.png, out.pdf)
record = provenance(
    scan=snakemake.wildcards.scan,
    images=[str(Path(inp.png) / n) for n in names],
    levels=LEVELS,
    seed=params.seed,
    frd_min_std=params.min_std,
    frd_v1={"name": frd_v1.METRIC_NAME, "versions": frd_v1.versions(), "images": params.frd_images},
)
write_sidecar(out.table, record)
write_sidecar(out.png, dict(record, figure=[out.png, out.pdf], lines=drawn, table=out.table))

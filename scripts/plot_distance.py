"""Rule plot_distance: bar plot of the distance table (thesis figure 11 style)."""

import _bootstrap  # noqa: F401
import pandas as pd

from tomosynth.io import read_json
from tomosynth.plots.distance import plot_distance
from tomosynth.provenance import provenance, write_sidecar

table = pd.read_csv(snakemake.input.table, keep_default_na=False, na_values=[""])
drawn = plot_distance(
    table, snakemake.output.png, snakemake.output.pdf, ci_level=snakemake.params.ci_level
)
write_sidecar(
    snakemake.output.png,
    provenance(
        figure=[snakemake.output.png, snakemake.output.pdf],
        table=snakemake.input.table,
        bars=drawn,
        table_provenance=read_json(snakemake.input.provenance),
    ),
)

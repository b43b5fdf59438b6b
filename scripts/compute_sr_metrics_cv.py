"""Rule compute_sr_metrics_cv: the cross-validation table over the folds' per-slice scores."""

import _bootstrap  # noqa: F401
import pandas as pd

from tomosynth.io import write_csv
from tomosynth.metrics.sr import cv_sr_table

per_slice = pd.concat([pd.read_csv(f) for f in snakemake.input.slices])
write_csv(snakemake.output.table, cv_sr_table(per_slice), float_format="%.6g")

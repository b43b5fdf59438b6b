"""Rules compute_sr_metrics[_grid]: per-slice PSNR/SSIM of SR volumes vs HR (with bicubic)
and their mean/std table, with a provenance sidecar."""

from pathlib import Path

import _bootstrap  # noqa: F401
import pandas as pd

from tomosynth.io import read_json, write_csv
from tomosynth.metrics.sr import sr_slice_metrics, summarize_sr_metrics
from tomosynth.provenance import provenance, write_sidecar

names = None
split = read_json(snakemake.input.split)
if snakemake.params.eval_set == "test":
    names = split["test"]
window = snakemake.params.ssim_window
# within a specimen, the neighbour-average baseline (mean of the two nearest training slices)
per_slice = pd.concat(
    [sr_slice_metrics(v, names, window, split["train"]) for v in snakemake.input.volumes]
)
write_csv(snakemake.output.slices, per_slice, float_format="%.6g")
write_csv(snakemake.output.table, summarize_sr_metrics(per_slice), float_format="%.6g")
# Provenance sidecar: each SR volume's meta.json (scan, preset, scale, fold, model epoch).
write_sidecar(
    snakemake.output.table,
    provenance(
        table=snakemake.output.table,
        eval_set=snakemake.params.eval_set,
        ssim_window=window,
        volumes={v: read_json(Path(v) / "meta.json") for v in snakemake.input.volumes},
    ),
)

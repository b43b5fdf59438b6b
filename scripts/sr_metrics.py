"""PSNR/SSIM tables of SR volumes vs HR (with bicubic), cross-validation tables and bar plots.

One script for the rules compute_sr_metrics[_grid], compute_sr_metrics_cv and
plot_sr_metrics[_grid]; `snakemake.rule` picks the step.
"""

from pathlib import Path

import _bootstrap  # noqa: F401
import pandas as pd

from tomosynth.io import atomic_file, read_json
from tomosynth.provenance import figure_provenance, provenance, write_sidecar
from tomosynth.train.srgan import (
    cv_sr_table,
    plot_sr_metrics,
    sr_slice_metrics,
    summarize_sr_metrics,
)


def write_csv(df, path):
    with atomic_file(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")


rule = snakemake.rule
if rule.startswith("compute_sr_metrics") and rule != "compute_sr_metrics_cv":
    names = None
    if snakemake.params.eval_set == "test":
        names = read_json(snakemake.input.split)["test"]
    window = snakemake.params.ssim_window
    per_slice = pd.concat([sr_slice_metrics(v, names, window) for v in snakemake.input.volumes])
    write_csv(per_slice, snakemake.output.slices)
    write_csv(summarize_sr_metrics(per_slice), snakemake.output.table)
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
elif rule == "compute_sr_metrics_cv":
    per_slice = pd.concat([pd.read_csv(f) for f in snakemake.input.slices])
    write_csv(cv_sr_table(per_slice), snakemake.output.table)
elif rule.startswith("plot_sr_metrics"):
    table = pd.concat([pd.read_csv(f) for f in snakemake.input.tables])
    plot_sr_metrics(table, snakemake.output.png, snakemake.output.pdf)
    figure_provenance(
        snakemake.output.png,
        snakemake.input,
        scans=[Path(t).stem for t in snakemake.input.tables],
    )
else:
    raise ValueError(f"sr_metrics.py: no step for rule {rule!r}")

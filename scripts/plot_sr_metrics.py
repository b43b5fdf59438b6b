"""Rules plot_sr_metrics[_grid]: bar plots of PSNR and SSIM per scan, preset and scale."""

from pathlib import Path

import _bootstrap  # noqa: F401
import pandas as pd

from tomosynth.plots.sr import plot_sr_metrics
from tomosynth.provenance import figure_provenance

table = pd.concat([pd.read_csv(f) for f in snakemake.input.tables])
plot_sr_metrics(table, snakemake.output.png, snakemake.output.pdf)
figure_provenance(
    snakemake.output.png,
    snakemake.input,
    scans=[Path(t).stem for t in snakemake.input.tables],
)

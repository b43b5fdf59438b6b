"""Rules plot_srcnn_training / plot_srcnn_comparison: SRCNN figures over the scans."""

import _bootstrap  # noqa: F401

from tomosynth.plots.upscale import (
    generated_images,
    plot_srcnn_comparison,
    plot_srcnn_training,
)
from tomosynth.provenance import figure_provenance
from tomosynth.upscale import comparison_images

p = snakemake.params
if p.figure == "training":
    plot_srcnn_training(
        dict(zip(p.scans, snakemake.input.logs, strict=True)),
        snakemake.output.png,
        snakemake.output.pdf,
    )
else:
    rows = {
        scan: comparison_images(low, high, split, model, device=p.device)
        for scan, low, high, split, model in zip(
            p.scans,
            snakemake.input.low,
            snakemake.input.high,
            snakemake.input.split,
            snakemake.input.models,
            strict=True,
        )
    }
    generated = {
        scan: generated_images(bic, sr)
        for scan, bic, sr in zip(
            p.scans, snakemake.input.bicubic, snakemake.input.srcnn, strict=True
        )
    }
    plot_srcnn_comparison(
        rows, snakemake.output.png, snakemake.output.pdf, crop=p.crop, generated=generated
    )
figure_provenance(snakemake.output.png, snakemake.input, scans=p.scans)

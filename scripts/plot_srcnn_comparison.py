"""Rule plot_srcnn_comparison: bicubic, SRCNN and real versions of a held-out slice."""

import _bootstrap  # noqa: F401

from tomosynth.plots.upscale import generated_images, plot_srcnn_comparison
from tomosynth.provenance import figure_provenance
from tomosynth.upscale import comparison_images

p = snakemake.params
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
    for scan, bic, sr in zip(p.scans, snakemake.input.bicubic, snakemake.input.srcnn, strict=True)
}
plot_srcnn_comparison(
    rows, snakemake.output.png, snakemake.output.pdf, crop=p.crop, generated=generated
)
figure_provenance(snakemake.output.png, snakemake.input, scans=p.scans)

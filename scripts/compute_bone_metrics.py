"""Rule compute_bone_metrics: per-ROI bone metrics of LR, SR and HR volumes, SR-vs-HR and
LR-vs-HR correlations, 3D consistency (issues 7 item 4, 8 items 3-4)."""

import _bootstrap  # noqa: F401

from tomosynth.metrics.bone import evaluate_sr_volume

p = snakemake.params.bone
evaluate_sr_volume(
    snakemake.input.volume,
    snakemake.output.table,
    snakemake.output.correlations,
    snakemake.output.consistency,
    voxel_um=snakemake.params.voxel_um,
    threshold=p["threshold"],
    roi_size=p["roi_size"],
    roi_stride=p["roi_stride"],
    tissue=p["tissue"],
    cortex_min_thickness=p["cortex_min_thickness"],
    sigma=p["surface_sigma"],
    confidence=p["confidence"],
    r_max=p["consistency_r_max"],
    provenance=snakemake.params.provenance,
)

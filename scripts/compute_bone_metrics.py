"""Rule compute_bone_metrics: per-ROI bone metrics of LR, SR and HR volumes, SR-vs-HR and
LR-vs-HR correlations, 3D consistency."""

import _bootstrap  # noqa: F401

from tomosynth.io import write_csv
from tomosynth.metrics.bone_tables import evaluate_sr_volume
from tomosynth.provenance import write_sidecar

p = snakemake.params.bone
tables, record = evaluate_sr_volume(
    snakemake.input.volume,
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
for key in ("table", "correlations", "consistency"):
    write_csv(snakemake.output[key], tables[key])
write_sidecar(snakemake.output.table, record)

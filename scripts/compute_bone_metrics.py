"""Rule compute_bone_metrics: per-ROI bone metrics of LR, SR and HR volumes, SR-vs-HR and
LR-vs-HR correlations, 3D consistency."""

import os

import _bootstrap  # noqa: F401

# The rule's threads are worker processes (ROI blocks, Minkowski tiles), each one thread:
# no library thread pool of `threads` threads in the parent or its forked workers.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

from tomosynth.io import write_csv  # noqa: E402 - after the thread variables
from tomosynth.metrics.bone_tables import evaluate_sr_volume  # noqa: E402
from tomosynth.provenance import write_sidecar  # noqa: E402

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
    workers=snakemake.threads,
)
for key in ("table", "correlations", "consistency"):
    write_csv(snakemake.output[key], tables[key])
write_sidecar(snakemake.output.table, record)

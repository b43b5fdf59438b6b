"""Rule compute_table: wall-clock, device, images/s, epochs and score per device-hour."""

from pathlib import Path

import _bootstrap  # noqa: F401

from tomosynth.io import atomic_file
from tomosynth.metrics.compute import compute_table as make_table
from tomosynth.provenance import checkpoint_hashes, provenance, write_sidecar

inp, params = snakemake.input, snakemake.params
models = {name: (scan, Path(inp[f"ckpt_{name}"]).parent) for name, scan in params.models.items()}
pipelines = {name: (scan, needed) for name, (scan, needed) in params.pipelines.items()}
tables = [inp[k] for k in inp.keys() if k.startswith("distance_")]

table = make_table(models, pipelines, tables, reference=params.reference)
with atomic_file(snakemake.output.table) as tmp:
    table.to_csv(tmp, index=False)
write_sidecar(
    snakemake.output.table,
    provenance(
        table=snakemake.output.table,
        logs={name: str(Path(inp[f"ckpt_{name}"]).parent / "log.csv") for name in params.models},
        checkpoints=checkpoint_hashes({name: inp[f"ckpt_{name}"] for name in params.models}),
        distance_tables=tables,
        reference=params.reference,
        note="device_hours = cumulative training wall-clock / 3600 from log.csv; "
        "score_per_device_hour = distance to the reference / device-hours of the pipeline",
    ),
)

"""Rule compute_distance: FID / FRD of each compared set vs the train and test splits."""

import logging
from pathlib import Path

import _bootstrap  # noqa: F401
import torch

from tomosynth.device import gpu_job_requires_cuda, select_device
from tomosynth.io import atomic_file, list_pngs, read_json
from tomosynth.metrics.distance import DistanceSettings, distance_table
from tomosynth.metrics.features import METRIC_NAME as FRD_NAME
from tomosynth.metrics.features import feature_names
from tomosynth.provenance import checkpoint_hashes, provenance, scan_context, write_sidecar

inp, out, params = snakemake.input, snakemake.output, snakemake.params
scan = snakemake.wildcards.scan

png = Path(inp.png)
split = read_json(inp.split)
references = {name: [str(png / f) for f in sorted(split[name])] for name in params.references}
real_pool = [str(png / f) for f in sorted({*split["train"], *split["val"], *split["test"]})]
sets = {
    name: (label, [str(f) for f in list_pngs(inp[key])])
    for key, (name, label) in params.sets.items()
}
torch.set_num_threads(snakemake.threads)  # Inception on the CPU; BLAS takes OMP_NUM_THREADS
device = str(
    select_device(params.device, gpu_job_requires_cuda(getattr(snakemake, "resources", None)))
)
settings = DistanceSettings(**params.distance)

Path(out.stats).mkdir(parents=True, exist_ok=True)
table = distance_table(
    scan,
    sets,
    references,
    real_pool,
    stats_dir=out.stats,
    fid_weights=params.fid_weights,
    offline_fallback=params.offline_fallback,
    device=device,
    batch_size=params.batch_size,
    settings=settings,
    cache_dir=params.feature_cache,
)
with atomic_file(out.table) as tmp:
    table.to_csv(tmp, index=False)

ckpts = {key[len("ckpt_") :]: inp[key] for key in inp.keys() if key.startswith("ckpt_")}
write_sidecar(
    out.table,
    provenance(
        table=out.table,
        scan=scan,
        **scan_context(inp.recon, inp.bounds),
        seeds={"distance": settings.seed, **params.provenance},
        checkpoints=checkpoint_hashes(ckpts),
        settings=vars(settings),
        fid_weights=params.fid_weights,
        offline_fallback=params.offline_fallback,
        device=device,
        metrics=sorted(set(table["metric"])),
        frd_features=feature_names(),
        frd_normaliser=(
            "z-scored with the mean/std of the first reference (train split), features with "
            f"reference std <= {settings.frd_min_std} dropped (column dropped_features); "
            "value, CI and baseline = ln(Fréchet distance), fd and fid_inf linear"
        ),
        sets={name: {"label": label, "n": len(files)} for name, (label, files) in sets.items()},
        references={name: len(files) for name, files in references.items()},
        real_pool=len(real_pool),
    ),
)
if FRD_NAME in set(table["metric"]) and "FID" not in set(table["metric"]):
    logging.warning("table %s holds the offline FRD only, not FID", out.table)

"""Rule compute_distance: FRD v1 (and FID where its weights are) of each compared set vs the
train and test splits, with our own features as a secondary column."""

import logging
from pathlib import Path

import _bootstrap  # noqa: F401
import torch

from tomosynth.device import gpu_job_requires_cuda, select_device
from tomosynth.io import list_pngs, read_json
from tomosynth.metrics import frd as frd_v1
from tomosynth.metrics.distance import (
    SECONDARY_COLUMN,
    SECONDARY_NAME,
    DistanceSettings,
    write_distance_outputs,
)
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

table = write_distance_outputs(
    out.table,
    out.stats,
    scan,
    sets,
    references,
    real_pool,
    fid_weights=params.fid_weights,
    offline_fallback=params.offline_fallback,
    device=device,
    batch_size=params.batch_size,
    settings=settings,
    cache_dir=params.feature_cache,
)

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
        offline_metric={
            "name": frd_v1.METRIC_NAME,
            "versions": frd_v1.versions(),
            "definition": (
                "FRD v1 (Konz et al.): frd-score's 2D v1 pyradiomics features (398 on 2D PNGs: "
                "original image and 4 wavelet bands, 13 diagnostics; its LoG filter yields "
                "nothing on 2D input), z-scored by each row's reference set (D1, population "
                "std), non-finite columns dropped (dropped_features); value = ln(Fréchet "
                "distance) as frd_score.compute_frd reports it; CI, baseline and fid_inf from "
                "the exact eigen/SVD Fréchet distance of the same features; fd linear"
            ),
            "max_images": settings.frd_max_images,
        },
        secondary_metric={
            "column": SECONDARY_COLUMN,
            "name": SECONDARY_NAME,
            "features": feature_names(),
            "definition": (
                "z-scored with the mean/std of the first reference (train split), features "
                f"with reference std <= {settings.frd_min_std} dropped; ln(Fréchet distance) "
                "on the full sets"
            ),
        },
        fid_inf_rule=(
            "reported only where the smallest N of the fit >= "
            f"{settings.fid_inf_min_n_per_dim:g} x feature_dim (fid_inf_note)"
        ),
        separation_rule=(
            "vs_next: 'not separated' where the difference to the next-ranked set is smaller "
            "than the wider of the two bootstrap CI half-widths"
        ),
        sets={name: {"label": label, "n": len(files)} for name, (label, files) in sets.items()},
        references={name: len(files) for name, files in references.items()},
        real_pool=len(real_pool),
    ),
)
if "FID" not in set(table["metric"]):
    logging.warning("table %s holds the offline %s only, not FID", out.table, frd_v1.METRIC_NAME)

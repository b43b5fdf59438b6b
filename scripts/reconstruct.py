"""Rule reconstruct: DXchange projections -> one float32 TIFF per slice.

Finished chunks are kept in results/recon/.{scan}.partial/ when the job is killed; the rerun
reuses them (see tomosynth.resume). device, memory_budget_mb and threads come from the config
and the rule, not params: they do not change the slices.
"""

import _bootstrap  # noqa: F401

from tomosynth.device import gpu_job_requires_cuda, select_device
from tomosynth.plan import RECON_OMITTED_DEFAULTS
from tomosynth.recon import reconstruct_scan

p = snakemake.params.recon
run = snakemake.config["recon"]
# A job given a GPU on a GPU profile stops here without a working CUDA (no silent CPU run).
select_device(run["device"], gpu_job_requires_cuda(getattr(snakemake, "resources", None)))
reconstruct_scan(
    snakemake.input.h5,
    snakemake.output.slices,
    backend=p["backend"],
    filter_name=p["filter"],
    center=p["center"],
    stripe_removal=p["stripe_removal"],
    stripe_size=p.get("stripe_size", RECON_OMITTED_DEFAULTS["stripe_size"]),  # absent at default
    chunk_rows=p["chunk_rows"],
    slices=p["slices"],
    device=run["device"],
    memory_budget_mb=run["memory_budget_mb"],
    threads=snakemake.threads,
    theta_units=p.get("theta_units"),
    bad_rows=p["bad_rows"],
    center_method=p.get("center_method", RECON_OMITTED_DEFAULTS["center_method"]),  # ditto
)

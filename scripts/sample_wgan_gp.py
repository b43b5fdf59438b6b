"""Rule sample_wgan_gp: N seeded 8-bit PNGs from a final generator, plus a contact sheet."""

import _bootstrap  # noqa: F401
import torch

from tomosynth.device import gpu_job_requires_cuda, select_device
from tomosynth.train.wgan_gp import sample_wgan_gp

torch.set_num_threads(snakemake.threads)
select_device(snakemake.params.device, gpu_job_requires_cuda(getattr(snakemake, "resources", None)))
sample_wgan_gp(
    snakemake.input.model,
    snakemake.output.samples,
    n=snakemake.params.n,
    seed=snakemake.params.seed,
    batch=snakemake.params.batch,
    contact_sheet=snakemake.output.contact_sheet,
    device=snakemake.params.device,
)

"""Rule upscale: upscale a folder of low-resolution generated samples with one method."""

import _bootstrap  # noqa: F401
import torch

from tomosynth.device import gpu_job_requires_cuda, select_device
from tomosynth.upscale import upscale_folder

torch.set_num_threads(snakemake.threads)
select_device(snakemake.params.device, gpu_job_requires_cuda(getattr(snakemake, "resources", None)))
model = snakemake.input.get("model")
upscale_folder(
    snakemake.input.samples,
    snakemake.output.images,
    method=snakemake.wildcards.method,
    size=snakemake.params.size,
    model_path=str(model) if model else None,
    device=snakemake.params.device,
    batch_size=snakemake.params.batch_size,
)

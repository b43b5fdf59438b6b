"""Super-resolve a scan's whole LR volume slice by slice (SR, bicubic LR and HR TIFFs)."""

import _bootstrap  # noqa: F401
import torch

from tomosynth.device import gpu_job_requires_cuda, select_device
from tomosynth.train.srgan import super_resolve_volume

torch.set_num_threads(snakemake.threads)

p = snakemake.params.sr
select_device(p["device"], gpu_job_requires_cuda(getattr(snakemake, "resources", None)))
super_resolve_volume(
    snakemake.input.model,
    snakemake.output.volume,
    scale=p["scale"],
    hr_folder=snakemake.input.hr,
    lr_folder=snakemake.input.get("lr"),
    slice_stride=p["slice_stride"],
    device=p["device"],
    batch_size=p["batch_size"],
    meta=p["meta"],
)

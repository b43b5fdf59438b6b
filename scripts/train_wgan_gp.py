"""Rule train_wgan_gp: train one WGAN-GP under its wall-clock budget, resuming from latest.pt.

A SIGTERM/SIGUSR1 (SLURM time limit or preemption) writes latest.pt and exits with status 75
(EX_TEMPFAIL); rerunning the rule resumes.
"""

import sys
from pathlib import Path

import _bootstrap  # noqa: F401
import torch

from tomosynth.train.common import (
    EXIT_PREEMPTED,
    StopRequested,
    gpu_job_requires_cuda,
    select_device,
)
from tomosynth.train.wgan_gp import train_wgan_gp

torch.set_num_threads(snakemake.threads)
# A GPU job without a working CUDA stops here, before any training on the CPU.
select_device(
    snakemake.params.train.get("device", "auto"),
    gpu_job_requires_cuda(getattr(snakemake, "resources", None)),
)
try:
    train_wgan_gp(
        snakemake.input.png,
        snakemake.input.split,
        Path(snakemake.output.model).parent,
        dict(snakemake.params.train),
    )
except StopRequested as exc:
    print(exc, file=sys.stderr)
    sys.exit(EXIT_PREEMPTED)

"""Rule train_wgan_gp: train one WGAN-GP under its wall-clock budget, resuming from latest.pt.

A SIGTERM/SIGUSR1 (SLURM time limit or preemption) writes latest.pt and exits with status 75
(EX_TEMPFAIL); rerunning the rule resumes.
"""

from pathlib import Path

import _bootstrap  # noqa: F401
import torch

from tomosynth.train.common import run_rule
from tomosynth.train.wgan_gp import TrainConfig, WganGpData, train_wgan_gp

torch.set_num_threads(snakemake.threads)
cfg = TrainConfig.from_dict(dict(snakemake.params.train))
run_rule(
    lambda: train_wgan_gp(
        cfg,
        WganGpData(snakemake.input.png, snakemake.input.split),
        Path(snakemake.output.model).parent,
    ),
    cfg.device,
    getattr(snakemake, "resources", None),
)

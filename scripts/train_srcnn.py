"""Rule train_srcnn: train SRCNN on a scan's real low/high-resolution pairs."""

import logging
from pathlib import Path

import _bootstrap  # noqa: F401
import torch

from tomosynth.train.common import run_rule
from tomosynth.train.srcnn import SRCNNData, SRCNNTrainConfig, train_srcnn

torch.set_num_threads(snakemake.threads)
cfg = SRCNNTrainConfig.from_dict(dict(snakemake.params.srcnn))
result = run_rule(
    lambda: train_srcnn(
        cfg,
        SRCNNData(snakemake.input.low, snakemake.input.high, snakemake.input.split),
        Path(snakemake.output.best).parent,
    ),
    cfg.device,
    getattr(snakemake, "resources", None),
)
logging.info("SRCNN %s: %s", snakemake.wildcards.scan, result)

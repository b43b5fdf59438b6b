"""Rule train_srcnn: train SRCNN on a scan's real low/high-resolution pairs."""

import logging
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
from tomosynth.train.srcnn import train_srcnn

torch.set_num_threads(snakemake.threads)
# A GPU job without a working CUDA stops here, before any training on the CPU.
select_device(
    snakemake.params.srcnn.get("device", "auto"),
    gpu_job_requires_cuda(getattr(snakemake, "resources", None)),
)
out_dir = Path(snakemake.output.best).parent
try:
    result = train_srcnn(
        snakemake.input.low,
        snakemake.input.high,
        snakemake.input.split,
        out_dir,
        **snakemake.params.srcnn,
    )
except StopRequested as exc:
    logging.warning("%s; rerun to resume from latest.pt", exc)
    sys.exit(EXIT_PREEMPTED)
logging.info("SRCNN %s: %s", snakemake.wildcards.scan, result)

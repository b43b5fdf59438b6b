"""Train one SRGAN-family model (a preset at a scale) on the training specimens' slices."""

import logging
import sys
from pathlib import Path

import _bootstrap  # noqa: F401
import numpy as np
import torch

from tomosynth.io import read_json, write_json
from tomosynth.sr_data import load_pairs
from tomosynth.train.common import (
    EXIT_PREEMPTED,
    StopRequested,
    gpu_job_requires_cuda,
    select_device,
)
from tomosynth.train.srgan import SRGANTrainConfig, train_srgan

torch.set_num_threads(snakemake.threads)

params = snakemake.params.train
# A GPU job without a working CUDA stops here, before loading data or training on the CPU.
select_device(
    params["config"]["device"], gpu_job_requires_cuda(getattr(snakemake, "resources", None))
)
scale = int(params["config"]["scale"])
lr_folders = list(snakemake.input.get("lr", [])) or [None] * len(snakemake.input.hr)

sets = {"train": ([], []), "val": ([], [])}
for hr_folder, split_json, lr_folder, stride in zip(
    snakemake.input.hr, snakemake.input.split, lr_folders, params["slice_strides"], strict=True
):
    split = read_json(split_json)
    for part, (hrs, lrs) in sets.items():
        hr, lr, _ = load_pairs(hr_folder, split[part], scale, lr_folder, stride)
        hrs.append(hr)
        lrs.append(lr)

cfg = SRGANTrainConfig.from_dict(params["config"])
out_dir = Path(snakemake.output.model).parent
try:
    result = train_srgan(
        np.concatenate(sets["train"][0]),
        np.concatenate(sets["train"][1]),
        np.concatenate(sets["val"][0]),
        np.concatenate(sets["val"][1]),
        out_dir,
        cfg,
        extra_meta=params["meta"],
        restart_on_mismatch=True,
    )
except StopRequested as exc:
    logging.warning("%s; rerun to resume from latest.pt", exc)
    sys.exit(EXIT_PREEMPTED)
write_json(snakemake.output.summary, {**params["meta"], "scale": scale, **result})

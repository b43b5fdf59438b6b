"""Train one SRGAN-family model (a preset at a scale) on the training specimens' slices."""

from pathlib import Path

import _bootstrap  # noqa: F401
import torch

from tomosynth.io import write_json
from tomosynth.train.common import run_rule
from tomosynth.train.srgan import SRGANData, SRGANTrainConfig, train_srgan

torch.set_num_threads(snakemake.threads)
params = snakemake.params.train
cfg = SRGANTrainConfig.from_dict(params["config"])


def train() -> dict:
    data = SRGANData.from_folders(
        snakemake.input.hr,
        snakemake.input.split,
        list(snakemake.input.get("lr", [])),
        params["slice_strides"],
        cfg.scale,
        meta=params["meta"],
    )
    return train_srgan(cfg, data, Path(snakemake.output.model).parent)


result = run_rule(train, cfg.device, getattr(snakemake, "resources", None))
write_json(snakemake.output.summary, {**params["meta"], "scale": cfg.scale, **result})

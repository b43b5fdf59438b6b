"""SR volumes of the SRGAN family: a generator applied slice by slice to a whole LR volume,
written with its bicubic baseline and HR reference (layout in docs/architecture.md)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tifffile

from tomosynth.errors import ConfigError
from tomosynth.io import atomic_dir, write_json
from tomosynth.models.srgan import load_srgan_generator, super_resolve_stack
from tomosynth.sr_data import (
    bicubic_downscale,
    bicubic_upscale,
    load_pairs,
    read_stack,
    slice_names,
)
from tomosynth.train.common import select_device


def write_sr_volume(
    out_dir: str | os.PathLike,
    names: list[str],
    sr: np.ndarray,
    lr_up: np.ndarray,
    hr: np.ndarray | None,
    meta: dict,
) -> None:
    """Write an SR volume folder atomically.

    Layout (all float32 TIFFs in [0, 1], one per slice, ``slice_XXXXX.tiff``, same names and
    HR size in every subfolder)::

        sr/     the super-resolved slices
        lr/     the LR input upsampled by bicubic interpolation (the LR-vs-HR baseline)
        hr/     the HR reference slices (absent if there is none)
        meta.json   scan, preset, scale, model, lr source, voxel sizes, slice names
    """
    with atomic_dir(out_dir) as tmp:
        parts = {"sr": sr, "lr": lr_up} | ({"hr": hr} if hr is not None else {})
        for part, volume in parts.items():
            (tmp / part).mkdir()
            for name, img in zip(names, volume, strict=True):
                tifffile.imwrite(tmp / part / f"{Path(name).stem}.tiff", img.astype(np.float32))
        write_json(tmp / "meta.json", {**meta, "slices": [f"{Path(n).stem}.tiff" for n in names]})


def super_resolve_volume(
    model_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    scale: int,
    hr_folder: str | os.PathLike | None = None,
    lr_folder: str | os.PathLike | None = None,
    lr_bounds: tuple[float, float] | None = None,
    slice_stride: int = 1,
    device: str = "auto",
    batch_size: int = 8,
    meta: dict | None = None,
) -> int:
    """Super-resolve a whole LR volume slice by slice into an SR volume folder.

    LR slices come from `lr_folder` (PNG, or float TIFF with `lr_bounds`), paired with
    `hr_folder` when both are given (real pairs, see :func:`tomosynth.sr_data.load_pairs`);
    with only `hr_folder`, the LR volume is the bicubic degradation of the HR one. The layout
    written is that of :func:`write_sr_volume`. Returns the number of slices.
    """
    if hr_folder is None and lr_folder is None:
        raise ConfigError("super_resolve: give an LR folder, an HR folder, or both")
    dev = select_device(device)
    model, ckpt = load_srgan_generator(model_path, dev)
    if int(ckpt["scale"]) != int(scale):
        raise ConfigError(f"{model_path}: model scale x{ckpt['scale']} != requested x{scale}")
    if hr_folder is None:
        lr, names = read_stack(lr_folder, bounds=lr_bounds)
        hr = None
    elif lr_folder is None:
        hr, names = read_stack(hr_folder)
        lr = bicubic_downscale(hr, scale)
    else:
        hr, lr, names = load_pairs(
            hr_folder, slice_names(hr_folder), scale, lr_folder, slice_stride
        )
    sr = super_resolve_stack(model, lr, batch_size, dev)
    info = {
        **(meta or {}),
        "scale": int(scale),
        "model": str(model_path),
        "model_epoch": int(ckpt["epoch"]),
        "model_val_psnr": float(ckpt["val_psnr"]),
        "hr_folder": None if hr_folder is None else str(hr_folder),
        "lr_folder": None if lr_folder is None else str(lr_folder),
        "lr": "bicubic degradation of hr" if lr_folder is None else "read from lr_folder",
        "range": "float32 in [0, 1] (PNG uint8 / 255)",
    }
    write_sr_volume(out_dir, names, sr, bicubic_upscale(lr, scale), hr, info)
    return len(names)

"""Upscaling of 8-bit image folders: bicubic (:func:`tomosynth.resample.bicubic`, OpenCV
``INTER_CUBIC``) and model-based (SRCNN, SRGAN).

Methods live in :data:`UPSCALERS`, a registry of factories ``factory(size, model_path,
device) -> upscaler``; an upscaler maps a uint8 (N, h, w) batch to a uint8 (N, H, W)
batch. Other models (SRGAN) register themselves by adding a factory.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tomosynth.checkpoint import load_checkpoint
from tomosynth.device import select_device
from tomosynth.errors import ConfigError, DataError
from tomosynth.io import atomic_dir, list_pngs, read_json, read_png_stack, write_png
from tomosynth.metrics.spectral import hf_energy
from tomosynth.models.srcnn import load_srcnn, refine
from tomosynth.models.srgan import load_srgan_generator, super_resolve_stack
from tomosynth.resample import bicubic

log = logging.getLogger(__name__)

Upscaler = Callable[[np.ndarray], np.ndarray]
UpscalerFactory = Callable[[int, "str | os.PathLike | None", str], Upscaler]


def _bicubic_factory(size: int, model_path=None, device: str = "auto") -> Upscaler:
    def run(batch: np.ndarray) -> np.ndarray:
        return bicubic(batch, size)

    return run


def _srcnn_factory(size: int, model_path=None, device: str = "auto") -> Upscaler:
    if model_path is None:
        raise ConfigError("upscale: method 'srcnn' needs a trained model (model_path)")
    model, info = load_srcnn(model_path, device=device)
    low, high = info.get("low_size"), info.get("high_size")
    if high is not None and int(high) != int(size):
        raise ConfigError(
            f"{model_path}: SRCNN was trained to upscale to {high}px, asked for {size}px"
        )

    def run(batch: np.ndarray) -> np.ndarray:
        if low is not None and batch.shape[-2:] != (int(low), int(low)):
            raise DataError(
                f"{model_path}: SRCNN was trained on {low}px inputs, got {batch.shape[-2:]}"
            )
        return refine(model, bicubic(batch, size))

    return run


def _srgan_factory(size: int, model_path=None, device: str = "auto") -> Upscaler:
    """SRGAN generator (tomosynth.models.srgan) trained at scale r: h x w -> rh x rw."""
    if model_path is None:
        raise ConfigError("upscale: method 'srgan' needs a trained model (model_path)")
    dev = select_device(device)
    model, meta = load_srgan_generator(model_path, dev)
    scale = int(meta["scale"])

    def run(batch: np.ndarray) -> np.ndarray:
        h, w = batch.shape[-2:]
        if (h * scale, w * scale) != (size, size):
            raise DataError(
                f"{model_path}: SRGAN upscales x{scale}, so {h}x{w} px inputs do not give "
                f"{size} px outputs"
            )
        lr = batch.astype(np.float32) / 255.0
        y = super_resolve_stack(model, lr, max(1, len(lr)), dev, progress=False)
        return np.rint(np.clip(y, 0.0, 1.0) * 255.0).astype(np.uint8)

    return run


def log_input_match(
    in_dir: str | os.PathLike, names: list[str], model_path: str | os.PathLike
) -> dict[str, float | None]:
    """Log the high-frequency energy (mean squared Laplacian, images in [0, 1]) of the images
    an SRGAN upscales beside that of the LR it was trained on (stored in its checkpoint).

    A ratio far from 1 means the upscaler sees inputs of another degradation than it learned
    (e.g. trained on cubic-decimated LR, applied to area-averaged GAN samples). Returns the
    two energies and their ratio (None where the checkpoint predates the record).
    """
    sample = names[:: max(1, len(names) // 64)]
    applied = hf_energy(read_png_stack(in_dir, sample).astype(np.float32) / 255.0)
    ckpt = load_checkpoint(model_path, map_location="cpu") or {}
    trained = ckpt.get("train_lr_hf_energy")
    ratio = None if not trained else applied / trained
    log.info(
        "matched degradation: high-frequency energy of the training LR %s (%s), of the "
        "upscaled inputs %.6g (%s, %d images); inputs / training = %s",
        "unknown" if trained is None else f"{trained:.6g}",
        ckpt.get("lr_source", "lr source unknown"),
        applied,
        in_dir,
        len(sample),
        "n/a" if ratio is None else f"{ratio:.3g}",
    )
    return {"train_lr": trained, "inputs": applied, "ratio": ratio}


#: Upscaling methods by name: ``factory(size, model_path, device) -> upscaler``.
UPSCALERS: dict[str, UpscalerFactory] = {
    "bicubic": _bicubic_factory,
    "srcnn": _srcnn_factory,
    "srgan": _srgan_factory,
}


def upscale_folder(
    in_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    method: str,
    size: int,
    model_path: str | os.PathLike | None = None,
    device: str = "auto",
    batch_size: int = 16,
) -> list[str]:
    """Upscale every PNG of `in_dir` to `size` px into `out_dir`, keeping the file names.

    Parameters
    ----------
    in_dir : folder of uint8 grey PNGs, all of one size
    out_dir : output folder, written atomically (replaced only once complete)
    method : a key of :data:`UPSCALERS` ("bicubic", "srcnn", ...)
    size : output side in pixels
    model_path : trained model checkpoint, for the model-based methods
    device : "auto", "cpu" or "cuda"
    batch_size : images per model call

    Returns
    -------
    The file names written, sorted.
    """
    from tqdm import tqdm

    if method not in UPSCALERS:
        raise ConfigError(f"upscale.method: expected one of {sorted(UPSCALERS)}, got {method!r}")
    if batch_size < 1:
        raise ConfigError(f"upscale.batch_size: must be >= 1, got {batch_size}")
    names = [p.name for p in list_pngs(in_dir)]
    run = UPSCALERS[method](int(size), model_path, device)
    if method == "srgan" and names:
        log_input_match(in_dir, names, model_path)
    shape = None
    with atomic_dir(out_dir) as tmp:
        for start in tqdm(range(0, len(names), batch_size), desc=f"upscale {method}", unit="batch"):
            chunk = names[start : start + batch_size]
            imgs = read_png_stack(in_dir, chunk)  # checks sizes within the chunk
            if shape is None:
                shape = imgs.shape[1:]
            elif imgs.shape[1:] != shape:
                raise DataError(
                    f"{Path(in_dir) / chunk[0]}: image size {imgs.shape[1:]} differs from {shape} of {Path(in_dir) / names[0]}"
                )
            out = run(imgs)
            for name, img in zip(chunk, out, strict=True):
                write_png(tmp / name, img)
    return names


def comparison_images(
    low_dir: str | os.PathLike,
    high_dir: str | os.PathLike,
    split_path: str | os.PathLike,
    model_path: str | os.PathLike,
    device: str = "auto",
) -> dict[str, np.ndarray]:
    """Bicubic, SRCNN and real versions of the first held-out slice (test set, else val)."""
    split = read_json(split_path)
    names = sorted(split.get("test") or split.get("val") or [])
    if not names:
        raise DataError(f"{split_path}: no test or val slices to show")
    real = read_png_stack(high_dir, names[:1])[0]
    up = bicubic(read_png_stack(low_dir, names[:1])[0], real.shape)
    model, _ = load_srcnn(model_path, device=device)
    return {"bicubic": up, "srcnn": refine(model, up[None])[0], "real": real}

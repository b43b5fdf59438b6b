"""SRCNN training on real low/high-resolution pairs, and inference (thesis sections 4.4, 5.3).

A pair is (bicubic upsampling of a real low-resolution slice, the real high-resolution
slice of the same name). Each epoch trains on random patches (or whole slices) with an MSE
loss, then scores the validation slices: MSE, PSNR and SSIM on [0, 1] images. The best
epoch by PSNR (SSIM breaking ties) is kept as ``best.pt``; training stops early when the
validation MSE stops improving (:class:`EarlyStopping`), at ``max_epochs`` or when the
wall-clock budget is spent. ``latest.pt`` holds everything needed to resume.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tomosynth.errors import ConfigError, DataError
from tomosynth.io import atomic_file, list_pngs, read_json, read_png_stack
from tomosynth.metrics.image import psnr, ssim
from tomosynth.models.srcnn import SRCNN
from tomosynth.models.srcnn import to_unit as _to_unit
from tomosynth.resample import bicubic
from tomosynth.train.common import (
    Budget,
    CsvLog,
    StopRequested,
    StopSignal,
    device_name,
    load_checkpoint,
    package_versions,
    rng_state,
    save_checkpoint,
    seed_everything,
    select_device,
    set_rng_state,
)

log = logging.getLogger(__name__)

LOG_FIELDS = [
    "epoch",
    "train_mse",
    "val_mse",
    "val_psnr",
    "val_ssim",
    "bicubic_mse",
    "bicubic_psnr",
    "bicubic_ssim",
    "elapsed_s",
    "images_per_s",
    "seed",
]

#: Settings that may change between a run and its resumption without starting over.
RESUMABLE_CHANGES = ("max_epochs", "budget_minutes", "device", "val_batch_size")


class EarlyStopping:
    """Stop when a monitored value (lower is better) has not improved for `patience` epochs.

    An epoch improves when ``round(best - value, decimals) > min_delta``, where `best` is
    the value of the last improving epoch; rounding makes the comparison immune to float
    noise (thesis: no improvement greater than 1e-5, rounded to six decimals, over 20
    consecutive epochs). :meth:`step` returns True at the `patience`-th consecutive
    non-improving epoch.

    Parameters
    ----------
    patience : int >= 1
    min_delta : float >= 0
    decimals : int >= 0
    """

    def __init__(self, patience: int = 20, min_delta: float = 1e-5, decimals: int = 6) -> None:
        if int(patience) < 1:
            raise ConfigError(f"srcnn.patience: must be >= 1, got {patience}")
        if not min_delta >= 0:
            raise ConfigError(f"srcnn.min_delta: must be >= 0, got {min_delta}")
        if int(decimals) < 0:
            raise ConfigError(f"srcnn.decimals: must be >= 0, got {decimals}")
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.decimals = int(decimals)
        self.best = math.inf
        self.bad_epochs = 0

    def improves(self, value: float) -> bool:
        """Whether `value` beats the best so far by more than `min_delta` (after rounding)."""
        if math.isinf(self.best):
            return not math.isnan(value)
        return round(self.best - float(value), self.decimals) > self.min_delta

    def step(self, value: float) -> bool:
        """Record one epoch's value; True when training should stop now."""
        if self.improves(value):
            self.best = float(value)
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.best = float(state["best"])
        self.bad_epochs = int(state["bad_epochs"])


def is_better(psnr_db: float, ssim_value: float, best: dict | None, decimals: int = 6) -> bool:
    """Whether (PSNR, SSIM) beats `best` ({"val_psnr", "val_ssim"} or None): higher PSNR
    wins, SSIM breaks ties; both compared after rounding to `decimals`."""
    if best is None:
        return True
    new = (round(float(psnr_db), decimals), round(float(ssim_value), decimals))
    old = (round(float(best["val_psnr"]), decimals), round(float(best["val_ssim"]), decimals))
    return new > old


# --- data ---------------------------------------------------------------------------------
def load_pairs(
    low_dir: str | os.PathLike, high_dir: str | os.PathLike, names: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Load the low/high pairs named `names` (all shared files if None).

    Returns
    -------
    inputs : (N, H, W) uint8, the low-resolution slices bicubic-upsampled to H x W
    targets : (N, H, W) uint8, the high-resolution slices

    Raises
    ------
    DataError
        If the folders hold different numbers of PNGs, a name is missing from a folder,
        or the images of a folder differ in size, or low is not smaller than high.
    """
    low_dir, high_dir = Path(low_dir), Path(high_dir)
    low_names = [p.name for p in list_pngs(low_dir)]
    high_names = [p.name for p in list_pngs(high_dir)]
    if len(low_names) != len(high_names):
        raise DataError(
            f"{low_dir} holds {len(low_names)} PNGs but {high_dir} holds {len(high_names)}: "
            "low/high pairs must match one to one"
        )
    if names is None:
        names = low_names
    low_set, high_set = set(low_names), set(high_names)
    for folder, present in ((low_dir, low_set), (high_dir, high_set)):
        missing = [n for n in names if n not in present]
        if missing:
            raise DataError(f"{folder}: missing {len(missing)} paired image(s), e.g. {missing[0]}")
    lows = read_png_stack(low_dir, names)  # DataError naming a file of another size
    highs = read_png_stack(high_dir, names)
    if lows.shape[1] > highs.shape[1] or lows.shape[2] > highs.shape[2]:
        raise DataError(
            f"{low_dir}: low-resolution images ({lows.shape[1:]}) are not smaller than those "
            f"of {high_dir} ({highs.shape[1:]})"
        )
    size = highs.shape[1:]
    inputs = bicubic(lows, size)
    return inputs, highs


def load_split(split_path: str | os.PathLike) -> dict[str, list[str]]:
    """Read the split manifest; :class:`DataError` if "train" or "val" is missing or empty."""
    split = read_json(split_path)
    for key in ("train", "val"):
        if not isinstance(split.get(key), list) or not split[key]:
            raise DataError(f"{split_path}: '{key}' must be a non-empty list of file names")
    return split


# --- model helpers ------------------------------------------------------------------------
@torch.no_grad()
def evaluate(
    model: nn.Module | None,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    batch_size: int = 16,
) -> dict[str, float]:
    """Mean validation MSE, PSNR (dB) and SSIM on [0, 1] images (data range 1).

    `model` None scores the bicubic inputs themselves (the baseline). The model output is
    clipped to [0, 1], as it is when images are written.
    """
    was_training = model.training if model is not None else False
    if model is not None:
        model.eval()
    sums = {"mse": 0.0, "psnr": 0.0, "ssim": 0.0}
    for start in range(0, len(inputs), batch_size):
        x = _to_unit(inputs[start : start + batch_size])
        y = _to_unit(targets[start : start + batch_size])
        out = x if model is None else model(x).clamp(0.0, 1.0)
        sums["mse"] += float(((out.double() - y.double()) ** 2).mean(dim=(1, 2, 3)).sum())
        sums["psnr"] += float(psnr(out, y, data_range=1.0).sum())
        sums["ssim"] += float(ssim(out, y, data_range=1.0).sum())
    if model is not None and was_training:
        model.train()
    return {k: v / len(inputs) for k, v in sums.items()}


def _random_crops(
    images: torch.Tensor, index: torch.Tensor, y0: torch.Tensor, x0: torch.Tensor, size: int
) -> torch.Tensor:
    """(B, size, size) crops of `images` (N, H, W) at the given image indices and corners."""
    ar = torch.arange(size, device=images.device)
    rows = (y0[:, None] + ar)[:, :, None]
    cols = (x0[:, None] + ar)[:, None, :]
    return images[index[:, None, None], rows, cols]


# --- training -----------------------------------------------------------------------------
def _run_config(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k not in RESUMABLE_CHANGES}


def train_srcnn(
    low_dir: str | os.PathLike,
    high_dir: str | os.PathLike,
    split_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    channels: list[int] = (64, 32),
    kernels: list[int] = (9, 1, 5),
    padding_mode: str = "replicate",
    lr: float = 1e-4,
    betas: list[float] = (0.9, 0.999),
    last_layer_lr_scale: float = 0.1,
    batch_size: int = 16,
    val_batch_size: int = 16,
    patch_size: int | None = None,
    patches_per_image: int = 1,
    max_epochs: int = 1000,
    patience: int = 20,
    min_delta: float = 1e-5,
    decimals: int = 6,
    budget_minutes: float | None = None,
    seed: int = 0,
    device: str = "auto",
    stop: StopSignal | None = None,
) -> dict[str, Any]:
    """Train SRCNN on the split's train pairs, validating on its val pairs every epoch.

    Writes into `out_dir`: ``best.pt`` (best epoch by PSNR, SSIM breaking ties),
    ``log.csv`` (one row per epoch, see :data:`LOG_FIELDS`) and ``latest.pt`` (resume
    state, including the best weights and the log rows, so a rerun continues where the last
    one stopped even if the other two files were removed).

    Parameters
    ----------
    low_dir, high_dir : folders of the real low- and high-resolution uint8 PNGs (same names)
    split_path : split manifest (``train`` and ``val`` lists of file names)
    channels, kernels, padding_mode : network shape, see :class:`~tomosynth.models.srcnn.SRCNN`
    lr, betas : Adam settings; the reconstruction layer uses ``lr * last_layer_lr_scale``
        (Dong et al. train the last layer 10x slower)
    batch_size : training patches (or slices) per step; val_batch_size : slices per val step
    patch_size : side of the random training crops in high-resolution pixels; None trains
        on whole slices. patches_per_image : crops per training slice per epoch
    max_epochs : epoch cap; patience, min_delta, decimals : :class:`EarlyStopping` on val MSE
    budget_minutes : wall-clock budget over all (resumed) runs; None for none
    seed : seeds Python, NumPy and torch
    device : "auto", "cpu" or "cuda"
    stop : a :class:`StopSignal` whose request makes the loop checkpoint and raise
        :class:`StopRequested`; one is installed if None

    Returns
    -------
    dict with ``best`` (epoch and val metrics of best.pt), ``epochs`` run, ``stopped``
    ("early_stopping", "max_epochs" or "budget") and the bicubic baseline metrics.
    """
    from tqdm import tqdm

    cfg = {
        "channels": [int(c) for c in channels],
        "kernels": [int(k) for k in kernels],
        "padding_mode": padding_mode,
        "lr": float(lr),
        "betas": [float(b) for b in betas],
        "last_layer_lr_scale": float(last_layer_lr_scale),
        "batch_size": int(batch_size),
        "val_batch_size": int(val_batch_size),
        "patch_size": None if patch_size is None else int(patch_size),
        "patches_per_image": int(patches_per_image),
        "max_epochs": int(max_epochs),
        "patience": int(patience),
        "min_delta": float(min_delta),
        "decimals": int(decimals),
        "budget_minutes": None if budget_minutes is None else float(budget_minutes),
        "seed": int(seed),
        "device": device,
    }
    for key in ("batch_size", "val_batch_size", "patches_per_image", "max_epochs"):
        if cfg[key] < 1:
            raise ConfigError(f"srcnn.{key}: must be >= 1, got {cfg[key]}")
    if not cfg["lr"] > 0:
        raise ConfigError(f"srcnn.lr: must be > 0, got {lr}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    best_path, log_path, latest_path = (
        out_dir / "best.pt",
        out_dir / "log.csv",
        out_dir / "latest.pt",
    )

    split = load_split(split_path)
    train_in, train_out = load_pairs(low_dir, high_dir, split["train"])
    val_in, val_out = load_pairs(low_dir, high_dir, split["val"])
    low_size = read_png_stack(low_dir, split["train"][:1]).shape[1]
    # resume only a run of the same settings on the same pairs (new data = new training)
    digest = hashlib.sha1()
    for arr in (train_in, train_out, val_in, val_out):
        digest.update(np.ascontiguousarray(arr).tobytes())
    run_id = {**_run_config(cfg), "data_sha1": digest.hexdigest()}
    high_size = train_out.shape[1]
    if cfg["patch_size"] is not None and not 1 <= cfg["patch_size"] <= min(train_out.shape[1:]):
        raise ConfigError(
            f"srcnn.patch_size: must be in [1, {min(train_out.shape[1:])}] for these slices, got {patch_size}"
        )

    dev = select_device(device)
    seed_everything(cfg["seed"])
    model = SRCNN(cfg["channels"], cfg["kernels"], in_channels=1, padding_mode=padding_mode).to(dev)
    optimizer = torch.optim.Adam(
        [
            {"params": [p for conv in model.layers[:-1] for p in conv.parameters()]},
            {
                "params": list(model.layers[-1].parameters()),
                "lr": cfg["lr"] * cfg["last_layer_lr_scale"],
            },
        ],
        lr=cfg["lr"],
        betas=tuple(cfg["betas"]),
    )
    stopper = EarlyStopping(cfg["patience"], cfg["min_delta"], cfg["decimals"])
    history: list[dict] = []
    best: dict | None = None  # metrics and weights of the best epoch
    epoch, elapsed_before, stopped = 0, 0.0, None

    state = load_checkpoint(latest_path)
    if state is not None and state.get("run_config") == run_id:
        model.load_state_dict(state["model"], strict=True)
        optimizer.load_state_dict(state["optimizer"])
        stopper.load_state_dict(state["early_stopping"])
        history, best = list(state["history"]), state["best"]
        epoch, elapsed_before = int(state["epoch"]), float(state["elapsed_s"])
        stopped = state.get("stopped")
        if stopped in ("max_epochs", "budget"):
            stopped = None  # a larger cap or budget continues the run
        set_rng_state(state["rng"])
        log.info("resuming SRCNN training from %s at epoch %d", latest_path, epoch)
    elif state is not None:
        log.info("%s was written with other settings; training from scratch", latest_path)

    # the log and best.pt are rebuilt from latest.pt, so they survive being deleted
    with atomic_file(log_path) as tmp:
        tmp_log = CsvLog(tmp, LOG_FIELDS)
        for row in history:
            tmp_log.append(row)
    csv_log = CsvLog(log_path, LOG_FIELDS)

    def best_checkpoint() -> dict:
        return {
            "model": best["model"],
            "model_config": model.config,
            "epoch": best["epoch"],
            "val_mse": best["val_mse"],
            "val_psnr": best["val_psnr"],
            "val_ssim": best["val_ssim"],
            "low_size": int(low_size),
            "high_size": int(high_size),
            "device": str(dev),
            "device_name": device_name(dev),  # e.g. the GPU model (compute table)
            "seed": cfg["seed"],
            "run_config": cfg,
            "versions": package_versions(),
        }

    if best is not None:
        save_checkpoint(best_path, best_checkpoint())

    t_train_in = torch.from_numpy(train_in).to(dev)
    t_train_out = torch.from_numpy(train_out).to(dev)
    t_val_in = torch.from_numpy(val_in).to(dev)
    t_val_out = torch.from_numpy(val_out).to(dev)
    baseline = evaluate(None, t_val_in, t_val_out, cfg["val_batch_size"])
    budget = Budget(
        math.inf if cfg["budget_minutes"] is None else cfg["budget_minutes"], elapsed_before
    )
    loss_fn = nn.MSELoss()
    n_train, (height, width) = len(train_in), train_out.shape[1:]

    def save_latest() -> None:
        save_checkpoint(
            latest_path,
            {
                "model": model.state_dict(),
                "model_config": model.config,
                "optimizer": optimizer.state_dict(),
                "early_stopping": stopper.state_dict(),
                "history": history,
                "best": best,
                "epoch": epoch,
                "elapsed_s": budget.elapsed(),
                "stopped": stopped,
                "rng": rng_state(),
                "run_config": run_id,
                "device": str(dev),
                "seed": cfg["seed"],
                "versions": package_versions(),
            },
        )

    own_stop = stop is None
    signal_ctx = StopSignal() if own_stop else stop
    with signal_ctx as sig:
        bar = tqdm(
            total=cfg["max_epochs"], initial=epoch, desc="SRCNN", unit="epoch", dynamic_ncols=True
        )
        while stopped is None and epoch < cfg["max_epochs"]:
            if budget.exhausted():
                stopped = "budget"
                break
            epoch += 1
            model.train()
            if cfg["patch_size"] is None:
                order = torch.randperm(n_train)
            else:
                order = torch.randperm(n_train * cfg["patches_per_image"]) % n_train
                p = cfg["patch_size"]
                y0 = torch.randint(0, height - p + 1, (len(order),))
                x0 = torch.randint(0, width - p + 1, (len(order),))
            total, count, t0 = 0.0, 0, time.perf_counter()
            for start in range(0, len(order), cfg["batch_size"]):
                sl = slice(start, start + cfg["batch_size"])
                idx = order[sl].to(dev)
                if cfg["patch_size"] is None:
                    x, y = t_train_in[idx], t_train_out[idx]
                else:
                    ys, xs = y0[sl].to(dev), x0[sl].to(dev)
                    x = _random_crops(t_train_in, idx, ys, xs, p)
                    y = _random_crops(t_train_out, idx, ys, xs, p)
                x, y = _to_unit(x), _to_unit(y)
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(x), y)
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(idx)
                count += len(idx)
            train_s = time.perf_counter() - t0
            val = evaluate(model, t_val_in, t_val_out, cfg["val_batch_size"])
            row = {
                "epoch": epoch,
                "train_mse": total / count,
                "val_mse": val["mse"],
                "val_psnr": val["psnr"],
                "val_ssim": val["ssim"],
                "bicubic_mse": baseline["mse"],
                "bicubic_psnr": baseline["psnr"],
                "bicubic_ssim": baseline["ssim"],
                "elapsed_s": round(budget.elapsed(), 3),
                "images_per_s": round(count / train_s, 3) if train_s > 0 else math.nan,
                "seed": cfg["seed"],
            }
            history.append(row)
            csv_log.append(row)
            if not all(math.isfinite(v) for v in (row["train_mse"], val["mse"])):
                raise FloatingPointError(
                    f"SRCNN training diverged at epoch {epoch} (loss {row['train_mse']})"
                )
            if is_better(val["psnr"], val["ssim"], best, cfg["decimals"]):
                best = {
                    "epoch": epoch,
                    "val_mse": val["mse"],
                    "val_psnr": val["psnr"],
                    "val_ssim": val["ssim"],
                    "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                }
                save_checkpoint(best_path, best_checkpoint())
            if stopper.step(val["mse"]):
                stopped = "early_stopping"
            elif epoch >= cfg["max_epochs"]:
                stopped = "max_epochs"
            save_latest()
            bar.update(1)
            bar.set_postfix(psnr=f"{val['psnr']:.2f}", best=best["epoch"], bad=stopper.bad_epochs)
            if sig.requested and stopped is None:
                raise StopRequested(f"stopped after epoch {epoch}; {latest_path} saved", sig.signum)
        bar.close()
    if stopped is None:
        stopped = "max_epochs"
    if best is None:
        raise DataError(f"{out_dir}: no epoch was trained (max_epochs={cfg['max_epochs']})")
    save_latest()
    log.info(
        "SRCNN stopped (%s) after epoch %d; best epoch %d: PSNR %.3f dB, SSIM %.4f (bicubic %.3f dB, %.4f)",
        stopped,
        epoch,
        best["epoch"],
        best["val_psnr"],
        best["val_ssim"],
        baseline["psnr"],
        baseline["ssim"],
    )
    return {
        "best": {k: v for k, v in best.items() if k != "model"},
        "epochs": epoch,
        "stopped": stopped,
        "bicubic": baseline,
    }

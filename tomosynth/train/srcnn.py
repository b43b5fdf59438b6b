"""SRCNN training on real low/high-resolution pairs, and inference (thesis sections 4.4, 5.3).

A pair is (bicubic upsampling of a real low-resolution slice, the real high-resolution
slice of the same name). Each epoch trains on random patches (or whole slices) with an MSE
loss, then scores the validation slices: MSE, PSNR and SSIM on [0, 1] images. The best
epoch by PSNR (SSIM breaking ties) is kept as ``best.pt``; training stops early when the
validation MSE stops improving (:class:`EarlyStopping`), at ``max_epochs`` or when the
wall-clock budget is spent. ``latest.pt`` holds everything needed to resume.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tomosynth.errors import ConfigError, DataError
from tomosynth.io import list_pngs, read_json, read_png_stack
from tomosynth.metrics.image import psnr, ssim
from tomosynth.models.srcnn import SRCNN
from tomosynth.models.srcnn import to_unit as _to_unit
from tomosynth.resample import bicubic
from tomosynth.train.common import (
    Budget,
    ResumableRun,
    RunRecord,
    StopSignal,
    TrainingRun,
    data_digest,
    device_name,
    package_versions,
    reject_unknown_keys,
    rng_state,
    run_training,
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
def load_srcnn_pairs(
    low_dir: str | os.PathLike, high_dir: str | os.PathLike, names: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """SRCNN training pairs: same-named PNGs of a low- and a high-resolution folder.

    (Not `tomosynth.sr_data.load_pairs`, which degrades or index-matches HR slices for
    the SRGAN.) Loads the pairs named `names` (all shared files if None).

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
@dataclass
class SRCNNTrainConfig:
    """Settings of one SRCNN training (the keys of ``config.yaml``'s ``srcnn`` section).

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
    """

    channels: list[int] = field(default_factory=lambda: [64, 32])
    kernels: list[int] = field(default_factory=lambda: [9, 1, 5])
    padding_mode: str = "replicate"
    lr: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    last_layer_lr_scale: float = 0.1
    batch_size: int = 16
    val_batch_size: int = 16
    patch_size: int | None = None
    patches_per_image: int = 1
    max_epochs: int = 1000
    patience: int = 20
    min_delta: float = 1e-5
    decimals: int = 6
    budget_minutes: float | None = None
    seed: int = 0
    device: str = "auto"

    @classmethod
    def from_dict(cls, cfg: dict[str, Any]) -> SRCNNTrainConfig:
        """Build from a config mapping; unknown keys and bad values raise ConfigError."""
        reject_unknown_keys(cls, cfg, "srcnn")
        out = cls(**cfg)
        out.channels = [int(c) for c in out.channels]
        out.kernels = [int(k) for k in out.kernels]
        out.lr = float(out.lr)
        out.betas = [float(b) for b in out.betas]
        out.last_layer_lr_scale = float(out.last_layer_lr_scale)
        for key in ("batch_size", "val_batch_size", "patches_per_image", "max_epochs"):
            setattr(out, key, int(getattr(out, key)))
        out.patch_size = None if out.patch_size is None else int(out.patch_size)
        out.patience, out.decimals = int(out.patience), int(out.decimals)
        out.min_delta = float(out.min_delta)
        out.budget_minutes = None if out.budget_minutes is None else float(out.budget_minutes)
        out.seed = int(out.seed)
        out.validate()
        return out

    def validate(self) -> None:
        for key in ("batch_size", "val_batch_size", "patches_per_image", "max_epochs"):
            if getattr(self, key) < 1:
                raise ConfigError(f"srcnn.{key}: must be >= 1, got {getattr(self, key)}")
        if not self.lr > 0:
            raise ConfigError(f"srcnn.lr: must be > 0, got {self.lr}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SRCNNData:
    """The pairs an SRCNN trains on: folders of real low- and high-resolution uint8 PNGs
    (same names) and the split manifest (``train`` and ``val`` lists of file names)."""

    low_dir: str | os.PathLike
    high_dir: str | os.PathLike
    split: str | os.PathLike

    def load(self) -> dict[str, Any]:
        """Train and val pairs (bicubic inputs, targets; uint8) and the LR slice size."""
        split = load_split(self.split)
        train_in, train_out = load_srcnn_pairs(self.low_dir, self.high_dir, split["train"])
        val_in, val_out = load_srcnn_pairs(self.low_dir, self.high_dir, split["val"])
        low_size = int(read_png_stack(self.low_dir, split["train"][:1]).shape[1])
        return {
            "train": (train_in, train_out),
            "val": (val_in, val_out),
            "low_size": low_size,
        }


class _SRCNNRun(TrainingRun):
    """One training run of :func:`train_srcnn`: data, model, optimiser, early stopping, best
    epoch, log rows and the files of `out_dir`, in the steps of
    :func:`~tomosynth.train.common.run_training`."""

    kind = "srcnn"
    label = "SRCNN"
    log_fields = LOG_FIELDS

    def __init__(self, data: SRCNNData, out_dir: Path, cfg: SRCNNTrainConfig) -> None:
        self.cfg = cfg
        self.out_dir = out_dir
        self.best_path, self.log_path = out_dir / "best.pt", out_dir / "log.csv"
        self.latest_path = out_dir / "latest.pt"
        pairs = data.load()
        (train_in, train_out), (val_in, val_out) = pairs["train"], pairs["val"]
        self.low_size = pairs["low_size"]
        # resume only a run of the same settings on the same pairs (new data = new training)
        self.data_sha1 = data_digest(train_in, train_out, val_in, val_out, algorithm="sha1")
        self.high_size = int(train_out.shape[1])
        if cfg.patch_size is not None and not 1 <= cfg.patch_size <= min(train_out.shape[1:]):
            raise ConfigError(
                f"srcnn.patch_size: must be in [1, {min(train_out.shape[1:])}] for these slices, got {cfg.patch_size}"
            )
        self.device = select_device(cfg.device)
        seed_everything(cfg.seed)
        self.model = SRCNN(
            cfg.channels, cfg.kernels, in_channels=1, padding_mode=cfg.padding_mode
        ).to(self.device)
        self.optimizer = torch.optim.Adam(
            [
                {"params": [p for conv in self.model.layers[:-1] for p in conv.parameters()]},
                {
                    "params": list(self.model.layers[-1].parameters()),
                    "lr": cfg.lr * cfg.last_layer_lr_scale,
                },
            ],
            lr=cfg.lr,
            betas=tuple(cfg.betas),
        )
        self.stopper = EarlyStopping(cfg.patience, cfg.min_delta, cfg.decimals)
        self.log_rows: list[dict] = []
        self.best: dict | None = None  # metrics and weights of the best epoch
        self.epoch, self.spent_s, self.passed_s = 0, 0.0, 0.0
        self.stopped: str | None = None
        self.train_in = torch.from_numpy(train_in).to(self.device)
        self.train_out = torch.from_numpy(train_out).to(self.device)
        self.val_in = torch.from_numpy(val_in).to(self.device)
        self.val_out = torch.from_numpy(val_out).to(self.device)
        self.baseline: dict[str, float] | None = None
        self.loss_fn = nn.MSELoss()

    # -- resume policy ---------------------------------------------------------------------
    def run_id(self) -> dict:
        """The settings a checkpoint must share to be resumed, and the data digest."""
        return {**_run_config(self.cfg.to_dict()), "data_sha1": self.data_sha1}

    def resumable_run(self) -> ResumableRun:
        budget = self.cfg.budget_minutes
        return ResumableRun(
            kind="srcnn",
            config=self.cfg.to_dict(),
            data_digest=self.data_sha1,
            max_epochs=self.cfg.max_epochs,
            budget_s=math.inf if budget is None else budget * 60,
            resumable_keys=frozenset(RESUMABLE_CHANGES),
            republish_ignores=frozenset({"device", "val_batch_size"}),
            continue_finished=True,  # a larger cap or budget continues the run
        )

    @staticmethod
    def record(ckpt: dict) -> RunRecord:
        """What `ckpt` says about its run (older ones: the settings beside the data digest)."""
        run_id = dict(ckpt.get("run_config") or {})
        digest = run_id.pop("data_sha1", None)
        return RunRecord(
            kind=ckpt.get("kind", "srcnn"),
            config=ckpt.get("config", run_id),
            data_digest=digest,
            finished=ckpt.get("finished", ckpt.get("stopped") is not None),
            epoch=int(ckpt.get("epoch", 0)),
            passed_s=float(ckpt.get("passed_s", 0.0)),
        )

    def restore(self, ckpt: dict) -> None:
        self.model.load_state_dict(ckpt["model"], strict=True)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.stopper.load_state_dict(ckpt["early_stopping"])
        self.log_rows, self.best = list(ckpt["history"]), ckpt["best"]
        self.epoch, self.spent_s = int(ckpt["epoch"]), float(ckpt["elapsed_s"])
        self.passed_s = float(ckpt.get("passed_s", 0.0))
        self.stopped = ckpt.get("stopped")
        if self.stopped in ("max_epochs", "budget"):
            self.stopped = None  # a larger cap or budget continues the run
        set_rng_state(ckpt["rng"])

    def republish(self, ckpt: dict) -> dict | None:
        """best.pt and log.csv again from a finished ``latest.pt`` (None: it has no result)."""
        if ckpt.get("result") is None:
            return None
        self.restore(ckpt)
        self.write_log()
        self.save_best()
        return dict(ckpt["result"])

    def best_checkpoint(self) -> dict:
        best = self.best
        assert best is not None
        return {
            "model": best["model"],
            "model_config": self.model.config,
            "epoch": best["epoch"],
            "val_mse": best["val_mse"],
            "val_psnr": best["val_psnr"],
            "val_ssim": best["val_ssim"],
            "low_size": self.low_size,
            "high_size": self.high_size,
            "device": str(self.device),
            "device_name": device_name(self.device),  # e.g. the GPU model (compute table)
            "seed": self.cfg.seed,
            "run_config": self.cfg.to_dict(),
            "versions": package_versions(),
        }

    def save_best(self) -> None:
        if self.best is not None:
            save_checkpoint(self.best_path, self.best_checkpoint())

    def save_latest(self, budget: Budget, finished: bool = False) -> None:
        save_checkpoint(
            self.latest_path,
            {
                "kind": "srcnn",
                "model": self.model.state_dict(),
                "model_config": self.model.config,
                "optimizer": self.optimizer.state_dict(),
                "early_stopping": self.stopper.state_dict(),
                "history": self.log_rows,
                "best": self.best,
                "epoch": self.epoch,
                "elapsed_s": budget.elapsed(),
                "passed_s": self.passed_s,
                "stopped": self.stopped,
                "finished": finished,
                "rng": rng_state(),
                "run_config": self.run_id(),
                "config": self.cfg.to_dict(),
                "result": self.result() if finished else None,
                "device": str(self.device),
                "seed": self.cfg.seed,
                "versions": package_versions(),
            },
        )

    def result(self) -> dict[str, Any]:
        assert self.best is not None
        return {
            "best": {k: v for k, v in self.best.items() if k != "model"},
            "epochs": self.epoch,
            "stopped": self.stopped,
            "bicubic": self.baseline,
        }

    # -- one epoch -----------------------------------------------------------------------------
    def train_epoch(self) -> tuple[float, int, float]:
        """One pass over shuffled training slices or random patches.

        Returns the mean training MSE, the number of samples and the seconds it took.
        """
        cfg = self.cfg
        self.model.train()
        n_train, (height, width) = len(self.train_in), self.train_out.shape[1:]
        if cfg.patch_size is None:
            order = torch.randperm(n_train)
        else:
            order = torch.randperm(n_train * cfg.patches_per_image) % n_train
            p = cfg.patch_size
            y0 = torch.randint(0, height - p + 1, (len(order),))
            x0 = torch.randint(0, width - p + 1, (len(order),))
        total, count, t0 = 0.0, 0, time.perf_counter()
        for start in range(0, len(order), cfg.batch_size):
            sl = slice(start, start + cfg.batch_size)
            idx = order[sl].to(self.device)
            if cfg.patch_size is None:
                x, y = self.train_in[idx], self.train_out[idx]
            else:
                ys, xs = y0[sl].to(self.device), x0[sl].to(self.device)
                x = _random_crops(self.train_in, idx, ys, xs, p)
                y = _random_crops(self.train_out, idx, ys, xs, p)
            x, y = _to_unit(x), _to_unit(y)
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss_fn(self.model(x), y)
            loss.backward()
            self.optimizer.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        return total / count, count, time.perf_counter() - t0

    def run_epoch(self, budget: Budget) -> dict:
        """Train and validate epoch ``self.epoch + 1``; returns its log row."""
        assert self.baseline is not None
        self.epoch += 1
        train_mse, count, train_s = self.train_epoch()
        val = evaluate(self.model, self.val_in, self.val_out, self.cfg.val_batch_size)
        row = {
            "epoch": self.epoch,
            "train_mse": train_mse,
            "val_mse": val["mse"],
            "val_psnr": val["psnr"],
            "val_ssim": val["ssim"],
            "bicubic_mse": self.baseline["mse"],
            "bicubic_psnr": self.baseline["psnr"],
            "bicubic_ssim": self.baseline["ssim"],
            "elapsed_s": round(budget.elapsed(), 3),
            "images_per_s": round(count / train_s, 3) if train_s > 0 else math.nan,
            "seed": self.cfg.seed,
        }
        self.log_rows.append(row)
        return row

    def check_finite(self, row: dict) -> None:
        if not all(math.isfinite(v) for v in (row["train_mse"], row["val_mse"])):
            raise FloatingPointError(
                f"SRCNN training diverged at epoch {self.epoch} (loss {row['train_mse']})"
            )

    def keep_if_best(self, row: dict) -> None:
        """Make this epoch ``best.pt`` if it has the best PSNR (SSIM breaking ties)."""
        if is_better(row["val_psnr"], row["val_ssim"], self.best, self.cfg.decimals):
            self.best = {
                "epoch": self.epoch,
                "val_mse": row["val_mse"],
                "val_psnr": row["val_psnr"],
                "val_ssim": row["val_ssim"],
                "model": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
            }
            self.save_best()

    def update_stop(self, row: dict) -> None:
        """Early stopping on the validation MSE, then the epoch cap."""
        if self.stopper.step(row["val_mse"]):
            self.stopped = "early_stopping"
        elif self.epoch >= self.cfg.max_epochs:
            self.stopped = "max_epochs"

    def budget_left(self, budget: Budget) -> bool:
        """Checked before every epoch: False (and stopped = "budget") once it is spent."""
        elapsed = budget.elapsed()
        if elapsed >= budget.minutes * 60.0:
            self.stopped = "budget"
            return False
        self.passed_s = elapsed
        return True

    # -- the steps of run_training ---------------------------------------------------------
    @property
    def budget_minutes(self) -> float:
        return math.inf if self.cfg.budget_minutes is None else self.cfg.budget_minutes

    @property
    def max_epochs(self) -> int:
        return self.cfg.max_epochs

    def begin(self, budget: Budget) -> None:
        """The bicubic baseline of the val pairs; best.pt again (a resumed run's)."""
        self.baseline = evaluate(None, self.val_in, self.val_out, self.cfg.val_batch_size)
        self.save_best()

    def reason_before(self, budget: Budget, first: bool) -> str | None:
        """Early stopped, the epoch cap or the budget (checked before every epoch)."""
        if self.stopped is not None:
            return self.stopped
        if self.epoch >= self.cfg.max_epochs:
            return "max_epochs"
        return None if self.budget_left(budget) else "budget"

    def next_epoch(self, flag: StopSignal, budget: Budget) -> dict:
        return self.run_epoch(budget)

    def reason_after(self, row: dict, budget: Budget) -> str | None:
        self.check_finite(row)
        self.keep_if_best(row)
        self.update_stop(row)
        return self.stopped

    def checkpoint(self, budget: Budget, reason: str | None, force: bool = False) -> None:
        """``latest.pt`` after every epoch."""
        self.save_latest(budget)

    def postfix(self, row: dict) -> dict[str, Any]:
        assert self.best is not None
        return {
            "psnr": f"{row['val_psnr']:.2f}",
            "best": self.best["epoch"],
            "bad": self.stopper.bad_epochs,
        }

    def finish(self, budget: Budget, reason: str | None) -> dict[str, Any]:
        if self.stopped is None:
            self.stopped = reason or "max_epochs"
        if self.best is None:
            raise DataError(
                f"{self.out_dir}: no epoch was trained (max_epochs={self.cfg.max_epochs})"
            )
        self.save_latest(budget, finished=True)
        assert self.baseline is not None
        log.info(
            "SRCNN stopped (%s) after epoch %d; best epoch %d: PSNR %.3f dB, SSIM %.4f "
            "(bicubic %.3f dB, %.4f)",
            self.stopped,
            self.epoch,
            self.best["epoch"],
            self.best["val_psnr"],
            self.best["val_ssim"],
            self.baseline["psnr"],
            self.baseline["ssim"],
        )
        return self.result()


def _run_config(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k not in RESUMABLE_CHANGES}


def train_srcnn(
    cfg: SRCNNTrainConfig | Mapping[str, Any],
    data: SRCNNData,
    out_dir: str | os.PathLike,
    *,
    stop: StopSignal | None = None,
    on_epoch_end: Callable[[dict], None] | None = None,
    progress_bar: bool = True,
    restart_on_mismatch: bool = True,
) -> dict[str, Any]:
    """Train SRCNN on the split's train pairs, validating on its val pairs every epoch.

    The signature of every trainer (:func:`~tomosynth.train.common.run_training` drives it).
    Writes into `out_dir`: ``best.pt`` (best epoch by PSNR, SSIM breaking ties),
    ``log.csv`` (one row per epoch, see :data:`LOG_FIELDS`) and ``latest.pt`` (resume
    state, including the best weights and the log rows, so a rerun continues where the last
    one stopped even if the other two files were removed). A ``latest.pt`` of other pairs
    or settings (other than :data:`RESUMABLE_CHANGES`) is discarded; a finished one of the
    same pairs and settings is published again without training
    (:class:`~tomosynth.train.common.ResumableRun`).

    Parameters
    ----------
    cfg : SRCNNTrainConfig or mapping of its keys (unknown keys raise ConfigError)
    data : SRCNNData (low- and high-resolution folders, split manifest)
    out_dir : model folder
    stop, on_epoch_end, progress_bar, restart_on_mismatch :
        See :func:`~tomosynth.train.common.run_training`.

    Returns
    -------
    dict with ``best`` (epoch and val metrics of best.pt), ``epochs`` run, ``stopped``
    ("early_stopping", "max_epochs" or "budget") and the bicubic baseline metrics.
    """
    if not isinstance(cfg, SRCNNTrainConfig):
        cfg = SRCNNTrainConfig.from_dict(dict(cfg))
    run = _SRCNNRun(data, Path(out_dir), cfg)
    return run_training(
        run,
        stop=stop,
        on_epoch_end=on_epoch_end,
        progress_bar=progress_bar,
        restart_on_mismatch=restart_on_mismatch,
    )

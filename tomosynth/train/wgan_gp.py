"""WGAN-GP training under a wall-clock budget, with preemption-safe resume, and sampling.

Files in a model folder ``out_dir``:

- ``final.pt``: written once training ends (budget spent or epoch cap reached).
- ``log.csv``: one row per epoch (rewritten from ``latest.pt`` on resume).
- ``progress/``: grids from a fixed latent batch every ``progress_every`` epochs, published
  when training ends.
- ``latest.pt``: resume state of an unfinished training (models, optimisers, RNG, epoch,
  budget spent, log rows, the position inside an interrupted epoch). ``progress_live/``: the
  progress grids as they are written. Neither is a declared Snakemake output, so they survive Snakemake deleting the
  declared outputs before it reruns (or after it fails) a job; that is what lets a rerun resume.
  A ``latest.pt`` from other data or settings is not resumed: training starts over. A
  finished one whose data and settings match (the job was interrupted after training, or
  its outputs were deleted) is published again as ``final.pt`` without retraining; delete
  ``latest.pt`` to train again from scratch.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from tomosynth.errors import ConfigError, DataError
from tomosynth.io import atomic_dir, read_json, read_png_stack, write_png
from tomosynth.models.wgan_gp import (
    WganGpConfig,
    build_models,
    generated_uint8,
    load_wgan_generator,
)
from tomosynth.train.common import (
    DEFAULT_CHECKPOINT_MINUTES,
    Budget,
    CsvLog,
    ResumableRun,
    ResumeDecision,
    RunRecord,
    StopRequested,
    StopSignal,
    data_digest,
    device_name,
    load_checkpoint,
    package_versions,
    reject_unknown_keys,
    rng_state,
    save_checkpoint,
    seed_everything,
    select_device,
    set_rng_state,
)

#: ``save_s``: seconds spent writing checkpoints so far (all runs), excluded from ``wall_s``.
LOG_FIELDS = [
    "epoch",
    "wall_s",
    "g_loss",
    "c_loss",
    "gp",
    "wasserstein",
    "images_per_s",
    "save_s",
]
#: Keys of the run config that may differ between a checkpoint and its resumption.
RESUMABLE_CHANGES = frozenset(
    {"device", "budget_minutes", "max_epochs", "checkpoint_every", "checkpoint_minutes"}
)
#: Keys that may differ for a finished ``latest.pt`` to be published again without training.
REPUBLISH_IGNORES = frozenset({"device", "checkpoint_every"})


@dataclass
class TrainConfig:
    """Hyper-parameters of one WGAN-GP training; defaults are the thesis' (sections 4.2.3, 5.2).

    The thesis kept the PyTorch-GAN WGAN-GP example's settings (Adam lr 2e-4, betas
    (0.5, 0.999), batch 64, n_critic 5, lambda 10, latent 100) and raised the latent size
    to 200 at 256 px; Gulrajani et al. used lr 1e-4, betas (0.0, 0.9). ``channels_last`` and
    ``amp`` are not thesis settings (off here as in the schema; config/fast.yaml turns them
    on): channels-last only changes the memory layout (faster convolutions).
    """

    seed: int = 0
    device: str = "auto"
    budget_minutes: float = 240.0
    max_epochs: int = 1_000_000
    batch_size: int = 64
    n_critic: int = 5
    lambda_gp: float = 10.0
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    latent_dim: int = 100
    channel_multiplier: float = 1.0
    max_channels: int | None = None
    progress_every: int = 5
    progress_images: int = 16
    checkpoint_every: int | None = None
    checkpoint_minutes: float = DEFAULT_CHECKPOINT_MINUTES
    amp: bool = False
    channels_last: bool = False

    @classmethod
    def from_dict(cls, cfg: dict[str, Any]) -> TrainConfig:
        """Build from a config mapping; unknown keys and bad values raise ConfigError."""
        reject_unknown_keys(cls, cfg, "wgan_gp")
        out = cls(**cfg)
        out.betas = tuple(float(b) for b in out.betas)  # type: ignore[assignment]
        out.validate()
        return out

    def validate(self) -> None:
        checks = {
            "budget_minutes": self.budget_minutes > 0,
            "max_epochs": self.max_epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "n_critic": self.n_critic >= 1,
            "lambda_gp": self.lambda_gp >= 0,
            "lr": self.lr > 0,
            "betas": len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            "latent_dim": self.latent_dim >= 1,
            "progress_every": self.progress_every >= 1,
            "progress_images": self.progress_images >= 1,
            "checkpoint_every": self.checkpoint_every is None or self.checkpoint_every >= 1,
            "checkpoint_minutes": self.checkpoint_minutes >= 0,
        }
        for key, ok in checks.items():
            if not ok:
                raise ConfigError(f"wgan_gp {key}: invalid value {getattr(self, key)!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d


def load_train_images(png_dir: str | os.PathLike, split_json: str | os.PathLike) -> np.ndarray:
    """The training split's 8-bit slices ``(n, size, size)`` uint8, in manifest order."""
    split = read_json(split_json)
    names = split.get("train") if isinstance(split, dict) else None
    if not names:
        raise DataError(f"{split_json}: no 'train' list of PNG names")
    stack = read_png_stack(png_dir, names)
    if stack.shape[1] != stack.shape[2]:
        raise DataError(f"{png_dir}: slices are {stack.shape[1:]} px, expected square images")
    return stack


def to_model_range(stack: np.ndarray) -> torch.Tensor:
    """uint8 0..255 ``(n, h, w)`` -> float32 ``(n, 1, h, w)`` in [-1, 1]."""
    return torch.from_numpy(stack.astype(np.float32)).unsqueeze(1) / 127.5 - 1.0


def image_grid(images: np.ndarray, ncols: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile uint8 images ``(n, h, w)`` into one uint8 grid with `pad` black pixels between."""
    n, h, w = images.shape
    ncols = ncols or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    grid = np.zeros((nrows * (h + pad) + pad, ncols * (w + pad) + pad), dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, ncols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        grid[y : y + h, x : x + w] = images[i]
    return grid


def _full(x: torch.Tensor) -> torch.Tensor:
    """float32 for half-precision tensors (autocast), unchanged otherwise."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def critic_losses(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    alpha: torch.Tensor,
    lambda_gp: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Critic loss (eq. 4), gradient penalty and Wasserstein estimate.

    Real and generated samples go through the critic as one batch (it has no batch
    statistics, so this equals two passes); the interpolates get their own pass, because
    the double backward of the penalty would otherwise run over all three batches. The
    result equals ``mean D(fake) - mean D(real) + gradient_penalty(...)``.
    """
    n = real.shape[0]
    scores = _full(critic(torch.cat([real, fake])))
    wasserstein = scores[:n].mean() - scores[n:].mean()
    a = alpha.view(n, *([1] * (real.dim() - 1))).to(real.dtype)
    x_hat = (a * real + (1 - a) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(_full(critic(x_hat)).sum(), x_hat, create_graph=True)
    gp = lambda_gp * ((_full(grad).flatten(1).norm(2, dim=1) - 1) ** 2).mean()
    return gp - wasserstein, gp, wasserstein


class _Trainer:
    """State of one training run; see :func:`train_wgan_gp`."""

    def __init__(
        self, images: torch.Tensor, out_dir: Path, cfg: TrainConfig, data_sha256: str = ""
    ) -> None:
        self.cfg = cfg
        self.data_sha256 = data_sha256
        self.out_dir = out_dir
        self.device = select_device(cfg.device)
        size = images.shape[-1]
        self.model_cfg = WganGpConfig(
            size, cfg.latent_dim, cfg.channel_multiplier, cfg.max_channels
        )
        seed_everything(cfg.seed)
        self.gen, self.critic = build_models(self.model_cfg)
        # channels-last lets oneDNN (CPU) and cuDNN pick faster convolutions (4x on CPU here).
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.gen.to(self.device, memory_format=self.memory_format)
        self.critic.to(self.device, memory_format=self.memory_format)
        self.opt_g = torch.optim.Adam(self.gen.parameters(), lr=cfg.lr, betas=cfg.betas)
        self.opt_c = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr, betas=cfg.betas)
        self.images = images.to(self.device).contiguous(memory_format=self.memory_format)
        # The progress latents come from their own generator so they are the same in every run.
        self.fixed_z = torch.randn(
            cfg.progress_images, cfg.latent_dim, generator=torch.Generator().manual_seed(cfg.seed)
        )
        self.epoch = 0  # completed epochs
        self.spent_s = 0.0
        self.save_s = 0.0  # checkpoint-writing seconds, all runs, excluded from the budget
        self.log_rows: list[dict] = []
        # Position inside an interrupted epoch: permutation, next batch, running sums.
        self.perm: torch.Tensor | None = None
        self.batch = 0
        self.sums = self._zero_sums()
        self.autocast = cfg.amp and self.device.type == "cuda"

    @staticmethod
    def _zero_sums() -> dict[str, float]:
        return {"g": 0.0, "ng": 0, "c": 0.0, "gp": 0.0, "w": 0.0, "nc": 0, "images": 0, "t": 0.0}

    # -- checkpoints -----------------------------------------------------------------------
    def state(self, budget: Budget, finished: bool) -> dict:
        return {
            "kind": "wgan_gp",
            "epoch": self.epoch,
            "elapsed_s": budget.elapsed(),
            "save_s": self.save_s,
            "finished": finished,
            "generator": self.gen.state_dict(),
            "critic": self.critic.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_c": self.opt_c.state_dict(),
            "rng": rng_state(),
            "fixed_z": self.fixed_z,
            "perm": None if self.perm is None else self.perm.cpu(),
            "batch": self.batch,
            "sums": dict(self.sums),
            "log": list(self.log_rows),
            "model_config": self.model_cfg.to_dict(),
            "run_config": self.cfg.to_dict(),
            "seed": self.cfg.seed,
            "device": str(self.device),  # the device used, not the configured preference
            "device_name": device_name(self.device),  # e.g. the GPU model
            "data_sha256": self.data_sha256,
            "versions": package_versions(),
        }

    def resumable_run(self) -> ResumableRun:
        """This run's identity for the resume policy (the model config counts as a setting)."""
        return ResumableRun(
            kind="wgan_gp",
            config={**self.cfg.to_dict(), "model_config": self.model_cfg.to_dict()},
            data_digest=self.data_sha256,
            max_epochs=self.cfg.max_epochs,
            budget_s=self.cfg.budget_minutes * 60,
            resumable_keys=RESUMABLE_CHANGES,
            # Only the device may differ for a finished run to be published again: any other
            # difference (budget and epoch cap included) trains again.
            republish_ignores=REPUBLISH_IGNORES,
            continue_finished=False,
        )

    @staticmethod
    def record(ckpt: dict) -> RunRecord:
        """What `ckpt` says about its run; the budget checks passed are read from its log."""
        log = ckpt.get("log") or []
        # A checkpoint at an epoch end has not passed the budget check of its last row yet.
        done = log if ckpt.get("perm") is not None else log[:-1]
        return RunRecord(
            kind=ckpt.get("kind"),
            config={**ckpt.get("run_config", {}), "model_config": ckpt.get("model_config")},
            data_digest=ckpt.get("data_sha256"),
            finished=bool(ckpt.get("finished")),
            epoch=int(ckpt.get("epoch", 0)),
            passed_s=max((float(r["wall_s"]) for r in done), default=0.0),
        )

    def decide(self, ckpt: dict | None) -> ResumeDecision:
        """Resume, republish or start over from `ckpt` (a ``latest.pt``), with the reason."""
        return self.resumable_run().decide(None if ckpt is None else self.record(ckpt))

    def compatible(self, ckpt: dict) -> str | None:
        """Why `ckpt` cannot be resumed by this run (None if it can)."""
        decision = self.decide(ckpt)
        return None if decision.resume else decision.reason

    def restore(self, ckpt: dict) -> None:
        self.gen.load_state_dict(ckpt["generator"], strict=True)
        self.critic.load_state_dict(ckpt["critic"], strict=True)
        self.opt_g.load_state_dict(ckpt["opt_g"])
        self.opt_c.load_state_dict(ckpt["opt_c"])
        set_rng_state(ckpt["rng"])
        self.epoch = int(ckpt["epoch"])
        self.spent_s = float(ckpt["elapsed_s"])
        self.save_s = float(ckpt.get("save_s", 0.0))
        self.log_rows = list(ckpt["log"])
        self.perm = None if ckpt["perm"] is None else ckpt["perm"].to(self.device)
        self.batch = int(ckpt["batch"])
        self.sums = dict(ckpt["sums"])

    # -- one optimisation step each ---------------------------------------------------------
    def critic_step(self, real: torch.Tensor) -> None:
        n = real.shape[0]
        z = torch.randn(n, self.cfg.latent_dim, device=self.device)
        alpha = torch.rand(n, device=self.device)
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.autocast):
            with torch.no_grad():  # the critic step needs no graph through the generator
                fake = self.gen(z)
            loss, gp, w = critic_losses(
                self.critic, real, fake.to(real.dtype), alpha, self.cfg.lambda_gp
            )
        self.opt_c.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_c.step()
        s = self.sums
        s["c"] += loss.item()
        s["gp"] += gp.item()
        s["w"] += w.item()
        s["nc"] += 1
        s["images"] += n

    def generator_step(self, n: int) -> None:
        z = torch.randn(n, self.cfg.latent_dim, device=self.device)
        self.critic.requires_grad_(False)  # no critic weight gradients in the generator step
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.autocast):
            loss = -_full(self.critic(self.gen(z))).mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        self.critic.requires_grad_(True)
        self.sums["g"] += loss.item()
        self.sums["ng"] += 1

    def run_epoch(self, stop: StopSignal) -> bool:
        """Train the rest of the current epoch; False if a stop signal interrupted it."""
        n = self.images.shape[0]
        bs = self.cfg.batch_size
        if self.perm is None:
            self.perm = torch.randperm(n).to(self.device)
            self.batch = 0
            self.sums = self._zero_sums()
        n_batches = math.ceil(n / bs)
        t0 = time.perf_counter()
        try:
            while self.batch < n_batches:
                if stop.requested:
                    return False
                idx = self.perm[self.batch * bs : (self.batch + 1) * bs]
                self.critic_step(self.images[idx])
                # As in the PyTorch-GAN example the thesis used: one generator step per n_critic
                # critic steps, on the batches i with i % n_critic == 0.
                if self.batch % self.cfg.n_critic == 0:
                    self.generator_step(idx.shape[0])
                self.batch += 1
        finally:
            self.sums["t"] += time.perf_counter() - t0
        return True

    def finish_epoch(self) -> dict:
        s = self.sums
        self.epoch += 1
        row = {
            "epoch": self.epoch,
            "wall_s": math.nan,  # set by the caller at the budget check
            "g_loss": s["g"] / max(s["ng"], 1),
            "c_loss": s["c"] / max(s["nc"], 1),
            "gp": s["gp"] / max(s["nc"], 1),
            "wasserstein": s["w"] / max(s["nc"], 1),
            "images_per_s": round(s["images"] / max(s["t"], 1e-9), 2),
            "save_s": math.nan,  # set by the caller at the budget check
        }
        self.log_rows.append(row)
        self.perm = None
        self.batch = 0
        self.sums = self._zero_sums()
        return row

    @torch.no_grad()
    def progress_grid(self) -> np.ndarray:
        imgs = self.gen(self.fixed_z.to(self.device))
        return image_grid(generated_uint8(imgs))


def _publish_progress(live: Path, final: Path) -> None:
    """Copy the live progress grids to the declared `final` folder, atomically (hard links)."""
    with atomic_dir(final) as tmp:
        for src in sorted(live.glob("epoch_*.png")) if live.is_dir() else []:
            try:
                os.link(src, tmp / src.name)
            except OSError:
                shutil.copy2(src, tmp / src.name)


def _republish(ckpt: dict, out: Path) -> dict:
    """Publish a finished ``latest.pt`` again: ``final.pt``, ``log.csv`` and ``progress/``.

    Used when the outputs were removed after training ended (Snakemake marks the outputs of
    an interrupted job incomplete and deletes them; a user deleted them), so that the
    training budget already spent is not spent again.
    """
    live = out / "progress_live"
    (out / "log.csv").unlink(missing_ok=True)
    log = CsvLog(out / "log.csv", LOG_FIELDS)
    for row in ckpt["log"]:
        log.append(row)
    _publish_progress(live, out / "progress")
    save_checkpoint(out / "final.pt", ckpt)
    print(
        f"{out / 'latest.pt'} is a finished training of the same data and settings "
        f"({ckpt['epoch']} epochs, {ckpt.get('stop_reason')}); published it again as final.pt "
        "without retraining (delete latest.pt to train from scratch)",
        file=sys.stderr,
    )
    return ckpt


def train_wgan_gp(
    png_dir: str | os.PathLike,
    split_json: str | os.PathLike,
    out_dir: str | os.PathLike,
    cfg: dict[str, Any] | TrainConfig,
    stop: StopSignal | None = None,
    on_epoch_end: Callable[[dict], None] | None = None,
    progress_bar: bool = True,
) -> dict:
    """Train a WGAN-GP on the training split of one PNG folder, resuming from ``latest.pt``.

    Parameters
    ----------
    png_dir : path-like
        Folder of square 8-bit PNG slices (one size, a power of two >= 16 px).
    split_json : path-like
        Split manifest; only its ``train`` names are used.
    out_dir : path-like
        Model folder (see the module docstring for its files).
    cfg : dict or TrainConfig
        Keys of :class:`TrainConfig`; missing keys take the thesis' values.
    stop : StopSignal, optional
        Stop flag to honour; by default one is installed for SIGTERM/SIGUSR1 during training.
    on_epoch_end : callable, optional
        Called with each epoch's log row (tests use it to request a stop).
    progress_bar : bool
        Show a tqdm bar with live losses on stderr.

    Returns
    -------
    dict
        The final checkpoint (also written to ``final.pt``).

    Raises
    ------
    StopRequested
        After ``latest.pt`` was written because a stop signal arrived; rerun to resume.
    """
    cfg = cfg if isinstance(cfg, TrainConfig) else TrainConfig.from_dict(dict(cfg))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    latest = out / "latest.pt"
    live = out / "progress_live"
    stack = load_train_images(png_dir, split_json)
    images = to_model_range(stack)
    trainer = _Trainer(images, out, cfg, data_digest(stack))

    ckpt = load_checkpoint(latest, map_location="cpu")
    decision = trainer.decide(ckpt)
    if decision.republish:
        return _republish(ckpt, out)
    log = _open_run(trainer, ckpt, decision, out)

    budget = Budget(cfg.budget_minutes, trainer.spent_s)
    own_stop = stop is None
    stop_ctx = StopSignal() if own_stop else stop
    bar = tqdm(
        total=cfg.max_epochs,
        initial=trainer.epoch,
        desc=f"wgan_gp {images.shape[-1]}px",
        unit="epoch",
        file=sys.stderr,
        disable=not progress_bar,
        mininterval=1.0,
    )
    reason = _initial_reason(trainer, cfg, budget)
    last_save = time.monotonic()

    def checkpoint(finished: bool = False) -> dict:
        """Write latest.pt outside the budget (its seconds go to the log's save_s)."""
        nonlocal last_save
        state = trainer.state(budget, finished=finished)
        t0 = time.monotonic()
        with budget.paused():
            save_checkpoint(latest, state)
        trainer.save_s += time.monotonic() - t0
        last_save = time.monotonic()
        return state

    try:
        with stop_ctx if own_stop else contextlib.nullcontext(stop_ctx) as flag:
            while reason is None:
                if not trainer.run_epoch(flag):
                    checkpoint()
                    raise StopRequested(
                        f"stopped by signal {flag.signum} in epoch {trainer.epoch + 1}; "
                        f"{latest} saved, rerun to resume",
                        signum=flag.signum,
                    )
                reason = _end_epoch(trainer, cfg, budget, log, bar, live, on_epoch_end)
                due = _checkpoint_due(trainer, cfg, last_save)
                stop_now = reason is None and flag.requested  # read the flag once
                if reason is None and (due or stop_now):
                    checkpoint()
                if stop_now:
                    raise StopRequested(
                        f"stopped by signal {flag.signum} after epoch {trainer.epoch}; "
                        f"{latest} saved, rerun to resume",
                        signum=flag.signum,
                    )
    finally:
        bar.close()

    return _finish(trainer, budget, reason, out)


def _open_run(trainer: _Trainer, ckpt: dict | None, decision: Any, out: Path) -> CsvLog:
    """Resume from `ckpt` or start over (deleting stale outputs); rebuild log.csv."""
    latest, final, live = out / "latest.pt", out / "final.pt", out / "progress_live"
    if decision.resume:
        trainer.restore(ckpt)
        print(
            f"resuming {latest} at epoch {trainer.epoch}, {trainer.spent_s:.1f} s spent",
            file=sys.stderr,
        )
    elif decision.start_over:
        print(f"not resuming {latest}: {decision.reason}; starting over", file=sys.stderr)
        ckpt = None
    if ckpt is None:
        for stale in (final, out / "log.csv"):  # latest.pt stays until replaced
            stale.unlink(missing_ok=True)
        shutil.rmtree(live, ignore_errors=True)
    final.unlink(missing_ok=True)
    live.mkdir(exist_ok=True)
    # log.csv is a declared output that Snakemake may have deleted: rebuild it from the
    # checkpoint's rows (this also drops rows of epochs logged after the last checkpoint).
    (out / "log.csv").unlink(missing_ok=True)
    log = CsvLog(out / "log.csv", LOG_FIELDS)
    for row in trainer.log_rows:
        log.append(row)
    return log


def _initial_reason(trainer: _Trainer, cfg: TrainConfig, budget: Budget) -> str | None:
    """Why no epoch is to run at all (``None``: train)."""
    if trainer.epoch >= cfg.max_epochs:
        return "max_epochs"
    if trainer.epoch > 0 and trainer.perm is None and budget.exhausted():
        return "budget"
    return None


def _end_epoch(
    trainer: _Trainer,
    cfg: TrainConfig,
    budget: Budget,
    log: CsvLog,
    bar: Any,
    live: Path,
    on_epoch_end: Callable[[dict], None] | None,
) -> str | None:
    """Log a finished epoch (progress grid, log row, bar); the reason to stop, if any."""
    row = trainer.finish_epoch()
    if trainer.epoch % cfg.progress_every == 0:
        write_png(live / f"epoch_{trainer.epoch:05d}.png", trainer.progress_grid())
    # The budget is checked only here, at the end of an epoch and after its progress
    # grid (thesis 5.2); the log records the wall-clock time the check saw.
    row["wall_s"] = budget.elapsed()
    row["save_s"] = round(trainer.save_s, 3)
    log.append(row)
    bar.update(1)
    bar.set_postfix(
        g=f"{row['g_loss']:.3g}",
        c=f"{row['c_loss']:.3g}",
        w=f"{row['wasserstein']:.3g}",
    )
    if on_epoch_end is not None:
        on_epoch_end(row)
    if trainer.epoch >= cfg.max_epochs:
        return "max_epochs"
    if row["wall_s"] >= cfg.budget_minutes * 60:
        return "budget"
    return None


def _checkpoint_due(trainer: _Trainer, cfg: TrainConfig, last_save: float) -> bool:
    """Checkpoints on wall time (checkpoint_minutes; 0 = every epoch) or every
    checkpoint_every epochs (and always at a stop signal, which the caller handles)."""
    return time.monotonic() - last_save >= cfg.checkpoint_minutes * 60 or (
        cfg.checkpoint_every is not None and trainer.epoch % cfg.checkpoint_every == 0
    )


def _finish(trainer: _Trainer, budget: Budget, reason: str | None, out: Path) -> dict:
    """Last progress grid, then latest.pt, progress/ and final.pt; returns the final state."""
    latest, final, live = out / "latest.pt", out / "final.pt", out / "progress_live"
    if not (live / f"epoch_{trainer.epoch:05d}.png").exists():
        write_png(live / f"epoch_{trainer.epoch:05d}.png", trainer.progress_grid())
    state = trainer.state(budget, finished=True)
    state["stop_reason"] = reason
    with budget.paused():
        save_checkpoint(latest, state)
        _publish_progress(live, out / "progress")
        save_checkpoint(final, state)
    print(
        f"finished after {trainer.epoch} epochs ({reason}), {budget.elapsed():.1f} s",
        file=sys.stderr,
    )
    return state


def sample_wgan_gp(
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    n: int,
    seed: int,
    batch: int = 100,
    contact_sheet: str | os.PathLike | None = None,
    contact_images: int = 64,
    device: str = "auto",
) -> list[Path]:
    """Write `n` generated slices ``sample_{i:05d}.png`` (uint8 0..255) and a contact sheet.

    Parameters
    ----------
    model_dir : path-like
        Model folder with ``final.pt`` (or the checkpoint file itself).
    out_dir : path-like
        Folder of the samples, written atomically (only the samples: metrics read every PNG).
    n, seed, batch : int
        Number of images, latent seed and images per generator call. The latents are drawn on
        the CPU, so a seed gives the same latents on every device.
    contact_sheet : path-like, optional
        PNG grid of the first `contact_images` samples.
    """
    if n < 1 or batch < 1:
        raise ConfigError(f"sample_wgan_gp: n and batch must be >= 1, got {n}, {batch}")
    model_dir = Path(model_dir)
    ckpt_path = model_dir / "final.pt" if model_dir.is_dir() else model_dir
    dev = select_device(device)
    gen, _ = load_wgan_generator(ckpt_path, dev)
    # All latents drawn at once on the CPU: the images depend on the seed, not on batch or device.
    z_all = torch.randn(n, gen.latent_dim, generator=torch.Generator().manual_seed(seed))
    first: list[np.ndarray] = []
    with atomic_dir(out_dir) as tmp:
        with torch.no_grad():
            for start in tqdm(range(0, n, batch), desc="sample wgan_gp", file=sys.stderr):
                imgs = generated_uint8(gen(z_all[start : start + batch].to(dev)))
                for j, img in enumerate(imgs):
                    write_png(tmp / f"sample_{start + j:05d}.png", img)
                    if len(first) < contact_images:
                        first.append(img)
    written = sorted(Path(out_dir).glob("sample_*.png"))
    if contact_sheet is not None:
        sheet = image_grid(np.stack(first))
        write_png(contact_sheet, sheet)
    return written


__all__ = [
    "LOG_FIELDS",
    "TrainConfig",
    "critic_losses",
    "image_grid",
    "load_train_images",
    "sample_wgan_gp",
    "train_wgan_gp",
]

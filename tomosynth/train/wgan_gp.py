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

import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping
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
    say,
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


class _Trainer(TrainingRun):
    """State of one training run, in the steps of :func:`~tomosynth.train.common.run_training`;
    see :func:`train_wgan_gp`."""

    kind = "wgan_gp"
    log_fields = LOG_FIELDS
    stale_outputs = ("final.pt", "log.csv", "progress_live")  # latest.pt stays until replaced
    republished = "it again as final.pt"

    def __init__(
        self, images: torch.Tensor, out_dir: Path, cfg: TrainConfig, data_sha256: str = ""
    ) -> None:
        self.cfg = cfg
        self.data_sha256 = data_sha256
        self.out_dir = out_dir
        self.latest_path, self.log_path = out_dir / "latest.pt", out_dir / "log.csv"
        self.live = out_dir / "progress_live"
        self.device = select_device(cfg.device)
        size = images.shape[-1]
        self.label = f"wgan_gp {size}px"
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
        self.last_save = time.monotonic()

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

    # -- the steps of run_training -----------------------------------------------------------
    @property
    def budget_minutes(self) -> float:
        return self.cfg.budget_minutes

    @property
    def max_epochs(self) -> int:
        return self.cfg.max_epochs

    def republish(self, ckpt: dict) -> dict:
        """Publish a finished ``latest.pt`` again: ``final.pt``, ``log.csv`` and ``progress/``.

        Used when the outputs were removed after training ended (Snakemake marks the outputs
        of an interrupted job incomplete and deletes them; a user deleted them), so that the
        training budget already spent is not spent again.
        """
        self.log_rows = list(ckpt["log"])
        self.write_log()
        _publish_progress(self.live, self.out_dir / "progress")
        save_checkpoint(self.out_dir / "final.pt", ckpt)
        return ckpt

    def begin(self, budget: Budget) -> None:
        (self.out_dir / "final.pt").unlink(missing_ok=True)
        self.live.mkdir(exist_ok=True)
        self.last_save = time.monotonic()

    def reason_before(self, budget: Budget, first: bool) -> str | None:
        """Why no epoch is to run at all (checked once; later the epoch ends decide)."""
        if not first:
            return None
        if self.epoch >= self.cfg.max_epochs:
            return "max_epochs"
        if self.epoch > 0 and self.perm is None and budget.exhausted():
            return "budget"
        return None

    def next_epoch(self, flag: StopSignal, budget: Budget) -> dict | None:
        """The rest of the current epoch, its progress grid and its log row."""
        if not self.run_epoch(flag):
            return None
        row = self.finish_epoch()
        if self.epoch % self.cfg.progress_every == 0:
            write_png(self.live / f"epoch_{self.epoch:05d}.png", self.progress_grid())
        # The budget is checked only here, at the end of an epoch and after its progress
        # grid (thesis 5.2); the log records the wall-clock time the check saw.
        row["wall_s"] = budget.elapsed()
        row["save_s"] = round(self.save_s, 3)
        return row

    def reason_after(self, row: dict, budget: Budget) -> str | None:
        if self.epoch >= self.cfg.max_epochs:
            return "max_epochs"
        if row["wall_s"] >= self.cfg.budget_minutes * 60:
            return "budget"
        return None

    def checkpoint(self, budget: Budget, reason: str | None, force: bool = False) -> None:
        """Checkpoints on wall time (checkpoint_minutes; 0 = every epoch) or every
        checkpoint_every epochs, and at a stop signal (`force`)."""
        cfg = self.cfg
        due = time.monotonic() - self.last_save >= cfg.checkpoint_minutes * 60 or (
            cfg.checkpoint_every is not None and self.epoch % cfg.checkpoint_every == 0
        )
        if force or (reason is None and due):
            self.save_latest(budget)

    def save_latest(self, budget: Budget) -> None:
        """Write latest.pt outside the budget (its seconds go to the log's save_s)."""
        state = self.state(budget, finished=False)
        t0 = time.monotonic()
        with budget.paused():
            save_checkpoint(self.latest_path, state)
        self.save_s += time.monotonic() - t0
        self.last_save = time.monotonic()

    def postfix(self, row: dict) -> dict[str, Any]:
        return {
            "g": f"{row['g_loss']:.3g}",
            "c": f"{row['c_loss']:.3g}",
            "w": f"{row['wasserstein']:.3g}",
        }

    def finish(self, budget: Budget, reason: str | None) -> dict:
        """Last progress grid, then latest.pt, progress/ and final.pt; the final state."""
        grid = self.live / f"epoch_{self.epoch:05d}.png"
        if not grid.exists():
            write_png(grid, self.progress_grid())
        state = self.state(budget, finished=True)
        state["stop_reason"] = reason
        with budget.paused():
            save_checkpoint(self.latest_path, state)
            _publish_progress(self.live, self.out_dir / "progress")
            save_checkpoint(self.out_dir / "final.pt", state)
        say(f"finished after {self.epoch} epochs ({reason}), {budget.elapsed():.1f} s")
        return state


def _publish_progress(live: Path, final: Path) -> None:
    """Copy the live progress grids to the declared `final` folder, atomically (hard links)."""
    with atomic_dir(final) as tmp:
        for src in sorted(live.glob("epoch_*.png")) if live.is_dir() else []:
            try:
                os.link(src, tmp / src.name)
            except OSError:
                shutil.copy2(src, tmp / src.name)


@dataclass(frozen=True)
class WganGpData:
    """The images a WGAN-GP trains on: a folder of square 8-bit PNG slices (one size, a power
    of two >= 16 px) and the split manifest whose ``train`` names are read."""

    png_dir: str | os.PathLike
    split: str | os.PathLike

    def load(self) -> np.ndarray:
        """The training slices ``(n, size, size)`` uint8, in manifest order."""
        return load_train_images(self.png_dir, self.split)


def train_wgan_gp(
    cfg: TrainConfig | Mapping[str, Any],
    data: WganGpData,
    out_dir: str | os.PathLike,
    *,
    stop: StopSignal | None = None,
    on_epoch_end: Callable[[dict], None] | None = None,
    progress_bar: bool = True,
    restart_on_mismatch: bool = True,
) -> dict:
    """Train a WGAN-GP on the training split of one PNG folder, resuming from ``latest.pt``.

    The signature of every trainer (:func:`~tomosynth.train.common.run_training` drives it).

    Parameters
    ----------
    cfg : TrainConfig or mapping
        Keys of :class:`TrainConfig` (unknown keys raise ConfigError); missing keys take the
        thesis' values.
    data : WganGpData
        PNG folder and split manifest.
    out_dir : path-like
        Model folder (see the module docstring for its files).
    stop, on_epoch_end, progress_bar, restart_on_mismatch :
        See :func:`~tomosynth.train.common.run_training`.

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
    stack = data.load()
    trainer = _Trainer(to_model_range(stack), Path(out_dir), cfg, data_digest(stack))
    return run_training(
        trainer,
        stop=stop,
        on_epoch_end=on_epoch_end,
        progress_bar=progress_bar,
        restart_on_mismatch=restart_on_mismatch,
    )


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
    "WganGpData",
    "critic_losses",
    "image_grid",
    "load_train_images",
    "sample_wgan_gp",
    "train_wgan_gp",
]

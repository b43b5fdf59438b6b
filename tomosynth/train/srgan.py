"""Training, inference and evaluation of the SRGAN family (bone SRGAN report, section 4).

Generator loss ``w_adv * L_adv + w_l1 * L1 + w_tv * TV`` with the weights of a preset (the
report's table rows a-f); least-squares adversarial losses; Adam; random aligned HR/LR
patches with rotations and flips; best generator by validation PSNR; resumable from
``latest.pt``. Images are float32 in [0, 1].
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tomosynth.errors import ConfigError
from tomosynth.losses import (
    l1_content,
    lr_pitch_penalty,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
    total_variation,
)
from tomosynth.metrics.image import psnr, ssim
from tomosynth.metrics.spectral import hf_energy, lr_pitch_ratio
from tomosynth.models.srgan import (
    GeneratorConfig,
    build_discriminator,
    build_generator,
)
from tomosynth.sr_data import (
    SRGANData,
    bicubic_downscale,
    bicubic_upscale,
    sample_patches,
)
from tomosynth.train.common import (
    Budget,
    ResumableRun,
    RunRecord,
    StopSignal,
    TrainingRun,
    data_digest,
    package_versions,
    reject_unknown_keys,
    rng_state,
    run_training,
    save_checkpoint,
    seed_everything,
    select_device,
    set_rng_state,
)
from tomosynth.train.srgan_guard import CollapseGuard, GuardConfig
from tomosynth.train.srgan_volume import (  # noqa: F401  (re-exported: scripts, tests)
    super_resolve_stack,
    super_resolve_volume,
    write_sr_volume,
)

log = logging.getLogger(__name__)

LOG_FIELDS = [
    "epoch",
    "phase",
    "elapsed_s",
    "loss_g",
    "loss_d",
    "loss_l1",
    "loss_adv",
    "loss_tv",
    "val_psnr",
    "val_ssim",
    "bicubic_psnr",
    "val_pitch",
    "val_hf",
    "lr_g",
    "lr_d",
    "guard",
]

#: Settings that may change between a ``latest.pt`` and the run resuming it.
RESUMABLE_CHANGES = frozenset({"device", "budget_minutes", "epochs"})


@dataclass
class SRGANTrainConfig:
    """One training run (a preset at one scale).

    Attributes
    ----------
    scale : int
        Upscaling factor r in {2, 4, 8}.
    generator, discriminator : dict
        Keyword arguments of :class:`~tomosynth.models.srgan.GeneratorConfig` (without
        `scale`) and :class:`~tomosynth.models.srgan.DiscriminatorConfig`.
    weights : dict
        Loss weights ``l1``, ``adversarial`` and ``tv`` (a preset).
    epochs : int
        Epochs in all (report: 300); an epoch draws `patches_per_image` patches per image.
    pretrain_epochs : int
        First epochs trained on the L1 content loss alone (SRResNet warm-up; 0 = none).
    batch_size, lr, betas :
        Adam settings (report: 32, 2e-5, (0.5, 0.999)); `lr` is the warm-up's rate and,
        unless `adv_lr` is given, the adversarial phase's rate of both networks.
    adv_lr, adv_lr_d : float or None
        Learning rates of G and D in the adversarial phase (None: `lr`, and D as G).
    d_steps : int
        Discriminator updates per generator update in the adversarial phase (D:G balance).
    guard : dict
        :class:`~tomosynth.train.srgan_guard.GuardConfig` of the collapse guard.
    pitch_weight : float
        Weight of :func:`~tomosynth.losses.lr_pitch_penalty` (SR's LR-pitch energy in excess
        of HR's) in the generator loss of both phases; 0 = off.
    patch_size : int or None
        HR patch side in pixels (report: 96), a multiple of the scale; None = whole images.
    patches_per_image : int
        Random patches drawn from every training image per epoch.
    augment : bool
        Random 90-degree rotations and flips.
    seed : int
        Seed of initialisation, patch sampling and augmentation.
    device : str
        ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    budget_minutes : float
        Wall-clock cap over all (resumed) runs; training stops early when it is spent.
    """

    scale: int
    generator: dict = field(default_factory=dict)
    discriminator: dict = field(default_factory=dict)
    weights: dict = field(default_factory=lambda: {"l1": 1.0, "adversarial": 1e-2, "tv": 0.0})
    epochs: int = 300
    pretrain_epochs: int = 0
    batch_size: int = 32
    lr: float = 2e-5
    betas: tuple[float, float] = (0.5, 0.999)
    patch_size: int | None = 96
    patches_per_image: int = 1
    augment: bool = True
    seed: int = 0
    device: str = "auto"
    budget_minutes: float = math.inf
    adv_lr: float | None = None
    adv_lr_d: float | None = None
    d_steps: int = 1
    guard: dict = field(default_factory=dict)
    pitch_weight: float = 0.0

    def __post_init__(self) -> None:
        unknown = set(self.weights) - {"l1", "adversarial", "tv"}
        if unknown:
            raise ConfigError(f"srgan preset weights: unknown keys {sorted(unknown)}")
        self.weights = {k: float(self.weights.get(k, 0.0)) for k in ("l1", "adversarial", "tv")}
        if any(v < 0 for v in self.weights.values()):
            raise ConfigError(f"srgan preset weights must be >= 0, got {self.weights}")
        if self.epochs < 1 or not 0 <= self.pretrain_epochs <= self.epochs:
            raise ConfigError(
                f"srgan train: need epochs >= 1 and 0 <= pretrain_epochs <= epochs, "
                f"got {self.epochs}, {self.pretrain_epochs}"
            )
        if self.batch_size < 1 or self.patches_per_image < 1 or not self.lr > 0:
            raise ConfigError("srgan train: batch_size, patches_per_image >= 1 and lr > 0 required")
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        if any(v is not None and not v > 0 for v in (self.adv_lr, self.adv_lr_d)):
            raise ConfigError("srgan train: adv_lr and adv_lr_d must be > 0 (or null)")
        if not self.pitch_weight >= 0:
            raise ConfigError(f"srgan train.pitch_weight must be >= 0, got {self.pitch_weight}")
        self.pitch_weight = float(self.pitch_weight)
        if self.pitch_weight and self.patch_size is not None and self.patch_size < 4 * self.scale:
            raise ConfigError(
                f"srgan train.pitch_weight needs patch_size >= 4 x scale = {4 * self.scale} "
                f"(got {self.patch_size}): raise patch_size or set pitch_weight to 0"
            )
        if self.d_steps < 1:
            raise ConfigError(f"srgan train.d_steps must be >= 1, got {self.d_steps}")
        self.guard = asdict(GuardConfig.from_dict(self.guard))
        if self.patch_size is not None and self.patch_size % self.scale:
            raise ConfigError(
                f"srgan train.patch_size {self.patch_size} is not a multiple of the scale {self.scale}"
            )

    @classmethod
    def from_dict(cls, cfg: dict) -> SRGANTrainConfig:
        """Build from a config mapping; unknown keys and bad values raise ConfigError."""
        reject_unknown_keys(cls, cfg, "srgan train")
        if "scale" not in cfg:
            raise ConfigError("srgan train: 'scale' is required")
        return cls(**cfg)

    def to_dict(self) -> dict:
        """Plain-data form stored in checkpoints (``betas`` as a list)."""
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d

    def generator_config(self) -> GeneratorConfig:
        return GeneratorConfig(**{**self.generator, "scale": self.scale})

    def phase_lrs(self, adversarial: bool, scale: float = 1.0) -> tuple[float, float]:
        """(G, D) learning rates of a phase; `scale` is the collapse guard's factor."""
        if not adversarial:
            return self.lr * scale, self.lr * scale
        g = self.adv_lr if self.adv_lr is not None else self.lr
        d = self.adv_lr_d if self.adv_lr_d is not None else g
        return g * scale, d * scale


def _targets(hr: torch.Tensor, cfg: GeneratorConfig) -> list[torch.Tensor]:
    """The reference image of every generator output: intermediate ones are HR degraded."""
    if cfg.kind == "srgan":
        return [hr]
    if cfg.kind == "progressive":
        n = int(math.log2(cfg.scale))
        return [hr if i == n - 1 else bicubic_downscale(hr, 2 ** (n - 1 - i)) for i in range(n)]
    return [bicubic_downscale(hr, cfg.stack_scales[1]), hr]


def _n_discriminators(cfg: GeneratorConfig) -> int:
    """Stacked: D1 judges G1's intermediate image, D2 the final one; otherwise one D."""
    return 2 if cfg.kind == "stacked" else 1


class SRGANTrainer:
    """Generator, discriminator(s), optimisers and one-epoch steps of a training run."""

    def __init__(self, cfg: SRGANTrainConfig, device: torch.device) -> None:
        self.cfg = cfg
        self.gcfg = cfg.generator_config()
        self.device = device
        self.generator = build_generator(self.gcfg).to(device)
        self.discriminators = nn.ModuleList(
            build_discriminator(dict(cfg.discriminator))
            for _ in range(_n_discriminators(self.gcfg))
        ).to(device)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=cfg.lr, betas=cfg.betas)
        self.opt_d = torch.optim.Adam(self.discriminators.parameters(), lr=cfg.lr, betas=cfg.betas)

    def _outputs(self, lr: torch.Tensor) -> list[torch.Tensor]:
        out = self.generator(lr)
        return out if isinstance(out, list) else [out]

    def set_lrs(self, lr_g: float, lr_d: float) -> None:
        """Set the learning rates of both optimisers (phase change, collapse guard)."""
        for opt, value in ((self.opt_g, lr_g), (self.opt_d, lr_d)):
            for group in opt.param_groups:
                group["lr"] = value

    def _judged(self, outputs: list[torch.Tensor]) -> list[torch.Tensor]:
        """The outputs the discriminators see, in discriminator order."""
        return outputs if self.gcfg.kind == "stacked" else [outputs[-1]]

    def step(self, lr: torch.Tensor, hr: torch.Tensor, adversarial: bool) -> dict[str, float]:
        """One optimisation step of D (if `adversarial`) then G on a batch; returns the losses."""
        w = self.cfg.weights
        use_adv = adversarial and w["adversarial"] > 0
        targets = _targets(hr, self.gcfg)
        outputs = self._outputs(lr)
        loss_d = torch.zeros((), device=self.device)
        for _ in range(self.cfg.d_steps if use_adv else 0):
            loss_d = torch.zeros((), device=self.device)
            for d, fake, real in zip(
                self.discriminators, self._judged(outputs), self._judged(targets), strict=True
            ):
                loss_d = loss_d + lsgan_discriminator_loss(d(real), d(fake.detach()))
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()

        # Content loss on every output: intermediate images of progressive/stacked generators
        # are supervised with the degraded HR image.
        l1_terms = [l1_content(o, t) for o, t in zip(outputs, targets, strict=True)]
        tv_terms = [total_variation(o) for o in outputs]
        adv_terms = (
            [
                lsgan_generator_loss(d(o))
                for d, o in zip(self.discriminators, self._judged(outputs), strict=True)
            ]
            if use_adv
            else [torch.zeros((), device=self.device)] * _n_discriminators(self.gcfg)
        )
        l1_w = w["l1"] if adversarial else 1.0  # warm-up: content only, unit weight
        tv_w = w["tv"] if adversarial else 0.0
        adv_w = w["adversarial"] if use_adv else 0.0
        # both phases: the LR-pitch pattern grows during the L1 warm-up already
        pitch = (
            self.cfg.pitch_weight * lr_pitch_penalty(outputs[-1], targets[-1], self.cfg.scale)
            if self.cfg.pitch_weight > 0
            else torch.zeros((), device=self.device)
        )
        self.opt_g.zero_grad(set_to_none=True)
        if self.gcfg.kind == "stacked":
            # L_G1 = L1_1 + w_adv (L_adv,D1(G1) + L_adv,D2(G2 G1)) + TV_1 updates G1 only;
            # L_G2 = L1_2 + w_adv L_adv,D2 + TV_2 updates G2 only (report section 4.5).
            loss_g1 = (
                l1_w * l1_terms[0] + adv_w * (adv_terms[0] + adv_terms[1]) + tv_w * tv_terms[0]
            )
            loss_g2 = l1_w * l1_terms[1] + adv_w * adv_terms[1] + tv_w * tv_terms[1] + pitch
            g1, g2 = self.generator.g1, self.generator.g2
            grads1 = torch.autograd.grad(
                loss_g1, list(g1.parameters()), retain_graph=True, allow_unused=True
            )
            grads2 = torch.autograd.grad(loss_g2, list(g2.parameters()), allow_unused=True)
            for p, g in zip(
                list(g1.parameters()) + list(g2.parameters()), grads1 + grads2, strict=True
            ):
                p.grad = g
            loss_g = loss_g1 + loss_g2
        else:
            loss_g = l1_w * sum(l1_terms) + adv_w * adv_terms[0] + tv_w * tv_terms[-1] + pitch
            loss_g.backward()
        self.opt_g.step()
        return {
            "loss_g": float(loss_g.detach()),
            "loss_d": float(loss_d.detach()),
            "loss_l1": float(sum(l1_terms).detach()),
            "loss_adv": float(sum(adv_terms).detach()),
            "loss_tv": float(
                (sum(tv_terms) if self.gcfg.kind == "stacked" else tv_terms[-1]).detach()
            ),
        }

    @torch.no_grad()
    def super_resolve(self, lr: np.ndarray, batch_size: int = 8) -> np.ndarray:
        """SR images ``(N, rH, rW)`` of LR images ``(N, H, W)``, in eval mode."""
        return super_resolve_stack(self.generator, lr, batch_size, self.device, progress=False)

    def state(self) -> dict:
        return {
            "generator": self.generator.state_dict(),
            "discriminators": self.discriminators.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
        }

    def load_state(self, state: dict) -> None:
        self.generator.load_state_dict(state["generator"], strict=True)
        self.discriminators.load_state_dict(state["discriminators"], strict=True)
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])


def _cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached CPU copies of a state dict's tensors (a snapshot, not live references)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


def _validate(trainer: SRGANTrainer, val_hr: np.ndarray, val_lr: np.ndarray) -> dict:
    """Scores of the validation images: mean PSNR and SSIM (data range 1, Gaussian window as
    the SR tables' default) of SR, mean PSNR of bicubic, SR's LR-pitch peak relative to HR's
    (checkerboard; 1 = as HR) and SR's high-frequency energy relative to HR's (1 = as sharp
    as HR; an L1-trained model sits below 1)."""
    scale = trainer.cfg.scale
    sr = trainer.super_resolve(val_lr, batch_size=trainer.cfg.batch_size)
    bic = bicubic_upscale(val_lr, scale)
    pitch_ok = min(val_hr.shape[-2:]) >= 4 * scale
    return {
        "val_psnr": float(np.mean(psnr(val_hr, sr, data_range=1.0))),
        "val_ssim": float(np.mean(ssim(val_hr, sr, data_range=1.0, window="gaussian"))),
        "bicubic_psnr": float(np.mean(psnr(val_hr, bic, data_range=1.0))),
        "val_pitch": lr_pitch_ratio(sr, val_hr, scale) if pitch_ok else math.nan,
        "val_hf": float(hf_energy(sr) / max(hf_energy(val_hr), 1e-12)),
    }


class _SRGANRun(TrainingRun):
    """One training run of :func:`train_srgan`: data, trainer, best epoch, log and budget, in
    the steps of :func:`~tomosynth.train.common.run_training`.

    Files: ``latest.pt`` (resume state, with the log rows and a copy of ``best.pt``),
    ``best.pt`` (the best epoch's generator) and ``log.csv`` (rebuilt from ``latest.pt``).
    """

    kind = "srgan"
    label = "srgan"
    log_fields = LOG_FIELDS
    stale_outputs = ("best.pt", "log.csv")  # latest.pt stays until replaced

    def __init__(self, data: SRGANData, out_dir: Path, cfg: SRGANTrainConfig) -> None:
        data.check(out_dir, cfg.scale)
        self.train_hr, self.train_lr = data.train_hr, data.train_lr
        self.val_hr, self.val_lr = data.val_hr, data.val_lr
        # matched degradation check: the upscaler's input statistics (compare with the
        # images it is applied to; tomosynth.upscale logs those)
        lr_hf = hf_energy(self.train_lr[:: max(1, len(self.train_lr) // 64)])
        log.info(
            "%s: training LR %s, high-frequency energy (mean squared Laplacian) %.6g",
            out_dir,
            data.meta.get("lr_source", "given"),
            lr_hf,
        )
        self.out_dir = out_dir
        self.latest_path, self.best_path = out_dir / "latest.pt", out_dir / "best.pt"
        self.log_path = out_dir / "log.csv"
        self.cfg = cfg
        self.device = select_device(cfg.device)
        seed_everything(cfg.seed)
        self.trainer = SRGANTrainer(cfg, self.device)
        self.guard = CollapseGuard(GuardConfig.from_dict(cfg.guard))
        self.data_sha256 = data_digest(self.train_hr, self.train_lr, self.val_hr, self.val_lr)
        self.meta = {
            "config": cfg.to_dict(),
            "generator_config": asdict(self.trainer.gcfg),
            "seed": cfg.seed,
            "device": str(self.device),  # the device used, not the configured preference
            "versions": package_versions(),
            **data.meta,
            "train_lr_hf_energy": lr_hf,
        }
        self.epoch = 0  # completed epochs
        self.best_psnr, self.best_epoch = -math.inf, 0
        self.best: dict | None = None
        self.spent_s = 0.0
        self.passed_s = 0.0  # budget spent at the last budget check that let training go on
        self.log_rows: list[dict] = []
        self.stopped_by_budget = False

    # -- resume policy -----------------------------------------------------------------------
    def resumable_run(self) -> ResumableRun:
        return ResumableRun(
            kind="srgan",
            config=self.cfg.to_dict(),
            data_digest=self.data_sha256,
            max_epochs=self.cfg.epochs,
            budget_s=self.cfg.budget_minutes * 60,
            resumable_keys=RESUMABLE_CHANGES,
            republish_ignores=frozenset({"device"}),
            continue_finished=True,  # a raised epoch count or budget continues the run
        )

    @staticmethod
    def record(ckpt: dict) -> RunRecord:
        """What `ckpt` says about its run (older checkpoints recorded no data: start over)."""
        return RunRecord(
            kind=ckpt.get("kind", "srgan"),
            config=ckpt.get("config", {}),
            data_digest=ckpt.get("data_sha256"),
            finished=bool(ckpt.get("finished")),
            epoch=int(ckpt.get("epoch", 0)),
            passed_s=float(ckpt.get("passed_s", 0.0)),
        )

    def restore(self, ckpt: dict) -> None:
        self.trainer.load_state(ckpt["model"])
        set_rng_state(ckpt["rng"])
        self.epoch = int(ckpt["epoch"])
        self.best_psnr, self.best_epoch = ckpt["best_psnr"], ckpt["best_epoch"]
        self.spent_s = float(ckpt["elapsed_s"])
        self.passed_s = float(ckpt.get("passed_s", 0.0))
        self.best = ckpt["best"]
        self.log_rows = list(ckpt.get("log", []))
        self.guard.load_state(ckpt.get("guard"))

    def result(self) -> dict:
        return {
            "best_epoch": self.best_epoch,
            "best_psnr": self.best_psnr,
            "epochs_done": self.epoch,
            "stopped_by_budget": self.stopped_by_budget,
            "final_psnr": self.final_psnr(),
            "guard_restores": self.guard.restores,
            "guard_events": list(self.guard.events),
        }

    def final_psnr(self) -> float | None:
        """Validation PSNR of the networks as they are now (a restore's good epoch)."""
        if not self.log_rows:
            return None
        last = self.log_rows[-1]
        return self.guard.good_psnr if last.get("guard") else last["val_psnr"]

    # -- one epoch -----------------------------------------------------------------------------
    def run_epoch(self, budget: Budget) -> dict:
        """Train epoch ``self.epoch + 1`` and validate it; returns its log row."""
        cfg = self.cfg
        epoch = self.epoch + 1
        adversarial = epoch > cfg.pretrain_epochs
        lr_g, lr_d = cfg.phase_lrs(adversarial, self.guard.scale(adversarial))
        self.trainer.set_lrs(lr_g, lr_d)
        # Sampling is seeded by (seed, epoch), so a resumed run draws the same patches.
        rng = np.random.default_rng([cfg.seed, epoch])
        n = len(self.train_hr)
        order = np.concatenate([rng.permutation(n) for _ in range(cfg.patches_per_image)])
        sums: dict[str, float] = {}
        self.trainer.generator.train()
        self.trainer.discriminators.train()
        n_batches = 0
        for s in range(0, len(order), cfg.batch_size):
            hr_b, lr_b = sample_patches(
                self.train_hr,
                self.train_lr,
                cfg.scale,
                cfg.patch_size,
                rng,
                order[s : s + cfg.batch_size],
                cfg.augment,
            )
            losses = self.trainer.step(
                torch.from_numpy(lr_b).to(self.device),
                torch.from_numpy(hr_b).to(self.device),
                adversarial,
            )
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + v
            n_batches += 1
        self.epoch = epoch
        row = {
            "epoch": epoch,
            "phase": "adversarial" if adversarial else "pretrain",
            "elapsed_s": round(budget.elapsed(), 3),
            **{k: v / n_batches for k, v in sums.items()},
            **_validate(self.trainer, self.val_hr, self.val_lr),
            "lr_g": lr_g,
            "lr_d": lr_d,
        }
        # the guard may put the networks back to the last good epoch (and say so in the log)
        row["guard"] = self.guard.check(row, self.trainer)
        self.log_rows.append(row)
        return row

    def keep_if_best(self, row: dict) -> None:
        """Make the epoch just trained ``best.pt`` if its validation PSNR is the highest."""
        if row["val_psnr"] > self.best_psnr:
            self.best_psnr, self.best_epoch = row["val_psnr"], row["epoch"]
            self.best = {
                **self.meta,
                "kind": "srgan_generator",
                # a copy: a state dict references the live parameters, which later
                # epochs keep changing
                "generator": _cpu_copy(self.trainer.generator.state_dict()),
                "scale": self.cfg.scale,
                "epoch": row["epoch"],
                "val_psnr": row["val_psnr"],
                "val_ssim": row["val_ssim"],
            }
            save_checkpoint(self.best_path, self.best)

    def stop_reason(self, budget: Budget) -> str | None:
        """The epoch count is reached, the guard gave up or the budget is spent (checked
        after every epoch); None: go on."""
        if self.epoch >= self.cfg.epochs:
            return "epochs"
        if self.guard.stop:
            log.warning("%s: collapse guard ended the training", self.out_dir)
            return "collapse_guard"
        elapsed = budget.elapsed()
        if elapsed >= self.cfg.budget_minutes * 60:
            log.info(
                "%s: budget of %.1f min spent after epoch %d",
                self.out_dir,
                self.cfg.budget_minutes,
                self.epoch,
            )
            self.stopped_by_budget = True
            return "budget"
        self.passed_s = elapsed
        return None

    def save_latest(self, budget: Budget, finished: bool) -> None:
        save_checkpoint(
            self.latest_path,
            {
                **self.meta,
                "kind": "srgan",
                "model": self.trainer.state(),
                "rng": rng_state(),
                "epoch": self.epoch,
                "best_psnr": self.best_psnr,
                "best_epoch": self.best_epoch,
                # a copy of best.pt, so that best.pt can be restored if a workflow
                # manager deleted it before a resumed run
                "best": self.best,
                "elapsed_s": budget.elapsed(),
                "passed_s": self.passed_s,
                "data_sha256": self.data_sha256,
                "finished": finished,
                "log": list(self.log_rows),
                "guard": self.guard.state(),
                "result": self.result(),
            },
        )

    def publish_best(self) -> None:
        if self.best is not None and not self.best_path.exists():
            save_checkpoint(self.best_path, self.best)

    # -- the steps of run_training -----------------------------------------------------------
    @property
    def budget_minutes(self) -> float:
        return self.cfg.budget_minutes

    @property
    def max_epochs(self) -> int:
        return self.cfg.epochs

    def republish(self, ckpt: dict) -> dict:
        """best.pt and log.csv again from a finished ``latest.pt``."""
        self.restore(ckpt)
        self.stopped_by_budget = bool(ckpt.get("result", {}).get("stopped_by_budget"))
        self.write_log()
        self.publish_best()
        return dict(ckpt["result"])

    def reason_before(self, budget: Budget, first: bool) -> str | None:
        """Only the epoch count, once (the budget is checked after each epoch)."""
        return "epochs" if first and self.epoch >= self.cfg.epochs else None

    def next_epoch(self, flag: StopSignal, budget: Budget) -> dict:
        return self.run_epoch(budget)

    def reason_after(self, row: dict, budget: Budget) -> str | None:
        self.keep_if_best(row)
        return self.stop_reason(budget)

    def checkpoint(self, budget: Budget, reason: str | None, force: bool = False) -> None:
        """``latest.pt`` after every epoch."""
        self.save_latest(budget, finished=reason is not None)

    def finish(self, budget: Budget, reason: str | None) -> dict:
        self.save_latest(budget, finished=True)
        self.publish_best()
        return self.result()


def train_srgan(
    cfg: SRGANTrainConfig | Mapping[str, Any],
    data: SRGANData,
    out_dir: str | os.PathLike,
    *,
    stop: StopSignal | None = None,
    on_epoch_end: Callable[[dict], None] | None = None,
    progress_bar: bool = True,
    restart_on_mismatch: bool = True,
) -> dict:
    """Train a generator and discriminator(s); write ``best.pt``, ``latest.pt`` and ``log.csv``.

    The signature of every trainer (:func:`~tomosynth.train.common.run_training` drives it).

    Parameters
    ----------
    cfg : SRGANTrainConfig or mapping of its keys (unknown keys raise ConfigError)
    data : SRGANData
        HR and LR images of the train and val sets, and their provenance.
    out_dir : path
        Model folder. An existing ``latest.pt`` there is resumed if it was trained on the same
        images with the same settings (device, epochs and budget may differ); a finished one
        of the same images and settings is published again without training
        (:class:`~tomosynth.train.common.ResumableRun`).
    stop, on_epoch_end, progress_bar, restart_on_mismatch :
        See :func:`~tomosynth.train.common.run_training`.

    Returns
    -------
    dict
        ``best_epoch``, ``best_psnr``, ``epochs_done`` and ``stopped_by_budget``.
    """
    if not isinstance(cfg, SRGANTrainConfig):
        cfg = SRGANTrainConfig.from_dict(dict(cfg))
    run = _SRGANRun(data, Path(out_dir), cfg)
    return run_training(
        run,
        stop=stop,
        on_epoch_end=on_epoch_end,
        progress_bar=progress_bar,
        restart_on_mismatch=restart_on_mismatch,
    )

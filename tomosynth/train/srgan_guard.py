"""Collapse guard of SRGAN training: adversarial collapse and warm-up divergence.

A GAN collapse shows as a discriminator that wins outright (its loss near 0) while the
generator's images fall apart (validation PSNR drops). A diverging L1 warm-up shows as the
PSNR drop alone (at lr 1e-3 the study's bone2 and bone3 warm-ups fell to ~8 dB in one epoch
and came back only to bicubic level). Seen after an epoch, the guard puts the generator,
discriminator(s) and optimisers back to the last good epoch, lowers the learning rates of
that phase by a factor and records the event; after ``max_restores`` restores (both kinds
together) it ends the training at the last good state.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

from tomosynth.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class GuardConfig:
    """Settings of :class:`CollapseGuard` (``srgan.train.guard``).

    Attributes
    ----------
    enabled : bool
        Watch the epochs (warm-up and adversarial).
    d_loss_floor : float
        Discriminator loss (least-squares, mean of an epoch) below which D is taken to win
        outright; at a balance of real and fake scores it is about 0.25.
    psnr_drop_db : float
        Drop of validation PSNR below the best good epoch's, in dB, that counts as collapse.
    lr_factor : float
        Factor (0 < f < 1) applied to the learning rates of the phase that failed (both
        adversarial rates, or the warm-up rate) at each restore.
    max_restores : int
        Restores allowed; the next collapse restores and ends the training.
    """

    enabled: bool = True
    d_loss_floor: float = 0.05
    psnr_drop_db: float = 1.0
    lr_factor: float = 0.5
    max_restores: int = 3

    def __post_init__(self) -> None:
        if not (self.d_loss_floor >= 0 and self.psnr_drop_db > 0 and 0 < self.lr_factor < 1):
            raise ConfigError(
                "srgan train.guard: need d_loss_floor >= 0, psnr_drop_db > 0 and "
                f"0 < lr_factor < 1, got {asdict(self)}"
            )
        if self.max_restores < 0:
            raise ConfigError(f"srgan train.guard.max_restores must be >= 0, got {self}")

    @classmethod
    def from_dict(cls, cfg: dict | None) -> GuardConfig:
        cfg = dict(cfg or {})
        unknown = set(cfg) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"srgan train.guard: unknown keys {sorted(unknown)}")
        return cls(**cfg)


class CollapseGuard:
    """Tracks the last good training state and restores it on a collapse.

    ``trainer`` is any object with ``state()`` / ``load_state(state)`` (the SRGAN trainer);
    :meth:`check` is called after every epoch with that epoch's log row.
    """

    def __init__(self, cfg: GuardConfig) -> None:
        self.cfg = cfg
        self.good: dict | None = None
        self.good_epoch = 0
        self.good_psnr = math.nan  # validation PSNR of the good state
        self.ref_psnr = -math.inf  # best validation PSNR of a good epoch
        self.lr_scale = 1.0  # factor on the adversarial rates
        self.warmup_lr_scale = 1.0  # factor on the warm-up rate
        self.restores = 0
        self.events: list[str] = []
        self.stop = False

    def collapsed(self, row: dict) -> bool:
        """A PSNR drop beyond ``psnr_drop_db``: in the adversarial phase together with a D
        loss near 0 (a collapse), in the warm-up alone (a divergence)."""
        dropped = row["val_psnr"] < self.ref_psnr - self.cfg.psnr_drop_db
        if row["phase"] != "adversarial":
            return dropped
        return dropped and row["loss_d"] < self.cfg.d_loss_floor

    def scale(self, adversarial: bool) -> float:
        """The factor on the learning rates of a phase."""
        return self.lr_scale if adversarial else self.warmup_lr_scale

    def check(self, row: dict, trainer: Any) -> str:
        """Judge the epoch of `row`: keep it as the good state, or restore; returns the event
        (empty when nothing happened)."""
        if not self.cfg.enabled:
            return ""
        if not self.collapsed(row):
            if row["val_psnr"] >= self.ref_psnr - self.cfg.psnr_drop_db:
                self.good = copy.deepcopy(trainer.state())
                self.good_epoch = int(row["epoch"])
                self.good_psnr = float(row["val_psnr"])
                self.ref_psnr = max(self.ref_psnr, float(row["val_psnr"]))
            return ""
        if self.good is None:
            return ""
        trainer.load_state(copy.deepcopy(self.good))
        self.restores += 1
        self.stop = self.restores > self.cfg.max_restores
        adversarial = row["phase"] == "adversarial"
        if not self.stop and adversarial:
            self.lr_scale *= self.cfg.lr_factor
        elif not self.stop:
            self.warmup_lr_scale *= self.cfg.lr_factor
        what = (
            f"collapse at epoch {row['epoch']} (loss_d {row['loss_d']:.4g} < "
            f"{self.cfg.d_loss_floor}, "
            if adversarial
            else f"warm-up divergence at epoch {row['epoch']} ("
        )
        event = (
            f"{what}val PSNR {row['val_psnr']:.2f} dB < "
            f"{self.ref_psnr:.2f} - {self.cfg.psnr_drop_db} dB): restored epoch "
            f"{self.good_epoch}; "
            + (
                "restores exhausted, training ends"
                if self.stop
                else (
                    f"adversarial learning rates x{self.lr_scale:g}"
                    if adversarial
                    else f"warm-up learning rate x{self.warmup_lr_scale:g}"
                )
            )
        )
        log.warning("collapse guard: %s", event)
        self.events.append(event)
        return event

    def state(self) -> dict:
        """Plain-data form kept in ``latest.pt`` (resumed runs keep the good state)."""
        return {
            "good": self.good,
            "good_epoch": self.good_epoch,
            "good_psnr": self.good_psnr,
            "ref_psnr": self.ref_psnr,
            "lr_scale": self.lr_scale,
            "warmup_lr_scale": self.warmup_lr_scale,
            "restores": self.restores,
            "events": list(self.events),
            "stop": self.stop,
        }

    def load_state(self, state: dict | None) -> None:
        if not state:
            return
        self.good = state["good"]
        self.good_epoch = int(state["good_epoch"])
        self.good_psnr = float(state["good_psnr"])
        self.ref_psnr = float(state["ref_psnr"])
        self.lr_scale = float(state["lr_scale"])
        self.warmup_lr_scale = float(state.get("warmup_lr_scale", 1.0))  # older checkpoints
        self.restores = int(state["restores"])
        self.events = list(state["events"])
        self.stop = bool(state["stop"])

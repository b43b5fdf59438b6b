#!/usr/bin/env python
"""Adversarial phase of an SRGAN from a converged L1 model, at chosen G/D rates.

Evidence for the adversarial learning rates (docs/results.md, "SRGAN adversarial phase"):
starting from a study run's bone model (``results/models/srgan/<scan>_<preset>_x<scale>/
best.pt``, an L1 warm-up), train `--l1-epochs` more L1 epochs and then `--adv-epochs`
adversarial epochs with the model's own loss weights, printing after every epoch the
validation PSNR gain over bicubic, LR-pitch energy and high-frequency energy (both relative
to HR), on the model's validation slices (within-specimen) and on every slice of a
specimen it never saw (`--held-out`), and D's mean loss. Each epoch's generator is saved in
`--out` as a loadable checkpoint, for super-resolving and scoring a volume
(``tomosynth.train.srgan_volume.super_resolve_volume``, ``compute_bone_metrics``).

    python benchmarks/srgan_adversarial.py study_run/results --g-lr 1e-4 --d-lr 1e-4

One torch thread; ~5 s per epoch on the study's bone data (54 slices of 256 px).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch

from tomosynth.metrics.image import psnr
from tomosynth.metrics.spectral import hf_energy, lr_pitch_ratio
from tomosynth.sr_data import bicubic_upscale, load_pairs, sample_patches
from tomosynth.train.srgan import SRGANTrainConfig, SRGANTrainer


class Scorer:
    """Scores of one image set: SR's PSNR gain over bicubic (dB), LR-pitch and HF energy
    relative to HR; bicubic's PSNR and HR's HF energy are taken once."""

    def __init__(self, hr: np.ndarray, lr: np.ndarray, scale: int) -> None:
        self.hr, self.lr, self.scale = hr, lr, scale
        self.bicubic_psnr = float(np.mean(psnr(hr, bicubic_upscale(lr, scale), data_range=1.0)))
        self.hr_hf = hf_energy(hr)

    def __call__(self, trainer: SRGANTrainer) -> str:
        sr = trainer.super_resolve(self.lr, batch_size=8)
        gain = float(np.mean(psnr(self.hr, sr, data_range=1.0))) - self.bicubic_psnr
        pitch = lr_pitch_ratio(sr, self.hr, self.scale)
        return f"gain {gain:+.3f} dB pitch {pitch:.3f} hf {hf_energy(sr) / self.hr_hf:.4f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path, help="a study run's results/ folder")
    ap.add_argument("--scan", default="bone")
    ap.add_argument("--held-out", default="bone2", help="a specimen the model never saw")
    ap.add_argument("--model", default="exp_d_x4", help="<preset>_x<scale> of the model")
    ap.add_argument("--g-lr", type=float, default=1e-4)
    ap.add_argument("--d-lr", type=float, default=1e-4)
    ap.add_argument("--l1-epochs", type=int, default=6, help="L1 epochs at 1e-4 first")
    ap.add_argument("--adv-epochs", type=int, default=30)
    ap.add_argument("--pitch-weight", type=float, default=0.01)
    ap.add_argument("--out", type=Path, default=Path("srgan_adversarial"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    r = a.results
    ckpt = torch.load(
        r / f"models/srgan/{a.scan}_{a.model}/best.pt", map_location="cpu", weights_only=False
    )
    cfg = SRGANTrainConfig.from_dict(
        {
            **ckpt["config"],
            "device": "cpu",
            "lr": 1e-4,
            "adv_lr": a.g_lr,
            "adv_lr_d": a.d_lr,
            "pitch_weight": a.pitch_weight,
            "guard": {"enabled": False},
        }
    )
    s = cfg.scale
    split = json.loads((r / f"png/{a.scan}/split.json").read_text())
    held = json.loads((r / f"png/{a.held_out}/split.json").read_text())
    thr, tlr, _ = load_pairs(r / f"png/{a.scan}/256px", split["train"], s)
    vhr, vlr, _ = load_pairs(r / f"png/{a.scan}/256px", split["val"], s)
    hhr, hlr, _ = load_pairs(r / f"png/{a.held_out}/256px", held["test"] + held["val"], s)
    val, held_out = Scorer(vhr, vlr, s), Scorer(hhr, hlr, s)
    trainer = SRGANTrainer(cfg, torch.device("cpu"))
    trainer.generator.load_state_dict(ckpt["generator"])
    a.out.mkdir(parents=True, exist_ok=True)
    print(f"start: val {val(trainer)} | {a.held_out} {held_out(trainer)}")
    for ep in range(1, a.l1_epochs + a.adv_epochs + 1):
        adv = ep > a.l1_epochs
        trainer.set_lrs(*cfg.phase_lrs(adv))
        t0, rng = time.time(), np.random.default_rng([cfg.seed, ep])
        order = np.concatenate([rng.permutation(len(thr)) for _ in range(cfg.patches_per_image)])
        trainer.generator.train()
        d_loss = []
        for i in range(0, len(order), cfg.batch_size):
            batch = order[i : i + cfg.batch_size]
            h, lo = sample_patches(thr, tlr, s, cfg.patch_size, rng, batch, cfg.augment)
            d_loss.append(trainer.step(torch.from_numpy(lo), torch.from_numpy(h), adv)["loss_d"])
        print(
            f"{'adv' if adv else 'l1 '} {ep:3d}: val {val(trainer)} | "
            f"{a.held_out} {held_out(trainer)} | D {np.mean(d_loss):.3f} "
            f"{time.time() - t0:.0f} s",
            flush=True,
        )
        snap = copy.copy(ckpt)
        snap["generator"] = {
            k: v.detach().clone() for k, v in trainer.generator.state_dict().items()
        }
        torch.save(snap, a.out / f"epoch_{ep:03d}.pt")


if __name__ == "__main__":
    main()

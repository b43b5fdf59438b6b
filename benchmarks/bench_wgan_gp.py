"""WGAN-GP training throughput: our loop vs the idiomatic PyTorch loop, and epochs per budget.

The reference is the loop a PyTorch user would write, structured like the PyTorch-GAN
project's ``wgan_gp.py`` example (the one the thesis started from), adapted to the same
models and written here from scratch: the training images held in one tensor and batched
by a fresh permutation per epoch; per batch one critic step (the generated batch detached,
the critic called on real and generated images, the gradient penalty of random
interpolates through ``torch.autograd.grad`` with ``create_graph=True``), and every
``n_critic``-th batch one generator step; Adam with the same hyper-parameters. It runs
twice, with models and data in NCHW (PyTorch's default) and in channels-last, so that two
ratios are reported: ours against the default layout, and ours against the same layout
trick applied to the plain loop (what remains is our loop's own work: the fused real+fake
critic pass, no generator graph in the critic step, no critic weight gradients in the
generator step).

All loops train the same models from the same seed on the same data with the same thread
count, side by side in one process, interleaved per repeat; images/s counts real images
seen by the critic. Epochs per budget: an epoch is one pass over `--n-images` images, so a
budget of B minutes gives ``B * 60 * images_per_s / n_images`` epochs (the thesis saw 7630
epochs at 64 px and 466 at 256 px in 4 hours, a 16x ratio).

    python benchmarks/bench_wgan_gp.py --sizes 64 256 --max-channels 16 64 --batches 6
    python benchmarks/bench_wgan_gp.py --device cuda --amp --out res.json   # a GPU
    python benchmarks/bench_wgan_gp.py --device cuda --compile              # torch.compile

On CUDA, ``--amp`` runs our loop under bfloat16 autocast (the reference stays in float32,
as the plain loop is written) and ``--compile`` wraps our models in ``torch.compile``
(a failure, e.g. of the penalty's double backward, is reported and that case skipped).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tomosynth.device import select_device  # noqa: E402
from tomosynth.models.wgan_gp import WganGpConfig, build_models  # noqa: E402
from tomosynth.train.common import StopSignal  # noqa: E402
from tomosynth.train.wgan_gp import TrainConfig, _Trainer  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class IdiomaticLoop:
    """The plain PyTorch WGAN-GP loop (PyTorch-GAN structure) on the same models."""

    def __init__(self, images: torch.Tensor, cfg: TrainConfig, channels_last: bool) -> None:
        self.cfg = cfg
        self.device = select_device(cfg.device)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        torch.manual_seed(cfg.seed)
        self.gen, self.critic = build_models(
            WganGpConfig(images.shape[-1], cfg.latent_dim, cfg.channel_multiplier, cfg.max_channels)
        )
        self.gen.to(self.device, memory_format=fmt)
        self.critic.to(self.device, memory_format=fmt)
        self.opt_g = torch.optim.Adam(self.gen.parameters(), lr=cfg.lr, betas=cfg.betas)
        self.opt_c = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr, betas=cfg.betas)
        self.images = images.to(self.device).contiguous(memory_format=fmt)

    def gradient_penalty(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        alpha = torch.rand(real.shape[0], 1, 1, 1, device=self.device)
        mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
        d_mixed = self.critic(mixed)
        grads = torch.autograd.grad(
            outputs=d_mixed,
            inputs=mixed,
            grad_outputs=torch.ones_like(d_mixed),
            create_graph=True,
        )[0]
        return ((grads.reshape(grads.shape[0], -1).norm(2, dim=1) - 1) ** 2).mean()

    def run_epoch(self) -> None:
        cfg, bs = self.cfg, self.cfg.batch_size
        perm = torch.randperm(self.images.shape[0], device=self.device)
        for i in range(math.ceil(self.images.shape[0] / bs)):
            real = self.images[perm[i * bs : (i + 1) * bs]]
            self.opt_c.zero_grad()
            z = torch.randn(real.shape[0], cfg.latent_dim, device=self.device)
            fake = self.gen(z).detach()
            loss_c = (
                -self.critic(real).mean()
                + self.critic(fake).mean()
                + cfg.lambda_gp * self.gradient_penalty(real, fake)
            )
            loss_c.backward()
            self.opt_c.step()
            if i % cfg.n_critic == 0:
                self.opt_g.zero_grad()
                z = torch.randn(real.shape[0], cfg.latent_dim, device=self.device)
                loss_g = -self.critic(self.gen(z)).mean()
                loss_g.backward()
                self.opt_g.step()


class OurLoop:
    """`tomosynth.train.wgan_gp._Trainer`'s epoch, optionally with compiled models."""

    def __init__(self, images: torch.Tensor, cfg: TrainConfig, compile_models: bool) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        self.trainer = _Trainer(images, Path(self._tmp.name), cfg)
        self.device = self.trainer.device
        if compile_models:
            self.trainer.gen = torch.compile(self.trainer.gen)
            self.trainer.critic = torch.compile(self.trainer.critic)
        self.stop = StopSignal()

    def run_epoch(self) -> None:
        self.trainer.perm = None
        self.trainer.run_epoch(self.stop)


def _time_epoch(loop, n_images: int) -> float:
    _sync(loop.device)
    t0 = time.perf_counter()
    loop.run_epoch()
    _sync(loop.device)
    return n_images / (time.perf_counter() - t0)


def measure(images: torch.Tensor, cfg: TrainConfig, repeats: int, compile_models: bool) -> dict:
    """Median images/s of ours and of the idiomatic loop in NCHW and channels-last."""
    loops = {
        "reference_nchw": IdiomaticLoop(images, cfg, channels_last=False),
        "reference_channels_last": IdiomaticLoop(images, cfg, channels_last=True),
        "ours": OurLoop(images, cfg, compile_models),
    }
    for loop in loops.values():  # warm-up (and compilation)
        loop.run_epoch()
    rates: dict[str, list[float]] = {k: [] for k in loops}
    for _ in range(repeats):  # interleaved, so that load changes hit every loop alike
        for name, loop in loops.items():
            rates[name].append(_time_epoch(loop, images.shape[0]))
    out = {f"{k}_img_s": statistics.median(v) for k, v in rates.items()}
    out["ratio_vs_nchw"] = out["ours_img_s"] / out["reference_nchw_img_s"]
    out["ratio_vs_channels_last"] = out["ours_img_s"] / out["reference_channels_last_img_s"]
    out["runs"] = rates
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 256])
    p.add_argument(
        "--max-channels", type=int, nargs="+", default=[0], help="channel caps (0 = none)"
    )
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--batches", type=int, default=10, help="batches per timed epoch")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--latent", type=int, nargs="+", default=[100, 200], help="per size")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--amp", action="store_true", help="ours under bf16 autocast (CUDA only)")
    p.add_argument("--compile", action="store_true", help="ours with torch.compile'd models")
    p.add_argument(
        "--no-channels-last", dest="channels_last", action="store_false", help="ours in NCHW"
    )
    p.add_argument("--budget-minutes", type=float, default=240.0)
    p.add_argument("--n-images", type=int, default=1000, help="images per epoch for epochs/budget")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = select_device(args.device)
    env = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name() if device.type == "cuda" else "CPU",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "batches": args.batches,
        "repeats": args.repeats,
        "amp": args.amp,
        "compile": args.compile,
        "channels_last": args.channels_last,
    }
    print(", ".join(f"{k} {v}" for k, v in env.items()))
    rows = []
    latents = args.latent + args.latent[-1:] * len(args.sizes)
    for cap in args.max_channels:
        for size, latent in zip(args.sizes, latents, strict=False):
            cfg = TrainConfig(
                device=args.device,
                batch_size=args.batch_size,
                latent_dim=latent,
                max_channels=cap or None,
                amp=args.amp,
                channels_last=args.channels_last,
            )
            torch.manual_seed(0)
            images = torch.rand(args.batch_size * args.batches, 1, size, size) * 2 - 1
            try:
                res = measure(images, cfg, args.repeats, args.compile)
            except Exception as exc:  # e.g. torch.compile of the double backward
                print(f"cap {cap or 'none'} {size} px: failed: {type(exc).__name__}: {exc}")
                rows.append({"max_channels": cap or None, "size": size, "error": str(exc)})
                continue
            res["epochs_per_budget"] = args.budget_minutes * 60 * res["ours_img_s"] / args.n_images
            rows.append({"max_channels": cap or None, "size": size, **res})
            print(
                f"cap {cap or 'none':>4} {size:4d} px  ours {res['ours_img_s']:8.2f} img/s  "
                f"idiomatic NCHW {res['reference_nchw_img_s']:8.2f} "
                f"({res['ratio_vs_nchw']:.2f}x)  idiomatic channels-last "
                f"{res['reference_channels_last_img_s']:8.2f} "
                f"({res['ratio_vs_channels_last']:.2f}x)  epochs in {args.budget_minutes:g} min "
                f"({args.n_images} images/epoch): {res['epochs_per_budget']:.1f}"
            )
        ok = {r["size"]: r for r in rows if r["max_channels"] == (cap or None) and "error" not in r}
        if len(ok) >= 2:
            lo, hi = min(ok), max(ok)
            r = ok[lo]["epochs_per_budget"] / ok[hi]["epochs_per_budget"]
            print(f"cap {cap or 'none'}: epochs per budget {lo}/{hi} px {r:.1f}x (thesis 16.4x)")
    results = {"environment": env, "rows": rows}
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()

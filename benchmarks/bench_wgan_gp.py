"""WGAN-GP training throughput: our loop vs a plain reference loop, and epochs per budget.

The reference loop is written the straightforward way common WGAN-GP examples use: a
DataLoader, the critic run separately on real, generated and interpolated images, the
generated batch kept in the generator's graph during the critic step, gradients of the
critic's weights computed (and thrown away) in the generator step. Both loops train the same
models on the same data with the same hyper-parameters; images/s counts real images seen
by the critic.

Epochs per budget: an epoch is one pass over `--n-images` images, so a budget of B minutes
gives ``B * 60 * images_per_s / n_images`` epochs (the thesis saw 7630 epochs at 64 px and
466 at 256 px in 4 hours, a 16x ratio).

    .venv/bin/python benchmarks/bench_wgan_gp.py --sizes 64 256 --batches 6 --max-channels 16
    python benchmarks/bench_wgan_gp.py --device cuda          # thesis channels on a GPU
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tomosynth.device import select_device  # noqa: E402
from tomosynth.models.wgan_gp import WganGpConfig, build_models  # noqa: E402
from tomosynth.train.common import StopSignal  # noqa: E402
from tomosynth.train.wgan_gp import TrainConfig, _Trainer  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def reference_epoch(gen, critic, opt_g, opt_c, loader, cfg: TrainConfig, device) -> None:
    """One epoch of the plain loop (per-step zero_grad, three critic calls, grad via ones)."""
    for i, (real,) in enumerate(loader):
        real = real.to(device)
        opt_c.zero_grad()
        z = torch.randn(real.shape[0], cfg.latent_dim, device=device)
        fake = gen(z)
        d_real = critic(real)
        d_fake = critic(fake)
        alpha = torch.rand(real.shape[0], 1, 1, 1, device=device)
        mixed = (alpha * real + (1 - alpha) * fake.detach()).requires_grad_(True)
        d_mixed = critic(mixed)
        grads = torch.autograd.grad(
            outputs=d_mixed,
            inputs=mixed,
            grad_outputs=torch.ones_like(d_mixed),
            create_graph=True,
            retain_graph=True,
        )[0]
        gp = ((grads.view(grads.shape[0], -1).norm(2, dim=1) - 1) ** 2).mean()
        loss_c = -d_real.mean() + d_fake.mean() + cfg.lambda_gp * gp
        loss_c.backward()
        opt_c.step()
        opt_g.zero_grad()
        if i % cfg.n_critic == 0:
            fake = gen(z)
            loss_g = -critic(fake).mean()
            loss_g.backward()
            opt_g.step()


def time_ours(images: torch.Tensor, cfg: TrainConfig, repeats: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        trainer = _Trainer(images, Path(tmp), cfg)
        stop = StopSignal()
        trainer.run_epoch(stop)  # warm-up
        trainer.perm = None
        out = []
        for _ in range(repeats):
            _sync(trainer.device)
            t0 = time.perf_counter()
            trainer.run_epoch(stop)
            _sync(trainer.device)
            out.append(images.shape[0] / (time.perf_counter() - t0))
            trainer.perm = None
        return out


def time_reference(images: torch.Tensor, cfg: TrainConfig, repeats: int) -> list[float]:
    device = select_device(cfg.device)
    torch.manual_seed(cfg.seed)
    gen, critic = build_models(
        WganGpConfig(images.shape[-1], cfg.latent_dim, cfg.channel_multiplier, cfg.max_channels)
    )
    gen.to(device)
    critic.to(device)
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr, betas=cfg.betas)
    opt_c = torch.optim.Adam(critic.parameters(), lr=cfg.lr, betas=cfg.betas)
    loader = DataLoader(TensorDataset(images), batch_size=cfg.batch_size, shuffle=True)
    reference_epoch(gen, critic, opt_g, opt_c, loader, cfg, device)  # warm-up
    out = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        reference_epoch(gen, critic, opt_g, opt_c, loader, cfg, device)
        _sync(device)
        out.append(images.shape[0] / (time.perf_counter() - t0))
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 256])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--batches", type=int, default=10, help="batches per timed epoch")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-channels", type=int, default=None)
    p.add_argument("--latent", type=int, nargs="+", default=[100, 200], help="per size")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--amp", action="store_true")
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
    print(
        f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'}), "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}"
    )
    results = {}
    for size, latent in zip(
        args.sizes, args.latent + args.latent[-1:] * len(args.sizes), strict=False
    ):
        cfg = TrainConfig(
            device=args.device,
            batch_size=args.batch_size,
            latent_dim=latent,
            max_channels=args.max_channels,
            amp=args.amp,
            channels_last=args.channels_last,
        )
        images = torch.rand(args.batch_size * args.batches, 1, size, size) * 2 - 1
        ref = time_reference(images, cfg, args.repeats)
        ours = time_ours(images, cfg, args.repeats)
        ref_m, ours_m = statistics.median(ref), statistics.median(ours)
        epochs = args.budget_minutes * 60 * ours_m / args.n_images
        results[size] = {
            "ours_img_s": ours_m,
            "reference_img_s": ref_m,
            "ratio": ours_m / ref_m,
            "epochs_per_budget": epochs,
        }
        print(
            f"{size:4d} px  ours {ours_m:9.2f} img/s  reference {ref_m:9.2f} img/s  "
            f"ratio {ours_m / ref_m:5.2f}x  epochs in {args.budget_minutes:g} min "
            f"({args.n_images} images/epoch): {epochs:9.1f}"
        )
    if len(args.sizes) >= 2:
        lo, hi = min(args.sizes), max(args.sizes)
        r = results[lo]["epochs_per_budget"] / results[hi]["epochs_per_budget"]
        print(f"epochs per budget {lo} px / {hi} px: {r:.1f}x (thesis 64/256 px: 7630/466 = 16.4x)")
        results["epochs_ratio"] = r
    if args.out:
        args.out.write_text(json.dumps({str(k): v for k, v in results.items()}, indent=2))
    return results


if __name__ == "__main__":
    main()

"""Convolutional WGAN-GP generator and critic (thesis section 5.2).

The generator maps a latent vector to a 16x16 feature map, then doubles the resolution per
block [upsample x2, conv3x3, ReLU, conv3x3, ReLU] until the target size; the first block keeps
``2 * size`` channels and every later block halves them. The critic mirrors it without
upsampling: strided convolutions halve the resolution back to 16x16 while the channels grow,
LeakyReLU, no normalisation (the gradient penalty is per sample), and a linear map to one
scalar.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from tomosynth.checkpoint import load_checkpoint
from tomosynth.errors import ConfigError, DataError
from tomosynth.preprocess import to_uint8

#: Resolution of the generator's first feature map (thesis: enough for the global structure).
BASE_SIZE = 16


@dataclass(frozen=True)
class WganGpConfig:
    """Architecture of one generator/critic pair.

    Parameters
    ----------
    size : int
        Image side in pixels; a power of two >= 16.
    latent_dim : int
        Length of the latent vector (thesis: 100 at 64 px, 200 at 256 px).
    channel_multiplier : float
        Scales the thesis' ``2 * size`` starting channels (1.0 = thesis; smaller for CPU demos).
    max_channels : int or None
        Upper bound on the starting channels (None = no cap).
    """

    size: int
    latent_dim: int = 100
    channel_multiplier: float = 1.0
    max_channels: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def check_size(size: int) -> int:
    """Number of x2 blocks from 16 px to `size`; ConfigError unless `size` is a power of two >= 16."""
    size_int = int(size)
    if size_int != size or size_int < BASE_SIZE or size_int & (size_int - 1):
        raise ConfigError(
            f"wgan_gp size: {size} px is not supported; the generator starts from a "
            f"{BASE_SIZE}x{BASE_SIZE} map and doubles it per block, so the size must be a power "
            f"of two >= {BASE_SIZE} (16, 32, 64, 128, 256, ...)"
        )
    return int(math.log2(size_int // BASE_SIZE))


def block_channels(cfg: WganGpConfig) -> list[int]:
    """Channels of the 16x16 map followed by the output channels of each x2 block.

    Thesis: start at ``2 * size`` (times the multiplier, capped), halve from the second block on.
    """
    n_blocks = check_size(cfg.size)
    if cfg.channel_multiplier <= 0:
        raise ConfigError(f"wgan_gp channel_multiplier: must be > 0, got {cfg.channel_multiplier}")
    start = max(1, round(2 * cfg.size * cfg.channel_multiplier))
    if cfg.max_channels is not None:
        if cfg.max_channels < 1:
            raise ConfigError(f"wgan_gp max_channels: must be >= 1, got {cfg.max_channels}")
        start = min(start, cfg.max_channels)
    chans = [start]
    for k in range(n_blocks):
        chans.append(max(1, start >> k))  # block 1 keeps `start`, block k+1 has start / 2**k
    return chans


class Generator(nn.Module):
    """Latent vector ``(N, latent_dim)`` -> image ``(N, 1, size, size)`` in [-1, 1] (tanh)."""

    def __init__(
        self,
        size: int,
        latent_dim: int = 100,
        channel_multiplier: float = 1.0,
        max_channels: int | None = None,
    ) -> None:
        super().__init__()
        self.config = WganGpConfig(size, latent_dim, channel_multiplier, max_channels)
        if latent_dim < 1:
            raise ConfigError(f"wgan_gp latent_dim: must be >= 1, got {latent_dim}")
        chans = block_channels(self.config)
        self.size = size
        self.latent_dim = latent_dim
        self.start_channels = chans[0]
        self.project = nn.Linear(latent_dim, chans[0] * BASE_SIZE * BASE_SIZE)
        blocks: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:], strict=True):
            blocks += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(cin, cout, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, padding=1),
                nn.ReLU(inplace=True),
            ]
        self.blocks = nn.Sequential(*blocks)
        self.to_image = nn.Conv2d(chans[-1], 1, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(z).view(z.shape[0], self.start_channels, BASE_SIZE, BASE_SIZE)
        x = self.blocks(x)
        return torch.tanh(self.to_image(x))


class Critic(nn.Module):
    """Image ``(N, 1, size, size)`` in [-1, 1] -> unbounded realism score ``(N,)``."""

    def __init__(
        self,
        size: int,
        channel_multiplier: float = 1.0,
        max_channels: int | None = None,
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        self.config = WganGpConfig(size, 1, channel_multiplier, max_channels)
        chans = block_channels(self.config)[::-1]  # mirror: few channels at full size, growing
        self.size = size
        self.from_image = nn.Conv2d(1, chans[0], 3, padding=1)
        layers: list[nn.Module] = [nn.LeakyReLU(negative_slope, inplace=True)]
        for cin, cout in zip(chans[:-1], chans[1:], strict=True):
            layers += [
                nn.Conv2d(cin, cin, 3, padding=1),
                nn.LeakyReLU(negative_slope, inplace=True),
                nn.Conv2d(cin, cout, 4, stride=2, padding=1),  # halves the resolution
                nn.LeakyReLU(negative_slope, inplace=True),
            ]
        self.blocks = nn.Sequential(*layers)
        self.score = nn.Linear(chans[-1] * BASE_SIZE * BASE_SIZE, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.from_image(x))
        return self.score(h.flatten(1)).squeeze(1)


def build_models(cfg: WganGpConfig) -> tuple[Generator, Critic]:
    """Generator and critic for one configuration."""
    gen = Generator(cfg.size, cfg.latent_dim, cfg.channel_multiplier, cfg.max_channels)
    critic = Critic(cfg.size, cfg.channel_multiplier, cfg.max_channels)
    return gen, critic


def load_wgan_generator(
    checkpoint: str | os.PathLike, device: torch.device | str = "cpu"
) -> tuple[Generator, dict]:
    """Generator of a ``final.pt``/``latest.pt`` checkpoint (strict load) and the checkpoint."""
    ckpt = load_checkpoint(checkpoint, map_location="cpu")
    if ckpt is None:
        raise DataError(f"{checkpoint}: checkpoint does not exist")
    if ckpt.get("kind") != "wgan_gp":
        raise DataError(f"{checkpoint}: not a WGAN-GP checkpoint (kind {ckpt.get('kind')!r})")
    mc = ckpt["model_config"]
    gen = Generator(mc["size"], mc["latent_dim"], mc["channel_multiplier"], mc["max_channels"])
    try:
        gen.load_state_dict(ckpt["generator"], strict=True)
    except RuntimeError as exc:
        raise DataError(f"{checkpoint}: generator weights do not match its config: {exc}") from exc
    return gen.to(device).eval(), ckpt


def generated_uint8(images: torch.Tensor) -> np.ndarray:
    """Generator images in [-1, 1] ``(n, 1, h, w)`` -> uint8 0..255 ``(n, h, w)``: the PNG
    export's mapping (:func:`tomosynth.preprocess.to_uint8`) with bounds -1 and 1."""
    return to_uint8(images.detach().float().cpu()[:, 0].numpy(), -1.0, 1.0)

"""SRCNN (Dong et al. 2015): three convolutions refining a bicubic-upsampled image.

Layers: patch extraction (k1 x k1, c1 maps, ReLU), non-linear mapping (k2 x k2, c2 maps,
ReLU), reconstruction (k3 x k3, back to the image channels). The classic "9-1-5" network
is ``channels=(64, 32), kernels=(9, 1, 5)``. Every convolution is padded by k // 2 so the
output has the input's size. Images are float32 in [0, 1] (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from tomosynth.errors import ConfigError

PADDING_MODES = ("zeros", "reflect", "replicate")


class SRCNN(nn.Module):
    """Three-layer super-resolution CNN; (N, C, H, W) -> (N, C, H, W).

    Parameters
    ----------
    channels : (int, int)
        Feature maps of the first and second layer (paper: 64, 32).
    kernels : (int, int, int)
        Odd kernel sides of the three layers in pixels (paper: 9, 1, 5).
    in_channels : int
        Image channels (1 for grey CT slices).
    padding_mode : {"zeros", "reflect", "replicate"}
        How the borders are padded; "replicate" avoids the dark rim zero padding teaches.
    """

    def __init__(
        self,
        channels: Sequence[int] = (64, 32),
        kernels: Sequence[int] = (9, 1, 5),
        in_channels: int = 1,
        padding_mode: str = "replicate",
    ) -> None:
        super().__init__()
        channels, kernels = tuple(int(c) for c in channels), tuple(int(k) for k in kernels)
        if len(channels) != 2 or min(channels) < 1:
            raise ConfigError(f"srcnn.channels: expected two positive integers, got {channels}")
        if len(kernels) != 3 or any(k < 1 or k % 2 == 0 for k in kernels):
            raise ConfigError(f"srcnn.kernels: expected three odd positive integers, got {kernels}")
        if in_channels < 1:
            raise ConfigError(f"srcnn.in_channels: must be >= 1, got {in_channels}")
        if padding_mode not in PADDING_MODES:
            raise ConfigError(
                f"srcnn.padding_mode: expected one of {PADDING_MODES}, got {padding_mode!r}"
            )
        self.config = {
            "channels": list(channels),
            "kernels": list(kernels),
            "in_channels": int(in_channels),
            "padding_mode": padding_mode,
        }
        widths = (in_channels, *channels, in_channels)
        self.layers = nn.ModuleList(
            nn.Conv2d(widths[i], widths[i + 1], k, padding=k // 2, padding_mode=padding_mode)
            for i, k in enumerate(kernels)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-normal weights for the ReLU layers; a small (std 1e-3) reconstruction layer as
        in the paper, so the untrained network starts near a constant output."""
        for conv in self.layers[:-1]:
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        nn.init.normal_(self.layers[-1].weight, std=1e-3)
        nn.init.zeros_(self.layers[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.layers[:-1]:
            x = torch.relu(conv(x))
        return self.layers[-1](x)

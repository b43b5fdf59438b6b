"""SRCNN (Dong et al. 2015): three convolutions refining a bicubic-upsampled image.

Layers: patch extraction (k1 x k1, c1 maps, ReLU), non-linear mapping (k2 x k2, c2 maps,
ReLU), reconstruction (k3 x k3, back to the image channels). The classic "9-1-5" network
is ``channels=(64, 32), kernels=(9, 1, 5)``. Every convolution is padded by k // 2 so the
output has the input's size. Images are float32 in [0, 1] (docs/architecture.md).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from tomosynth.checkpoint import load_checkpoint
from tomosynth.device import select_device
from tomosynth.errors import ConfigError, DataError

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


def to_unit(batch: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W) -> float32 (N, 1, H, W) in [0, 1]."""
    return batch.to(torch.float32).unsqueeze(1) / 255.0


@torch.no_grad()
def refine(model: nn.Module, images: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """Run SRCNN on bicubic-upsampled uint8 (N, H, W) images; uint8 (N, H, W) out, 0..255."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(images), batch_size):
        x = to_unit(
            torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])).to(device)
        )
        y = model(x).clamp(0.0, 1.0) * 255.0
        out.append(torch.round(y)[:, 0].to(torch.uint8).cpu().numpy())
    return np.concatenate(out)


def load_srcnn(path: str | os.PathLike, device: str = "auto") -> tuple[SRCNN, dict]:
    """Load a ``best.pt`` written by :func:`tomosynth.train.srcnn.train_srcnn` (strict state-dict match).

    Returns the model in eval mode on the selected device, and the checkpoint's metadata
    (``low_size``, ``high_size``, ``epoch``, validation metrics, ...).
    """
    state = load_checkpoint(path)
    if state is None:
        raise DataError(f"{path}: no such checkpoint")
    if "model" not in state or "model_config" not in state:
        raise DataError(f"{path}: not an SRCNN checkpoint (no 'model'/'model_config')")
    model = SRCNN(**state["model_config"])
    try:
        model.load_state_dict(state["model"], strict=True)
    except RuntimeError as exc:
        raise DataError(f"{path}: weights do not fit the SRCNN it describes: {exc}") from exc
    model.to(select_device(device)).eval()
    info = {k: v for k, v in state.items() if k not in ("model", "optimizer")}
    return model, info

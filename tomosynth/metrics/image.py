"""PSNR and SSIM on batches of grey images, in torch (GPU when the data are there).

Both equal scikit-image's ``peak_signal_noise_ratio`` and ``structural_similarity`` with
their defaults (7x7 uniform window, K1 = 0.01, K2 = 0.03, sample covariance, the window
radius cropped from every edge), computed in float64.
"""

from __future__ import annotations

import math
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from tomosynth.errors import DataError

ArrayLike = TypeVar("ArrayLike", np.ndarray, torch.Tensor)


def _as_batch(x: np.ndarray | torch.Tensor, name: str) -> tuple[torch.Tensor, bool]:
    """Return `x` as a float64 (N, H, W) tensor and whether it was a single 2-D image."""
    t = torch.from_numpy(np.asarray(x)) if not isinstance(x, torch.Tensor) else x.detach()
    t = t.to(torch.float64)
    if t.ndim == 2:
        return t.unsqueeze(0), True
    if t.ndim == 3:
        return t, False
    if t.ndim == 4 and t.shape[1] == 1:
        return t[:, 0], False
    raise DataError(
        f"{name}: expected an (H, W), (N, H, W) or (N, 1, H, W) image array, got shape {tuple(t.shape)}"
    )


def _pair(a, b) -> tuple[torch.Tensor, torch.Tensor, bool]:
    ta, single = _as_batch(a, "a")
    tb, _ = _as_batch(b, "b")
    if ta.shape != tb.shape:
        raise DataError(f"image shapes differ: {tuple(ta.shape)} vs {tuple(tb.shape)}")
    if ta.device != tb.device:
        tb = tb.to(ta.device)
    return ta, tb, single


def _output(values: torch.Tensor, like, single: bool):
    """Per-image values as the caller's type: numpy in, numpy out; torch in, torch out."""
    if isinstance(like, torch.Tensor):
        return values[0] if single else values
    out = values.cpu().numpy()
    return float(out[0]) if single else out


def _check_range(data_range: float) -> float:
    data_range = float(data_range)
    if not (math.isfinite(data_range) and data_range > 0):
        raise ValueError(f"data_range must be a finite number > 0, got {data_range}")
    return data_range


def mse(a: ArrayLike, b: ArrayLike) -> ArrayLike:
    """Mean squared error per image (in the images' units squared).

    Parameters
    ----------
    a, b : numpy array or torch tensor, (H, W), (N, H, W) or (N, 1, H, W)
    """
    ta, tb, single = _pair(a, b)
    return _output(((ta - tb) ** 2).mean(dim=(-2, -1)), a, single)


def psnr(a: ArrayLike, b: ArrayLike, data_range: float) -> ArrayLike:
    """Peak signal-to-noise ratio per image, in dB (``inf`` for identical images).

    Parameters
    ----------
    a, b : numpy array or torch tensor, (H, W), (N, H, W) or (N, 1, H, W)
        Reference and test images (symmetric).
    data_range : float
        Span of possible values (255 for uint8, 1 for images in [0, 1]); required because
        guessing it from the dtype silently changes the result.

    Returns
    -------
    float or (N,) array/tensor of float64, matching the input type and batching.
    """
    data_range = _check_range(data_range)
    ta, tb, single = _pair(a, b)
    err = ((ta - tb) ** 2).mean(dim=(-2, -1))
    values = 10.0 * torch.log10(data_range**2 / err)
    return _output(values, a, single)


def ssim(
    a: ArrayLike,
    b: ArrayLike,
    data_range: float,
    win_size: int = 7,
    k1: float = 0.01,
    k2: float = 0.03,
) -> ArrayLike:
    """Mean structural similarity per image (Wang et al. 2004, scikit-image defaults).

    Local means, variances and the covariance come from a `win_size` x `win_size` uniform
    window with the sample (N - 1) normalisation; the mean is taken over the window
    positions that lie fully inside the image, which is exactly scikit-image's edge crop.

    Parameters
    ----------
    a, b : numpy array or torch tensor, (H, W), (N, H, W) or (N, 1, H, W)
    data_range : float
        Span of possible values (255 for uint8, 1 for images in [0, 1]).
    win_size : int
        Odd window side in pixels, at most min(H, W).
    k1, k2 : float
        Stabilising constants, C1 = (k1 * data_range)**2, C2 = (k2 * data_range)**2.

    Returns
    -------
    float or (N,) array/tensor of float64 in [-1, 1], matching the input type and batching.
    """
    data_range = _check_range(data_range)
    if win_size < 1 or win_size % 2 != 1:
        raise ValueError(f"win_size must be odd and >= 1, got {win_size}")
    ta, tb, single = _pair(a, b)
    if min(ta.shape[-2:]) < win_size:
        raise DataError(
            f"images of shape {tuple(ta.shape[-2:])} are smaller than the {win_size}px window"
        )
    x = ta.unsqueeze(1)
    y = tb.unsqueeze(1)

    def window_mean(t: torch.Tensor) -> torch.Tensor:
        # "valid" positions only: the crop scikit-image applies after its reflect-padded filter
        return F.avg_pool2d(t, win_size, stride=1)

    ux, uy = window_mean(x), window_mean(y)
    uxx, uyy, uxy = window_mean(x * x), window_mean(y * y), window_mean(x * y)
    n = win_size**2
    cov_norm = n / (n - 1) if n > 1 else 1.0
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return _output(s.mean(dim=(1, 2, 3)), a, single)

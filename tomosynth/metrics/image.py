"""PSNR and SSIM on batches of grey images, in torch (GPU when the data are there).

Both equal scikit-image's ``peak_signal_noise_ratio`` and ``structural_similarity``,
computed in float64. SSIM has two windows (:data:`SSIM_WINDOWS`):

- ``uniform``: scikit-image's default, a 7x7 uniform window with the sample (N - 1)
  covariance;
- ``gaussian``: Wang et al. (2004) and most super-resolution papers, a Gaussian window of
  sigma 1.5 px truncated at 3.5 sigma (11x11) with the population covariance, i.e.
  ``structural_similarity(..., gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False)``.

Both use K1 = 0.01, K2 = 0.03 and average over the window positions that lie fully inside
the image (scikit-image's edge crop).
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


#: SSIM windows: name -> the convention, as written in the tables that report SSIM.
SSIM_WINDOWS: dict[str, str] = {
    "gaussian": "SSIM Gaussian window sigma 1.5 px (11x11), population covariance (Wang 2004)",
    "uniform": "SSIM 7x7 uniform window, sample covariance (scikit-image default)",
}


def _gaussian_kernel(sigma: float, truncate: float = 3.5) -> np.ndarray:
    """Normalised 1-D Gaussian of `sigma` px over ``|x| <= int(truncate * sigma + 0.5)``
    (SciPy's ``gaussian_filter`` support, which scikit-image's SSIM uses)."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def ssim(
    a: ArrayLike,
    b: ArrayLike,
    data_range: float,
    win_size: int = 7,
    k1: float = 0.01,
    k2: float = 0.03,
    window: str = "uniform",
    sigma: float = 1.5,
) -> ArrayLike:
    """Mean structural similarity per image (Wang et al. 2004).

    Local means, variances and the covariance come from the window: ``"uniform"`` (the
    default, scikit-image's): `win_size` x `win_size` with the sample (N - 1)
    normalisation; ``"gaussian"``: a Gaussian of `sigma` px truncated at 3.5 sigma,
    population normalisation (Wang et al.). The mean is taken over the window positions
    that lie fully inside the image, which is exactly scikit-image's edge crop.

    Parameters
    ----------
    a, b : numpy array or torch tensor, (H, W), (N, H, W) or (N, 1, H, W)
    data_range : float
        Span of possible values (255 for uint8, 1 for images in [0, 1]).
    win_size : int
        Odd side in pixels of the uniform window, at most min(H, W).
    k1, k2 : float
        Stabilising constants, C1 = (k1 * data_range)**2, C2 = (k2 * data_range)**2.
    window : {"uniform", "gaussian"}
        The window (see :data:`SSIM_WINDOWS`).
    sigma : float
        Standard deviation (px) of the Gaussian window.

    Returns
    -------
    float or (N,) array/tensor of float64 in [-1, 1], matching the input type and batching.
    """
    data_range = _check_range(data_range)
    if window not in SSIM_WINDOWS:
        raise ValueError(f"window must be one of {sorted(SSIM_WINDOWS)}, got {window!r}")
    if window == "uniform" and (win_size < 1 or win_size % 2 != 1):
        raise ValueError(f"win_size must be odd and >= 1, got {win_size}")
    if window == "gaussian" and not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a finite number > 0, got {sigma}")
    ta, tb, single = _pair(a, b)
    if window == "gaussian":
        k = torch.from_numpy(_gaussian_kernel(float(sigma))).to(ta.device)
        side = len(k)
        weights = (k[:, None] * k[None, :])[None, None]
        cov_norm = 1.0
    else:
        side = win_size
        weights = None
        n = win_size**2
        cov_norm = n / (n - 1) if n > 1 else 1.0
    if min(ta.shape[-2:]) < side:
        raise DataError(
            f"images of shape {tuple(ta.shape[-2:])} are smaller than the {side}px window"
        )
    x = ta.unsqueeze(1)
    y = tb.unsqueeze(1)

    def window_mean(t: torch.Tensor) -> torch.Tensor:
        # "valid" positions only: the crop scikit-image applies after its reflect-padded filter
        if weights is None:
            return F.avg_pool2d(t, side, stride=1)
        return F.conv2d(t, weights)

    ux, uy = window_mean(x), window_mean(y)
    uxx, uyy, uxy = window_mean(x * x), window_mean(y * y), window_mean(x * y)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return _output(s.mean(dim=(1, 2, 3)), a, single)

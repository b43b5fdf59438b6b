"""The project's image resampling: one bicubic and one area average, both OpenCV's.

Every bicubic in tomosynth goes through :func:`bicubic`: the baseline upscaling of the
generated images (``upscale``), SRCNN's inputs, the LR images of the SR pairs (the
degradation of HR images) and the SR tables' bicubic rows. The one exception is inside a
network: the SRGAN generator's ``skip: bicubic`` upscales its input with torch's bicubic
(the same Keys kernel, ``a = -0.75``, and pixel-centre alignment; borders differ), because
it runs on the training device in every forward pass. Every area average (the
PNG export's downscaling) goes through :func:`area`.

- :func:`bicubic` is ``cv2.resize(..., interpolation=cv2.INTER_CUBIC)``, the kernel the
  thesis names: Keys' cubic convolution with ``a = -0.75``, 4 x 4 taps, pixel centres
  aligned (source coordinate ``(x + 0.5) / s - 0.5``), edge pixels replicated beyond the
  border. It does **not** low-pass filter when shrinking: the 4 taps keep their width
  whatever the factor, so a downscale by 2 or 4 is a cubic interpolation at the new pixel
  centres (no antialiasing, unlike MATLAB's ``imresize`` or PIL).
- :func:`area` is ``cv2.INTER_AREA``: exact block means for integer shrink factors,
  pixel-area weights otherwise.

Both accept numpy arrays and torch tensors of shape ``(H, W)``, ``(N, H, W)`` or
``(N, C, H, W)`` (every leading index is one grey image) and return the same kind, layout
and (for tensors) device. dtype and range:

- ``uint8`` in: computed in float32, rounded to nearest and saturated to 0..255, ``uint8``
  out (the 8-bit image convention; cubic overshoot is clipped);
- ``float64`` in: computed and returned in float64;
- anything else (float32, float16, integers, bool): computed and returned in float32.

Float results keep the cubic overshoot (values slightly outside the input's range near
edges) unless `clip` is given. Tensors are detached (no gradient flows through OpenCV).
"""

from __future__ import annotations

import sys
from typing import Any

import cv2
import numpy as np

from tomosynth.errors import DataError


def _size(size: int | tuple[int, int]) -> tuple[int, int]:
    """(height, width) from an int (square) or a pair, both >= 1."""
    h, w = (size, size) if np.isscalar(size) else tuple(size)
    if int(h) != h or int(w) != w or int(h) < 1 or int(w) < 1:
        raise DataError(f"resample: output size must be positive integers, got {size}")
    return int(h), int(w)


def _is_tensor(x: Any) -> bool:
    # torch is only consulted when the caller has imported it: the data stage runs
    # without torch.
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _resize(
    x: Any,
    size: int | tuple[int, int],
    interpolation: int,
    clip: tuple[float, float] | None,
    name: str,
) -> Any:
    h, w = _size(size)
    tensor = _is_tensor(x)
    arr = x.detach().cpu().numpy() if tensor else np.asarray(x)
    if arr.ndim not in (2, 3, 4) or min(arr.shape[-2:]) < 1:
        raise DataError(
            f"{name}: expected (H, W), (N, H, W) or (N, C, H, W) images, got shape {arr.shape}"
        )
    work = np.float64 if arr.dtype == np.float64 else np.float32
    flat = arr.reshape(-1, *arr.shape[-2:])
    out = np.empty((len(flat), h, w), dtype=work)
    for i, img in enumerate(flat):
        # cv2.resize takes (width, height)
        out[i] = cv2.resize(
            np.ascontiguousarray(img, dtype=work), (w, h), interpolation=interpolation
        )
    out = out.reshape(*arr.shape[:-2], h, w)
    if clip is not None:
        low, high = (float(c) for c in clip)
        np.clip(out, low, high, out=out)
    if arr.dtype == np.uint8:
        out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    if tensor:
        return sys.modules["torch"].from_numpy(out).to(x.device)
    return out


def bicubic(x: Any, size: int | tuple[int, int], *, clip: tuple[float, float] | None = None) -> Any:
    """Resize images with OpenCV's bicubic interpolation (``INTER_CUBIC``, ``a = -0.75``).

    Parameters
    ----------
    x : numpy array or torch tensor, (H, W), (N, H, W) or (N, C, H, W)
        Grey images; dtype rules in the module docstring.
    size : int or (height, width)
        Output size in pixels; an int gives a square image.
    clip : (low, high), optional
        Clip the float result to this range (e.g. ``(0, 1)`` for images in [0, 1]).

    Returns
    -------
    Same kind, layout and device as `x`, last two axes ``(height, width)``.
    """
    return _resize(x, size, cv2.INTER_CUBIC, clip, "bicubic")


def area(x: Any, size: int | tuple[int, int], *, clip: tuple[float, float] | None = None) -> Any:
    """Resize images by area averaging (OpenCV ``INTER_AREA``; block means for integer factors).

    Meant for shrinking; enlarging is OpenCV's own scheme, not an area average.
    Parameters and returns as :func:`bicubic`.
    """
    return _resize(x, size, cv2.INTER_AREA, clip, "area")

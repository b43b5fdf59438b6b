# SPDX-License-Identifier: BSD-3-Clause
"""The geometry convention of every reconstruction, and the forward projector.

Geometry (shared by `forward_project`, every `fbp` backend, `find_center`, the simulator)
-----------------------------------------------------------------------------------------
This is astra-toolbox's ``parallel`` geometry, which tomopy uses too (tomopy hands theta
to astra unchanged; gridrec writes its output in the same frame). A slice is an ``(n, n)``
array ``img[i, j]`` (i = row, j = column). Its pixel centres sit at
``x = j + 0.5 - n/2`` (along the columns, to the right) and ``y = n/2 - 0.5 - i`` (up: row 0
is the top), in pixels, with the rotation axis at ``x = y = 0``. At angle ``theta``
(radians) the ray through ``(x, y)`` reaches detector column ``d`` (0-based) at the signed
distance ``s = d + 0.5 - center`` from the axis, where

    s = x cos(theta) + y sin(theta).

So at ``theta = 0`` the rays run down the columns and the detector runs along ``x``; at
``theta = pi/2`` the detector runs along ``y`` (up). There is no ``pi/2`` offset between
our theta, astra's and tomopy's. docs/architecture.md has a picture.

Units: projections are line integrals in pixel units (sum of ``mu * voxel`` along the ray);
reconstructions are attenuation per pixel, so a block of ``mu * voxel = 1`` reconstructs to
about 1 with every backe"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from tomosynth.device import select_device

if TYPE_CHECKING:  # torch is imported where used: the tomopy backend runs without it
    import torch


def _as_theta(
    theta: np.ndarray | torch.Tensor | list[float], n_angles: int | None = None
) -> np.ndarray:
    theta = np.asarray(theta, dtype=np.float64).ravel()
    if n_angles is not None and theta.size != n_angles:
        raise ValueError(f"theta has {theta.size} angles but the data has {n_angles}")
    return theta


def _chunk(total_elems_per_item: int, budget_bytes: int, n_items: int) -> int:
    """Items per chunk so that ``items * elems * 4`` bytes stays within the budget."""
    return int(max(1, min(n_items, budget_bytes // max(1, 4 * total_elems_per_item))))


def forward_project(
    volume: np.ndarray,
    theta: np.ndarray,
    center: float | None = None,
    *,
    step: float = 0.5,
    device: str | torch.device = "auto",
    memory_budget_mb: int = 256,
) -> np.ndarray:
    """Parallel-beam line integrals of a volume (the Radon transform of each slice).

    Parameters
    ----------
    volume : (slices, n, n) array
        Attenuation per pixel (e.g. ``mu * voxel_size``); float32 is used internally.
        A single ``(n, n)`` slice is accepted and gives ``(angles, n)``.
    theta : (angles,) array
        Projection angles in radians.
    center : float, optional
        Rotation axis position in detector pixels; ``None`` means ``n / 2``.
    step : float
        Sampling step along each ray in pixels (bilinear interpolation); 0.5 is accurate to
        well under 1 % for smooth and piecewise-constant objects.
    device : str
        ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
    memory_budget_mb : int
        Bound on the interpolated samples held at once (chunking over angles).

    Returns
    -------
    (angles, slices, n) float32 array
        Line integrals in pixel units; the detector has ``n`` columns.
    """
    vol = np.ascontiguousarray(volume, dtype=np.float32)  # torch takes no negative strides
    squeeze = vol.ndim == 2
    if squeeze:
        vol = vol[None]
    if vol.ndim != 3 or vol.shape[1] != vol.shape[2]:
        raise ValueError(f"volume must be (slices, n, n), got shape {np.shape(volume)}")
    theta = _as_theta(theta)
    n_slices, n, _ = vol.shape
    c = n / 2.0 if center is None else float(center)
    import torch
    import torch.nn.functional as F

    dev = select_device(device)
    vol_t = torch.from_numpy(vol).to(dev)[None]  # (1, C=slices, H=n, W=n)
    # float32 coordinates: < 1e-3 px rounding for detectors up to ~10^4 pixels
    s = torch.arange(n, dtype=torch.float32, device=dev) + 0.5 - c  # detector positions
    half = 0.5 * n * math.sqrt(2.0) + abs(c - n / 2.0) + 1.0
    n_t = int(math.ceil(2 * half / step)) + 1
    t = (torch.arange(n_t, dtype=torch.float32, device=dev) - (n_t - 1) / 2.0) * step
    out = np.empty((theta.size, n_slices, n), dtype=np.float32)
    # per angle and ray sample: x, y, the grid (2) and one value per slice (+1 for the sum)
    per_angle = n * n_t * (n_slices + 5)
    chunk = _chunk(per_angle, memory_budget_mb * 2**20, theta.size)
    for a0 in range(0, theta.size, chunk):
        th = torch.as_tensor(theta[a0 : a0 + chunk], dtype=torch.float64, device=dev)
        cos = torch.cos(th).float()[:, None, None]
        sin = torch.sin(th).float()[:, None, None]
        # the ray of detector position s: (x, y) = s (cos, sin) + t (-sin, cos), so that
        # x cos + y sin = s along it; grid_sample (align_corners=False) wants
        # (column, row) = (2 x / n, -2 y / n) (y points up, rows down)
        gx = (2.0 / n) * (s[None, :, None] * cos - t[None, None, :] * sin)
        gy = (-2.0 / n) * (s[None, :, None] * sin + t[None, None, :] * cos)
        grid = torch.stack((gx, gy), dim=-1).reshape(1, -1, n_t, 2)  # (1, angles*n, n_t, 2)
        del gx, gy
        samples = F.grid_sample(
            vol_t, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )  # (1, slices, angles*n, n_t)
        proj = samples.sum(dim=-1).reshape(n_slices, -1, n) * step
        out[a0 : a0 + chunk] = proj.permute(1, 0, 2).cpu().numpy()
    return out[:, 0] if squeeze else out

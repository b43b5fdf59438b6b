# SPDX-License-Identifier: BSD-3-Clause
"""The torch back-projector (backend ``torch``): pixel-driven FBP, tiled, threaded."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tomosynth.device import select_device
from tomosynth.recon.filters import _angle_weight, _filtered_table
from tomosynth.recon.parallel import cpu_threads, run_workers

if TYPE_CHECKING:  # torch is imported where used: the tomopy backend runs without it
    import torch


# Angles summed per step of the torch back-projector. Fixed, so that the summation order
# (and hence every bit of a slice) does not depend on the rows or tiles done at once.
_ANGLE_BLOCK = 32
# Working set of one CPU tile (gathered values, indices, weights, accumulator): small
# enough to stay in the L2 cache, large enough that each torch call does real work.
_CPU_TILE_BYTES = 2 * 2**20


def _bp_bytes_per_pixel(n_rows: int) -> int:
    """Back-projection temporaries per tile pixel: detector position, two indices (int32)
    and two weights per angle of a block; accumulator and block sum per row."""
    return _ANGLE_BLOCK * (4 + 8 + 8) + 8 * n_rows


def _fbp_torch(
    sino: np.ndarray,
    theta: np.ndarray,
    center: float,
    filter_name: str,
    device: str | torch.device,
    memory_budget_mb: int = 128,
    roi: int | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """Torch FBP; `roi` reconstructs only the centred ``roi x roi`` square of the slice.

    Threads on the CPU: `threads` workers (`tomosynth.recon.parallel`), each on its own
    tiles with torch at one intra-op thread; the caller's torch setting is left alone.
    """
    import torch

    with torch.no_grad():
        return _backproject(
            sino, theta, center, filter_name, device, memory_budget_mb, roi, threads
        )


def _backproject(
    sino: np.ndarray,
    theta: np.ndarray,
    center: float,
    filter_name: str,
    device: str | torch.device,
    memory_budget_mb: int,
    roi: int | None,
    threads: int | None = None,
) -> np.ndarray:
    """Pixel-driven back-projection with 1D linear interpolation along the detector.

    The filtered chunk becomes a gather table (`_filtered_table`). For each tile of pixels
    and block of `_ANGLE_BLOCK` angles, one ``embedding_bag`` call gathers, for every pixel,
    the two detector samples around its position at each angle and sums them with weights
    ``1 - frac`` and ``frac``: interpolation and angular sum in one pass over all rows of
    the chunk, no angles x pixels x rows tensor. On the CPU the tiles are shared among
    `threads` workers; every pixel sums its angles in the same fixed order whatever the
    tile's worker, so the slices are bit-identical for any thread count.
    """
    import torch

    dev = select_device(device)
    workers = 1 if dev.type == "cuda" else cpu_threads(threads)
    sino = np.ascontiguousarray(sino, dtype=np.float32)
    n_angles, n_rows, n = sino.shape
    table = _filtered_table(sino, filter_name, _angle_weight(n_angles), dev, workers)
    m = n if roi is None else int(min(roi, n))
    first = (n - m) // 2
    # pixel (i, j) sits at x = coords[j], y = -coords[i]; its padded-table position is
    # d + 1 = x cos + y sin + center + 0.5 (float64 here, float32 per block: < 1e-3 px)
    coords = torch.arange(first, first + m, dtype=torch.float64, device=dev) + 0.5 - n / 2.0
    th = torch.as_tensor(np.asarray(theta, dtype=np.float64), device=dev)
    # (m, angles) tables, pixel-major like the blocks below: x cos by column, and
    # center + 0.5 + y sin by row (built in place: at most 16 bytes per entry at once)
    xcos_t = (coords[:, None] * torch.cos(th)[None, :]).float()
    prod = coords[:, None] * torch.sin(th)[None, :]
    ysin_t = prod.neg_().add_(center + 0.5).float()
    del prod
    budget = memory_budget_mb * 2**20
    if dev.type != "cuda":
        budget = min(budget, _CPU_TILE_BYTES)
    pixels = max(1, budget // _bp_bytes_per_pixel(n_rows))
    tile_w = min(m, pixels)
    tile_h = max(1, min(m, pixels // tile_w))
    out = torch.empty((n_rows, m, m), dtype=torch.float32, device=dev)
    tiles = [
        (i0, min(tile_h, m - i0), j0, min(tile_w, m - j0))
        for i0 in range(0, m, tile_h)
        for j0 in range(0, m, tile_w)
    ]

    def work(mine: list[tuple[int, int, int, int]]) -> None:
        with torch.no_grad():
            _backproject_tiles(table, xcos_t, ysin_t, out, mine, tile_h * tile_w)

    if dev.type == "cuda":
        work(tiles)
    else:
        run_workers(work, tiles, workers)
    return out.cpu().numpy()


def _backproject_tiles(
    table: torch.Tensor,
    xcos_t: torch.Tensor,
    ysin_t: torch.Tensor,
    out: torch.Tensor,
    tiles: list[tuple[int, int, int, int]],
    cap: int,
) -> None:
    """One worker's tiles ``(i0, h, j0, w)`` of `_backproject` into `out`, with its own
    buffers (allocated once) for tiles of at most `cap` pixels."""
    import torch
    import torch.nn.functional as F

    dev = table.device
    n_angles, stride, n_rows = table.shape
    n = stride - 3
    flat = table.view(-1, n_rows)  # row a * (n + 3) + d + 1: all rows of one sample
    base = torch.arange(n_angles, dtype=torch.int32, device=dev) * stride  # table row of a
    a_blk = min(_ANGLE_BLOCK, n_angles)
    f32 = dict(dtype=torch.float32, device=dev)
    det = torch.empty(a_blk * cap, **f32)
    # one "bag" per pixel: for each angle of a block the detector sample below its position
    # (weight 1 - frac), then for each the one above (weight frac); embedding_bag gathers
    # and sums a bag in one pass, in this fixed order
    idx = torch.empty((cap, 2, a_blk), dtype=torch.int32, device=dev)
    wgt = torch.empty((cap, 2, a_blk), **f32)
    acc = torch.empty((cap, n_rows), **f32)
    offsets = {}
    for i0, h, j0, w in tiles:
        p = h * w
        acc_t = acc[:p]
        acc_t.zero_()
        for a0 in range(0, n_angles, a_blk):
            ab = min(a_blk, n_angles - a0)
            d = det[: ab * p]
            torch.add(
                xcos_t[None, j0 : j0 + w, a0 : a0 + ab],
                ysin_t[i0 : i0 + h, None, a0 : a0 + ab],
                out=d.view(h, w, ab),
            )
            d.clamp_(0.0, n + 1.0)  # off the detector: the zero padding
            ix, wt = idx[:p, :, :ab], wgt[:p, :, :ab]
            d = d.view(p, ab)
            ix[:, 0].copy_(d)  # truncation = floor for d >= 0
            ix[:, 0].add_(base[a0 : a0 + ab])
            torch.add(ix[:, 0], 1, out=ix[:, 1])
            torch.frac(d, out=wt[:, 1])
            torch.sub(1.0, wt[:, 1], out=wt[:, 0])
            key = (p, ab)
            if key not in offsets:
                offsets[key] = torch.arange(p, dtype=torch.int32, device=dev) * (2 * ab)
            acc_t += F.embedding_bag(
                ix.reshape(-1), flat, offsets[key], mode="sum", per_sample_weights=wt.reshape(-1)
            )
        out[:, i0 : i0 + h, j0 : j0 + w] = acc_t.view(h, w, n_rows).permute(2, 0, 1)

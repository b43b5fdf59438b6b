# SPDX-License-Identifier: BSD-3-Clause
"""Ramp filters of filtered back-projection and the filtered-projection table."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from tomosynth.errors import ConfigError
from tomosynth.recon.parallel import run_workers

if TYPE_CHECKING:  # torch is imported where used: the tomopy backend runs without it
    import torch


#: Bytes of one block of FFT lines of the ramp filter (per worker).
_FILTER_BLOCK_BYTES = 16 * 2**20
FILTERS = ("ramlak", "shepp", "cosine", "hann", "hamming", "parzen", "butterworth", "none")


def ramp_filter(n_cols: int, filter_name: str = "ramlak") -> np.ndarray:
    """Frequency response (rfft layout) of the windowed ramp for `n_cols` detector pixels.

    The ramp is the Fourier transform of the band-limited spatial kernel
    (``h[0] = 1/4``, ``h[k] = -1/(pi k)^2`` for odd ``k``, 0 for even), which avoids the
    DC offset of a sampled ``|f|``; it is about ``|f|`` with ``f`` in cycles/pixel
    (0..0.5). The ramp is multiplied by a window W(f) (tomopy's names):

    ============  ===========================================  =============
    name          W(f), f in cycles/pixel, 0 <= f <= 0.5       W(0.5)
    ============  ===========================================  =============
    ramlak        1                                            1
    shepp         sin(pi f) / (pi f)                           0.64
    cosine        cos(pi f)                                    0
    hann          (1 + cos(2 pi f)) / 2                        0
    hamming       0.54 + 0.46 cos(2 pi f)                      0.08
    parzen        (1 - 2 f)**3   (tomopy's formula)            0
    butterworth   1 / (1 + (f / 0.4)**16)  (cut-off 0.4, 8th   0.03
                  order)
    none          no ramp either: the response is 1            (1)
    ============  ===========================================  =============

    ``none`` gives a plain back-projection. The transform length is the next power of two
    >= 2 * n_cols (zero padding against wrap-around); the response has ``size // 2 + 1``
    values for ``np.fft.rfftfreq(size)``.
    """
    if filter_name not in FILTERS:
        raise ConfigError(f"recon.filter: unknown filter {filter_name!r} (one of {FILTERS})")
    size = max(64, 1 << int(math.ceil(math.log2(2 * n_cols))))
    f = np.fft.rfftfreq(size)  # cycles/pixel, 0..0.5
    if filter_name == "none":
        return np.ones_like(f)
    k = np.concatenate((np.arange(0, size // 2 + 1), np.arange(-size // 2 + 1, 0)))
    h = np.zeros(size)
    h[0] = 0.25
    odd = k % 2 == 1
    h[odd] = -1.0 / (np.pi * k[odd]) ** 2
    resp = np.real(np.fft.rfft(h))
    if filter_name == "shepp":
        resp *= np.sinc(f)
    elif filter_name == "cosine":
        resp *= np.cos(np.pi * f)
    elif filter_name == "hann":
        resp *= 0.5 * (1.0 + np.cos(2.0 * np.pi * f))
    elif filter_name == "hamming":
        resp *= 0.54 + 0.46 * np.cos(2.0 * np.pi * f)
    elif filter_name == "parzen":
        resp *= (1.0 - 2.0 * f) ** 3
    elif filter_name == "butterworth":
        resp *= 1.0 / (1.0 + (f / 0.4) ** 16)
    return resp


def _filtered_table(
    sino: np.ndarray, filter_name: str, weight: float, dev: torch.device, workers: int = 1
) -> torch.Tensor:
    """Ramp-filtered sinograms laid out for gathering: ``(angles, cols + 3, rows)``.

    ``table[a, d + 1, r]`` is the filtered value of detector column ``d`` (times `weight`);
    column 0 and the last two are zeros, so that a clamped interpolation index reads the
    zero padding outside the detector. Only this table (about the size of the chunk) is
    kept: the FFTs run over blocks of angles whose spectra and inverse transforms take at
    most about ``_FILTER_BLOCK_BYTES`` (16 MiB) per worker, whatever the chunk. On the
    CPU the blocks are shared among `workers` threads (`tomosynth.recon.parallel`).
    """
    import torch

    n_angles, n_rows, n = sino.shape
    resp = torch.as_tensor(ramp_filter(n, filter_name) * weight, dtype=torch.float32, device=dev)
    size = 2 * (resp.shape[0] - 1)
    table = torch.zeros((n_angles, n + 3, n_rows), dtype=torch.float32, device=dev)
    # per detector line: complex spectrum (size / 2 + 1 complex64 = ~4 size bytes), the
    # real inverse transform (4 size bytes) and a line of FFT scratch: < 12 size bytes
    step = max(1, _FILTER_BLOCK_BYTES // (12 * size * n_rows))
    src = torch.from_numpy(sino)

    def work(blocks: list[int]) -> None:
        for a0 in blocks:
            spec = torch.fft.rfft(src[a0 : a0 + step].to(dev), n=size, dim=-1)
            spec *= resp
            line = torch.fft.irfft(spec, n=size, dim=-1)
            del spec
            table[a0 : a0 + step, 1 : n + 1, :] = line[..., :n].transpose(1, 2)
            del line

    blocks = list(range(0, n_angles, step))
    if dev.type == "cuda":
        work(blocks)
    else:
        run_workers(work, blocks, workers)
    return table


def _angle_weight(n_angles: int) -> float:
    # Riemann sum of the FBP integral over [0, pi): d(theta) = pi / n. A 360-degree scan
    # counts every ray twice over [0, 2 pi), so pi / n is right for it as well.
    return math.pi / n_angles

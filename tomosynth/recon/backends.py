# SPDX-License-Identifier: BSD-3-Clause
"""Backend choice and the one FBP entry point, `fbp`, that dispatches to them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tomosynth.errors import ConfigError
from tomosynth.recon.external import _fbp_astra, _fbp_tomopy
from tomosynth.recon.filters import FILTERS
from tomosynth.recon.fourier import _fbp_fourier
from tomosynth.recon.geometry import _as_theta
from tomosynth.recon.torch_fbp import _fbp_torch

if TYPE_CHECKING:  # torch is imported where used: the tomopy backend runs without it
    import torch


BACKENDS = ("auto", "torch", "astra", "tomopy", "fourier")


def tomopy_available() -> bool:
    """Whether tomopy can be imported in this environment."""
    import importlib.util

    return importlib.util.find_spec("tomopy") is not None


def resolve_backend(backend: str) -> str:
    """``"auto"`` -> ``"tomopy"`` when importable, else ``"fourier"``; validates the name."""
    if backend not in BACKENDS:
        raise ConfigError(f"recon.backend: unknown backend {backend!r} (one of {BACKENDS})")
    if backend == "auto":
        return "tomopy" if tomopy_available() else "fourier"
    return backend


def fbp(
    sinograms: np.ndarray,
    theta: np.ndarray,
    center: float | None = None,
    filter_name: str = "ramlak",
    backend: str = "torch",
    device: str | torch.device = "auto",
    memory_budget_mb: int = 128,
    threads: int | None = None,
) -> np.ndarray:
    """Filtered back-projection of minus-log projections.

    Parameters
    ----------
    sinograms : (angles, rows, cols) array
        Line integrals in pixel units (e.g. from `minus_log`).
    theta : (angles,) array
        Radians; uniformly spaced over 180 or 360 degrees (the angular weight is
        ``pi / angles``).
    center : float, optional
        Rotation axis in detector pixels; ``None`` means ``cols / 2``.
    filter_name : {"ramlak", "shepp", "cosine", "hann", "hamming", "parzen", "butterworth", "none"}
        Window of the ramp filter (`ramp_filter`, which states each); ``none`` gives an
        unfiltered back-projection (blurred, in pixel-length units, for diagnostics only).
        ``ramlak`` and ``shepp`` match tomopy's gridrec, whose ``hann`` and ``hamming``
        (default ``filter_par``) are narrower than ours. The astra backend has no
        ``butterworth``.
    backend : {"torch", "astra", "tomopy", "fourier", "auto"}
        ``torch``: this module's FBP (GPU when available, always installed). ``astra``:
        astra-toolbox CPU FBP. ``tomopy``: ``tomopy.recon(algorithm="gridrec")``.
        ``fourier``: the same FBP sum evaluated as a non-uniform FFT (`_fbp_fourier`;
        finufft on the CPU, torch gridding on CUDA), O(N^2 log N) per slice. ``auto``
        is tomopy when importable, else fourier. A missing library raises ConfigError.
    device : str
        Torch device for the torch backend (``"auto"``: CUDA when present).
    memory_budget_mb : int
        Bound on the torch back-projector's tile (indices, weights, accumulator); on the CPU
        the tile is also capped at 2 MiB (cache-sized), on CUDA it is the whole budget.
        Besides the tile the torch backend holds the filtered chunk (about the size of the
        input) and the slices (see `recon_memory_bound_mb`).
    threads : int, optional
        CPU threads of this call (torch and fourier backends): give the job's allocation
        (a Snakemake rule's ``threads``); ``None``: ``OMP_NUM_THREADS`` when set, else every
        CPU this process may use (`tomosynth.recon.parallel.cpu_threads`). The work is
        shared among that many worker threads, each with single-threaded kernels (torch at
        one intra-op thread, in that worker only): the caller's torch setting is never
        changed, a shared core slows the call down gracefully, and the result is
        bit-identical whatever the thread count.

    Returns
    -------
    (rows, cols, cols) float32
        Attenuation per pixel: every backend reconstructs a block of ``mu * voxel = 1``
        to about 1 (tomopy's gridrec and astra's FBP use this scale natively).
    """
    sino = np.asarray(sinograms, dtype=np.float32)
    if sino.ndim == 2:
        sino = sino[:, None, :]
    if sino.ndim != 3:
        raise ValueError(f"sinograms must be (angles, rows, cols), got shape {sino.shape}")
    theta = _as_theta(theta, sino.shape[0])
    if filter_name not in FILTERS:
        raise ConfigError(f"recon.filter: unknown filter {filter_name!r} (one of {FILTERS})")
    c = sino.shape[2] / 2.0 if center is None else float(center)
    backend = resolve_backend(backend)
    if backend == "torch":
        return _fbp_torch(sino, theta, c, filter_name, device, memory_budget_mb, threads=threads)
    if backend == "astra":
        return _fbp_astra(sino, theta, c, filter_name)
    if backend == "fourier":
        return _fbp_fourier(sino, theta, c, filter_name, device, memory_budget_mb, threads)
    return _fbp_tomopy(sino, theta, c, filter_name)

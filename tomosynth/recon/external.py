# SPDX-License-Identifier: BSD-3-Clause
"""FBP by external libraries: astra-toolbox (backend ``astra``) and tomopy's gridrec
(backend ``tomopy``)."""

from __future__ import annotations

import math
import os

import numpy as np

from tomosynth.errors import ConfigError


def _fourier_shift(sino: np.ndarray, shift: float) -> np.ndarray:
    """``out[..., e] = sino[..., e + shift]`` by band-limited interpolation (zero padded)."""
    n = sino.shape[-1]
    size = 1 << int(math.ceil(math.log2(2 * n)))
    spec = np.fft.rfft(sino, n=size, axis=-1)
    spec *= np.exp(2j * np.pi * np.fft.rfftfreq(size) * shift)
    return np.fft.irfft(spec, n=size, axis=-1)[..., :n].astype(np.float32)


_ASTRA_FILTERS = {
    "ramlak": "ram-lak",
    "shepp": "shepp-logan",
    "cosine": "cosine",
    "hann": "hann",
    "hamming": "hamming",
    "parzen": "parzen",
    "none": "none",
}


def _fbp_astra(sino: np.ndarray, theta: np.ndarray, center: float, filter_name: str) -> np.ndarray:
    try:
        import astra
    except ImportError as exc:
        raise ConfigError(
            "recon.backend: 'astra' needs astra-toolbox (pip install astra-toolbox)"
        ) from exc
    if filter_name not in _ASTRA_FILTERS:
        raise ConfigError(
            f"recon.filter: {filter_name!r} is not available with the astra backend "
            f"(one of {tuple(_ASTRA_FILTERS)})"
        )
    astra_filter = _ASTRA_FILTERS[filter_name]
    n_angles, n_rows, n = sino.shape
    # astra's CPU FBP only takes the 'parallel' geometry, whose axis is at n/2: move our axis
    # there first. Its angles are ours (same geometry, see the module docstring).
    shift = center - n / 2.0 if abs(center - n / 2.0) > 1e-6 else 0.0
    vol_geom = astra.create_vol_geom(n, n)
    proj_geom = astra.create_proj_geom("parallel", 1.0, n, np.asarray(theta, dtype=np.float64))
    proj_id = astra.create_projector("linear", proj_geom, vol_geom)
    out = np.empty((n_rows, n, n), dtype=np.float32)
    try:
        for r in range(n_rows):
            line = sino[:, r, :] if shift == 0.0 else _fourier_shift(sino[:, r, :], shift)
            sid = astra.data2d.create("-sino", proj_geom, np.ascontiguousarray(line))
            rid = astra.data2d.create("-vol", vol_geom)
            cfg = astra.astra_dict("FBP")
            cfg.update(ProjectorId=proj_id, ProjectionDataId=sid, ReconstructionDataId=rid)
            cfg["FilterType"] = astra_filter
            alg = astra.algorithm.create(cfg)
            try:
                astra.algorithm.run(alg)
                out[r] = astra.data2d.get(rid)
            finally:
                astra.algorithm.delete(alg)
                astra.data2d.delete([sid, rid])
    finally:
        astra.projector.delete(proj_id)
    return out


def _fbp_tomopy(sino: np.ndarray, theta: np.ndarray, center: float, filter_name: str) -> np.ndarray:
    try:
        import tomopy
    except ImportError as exc:
        raise ConfigError(
            "recon.backend: 'tomopy' is not importable here (conda install -c conda-forge tomopy, "
            "or use the envs/tomopy.yaml environment)"
        ) from exc
    rec = tomopy.recon(
        np.ascontiguousarray(sino, dtype=np.float32),
        np.asarray(theta, dtype=np.float32),
        center=float(center),
        algorithm="gridrec",
        filter_name=filter_name,
        sinogram_order=False,
        # the CPUs this process may use (a cluster job's allocation), not the whole node
        ncore=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    )
    return np.asarray(rec, dtype=np.float32)

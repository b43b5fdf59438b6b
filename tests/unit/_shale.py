"""Real-looking 8-bit shale slices for metric tests: the built-in phantom, projected with
Poisson noise, reconstructed by FBP and clipped as the preprocessing stage does."""

import numpy as np

from tomosynth import preprocess, recon, simulate


def shale_slices(columns: int = 64, slices: int = 32, seed: int = 0) -> np.ndarray:
    """(slices, columns, columns) uint8 reconstructed slices of the simulated shale scan."""
    vol = simulate.shale_phantom(columns, slices, seed=seed)
    theta = np.linspace(0, np.pi, int(1.5 * columns), endpoint=False)
    data, flat, dark = simulate.simulate_projections(
        vol, theta, photons=2000, dark_counts=10, n_flats=4, n_darks=4, seed=seed + 1
    )
    proj = recon.minus_log(recon.normalize(data, flat, dark))
    rec = recon.fbp(proj, theta, center=(columns - 1) / 2, device="cpu")
    flat_rec = rec.reshape(len(rec), -1)
    low, high = preprocess.clip_bounds(flat_rec.min(1), flat_rec.max(1))
    return np.stack([preprocess.to_uint8(s, low, high) for s in rec])

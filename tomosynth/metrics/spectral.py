"""Spectral checks of super-resolved images: LR-pitch peaks (checkerboard) and HF energy.

A sub-pixel convolution whose r x r output phases differ paints a pattern with the period of
the LR grid (r HR pixels) over every image: in the power spectrum it is a set of peaks at the
LR-pitch frequencies ``(a / r, b / r)`` cycles/pixel, ``a, b = 0 .. r-1``, not both 0. Real
images have no such peak: there the spectrum is as high as around it (the floor). An
L1-trained upscaler paints one too, whatever its upsampler (docs/results.md, "SRGAN
adversarial phase"); :func:`lr_phase_means` shows the pattern per LR-cell phase.
Images are float arrays ``(N, H, W)`` or ``(H, W)`` in any unit (the measures are ratios).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: Bins around a pitch frequency counted as its peak (a Hann window spreads a line over
#: +-1 bin) and the ring of bins around it taken as the local floor.
PEAK_RADIUS = 1
FLOOR_RADIUS = 3


def _stack(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images, dtype=np.float64)
    if images.ndim == 2:
        images = images[None]
    if images.ndim != 3 or min(images.shape) < 1:
        raise ValueError(f"expected images (N, H, W) or (H, W), got shape {images.shape}")
    return images


def power_spectrum(images: np.ndarray) -> np.ndarray:
    """Mean power spectrum ``|FFT2(hann * (x - mean x))|^2`` over images ``(N, H, W)``.

    The separable Hann window removes the cross of leakage from the non-periodic image
    borders, which would otherwise cover the pitch frequencies on the axes.
    """
    images = _stack(images)
    h, w = images.shape[-2:]
    window = np.outer(np.hanning(h), np.hanning(w))
    centred = images - images.mean(axis=(-2, -1), keepdims=True)
    return (np.abs(np.fft.fft2(centred * window)) ** 2).mean(axis=0)


def _check_pitch_size(h: int, w: int, scale: int) -> None:
    if scale < 2 or h % scale or w % scale or min(h, w) < 4 * scale:
        raise ValueError(
            f"LR pitch: image {h}x{w} needs sides that are multiples of the scale {scale} "
            f"(>= 2) and at least {4 * scale} pixels"
        )


def pitch_mask(h: int, w: int, scale: int) -> np.ndarray:
    """Bool ``(h, w)``: the FFT bins within Chebyshev distance :data:`PEAK_RADIUS` of every
    LR-pitch frequency ``(a h / r, b w / r)``, not both 0: the bins that
    :func:`lr_pitch_energy` sums (and the SRGAN's LR-pitch penalty)."""
    _check_pitch_size(h, w, scale)
    mask = np.zeros((h, w), dtype=bool)
    d = np.arange(-PEAK_RADIUS, PEAK_RADIUS + 1)
    for a in range(scale):
        for b in range(scale):
            if a or b:
                mask[np.ix_((a * h // scale + d) % h, (b * w // scale + d) % w)] = True
    return mask


def _pitch_blocks(power: np.ndarray, scale: int) -> list[np.ndarray]:
    """The ``7 x 7`` bins of `power` around every LR-pitch frequency (not the origin)."""
    h, w = power.shape
    _check_pitch_size(h, w, scale)
    offsets = np.arange(-FLOOR_RADIUS, FLOOR_RADIUS + 1)
    dy, dx = np.meshgrid(offsets, offsets, indexing="ij")
    return [
        power[(a * h // scale + dy) % h, (b * w // scale + dx) % w]
        for a in range(scale)
        for b in range(scale)
        if a or b
    ]


def _chebyshev() -> np.ndarray:
    offsets = np.arange(-FLOOR_RADIUS, FLOOR_RADIUS + 1)
    dy, dx = np.meshgrid(offsets, offsets, indexing="ij")
    return np.maximum(np.abs(dy), np.abs(dx))


def lr_pitch_peak(images: np.ndarray, scale: int) -> float:
    """Is there a line at the LR-pitch frequencies? Their power against the spectrum around.

    For every pitch frequency ``(a H / r, b W / r)`` (FFT bins, not both 0): the power in
    the ``3 x 3`` bins around it against the mean power of the ring of bins at Chebyshev
    distance 2..3 times the same bin count, summed over the pitch frequencies. About 1 for
    a spectrum without lines there (noise, real HR), well above 1 with a dot grid or
    checkerboard at the LR pitch. Interpolation (bicubic) also leaves replicas of the
    image's low frequencies beside these bins, so smooth upscaled images read above 1.

    Parameters
    ----------
    images : np.ndarray
        ``(N, H, W)`` or ``(H, W)``; H and W multiples of `scale` and at least ``4 * scale``.
    scale : int
        The LR pitch r in HR pixels (the SR scale factor), >= 2.
    """
    cheb = _chebyshev()
    peak = floor = 0.0
    for block in _pitch_blocks(power_spectrum(images), scale):
        peak += float(block[cheb <= PEAK_RADIUS].sum())
        floor += float(block[cheb > PEAK_RADIUS].mean()) * int((cheb <= PEAK_RADIUS).sum())
    return float(peak / max(floor, float(np.finfo(float).tiny)))


def lr_pitch_energy(images: np.ndarray, scale: int) -> float:
    """Spectral energy at the LR-pitch frequencies: the power of the ``3 x 3`` bins around
    every ``(a / r, b / r)`` cycles/pixel (not both 0), summed, per pixel (squared image
    units). Compare images of the same scene (SR against its HR) with :func:`lr_pitch_ratio`."""
    images = _stack(images)
    cheb = _chebyshev()
    total = sum(
        float(b[cheb <= PEAK_RADIUS].sum()) for b in _pitch_blocks(power_spectrum(images), scale)
    )
    # Parseval with numpy's unnormalised FFT: sum |X|^2 = (H W) sum |x|^2
    return total / float(images.shape[-2] * images.shape[-1]) ** 2


def lr_pitch_ratio(sr: np.ndarray, hr: np.ndarray, scale: int) -> float:
    """:func:`lr_pitch_energy` of SR images over that of their HR references: real HR is the
    floor (1); the no-checkerboard criterion asks for at most 1.2."""
    return float(lr_pitch_energy(sr, scale) / max(lr_pitch_energy(hr, scale), 1e-30))


def hf_energy(images: np.ndarray) -> float:
    """High-frequency energy: the mean squared 5-point Laplacian over all pixels.

    ``L = x[i-1,j] + x[i+1,j] + x[i,j-1] + x[i,j+1] - 4 x[i,j]`` with mirrored borders
    (``scipy.ndimage.laplace``, mode ``reflect``), in squared image units. It compares the
    sharpness of two image sets at the same scale (e.g. the LR an upscaler trained on with
    the GAN samples it is applied to).
    """
    images = _stack(images)
    return float(np.mean([np.mean(ndimage.laplace(im, mode="reflect") ** 2) for im in images]))


def lr_phase_means(images: np.ndarray, scale: int) -> np.ndarray:
    """Mean of `images` at every phase of the LR cell: ``(r, r)``, entry ``(p, q)`` the mean
    of pixels ``(p + k r, q + l r)`` over all images and cells. A flat table for real HR;
    an upscaler's dot grid at the LR pitch shows as a pattern (pass SR - mean, or SR - HR
    for its error per phase). H and W must be multiples of `scale`."""
    images = _stack(images)
    n, h, w = images.shape
    if scale < 1 or h % scale or w % scale:
        raise ValueError(f"lr_phase_means: image {h}x{w} is not a multiple of the scale {scale}")
    return images.reshape(n, h // scale, scale, w // scale, scale).mean(axis=(0, 1, 3))

"""Weight-free, radiomics-like image features for the offline Fréchet distance.

The distance computed on these features is labelled **"FRD (tomosynth radiomics
features)"** everywhere; it is not FID and its values are not comparable with FID
values. Like the ``frd-score`` package (Fréchet Radiomics Distance) it replaces Inception
features by hand-crafted texture descriptors that need no downloaded weights; the set
itself is our own (documented below), computed on 8-bit grayscale images scaled to [0, 1]:

==================  ====  =================================================================
group               dims  definition
==================  ====  =================================================================
first order           13  mean, std, skewness, excess kurtosis, percentiles 1/10/25/50/75/
                          90/99, entropy (bits) and uniformity of a 64-bin histogram
GLCM                  18  contrast, dissimilarity, homogeneity, ASM, energy, correlation
                          (``skimage.feature.graycoprops``) of a symmetric normalised
                          32-level co-occurrence matrix at distances 1, 2, 4 px, averaged
                          over angles 0, 45, 90, 135 degrees (rotation-averaged)
gradient               4  mean, std, 90th percentile of the Sobel gradient magnitude, and
                          the fraction of pixels above the image's mean gradient
LBP                   10  histogram of uniform rotation-invariant local binary patterns
                          (P=8, R=1; ``skimage.feature.local_binary_pattern``)
power spectrum         8  fraction of the non-DC power in 8 radial frequency bands,
                          log-spaced from 1/N to 1/2 cycles per pixel
==================  ====  =================================================================

Total: :data:`FEATURE_DIM` = 53. Pixel-scale features (GLCM distances, gradients, LBP,
spectrum bands) depend on the image size: compare sets of the same size.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image
from scipy import ndimage, stats
from skimage.feature import graycomatrix, graycoprops, local_binary_pattern
from tqdm import tqdm

from tomosynth.errors import DataError

METRIC_NAME = "log FRD (tomosynth radiomics features)"
GLCM_DISTANCES = (1, 2, 4)
GLCM_ANGLES = (0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4)
GLCM_PROPS = ("contrast", "dissimilarity", "homogeneity", "ASM", "energy", "correlation")
GLCM_LEVELS = 32
PERCENTILES = (1, 10, 25, 50, 75, 90, 99)
LBP_P, LBP_R = 8, 1
SPECTRUM_BANDS = 8


def feature_names() -> list[str]:
    """Names of the feature vector's entries, in order."""
    names = ["mean", "std", "skewness", "kurtosis"]
    names += [f"p{p}" for p in PERCENTILES] + ["hist_entropy", "hist_uniformity"]
    names += [f"glcm_{p}_d{d}" for d in GLCM_DISTANCES for p in GLCM_PROPS]
    names += ["grad_mean", "grad_std", "grad_p90", "grad_frac_above_mean"]
    names += [f"lbp_{i}" for i in range(LBP_P + 2)]
    names += [f"spectrum_band{i}" for i in range(SPECTRUM_BANDS)]
    return names


FEATURE_DIM = len(feature_names())


def image_features(img: np.ndarray) -> np.ndarray:
    """Feature vector (:data:`FEATURE_DIM`,) of one 2D uint8 image (0..255)."""
    img = np.asarray(img)
    if img.ndim != 2 or min(img.shape) < 8:
        raise DataError(f"image of shape {img.shape}: need a 2D image of at least 8x8 px")
    if img.dtype != np.uint8:
        raise DataError(f"image dtype {img.dtype}: need uint8 0..255")
    x = img.astype(np.float64) / 255.0
    flat = x.ravel()

    constant = bool(np.ptp(img) == 0)
    first = [flat.mean(), flat.std()]
    if not constant:
        first += [stats.skew(flat), stats.kurtosis(flat)]
    else:  # constant image: moments beyond the second are undefined, report 0
        first += [0.0, 0.0]
    first += list(np.percentile(flat, PERCENTILES))
    hist = np.bincount(img.ravel() // 4, minlength=64) / flat.size
    nz = hist[hist > 0]
    first += [-(nz * np.log2(nz)).sum(), (hist**2).sum()]

    q = (img // (256 // GLCM_LEVELS)).astype(np.uint8)
    glcm = graycomatrix(
        q, GLCM_DISTANCES, GLCM_ANGLES, levels=GLCM_LEVELS, symmetric=True, normed=True
    )
    # graycoprops -> (distances, angles); correlation is nan on constant images (0/0) -> 1
    tex = [np.nan_to_num(graycoprops(glcm, p), nan=1.0).mean(axis=1) for p in GLCM_PROPS]
    glcm_feats = np.stack(tex, axis=1).ravel()  # order: distance-major, property-minor

    gx = ndimage.sobel(x, axis=1)
    gy = ndimage.sobel(x, axis=0)
    g = np.hypot(gx, gy)
    grad = [g.mean(), g.std(), np.percentile(g, 90), (g > g.mean()).mean()]

    lbp = local_binary_pattern(img, LBP_P, LBP_R, method="uniform")
    lbp_hist = np.bincount(lbp.astype(int).ravel(), minlength=LBP_P + 2)[: LBP_P + 2]
    lbp_hist = lbp_hist / lbp_hist.sum()

    power = np.abs(np.fft.fft2(x - x.mean())) ** 2
    fy = np.fft.fftfreq(x.shape[0])[:, None]
    fx = np.fft.fftfreq(x.shape[1])[None, :]
    fr = np.hypot(fy, fx)
    edges = np.logspace(np.log10(1.0 / max(x.shape)), np.log10(0.5), SPECTRUM_BANDS + 1)
    edges[0], edges[-1] = 0.0, np.inf  # every non-DC frequency falls in one band
    band = np.digitize(fr, edges[1:-1])
    total = power.sum()
    spec = np.bincount(band.ravel(), weights=power.ravel(), minlength=SPECTRUM_BANDS)
    spec = np.zeros(SPECTRUM_BANDS) if constant else spec / total

    return np.concatenate([first, glcm_feats, grad, lbp_hist, spec]).astype(np.float64)


def read_gray(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as a 2D uint8 array (colour images are converted with PIL's L)."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("L"))
    except OSError as exc:
        raise DataError(f"{path}: cannot read image ({exc})") from exc


def radiomics_features(
    files: Sequence[str | os.PathLike], desc: str = "FRD features"
) -> np.ndarray:
    """Feature array ``(len(files), FEATURE_DIM)`` of a list of image files."""
    out = np.empty((len(files), FEATURE_DIM))
    for i, f in enumerate(tqdm(files, desc=desc, leave=False)):
        out[i] = image_features(read_gray(f))
    return out

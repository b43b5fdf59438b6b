"""FRD v1, the published Fréchet Radiomics Distance, through ``frd-score``'s own code.

Konz, Osuala et al., "Fréchet Radiomic Distance (FRD): a versatile metric for comparing
medical imaging datasets" (Medical Image Analysis, 2026; arXiv 2412.01496), as released in
the ``frd-score`` package (pinned: :data:`FRD_SCORE_VERSION`; pyradiomics from the
``pyradiomics-bhklab`` fork, which imports as ``radiomics``). Version 1 of the metric:

1. pyradiomics features of every image with frd-score's 2D v1 configuration
   (``frd_score/configs/extraction_2d.yaml``: Original, LoG sigma 2-5 px and Wavelet filter
   images; first order, GLCM, GLRLM, GLSZM, NGTDM; each image z-normalised by pyradiomics
   (``normalize: true``, so a global grey shift or contrast change is invisible to it),
   resampled to 2 px spacing, bin width 5; the whole image is the ROI, one corner pixel
   off), plus pyradiomics' numeric diagnostics as frd-score keeps them. On 8-bit grayscale
   PNGs this gives **398** values, not the paper's ~464: 77 of the original image, 77 of
   each of 4 wavelet bands, 13 diagnostics, and no LoG features, because frd-score hands
   pyradiomics a (1, H, W) volume and pyradiomics skips LoG on images under 4 voxels in
   any dimension. That is frd-score 1.0.1's own behaviour on 2D images, kept as it is;
2. images with a NaN feature dropped, features cast to float32, z-scored by the mean and
   (population) standard deviation of the **reference** set D1 (paper eq. 3), columns with
   a NaN or infinite z-score in either set dropped;
3. the Fréchet distance of the two Gaussians, and FRD = ln(Fréchet distance) (frd-score's
   default convention, log of the squared distance).

Steps 1 and 2 and the Fréchet distance of :func:`frd_v1` call frd-score's functions
(``process_image_mask_pair``, ``z_score_normalize``, ``calculate_frechet_distance``); only
the loop over files is ours, so features can be cached and the sets bootstrapped without
extracting them again. ``tests/unit/test_frd.py`` checks :func:`frd_v1` against
``frd_score.compute_frd`` on the same folders. Nothing is downloaded: pyradiomics needs no
weights.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from importlib import metadata

import numpy as np
from tqdm import tqdm

from tomosynth.errors import ConfigError, DataError

FRD_SCORE_VERSION = "1.0.1"
PYRADIOMICS_DIST = "pyradiomics-bhklab"
PYRADIOMICS_VERSION = "3.1.4"
METRIC_NAME = f"FRD v1 (frd-score {FRD_SCORE_VERSION})"
FRD_VERSION = "v1"


def versions() -> dict[str, str]:
    """Installed versions of frd-score and pyradiomics (for the provenance records)."""
    out = {}
    for dist in ("frd-score", PYRADIOMICS_DIST, "SimpleITK", "PyWavelets"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def missing() -> str | None:
    """Why FRD v1 cannot run here (frd-score or pyradiomics not installed), else None."""
    found = versions()
    absent = [d for d in ("frd-score", PYRADIOMICS_DIST) if found[d] == "not installed"]
    return f"{' and '.join(absent)} not installed" if absent else None


@functools.cache
def _frd_module():
    """frd-score's implementation module, after checking the pinned version is installed
    (once per process)."""
    found = versions()
    if found["frd-score"] != FRD_SCORE_VERSION or found[PYRADIOMICS_DIST] != PYRADIOMICS_VERSION:
        raise ConfigError(
            f"FRD v1 needs frd-score=={FRD_SCORE_VERSION} and {PYRADIOMICS_DIST}=="
            f"{PYRADIOMICS_VERSION}; found frd-score {found['frd-score']}, "
            f"{PYRADIOMICS_DIST} {found[PYRADIOMICS_DIST]}. Install them with "
            f"`pip install frd-score=={FRD_SCORE_VERSION} "
            f"{PYRADIOMICS_DIST}=={PYRADIOMICS_VERSION}` (or `make install`)."
        )
    import frd_score.frd as frd_impl

    frd_impl._ensure_radiomics()
    frd_impl.setVerbosity(60)  # pyradiomics' own logging: errors only
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    return frd_impl


def extractor():
    """frd-score's v1 pyradiomics feature extractor for 2D images (its packaged YAML)."""
    return _frd_module().get_feature_extractor(frd_version=FRD_VERSION, image_dim=2)


def image_features(path: str | os.PathLike, feature_extractor=None) -> tuple[np.ndarray, list]:
    """FRD v1 feature vector of one image file and the features' names, in frd-score's order.

    The file is read by SimpleITK inside frd-score (float32 grey values, here uint8 0..255);
    the mask is the whole image but for one corner pixel, as frd-score builds it.
    """
    impl = _frd_module()
    ex = feature_extractor if feature_extractor is not None else extractor()
    try:
        out = impl.process_image_mask_pair(
            (str(path), None), feature_extractor=ex, frd_version=FRD_VERSION
        )
    except Exception as exc:  # SimpleITK / pyradiomics raise many kinds
        raise DataError(
            f"{path}: frd-score could not extract radiomics features "
            f"({type(exc).__name__}: {exc}); FRD v1 needs a readable 2D grayscale image"
        ) from exc
    if out is None:
        raise DataError(f"{path}: frd-score skipped the image (empty mask); image too small?")
    values, named, _n = out
    return np.asarray(values, dtype=np.float64), list(named)


def features(
    files: Sequence[str | os.PathLike], desc: str = "FRD v1 features"
) -> tuple[np.ndarray, list[str]]:
    """FRD v1 features ``(len(files), d)`` of image files (one extractor, one thread)."""
    if not files:
        raise DataError("FRD v1: no image files given")
    ex = extractor()
    rows, names = [], None
    for f in tqdm(files, desc=desc, leave=False):
        v, n = image_features(f, ex)
        if names is None:
            names = n
        elif n != names:
            raise DataError(f"{f}: its FRD v1 features differ in name or number from {files[0]}")
        rows.append(v)
    return np.stack(rows), list(names or [])


def feature_array(files: Sequence[str | os.PathLike]) -> np.ndarray:
    """Only the array of :func:`features` (the extractor signature of the feature cache)."""
    return features(files)[0]


def _zscore_d1(s: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """frd-score's v1 ``z_score_normalize`` (norm range [0, 1], no std guard) vectorised:
    ``(s - mean) / std`` in float32 with the reference's nanmean / nanstd (ddof 0). Its
    per-column Python loop costs ~30 ms a call, which the bootstrap would repeat ~400 times
    a row; equality with it is a test (tests/unit/test_frd.py)."""
    mean, std = np.nanmean(ref, axis=0), np.nanstd(ref, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return ((s - mean) / std) * (1.0 - 0.0) + 0.0


def normalise(
    x: np.ndarray, ref: np.ndarray, exact: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The two sets in frd-score's v1 feature space, D1 = `ref` (paper eq. 3).

    Rows with a NaN dropped, float32, z-scored by `ref`'s mean and population std (no
    guards: a constant reference feature gives inf), then every column with a NaN or inf
    in either set dropped. `exact` runs frd-score's own ``z_score_normalize``; the default
    is its vectorised twin :func:`_zscore_d1` (the same numbers, ~100x faster).

    Returns
    -------
    (x_z, ref_z, keep): the normalised sets and the boolean mask of the kept columns.
    """
    impl = _frd_module()
    sets = []
    for a in (np.asarray(ref, dtype=np.float64), np.asarray(x, dtype=np.float64)):
        if a.ndim != 2 or len(a) < 2:
            raise DataError(f"FRD v1 feature array of shape {a.shape}: need (n >= 2, d)")
        sets.append(a[~np.isnan(a).any(axis=1)].astype(np.float32))
    r, y = sets
    if r.shape[1] != y.shape[1]:
        raise DataError(f"FRD v1 feature arrays of {r.shape[1]} and {y.shape[1]} features")
    if exact:
        z = [
            impl.z_score_normalize(
                s, 0.0, 1.0, base_distribution=r, replace_nan=False, handle_std_zero=False
            )
            for s in (r, y)
        ]
    else:
        z = [_zscore_d1(s, r) for s in (r, y)]
    keep = ~np.zeros(r.shape[1], dtype=bool)
    for s in z:
        keep &= np.isfinite(s).all(axis=0)
    if not keep.any():
        raise DataError("FRD v1: every feature is constant in the reference set")
    return z[1][:, keep], z[0][:, keep], keep


def frd_v1(x: np.ndarray, ref: np.ndarray) -> float:
    """FRD v1 of feature arrays, exactly as ``frd_score.compute_frd([ref, x])`` reports it:
    ln of frd-score's ``calculate_frechet_distance`` in the space of :func:`normalise`."""
    impl = _frd_module()
    xz, rz, _keep = normalise(x, ref, exact=True)
    fd = impl.calculate_frechet_distance(
        np.mean(rz, axis=0), np.cov(rz, rowvar=False), np.mean(xz, axis=0), np.cov(xz, rowvar=False)
    )
    return float(np.log(fd)) if fd > 0 else float("-inf")

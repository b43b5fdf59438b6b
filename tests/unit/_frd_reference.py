"""FRD v1 written out independently of tomosynth and frd-score, for the metric tests."""

import numpy as np
from scipy import linalg


def frd_v1_by_hand(x: np.ndarray, ref: np.ndarray) -> tuple[float, float, np.ndarray]:
    """The paper's FRD v1 with frd-score's conventions, from raw feature arrays: float32,
    z-score by the reference (D1) mean and population std, columns with a non-finite
    z-score dropped, Fréchet distance with scipy.linalg.sqrtm, natural log.

    Returns (ln FD, FD, kept columns).
    """
    x, ref = x.astype(np.float32), ref.astype(np.float32)
    mu, sd = ref.mean(0), ref.std(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        zx, zr = (x - mu) / sd, (ref - mu) / sd
    keep = np.isfinite(zx).all(0) & np.isfinite(zr).all(0)
    zx, zr = zx[:, keep].astype(np.float64), zr[:, keep].astype(np.float64)
    s1, s2 = np.cov(zx, rowvar=False), np.cov(zr, rowvar=False)
    diff = zx.mean(0) - zr.mean(0)
    fd = diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(np.real(linalg.sqrtm(s1 @ s2)))
    return float(np.log(fd)), float(fd), keep

"""Controlled degradations of real images, to validate a distribution distance.

Heusel et al. (2017, "GANs trained by a two time-scale update rule converge to a local
Nash equilibrium", appendix figure A1) validated FID by disturbing real images step by
step and checking that the distance rises with the disturbance. :func:`degrade` applies
the same kinds of disturbance to 8-bit grayscale images (uint8, 0..255), each at an
amount in the kind's own unit; :data:`LEVELS` holds the four increasing amounts used by
the validation (level 0 = undisturbed):

===============  =================================================  ========================
kind             amount                                             levels 1-4
===============  =================================================  ========================
``noise``        std of additive Gaussian noise (grey levels)        4, 8, 16, 32
``blur``         sigma of a Gaussian blur (pixels)                   0.5, 1, 2, 4
``rectangles``   side of 5 black rectangles (fraction of the image)  1/16, 1/8, 1/4, 1/2
``salt_pepper``  fraction of pixels set to 0 or 255 (half each)      0.01, 0.03, 0.1, 0.3
``contrast``     contrast loss c: grey values pulled to the image    0.1, 0.25, 0.5, 0.75
                 mean, ``mean + (1 - c) (x - mean)``
===============  =================================================  ========================

The random parts (noise field, rectangle centres, salt-and-pepper draws) come from one
seed per image and do not depend on the amount, so a stronger level disturbs a superset
of what a weaker one disturbs. Results are rounded and clipped to 0..255.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from tomosynth.errors import ConfigError, DataError
from tomosynth.metrics import distance as dist
from tomosynth.metrics.features import METRIC_NAME, image_features
from tomosynth.metrics.kid import kid, log_kid

LEVELS: dict[str, tuple[float, ...]] = {
    "noise": (0.0, 4.0, 8.0, 16.0, 32.0),
    "blur": (0.0, 0.5, 1.0, 2.0, 4.0),
    "rectangles": (0.0, 1 / 16, 1 / 8, 1 / 4, 1 / 2),
    "salt_pepper": (0.0, 0.01, 0.03, 0.1, 0.3),
    "contrast": (0.0, 0.1, 0.25, 0.5, 0.75),
}
KINDS = tuple(LEVELS)
UNITS = {
    "noise": "noise std (grey levels)",
    "blur": "blur sigma (px)",
    "rectangles": "rectangle side (fraction of image)",
    "salt_pepper": "fraction of pixels",
    "contrast": "contrast loss",
}
N_RECTANGLES = 5


def degrade(image: np.ndarray, kind: str, amount: float, seed: int = 0) -> np.ndarray:
    """One degraded copy (uint8) of a 2D uint8 image; see the module table for `amount`."""
    if kind not in LEVELS:
        raise ConfigError(f"degradation kind {kind!r}: one of {list(KINDS)}")
    a = float(amount)
    limit = 1.0 if kind in ("rectangles", "salt_pepper", "contrast") else np.inf
    if not 0.0 <= a <= limit:
        raise ConfigError(f"degradation {kind} amount {amount!r}: must lie in [0, {limit}]")
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2:
        raise ConfigError(f"degrade: expected a 2D image, got shape {img.shape}")
    rng = np.random.default_rng(seed)
    h, w = img.shape
    if kind == "noise":
        out = img + a * rng.standard_normal(img.shape)
    elif kind == "blur":
        out = ndimage.gaussian_filter(img, a, mode="reflect") if a > 0 else img
    elif kind == "rectangles":
        out = img.copy()
        centres = rng.random((N_RECTANGLES, 2)) * [h, w]
        for cy, cx in centres:
            y0, y1 = int(round(cy - a * h / 2)), int(round(cy + a * h / 2))
            x0, x1 = int(round(cx - a * w / 2)), int(round(cx + a * w / 2))
            out[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = 0.0
    elif kind == "salt_pepper":
        out = img.copy()
        u = rng.random(img.shape)
        out[u < a / 2] = 0.0
        out[(u >= a / 2) & (u < a)] = 255.0
    else:  # contrast
        out = img.mean() + (1.0 - a) * (img - img.mean())
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def degrade_set(images: np.ndarray, kind: str, amount: float, seed: int = 0) -> np.ndarray:
    """:func:`degrade` of every image of a ``(n, h, w)`` stack (image i uses seed + i)."""
    return np.stack([degrade(im, kind, amount, seed + i) for i, im in enumerate(images)])


def degradation_table(
    images: np.ndarray,
    levels: dict[str, tuple[float, ...]] | None = None,
    seed: int = 0,
    min_std: float = 1e-4,
):
    """Offline distance of degraded real images to undisturbed real images.

    The stack is split at random (seeded) into two disjoint halves: the reference half is
    left as it is and defines the z-scoring (as the training split does for the table of
    :func:`tomosynth.metrics.distance.distance_table`); the other half is degraded by each
    kind at each level of `levels` (default :data:`LEVELS`). Level 0 is the real-vs-real
    distance of the two halves.

    Returns
    -------
    pandas.DataFrame with columns ``kind, level (0..), amount, unit, value`` (log FRD),
    ``fd`` (Fréchet distance), ``kid_mean``, ``log_kid`` (ln(1 + max(KID, 0))), ``n_ref``,
    ``n_set``, ``feature_dim``.
    """
    import pandas as pd

    imgs = np.asarray(images)
    if imgs.ndim != 3 or len(imgs) < 4:
        raise DataError(f"degradation check: need >= 4 real images (n, h, w), got {imgs.shape}")
    levels = LEVELS if levels is None else levels
    perm = np.random.default_rng(seed).permutation(len(imgs))
    half = len(imgs) // 2
    ref_imgs, test_imgs = imgs[perm[:half]], imgs[perm[half : 2 * half]]

    def feats(stack: np.ndarray) -> np.ndarray:
        return np.stack([image_features(im) for im in stack])

    scale = dist.fit_standardiser(feats(ref_imgs), min_std)
    ref = scale(feats(ref_imgs))
    undisturbed = scale(feats(test_imgs))
    rows = []
    for kind, amounts in levels.items():
        for level, amount in enumerate(amounts):
            if amount == 0:  # every kind leaves the images unchanged at amount 0
                x = undisturbed
            else:
                x = scale(feats(degrade_set(test_imgs, kind, amount, seed)))
            fd = dist.frechet_distance_features(x, ref)
            k = kid(x, ref, subsets=20, subset_size=half, seed=seed)[0]
            rows.append(
                {
                    "kind": kind,
                    "level": level,
                    "amount": float(amount),
                    "unit": UNITS.get(kind, ""),
                    "metric": METRIC_NAME,
                    "value": dist.log_distance(fd),
                    "fd": fd,
                    "kid_mean": k,
                    "log_kid": log_kid(k),
                    "n_ref": half,
                    "n_set": half,
                    "feature_dim": int(scale.keep.sum()),
                }
            )
    return pd.DataFrame(rows)

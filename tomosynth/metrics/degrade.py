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
``periodic``     amplitude a (grey levels) of a dot grid at the 4 px  8, 16, 32, 64
                 LR pitch of the x4 upscalers: +a on one pixel of
                 every 4 x 4 cell, minus the grid's mean a / 16 (the
                 image mean is kept); the SRGAN artefact
===============  =================================================  ========================

The random parts (noise field, rectangle centres, salt-and-pepper draws, the grid's
phase) come from one
seed per image and do not depend on the amount, so a stronger level disturbs a superset
of what a weaker one disturbs. Results are rounded and clipped to 0..255.

The validation table measures each level with FRD v1 (frd-score, the ranking's distance;
a few images per half, pyradiomics being slow) and with the secondary "log FRD (tomosynth
radiomics features)" on every image drawn.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from scipy import ndimage

from tomosynth.errors import ConfigError, DataError
from tomosynth.io import write_png
from tomosynth.metrics import distance as dist
from tomosynth.metrics import frd as frd_v1
from tomosynth.metrics.features import METRIC_NAME as OWN_NAME
from tomosynth.metrics.features import image_features
from tomosynth.metrics.kid import kid, log_kid

LEVELS: dict[str, tuple[float, ...]] = {
    "noise": (0.0, 4.0, 8.0, 16.0, 32.0),
    "blur": (0.0, 0.5, 1.0, 2.0, 4.0),
    "rectangles": (0.0, 1 / 16, 1 / 8, 1 / 4, 1 / 2),
    "salt_pepper": (0.0, 0.01, 0.03, 0.1, 0.3),
    "contrast": (0.0, 0.1, 0.25, 0.5, 0.75),
    "periodic": (0.0, 8.0, 16.0, 32.0, 64.0),
}
KINDS = tuple(LEVELS)
UNITS = {
    "noise": "noise std (grey levels)",
    "blur": "blur sigma (px)",
    "rectangles": "rectangle side (fraction of image)",
    "salt_pepper": "fraction of pixels",
    "contrast": "contrast loss",
    "periodic": "dot-grid amplitude (grey levels, 4 px pitch)",
}
N_RECTANGLES = 5
GRID_PITCH = 4  # px: the LR pixel of the x4 upscalers, where SRGAN draws its dot grid


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
    elif kind == "periodic":
        out = img + a * dot_grid(img.shape, rng.integers(0, GRID_PITCH, 2))
    else:  # contrast
        out = img.mean() + (1.0 - a) * (img - img.mean())
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def dot_grid(shape: tuple[int, int], phase=(0, 0), pitch: int = GRID_PITCH) -> np.ndarray:
    """Zero-mean dot grid: 1 - 1/pitch^2 on one pixel of every `pitch` x `pitch` cell
    (rows ``phase[0] + k pitch``, columns ``phase[1] + k pitch``), -1/pitch^2 elsewhere."""
    grid = np.zeros(shape)
    grid[int(phase[0]) :: pitch, int(phase[1]) :: pitch] = 1.0
    return grid - 1.0 / pitch**2


def degrade_set(images: np.ndarray, kind: str, amount: float, seed: int = 0) -> np.ndarray:
    """:func:`degrade` of every image of a ``(n, h, w)`` stack (image i uses seed + i)."""
    return np.stack([degrade(im, kind, amount, seed + i) for i, im in enumerate(images)])


def _frd_v1_stack(stack: np.ndarray) -> np.ndarray:
    """FRD v1 features of an image stack: frd-score reads files, so the images go through a
    temporary folder of 8-bit PNGs (lossless)."""
    with tempfile.TemporaryDirectory(prefix="tomosynth-frd-") as tmp:
        files = []
        for i, im in enumerate(stack):
            files.append(str(Path(tmp) / f"slice_{i:05d}.png"))
            write_png(files[-1], np.asarray(im, dtype=np.uint8))
        return frd_v1.feature_array(files)


def _own_row(x: np.ndarray, ref: np.ndarray, half: int, seed: int) -> dict:
    """Secondary metric of one level: our features, z-scored by the reference half."""
    fd = dist.frechet_distance_features(x, ref)
    k = kid(x, ref, subsets=20, subset_size=half, seed=seed)[0]
    return {"metric": OWN_NAME, "value": dist.log_distance(fd), "fd": fd, "kid_mean": k}


def _v1_row(x: np.ndarray, ref: np.ndarray, seed: int) -> dict:
    """FRD v1 of one level: frd-score's value; fd and KID in its z-scored space."""
    xz, rz, keep = frd_v1.normalise(x, ref)
    xz, rz = xz.astype(np.float64), rz.astype(np.float64)
    k = kid(xz, rz, subsets=20, subset_size=len(rz), seed=seed)[0]
    fd = dist.frechet_distance_features(xz, rz)
    return {"metric": frd_v1.METRIC_NAME, "value": frd_v1.frd_v1(x, ref), "fd": fd,
            "kid_mean": k, "feature_dim": int(keep.sum()), "n_ref": len(rz), "n_set": len(xz)}  # fmt: skip


def degradation_table(
    images: np.ndarray,
    levels: dict[str, tuple[float, ...]] | None = None,
    seed: int = 0,
    min_std: float = 1e-4,
    frd_images: int = 6,
):
    """FRD v1 and the secondary offline distance of degraded real images to undisturbed ones.

    The stack is split at random (seeded) into two disjoint halves: the reference half is
    left as it is and defines the z-scoring (as the reference set does in
    :func:`tomosynth.metrics.distance.distance_table`); the other half is degraded by each
    kind at each level of `levels` (default :data:`LEVELS`). Level 0 is the real-vs-real
    distance of the two halves. FRD v1 (frd-score) uses the first `frd_images` images of
    each half (0: not computed); the secondary metric uses the whole halves.

    Returns
    -------
    pandas.DataFrame, one row per (metric, kind, level): ``kind, level (0..), amount,
    unit, metric, value`` (log distance), ``fd`` (Fréchet distance), ``kid_mean``,
    ``log_kid`` (ln(1 + max(KID, 0))), ``n_ref``, ``n_set``, ``feature_dim``; FRD v1 rows
    first.
    """
    import pandas as pd

    imgs = np.asarray(images)
    if imgs.ndim != 3 or len(imgs) < 4:
        raise DataError(f"degradation check: need >= 4 real images (n, h, w), got {imgs.shape}")
    levels = LEVELS if levels is None else levels
    perm = np.random.default_rng(seed).permutation(len(imgs))
    half = len(imgs) // 2
    ref_imgs, test_imgs = imgs[perm[:half]], imgs[perm[half : 2 * half]]
    n_v1 = min(int(frd_images), half)
    if 0 < n_v1 < 2:
        raise DataError(f"degradation check: FRD v1 needs >= 2 images per half, got {n_v1}")

    def feats(stack: np.ndarray) -> np.ndarray:
        return np.stack([image_features(im) for im in stack])

    scale = dist.fit_standardiser(feats(ref_imgs), min_std)
    ref = scale(feats(ref_imgs))
    ref_v1 = _frd_v1_stack(ref_imgs[:n_v1]) if n_v1 else None
    rows = []
    for kind, amounts in levels.items():
        for level, amount in enumerate(amounts):
            # every kind leaves the images unchanged at amount 0
            x_imgs = test_imgs if amount == 0 else degrade_set(test_imgs, kind, amount, seed)
            base = {"kind": kind, "level": level, "amount": float(amount),
                    "unit": UNITS.get(kind, "")}  # fmt: skip
            own = _own_row(scale(feats(x_imgs)), ref, half, seed)
            rows.append(
                dict(base, **own, n_ref=half, n_set=half, feature_dim=int(scale.keep.sum()))
            )
            if ref_v1 is not None:
                rows.append(dict(base, **_v1_row(_frd_v1_stack(x_imgs[:n_v1]), ref_v1, seed)))
    table = pd.DataFrame(rows)
    table["log_kid"] = [log_kid(k) for k in table["kid_mean"]]
    rank = table["metric"].map({frd_v1.METRIC_NAME: 0, OWN_NAME: 1})
    table = table.iloc[np.argsort(rank.to_numpy(), kind="stable")]
    return table.reset_index(drop=True)

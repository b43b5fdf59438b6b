"""Low/high-resolution pairs for super-resolution: loading, degradation, patches, folds.

Images are float32 in [0, 1], stacked as ``(N, H, W)``. A low-resolution (LR) image of
scale ``r`` is ``(H / r, W / r)``, made either by bicubic degradation of the HR image
(default; the project's one bicubic, :func:`tomosynth.resample.bicubic`) or read from a second,
coarser-voxel scan of the same object (real pairs).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from tomosynth.errors import ConfigError, DataError
from tomosynth.io import list_slices, read_json, read_png, read_tiff
from tomosynth.resample import bicubic

log = logging.getLogger(__name__)

#: Image suffixes of SR slices: 8-bit PNG, or float TIFF.
SLICE_EXTS = ("png", "tif", "tiff")


def slice_names(folder: str | os.PathLike) -> list[str]:
    """Sorted slice file names (``slice_*.png`` or ``slice_*.tif[f]``) of a folder, checked
    against its manifest (:func:`tomosynth.io.list_slices`)."""
    return [p.name for p in list_slices(folder, SLICE_EXTS)]


def read_image(path: str | os.PathLike, bounds: Sequence[float] | None = None) -> np.ndarray:
    """One slice as float32 in [0, 1].

    PNGs (uint8 0..255) are divided by 255. Float TIFFs are clipped to ``bounds = (low, high)``
    and scaled to [0, 1] (the PNG export's mapping); TIFFs without bounds must already lie in
    [0, 1] (as the SR volumes written by :func:`tomosynth.train.srgan.write_sr_volume`).
    """
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    if suffix == "png":
        return read_png(path).astype(np.float32) / 255.0
    if suffix in SLICE_EXTS:
        img = read_tiff(path).astype(np.float32)
        if not np.isfinite(img).all():
            raise DataError(f"{path}: the slice holds non-finite values")
        if bounds is not None:
            low, high = (float(b) for b in bounds)
            if not low < high:
                raise ConfigError(f"clip bounds must satisfy low < high, got {low}, {high}")
            return ((np.clip(img, low, high) - low) / (high - low)).astype(np.float32)
        if img.min() < -1e-6 or img.max() > 1 + 1e-6:
            raise DataError(f"{path}: float TIFF outside [0, 1]; pass the scan's clip bounds")
        return np.clip(img, 0.0, 1.0)
    raise DataError(f"{path}: unsupported slice format (PNG or TIFF expected)")


def read_stack(
    folder: str | os.PathLike,
    names: Sequence[str] | None = None,
    bounds: Sequence[float] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Read slices of a folder (all, or `names`) into ``(N, H, W)`` float32 in [0, 1].

    A name may be given with another image suffix (``slice_00004.png`` finds
    ``slice_00004.tiff``), so the split manifest's PNG names select TIFF slices too.
    """
    folder = Path(folder)
    available = slice_names(folder)
    by_stem = {Path(n).stem: n for n in available}
    if names is None:
        names = available
    chosen = []
    for name in names:
        stem = Path(name).stem
        if stem not in by_stem:
            raise DataError(f"{folder}: slice {name} is missing")
        chosen.append(by_stem[stem])
    if not chosen:
        raise DataError(f"{folder}: no slices selected")
    images = [read_image(folder / n, bounds) for n in chosen]
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise DataError(f"{folder}: slices differ in shape {sorted(shapes)}")
    return np.stack(images), chosen


def bicubic_downscale(hr: np.ndarray | torch.Tensor, scale: int) -> np.ndarray | torch.Tensor:
    """The bicubic degradation by `scale`: :func:`tomosynth.resample.bicubic` to
    ``(H / r, W / r)``, clipped to [0, 1].

    OpenCV's ``INTER_CUBIC`` does not low-pass filter before decimating (see
    :mod:`tomosynth.resample`). Height and width must be multiples of `scale`. Accepts
    (H, W), (N, H, W) or (N, C, H, W), numpy or torch; returns the same kind and layout.
    """
    h, w = hr.shape[-2:]
    if h % scale or w % scale:
        raise DataError(f"image size {h}x{w} is not a multiple of the scale {scale}")
    return bicubic(hr, (h // scale, w // scale), clip=(0.0, 1.0))


def bicubic_upscale(lr: np.ndarray | torch.Tensor, scale: int) -> np.ndarray | torch.Tensor:
    """The bicubic baseline: :func:`tomosynth.resample.bicubic` by `scale`, clipped to [0, 1]."""
    h, w = lr.shape[-2:]
    return bicubic(lr, (h * scale, w * scale), clip=(0.0, 1.0))


def load_pairs(
    hr_folder: str | os.PathLike,
    names: Sequence[str],
    scale: int,
    lr_folder: str | os.PathLike | None = None,
    slice_stride: int = 1,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """HR images and their LR counterparts, ``(N, H, W)`` and ``(N, H/r, W/r)`` in [0, 1].

    Without `lr_folder` the LR images are the bicubic degradation of the HR ones. With it,
    real pairs: the LR slice of HR slice index ``k`` is index ``k // slice_stride`` of
    `lr_folder` (``slice_stride`` = the coarse scan's binning of detector rows; 1 when only
    columns are binned). HR slices without an LR partner are dropped with a warning; the LR
    images must be exactly ``1 / scale`` of the HR size.
    """
    hr, hr_names = read_stack(hr_folder, names)
    if lr_folder is None:
        return hr, bicubic_downscale(hr, scale), hr_names
    available = {Path(n).stem for n in slice_names(lr_folder)}
    keep, lr_names = [], []
    for i, name in enumerate(hr_names):
        index = int(Path(name).stem.split("_")[-1])
        stem = f"slice_{index // slice_stride:05d}"
        if stem in available:
            keep.append(i)
            lr_names.append(stem)
    dropped = len(hr_names) - len(keep)
    if dropped:
        log.warning("%s: %d HR slices have no LR partner, dropped", lr_folder, dropped)
    if not keep:
        raise DataError(f"{lr_folder}: no LR slice matches the HR slices of {hr_folder}")
    lr, _ = read_stack(lr_folder, lr_names)
    hr = hr[keep]
    if lr.shape[-2] * scale != hr.shape[-2] or lr.shape[-1] * scale != hr.shape[-1]:
        raise DataError(
            f"{lr_folder}: LR slices {lr.shape[-2:]} are not 1/{scale} of the HR slices "
            f"{hr.shape[-2:]} of {hr_folder}"
        )
    return hr, lr, [hr_names[i] for i in keep]


@dataclass(frozen=True, eq=False)
class SRGANData:
    """The images an SRGAN trains on: HR ``(N, H, W)`` float32 in [0, 1] and the matching LR
    ``(N, H/r, W/r)`` of the train and val sets, and their provenance (`meta`: scan, preset,
    fold, training specimens, ``lr_source``), stored in the checkpoints."""

    train_hr: np.ndarray
    train_lr: np.ndarray
    val_hr: np.ndarray
    val_lr: np.ndarray
    meta: dict = field(default_factory=dict)

    @classmethod
    def from_folders(
        cls,
        hr_dirs: Sequence[str | os.PathLike],
        splits: Sequence[str | os.PathLike],
        lr_dirs: Sequence[str | os.PathLike | None],
        strides: Sequence[int],
        scale: int,
        meta: dict | None = None,
    ) -> SRGANData:
        """The train and val slices of several specimens (one PNG folder and split manifest
        each; LR folders, or none to degrade HR; slice strides), concatenated in order."""
        lr_dirs = list(lr_dirs) or [None] * len(hr_dirs)
        sets: dict[str, tuple[list, list]] = {"train": ([], []), "val": ([], [])}
        for hr_dir, split_json, lr_dir, stride in zip(
            hr_dirs, splits, lr_dirs, strides, strict=True
        ):
            split = read_json(split_json)
            for part, (hrs, lrs) in sets.items():
                hr, lr, _ = load_pairs(hr_dir, split[part], scale, lr_dir, stride)
                hrs.append(hr)
                lrs.append(lr)
        (train_hr, train_lr), (val_hr, val_lr) = (
            (np.concatenate(hrs), np.concatenate(lrs)) for hrs, lrs in sets.values()
        )
        return cls(train_hr, train_lr, val_hr, val_lr, dict(meta or {}))

    def check(self, out_dir: Path, scale: int) -> None:
        """DataError unless both sets are non-empty, paired, and LR is HR / `scale`."""
        for name, hr, lr in (
            ("train", self.train_hr, self.train_lr),
            ("val", self.val_hr, self.val_lr),
        ):
            if len(hr) == 0 or len(hr) != len(lr):
                raise DataError(f"{out_dir}: {name} set has {len(hr)} HR and {len(lr)} LR images")
            if hr.shape[-1] != lr.shape[-1] * scale or hr.shape[-2] != lr.shape[-2] * scale:
                raise DataError(
                    f"{out_dir}: {name} LR {lr.shape[-2:]} is not HR {hr.shape[-2:]} / {scale}"
                )


def augment_pair(
    hr: np.ndarray, lr: np.ndarray, k: int, flip: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Rotate both images by ``k * 90`` degrees and optionally flip them left-right."""
    hr, lr = np.rot90(hr, k), np.rot90(lr, k)
    if flip:
        hr, lr = hr[:, ::-1], lr[:, ::-1]
    return hr, lr


def sample_patches(
    hr: np.ndarray,
    lr: np.ndarray,
    scale: int,
    patch: int | None,
    rng: np.random.Generator,
    indices: Sequence[int],
    augment: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Aligned random patches of the images `indices`: ``(B, 1, P, P)`` HR, ``(B, 1, P/r, P/r)`` LR.

    The patch corner is drawn on the LR grid, so the HR patch covers exactly the LR patch.
    `patch` is the HR side in pixels (a multiple of `scale`); ``None`` takes whole images.
    With `augment`, each pair gets a random rotation by a multiple of 90 degrees and a
    random flip (the dihedral group: the 8 orientations of the square).
    """
    if patch is not None and patch % scale:
        raise ConfigError(f"srgan train.patch_size {patch} is not a multiple of the scale {scale}")
    lp = None if patch is None else patch // scale
    h, w = lr.shape[-2:]
    if lp is not None and (lp > h or lp > w):
        raise ConfigError(f"srgan train.patch_size {patch} is larger than the HR images")
    out_hr, out_lr = [], []
    for i in indices:
        a, b = hr[i], lr[i]
        if lp is not None:
            y = int(rng.integers(0, h - lp + 1))
            x = int(rng.integers(0, w - lp + 1))
            b = b[y : y + lp, x : x + lp]
            a = a[y * scale : (y + lp) * scale, x * scale : (x + lp) * scale]
        if augment:
            a, b = augment_pair(a, b, int(rng.integers(0, 4)), bool(rng.integers(0, 2)))
        out_hr.append(np.ascontiguousarray(a))
        out_lr.append(np.ascontiguousarray(b))
    return np.stack(out_hr)[:, None], np.stack(out_lr)[:, None]


def specimen_folds(specimens: Sequence[str], k: int) -> list[list[str]]:
    """Split sorted specimen names into `k` contiguous test groups (k = len: leave-one-out)."""
    specimens = sorted(specimens)
    if not 2 <= k <= len(specimens):
        raise ConfigError(
            f"srgan cv.folds: need 2 <= folds <= number of specimens ({len(specimens)}), got {k}"
        )
    return [list(g) for g in np.array_split(np.array(specimens, dtype=object), k)]


def fold_of(scan: str, specimens: Sequence[str], k: int) -> tuple[int, list[str]]:
    """The fold index whose test group holds `scan` and the specimens trained on for it."""
    for i, group in enumerate(specimen_folds(specimens, k)):
        if scan in group:
            return i, [s for s in sorted(specimens) if s not in group]
    raise ConfigError(f"srgan cv.specimens: {scan} is not a listed specimen")

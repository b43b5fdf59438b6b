"""Intensity stage (thesis section 5.1): global clip bounds, 8-bit export, split manifest.

Reconstructed slices vary in brightness from scan to scan and slice to slice. The thesis
collects every kept slice's minimum and maximum, takes a low percentile of the minima and a
high percentile of the maxima as global clip bounds, and uses the same bounds to scale every
slice to 0..255, which keeps relative intensities comparable across the whole data set.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tifffile
from tqdm import tqdm

from tomosynth import __version__
from tomosynth.errors import ConfigError, DataError
from tomosynth.io import atomic_dir, read_json, write_json, write_png
from tomosynth.manifest import verify_folder
from tomosynth.resample import area

SPLITS = ("train", "val", "test")


def list_recon_slices(recon_dir: str | os.PathLike) -> list[Path]:
    """Sorted float TIFF slices of a reconstruction folder; DataError if there are none
    or if the folder does not match its manifest."""
    if Path(recon_dir).is_dir():
        verify_folder(recon_dir)
    paths = sorted(Path(recon_dir).glob("slice_*.tif*"))
    if not paths:
        raise DataError(f"{recon_dir}: no reconstructed slices (slice_*.tiff) found")
    return paths


def kept_slices(recon_dir: str | os.PathLike, skip_slices: int) -> list[Path]:
    """The slices left after dropping the first `skip_slices` (featureless sample edges)."""
    if skip_slices < 0:
        raise ConfigError(f"preprocess.skip_slices must be >= 0, got {skip_slices}")
    paths = list_recon_slices(recon_dir)
    if skip_slices >= len(paths):
        raise ConfigError(
            f"preprocess.skip_slices={skip_slices} drops all {len(paths)} slices of {recon_dir}"
        )
    return paths[skip_slices:]


def read_slice(path: str | os.PathLike) -> np.ndarray:
    """One float32 slice; DataError naming the file if it is unreadable or not finite."""
    try:
        img = tifffile.imread(path).astype(np.float32, copy=False)
    except Exception as exc:  # tifffile raises several types for corrupt files
        raise DataError(f"{path}: cannot read TIFF slice ({exc})") from exc
    if img.ndim != 2:
        raise DataError(f"{path}: expected a 2D slice, got shape {img.shape}")
    if not np.isfinite(img).all():
        raise DataError(f"{path}: slice contains NaN or infinite values")
    return img


def _map_slices(func, items: Sequence, threads: int, desc: str):
    """``func`` over `items` in order, on `threads` threads (TIFF decoding, NumPy, OpenCV and
    PNG encoding release the GIL); at most ``2 x threads`` slices are in flight."""
    from concurrent.futures import ThreadPoolExecutor

    threads = max(1, int(threads))
    bar = tqdm(total=len(items), desc=desc, unit="slice")
    if threads == 1:
        for item in items:
            yield func(item)
            bar.update(1)
    else:
        with ThreadPoolExecutor(threads) as pool:
            pending = []
            for item in items:
                pending.append(pool.submit(func, item))
                if len(pending) >= 2 * threads:
                    yield pending.pop(0).result()
                    bar.update(1)
            for fut in pending:
                yield fut.result()
                bar.update(1)
    bar.close()


def _extrema(path: str | os.PathLike) -> tuple[float, float]:
    img = read_slice(path)
    return float(img.min()), float(img.max())


def slice_extrema(
    paths: Sequence[str | os.PathLike], threads: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Per-slice minima and maxima, reading `threads` slices at a time (bounded memory)."""
    mins = np.empty(len(paths), dtype=np.float64)
    maxs = np.empty(len(paths), dtype=np.float64)
    for i, (lo, hi) in enumerate(_map_slices(_extrema, paths, threads, "slice extrema")):
        mins[i], maxs[i] = lo, hi
    return mins, maxs


def clip_bounds(
    mins: np.ndarray, maxs: np.ndarray, percentiles: Sequence[float] = (1.0, 99.0)
) -> tuple[float, float]:
    """Global clip bounds: percentile `p_low` of the minima and `p_high` of the maxima.

    Raises DataError if the bounds are empty (low >= high), e.g. for constant slices.
    """
    p_low, p_high = (float(p) for p in percentiles)
    if not (0.0 <= p_low <= 100.0 and 0.0 <= p_high <= 100.0):
        raise ConfigError(f"preprocess.percentiles must lie in [0, 100], got {list(percentiles)}")
    mins = np.asarray(mins, dtype=np.float64)
    maxs = np.asarray(maxs, dtype=np.float64)
    if mins.size == 0 or mins.shape != maxs.shape:
        raise DataError("clip bounds need one minimum and one maximum per slice")
    if not (np.isfinite(mins).all() and np.isfinite(maxs).all()):
        raise DataError("slice minima/maxima contain NaN or infinite values")
    low = float(np.percentile(mins, p_low))
    high = float(np.percentile(maxs, p_high))
    if not low < high:
        raise DataError(f"empty intensity range: low bound {low} >= high bound {high}")
    return low, high


def scale_to_unit(img: np.ndarray, low: float, high: float) -> np.ndarray:
    """Clip to [low, high] and map linearly to [0, 1] (float32)."""
    if not low < high:
        raise ValueError(f"clip bounds must satisfy low < high, got {low}, {high}")
    # float64: with narrow bounds far from zero, float32 differences lose the range.
    out = (np.clip(img.astype(np.float64), low, high) - low) / (high - low)
    return out.astype(np.float32)


def to_uint8(img: np.ndarray, low: float, high: float) -> np.ndarray:
    """Clip to [low, high] and scale to 0..255 (uint8, rounded to nearest)."""
    return np.rint(scale_to_unit(img, low, high) * 255.0).astype(np.uint8)


def area_resize(img: np.ndarray, size: int) -> np.ndarray:
    """Square resize to `size` x `size` by area averaging (:func:`tomosynth.resample.area`,
    exact block means for integer factors).

    Upscaling (size larger than the slice) is refused: the PNG sizes are downscaled copies.
    """
    h, w = img.shape
    if size > min(h, w):
        raise ConfigError(
            f"preprocess.sizes: {size} px is larger than the reconstructed slices ({h}x{w})"
        )
    if (h, w) == (size, size):
        return img.astype(np.float32, copy=True)
    return area(img.astype(np.float32, copy=False), size)


def compute_bounds(
    recon_dir: str | os.PathLike,
    out_json: str | os.PathLike,
    *,
    skip_slices: int,
    percentiles: Sequence[float],
    threads: int = 1,
) -> dict:
    """Compute the global clip bounds of a reconstruction and write them with provenance."""
    paths = kept_slices(recon_dir, skip_slices)
    mins, maxs = slice_extrema(paths, threads)
    low, high = clip_bounds(mins, maxs, percentiles)
    recon_meta_path = Path(recon_dir) / "recon.json"
    result = {
        "low": low,
        "high": high,
        "percentiles": [float(p) for p in percentiles],
        "skip_slices": int(skip_slices),
        "n_slices": len(paths),
        "first_slice": paths[0].name,
        "last_slice": paths[-1].name,
        "recon_dir": str(recon_dir),
        "recon": read_json(recon_meta_path) if recon_meta_path.exists() else None,
        "tomosynth_version": __version__,
    }
    write_json(out_json, result)
    return result


def make_split(names: Sequence[str], fractions: dict[str, float], seed: int) -> dict[str, list]:
    """Seeded train/val/test split of slice names; each non-empty fraction gets >= 1 name.

    Fractions must sum to 1. The same seed and names always give the same split.
    """
    fracs = {k: float(fractions.get(k, 0.0)) for k in SPLITS}
    unknown = set(fractions) - set(SPLITS)
    if unknown:
        raise ConfigError(f"preprocess.split: unknown keys {sorted(unknown)}")
    if any(f < 0 for f in fracs.values()) or abs(sum(fracs.values()) - 1.0) > 1e-6:
        raise ConfigError(f"preprocess.split fractions must be >= 0 and sum to 1, got {fracs}")
    names = sorted(names)
    n = len(names)
    wanted = [k for k in SPLITS if fracs[k] > 0]
    if n < len(wanted):
        raise DataError(f"{n} slices cannot fill the {len(wanted)} non-empty splits {wanted}")
    counts = {k: (max(1, int(round(fracs[k] * n))) if fracs[k] > 0 else 0) for k in SPLITS}
    # Give rounding leftovers to (or take them from) the training set.
    counts["train"] = n - counts["val"] - counts["test"]
    if fracs["train"] > 0 and counts["train"] < 1:
        raise DataError(f"{n} slices are too few for split fractions {fracs}")
    order = np.random.default_rng(seed).permutation(n)
    out: dict[str, list] = {}
    start = 0
    for k in SPLITS:
        out[k] = sorted(names[i] for i in order[start : start + counts[k]])
        start += counts[k]
    return out


def write_split(
    recon_dir: str | os.PathLike,
    out_json: str | os.PathLike,
    *,
    scan: str,
    skip_slices: int,
    fractions: dict[str, float],
    seed: int,
) -> dict:
    """Write the split manifest of the kept slices, named as their PNGs (`slice_XXXXX.png`)."""
    names = [p.with_suffix(".png").name for p in kept_slices(recon_dir, skip_slices)]
    split = make_split(names, fractions, seed)
    manifest = {
        "scan": scan,
        "seed": int(seed),
        "fractions": {k: float(fractions.get(k, 0.0)) for k in SPLITS},
        "skip_slices": int(skip_slices),
        **split,
    }
    write_json(out_json, manifest)
    return manifest


def export_png(
    recon_dir: str | os.PathLike,
    bounds_json: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    size: int,
    skip_slices: int,
    threads: int = 1,
) -> int:
    """Write every kept slice as an 8-bit PNG of `size` x `size` px with the global bounds.

    The float slice is clipped and scaled, area-averaged to `size`, then rounded to uint8,
    so the downscaling does not add a second quantisation. Returns the number of PNGs.
    """
    bounds = read_json(bounds_json, rule="clip_bounds")
    try:
        low, high = float(bounds["low"]), float(bounds["high"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(
            f"{bounds_json}: damaged, no numeric low and high bounds ({exc!r}); regenerate it: "
            "snakemake --forcerun clip_bounds, or delete it and run snakemake again"
        ) from exc
    paths = kept_slices(recon_dir, skip_slices)
    with atomic_dir(out_dir) as tmp:

        def one(path: Path) -> None:
            unit = area_resize(scale_to_unit(read_slice(path), low, high), size)
            img = np.rint(np.clip(unit, 0.0, 1.0) * 255.0).astype(np.uint8)
            write_png(tmp / path.with_suffix(".png").name, img)  # a full disk says so

        for _ in _map_slices(one, paths, threads, f"export {size}px"):
            pass
    return len(paths)

"""One stack of an SR volume folder read slice by slice into a bone mask, in parallel.

The reads, Otsu's histogram and the consecutive-slice SSIM were the serial part of
compute_bone_metrics (about 13 % of its CPU time, the floor of its wall time however many
workers it has). Here contiguous runs of slices go to forked worker processes: one pass
takes each run's range and SSIM, one its histogram (Otsu's threshold only), one writes its
rows of the mask into shared memory. The results equal one process's bit for bit.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tomosynth.errors import DataError
from tomosynth.io import list_slices, read_tiff
from tomosynth.metrics.pool import (
    SHARED,
    can_fork,
    check_workers,
    even_runs,
    forked_pool,
    pool_map,
    shared_bool,
)

#: Runs of slices per worker: enough that a slow run does not hold the others up.
RUNS_PER_WORKER = 4


def stack_paths(folder: str | Path, kind: str) -> list[Path]:
    """The ``slice_*.tiff`` files of ``folder/kind`` in order; DataError when there are none."""
    folder = Path(folder)
    if not (folder / kind).is_dir():
        raise DataError(f"{folder}: no {kind}/ sub-folder (need lr/, sr/ and hr/)")
    paths = list_slices(folder / kind, "tiff")
    if not paths:
        raise DataError(f"{folder / kind}: no slice_*.tiff files")
    return paths


def iter_slices(
    paths: Sequence[Path], shape: tuple[int, ...] | None = None
) -> Iterator[np.ndarray]:
    """The slices of a TIFF stack as float32, one at a time; DataError on a size change."""
    for path in paths:
        img = np.asarray(read_tiff(path), dtype=np.float32)
        if shape is not None and img.shape != shape:
            raise DataError(f"{path}: slice shape {img.shape} differs from {shape}")
        shape = img.shape
        yield img


@dataclass
class _Stack:
    """What a worker reads: the paths, the slice shape and (for the last pass) the mask."""

    paths: Sequence[Path]
    shape: tuple[int, ...]
    mask: np.ndarray | None = None


def _range_and_ssim(run: tuple[int, int], data_range: float) -> tuple[float, float, list[float]]:
    """(min, max) of the run's slices and the SSIM of each slice with the one before it
    (reading one slice before the run for the first pair)."""
    from skimage.metrics import structural_similarity

    st = SHARED["stack"]
    a, b = run
    first = max(a - 1, 0)
    lo, hi, ssim, prev = np.inf, -np.inf, [], None
    for i, img in enumerate(iter_slices(st.paths[first:b], st.shape), start=first):
        cur = img.astype(np.float64)
        if i >= a:
            lo, hi = min(lo, float(img.min())), max(hi, float(img.max()))
        if prev is not None:
            ssim.append(float(structural_similarity(prev, cur, data_range=data_range)))
        prev = cur
    return lo, hi, ssim


def _histogram(run: tuple[int, int], nbins: int, lo: float, hi: float) -> np.ndarray:
    st = SHARED["stack"]
    counts = np.zeros(nbins, dtype=np.int64)
    for img in iter_slices(st.paths[run[0] : run[1]], st.shape):
        counts += np.histogram(img, bins=nbins, range=(lo, hi))[0]
    return counts


def _fill(run: tuple[int, int], threshold: float) -> None:
    st = SHARED["stack"]
    assert st.mask is not None
    for i, img in enumerate(iter_slices(st.paths[run[0] : run[1]], st.shape), start=run[0]):
        np.greater(img, threshold, out=st.mask[i])


def otsu_of_histogram(counts: np.ndarray, lo: float, hi: float) -> float:
    """``skimage.filters.threshold_otsu`` of a histogram of `len(counts)` bins over [lo, hi]."""
    from skimage.filters import threshold_otsu

    edges = np.histogram_bin_edges([lo, hi], bins=len(counts), range=(lo, hi))
    return float(threshold_otsu(hist=(counts, (edges[:-1] + edges[1:]) / 2.0)))


def read_stack_mask(
    paths: Sequence[Path],
    threshold: float | None = None,
    workers: int = 1,
    nbins: int = 256,
    data_range: float = 1.0,
) -> tuple[np.ndarray, float, np.ndarray]:
    """(bone mask ``value > threshold``, the threshold, consecutive-slice SSIM) of a TIFF stack.

    Otsu's threshold of the whole stack (256 bins over its range, as
    ``skimage.filters.threshold_otsu`` of the volume) when `threshold` is None. `workers`
    forked processes read contiguous runs of slices; no float copy of the volume is made.
    """
    workers = check_workers(workers)
    paths = list(paths)
    shape = next(iter_slices(paths[:1])).shape
    full = (len(paths), *shape)
    parallel = workers > 1 and can_fork()
    mask = shared_bool(full, shared=parallel)
    parts = even_runs(len(paths), workers * RUNS_PER_WORKER if parallel else 1)
    with forked_pool(workers if parallel else 1, stack=_Stack(paths, shape, mask)) as pool:
        thr, ssim = _passes(pool, parts, threshold, nbins, data_range)
    return mask, thr, ssim


def _passes(
    pool: ProcessPoolExecutor | None,
    parts: list[tuple[int, int]],
    threshold: float | None,
    nbins: int,
    data_range: float,
) -> tuple[float, np.ndarray]:
    """Range and SSIM, then Otsu's histogram (when needed), then the mask rows."""
    first = pool_map(pool, _range_and_ssim, parts, data_range)
    lo, hi = min(r[0] for r in first), max(r[1] for r in first)
    ssim = np.asarray([s for r in first for s in r[2]], dtype=np.float64)
    if threshold is None:
        if lo == hi:
            folder = SHARED["stack"].paths[0].parent
            raise DataError(f"{folder}: constant volume, Otsu's threshold is undefined")
        counts = np.sum(pool_map(pool, _histogram, parts, nbins, lo, hi), axis=0)
        threshold = otsu_of_histogram(counts, lo, hi)
    pool_map(pool, _fill, parts, float(threshold))
    return float(threshold), ssim

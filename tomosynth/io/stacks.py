# SPDX-License-Identifier: BSD-3-Clause
"""Slice stacks: float32 TIFF and 8-bit PNG, written atomically with a manifest."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tomosynth.errors import DataError
from tomosynth.io.atomic import (
    _denied,
    atomic_file,
    clean_stale_temporaries,
    permission_message,
    write_failure,
)
from tomosynth.io.threads import run_threads
from tomosynth.manifest import file_sha256, verify_folder


def slice_name(index: int, ext: str) -> str:
    """File name of slice `index`: ``slice_{index:05d}.{ext}`` (`ext` without the dot)."""
    return f"slice_{int(index):05d}.{ext.lstrip('.')}"


def write_tiff_slices(
    folder: str | os.PathLike,
    volume: np.ndarray,
    first_index: int = 0,
    digests: dict[str, str] | None = None,
    threads: int = 1,
) -> list[Path]:
    """Write `volume` (n, h, w) as float32 TIFFs ``slice_{first_index + i:05d}.tiff``.

    `folder` is created if needed; callers writing a rule output pass the temporary folder
    of `atomic_dir`. Returns the written paths in order. `digests`, when given, receives
    each file's name -> SHA-256 (hex), hashed right after the file is written (in the
    writing thread, e.g. `reconstruct_scan`'s writer), so that the manifest need not read
    every file again when the output is published (`tomosynth.resume`). `threads` write
    (and hash) slices in parallel: file writes and SHA-256 release the GIL, and each file
    is written whole by one thread, so the files do not depend on it.
    """
    folder = Path(folder)
    volume = np.asarray(volume)
    if volume.ndim == 2:
        volume = volume[None]
    if volume.ndim != 3:
        raise DataError(f"{folder}: expected a (n, h, w) volume, got shape {volume.shape}")
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(folder, any_name=True)  # slices of a killed chunk
    paths = [folder / slice_name(first_index + i, "tiff") for i in range(len(volume))]

    def write(i: int) -> None:
        with atomic_file(paths[i], clean=False) as tmp:
            tifffile.imwrite(tmp, np.ascontiguousarray(volume[i], dtype=np.float32))
            if digests is not None:  # read back at once, from the page cache
                digests[paths[i].name] = file_sha256(tmp)

    run_threads(write, range(len(paths)), threads, "tiff")
    return paths


def _verify(folder: Path) -> None:
    """Check a folder output against its MANIFEST.json (DataError naming a missing/changed file)."""
    if folder.is_dir():
        verify_folder(folder)


def list_slices(folder: str | os.PathLike, ext: str | Sequence[str]) -> list[Path]:
    """Sorted ``slice_*.{ext}`` files in `folder` (`ext` one suffix or several, any case);
    DataError if there are none, or if the folder does not match its manifest."""
    folder = Path(folder)
    exts = [e.lstrip(".").lower() for e in ([ext] if isinstance(ext, str) else ext)]
    if not folder.is_dir():
        raise DataError(f"{folder}: slice folder does not exist")
    _verify(folder)
    paths = sorted(
        p for p in folder.glob("slice_*") if p.suffix.lower().lstrip(".") in exts and p.is_file()
    )
    if not paths:
        raise DataError(f"{folder}: no {' or '.join(f'slice_*.{e}' for e in exts)} files")
    return paths


def list_pngs(folder: str | os.PathLike) -> list[Path]:
    """Sorted PNG files of an image folder (any names); DataError if it is missing or empty."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    _verify(folder)
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png" and p.is_file())
    if not paths:
        raise DataError(f"{folder}: holds no PNG images")
    return paths


def read_tiff_stack(
    folder_or_paths: str | os.PathLike | Sequence[str | os.PathLike],
) -> np.ndarray:
    """Read 2D TIFF slices into a (n, h, w) float32 array.

    `folder_or_paths` is a folder (all ``slice_*.tiff``, sorted) or an explicit list of
    files (kept in the given order). DataError names any unreadable, non-2D or
    differently sized file.
    """
    if isinstance(folder_or_paths, str | os.PathLike):
        paths = list_slices(folder_or_paths, "tiff")
    else:
        paths = [Path(p) for p in folder_or_paths]
        if not paths:
            raise DataError("read_tiff_stack: empty list of TIFF files")
        for parent in sorted({p.parent for p in paths}):
            _verify(parent)
    return _stack(paths, read_tiff, np.float32, "slice shape")


def read_tiff(path: str | os.PathLike) -> np.ndarray:
    """One 2D TIFF slice as stored (no manifest check: the folder readers do that)."""
    import tifffile

    try:
        img = tifffile.imread(path)
    except (OSError, ValueError, tifffile.TiffFileError) as exc:
        if _denied(exc):
            raise DataError(permission_message(path)) from exc
        raise DataError(f"{path}: cannot read TIFF: {exc}") from exc
    if img.ndim != 2:
        raise DataError(f"{path}: expected a 2D slice, got shape {img.shape}")
    return img


def write_png(path: str | os.PathLike, img_uint8: np.ndarray) -> None:
    """Write a 2D uint8 (0..255) grayscale PNG, atomically: the one PNG writer.

    OpenCV's PNG encoder with its default settings (what ``export_png`` always wrote, so its
    bytes are unchanged); a full disk says ``no space left on <folder>``.
    """
    import cv2

    path = Path(path)
    img = np.asarray(img_uint8)
    if img.dtype != np.uint8 or img.ndim != 2:
        raise DataError(f"{path}: PNG slices must be 2D uint8, got {img.dtype} {img.shape}")
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img))
    if not ok:
        raise write_failure(path, img.nbytes)
    with atomic_file(path) as tmp:
        tmp.write_bytes(buf.tobytes())


def read_png(path: str | os.PathLike) -> np.ndarray:
    """One PNG as 2D uint8 (colour converted to luminance; no manifest check: the folder
    readers do that)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "1", "P", "RGB", "RGBA", "LA"):
                raise DataError(f"{path}: PNG mode {im.mode} is not 8-bit")
            return np.asarray(im if im.mode == "L" else im.convert("L"), dtype=np.uint8)
    except (OSError, SyntaxError) as exc:  # Pillow signals broken files with these
        if _denied(exc):
            raise DataError(permission_message(path)) from exc
        raise DataError(f"{path}: cannot read PNG: {exc}") from exc


def read_png_stack(folder: str | os.PathLike, names: list[str] | None = None) -> np.ndarray:
    """Read grayscale PNG slices into a (n, h, w) uint8 array.

    Parameters
    ----------
    folder : path-like
        Folder of ``slice_*.png`` files.
    names : list of str, optional
        File names inside `folder` to read, in this order (e.g. a split manifest's list);
        ``None`` reads all ``slice_*.png``, sorted. Colour images are converted to
        luminance.

    Raises
    ------
    DataError
        Missing, unreadable or non-8-bit files, or a size different from the first file's.
    """
    folder = Path(folder)
    if names is None:
        paths = list_slices(folder, "png")
    else:
        paths = [folder / n for n in names]
        if not paths:
            raise DataError(f"{folder}: empty list of PNG names")
        _verify(folder)
    for path in paths:
        if not path.is_file():
            raise DataError(f"{path}: PNG slice does not exist")
    return _stack(paths, read_png, np.uint8, "image size")


def _stack(paths: list[Path], read, dtype, what: str) -> np.ndarray:
    """Read equal-sized 2D images into one preallocated (n, y, x) array of `dtype`."""
    stack: np.ndarray | None = None
    for i, path in enumerate(paths):
        img = read(path)
        if stack is None:
            stack = np.empty((len(paths), *img.shape), dtype=dtype)
        elif img.shape != stack.shape[1:]:
            raise DataError(f"{path}: {what} {img.shape} differs from {stack.shape[1:]}")
        stack[i] = img
    assert stack is not None
    return stack

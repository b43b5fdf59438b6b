"""Checkpoints: atomic ``torch.save`` of plain-data state dicts, and their safe loading."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from tomosynth.errors import DataError
from tomosynth.io import atomic_file


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write `state` with ``torch.save``, atomically (temporary file + ``os.replace``).

    Keep `state` to tensors, numbers, strings, ``None``, lists, tuples and dicts so that
    :func:`load_checkpoint` can read it with ``weights_only=True``.
    """
    with atomic_file(path) as tmp:
        torch.save(state, tmp)


def unreadable_message(path: Path, exc: BaseException) -> str:
    """One line for a checkpoint that cannot be read: the file, why (shortened), the fix."""
    if isinstance(exc, PermissionError):
        return f"{path}: permission denied (not readable by this user); fix its permissions"
    why = " ".join(f"{type(exc).__name__}: {exc}".split())
    why = why if len(why) <= 120 else why[:117] + "..."
    if path.name == "latest.pt":
        fix = (
            f"delete it or move it aside (mv {path.name} {path.name}.bad in its folder) and "
            "run again: the training then starts from scratch"
        )
    else:
        fix = "delete it and run snakemake again to regenerate it"
    return f"{path}: unreadable checkpoint, truncated or corrupt ({why}); {fix}"


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", weights_only: bool = True
) -> dict | None:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Returns ``None`` if `path` does not exist; raises :class:`DataError` naming the file if
    it cannot be read (truncated, not a torch file, or holding objects that are not plain data).
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location=map_location, weights_only=weights_only)
    except Exception as exc:  # torch raises several types for corrupt files
        raise DataError(unreadable_message(path, exc)) from exc
    if not isinstance(state, dict):
        raise DataError(f"{path}: checkpoint holds a {type(state).__name__}, expected a dict")
    return state

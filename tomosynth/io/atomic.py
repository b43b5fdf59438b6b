# SPDX-License-Identifier: BSD-3-Clause
"""Atomic writes: temporaries beside the target, renamed into place; stale ones cleaned;
full disks and denied permissions reported as one line."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tomosynth.errors import DataError
from tomosynth.jobs import pid_alive
from tomosynth.manifest import write_manifest


def _tmp_prefix(path: Path) -> str:
    """Prefix of the temporaries of `path`: ``.NAME.PID-`` (the writer's pid, so that a later
    job can tell a stale one from one being written)."""
    return f".{path.name}.{os.getpid()}-"


_TMP_RE = r"^\.{name}\.(?:(\d+)-)?[a-z0-9_]{{8}}\.tmp$"


def clean_stale_temporaries(path: str | os.PathLike, any_name: bool = False) -> list[Path]:
    """Delete the temporaries that `atomic_file`/`atomic_dir` left beside `path` when their
    process was killed (``.NAME.PID-XXXXXXXX.tmp`` of a dead pid, or the older
    ``.NAME.XXXXXXXX.tmp``); returns what was deleted.

    Called at the start of every atomic write: a killed export otherwise leaves a hidden
    folder of partial images forever. Temporaries of a live process are kept. `any_name`
    cleans those of every name in the folder `path` itself (once per folder of slices).
    """
    path = Path(path)
    folder = path if any_name else path.parent
    if not folder.is_dir():
        return []
    name = ".+" if any_name else re.escape(path.name)
    pattern = re.compile(_TMP_RE.format(name=name))
    removed = []
    with os.scandir(folder) as entries:
        stale = [
            Path(e.path)
            for e in entries
            if (m := pattern.match(e.name)) and not (m.group(1) and pid_alive(int(m.group(1))))
        ]
    for entry in sorted(stale):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def write_failure(path: str | os.PathLike, nbytes: int) -> Exception:
    """The error for a writer that only says it failed (OpenCV's ``imwrite`` returns False):
    ``no space left on <folder>`` when the disk lacks `nbytes` plus 1 MiB, else a DataError."""
    where = Path(path).parent
    free = shutil.disk_usage(where).free if where.is_dir() else 0
    if free < nbytes + 2**20:
        return OSError(
            errno.ENOSPC,
            f"no space left on {where} (free {free / 2**20:.1f} MiB) while writing {path}: "
            "free some space and run again",
        )
    return DataError(f"{path}: could not write the file")


def _in_temporary(path: Path) -> bool:
    """Whether `path` is written inside an `atomic_dir` temporary (nothing stale there)."""
    return path.parent.name.startswith(".") and path.parent.name.endswith(".tmp")


def no_space_error(exc: OSError, path: str | os.PathLike) -> OSError | None:
    """A one-line ``OSError(ENOSPC)`` saying ``no space left on <folder>`` for a full disk
    (ENOSPC, EDQUOT, or a short write such as numpy's "4096 requested and 3004 written"),
    else None. Not a DataError: the input is fine, and a rerun after freeing space resumes
    (a reconstruction keeps its finished chunks)."""
    text = str(exc)
    if "no space left on" in text:
        return None  # already said by an inner writer (a file inside an atomic folder)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT) or ("requested and" in text and "written" in text):
        where = Path(path).parent
        free = shutil.disk_usage(where).free if where.is_dir() else 0
        return OSError(
            errno.ENOSPC,
            f"no space left on {where} (free {free / 2**20:.0f} MiB) while writing {path}: "
            f"free some space and run again ({exc})",
        )
    return None


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, clean: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only on success.

    A crash or exception leaves no half-written file under the final name; a full disk is
    reported as ``no space left on <folder>`` (`no_space_error`). `clean`: delete stale
    temporaries of `path` first (`clean_stale_temporaries`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if clean and not _in_temporary(path):
        clean_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        full = no_space_error(exc, path)
        if full is not None:
            raise full from exc
        raise
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; move it onto `path` only on success.

    An existing folder at `path` is replaced only once the new one is complete. The folder
    gets a ``MANIFEST.json`` (names, sizes, sha256 of its files; `tomosynth.manifest`)
    before it is moved, which the readers of this module check. Stale temporaries of a
    killed earlier run are deleted first; a full disk is reported as ``no space left``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(path)
    tmp_path = Path(tempfile.mkdtemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        yield tmp_path
        write_manifest(tmp_path)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp_path, path)
    except OSError as exc:
        shutil.rmtree(tmp_path, ignore_errors=True)
        full = no_space_error(exc, path)
        if full is not None:
            raise full from exc
        raise
    except BaseException:
        shutil.rmtree(tmp_path, ignore_errors=True)
        raise


def permission_message(path: str | os.PathLike) -> str:
    """One line for a file this user may not read."""
    return (
        f"{path}: permission denied (not readable by this user); fix its permissions "
        f"(chmod u+r {path}) or run as its owner"
    )


def _denied(exc: BaseException) -> bool:
    """Whether `exc` (possibly from h5py, which wraps errno in its text) is EACCES/EPERM."""
    if isinstance(exc, PermissionError):
        return True
    text = str(exc)
    return "errno = 13" in text or "Permission denied" in text

"""Manifests of folder outputs: file names, count, sizes and content hashes.

Every folder written through `tomosynth.io.atomic_dir` gets a ``MANIFEST.json`` inside it,
written before the folder appears under its final name. Snakemake checks a folder output
only for existence, so a deleted or edited file would otherwise go unnoticed; the library
functions that list or read folders (`tomosynth.io.list_pngs`, `list_slices`,
`read_png_stack`, `read_tiff_stack`) call :func:`verify_folder` first, and
``tomosynth verify`` checks every manifest of a results tree.

Cost: the check in a consumer compares names, count, sizes and modification times (one
``stat`` per file) and hashes only files whose time differs from the manifest's (e.g. after
a copy that did not keep times); ``tomosynth verify`` hashes everything (sha256).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from tomosynth.errors import DataError

MANIFEST_NAME = "MANIFEST.json"
#: Environment variable naming the Snakemake rule writing the folder (set by the scripts'
#: bootstrap), recorded so that a message can say how to regenerate the folder.
RULE_ENV = "TOMOSYNTH_RULE"
_BLOCK = 1 << 20
#: Folder outputs of the workflow, relative to ``results/`` (the ``directory(...)`` outputs
#: written through `tomosynth.io.atomic_dir` or `tomosynth.resume`). Each holds a manifest;
#: one without is damage (the manifest was deleted, or the folder was written by hand).
PUBLISHED_FOLDERS = (
    "recon/*",
    "png/*/*px",
    "samples/wgan_gp/*",
    "models/wgan_gp/*/progress",
    "upscaled/*/*",
    "sr_volumes/*/*",
    "metrics/distance/*/stats",
)


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            h.update(block)
    return h.hexdigest()


def _payload_files(folder: Path) -> list[Path]:
    """Files under `folder` that a manifest covers: all but manifests and hidden files."""
    out = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name != MANIFEST_NAME and not name.startswith("."):
                out.append(Path(root) / name)
    return out


def build_manifest(
    folder: str | os.PathLike,
    rule: str | None = None,
    known: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Manifest of `folder`: per file (relative POSIX path) its size, mtime and sha256.

    `known` maps relative paths to ``{"size", "mtime_ns", "sha256"}`` hashed when the file
    was written (`tomosynth.io.write_tiff_slices`); such a digest is taken without reading
    the file again while the file's size and mtime still equal those recorded, else the
    file is hashed.
    """
    folder = Path(folder)
    known = known or {}
    files = {}
    for path in _payload_files(folder):
        st = path.stat()
        rel = path.relative_to(folder).as_posix()
        entry = known.get(rel, {})
        same = entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns
        files[rel] = {
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "sha256": entry["sha256"] if same and entry.get("sha256") else file_sha256(path),
        }
    return {
        "format": "tomosynth-manifest-1",
        "rule": rule,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "count": len(files),
        "files": files,
    }


def write_manifest(
    folder: str | os.PathLike,
    rule: str | None = None,
    known: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Write ``MANIFEST.json`` into `folder` (atomically) and return it.

    `rule` defaults to the Snakemake rule of the running job (environment ``TOMOSYNTH_RULE``);
    `known`: digests hashed as the files were written (`build_manifest`).
    """
    rule = rule if rule is not None else os.environ.get(RULE_ENV)
    manifest = build_manifest(folder, rule, known)
    path = Path(folder) / MANIFEST_NAME
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return manifest


def find_manifest(folder: str | os.PathLike) -> tuple[Path, str] | None:
    """(manifest file, prefix of `folder` inside it) of `folder` or of a parent up to 2 levels."""
    folder = Path(folder)
    prefix: list[str] = []
    for _ in range(3):
        candidate = folder / MANIFEST_NAME
        if candidate.is_file():
            return candidate, "/".join(reversed(prefix))
        prefix.append(folder.name)
        folder = folder.parent
    return None


def _is_published(rel: tuple[str, ...]) -> bool:
    """Whether the path `rel` (parts below ``results/``) is one of `PUBLISHED_FOLDERS`."""
    if not rel or any(part.startswith(".") for part in rel):
        return False
    for pattern in PUBLISHED_FOLDERS:
        pat = pattern.split("/")
        if len(pat) == len(rel) and all(map(fnmatch.fnmatchcase, rel, pat)):
            return True
    return False


def published_root(folder: str | os.PathLike) -> Path | None:
    """The published folder output holding `folder` (itself or a parent up to 2 levels up),
    None when `folder` is not inside one (`PUBLISHED_FOLDERS` under a ``results`` folder)."""
    folder = Path(os.path.abspath(folder))
    for candidate in (folder, folder.parent, folder.parent.parent):
        parts = candidate.parts
        if "results" not in parts:
            return None
        top = len(parts) - 1 - parts[::-1].index("results")
        if _is_published(parts[top + 1 :]):
            return candidate
    return None


def missing_manifest_message(folder: Path) -> str:
    """One line: `folder` should hold a manifest and does not; how to regenerate it."""
    return (
        f"{folder}: no {MANIFEST_NAME} (every folder the workflow publishes has one: it was "
        "deleted, or the folder was written or copied by hand), so missing or changed files "
        f"cannot be detected; regenerate it: delete {folder} and run snakemake again"
    )


def missing_manifests(root: str | os.PathLike) -> list[Path]:
    """Published folders under the results tree `root` that have no manifest."""
    root = Path(root)
    out = []
    for pattern in PUBLISHED_FOLDERS:
        for folder in sorted(root.glob(pattern)):
            if folder.is_dir() and not folder.name.startswith("."):
                if not (folder / MANIFEST_NAME).is_file():
                    out.append(folder)
    return sorted(out)


def regenerate_hint(folder: Path, manifest: dict[str, Any]) -> str:
    rule = manifest.get("rule")
    forced = f"snakemake --forcerun {rule}, or " if rule else ""
    return f"regenerate it: {forced}delete {folder} and run snakemake again"


def check_manifest(
    manifest_path: str | os.PathLike, prefix: str = "", full: bool = False
) -> list[str]:
    """Problems of the folder holding `manifest_path` (empty list: intact).

    Parameters
    ----------
    manifest_path : path-like
        A ``MANIFEST.json``.
    prefix : str
        Check only the files under this relative sub-folder.
    full : bool
        Hash every file; otherwise only files whose size matches but modification time differs.
    """
    import json

    manifest_path = Path(manifest_path)
    top = manifest_path.parent
    try:
        manifest = json.loads(manifest_path.read_text())
        listed: dict[str, dict] = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [f"{manifest_path}: unreadable manifest ({exc})"]
    pre = f"{prefix}/" if prefix else ""
    wanted = {k: v for k, v in listed.items() if k.startswith(pre)}
    problems = []
    base = top / prefix if prefix else top
    present = (
        {p.relative_to(top).as_posix() for p in _payload_files(base)} if base.is_dir() else set()
    )
    for name in sorted(set(wanted) - present):
        problems.append(f"{top / name}: missing (listed in {manifest_path})")
    for name in sorted(present - set(wanted)):
        problems.append(
            f"{top / name}: not in {manifest_path} (added after the folder was written)"
        )
    for name in sorted(set(wanted) & present):
        entry = wanted[name]
        path = top / name
        st = path.stat()
        if st.st_size != entry["size"]:
            problems.append(f"{path}: changed (size {st.st_size} B, manifest {entry['size']} B)")
        elif (full or st.st_mtime_ns != entry["mtime_ns"]) and file_sha256(path) != entry["sha256"]:
            problems.append(f"{path}: changed (content differs from its sha256 in the manifest)")
    return problems


def verify_folder(folder: str | os.PathLike, required: bool | None = None) -> bool:
    """Check `folder` against its manifest; DataError naming the first bad file and the fix.

    Returns True when it matches, False when the folder has no manifest and none is
    required (a folder written by hand outside a workflow run). `required` (default: inside
    a rule's job, i.e. ``TOMOSYNTH_RULE`` set, for a folder of `PUBLISHED_FOLDERS` under
    ``results/``) makes a missing manifest a DataError: the folder was damaged. Costs one
    ``stat`` per file (plus a hash of files whose modification time differs).
    """
    import json

    folder = Path(folder)
    found = find_manifest(folder)
    if found is None:
        published = published_root(folder)
        if required is None:
            required = bool(os.environ.get(RULE_ENV)) and published is not None
        if required:
            raise DataError(missing_manifest_message(published or folder))
        return False
    manifest_path, prefix = found
    problems = check_manifest(manifest_path, prefix)
    if problems:
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            manifest = {}
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise DataError(f"{problems[0]}{more}; {regenerate_hint(manifest_path.parent, manifest)}")
    return True


def verify_tree(
    root: str | os.PathLike, full: bool = True
) -> tuple[list[Path], dict[Path, list[str]]]:
    """Every manifest under `root`: (manifests checked, manifest -> problems of damaged ones).

    A published folder without a manifest (`missing_manifests`) counts as damaged, keyed by
    the path its manifest should have.
    """
    root = Path(root)
    manifests = sorted(m for m in root.rglob(MANIFEST_NAME) if not _hidden(m, root))
    damaged = {}
    for m in manifests:
        problems = check_manifest(m, full=full)
        if problems:
            damaged[m] = problems
    for folder in missing_manifests(root):
        damaged[folder / MANIFEST_NAME] = [missing_manifest_message(folder)]
    return manifests, damaged


def _hidden(path: Path, root: Path) -> bool:
    """Whether `path` lies in a hidden folder below `root` (temporaries, partial outputs)."""
    return any(part.startswith(".") for part in path.relative_to(root).parent.parts)


def damaged_warnings(root: str | os.PathLike = "results") -> list[str]:
    """One warning line per folder under `root` that no longer matches its manifest.

    The fast check (names, sizes, times; hashes only where times differ), run when the
    workflow is parsed: Snakemake itself sees only that the folder exists, so it would say
    "Nothing to be done" after a file was deleted.
    """
    import json

    root = Path(root)
    if not root.is_dir():
        return []
    _, damaged = verify_tree(root, full=False)
    out = []
    for m, problems in damaged.items():
        try:
            manifest = json.loads(m.read_text())
        except (OSError, ValueError):
            manifest = {}
        more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
        if not m.is_file():  # a published folder whose manifest is gone
            out.append(f"warning: {m.parent} is damaged ({problems[0]})")
            continue
        out.append(
            f"warning: {m.parent} is damaged ({problems[0]}{more}); "
            f"{regenerate_hint(m.parent, manifest)}"
        )
    return out


__all__ = [
    "damaged_warnings",
    "MANIFEST_NAME",
    "build_manifest",
    "check_manifest",
    "file_sha256",
    "find_manifest",
    "missing_manifests",
    "published_root",
    "verify_folder",
    "verify_tree",
    "write_manifest",
]

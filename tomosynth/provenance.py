"""Provenance sidecars for metric tables and plots.

Every table or figure the evaluation writes gets a ``<name>.json`` beside it (for
``results/metrics/distance/shale.csv``: ``results/metrics/distance/shale.json``) saying
what produced it: scan, centre of rotation, clip bounds, seeds, checkpoint hashes and
package versions.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import tomosynth
from tomosynth.io import atomic_file
from tomosynth.manifest import file_sha256 as sha256_file

PACKAGES = (
    "tomosynth",
    "numpy",
    "scipy",
    "scikit-image",
    "pandas",
    "matplotlib",
    "torch",
    "torchvision",
    "pytorch-fid",
    "opencv-python-headless",
    "snakemake",
)


def package_versions(packages: Sequence[str] = PACKAGES) -> dict[str, str | None]:
    """Versions of `packages` (None when absent), plus Python's and torch's CUDA build.

    A package already imported reports its own ``__version__`` (torch's names its build,
    e.g. ``2.4.1+cu121``), others the installed distribution's; tomosynth is this copy's
    version (the workflow runs it from the checkout, not installed). Every value is a
    ``str`` or None, so checkpoints holding the dict load with ``weights_only=True``.
    """
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in packages:
        module = sys.modules.get(name)
        if name == "tomosynth":
            out[name] = str(tomosynth.__version__)
        elif module is not None and getattr(module, "__version__", None) is not None:
            out[name] = str(module.__version__)
        else:
            try:
                out[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                out[name] = None
    if "torch" in sys.modules:  # the CUDA build in use matters for GPU results
        cuda = getattr(sys.modules["torch"].version, "cuda", None)
        out["torch_cuda"] = None if cuda is None else str(cuda)
    return out


CHECKPOINT_NAMES = ("final.pt", "best.pt", "latest.pt")


def find_checkpoint(model_dir: Path) -> Path | None:
    """The model folder's final (WGAN-GP), best (SRCNN) or latest checkpoint, in that order."""
    return next((model_dir / f for f in CHECKPOINT_NAMES if (model_dir / f).is_file()), None)


def checkpoint_hashes(paths: Mapping[str, str | os.PathLike]) -> dict[str, dict]:
    """For each name -> model folder or checkpoint file, the sha256 of its checkpoint(s).

    A folder contributes its ``final.pt``, ``best.pt`` or ``latest.pt`` (the first found);
    missing paths are recorded as None rather than failing the table.
    """
    out: dict[str, dict] = {}
    for name, p in paths.items():
        p = Path(p)
        if p.is_dir():
            ckpt = find_checkpoint(p)
        else:
            ckpt = p if p.is_file() else None
        out[name] = {
            "path": str(ckpt) if ckpt else str(p),
            "sha256": sha256_file(ckpt) if ckpt else None,
        }
    return out


def _jsonable(obj: Any) -> Any:
    """Plain-JSON form of numpy scalars/arrays, paths and nested containers."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return _jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def provenance(**items: Any) -> dict:
    """Provenance record: the given items (scan, centre, clip bounds, seeds, checkpoint
    hashes, settings ...) plus package versions, host and UTC time."""
    return _jsonable(
        {
            **items,
            "versions": package_versions(),
            "host": platform.node(),
            "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
    )


def sidecar_path(output: str | os.PathLike) -> Path:
    """Where the provenance of `output` goes: its path with the suffix replaced by ``.json``
    (``shale.csv`` -> ``shale.json``; one sidecar serves a figure's ``.png`` and ``.pdf``)."""
    return Path(output).with_suffix(".json")


def write_sidecar(output: str | os.PathLike, record: Mapping[str, Any]) -> Path:
    """Write `record` (e.g. from :func:`provenance`) to :func:`sidecar_path`; returns it."""
    path = sidecar_path(output)
    with atomic_file(path) as tmp:
        Path(tmp).write_text(json.dumps(_jsonable(record), indent=2, sort_keys=True) + "\n")
    return path


def scan_context(
    recon_dir: str | os.PathLike | None = None, bounds_json: str | os.PathLike | None = None
) -> dict:
    """Centre of rotation (from ``recon.json``) and clip bounds (``bounds.json``) of a scan.

    Missing files give None entries; the whole JSON of each file is kept under ``recon`` and
    ``clip_bounds`` so nothing depends on the exact keys the upstream stages chose.
    """
    out: dict[str, Any] = {"center": None, "recon": None, "clip_bounds": None}
    if recon_dir is not None and (Path(recon_dir) / "recon.json").is_file():
        rec = json.loads((Path(recon_dir) / "recon.json").read_text())
        out["recon"] = rec
        out["center"] = rec.get("center", rec.get("centre"))
    if bounds_json is not None and Path(bounds_json).is_file():
        out["clip_bounds"] = json.loads(Path(bounds_json).read_text())
    return out


def input_provenance(path: str | os.PathLike) -> dict[str, Any]:
    """What is known of one input of a table or figure: its own provenance sidecar if it
    has one, and the sha256 of the checkpoint behind it (a checkpoint file, a model folder,
    or a training log inside a model folder)."""
    p = Path(path)
    out: dict[str, Any] = {}
    side = sidecar_path(p)
    if p.is_file() and side != p and side.is_file():
        out["sidecar"] = json.loads(side.read_text())
    ckpt = None
    if p.is_dir():  # a model folder, or a folder inside one (progress grids)
        ckpt = find_checkpoint(p) or find_checkpoint(p.parent)
    elif p.suffix == ".pt" and p.is_file():
        ckpt = p
    elif p.name == "log.csv":
        ckpt = find_checkpoint(p.parent)
    if ckpt is not None:
        out["checkpoint"] = {"path": str(ckpt), "sha256": sha256_file(ckpt)}
    return out


def figure_provenance(
    figure: str | os.PathLike,
    inputs: Sequence[str | os.PathLike],
    *,
    scans: Sequence[str] = (),
    results: str | os.PathLike = "results",
    **items: Any,
) -> Path:
    """Write the provenance sidecar of a figure: per input its sidecar and checkpoint hash
    (:func:`input_provenance`), per scan its centre of rotation and clip bounds
    (:func:`scan_context` of the workflow's standard paths under `results`), the given
    items (seeds, settings) and package versions. Returns the sidecar's path."""
    root = Path(results)
    record = provenance(
        figure=str(figure),
        inputs={str(p): input_provenance(p) for p in inputs},
        scans={
            s: scan_context(root / "recon" / s, root / "preprocess" / s / "bounds.json")
            for s in scans
        },
        **items,
    )
    return write_sidecar(figure, record)

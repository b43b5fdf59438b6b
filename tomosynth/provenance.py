"""Provenance sidecars and compute accounting for metric tables and plots.

Every table or figure the evaluation writes gets a ``<name>.json`` beside it (for
``results/metrics/distance/shale.csv``: ``results/metrics/distance/shale.json``) saying
what produced it: scan, centre of rotation, clip bounds, seeds, checkpoint hashes and
package versions.
"""

from __future__ import annotations

import csv
import hashlib
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

import numpy as np

from tomosynth.errors import DataError
from tomosynth.io import atomic_file

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
    """Installed versions of `packages` (None when absent), plus Python's."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    if "torch" in sys.modules:  # the CUDA build in use matters for GPU results
        out["torch_cuda"] = getattr(sys.modules["torch"].version, "cuda", None)
    return out


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def checkpoint_hashes(paths: Mapping[str, str | os.PathLike]) -> dict[str, dict]:
    """For each name -> model folder or checkpoint file, the sha256 of its checkpoint(s).

    A folder contributes its ``final.pt``, ``best.pt`` or ``latest.pt`` (the first found);
    missing paths are recorded as None rather than failing the table.
    """
    out: dict[str, dict] = {}
    for name, p in paths.items():
        p = Path(p)
        if p.is_dir():
            ckpt = _find_checkpoint(p)
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
        ckpt = _find_checkpoint(p) or _find_checkpoint(p.parent)
    elif p.suffix == ".pt" and p.is_file():
        ckpt = p
    elif p.name == "log.csv":
        ckpt = _find_checkpoint(p.parent)
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


# --- compute accounting (issue 8, item 5) ------------------------------------------------------
COMPUTE_COLUMNS = [
    "row_type",
    "scan",
    "name",
    "models",
    "device",
    "device_name",
    "budget_minutes",
    "epochs",
    "wall_s",
    "device_hours",
    "images_per_s",
    "metric",
    "reference",
    "score",
    "score_per_device_hour",
    "checkpoint_sha256",
]


CHECKPOINT_NAMES = ("final.pt", "best.pt", "latest.pt")


def _find_checkpoint(model_dir: Path) -> Path | None:
    """The model folder's final (WGAN-GP), best (SRCNN) or latest checkpoint, in that order."""
    return next((model_dir / f for f in CHECKPOINT_NAMES if (model_dir / f).is_file()), None)


def read_training_log(path: str | os.PathLike) -> list[dict[str, float]]:
    """Rows of a training ``log.csv`` as floats: ``epoch``, ``wall_s``, ``images_per_s``.

    The wall-clock column is ``wall_s`` (WGAN-GP) or ``elapsed_s`` (SRCNN): cumulative
    seconds at the end of the epoch, resumed runs included. ``images_per_s`` is NaN where
    the log has no such column.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: training log not found")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise DataError(f"{path}: no epochs logged")
    wall_key = next((k for k in ("wall_s", "elapsed_s") if k in rows[0]), None)
    if "epoch" not in rows[0] or wall_key is None:
        raise DataError(f"{path}: need columns epoch and wall_s (or elapsed_s)")
    out = []
    for i, r in enumerate(rows):
        try:
            out.append(
                {
                    "epoch": float(r["epoch"]),
                    "wall_s": float(r[wall_key]),
                    "images_per_s": float(r["images_per_s"]) if "images_per_s" in r else math.nan,
                }
            )
        except (TypeError, ValueError) as exc:
            raise DataError(f"{path}: row {i + 2}: non-numeric value ({exc})") from exc
    return out


def _checkpoint_meta(model_dir: Path) -> dict:
    """Device and budget recorded in the model folder's checkpoint.

    ``device``: a top-level ``device`` key, else the run config's (which may be the
    configured preference, e.g. 'auto'), else 'unknown'; ``budget_minutes``: the run
    config's training budget (None when absent or unlimited).
    """
    out: dict[str, Any] = {"device": "unknown", "device_name": "", "budget_minutes": None}
    ckpt = _find_checkpoint(model_dir)
    if ckpt is None:
        return out
    try:
        import torch

        state = torch.load(ckpt, map_location="cpu", weights_only=False)
    except Exception:  # noqa: BLE001 - a metadata read must not fail the table
        return out
    if not isinstance(state, Mapping):
        return out
    holders = [state, *[v for v in state.values() if isinstance(v, Mapping)]]
    dev = next((h["device"] for h in holders if isinstance(h.get("device"), str)), None)
    if dev is not None:
        out["device"] = dev
    # The GPU (or CPU) model the training ran on, where the checkpoint records it.
    name = next((h["device_name"] for h in holders if isinstance(h.get("device_name"), str)), "")
    out["device_name"] = name
    budget = next((h["budget_minutes"] for h in holders if "budget_minutes" in h), None)
    out["budget_minutes"] = None if budget is None else float(budget)
    return out


def model_accounting(name: str, scan: str, model_dir: str | os.PathLike) -> dict:
    """One compute row of a trained model: epochs reached, wall-clock, device, images/s.

    images/s is the mean of the log's per-epoch ``images_per_s`` (NaN if not logged);
    ``device_hours`` is the final cumulative wall-clock / 3600 (GPU-hours on a GPU,
    CPU-hours of one job otherwise); epochs = the last logged epoch, i.e. what the
    training budget allowed.
    """
    model_dir = Path(model_dir)
    rows = read_training_log(model_dir / "log.csv")
    wall = rows[-1]["wall_s"]
    ckpt = _find_checkpoint(model_dir)
    meta = _checkpoint_meta(model_dir)
    return {
        "row_type": "model",
        "scan": scan,
        "name": name,
        "models": name,
        "device": meta["device"],
        "device_name": meta["device_name"],
        "budget_minutes": meta["budget_minutes"],
        "epochs": int(rows[-1]["epoch"]),
        "wall_s": wall,
        "device_hours": wall / 3600.0,
        "images_per_s": float(np.mean([r["images_per_s"] for r in rows])),
        "checkpoint_sha256": sha256_file(ckpt) if ckpt else "",
    }


def compute_table(
    models: Mapping[str, tuple[str, str | os.PathLike]],
    pipelines: Mapping[str, tuple[str, Sequence[str]]],
    distance_tables: Sequence[str | os.PathLike] = (),
    reference: str = "train",
):
    """Compute accounting: one row per model and one per evaluated image set (pipeline).

    Parameters
    ----------
    models : model name -> (scan, model folder with ``log.csv`` and checkpoints).
    pipelines : image-set name as in the distance table (e.g. ``upscaled/shale/bicubic``)
        -> (scan, names of the models whose training it needed).
    distance_tables : distance CSVs; each pipeline's score is its distance to `reference`
        (FID when present, else FRD) and ``score_per_device_hour`` = score / device-hours.

    Returns
    -------
    pandas.DataFrame with :data:`COMPUTE_COLUMNS`.
    """
    import pandas as pd

    rows = [model_accounting(n, scan, d) for n, (scan, d) in models.items()]
    by_name = {r["name"]: r for r in rows}
    dist = (
        pd.concat([pd.read_csv(p) for p in distance_tables], ignore_index=True)
        if distance_tables
        else pd.DataFrame(columns=["set", "reference", "metric", "value"])
    )
    for set_name, (scan, needed) in pipelines.items():
        missing = [m for m in needed if m not in by_name]
        if missing:
            raise DataError(f"pipeline {set_name}: no compute row for model(s) {missing}")
        used = [by_name[m] for m in needed]
        hours = sum(r["device_hours"] for r in used)
        sel = dist[(dist["set"] == set_name) & (dist["reference"] == reference)]
        metric, score = "", float("nan")
        if len(sel):
            pick = sel[sel["metric"] == "FID"] if (sel["metric"] == "FID").any() else sel
            metric, score = str(pick["metric"].iloc[0]), float(pick["value"].iloc[0])
        rows.append(
            {
                "row_type": "pipeline",
                "scan": scan,
                "name": set_name,
                "models": ";".join(needed),
                "device": ";".join(sorted({r["device"] for r in used})),
                "device_name": ";".join(sorted({r["device_name"] for r in used} - {""})),
                "budget_minutes": sum(r["budget_minutes"] or 0.0 for r in used)
                if all(r["budget_minutes"] is not None for r in used)
                else None,
                "epochs": ";".join(str(r["epochs"]) for r in used),
                "wall_s": sum(r["wall_s"] for r in used),
                "device_hours": hours,
                "images_per_s": float("nan"),
                "metric": metric,
                "reference": reference if metric else "",
                "score": score,
                "score_per_device_hour": score / hours if hours > 0 else float("nan"),
                "checkpoint_sha256": ";".join(r["checkpoint_sha256"] for r in used),
            }
        )
    return pd.DataFrame(rows, columns=COMPUTE_COLUMNS)

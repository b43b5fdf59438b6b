"""Compute accounting: wall-clock, device, images/s, epochs and score per device-hour of
the trained models, from their checkpoints and training logs, as one table."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tomosynth.errors import DataError
from tomosynth.provenance import find_checkpoint, sha256_file

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
    ckpt = find_checkpoint(model_dir)
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
    ckpt = find_checkpoint(model_dir)
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

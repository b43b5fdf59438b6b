"""Super-resolution scores: per-slice PSNR/SSIM of an SR volume against its HR reference,
and the tables over slices, presets, scales and cross-validation folds (as DataFrames)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from tomosynth.errors import ConfigError, DataError
from tomosynth.io import read_json
from tomosynth.metrics.image import SSIM_WINDOWS, psnr, ssim
from tomosynth.plan import HELD_OUT, WITHIN_SPECIMEN
from tomosynth.sr_data import read_stack, slice_names

log = logging.getLogger(__name__)


def sr_convention(ssim_window: str) -> str:
    """The ``convention`` column of the SR tables: data range, SSIM window, which bicubic."""
    if ssim_window not in SSIM_WINDOWS:
        raise ConfigError(
            f"evaluate.ssim_window: expected one of {sorted(SSIM_WINDOWS)}, got {ssim_window!r}"
        )
    return (
        f"PSNR/SSIM of [0, 1] floats, data range 1; {SSIM_WINDOWS[ssim_window]}; "
        "bicubic = OpenCV INTER_CUBIC (tomosynth.resample)"
    )


def _index(name: str) -> int:
    return int(Path(name).stem.split("_")[-1])


def neighbour_average(
    hr: np.ndarray, names: list[str], test_names: list[str], train_names: list[str]
) -> tuple[np.ndarray, list[tuple[str, ...]]]:
    """The neighbour-average baseline of a within-specimen split.

    Each test slice is predicted by the mean of the nearest *training* slice below and the
    nearest above it (by slice index; the one there is at an end of the stack). Where the
    training slices interleave with the test slices, this needs no model at all, so an SR
    model scored there must beat it to show that it learned more than the neighbours.

    Parameters
    ----------
    hr : np.ndarray
        HR slices ``(N, H, W)`` named `names` (``slice_XXXXX`` with any suffix).
    test_names, train_names : list of str
        The split's slices (suffixes may differ from `names`).

    Returns
    -------
    (images, neighbours)
        Predictions ``(len(test_names), H, W)`` and the names of the slices averaged.
    """
    by_index = {_index(n): i for i, n in enumerate(names)}
    train = sorted(_index(n) for n in train_names if _index(n) in by_index)
    if not train:
        raise DataError("neighbour average: no training slice among the HR slices")
    out, used = [], []
    for name in test_names:
        k = _index(name)
        below = [t for t in train if t < k]
        above = [t for t in train if t > k]
        pick = ([below[-1]] if below else []) + ([above[0]] if above else [])
        out.append(np.mean([hr[by_index[t]] for t in pick], axis=0))
        used.append(tuple(names[by_index[t]] for t in pick))
    return np.stack(out).astype(np.float32), used


def sr_slice_metrics(
    volume_dir: str | os.PathLike,
    names: list[str] | None = None,
    ssim_window: str = "gaussian",
    train_names: list[str] | None = None,
) -> pd.DataFrame:
    """Per-slice PSNR and SSIM (data range 1) of ``sr/`` and ``lr/`` (bicubic) against ``hr/``.

    The ``protocol`` column says whether the model was trained on other slices of the same
    specimen (``within-specimen``: the volume's ``fold`` is None) or on other specimens
    (``held-out specimen``). Within a specimen, with `train_names` (the split's training
    slices), rows of the :func:`neighbour_average` baseline (method ``neighbour_average``)
    stand beside the model's.

    `names` (e.g. the test split's PNG names) selects slices; those absent from the volume
    (no LR partner in a real pair) are skipped with a warning. ``None`` scores all slices.
    `ssim_window` is ``"gaussian"`` (Wang et al., sigma 1.5, as in SR papers) or
    ``"uniform"`` (scikit-image's 7x7 default); the ``convention`` column names it.
    """
    convention = sr_convention(ssim_window)
    volume_dir = Path(volume_dir)
    meta = read_json(volume_dir / "meta.json")
    if not (volume_dir / "hr").is_dir():
        raise DataError(f"{volume_dir}: no hr/ reference slices to compare with")
    if names is not None:
        # real pairs: HR slices without an LR partner are not in the volume
        present = {Path(n).stem for n in slice_names(volume_dir / "hr")}
        kept = [n for n in names if Path(n).stem in present]
        if len(kept) < len(names):
            log.warning(
                "%s: %d of %d slices absent", volume_dir, len(names) - len(kept), len(names)
            )
        if not kept:
            raise DataError(f"{volume_dir}: none of the {len(names)} requested slices is present")
        names = kept
    hr, chosen = read_stack(volume_dir / "hr", names)
    within = meta.get("fold") is None
    images = {"srgan": read_stack(volume_dir / "sr", chosen)[0]}
    images["bicubic"] = read_stack(volume_dir / "lr", chosen)[0]
    if within and train_names:
        all_hr, all_names = read_stack(volume_dir / "hr")
        images["neighbour_average"] = neighbour_average(all_hr, all_names, chosen, train_names)[0]
    rows = []
    for method, img in images.items():
        p = psnr(hr, img, data_range=1.0)
        s = ssim(hr, img, data_range=1.0, window=ssim_window)
        for name, pv, sv in zip(chosen, p, s, strict=True):
            rows.append(
                {
                    "scan": meta["scan"],
                    "preset": meta["preset"] if method == "srgan" else method,
                    "scale": meta["scale"],
                    "method": method,
                    "fold": meta.get("fold"),
                    "protocol": WITHIN_SPECIMEN if within else HELD_OUT,
                    "slice": name,
                    "psnr": float(pv),
                    "ssim": float(sv),
                    "seed": meta.get("seed"),
                    "convention": convention,
                }
            )
    return pd.DataFrame(rows)


def summarize_sr_metrics(per_slice: pd.DataFrame) -> pd.DataFrame:
    """Mean and (population) standard deviation of PSNR/SSIM per scan, preset and scale.

    Bicubic rows, identical for every preset of a scale, are kept once per scan and scale.
    """
    df = per_slice.drop_duplicates(subset=["scan", "preset", "scale", "slice"])
    grouped = df.groupby(["scan", "scale", "method", "preset"], sort=True, dropna=False)
    table = grouped.agg(
        n_slices=("psnr", "size"),
        psnr_mean=("psnr", "mean"),
        psnr_std=("psnr", lambda x: float(np.std(x))),
        ssim_mean=("ssim", "mean"),
        ssim_std=("ssim", lambda x: float(np.std(x))),
        seed=("seed", "first"),
        convention=("convention", "first"),
        **({"protocol": ("protocol", "first")} if "protocol" in df else {}),
    ).reset_index()
    return table[
        [
            "scan",
            "preset",
            "scale",
            "method",
            *(["protocol"] if "protocol" in table else []),
            "n_slices",
            "psnr_mean",
            "psnr_std",
            "ssim_mean",
            "ssim_std",
            "seed",
            "convention",
        ]
    ]


def cv_sr_table(per_slice: pd.DataFrame) -> pd.DataFrame:
    """Cross-validation summary: one row per fold and method/preset/scale, plus pooled rows.

    Pooled rows (``fold`` = ``pooled``) average over every held-out slice of every fold,
    so each slice weighs the same whatever its fold's size.
    """
    df = per_slice.drop_duplicates(subset=["scan", "preset", "scale", "slice"]).copy()
    df["fold"] = df["fold"].astype("Int64").astype(str)
    pooled = df.assign(fold="pooled", scan="+".join(sorted(df["scan"].unique())))
    rows = []
    for data in (df, pooled):
        grouped = data.groupby(["fold", "scale", "method", "preset"], sort=True)
        for (fold, scale, method, preset), g in grouped:
            rows.append(
                {
                    "fold": fold,
                    "scans": "+".join(sorted(g["scan"].unique())),
                    "preset": preset,
                    "scale": scale,
                    "method": method,
                    "n_slices": len(g),
                    "psnr_mean": float(g["psnr"].mean()),
                    "psnr_std": float(np.std(g["psnr"])),
                    "ssim_mean": float(g["ssim"].mean()),
                    "ssim_std": float(np.std(g["ssim"])),
                    "seed": g["seed"].iloc[0],
                    "convention": "; ".join(sorted(g["convention"].unique())),
                }
            )
    return pd.DataFrame(rows)

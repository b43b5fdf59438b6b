"""The study's image sets (generators and baselines) and their in-sample criteria table.

:func:`gather_sets` reads a results tree: the real slices at the smallest PNG size, split
into training slices (the split manifest's ``train`` list, which the WGAN-GP trained on;
a seeded split where there is none) and held-out slices (the rest), each WGAN-GP's samples
at that size (a larger size area-averaged down to it), and the baselines of
:func:`tomosynth.metrics.criteria.baseline_sets`. :func:`sets_table` measures every set
with :func:`tomosynth.metrics.criteria.set_criteria`; :func:`write_sets` commits the
images (uint8 PNG) beside the table, and :func:`check_sets` recomputes the table from
them (``tomosynth study-check docs/study``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from tomosynth.errors import DataError
from tomosynth.io import atomic_dir, list_pngs, read_json, read_png_stack, write_png
from tomosynth.metrics.criteria import BASELINES, baseline_sets, reference, set_criteria, split_real
from tomosynth.resample import area

__all__ = [
    "IMAGES",
    "TABLE",
    "check_sets",
    "gather_sets",
    "read_sets",
    "sets_markdown",
    "sets_table",
    "write_sets",
]

#: Where the sets' PNGs and the long criteria table live in a study folder.
IMAGES = "images"
TABLE = "criteria_sets.csv"
#: Relative tolerance of :func:`check_sets` (float noise of the SSIM and FFT sums).
RTOL = 1e-6


def _sizes(results: Path, scan: str) -> list[int]:
    found = []
    for p in (results / "samples" / "wgan_gp").glob(f"{scan}_*px"):
        name = p.name[len(scan) + 1 : -2]
        if p.is_dir() and name.isdigit():
            found.append(int(name))
    return sorted(found)


def _read(folder: Path) -> np.ndarray:
    return read_png_stack(folder, [p.name for p in list_pngs(folder)])


def gather_sets(
    results: str | os.PathLike, scan: str = "shale", n: int = 100, seed: int = 0
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Every set of the criteria table (uint8 ``(n, s, s)`` at the smallest size) and its label.

    Order: the generators (smallest size first), then (a)-(e) of
    :data:`tomosynth.metrics.criteria.BASELINES`. `n` and `seed` size and seed the noise
    baselines (a) and (b); (c) and (d) hold every training slice.
    """
    root = Path(results)
    sizes = _sizes(root, scan)
    if not sizes:
        raise DataError(f"{root}/samples/wgan_gp: no {scan}_<size>px sample folders")
    low = sizes[0]
    real_dir = root / "png" / scan / f"{low}px"
    names = [p.name for p in list_pngs(real_dir)]
    split_json = root / "png" / scan / "split.json"
    if split_json.is_file():
        train_names = sorted(set(read_json(split_json).get("train", [])) & set(names))
        held_names = sorted(set(names) - set(train_names))
    else:
        train_names, held_names = split_real(names, seed, 0.2)
    if len(train_names) < 2 or len(held_names) < 2:
        raise DataError(
            f"{split_json}: need at least 2 training and 2 held-out slices in {real_dir}, got "
            f"{len(train_names)} and {len(held_names)}"
        )
    train = read_png_stack(real_dir, train_names)
    held = read_png_stack(real_dir, held_names)
    sets: dict[str, np.ndarray] = {}
    labels: dict[str, str] = {}
    for size in sizes:
        folder = root / "samples" / "wgan_gp" / f"{scan}_{size}px"
        if not any(folder.glob("*.png")):
            continue
        imgs = _read(folder)
        key, label = f"gan_{size}px", f"{size} px GAN"
        if size != low:
            imgs = np.clip(np.rint(area(imgs.astype(np.float32), low)), 0, 255).astype(np.uint8)
            key, label = f"gan_{size}px_at_{low}px", f"{size} px GAN (area to {low} px)"
        sets[key], labels[key] = imgs, label
    base = baseline_sets(train, held, n=n, seed=seed)
    for key, label in BASELINES.items():
        sets[key], labels[key] = base[key], label
    return sets, labels


def sets_table(sets: dict[str, np.ndarray], labels: dict[str, str]) -> pd.DataFrame:
    """Long table ``set, label, n_images, criterion, value, threshold, passed`` of every set,
    against the reference of the ``training`` and ``heldout`` sets."""
    if "training" not in sets or "heldout" not in sets:
        raise DataError("the sets need 'training' and 'heldout' (the criteria's reference)")
    ref = reference(sets["training"], sets["heldout"])
    rows = []
    for key, imgs in sets.items():
        for row in set_criteria(imgs, ref):
            rows.append({"set": key, "label": labels.get(key, key), "n_images": len(imgs), **row})
    return pd.DataFrame(rows)


def write_sets(sets: dict[str, np.ndarray], out_dir: str | os.PathLike) -> list[Path]:
    """Each set as ``{out_dir}/images/{set}/slice_XXXXX.png`` (uint8), one folder per set."""
    written = []
    for key, imgs in sets.items():
        dst = Path(out_dir) / IMAGES / key
        with atomic_dir(dst) as tmp:
            for i, img in enumerate(imgs):
                write_png(tmp / f"slice_{i:05d}.png", np.asarray(img, dtype=np.uint8))
        written.append(dst)
    return written


def read_sets(out_dir: str | os.PathLike, keys: list[str]) -> dict[str, np.ndarray]:
    """The sets `keys` back from ``{out_dir}/images/``."""
    return {k: read_png_stack(Path(out_dir) / IMAGES / k) for k in keys}


def _differs(a, b) -> bool:
    if isinstance(a, bool | np.bool_) or isinstance(b, bool | np.bool_):
        return str(a).lower() != str(b).lower()
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) != math.isnan(b)
    return not math.isclose(a, b, rel_tol=RTOL, abs_tol=1e-9)


def check_sets(out_dir: str | os.PathLike) -> list[str]:
    """Recompute the criteria table of a study folder from its images; the mismatches.

    Returns one line per mismatching (set, criterion) or missing row; empty when the
    committed ``criteria_sets.csv`` is what the images give.
    """
    out = Path(out_dir)
    table_csv = out / TABLE
    if not table_csv.is_file():
        raise DataError(f"{table_csv}: no criteria table (run `tomosynth study-report`)")
    committed = pd.read_csv(table_csv)
    keys = list(dict.fromkeys(committed["set"]))
    labels = dict(zip(committed["set"], committed["label"], strict=True))
    fresh = sets_table(read_sets(out, keys), labels)
    problems = []
    old = {(r.set, r.criterion): r for r in committed.itertuples()}
    new = {(r.set, r.criterion): r for r in fresh.itertuples()}
    for key in sorted(set(old) | set(new), key=str):
        if key not in old or key not in new:
            problems.append(
                f"set {key[0]}: criterion {key[1]!r} only in the {'recomputed' if key in new else 'committed'} table"
            )
            continue
        o, n = old[key], new[key]
        for col in ("value", "passed", "n_images"):
            if _differs(getattr(o, col), getattr(n, col)):
                problems.append(
                    f"set {key[0]}: criterion {key[1]!r}: {col} committed {getattr(o, col)}, "
                    f"recomputed {getattr(n, col)}"
                )
        if str(o.threshold) != str(n.threshold):
            problems.append(
                f"set {key[0]}: criterion {key[1]!r}: threshold committed {o.threshold!r}, "
                f"recomputed {n.threshold!r}"
            )
    return problems


def sets_markdown(table: pd.DataFrame) -> str:
    """The criteria table as Markdown: one row per criterion, one column per set
    (value, and **fail** where the set fails it), the threshold last."""
    keys = list(dict.fromkeys(table["set"]))
    labels = dict(zip(table["set"], table["label"], strict=True))
    crits = list(dict.fromkeys(table["criterion"]))
    lines = [
        "| criterion | " + " | ".join(labels[k] for k in keys) + " | threshold |",
        "|---|" + "---|" * (len(keys) + 1),
    ]
    cell = {(r.set, r.criterion): r for r in table.itertuples()}
    for c in crits:
        vals = []
        for k in keys:
            r = cell.get((k, c))
            vals.append("" if r is None else f"{r.value:.3g}" + ("" if r.passed else " **fail**"))
        thr = next(cell[(k, c)].threshold for k in keys if (k, c) in cell)
        lines.append(f"| {c} | " + " | ".join(vals) + f" | {thr} |")
    n_pass = [int(table[table["set"] == k]["passed"].sum()) for k in keys]
    lines.append(
        "| **passed** | " + " | ".join(f"{p} of {len(crits)}" for p in n_pass) + " | all |"
    )
    return "\n".join(lines) + "\n"

# SPDX-License-Identifier: BSD-3-Clause
"""Checks of a scan that a reconstruction would otherwise survive without a word.

- Angles (`check_angles`): a stalled rotation stage repeats one angle for many projections;
  FBP then weighs that direction many times and leaves wedges of missing directions (the
  issue-21 scan with 30 % of its projections at one angle correlated with its phantom at
  r 0.28). Repeated angles above `MAX_REPEAT_FRACTION` stop the run; gaps wider than
  `GAP_STEPS` angular steps are logged as warnings naming the missing range.
- Detector rows (`check_rows`): one saturated or over-flat detector row (transmission above
  1 across the row, e.g. an int16 row clipped above its flats) gives one wrong slice while
  the chunk means look normal. Rows are checked one by one as each chunk is read; the
  config key ``recon.bad_rows`` chooses: ``error`` stops naming the rows, ``mask`` replaces
  each bad row by its nearest good detector row (read again, so the result does not depend
  on the chunking) and logs which; `check_rows` returns the masked rows, which
  ``recon.json`` records (``bad_rows.masked``: row, reason, replacement row).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import numpy as np

from tomosynth.errors import ConfigError, DataError
from tomosynth.io import Projections, row_stats

__all__ = [
    "BAD_ROW_POLICIES",
    "bad_detector_rows",
    "check_angles",
    "check_rows",
]

_log = logging.getLogger("tomosynth.recon")

#: Largest fraction of projections whose angle repeats another one (a stalled stage above it).
MAX_REPEAT_FRACTION = 0.02
#: A gap between neighbouring angles wider than this many median steps is reported.
GAP_STEPS = 3.0
#: A detector row whose mean transmission exceeds this is over-flat (brighter than its flats).
MAX_ROW_TRANSMISSION = 1.1
#: A row with more than this fraction of its pixels at one clipped maximum is saturated.
MAX_PLATEAU_FRACTION = 0.5
#: Policies of ``recon.bad_rows``.
BAD_ROW_POLICIES = ("error", "mask")
#: How far (rows) `check_rows` looks for a good row to replace a masked one.
_MASK_SEARCH = 8


def _runs(indices: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive runs ``(first, last)`` of sorted integer `indices`."""
    runs: list[tuple[int, int]] = []
    for i in indices.tolist():
        if runs and i == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def _span_text(runs: list[tuple[int, int]], limit: int = 3) -> str:
    text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:limit])
    return text + (f" (+{len(runs) - limit} more ranges)" if len(runs) > limit else "")


def check_angles(path: str | os.PathLike, theta_rad: np.ndarray) -> list[str]:
    """Stop on repeated (stuck) angles; warn about gaps in the angular coverage.

    Parameters
    ----------
    path : path-like
        The scan (named in the messages).
    theta_rad : np.ndarray
        (angles,) projection angles in radians, in file order.

    Returns
    -------
    list of str
        The warnings (also logged): one per gap wider than `GAP_STEPS` median steps,
        naming the missing range in degrees and the projections on either side.

    Raises
    ------
    DataError
        More than ``max(1, MAX_REPEAT_FRACTION * angles)`` projections repeat an earlier
        angle (within 1e-6 rad, modulo 360 degrees), naming the largest group's angle and
        its projection indices.
    """
    theta = np.asarray(theta_rad, dtype=np.float64).ravel()
    n = theta.size
    key = np.round(np.mod(theta, 2 * np.pi), 6)
    values, first, inverse, counts = np.unique(
        key, return_index=True, return_inverse=True, return_counts=True
    )
    n_repeat = n - values.size
    if n_repeat > max(1, MAX_REPEAT_FRACTION * n):
        worst = int(np.argmax(counts))
        where = np.flatnonzero(inverse == worst)
        raise DataError(
            f"{path}: {n_repeat} of {n} projections repeat an earlier angle (at most "
            f"{max(1, int(MAX_REPEAT_FRACTION * n))} allowed); {counts[worst]} projections "
            f"(indices {_span_text(_runs(where))}) all have {np.rad2deg(theta[where[0]]):.4g} "
            "degrees: a stalled rotation stage? FBP cannot use them; fix /exchange/theta or "
            "drop those projections"
        )
    order = np.argsort(theta, kind="stable")
    steps = np.diff(theta[order])
    steps_pos = steps[steps > 1e-9]
    if steps_pos.size == 0:
        return []
    median = float(np.median(steps_pos))
    warnings = []
    for k in np.flatnonzero(steps > GAP_STEPS * median):
        lo, hi = int(order[k]), int(order[k + 1])
        line = (
            f"{path}: no projections between {np.rad2deg(theta[lo]):.4g} and "
            f"{np.rad2deg(theta[hi]):.4g} degrees (projections {lo} and {hi}; a gap of "
            f"{steps[k] / median:.3g} angular steps of {np.rad2deg(median):.3g} degrees): "
            "the slices will show streaks along the missing directions"
        )
        _log.warning(line)
        warnings.append(line)
    return warnings


def bad_detector_rows(p: Projections) -> dict[int, str]:
    """Detector rows (absolute indices) of chunk `p` that are saturated or over-flat.

    A row is over-flat when its mean dark-corrected projection exceeds
    `MAX_ROW_TRANSMISSION` times its mean dark-corrected flat (the whole row brighter than
    the open beam), saturated when more than `MAX_PLATEAU_FRACTION` of its projection
    pixels sit at one value that is the chunk's maximum and at least its flat level (a
    clipped detector). Returns row -> reason.
    """
    stats = p.stats if p.stats is not None else row_stats(p.data, p.flat, p.dark)
    dark = stats.dark
    beam = stats.flat - dark
    signal = stats.data - dark
    top = float(stats.data_max.max())
    bad: dict[int, str] = {}
    per_row = p.data.shape[0] * p.data.shape[2]
    for i in range(p.data.shape[1]):
        row = p.rows[0] + i
        ratio = signal[i] / beam[i] if beam[i] > 0 else np.inf
        # only rows that reach the chunk's maximum can have pixels at it
        at_top = np.count_nonzero(p.data[:, i, :] == top) if stats.data_max[i] == top else 0
        plateau = at_top / per_row
        if plateau > MAX_PLATEAU_FRACTION and top >= beam[i] + dark[i]:
            bad[row] = f"saturated: {100 * plateau:.0f}% of its pixels at {top:.6g} counts"
        elif ratio > MAX_ROW_TRANSMISSION:
            bad[row] = f"transmission {ratio:.3g} (brighter than its flats)"
    return bad


def check_rows(
    p: Projections,
    path: str | os.PathLike,
    policy: str,
    read: Callable[[int, int], Projections],
) -> tuple[Projections, list[dict]]:
    """Apply ``recon.bad_rows`` to the chunk `p` just read (see the module docstring).

    Parameters
    ----------
    p : Projections
        The chunk.
    path : path-like
        The scan (named in the messages).
    policy : {"error", "mask"}
        ``error``: DataError naming every bad row of the chunk and why. ``mask``: each bad
        row's counts are replaced by those of the nearest good row (below first, within
        8 rows), read with `read(a, b)`; a warning names both.
    read : callable
        Reads detector rows ``[a, b)`` of the scan as `Projections`.

    Returns
    -------
    Projections
        `p` itself, with masked rows replaced.
    list of dict
        The masked rows, ``{"row", "reason", "replaced_by"}`` (detector row indices), in
        row order; empty when none was bad.
    """
    if policy not in BAD_ROW_POLICIES:
        raise ConfigError(f"recon.bad_rows: {policy!r} is not one of {BAD_ROW_POLICIES}")
    bad = bad_detector_rows(p)
    if not bad:
        return p, []
    listing = "; ".join(f"row {r}: {why}" for r, why in sorted(bad.items())[:5])
    more = f" (+{len(bad) - 5} more)" if len(bad) > 5 else ""
    if policy == "error":
        raise DataError(
            f"{path}: detector rows saturated or brighter than the flats ({listing}{more}); "
            "their slices would be wrong: set recon.bad_rows: mask to replace them by the "
            "nearest good row, or fix the scan"
        )
    masked = []
    for row in sorted(bad):
        good = _nearest_good_row(row, p, read)
        if good is None:
            raise DataError(
                f"{path}: detector row {row} is bad ({bad[row]}) and so are its neighbours "
                f"within {_MASK_SEARCH} rows: nothing to mask it with; fix the scan"
            )
        i = row - p.rows[0]
        p.data[:, i], p.flat[:, i], p.dark[:, i] = good.data[:, 0], good.flat[:, 0], good.dark[:, 0]
        p.stats = None  # the counts changed
        _log.warning(
            "%s: masked detector row %d (%s) with row %d", path, row, bad[row], good.rows[0]
        )
        masked.append({"row": int(row), "reason": bad[row], "replaced_by": int(good.rows[0])})
    return p, masked


def _nearest_good_row(
    row: int, p: Projections, read: Callable[[int, int], Projections]
) -> Projections | None:
    """The nearest detector row to `row` that is not bad, as a one-row `Projections`."""
    for dist in range(1, _MASK_SEARCH + 1):
        for cand in (row - dist, row + dist):
            if cand < 0:
                continue
            try:
                one = read(cand, cand + 1)
            except DataError:
                continue  # outside the scan or its range, or itself unreadable
            if not bad_detector_rows(one):
                return one
    return None

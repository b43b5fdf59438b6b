# SPDX-License-Identifier: BSD-3-Clause
"""JSON and CSV files, written atomically, read with a one-line error."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tomosynth.errors import DataError
from tomosynth.io.atomic import atomic_file, permission_message


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as indented JSON, atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_csv(path: str | os.PathLike, table: Any, float_format: str | None = None) -> None:
    """Write a pandas DataFrame as CSV without its index, atomically (parent made if absent).

    `float_format` (e.g. ``"%.6g"``) is pandas' ``to_csv`` option; ``None`` writes full
    precision.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        table.to_csv(tmp, index=False, float_format=float_format)


def read_json(path: str | os.PathLike, rule: str | None = None) -> Any:
    """Read a JSON file; DataError naming it when it is unreadable or not JSON.

    `rule`: the Snakemake rule that writes the file, named in the fix.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except PermissionError as exc:
        raise DataError(permission_message(path)) from exc
    try:
        return json.loads(data.decode("utf-8"))
    except ValueError as exc:
        fix = f"snakemake --forcerun {rule}, or delete it" if rule else "delete it"
        raise DataError(
            f"{path}: damaged, not valid JSON ({exc}); regenerate it: {fix} and run snakemake again"
        ) from exc

"""Snakemake's linter and snakefmt accept the whole workflow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_snakemake_lint_clean():
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout + proc.stderr
    # Snakemake exits 1 and lists "Lints for rule ..." when it finds anything.
    assert proc.returncode == 0 and "Lints for" not in out, out[-6000:]


def test_snakefmt_clean():
    snakefmt = Path(sys.executable).with_name("snakefmt")
    rule_files = sorted((REPO / "workflow").rglob("*.smk"))
    assert rule_files, "no rule files under workflow/"
    proc = subprocess.run(
        [str(snakefmt), "--check", "--diff", "Snakefile", *map(str, rule_files)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, (
        "snakefmt would reformat (run `snakefmt Snakefile workflow/rules`):\n"
        + (proc.stdout + proc.stderr)[-6000:]
    )

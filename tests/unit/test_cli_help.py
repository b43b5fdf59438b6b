"""The ``tomosynth`` command's help: shown with no arguments, free of reST markup."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess:
    code = "import sys; from tomosynth.cli import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_no_arguments_prints_the_help():
    out = _run()
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: tomosynth")
    assert "verify" in out.stdout and "study-report" in out.stdout


def test_help_has_no_rest_backticks():
    for args in (["--help"], ["verify", "--help"], ["study-report", "--help"]):
        out = _run(*args)
        assert out.returncode == 0, (args, out.stderr)
        assert "`" not in out.stdout, (args, out.stdout)
        assert "usage: tomosynth" in out.stdout


def test_cli_does_not_import_torch():
    # `tomosynth verify` and the study commands read tables and images: importing torch
    # (5-8 s) for their help or a manifest check would be all of their start-up time.
    code = "import sys, tomosynth.cli; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"

"""Interrupted runs: a training notices Snakemake is gone, SIGINT to Snakemake reaches jobs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tomosynth.jobs import descendants
from tomosynth.train.common import StopSignal

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


def test_stop_signal_requests_a_stop_when_the_watched_process_ends():
    proc = subprocess.Popen(["sleep", "30"])
    try:
        with StopSignal(watch_pid=proc.pid, poll_s=0.05) as stop:
            time.sleep(0.2)
            assert not stop.requested
            proc.kill()
            proc.wait()
            deadline = time.monotonic() + 5
            while not stop.requested and time.monotonic() < deadline:
                time.sleep(0.05)
        assert stop.requested and stop.signum == signal.SIGHUP
    finally:
        proc.kill()


def test_stop_signal_catches_sigint():
    with StopSignal() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
    assert stop.requested and stop.signum == signal.SIGINT


def test_watch_pid_skips_the_shell_between_job_and_snakemake(tmp_path):
    out = tmp_path / "pid"
    code = f"from tomosynth.jobs import watch_pid; open({str(out)!r}, 'w').write(str(watch_pid()))"
    # `sh -c "cmd; python ..."` keeps the shell (as conda activation does)
    subprocess.run(
        ["sh", "-c", f'true; {sys.executable} -c "{code}"'],
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert int(out.read_text()) == os.getpid()
    # started directly (no shell in between), the job watches its own parent
    subprocess.run(
        [sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    assert int(out.read_text()) == os.getpid()


PARENT = textwrap.dedent(
    """
    import subprocess, sys, time
    from tomosynth.jobs import forward_interrupt_to_jobs
    forward_interrupt_to_jobs()
    child = subprocess.Popen(["sh", "-c", "true; " + sys.executable + " child.py"])
    try:
        child.wait()
    except KeyboardInterrupt:
        child.wait()
        print("interrupted, child exit", child.returncode, flush=True)
    """
)
CHILD = textwrap.dedent(
    """
    import signal, sys, time, pathlib
    got = []
    signal.signal(signal.SIGTERM, lambda s, f: got.append(s))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pathlib.Path("ready").write_text("1")
    while not got:
        time.sleep(0.05)
    sys.exit(75)
    """
)


def test_sigint_to_the_parent_sends_sigterm_to_its_jobs(tmp_path):
    (tmp_path / "child.py").write_text(CHILD)
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not (tmp_path / "ready").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert descendants(parent.pid), "the job process is not below the parent"
    parent.send_signal(signal.SIGINT)  # only the parent, as `kill -INT <snakemake pid>`
    out, _ = parent.communicate(timeout=30)
    assert "interrupted, child exit 75" in out

"""How rule jobs learn that Snakemake was interrupted.

Snakemake 9 runs a local script job as a child process (``/bin/sh -c "python script.py"``,
the shell usually replaced by Python; with ``--sdm conda`` the shell stays) in Snakemake's
own process group. Ctrl-C in a terminal therefore reaches the job as well, but
``kill -INT <snakemake pid>`` does not: Snakemake then waits for its running jobs, a training
runs to the end of its budget, and the outputs are marked incomplete. After ``kill -9`` of
Snakemake the job keeps running, orphaned. Two pieces close these gaps:

- :func:`forward_interrupt_to_jobs` (called when the workflow is parsed) makes SIGINT to
  Snakemake send SIGTERM to every process below it, before Snakemake's own handling;
- :func:`watch_pid` (called by the scripts' bootstrap) names the Snakemake process, which
  `tomosynth.train.common.StopSignal` polls: when it is gone, the training saves
  ``latest.pt`` and stops, as on SIGTERM.

Linux only (``/proc``); elsewhere both do nothing.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import FrameType
from typing import Any

#: Environment variable holding the pid a job watches (the Snakemake process that started it).
WATCH_ENV = "TOMOSYNTH_WATCH_PID"
_SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "busybox"}


def _stat(pid: int) -> tuple[str, str, int] | None:
    """(command name, state, parent pid) of `pid` from /proc, None if unavailable."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = text[text.find("(") + 1 : text.rfind(")")]
    state, ppid = text[text.rfind(")") + 2 :].split()[:2]
    return name, state, int(ppid)


def pid_alive(pid: int) -> bool:
    """True if process `pid` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    st = _stat(pid)
    return st is None or st[1] != "Z"


def watch_pid() -> int | None:
    """Pid of the process that started this job: the parent, skipping shells in between."""
    pid = os.getppid()
    for _ in range(4):
        st = _stat(pid)
        if st is None:
            return None
        name, _, ppid = st
        if name not in _SHELLS or ppid <= 1:
            return pid
        pid = ppid
    return pid


def descendants(pid: int) -> list[int]:
    """Pids of every process below `pid` (children first), from /proc."""
    children: dict[int, list[int]] = {}
    try:
        entries = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    except OSError:
        return []
    for child in entries:
        st = _stat(child)
        if st is not None:
            children.setdefault(st[2], []).append(child)
    out, frontier = [], [pid]
    while frontier:
        for child in children.get(frontier.pop(), []):
            out.append(child)
            frontier.append(child)
    return out


def forward_interrupt_to_jobs() -> bool:
    """On SIGINT, send SIGTERM to every process below this one (shells excepted), then
    interrupt as before.

    Training jobs catch SIGTERM, save ``latest.pt`` and exit, so Snakemake stops promptly
    and a rerun resumes. Returns False where no handler can be installed (not the main
    thread).
    """
    previous: Any = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: FrameType | None) -> None:
        for child in descendants(os.getpid()):
            st = _stat(child)
            if st is None or st[0] in _SHELLS:
                continue  # a shell waits for its job and passes on its exit status
            try:
                os.kill(child, signal.SIGTERM)
            except OSError:
                pass
        if callable(previous):
            previous(signum, frame)
        else:
            raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGINT, handler)
    except ValueError:
        return False
    return True


#: Snakemake options of a run that writes nothing in its folder (no clash with a running one).
_READ_ONLY = {
    "-n",
    "--dry-run",
    "--dryrun",
    "--lint",
    "--list",
    "-l",
    "--summary",
    "-S",
    "--detailed-summary",
    "-D",
    "--dag",
    "--rulegraph",
    "--filegraph",
    "--version",
    "-v",
    "--help",
    "-h",
    "--list-target-rules",
    "--lt",
    "--list-changes",
    "--lc",
}


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]


def is_snakemake_run(args: list[str]) -> bool:
    """Whether `args` start a Snakemake run that writes into its folder: ``snakemake ...``,
    ``python -m snakemake ...`` or ``python .../bin/snakemake ...``, but not a job Snakemake
    starts itself (``--mode``), nor a dry run, lint, summary or ``--unlock``."""
    if not args:
        return False
    head = [Path(a).name for a in args[:2]]
    main = "snakemake" in head or args[1:3] == ["-m", "snakemake"]
    return main and "--mode" not in args and not read_only(args)


def read_only(args: list[str]) -> bool:
    """Whether Snakemake options `args` make a run that writes nothing (dry run, lint,
    summary, ``--unlock``, ...)."""
    flags = {a.split("=")[0] for a in args if a.startswith("-")}
    short = {f"-{c}" for a in args if a.startswith("-") and not a.startswith("--") for c in a[1:]}
    return "--unlock" in flags or bool((flags | short) & _READ_ONLY)


def other_runs(folder: str | os.PathLike) -> list[int]:
    """Pids of other Snakemake runs working in `folder` (their current directory; Snakemake
    changes into ``--directory``), not this process, its parents or another run's children."""
    folder = os.path.realpath(folder)
    mine = {os.getpid()}
    pid = os.getpid()
    for _ in range(16):
        st = _stat(pid)
        if st is None or st[2] <= 1:
            break
        pid = st[2]
        mine.add(pid)
    found = []
    try:
        pids = sorted(int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit())
    except OSError:
        return []
    for pid in pids:
        if pid in mine or not is_snakemake_run(_cmdline(pid)):
            continue
        try:
            if os.path.realpath(os.readlink(f"/proc/{pid}/cwd")) != folder:
                continue
        except OSError:
            continue
        found.append(pid)
    nested = {c for p in found for c in descendants(p)}
    return [p for p in found if p not in nested]


def in_use_message(folder: str | os.PathLike) -> str | None:
    """One line when another Snakemake run works in `folder` (None when it is free)."""
    pids = other_runs(folder)
    if not pids:
        return None
    cmd = " ".join(_cmdline(pids[0]))
    cmd = cmd if len(cmd) <= 100 else cmd[:97] + "..."
    return (
        f"{os.path.realpath(folder)} is in use by another Snakemake run (pid {pids[0]}: {cmd}); "
        "two runs in one folder would write the same files: wait for it to finish, stop it "
        f"(kill -INT {pids[0]}), or run this one in another folder (--directory)"
    )


__all__ = [
    "WATCH_ENV",
    "descendants",
    "forward_interrupt_to_jobs",
    "in_use_message",
    "is_snakemake_run",
    "other_runs",
    "pid_alive",
    "watch_pid",
]

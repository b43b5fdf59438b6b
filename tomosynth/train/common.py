"""Shared training plumbing: device, seeds, RNG state, atomic checkpoints, stop signals,
wall-clock budget, the per-epoch CSV log, the resume policy (:class:`ResumableRun`) and the
one driver of every trainer (:func:`run_training` over a :class:`TrainingRun`)."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
import os
import random
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import torch

# Re-exported for the training loops: the device and checkpoint helpers live below the models.
from tomosynth.checkpoint import load_checkpoint, save_checkpoint  # noqa: F401
from tomosynth.device import (  # noqa: F401
    cuda_diagnostics,
    device_name,
    gpu_job_requires_cuda,
    nvidia_driver,
    select_device,
)
from tomosynth.errors import ConfigError, DataError
from tomosynth.io import atomic_file
from tomosynth.jobs import WATCH_ENV, pid_alive
from tomosynth.provenance import package_versions  # noqa: F401

#: Exit status of a training script stopped by a signal after checkpointing (``EX_TEMPFAIL``):
#: "try again", the next run resumes from ``latest.pt``.
EXIT_PREEMPTED = 75
#: Default wall-clock minutes between ``latest.pt`` checkpoints, checked at each epoch's end:
#: a kill -9 loses at most about this or one epoch, whichever is longer.
DEFAULT_CHECKPOINT_MINUTES = 2.0


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and CUDA) global generators."""
    if not 0 <= int(seed) < 2**32:
        raise ConfigError(f"seed: must be in [0, 2**32), got {seed}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def rng_state() -> dict:
    """Snapshot of the Python, NumPy, torch CPU and (when present) CUDA generator states.

    Only tensors, ints, floats, strings, lists and tuples, so the snapshot loads with
    ``torch.load(weights_only=True)``.
    """
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore a snapshot made by :func:`rng_state` (the CUDA part only where CUDA is present)."""
    py = state["python"]
    # torch.load may turn the inner tuple into a list; random.setstate wants tuples.
    random.setstate((py[0], tuple(py[1]), py[2]))
    nps = state["numpy"]
    np.random.set_state(
        (
            nps["name"],
            np.asarray(nps["keys"].numpy(), dtype=np.uint32),
            nps["pos"],
            nps["has_gauss"],
            nps["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda = [s.cpu() for s in state["cuda"]]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


class StopRequested(Exception):
    """Raised by a training loop after it saved its checkpoint because a stop signal came in."""

    def __init__(self, message: str = "stop requested", signum: int | None = None) -> None:
        super().__init__(message)
        self.signum = signum


class StopSignal:
    """Context manager catching SIGTERM and SIGUSR1 (SLURM time limit / preemption) and
    SIGINT (Ctrl-C), and watching the Snakemake process that started the job.

    Inside the ``with`` block a signal only sets :attr:`requested`; the training loop checks it
    at a safe point, saves a checkpoint and raises :class:`StopRequested`. The previous
    handlers are restored on exit. Outside the main thread no handlers can be installed and
    the flag is only set through :meth:`request` (used by tests).

    Parameters
    ----------
    watch_pid : int, optional
        A process whose end also requests a stop (reported as SIGHUP), checked every
        `poll_s` seconds; by default the pid in ``TOMOSYNTH_WATCH_PID`` (set by the rule
        scripts' bootstrap to the Snakemake process), so that a job orphaned by ``kill -9``
        of Snakemake checkpoints and exits instead of training on unseen.
    poll_s : float
        Seconds between checks of `watch_pid`.
    """

    SIGNALS = tuple(
        s
        for s in (
            getattr(signal, "SIGTERM", None),
            getattr(signal, "SIGUSR1", None),
            getattr(signal, "SIGINT", None),
        )
        if s
    )

    def __init__(self, watch_pid: int | None = None, poll_s: float = 1.0) -> None:
        self.requested = False
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}
        env = os.environ.get(WATCH_ENV, "")
        self.watch_pid = (
            watch_pid if watch_pid is not None else (int(env) if env.isdigit() else None)
        )
        self.poll_s = float(poll_s)
        self._done = threading.Event()
        self._watcher: threading.Thread | None = None

    def _watch(self) -> None:
        assert self.watch_pid is not None
        while not self._done.wait(self.poll_s):
            if not pid_alive(self.watch_pid):
                self.request(int(getattr(signal, "SIGHUP", 1)))
                return

    def request(self, signum: int | None = None) -> None:
        """Ask the loop to stop at its next check (what the signal handler does)."""
        self.requested = True
        self.signum = signum

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.request(signum)

    def __enter__(self) -> StopSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handler)
        if self.watch_pid is not None:
            self._done.clear()
            self._watcher = threading.Thread(
                target=self._watch, name="watch-snakemake", daemon=True
            )
            self._watcher.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        self._done.set()


class Budget:
    """Wall-clock training budget, counting time spent in earlier (resumed) runs.

    Parameters
    ----------
    minutes : float
        Total budget in minutes (> 0; ``math.inf`` for none).
    spent_s : float
        Seconds already used by earlier runs of the same training.
    """

    def __init__(self, minutes: float, spent_s: float = 0.0) -> None:
        if not minutes > 0:
            raise ConfigError(f"budget_minutes: must be > 0, got {minutes}")
        self.minutes = float(minutes)
        self.spent_s = float(spent_s)
        self._start = time.monotonic()

        #: Seconds of this run spent inside :meth:`paused` (checkpoint writes), not counted.
        self.excluded_s = 0.0

    def elapsed(self) -> float:
        """Seconds used so far, earlier runs included, paused time excluded."""
        return self.spent_s + (time.monotonic() - self._start) - self.excluded_s

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Time spent inside this block (e.g. writing a checkpoint) does not count.

        Writing a model of 500 MB takes seconds where a 64 px model takes milliseconds; an
        equal-budget comparison must not charge one size for its disk writes.
        """
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.excluded_s += time.monotonic() - t0

    def exhausted(self) -> bool:
        """True once :meth:`elapsed` reaches the budget."""
        return self.elapsed() >= self.minutes * 60.0


class CsvLog:
    """Append-only CSV log, one row per epoch, flushed after each row.

    The header is written when the file is new or empty. On resume call
    :meth:`truncate_after` with the checkpoint's epoch so rows of epochs that were logged
    but not checkpointed are dropped (they will be trained again).
    """

    def __init__(self, path: str | os.PathLike, fieldnames: list[str]) -> None:
        self.path = Path(path)
        self.fieldnames = list(fieldnames)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists() or self.path.stat().st_size == 0:
            with open(self.path, "w", newline="") as fh:
                csv.DictWriter(fh, self.fieldnames).writeheader()
        else:
            with open(self.path, newline="") as fh:
                header = next(csv.reader(fh), [])
            if header != self.fieldnames:
                raise DataError(f"{self.path}: header {header} differs from {self.fieldnames}")

    def append(self, row: dict) -> None:
        """Write one row (keys = fieldnames) and flush it to disk."""
        with open(self.path, "a", newline="") as fh:
            csv.DictWriter(fh, self.fieldnames).writerow(row)
            fh.flush()
            os.fsync(fh.fileno())

    def rows(self) -> list[dict[str, str]]:
        """All rows as strings."""
        with open(self.path, newline="") as fh:
            return list(csv.DictReader(fh))

    def truncate_after(self, epoch: int, key: str = "epoch") -> None:
        """Keep only the rows whose `key` column is <= `epoch` (rewritten atomically)."""
        kept = [r for r in self.rows() if int(r[key]) <= epoch]
        with atomic_file(self.path) as tmp:
            with open(tmp, "w", newline="") as fh:
                writer = csv.DictWriter(fh, self.fieldnames)
                writer.writeheader()
                writer.writerows(kept)


def reject_unknown_keys(cls: type, cfg: Mapping[str, Any], section: str) -> None:
    """ConfigError naming the keys of `cfg` that are not fields of dataclass `cls`."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise ConfigError(f"{section}: unknown keys {unknown}; known: {sorted(known)}")


# --- resume policy ---------------------------------------------------------------------------
def data_digest(*arrays: np.ndarray, algorithm: str = "sha256") -> str:
    """Hex digest of the raw bytes of `arrays`, in order (C order, their own dtypes).

    Identifies the training data a checkpoint was trained on: any changed pixel, image or
    order changes it.
    """
    h = hashlib.new(algorithm)
    for arr in arrays:
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def config_digest(config: dict[str, Any], ignore: frozenset[str] | set[str] = frozenset()) -> str:
    """SHA-256 of a run config without the keys in `ignore` (canonical JSON, sorted keys)."""
    kept = {k: v for k, v in config.items() if k not in ignore}
    text = json.dumps(kept, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class RunRecord:
    """What a ``latest.pt`` says about the run that wrote it (each trainer reads its own keys).

    Attributes
    ----------
    kind : str or None
        Trainer that wrote it (``"wgan_gp"``, ``"srcnn"``, ``"srgan"``).
    config : dict
        Its full run config (limits and device included).
    data_digest : str or None
        Digest of its training data; None for a checkpoint that did not record one.
    finished : bool
        Training ended (budget, epoch cap or early stopping), not interrupted.
    epoch : int
        Completed epochs.
    passed_s : float
        Budget seconds spent at the last budget check after which it kept training
        (0 if none): a run with a budget at or below this would have stopped earlier.
    """

    kind: str | None
    config: dict[str, Any]
    data_digest: str | None
    finished: bool
    epoch: int
    passed_s: float = 0.0


@dataclass(frozen=True)
class ResumeDecision:
    """What to do with an existing ``latest.pt``, and why (one line for the log).

    ``action`` is ``"fresh"`` (no checkpoint), ``"resume"``, ``"republish"`` (a finished
    training of this exact run: publish its outputs again, train nothing) or
    ``"start_over"`` (discard it).
    """

    action: str
    reason: str

    @property
    def resume(self) -> bool:
        return self.action == "resume"

    @property
    def republish(self) -> bool:
        return self.action == "republish"

    @property
    def start_over(self) -> bool:
        return self.action == "start_over"


@dataclass(frozen=True)
class ResumableRun:
    """The identity of one training run and the one policy for an existing ``latest.pt``.

    A checkpoint is resumed when it was written by the same trainer on the same data with
    the same settings, except keys in `resumable_keys` (device, budget, epoch cap, checkpoint
    cadence: they change how long or where a run trains, not what an epoch computes), and
    only if a run under the current limits would have reached it too (training cannot be
    undone). A finished checkpoint whose settings match up to `republish_ignores` (the
    device) is published again without training: Snakemake reruns a job whose outputs it
    deleted after an interrupt, and the budget already spent must not be spent again.

    Parameters
    ----------
    kind : str
        Trainer name stored in its checkpoints.
    config : dict
        The full run config of this run (plain data).
    data_digest : str
        Digest of this run's training data (:func:`data_digest`).
    max_epochs : float
        Epoch cap of this run (``math.inf`` for none).
    budget_s : float
        Wall-clock budget of this run in seconds (``math.inf`` for none).
    resumable_keys : frozenset of str
        Config keys that may differ between a checkpoint and the run resuming it.
    republish_ignores : frozenset of str
        Config keys that may differ for a finished checkpoint to be published again.
    continue_finished : bool
        Whether a finished checkpoint whose only differences are in `resumable_keys` (a raised
        cap or budget) is continued; if False such a checkpoint is trained again from scratch.
    """

    kind: str
    config: dict[str, Any]
    data_digest: str
    max_epochs: float = math.inf
    budget_s: float = math.inf
    resumable_keys: frozenset[str] = frozenset({"device"})
    republish_ignores: frozenset[str] = frozenset({"device"})
    continue_finished: bool = False

    def config_digest(self) -> str:
        """Digest of the settings that define what is trained (resumable keys left out)."""
        return config_digest(self.config, self.resumable_keys)

    def _differing(self, old: dict[str, Any], ignore: frozenset[str]) -> list[str]:
        keys = (set(old) | set(self.config)) - ignore
        return sorted(k for k in keys if old.get(k) != self.config.get(k))

    def _other_run(self, record: RunRecord) -> ResumeDecision | None:
        """Start over for a checkpoint of another trainer or of other (or unknown) data."""
        if record.kind != self.kind:
            return ResumeDecision("start_over", f"it is a {record.kind!r} checkpoint")
        if record.data_digest is None:
            return ResumeDecision("start_over", "it does not record its training data")
        if record.data_digest != self.data_digest:
            return ResumeDecision("start_over", "the training images changed")
        return None

    def _finished(self, record: RunRecord) -> ResumeDecision | None:
        """A finished checkpoint: republish it (same settings up to `republish_ignores`),
        start over, or None where it may be continued (`continue_finished`)."""
        if not record.finished:
            return None
        diff = self._differing(record.config, self.republish_ignores)
        if not diff:
            return ResumeDecision(
                "republish",
                f"it is a finished training ({record.epoch} epochs) of the same data and settings",
            )
        if not self.continue_finished:
            return ResumeDecision(
                "start_over", f"it is a finished training with other settings ({diff})"
            )
        return None

    def decide(self, record: RunRecord | None) -> ResumeDecision:
        """Resume, republish or start over for the checkpoint described by `record`."""
        if record is None:
            return ResumeDecision("fresh", "no checkpoint")
        early = self._other_run(record) or self._finished(record)
        if early is not None:
            return early
        diff = self._differing(record.config, self.resumable_keys)
        if diff:
            return ResumeDecision("start_over", f"trained with another config: {diff} differ")
        if record.epoch > self.max_epochs:
            return ResumeDecision(
                "start_over", f"it has {record.epoch} epochs, more than the cap {self.max_epochs}"
            )
        if record.passed_s >= self.budget_s:
            return ResumeDecision(
                "start_over",
                f"it trained past the budget of {self.budget_s / 60:g} min "
                f"({record.passed_s:.1f} s spent)",
            )
        state = "finished" if record.finished else "interrupted"
        return ResumeDecision("resume", f"{state} at epoch {record.epoch}, same data and settings")


# --- the one training driver -------------------------------------------------------------------
def say(message: str) -> None:
    """One line for the job's log (stderr, which a rule's script sends to its log file)."""
    print(message, file=sys.stderr, flush=True)


class TrainingRun:
    """One training run of a trainer, in the steps :func:`run_training` calls.

    A trainer (WGAN-GP, SRCNN, SRGAN) subclasses this: it builds its data, models and
    optimisers in ``__init__`` (writing nothing) and fills in the steps below. The driver owns
    the order: load ``latest.pt``, decide (:class:`ResumableRun`), republish / resume / start
    over, rebuild ``log.csv``, the epoch loop with its checkpoints and stop signals, publish.

    Attributes every subclass sets: ``kind`` (name in checkpoints), ``label`` (progress
    bar), ``log_fields``, ``out_dir``, ``latest_path``, ``log_path``, ``epoch`` (completed
    epochs), ``spent_s`` (budget seconds of earlier runs), ``log_rows``, ``stale_outputs``
    (declared outputs deleted when training starts from scratch) and ``republished`` (the
    words after "published" in the republish message).
    """

    kind: str
    label: str
    log_fields: list[str]
    out_dir: Path
    latest_path: Path
    log_path: Path
    epoch: int
    spent_s: float
    log_rows: list[dict]
    stale_outputs: tuple[str, ...] = ()
    republished: str = "best.pt and log.csv again"

    # -- resume policy ---------------------------------------------------------------------
    def resumable_run(self) -> ResumableRun:
        """This run's identity for the resume policy."""
        raise NotImplementedError

    @staticmethod
    def record(ckpt: dict) -> RunRecord:
        """What a ``latest.pt`` says about the run that wrote it."""
        raise NotImplementedError

    def decide(self, ckpt: dict | None) -> ResumeDecision:
        """Resume, republish or start over from `ckpt` (a ``latest.pt``), with the reason."""
        return self.resumable_run().decide(None if ckpt is None else self.record(ckpt))

    def restore(self, ckpt: dict) -> None:
        """Load models, optimisers, RNG and counters from `ckpt`."""
        raise NotImplementedError

    def republish(self, ckpt: dict) -> dict | None:
        """Publish a finished `ckpt`'s outputs again; its result (None: resume it instead)."""
        raise NotImplementedError

    def discard(self) -> None:
        """Delete stale declared outputs before training from scratch (latest.pt stays)."""
        for name in self.stale_outputs:
            path = self.out_dir / name
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    def write_log(self) -> CsvLog:
        """``log.csv`` rebuilt from the checkpoint's rows (a deleted output comes back; rows
        of epochs logged after the last checkpoint are dropped)."""
        with atomic_file(self.log_path) as tmp:
            tmp_log = CsvLog(tmp, self.log_fields)
            for row in self.log_rows:
                tmp_log.append(row)
        return CsvLog(self.log_path, self.log_fields)

    # -- the loop ----------------------------------------------------------------------------
    @property
    def budget_minutes(self) -> float:
        """Wall-clock budget over all (resumed) runs (``math.inf`` for none)."""
        raise NotImplementedError

    @property
    def max_epochs(self) -> int:
        """Epoch cap (the progress bar's total)."""
        raise NotImplementedError

    def begin(self, budget: Budget) -> None:
        """Before the first epoch of this process (after log.csv was rebuilt)."""

    def reason_before(self, budget: Budget, first: bool) -> str | None:
        """Why no further epoch is to run, checked before each one (None: train)."""
        return None

    def next_epoch(self, flag: StopSignal, budget: Budget) -> dict | None:
        """Train and score one epoch; its log row (None: a stop signal interrupted it)."""
        raise NotImplementedError

    def reason_after(self, row: dict, budget: Budget) -> str | None:
        """After an epoch was logged: why training ends now (None: go on)."""
        raise NotImplementedError

    def checkpoint(self, budget: Budget, reason: str | None, force: bool = False) -> None:
        """After an epoch: write ``latest.pt`` if the cadence says so (`force`: a stop)."""
        raise NotImplementedError

    def postfix(self, row: dict) -> dict[str, Any]:
        """Values shown beside the progress bar."""
        return {}

    def finish(self, budget: Budget, reason: str | None) -> dict:
        """Training ended: the finished ``latest.pt``, the published outputs; the result."""
        raise NotImplementedError


def run_training(
    run: TrainingRun,
    *,
    stop: StopSignal | None = None,
    on_epoch_end: Callable[[dict], None] | None = None,
    progress_bar: bool = True,
    restart_on_mismatch: bool = True,
) -> dict:
    """Drive one training run: the one resume policy, loop, checkpoints and publishing.

    Parameters
    ----------
    run : TrainingRun
        The trainer's run (data, models, files of its folder).
    stop : StopSignal, optional
        Stop flag to honour (its owner enters it); by default one is installed for
        SIGTERM/SIGUSR1/SIGINT during training.
    on_epoch_end : callable, optional
        Called with each epoch's log row (tests use it to request a stop).
    progress_bar : bool
        Show a tqdm bar on stderr.
    restart_on_mismatch : bool
        A ``latest.pt`` that cannot be resumed (other settings or data) is discarded and
        training starts over (True) or is a :class:`ConfigError` (False).

    Raises
    ------
    StopRequested
        After ``latest.pt`` was written because a stop signal arrived; rerun to resume.
    """
    run.out_dir.mkdir(parents=True, exist_ok=True)
    latest = run.latest_path
    ckpt = load_checkpoint(latest, map_location="cpu")
    decision = run.decide(ckpt)
    if decision.republish:
        result = run.republish(ckpt)
        if result is not None:
            say(
                f"{latest}: {decision.reason}; published {run.republished} without retraining "
                "(delete latest.pt to train from scratch)"
            )
            return result
    if decision.start_over and not restart_on_mismatch:
        raise ConfigError(f"{latest}: cannot resume, {decision.reason}; delete it to restart")
    if decision.resume or decision.republish:
        run.restore(ckpt)
        say(f"resuming {latest} at epoch {run.epoch}, {run.spent_s:.1f} s spent: {decision.reason}")
    else:
        if decision.start_over:
            say(f"not resuming {latest}: {decision.reason}; starting over")
        run.discard()
    return _loop(run, stop, on_epoch_end, progress_bar)


def _loop(
    run: TrainingRun,
    stop: StopSignal | None,
    on_epoch_end: Callable[[dict], None] | None,
    progress_bar: bool,
) -> dict:
    """The epoch loop of :func:`run_training`; returns :meth:`TrainingRun.finish`'s result."""
    from tqdm import tqdm

    csv_log = run.write_log()
    budget = Budget(run.budget_minutes, run.spent_s)
    run.begin(budget)
    own = stop is None
    with StopSignal() if own else contextlib.nullcontext(stop) as flag:
        bar = tqdm(
            total=run.max_epochs,
            initial=run.epoch,
            desc=run.label,
            unit="epoch",
            file=sys.stderr,
            disable=not progress_bar,
            mininterval=1.0,
        )
        try:
            reason = run.reason_before(budget, first=True)
            while reason is None:
                row = run.next_epoch(flag, budget)
                if row is None:
                    run.checkpoint(budget, None, force=True)
                    raise StopRequested(
                        f"stopped by signal {flag.signum} in epoch {run.epoch + 1}; "
                        f"{run.latest_path} saved, rerun to resume",
                        signum=flag.signum,
                    )
                csv_log.append(row)
                reason = run.reason_after(row, budget)
                bar.update(1)
                bar.set_postfix(run.postfix(row))
                if on_epoch_end is not None:
                    on_epoch_end(row)
                stop_now = reason is None and flag.requested  # read the flag once
                run.checkpoint(budget, reason, force=stop_now)
                if stop_now:
                    raise StopRequested(
                        f"stopped by signal {flag.signum} after epoch {run.epoch}; "
                        f"{run.latest_path} saved, rerun to resume",
                        signum=flag.signum,
                    )
                if reason is None:
                    reason = run.reason_before(budget, first=False)
        finally:
            bar.close()
    return run.finish(budget, reason)


def run_rule(train: Callable[[], Any], device: str, resources: Any = None) -> Any:
    """What every training rule's script does around its trainer.

    A GPU job (`resources` of the Snakemake job) without a working CUDA stops before any
    data is read or an epoch is trained on the CPU; a stop signal, after ``latest.pt`` was
    written, exits with :data:`EXIT_PREEMPTED` so that a rerun resumes.
    """
    select_device(device, gpu_job_requires_cuda(resources))
    try:
        return train()
    except StopRequested as exc:
        say(f"{exc}; rerun to resume from latest.pt")
        sys.exit(EXIT_PREEMPTED)

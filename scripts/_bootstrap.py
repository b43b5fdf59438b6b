"""Shared start of every rule script.

Puts the repository root on ``sys.path`` so ``tomosynth`` imports in any env (conda or
the pip install), and sends stderr (progress bars, warnings, tracebacks) to the rule's log.
Snakemake puts this folder on ``sys.path``; scripts start with ``import _bootstrap``.
"""

import logging
import os
import sys
from pathlib import Path

import __main__

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

_smk = getattr(__main__, "snakemake", None)
if _smk is not None:
    # Numerical libraries use as many threads as the job was given, not every core: with
    # several jobs on one machine oversubscription slows torch down by an order of magnitude.
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[_var] = str(max(1, int(_smk.threads)))
if _smk is not None:
    from tomosynth.jobs import WATCH_ENV, watch_pid
    from tomosynth.manifest import RULE_ENV

    # Folder manifests name the rule that regenerates them; a training notices when the
    # Snakemake process that started it is gone (kill -9) and checkpoints.
    _rule = str(getattr(_smk, "rule", "") or "")
    if _rule:
        os.environ[RULE_ENV] = _rule
    _pid = watch_pid()
    if _pid is not None:
        os.environ[WATCH_ENV] = str(_pid)
if _smk is not None and len(_smk.log) > 0:
    sys.stderr = open(_smk.log[0], "w", buffering=1)  # noqa: SIM115 - lives as long as the job

    def _excepthook(kind, value, tb, _previous=sys.excepthook):
        """Full traceback to the log (as before); the one-line error also to the console."""
        _previous(kind, value, tb)
        from tomosynth.errors import ConfigError, DataError

        if issubclass(kind, DataError | ConfigError):
            line = f"{kind.__name__} in rule {_rule}: {value} (log: {_smk.log[0]})"
        else:
            line = f"rule {_rule} failed: {kind.__name__}: {value} (log: {_smk.log[0]})"
        print(line.replace("\n", " "), file=sys.__stderr__, flush=True)

    sys.excepthook = _excepthook
logging.basicConfig(
    stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
)

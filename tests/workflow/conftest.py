"""Helpers for the workflow tests: parse the workflow, copy it, run Snakemake on the tiny config.

The workflow is read through Snakemake's Python API (in a subprocess, since Snakemake keeps
global state) and its dry-run listing, so the tests follow whatever rules exist.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TINY_CONFIG = Path(__file__).resolve().parent / "tiny" / "config.yaml"
# What a run needs from a clone; tomosynth/ is found through scripts/_bootstrap.py.
WORKFLOW_ITEMS = ("Snakefile", "config.yaml", "workflow", "scripts", "envs", "tomosynth")
# Seconds allowed for one tiny end-to-end run on 2 CPU cores.
RUN_TIMEOUT = int(os.environ.get("TOMOSYNTH_TEST_RUN_TIMEOUT", "360"))


def snakemake_cmd(*args: str) -> list[str]:
    """Snakemake of the running interpreter (so SLURM jobs use the same environment)."""
    return [sys.executable, "-m", "snakemake", *args]


def run_snakemake(
    workdir: Path, *args: str, timeout: int = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run Snakemake in `workdir`; fail the test with the log tail when it fails or hangs."""
    cmd = ["timeout", "-k", "10", str(timeout), *snakemake_cmd(*args)]
    proc = subprocess.run(
        cmd,
        cwd=workdir,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout + 30,
    )
    if proc.returncode != 0:
        what = "timed out" if proc.returncode in (124, 137) else f"exited {proc.returncode}"
        pytest.fail(
            f"snakemake {' '.join(args)} {what} in {workdir}:\n"
            + (proc.stdout + proc.stderr)[-6000:],
            pytrace=False,
        )
    return proc


def copy_workflow(dest: Path) -> Path:
    """Copy what a clean clone needs to run the workflow into `dest` (plus the tiny overlay)."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in WORKFLOW_ITEMS:
        src = REPO / item
        if src.is_dir():
            shutil.copytree(src, dest / item, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / item)
    shutil.copy2(TINY_CONFIG, dest / "tiny.yaml")
    return dest


def merged_config(*configfiles: Path) -> dict:
    """Config as Snakemake merges `config.yaml` and `--configfile` overlays (recursive update)."""

    def update(base: dict, new: dict) -> dict:
        for key, value in new.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                update(base[key], value)
            else:
                base[key] = value
        return base

    config: dict = {}
    for path in configfiles:
        update(config, yaml.safe_load(Path(path).read_text()) or {})
    return config


@dataclass(frozen=True)
class RuleInfo:
    """A rule as parsed by Snakemake: its script and conda env as absolute paths."""

    name: str
    script: str | None
    conda_env: str | None
    resources: dict
    is_local: bool


_LOAD_RULES = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (
        ConfigSettings, OutputSettings, ResourceSettings, StorageSettings)

    configfiles = [Path(p) for p in json.loads(sys.argv[1])]
    with SnakemakeApi(OutputSettings()) as api:
        wapi = api.workflow(
            snakefile=Path("Snakefile"),
            resource_settings=ResourceSettings(),
            config_settings=ConfigSettings(configfiles=configfiles),
            storage_settings=StorageSettings(),
        )
        wf = wapi._workflow  # the parsed workflow; rules carry script, conda env, resources
        out = []
        for rule in wf.rules:
            def resolve(path):
                if path is None:
                    return None
                if callable(path):
                    return "<callable>"
                p = Path(str(path))
                return str(p if p.is_absolute() else (Path(rule.basedir) / p).resolve())
            res = {}
            for k, v in rule.resources.items():
                if k.startswith("_") or k == "tmpdir":
                    continue
                if v.is_evaluable():
                    res[k] = "<callable>"
                elif isinstance(v.value, (int, float, str)):
                    res[k] = v.value
            out.append(dict(name=rule.name, script=resolve(rule.script),
                            conda_env=resolve(rule.conda_env), resources=res,
                            is_local=wf.is_local(rule)))
    print("@@RULES@@" + json.dumps(out))
    """
)


def load_rules(workdir: Path = REPO, configfiles: tuple[Path, ...] = ()) -> list[RuleInfo]:
    """Every rule of the workflow in `workdir`, parsed with the given config overlays."""
    proc = subprocess.run(
        [sys.executable, "-c", _LOAD_RULES, json.dumps([str(p) for p in configfiles])],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    marker = [line for line in proc.stdout.splitlines() if line.startswith("@@RULES@@")]
    if proc.returncode != 0 or not marker:
        pytest.fail(
            f"parsing the workflow failed:\n{(proc.stdout + proc.stderr)[-4000:]}", pytrace=False
        )
    return [RuleInfo(**r) for r in json.loads(marker[0][len("@@RULES@@") :])]


@dataclass(frozen=True)
class Job:
    """One scheduled job of a dry run: its rule, wildcards and files."""

    rule: str
    wildcards: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    reason: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.rule, self.wildcards)


_JOB_HEAD = re.compile(r"^(?:local)?rule (\w+):$")
_FIELD = re.compile(r"^\s{4}(input|output|wildcards|reason): (.*)$")


def parse_dry_run(text: str) -> list[Job]:
    """Jobs listed by `snakemake --dry-run` (its default, human-readable output)."""
    jobs: list[Job] = []
    current: dict | None = None
    for line in text.splitlines():
        head = _JOB_HEAD.match(line)
        if head:
            if current is not None:
                jobs.append(Job(**current))
            current = dict(rule=head.group(1), wildcards="", inputs=(), outputs=())
            continue
        field = _FIELD.match(line)
        if current is not None and field:
            name, value = field.groups()
            if name in ("wildcards", "reason"):
                current[name] = value.strip()
            else:
                current[name + "s"] = tuple(v.strip() for v in value.split(", ") if v.strip())
        elif current is not None and line and not line.startswith(" "):
            jobs.append(Job(**current))
            current = None
    if current is not None:
        jobs.append(Job(**current))
    return jobs


def descendants(jobs: list[Job], roots: list[Job]) -> set[tuple[str, str]]:
    """Keys of `roots` and every job that consumes their outputs, transitively.

    A job consumes a file when one of its inputs equals an output of another job or lies
    inside an output folder (`directory()` outputs).
    """

    def consumes(job: Job, producer: Job) -> bool:
        return any(
            i == o or i.startswith(o.rstrip("/") + "/")
            for i in job.inputs
            for o in producer.outputs
        )

    found = {j.key for j in roots}
    frontier = list(roots)
    while frontier:
        producer = frontier.pop()
        for job in jobs:
            if job.key not in found and consumes(job, producer):
                found.add(job.key)
                frontier.append(job)
    return found


def rule_graph(workdir: Path, *args: str) -> dict[str, set[str]]:
    """Rule-level edges producer -> consumers from `snakemake --rulegraph`."""
    dot = run_snakemake(workdir, "--rulegraph", *args).stdout
    names = dict(re.findall(r'^\s*(\d+)\[label = "(\w+)"', dot, flags=re.M))
    graph: dict[str, set[str]] = {name: set() for name in names.values()}
    for u, v in re.findall(r"^\s*(\d+) -> (\d+)", dot, flags=re.M):
        graph[names[u]].add(names[v])
    return graph


def downstream_rules(graph: dict[str, set[str]], rule: str) -> set[str]:
    """`rule` and all rules reachable from it in the rule graph."""
    seen, stack = {rule}, [rule]
    while stack:
        for nxt in graph.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


@pytest.fixture(scope="session")
def wf():
    """These helpers, as a fixture (test modules do not import conftest by name)."""
    return _THIS_MODULE


# Taken at import: tests/unit has a conftest too, and whichever was imported last owns the
# name "conftest" in sys.modules.
_THIS_MODULE = sys.modules[__name__]


@pytest.fixture(scope="session")
def tiny_local_run(tmp_path_factory) -> Path:
    """A copy of the workflow after one complete local run on the tiny config."""
    workdir = copy_workflow(tmp_path_factory.mktemp("local") / "repo")
    run_snakemake(workdir, "--cores", "2", "--configfile", "tiny.yaml", timeout=RUN_TIMEOUT)
    return workdir

"""The tiny workflow submitted through the SLURM profile runs as SLURM jobs, equal to a local run.

Needs a SLURM cluster (CI starts a one-node one with `.ci/slurm-up.sh`). Where SLURM is
absent the test skips with the reason, unless TOMOSYNTH_REQUIRE_SLURM=1 (set by CI), where
it fails instead.
"""

from __future__ import annotations

import filecmp
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
REQUIRE = os.environ.get("TOMOSYNTH_REQUIRE_SLURM") == "1"
SLURM_TIMEOUT = int(os.environ.get("TOMOSYNTH_TEST_SLURM_TIMEOUT", "480"))
# Submitted: the data stage (deterministic, so equal file by file to a local run) and one
# WGAN-GP training (a GPU rule whose runtime comes from its time budget). The other
# trainings and plots add minutes on 2 cores without exercising anything new here.
DATA_RULES = ("simulate_scan", "reconstruct", "clip_bounds", "split_manifest", "export_png")
GPU_RULE = "train_wgan_gp"
DATA_DIRS = ("scans", "recon", "preprocess", "png")
# Run-time measurements and write times (folder manifests) recorded in JSON sidecars;
# everything else must match.
VOLATILE_JSON_KEYS = {"seconds", "peak_rss_mb", "created", "mtime_ns"}
_SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")


def _unavailable() -> str | None:
    """Why SLURM cannot be used here, or None when a node takes jobs."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "SLURM is not installed (no sinfo/sbatch); CI starts it with .ci/slurm-up.sh"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e .[workflow])"
    proc = subprocess.run(
        ["sinfo", "-h", "-o", "%a %T"], capture_output=True, text=True, timeout=30
    )
    if proc.returncode != 0:
        return f"the SLURM controller does not answer: {proc.stderr.strip()}"
    states = proc.stdout.split("\n")
    if not any(re.match(r"up (idle|mixed|allocated|completing)", s) for s in states):
        return f"no SLURM partition is up with a usable node: {proc.stdout.strip()!r}"
    return None


@pytest.fixture(scope="session")
def slurm_cluster():
    """Skip (or fail, where SLURM is required) before any long local run starts."""
    reason = _unavailable()
    if reason and REQUIRE:
        pytest.fail(f"{reason} (TOMOSYNTH_REQUIRE_SLURM=1: must not skip)", pytrace=False)
    if reason:
        pytest.skip(reason)


def scontrol_job(slurm_id: str) -> dict[str, str]:
    """Fields of `scontrol show job` for one job (empty when SLURM has forgotten it)."""
    proc = subprocess.run(
        ["scontrol", "-o", "show", "job", slurm_id], capture_output=True, text=True, timeout=30
    )
    if proc.returncode != 0:
        return {}
    return dict(re.findall(r"(\w+)=(\S*)", proc.stdout))


def minutes(time_limit: str) -> int:
    """SLURM time ([D-]HH:MM:SS or MM:SS) in whole minutes."""
    days, _, clock = time_limit.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    h, m, s = parts
    return int(days or 0) * 1440 + h * 60 + m + (1 if s else 0)


def executed_jobs(log: str) -> dict[str, dict]:
    """Snakemake job id -> rule, local flag and resources, from the run's own listing."""
    jobs = {}
    for block in re.split(r"\n(?=\[\w{3} \w{3} )", log):
        head = re.search(r"^(local)?rule (\w+):$", block, flags=re.M)
        jobid = re.search(r"^\s+jobid: (\d+)$", block, flags=re.M)
        if not (head and jobid):
            continue
        res_line = re.search(r"^\s+resources: (.*)$", block, flags=re.M)
        resources = dict(re.findall(r"(\w+)=([^,]+)", res_line.group(1))) if res_line else {}
        jobs[jobid.group(1)] = dict(
            rule=head.group(2), local=bool(head.group(1)), resources=resources
        )
    return jobs


def load_json(path: Path):
    def strip(obj):
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items() if k not in VOLATILE_JSON_KEYS}
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        return obj

    data = strip(json.loads(path.read_text()))
    if path.name == "MANIFEST.json":
        # A JSON sidecar in the folder (recon.json) holds run times, so its bytes differ; its
        # content is compared on its own, without the volatile keys.
        files = data.get("files", {})
        data["files"] = {n: ({} if n.endswith(".json") else e) for n, e in files.items()}
    return data


@pytest.mark.parametrize("profiles", [["default"], ["slurm", "slurm-ci"]])
def test_profiles_parse(wf, profiles):
    """Snakemake accepts each profile (dry run of the demo; the SLURM one with placeholders)."""
    args = []
    for name in profiles:
        args += ["--profile", f"workflow/profiles/{name}"]
    env = {"TOMOSYNTH_SLURM_PARTITION": "debug", "TOMOSYNTH_SLURM_ACCOUNT": "ci"}
    proc = wf.run_snakemake(REPO, "--dry-run", *args, env=env)
    log = proc.stdout + proc.stderr
    assert "Job stats" in log or "Nothing to be done" in log


def test_profiles_are_consistent():
    """The CI overlay changes only timing and logging; the user profile keeps placeholders."""
    slurm = yaml.safe_load((REPO / "workflow/profiles/slurm/config.yaml").read_text())
    ci = yaml.safe_load((REPO / "workflow/profiles/slurm-ci/config.yaml").read_text())
    assert slurm["executor"] == "slurm"
    assert slurm["slurm-status-command"] == "squeue"  # works without slurmdbd
    assert set(ci) <= {
        "jobs",
        "latency-wait",
        "restart-times",
        "slurm-init-seconds-before-status-checks",
        "slurm-keep-successful-logs",
        "default-resources",
    }, "the CI overlay may only change timing, logging and the CUDA requirement"
    defaults = slurm["default-resources"]
    assert defaults["cuda_required"] == 1  # GPU jobs on the cluster never fall back to the CPU
    # The CI overlay repeats the defaults, except that its fake GPU needs no CUDA.
    assert ci["default-resources"] == {**defaults, "cuda_required": 0}
    assert defaults["slurm_partition"] == "$TOMOSYNTH_SLURM_PARTITION"
    assert defaults["slurm_account"] == "$TOMOSYNTH_SLURM_ACCOUNT"
    assert {"runtime", "mem_mb"} <= set(defaults)


@pytest.mark.workflow
@pytest.mark.slurm
@pytest.mark.slow
def test_tiny_workflow_through_slurm_equals_local_run(
    wf, slurm_cluster, tiny_local_run, tmp_path_factory
):
    listing = wf.run_snakemake(tiny_local_run, "-n", "--forceall", "--configfile", "tiny.yaml")
    all_jobs = wf.parse_dry_run(listing.stdout + listing.stderr)
    picked = [j for j in all_jobs if j.rule in DATA_RULES]
    picked += sorted((j for j in all_jobs if j.rule == GPU_RULE), key=lambda j: j.wildcards)[:1]
    assert {j.rule for j in picked} >= set(DATA_RULES[:3]), "the data stage rules are missing"
    targets = sorted({o for j in picked for o in j.outputs})

    workdir = wf.copy_workflow(tmp_path_factory.mktemp("slurm") / "repo")
    env = {
        "TOMOSYNTH_SLURM_PARTITION": os.environ.get("TOMOSYNTH_SLURM_PARTITION", "debug"),
        "TOMOSYNTH_SLURM_ACCOUNT": os.environ.get("TOMOSYNTH_SLURM_ACCOUNT", "ci"),
    }
    proc = wf.run_snakemake(
        workdir,
        "--profile",
        "workflow/profiles/slurm",
        "--profile",
        "workflow/profiles/slurm-ci",
        "--configfile",
        "tiny.yaml",
        "--",
        *targets,
        timeout=SLURM_TIMEOUT,
        env=env,
    )
    log = proc.stdout + proc.stderr
    config = wf.merged_config(workdir / "config.yaml", workdir / "tiny.yaml")
    budget = config.get("wgan_gp", {}).get("train", {}).get("budget_minutes", 0)

    # 1. Every non-local job was submitted to SLURM, and SLURM ran it as configured.
    jobs = executed_jobs(log)
    submitted = {m.group(1): (m.group(2), m.group(3)) for m in _SUBMITTED.finditer(log)}
    remote = {jid for jid, job in jobs.items() if not job["local"]}
    assert remote, f"no job went to SLURM:\n{log[-3000:]}"
    assert remote == set(submitted), (
        f"jobs not submitted to SLURM: {sorted(remote - set(submitted))}\n{log[-3000:]}"
    )
    problems = []
    for jid in sorted(remote, key=int):
        job, (slurm_id, slurm_log) = jobs[jid], submitted[jid]
        rule = job["rule"]
        if not Path(slurm_log).is_file() or f"rule_{rule}" not in slurm_log:
            problems.append(f"{rule}: no SLURM log {slurm_log}")
        record = scontrol_job(slurm_id)
        if not record:
            problems.append(f"{rule}: SLURM job {slurm_id} unknown to scontrol (MinJobAge?)")
            continue
        expect = {
            "JobState": "COMPLETED",
            "Partition": env["TOMOSYNTH_SLURM_PARTITION"],
            "Account": env["TOMOSYNTH_SLURM_ACCOUNT"],
        }
        for key, value in expect.items():
            if record.get(key) != value:
                problems.append(f"{rule} ({slurm_id}): {key}={record.get(key)}, want {value}")
        if not record.get("Comment", "").startswith(f"rule_{rule}"):
            problems.append(f"{rule} ({slurm_id}): Comment={record.get('Comment')}")
        runtime = int(job["resources"]["runtime"])
        if minutes(record["TimeLimit"]) != runtime:
            problems.append(f"{rule}: TimeLimit {record['TimeLimit']} != runtime {runtime} min")
        wants_gpu = job["resources"].get("gpu") == "1"
        has_gpu = "gpu" in record.get("TresPerJob", "") + record.get("TresPerNode", "")
        if wants_gpu != has_gpu:
            problems.append(f"{rule}: gpu={wants_gpu} but SLURM TRES {record.get('TresPerJob')}")
        if rule == GPU_RULE and not minutes(record["TimeLimit"]) > budget:
            problems.append(f"{rule}: TimeLimit {record['TimeLimit']} <= budget {budget} min")
    assert not problems, "\n".join(problems)
    assert GPU_RULE not in {j.rule for j in picked} or GPU_RULE in {
        jobs[j]["rule"] for j in remote
    }, f"{GPU_RULE} did not go through SLURM"

    # 2. The results equal the local run's: data stage file by file, the rest by name.
    def declared_files(root: Path) -> list[Path]:
        files = []
        for target in targets:
            path = root / target
            found = [path] if path.is_file() else sorted(path.rglob("*"))
            files += [p.relative_to(root) for p in found if p.is_file()]
        return sorted(files)

    local_files = declared_files(tiny_local_run)
    assert declared_files(workdir) == local_files
    compared = 0
    for rel in local_files:
        local, remote = tiny_local_run / rel, workdir / rel
        if rel.parts[:2] not in {("results", d) for d in DATA_DIRS}:
            # Trained models depend on wall-clock budgets: compared by name only (above);
            # dotfiles are Snakemake's empty directory markers.
            assert rel.name.startswith(".") or remote.stat().st_size > 0, f"{rel} is empty"
            continue
        compared += 1
        if rel.suffix == ".json":
            assert load_json(local) == load_json(remote), f"{rel} differs"
        else:
            assert filecmp.cmp(local, remote, shallow=False), f"{rel} differs"
    assert compared > 0, "no data-stage outputs to compare"

"""Changing one parameter reruns exactly the jobs downstream of it, nothing upstream.

After a complete tiny run, a dry run with one parameter changed must schedule exactly the
jobs that depend on it, with Snakemake's default rerun triggers. The expected set comes
from the full job listing (`--forceall --dry-run`: every job's inputs and outputs, closed
over "consumes an output of"), cross-checked against the rule graph (`--rulegraph`), and
named must-not-rerun rules are checked explicitly.
"""

from __future__ import annotations

import pytest
import yaml

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

DATA_RULES = {"simulate_scan", "reconstruct", "clip_bounds", "split_manifest", "export_png"}


def dry_run_jobs(wf, workdir, *overlays: str, forceall: bool = False):
    args = ["--dry-run", "--configfile", "tiny.yaml", *overlays]
    if forceall:
        args.append("--forceall")
    proc = wf.run_snakemake(workdir, *args)
    return wf.parse_dry_run(proc.stdout + proc.stderr), proc.stdout + proc.stderr


def check_rerun_set(wf, workdir, overlay: dict, changed_rule: str, must_not_rerun: set[str]):
    path = workdir / f"change_{changed_rule}.yaml"
    path.write_text(yaml.safe_dump(overlay))
    scheduled, log = dry_run_jobs(wf, workdir, path.name)
    all_jobs, _ = dry_run_jobs(wf, workdir, forceall=True)
    roots = [j for j in all_jobs if j.rule == changed_rule]
    assert roots, f"no {changed_rule} job in the workflow"

    expected = wf.descendants(all_jobs, roots)
    got = {j.key for j in scheduled}
    assert got == expected, (
        f"changing {overlay} scheduled\n  unexpected: {sorted(got - expected)}\n"
        f"  missing: {sorted(expected - got)}\n{log[-3000:]}"
    )
    # Independent cross-check on rule level: the rules rerun are the changed rule and
    # exactly the rules reachable from it in the rule graph.
    graph = wf.rule_graph(workdir, "--configfile", "tiny.yaml")
    assert {j.rule for j in scheduled} == wf.downstream_rules(graph, changed_rule)
    assert not must_not_rerun & {j.rule for j in scheduled}, "upstream rules were rescheduled"
    # The changed rule reruns because of its params, the others because their input changed.
    for job in scheduled:
        if job.rule == changed_rule:
            assert job.reason.startswith("Params have changed"), job
        else:
            assert "Input files updated by another job" in job.reason, job


def test_nothing_to_do_after_a_complete_run(wf, tiny_local_run):
    jobs, log = dry_run_jobs(wf, tiny_local_run)
    assert jobs == [], f"a second run without changes would rerun jobs:\n{log[-3000:]}"


def test_clip_percentile_reruns_only_downstream(wf, tiny_local_run):
    config = wf.merged_config(tiny_local_run / "config.yaml", tiny_local_run / "tiny.yaml")
    low, high = config["preprocess"]["percentiles"]
    overlay = {"preprocess": {"percentiles": [low + 1, high - 1]}}
    check_rerun_set(
        wf,
        tiny_local_run,
        overlay,
        "clip_bounds",
        must_not_rerun={"simulate_scan", "reconstruct", "split_manifest"},
    )


def test_wgan_gp_learning_rate_reruns_only_that_training(wf, tiny_local_run):
    config = wf.merged_config(tiny_local_run / "config.yaml", tiny_local_run / "tiny.yaml")
    rules = {r.name for r in wf.load_rules(tiny_local_run, (tiny_local_run / "tiny.yaml",))}
    if "train_wgan_gp" not in rules or "lr" not in config.get("wgan_gp", {}).get("train", {}):
        pytest.skip("no train_wgan_gp rule or no wgan_gp.train.lr key in the config yet")
    overlay = {"wgan_gp": {"train": {"lr": config["wgan_gp"]["train"]["lr"] * 2}}}
    check_rerun_set(wf, tiny_local_run, overlay, "train_wgan_gp", must_not_rerun=DATA_RULES)

"""The paths of the run plan (tomosynth.plan) are what the rules write: every scan file,
PNG folder, image set and model the plan names for the tiny config is an output of a job
of the dry run, and every image set's job feeds the job that reads it."""

from __future__ import annotations

import pytest
from snakemake.utils import validate

from tomosynth import plan

pytestmark = pytest.mark.workflow


def test_plan_paths_are_job_outputs(wf, tmp_path):
    workdir = wf.copy_workflow(tmp_path / "repo")
    cfg = wf.merged_config(workdir / "config.yaml", workdir / "tiny.yaml")
    validate(cfg, str(workdir / "workflow" / "schemas" / "config.schema.yaml"))
    proc = wf.run_snakemake(workdir, "--dry-run", "--configfile", "tiny.yaml")
    jobs = wf.parse_dry_run(proc.stdout + proc.stderr)
    outputs = {o for job in jobs for o in job.outputs}

    named = []
    for scan in sorted(cfg["scans"]):
        named += [plan.scan_file(cfg, scan), plan.recon_folder(scan), plan.bounds_file(scan)]
        named += [plan.split_file(scan)]
        named += [plan.png_folder(scan, size) for size in plan.scan_sizes(cfg, scan)]
    for scan in plan.wgan_gp_scans(cfg):
        for sets in (plan.distance_sets, plan.sample_sets, plan.morphology_sets):
            named += [s.folder for s in sets(cfg, scan)]
        named += [m.checkpoint for m in plan.models(cfg, scan)]
        named += [m.log for m in plan.models(cfg, scan)]
        for method in plan.upscale_methods(cfg):
            model = plan.upscale_model(cfg, scan, method)
            named += [model] if model else []
    for scan in cfg["srgan"]["scans"]:
        for preset, scale in plan.srgan_run_grid(cfg):
            named += [plan.srgan_model(scan, preset, scale), plan.sr_volume(scan, preset, scale)]
    missing = sorted(set(named) - outputs)
    assert not missing, f"plan paths no job writes: {missing}"

    def read_by(rule):
        return {i for j in jobs if j.rule == rule for i in j.inputs}

    for scan in plan.wgan_gp_scans(cfg):
        assert {s.folder for s in plan.distance_sets(cfg, scan)} <= read_by("compute_distance")
        assert {s.folder for s in plan.morphology_sets(cfg, scan)} <= read_by("compute_morphology")
        (samples,) = [j for j in jobs if j.key == ("plot_samples", f"scan={scan}")]
        assert [s.folder for s in plan.sample_sets(cfg, scan)] == list(samples.inputs)

# tomosynth: raw micro-CT projections -> reconstructions -> PNGs -> GANs -> metrics -> plots.
import os
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

min_version("9.0")


# Parse config.yaml first: Snakemake's own message for a YAML syntax error names neither
# the file nor the line. Overlays given with --configfile are read by Snakemake before this
# file runs, so a broken or missing overlay never gets here (Snakemake prints a message
# without the file, or a traceback): `tomosynth run ARGS...` checks them, then runs
# `snakemake ARGS...`; `tomosynth check-config FILE...` checks files alone.
sys.path.insert(0, workflow.basedir)
from tomosynth import config_checks

config_checks.check_yaml_files(
    [os.path.join(workflow.basedir, "config.yaml"), *workflow.overwrite_configfiles]
)

if workflow.is_main_process:
    # A second run in a folder where one is running: say so (Snakemake would advise
    # --rerun-incomplete, which would overwrite the running jobs' files).
    from tomosynth.jobs import in_use_message, read_only

    _busy = in_use_message(os.getcwd())
    if _busy and not read_only(sys.argv[1:]):
        raise WorkflowError(_busy)
    if _busy:
        print(f"warning: {_busy}", file=sys.stderr)


# The repository's config.yaml, wherever the run directory is (--directory): Snakemake skips
# a relative configfile that is missing when --configfile overlays are given, which would
# silently run an overlay on the schema's defaults alone.
configfile: os.path.join(workflow.basedir, "config.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/wgan_gp.smk"
include: "workflow/rules/upscale.smk"
include: "workflow/rules/srgan.smk"
include: "workflow/rules/bone.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


if workflow.is_main_process:
    # Memory requests beyond the machine (local) or sizing.max_mem_mb (cluster), said before
    # any job runs (a 265 GB request from recon.chunk_rows: 4096 was silent).
    for _line in config_checks.memory_warnings(
        config_checks.scan_job_memory(workflow.rules, SCANS),
        (
            config_checks.machine_memory_mb()
            if workflow.local_exec
            else config["sizing"]["max_mem_mb"]
        ),
        "this machine's memory" if workflow.local_exec else "sizing.max_mem_mb",
    ):
        print(_line, file=sys.stderr)


rule all:
    default_target: True
    input:
        get_final_output(),

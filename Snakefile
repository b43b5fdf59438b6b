# tomosynth: raw micro-CT projections -> reconstructions -> PNGs -> GANs -> metrics -> plots.
import os

from snakemake.utils import min_version

min_version("9.0")


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


rule all:
    default_target: True
    input:
        get_final_output(),

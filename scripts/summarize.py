"""Rule summarize: every metrics table and plot of the run in results/summary.md."""

import _bootstrap  # noqa: F401

from tomosynth.summary import write_summary

titles = snakemake.params.titles
tables = {titles[key]: snakemake.input[key] for key in titles}
write_summary(snakemake.output.md, tables, plots=snakemake.input.plots)

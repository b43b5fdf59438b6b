"""Rule simulate_scan: write a built-in synthetic micro-CT scan as a DXchange file."""

import _bootstrap  # noqa: F401

from tomosynth.simulate import simulate_scan

p = dict(snakemake.params.sim)
simulate_scan(snakemake.output.h5, p.pop("kind"), **p)

"""Rule reconstruct: DXchange projections -> one float32 TIFF per slice."""

import _bootstrap  # noqa: F401

from tomosynth.recon import reconstruct_scan

p = snakemake.params.recon
reconstruct_scan(
    snakemake.input.h5,
    snakemake.output.slices,
    backend=p["backend"],
    filter_name=p["filter"],
    center=p["center"],
    stripe_removal=p["stripe_removal"],
    chunk_rows=p["chunk_rows"],
    slices=p["slices"],
    theta_units=p.get("theta_units"),
)

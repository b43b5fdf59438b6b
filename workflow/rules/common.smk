# Shared helpers: config validation, target lists, input functions. Only this file holds
# helpers; rule files stay declarative.
from pathlib import Path

from snakemake.utils import validate


validate(config, schema="../schemas/config.schema.yaml")


SCANS = sorted(config["scans"])
BUILTIN_SCANS = sorted(s for s in SCANS if "builtin" in config["scans"][s])
SIZES = sorted(config["preprocess"]["sizes"])


wildcard_constraints:
    scan="|".join(SCANS),
    size=r"\d+",


# --- data stage ---------------------------------------------------------------------------
def get_scan_h5(wildcards):
    """The scan's DXchange file: simulated for built-in scans, the user's path otherwise."""
    entry = config["scans"][wildcards.scan]
    if "builtin" in entry:
        return f"results/scans/{wildcards.scan}.h5"
    return entry["path"]


def get_simulate_params(wildcards):
    """Simulator settings of one built-in scan: the shared sizes plus the scan's own entry."""
    entry = config["scans"][wildcards.scan]
    return dict(
        config["simulate"],
        kind=entry["builtin"],
        seed=entry["seed"],
        voxel_um=entry["voxel_um"],
        binning=entry["binning"],
    )


def get_recon_params(wildcards):
    """Reconstruction settings of one scan (per-scan centre and slice range override)."""
    entry = config["scans"][wildcards.scan]
    params = dict(config["recon"])
    if entry.get("center") is not None:
        params["center"] = entry["center"]
    params["slices"] = entry.get("slices")
    return params


def get_recon_env():
    """tomopy runs in its own conda env; the other backends in the recon env."""
    if config["recon"]["backend"] == "tomopy":
        return "../../envs/tomopy.yaml"
    return "../../envs/recon.yaml"


def data_targets():
    return expand("results/png/{scan}/{size}px", scan=SCANS, size=SIZES) + expand(
        "results/png/{scan}/split.json", scan=SCANS
    )


# --- generators (wgan_gp) ------------------------------------------------------------------
def wgan_gp_targets():
    return []


# --- upscaling (bicubic, srcnn) -------------------------------------------------------------
def upscale_targets():
    return []


# --- SRGAN family ----------------------------------------------------------------------------
def srgan_targets():
    return []


# --- evaluation, plots and report -----------------------------------------------------------
def evaluate_targets():
    return []


def get_final_output():
    """Everything the default target builds."""
    return (
        data_targets()
        + wgan_gp_targets()
        + upscale_targets()
        + srgan_targets()
        + evaluate_targets()
    )

"""The run plan: which scans, PNG sizes, image sets and models a validated config asks for.

Pure Python (no Snakemake, no torch), so that the Snakefile can import it and
tests/unit/test_plan.py can check it. `workflow/rules/common.smk` turns these records into
input functions; the targets of the default rule come from the rules' own outputs.

The config is the one Snakemake validated against `workflow/schemas/config.schema.yaml`,
so every key with a schema default is present; nothing here repeats a default.

Every path under ``results/`` that the plan names is built by one function of the
"paths" block below; each equals the output pattern of the rule that writes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

RESULTS = "results"

#: Upscaling methods of the workflow (the upscale rule's `method` wildcard).
UPSCALE_METHODS = ("bicubic", "srcnn", "srgan")
#: How a method is written in labels.
METHOD_LABELS = {"bicubic": "bicubic", "srcnn": "SRCNN", "srgan": "SRGAN"}


# --- paths ---------------------------------------------------------------------------------
def simulated_scan(scan: str) -> str:
    """DXchange file of a built-in (simulated) scan."""
    return f"{RESULTS}/scans/{scan}.h5"


def recon_folder(scan: str) -> str:
    """Reconstructed float32 TIFF slices of a scan."""
    return f"{RESULTS}/recon/{scan}"


def bounds_file(scan: str) -> str:
    """Clip bounds (JSON) of a scan's PNG export."""
    return f"{RESULTS}/preprocess/{scan}/bounds.json"


def split_file(scan: str) -> str:
    """Train/val/test split manifest (JSON) of a scan's PNG slices."""
    return f"{RESULTS}/png/{scan}/split.json"


def png_folder(scan: str, size: int) -> str:
    """Real PNG slices of a scan at `size` px."""
    return f"{RESULTS}/png/{scan}/{size}px"


def wgan_gp_model(scan: str, size: int) -> str:
    """Final checkpoint of the WGAN-GP of a scan at `size` px (log.csv beside it)."""
    return f"{RESULTS}/models/wgan_gp/{scan}_{size}px/final.pt"


def samples_folder(scan: str, size: int) -> str:
    """PNG samples of the WGAN-GP of a scan at `size` px."""
    return f"{RESULTS}/samples/wgan_gp/{scan}_{size}px"


def upscaled_folder(scan: str, method: str) -> str:
    """Low-size WGAN-GP samples of a scan upscaled to the high size by `method`."""
    return f"{RESULTS}/upscaled/{scan}/{method}"


def srcnn_model(scan: str) -> str:
    """Best checkpoint of the SRCNN of a scan (log.csv beside it)."""
    return f"{RESULTS}/models/srcnn/{scan}/best.pt"


def srgan_model(scan: str, preset: str, scale: int) -> str:
    """Best checkpoint of an SRGAN preset at a scale, applied to `scan`."""
    return f"{RESULTS}/models/srgan/{scan}_{preset}_x{scale}/best.pt"


def sr_volume(scan: str, preset: str, scale: int) -> str:
    """Super-resolved volume (PNG slices) of a scan by an SRGAN preset at a scale."""
    return f"{RESULTS}/sr_volumes/{scan}/{preset}_x{scale}"


def log_of(checkpoint: str) -> str:
    """Training log (CSV) beside a checkpoint."""
    return checkpoint.rsplit("/", 1)[0] + "/log.csv"


# --- scans and sizes -------------------------------------------------------------------------
def sizes(config: Mapping[str, Any]) -> list[int]:
    """PNG sizes (px), ascending."""
    return sorted(config["preprocess"]["sizes"])


def low_high(config: Mapping[str, Any]) -> tuple[int, int]:
    """(smallest, largest) PNG size: upscaling goes from the first to the second."""
    s = sizes(config)
    return s[0], s[-1]


def scan_sizes(config: Mapping[str, Any], scan: str) -> list[int]:
    """PNG sizes of one scan: those no larger than its slices (a binned built-in scan has
    columns / binning px, added as a size of its own when it is below the largest and not
    a size already; a real scan's width is only known once it is read: every size)."""
    entry = config["scans"][scan]
    all_sizes = sizes(config)
    if "builtin" not in entry:
        return all_sizes
    width = config["simulate"]["columns"] // entry["binning"]
    own = [width] if width < max(all_sizes) and width not in all_sizes else []
    return [s for s in all_sizes if s <= width] + own


def scan_file(config: Mapping[str, Any], scan: str) -> str:
    """The scan's DXchange file: simulated for built-in scans, the user's path otherwise."""
    entry = config["scans"][scan]
    return simulated_scan(scan) if "builtin" in entry else entry["path"]


def wgan_gp_scans(config: Mapping[str, Any]) -> list[str]:
    """Scans with WGAN-GP generators (their samples are upscaled and evaluated)."""
    return sorted(config["wgan_gp"]["scans"])


def evaluate_methods(config: Mapping[str, Any]) -> list[str]:
    """Upscaling methods compared (evaluate.methods); none with a single PNG size."""
    low, high = low_high(config)
    return [] if low == high else list(config["evaluate"]["methods"])


def upscale_methods(config: Mapping[str, Any]) -> list[str]:
    """Upscaling methods run (upscale.methods); none with a single PNG size."""
    low, high = low_high(config)
    return [] if low == high else list(config["upscale"]["methods"])


# --- image sets ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageSet:
    """One folder of PNG images of a scan that is plotted or compared.

    key: input name in the rules (``real_64``, ``generated_256``, ``upscaled_srcnn``);
    kind: ``real``, ``generated`` (WGAN-GP samples) or ``upscaled`` (low-size samples
    upscaled to the high size); size: image size in px; method: upscaling method (upscaled
    sets only); folder: the PNG folder; label: the one name shown in tables and plots.
    """

    scan: str
    kind: str
    size: int
    method: str | None
    key: str
    folder: str
    label: str

    @property
    def name(self) -> str:
        """Set name in the distance table: the folder below results/."""
        return self.folder[len(RESULTS) + 1 :]


def real_set(scan: str, size: int) -> ImageSet:
    """The real PNG slices of a scan at a size."""
    return ImageSet(
        scan, "real", size, None, f"real_{size}", png_folder(scan, size), f"real {size} px"
    )


def generated_set(scan: str, size: int) -> ImageSet:
    """The WGAN-GP samples of a scan at a size."""
    return ImageSet(
        scan,
        "generated",
        size,
        None,
        f"generated_{size}",
        samples_folder(scan, size),
        f"{size} px GAN",
    )


def upscaled_set(config: Mapping[str, Any], scan: str, method: str) -> ImageSet:
    """The low-size WGAN-GP samples of a scan upscaled to the high size by `method`."""
    low, high = low_high(config)
    return ImageSet(
        scan,
        "upscaled",
        high,
        method,
        f"upscaled_{method}",
        upscaled_folder(scan, method),
        f"{low} px GAN + {METHOD_LABELS[method]}",
    )


def image_sets(config: Mapping[str, Any], scan: str, methods: list[str]) -> list[ImageSet]:
    """Real and generated sets at every PNG size (in size order), then the upscaled sets
    of `methods`."""
    out = []
    for size in sizes(config):
        out += [real_set(scan, size), generated_set(scan, size)]
    return out + [upscaled_set(config, scan, m) for m in methods]


def distance_sets(config: Mapping[str, Any], scan: str) -> list[ImageSet]:
    """Sets compared with the real images (thesis figure 11): each evaluated upscaling
    method, then the WGAN-GP samples at the high size."""
    _, high = low_high(config)
    upscaled = [upscaled_set(config, scan, m) for m in evaluate_methods(config)]
    return upscaled + [generated_set(scan, high)]


def sample_sets(config: Mapping[str, Any], scan: str) -> list[ImageSet]:
    """Sets shown side by side in the samples figure (upscaled: upscale.methods)."""
    return image_sets(config, scan, upscale_methods(config))


def morphology_sets(config: Mapping[str, Any], scan: str) -> list[ImageSet]:
    """Sets whose morphology is compared (upscaled: evaluate.methods)."""
    return image_sets(config, scan, evaluate_methods(config))


# --- models behind the sets ------------------------------------------------------------------
@dataclass(frozen=True)
class Model:
    """A trained model behind a compared set: name (``wgan_gp_shale_64px``,
    ``srcnn_shale``), scan, checkpoint and its training log."""

    name: str
    scan: str
    checkpoint: str

    @property
    def log(self) -> str:
        return log_of(self.checkpoint)


def models(config: Mapping[str, Any], scan: str) -> list[Model]:
    """WGAN-GPs at the low and high size, and the SRCNN and SRGAN upscalers evaluated."""
    low, high = low_high(config)
    out = [
        Model(f"wgan_gp_{scan}_{size}px", scan, wgan_gp_model(scan, size))
        for size in sorted({low, high})
    ]
    if "srcnn" in evaluate_methods(config):
        out.append(Model(f"srcnn_{scan}", scan, srcnn_model(scan)))
    if "srgan" in evaluate_methods(config):
        out.append(Model(f"srgan_{scan}", scan, upscale_model(config, scan, "srgan")))
    return out


def pipelines(config: Mapping[str, Any]) -> dict[str, list]:
    """Distance set name -> [scan, models whose training produced it] (the equal-budget
    comparison of the compute table). Bicubic needs no model beyond the low-size WGAN-GP;
    SRCNN and SRGAN count their upscaler's training too (the generator comes first)."""
    low, _ = low_high(config)
    out: dict[str, list] = {}
    for scan in wgan_gp_scans(config):
        low_model = f"wgan_gp_{scan}_{low}px"
        for s in distance_sets(config, scan):
            if s.kind == "generated":
                out[s.name] = [scan, [f"wgan_gp_{scan}_{s.size}px"]]
            elif s.method in ("srcnn", "srgan"):
                out[s.name] = [scan, [low_model, f"{s.method}_{scan}"]]
            else:
                out[s.name] = [scan, [low_model]]
    return out


def upscale_model(config: Mapping[str, Any], scan: str, method: str) -> str | None:
    """The checkpoint an upscaling method needs (None for bicubic).

    srgan uses the preset upscale.srgan_preset trained on the scan's real pairs at the
    scale high / low; that needs srgan.hr_size = the high size and a whole scale.
    """
    if method == "srcnn":
        return srcnn_model(scan)
    if method == "srgan":
        low, high = low_high(config)
        if high % low or config["srgan"]["hr_size"] != high:
            raise ValueError(
                f"upscale method srgan: needs srgan.hr_size = {high} (the largest "
                f"preprocess size) and a whole scale factor {high}/{low}"
            )
        return srgan_model(scan, config["upscale"]["srgan_preset"], high // low)
    return None


# --- SRGAN grid -------------------------------------------------------------------------------
def srgan_run_grid(config: Mapping[str, Any]) -> list[tuple[str, int]]:
    """(preset, scale) pairs of the default target."""
    srgan = config["srgan"]
    return [(p, s) for p in srgan["run_presets"] for s in srgan["run_scales"]]


def srgan_full_grid(config: Mapping[str, Any]) -> list[tuple[str, int]]:
    """(preset, scale) pairs of the srgan_all target: every preset at its own scales."""
    presets = config["srgan"]["presets"]
    return [(p, s) for p in sorted(presets) for s in presets[p]["scales"]]


# --- summary ----------------------------------------------------------------------------------
def distance_title(scan: str) -> str:
    return f"Distances to the real images: {scan}"


def distance_validation_title(scan: str) -> str:
    return f"Offline distance of degraded real slices (validation): {scan}"


def morphology_title(scan: str) -> str:
    return f"Morphology of real, generated and upscaled images: {scan}"


COMPUTE_TITLE = "Compute accounting"


def sr_title(name: str) -> str:
    return f"Super-resolution PSNR/SSIM: {name}"


def bone_title(stem: str) -> str:
    return f"Bone metrics, SR and LR against HR (Pearson r over ROIs): {stem}"

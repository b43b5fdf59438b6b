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

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tomosynth.errors import ConfigError, DataError

RESULTS = "results"

#: Upscaling methods of the workflow (the upscale rule's `method` wildcard).
UPSCALE_METHODS = ("bicubic", "srcnn", "srgan")
#: How a method is written in labels.
METHOD_LABELS = {"bicubic": "bicubic", "srcnn": "SRCNN", "srgan": "SRGAN"}
#: ``protocol`` column of the SR tables: how the scored slices relate to the training data
#: (other slices of the same specimen, or a specimen never seen in training).
WITHIN_SPECIMEN = "within-specimen"
HELD_OUT = "held-out specimen"


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


#: Shape assumed for a scan file that fails its checks (tomo_00001's header): its jobs are
#: sized as a Tomobank scan until the reconstruct job stops with the one-line error.
FALLBACK_SCAN_SHAPE = (1500, 20, 20, 2048, 2048)


def scan_shape(
    config: Mapping[str, Any],
    scan: str,
    read_header: Callable[[str, str | None], tuple[int, int, int, int, int]],
) -> tuple[int, int, int, int, int]:
    """(angles, flats, darks, detector rows reconstructed, columns) of a scan.

    The simulator's settings for a built-in scan; `read_header(path, theta_units)` (the
    DXchange header, no projections read: tomosynth.io.inspect_dxchange) otherwise, or
    :data:`FALLBACK_SCAN_SHAPE` when it raises DataError. A slice range cuts the rows.
    """
    entry, sim = config["scans"][scan], config["simulate"]
    if "builtin" in entry:
        b = entry["binning"]
        shape = (
            sim["angles"],
            sim["n_flats"],
            sim["n_darks"],
            sim["slices"] // b,
            sim["columns"] // b,
        )
    else:
        try:
            shape = tuple(read_header(entry["path"], entry["theta_units"]))
        except DataError:
            shape = FALLBACK_SCAN_SHAPE
    if entry["slices"]:
        start, stop = entry["slices"]
        shape = shape[:3] + (max(0, min(stop, shape[3]) - start), shape[4])
    return shape  # type: ignore[return-value]


def scan_file(config: Mapping[str, Any], scan: str) -> str:
    """The scan's DXchange file: simulated for built-in scans, the user's path otherwise."""
    entry = config["scans"][scan]
    return simulated_scan(scan) if "builtin" in entry else entry["path"]


def wgan_gp_scans(config: Mapping[str, Any]) -> list[str]:
    """Scans with WGAN-GP generators (their samples are upscaled and evaluated).

    The WGAN-GP doubles a 16 x 16 map, so with any such scan every PNG size must be a power
    of two >= 16 (ConfigError otherwise; the schema cannot express it).
    """
    scans = sorted(config["wgan_gp"]["scans"])
    bad = [s for s in sizes(config) if s < 16 or s & (s - 1)]
    if scans and bad:
        raise ConfigError(
            f"config preprocess.sizes {sizes(config)}: the WGAN-GP needs powers of two >= 16 "
            "(it doubles a 16x16 map); change the sizes or set wgan_gp.scans: []"
        )
    return scans


def kept_slices(config: Mapping[str, Any], rows: int) -> int:
    """PNG slices of a scan with `rows` reconstructed rows: minus preprocess.skip_slices."""
    return max(1, rows - config["preprocess"]["skip_slices"])


def split_counts(config: Mapping[str, Any], rows: int) -> dict[str, int]:
    """Slices per split part (train/val/test) of a scan with `rows` reconstructed rows, as
    tomosynth.preprocess.make_split rounds them."""
    n = kept_slices(config, rows)
    frac = config["preprocess"]["split"]
    val, test = (max(1, round(frac[k] * n)) if frac[k] > 0 else 0 for k in ("val", "test"))
    return {"train": max(0, n - val - test), "val": val, "test": test}


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
            raise ConfigError(
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


#: fold_of(scan, specimens, folds) -> (fold index, training specimens): tomosynth.sr_data's
#: (passed in: it imports torch, which the plan must not).
FoldOf = Callable[[str, list[str], int], tuple[int, list[str]]]


def srgan_preset(config: Mapping[str, Any], preset: str) -> dict[str, dict]:
    """A preset merged over the shared srgan settings: weights, train, generator,
    discriminator (an override key the shared block lacks is a ConfigError)."""
    srgan = config["srgan"]
    p = srgan["presets"][preset]
    out: dict[str, dict] = {"weights": {k: p["weights"][k] for k in ("adversarial", "l1", "tv")}}
    for block in ("train", "generator", "discriminator"):
        unknown = set(p[block]) - set(srgan[block])
        if unknown:
            raise ConfigError(
                f"config srgan.presets.{preset}.{block}: unknown keys {sorted(unknown)} "
                f"(known: {sorted(srgan[block])})"
            )
        out[block] = {**srgan[block], **p[block]}
    return out


def srgan_fold(
    config: Mapping[str, Any], scan: str, fold_of: FoldOf
) -> tuple[int | None, list[str]]:
    """(fold index, training specimens) of the model applied to `scan`: (None, [scan]) without
    cross-validation (scan not in srgan.cv.specimens), else the specimens outside its fold."""
    cv = config["srgan"]["cv"]
    specimens = sorted(cv["specimens"])
    if scan not in specimens:
        return None, [scan]
    return fold_of(scan, specimens, cv["folds"])


def srgan_lr_source(config: Mapping[str, Any], scan: str) -> str:
    """LR of a scan's SRGAN models: an upscaler of GAN samples (a wgan_gp scan) learns from
    srgan.upscaler_lr_source (export: the scan's own low-size PNGs, made the way the samples
    imitate), every other scan from srgan.lr_source."""
    srgan = config["srgan"]
    if scan in wgan_gp_scans(config):
        return srgan["upscaler_lr_source"]
    return srgan["lr_source"]


def srgan_slice_stride(config: Mapping[str, Any], scan: str) -> int:
    """LR slice index = HR slice index // stride (the coarse scan's extra row binning); 1
    unless the scan's LR source is pairs."""
    if srgan_lr_source(config, scan) != "pairs":
        return 1
    hr_bin = config["scans"][scan]["binning"]
    lr_bin = config["scans"][srgan_lr_scan(config, scan)]["binning"]
    if lr_bin % hr_bin:
        raise ConfigError(
            f"config scans: binning of the LR scan of {scan!r} ({lr_bin}) is not a multiple "
            f"of its own ({hr_bin})"
        )
    return lr_bin // hr_bin


def srgan_lr_scan(config: Mapping[str, Any], scan: str) -> str:
    """The coarse (real LR) scan paired with `scan` (srgan.lr_scans)."""
    lr_scan = config["srgan"]["lr_scans"].get(scan)
    if lr_scan is None:
        raise ConfigError(
            f"config srgan.lr_scans: no coarse scan given for {scan!r} (lr_source is pairs)"
        )
    return lr_scan


def srgan_folders(config: Mapping[str, Any], scan: str, scale: int) -> dict[str, str]:
    """HR and (real-pair mode) LR PNG folders of a scan at a scale."""
    srgan = config["srgan"]
    hr_size = srgan["hr_size"]
    if hr_size % int(scale):
        raise ConfigError(f"config srgan.hr_size: {hr_size} is not divisible by the scale {scale}")
    out = {"hr": png_folder(scan, hr_size)}
    source = srgan_lr_source(config, scan)
    if source == "pairs":
        out["lr"] = png_folder(srgan_lr_scan(config, scan), hr_size // int(scale))
    elif source == "export":
        if hr_size // int(scale) not in config["preprocess"]["sizes"]:
            raise ConfigError(
                f"config srgan lr source export for {scan!r} at x{scale}: "
                f"{hr_size // int(scale)} px is not in preprocess.sizes; add it"
            )
        out["lr"] = png_folder(scan, hr_size // int(scale))
    return out


def train_srgan_inputs(
    config: Mapping[str, Any], scan: str, preset: str, scale: int, fold_of: FoldOf
) -> dict[str, list[str]]:
    """HR (and real LR) folders and split manifests of the specimens the model applied to
    `scan` trains on (every preset reads the same)."""
    _, specimens = srgan_fold(config, scan, fold_of)
    folders = [srgan_folders(config, s, scale) for s in specimens]
    out = {"hr": [f["hr"] for f in folders], "split": [split_file(s) for s in specimens]}
    if all("lr" in f for f in folders):
        out["lr"] = [f["lr"] for f in folders]
    return out


def super_resolve_inputs(config: Mapping[str, Any], scan: str, preset: str, scale: int) -> dict:
    """The scan's model and its HR (and real LR) slices."""
    return {"model": srgan_model(scan, preset, scale), **srgan_folders(config, scan, scale)}


def sr_run_volumes(config: Mapping[str, Any], scan: str) -> list[str]:
    """SR volumes of a scan over the default grid (srgan_run_grid)."""
    return [sr_volume(scan, p, s) for p, s in srgan_run_grid(config)]


def sr_grid_volumes(config: Mapping[str, Any], scan: str) -> list[str]:
    """SR volumes of a scan over the report's whole grid (srgan_full_grid)."""
    return [sr_volume(scan, p, s) for p, s in srgan_full_grid(config)]


def sr_eval_set(config: Mapping[str, Any], scan: str, fold_of: FoldOf) -> str:
    """Slices scored: the test split, or all slices of a held-out (cross-validated) specimen."""
    fold, _ = srgan_fold(config, scan, fold_of)
    return "test" if fold is None else "all"


def train_srgan_params(
    config: Mapping[str, Any], scan: str, preset: str, scale: int, fold_of: FoldOf
) -> dict:
    """Training config (a preset at a scale), slice strides and provenance of one model."""
    srgan = config["srgan"]
    p = srgan_preset(config, preset)
    fold, specimens = srgan_fold(config, scan, fold_of)
    return {
        "config": {
            "scale": int(scale),
            "generator": p["generator"],
            "discriminator": p["discriminator"],
            "weights": p["weights"],
            **p["train"],
            "seed": srgan["seed"],
            "device": srgan["device"],
        },
        "slice_strides": [srgan_slice_stride(config, s) for s in specimens],
        "meta": {
            "scan": scan,
            "preset": preset,
            "fold": fold,
            "train_specimens": specimens,
            "lr_source": srgan_lr_source(config, scan),
        },
    }


def super_resolve_params(
    config: Mapping[str, Any], scan: str, preset: str, scale: int, fold_of: FoldOf
) -> dict:
    """Inference settings and provenance (meta.json) of one SR volume.

    hr_voxel_um: PNG pixel = voxel x reconstructed width / hr_size, known for built-in scans.
    """
    srgan = config["srgan"]
    fold, specimens = srgan_fold(config, scan, fold_of)
    entry = config["scans"][scan]
    hr_voxel_um = None
    if "builtin" in entry:
        columns = config["simulate"]["columns"] // entry["binning"]
        hr_voxel_um = entry["voxel_um"] * columns / srgan["hr_size"]
    pairs = srgan_lr_source(config, scan) == "pairs"
    return {
        "scale": int(scale),
        "slice_stride": srgan_slice_stride(config, scan),
        "device": srgan["device"],
        "batch_size": srgan["infer_batch"],
        "meta": {
            "scan": scan,
            "preset": preset,
            "scale": int(scale),
            "fold": fold,
            "train_specimens": specimens,
            "lr_source": srgan_lr_source(config, scan),
            "lr_scan": srgan["lr_scans"].get(scan) if pairs else None,
            "scan_voxel_um": entry["voxel_um"],
            "hr_size": srgan["hr_size"],
            "hr_voxel_um": hr_voxel_um,
            "seed": srgan["seed"],
        },
    }


# --- rule parameters -------------------------------------------------------------------------
#: recon keys that do not change the slices: the script reads them from the config (threads
#: from the rule), so that changing them does not trigger a rerun through `params`.
RECON_RUN_KEYS = ("device", "memory_budget_mb", "threads")
#: recon keys left out of `params` at these values (their defaults, as in the schema and in
#: `tomosynth.recon.reconstruct_scan`): reconstructions made before the key existed keep
#: their params, so Snakemake's params trigger does not rerun them. The script passes the
#: value back when the key is absent.
RECON_OMITTED_DEFAULTS = {"center_method": "auto", "stripe_size": 11}


def simulate_params(config: Mapping[str, Any], scan: str) -> dict:
    """Simulator settings of one built-in scan: the shared sizes plus the scan's own entry."""
    entry = config["scans"][scan]
    keys = ("seed", "voxel_um", "binning", "bone_fraction", "trabecular_scale")
    return dict(config["simulate"], kind=entry["builtin"], **{k: entry[k] for k in keys})


def recon_params(config: Mapping[str, Any], scan: str) -> dict:
    """Reconstruction settings of one scan (per-scan centre and slice range override)."""
    entry = config["scans"][scan]
    params = {k: v for k, v in config["recon"].items() if k not in RECON_RUN_KEYS}
    if entry["center"] is not None:
        params["center"] = entry["center"]
    params["slices"] = entry["slices"]
    params["theta_units"] = entry["theta_units"]
    for key, default in RECON_OMITTED_DEFAULTS.items():
        if key in params and params[key] == default:
            del params[key]  # the default is left out: see RECON_OMITTED_DEFAULTS
    return params


def distance_provenance(config: Mapping[str, Any], scan: str) -> dict:
    """Seeds and settings recorded in the distance table's sidecar JSON."""
    low, high = low_high(config)
    return {
        "scan_config": config["scans"][scan],
        "split_seed": config["preprocess"]["seed"],
        "percentiles": config["preprocess"]["percentiles"],
        "wgan_gp_seed": config["wgan_gp"]["train"]["seed"],
        "wgan_gp_sample": config["wgan_gp"]["sample"],
        "srcnn_seed": config["srcnn"]["seed"],
        "sizes": {"low": low, "high": high},
    }


def morphology_provenance(config: Mapping[str, Any], scan: str) -> dict:
    """Settings recorded in the morphology table's sidecar JSON."""
    return {
        "scan": scan,
        "scan_config": config["scans"][scan],
        "split_seed": config["preprocess"]["seed"],
        "wgan_gp_seed": config["wgan_gp"]["train"]["seed"],
        "sizes": sizes(config),
    }


def bone_provenance(config: Mapping[str, Any], scan: str, preset: str, scale: int) -> dict:
    """Settings recorded in the bone table's sidecar JSON."""
    return {
        "scan": scan,
        "preset": preset,
        "scale": int(scale),
        "scan_config": config["scans"][scan],
        "srgan_seed": config["srgan"]["seed"],
    }


def distance_inputs(config: Mapping[str, Any], scan: str) -> dict[str, str]:
    """compute_distance's inputs: real PNGs, split, scan context (centre, clip bounds), the
    compared sets and the checkpoints behind them."""
    _, high = low_high(config)
    inputs = {
        "png": png_folder(scan, high),
        "split": split_file(scan),
        "bounds": bounds_file(scan),
        "recon": recon_folder(scan),
    }
    inputs.update({s.key: s.folder for s in distance_sets(config, scan)})
    inputs.update({f"ckpt_{m.name}": m.checkpoint for m in models(config, scan)})
    return inputs


def scan_voxel_um(config: Mapping[str, Any], scan: str) -> float:
    """The scan's voxel size (um): the bone metrics' fallback when an SR volume's meta.json
    has no hr_voxel_um."""
    return config["scans"][scan]["voxel_um"]


def distance_set_names(config: Mapping[str, Any], scan: str) -> dict[str, list[str]]:
    """Input key -> [set name, label] of the compared sets (compute_distance's script)."""
    return {s.key: [s.name, s.label] for s in distance_sets(config, scan)}


def distance_validation_inputs(config: Mapping[str, Any], scan: str) -> dict[str, str]:
    """Real PNGs (the size the distances are computed at) and the split manifest."""
    return {"png": png_folder(scan, low_high(config)[1]), "split": split_file(scan)}


def morphology_inputs(config: Mapping[str, Any], scan: str) -> dict[str, str]:
    """Input key -> folder of the sets whose morphology is compared."""
    return {s.key: s.folder for s in morphology_sets(config, scan)}


def morphology_set_kinds(config: Mapping[str, Any], scan: str) -> dict[str, list[str]]:
    """Input key -> [label, kind] of the morphology sets (compute_morphology's script)."""
    return {s.key: [s.label, s.kind] for s in morphology_sets(config, scan)}


def sample_folders(config: Mapping[str, Any], scan: str) -> list[str]:
    """Folders of the image sets shown side by side."""
    return [s.folder for s in sample_sets(config, scan)]


def sample_labels(config: Mapping[str, Any], scan: str) -> list[str]:
    """Labels of the image sets shown side by side."""
    return [s.label for s in sample_sets(config, scan)]


# --- summary ----------------------------------------------------------------------------------
def bone_figure_title(scan: str, preset: str, scale: int) -> str:
    """Title of a bone figure."""
    return f"{scan}, {preset} x{scale}: per-ROI bone metrics"


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

# Shared helpers: config validation, target lists, input functions. Only this file holds
# helpers; rule files stay declarative.
import math
import sys
from pathlib import Path

from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir)))  # tomosynth of this checkout
from tomosynth import config_checks, plan

# One short line for a bad key (Snakemake's validate would print schema and config), then
# Snakemake's validation (fills the defaults), then the cross-checks the schema cannot express.
config_checks.check_schema(
    config, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"
)
validate(config, schema="../schemas/config.schema.yaml")
config_checks.check_consistency(config)
config_checks.restrict_to_run_scans(config)
for _warning in config_checks.overlay_warnings(workflow.overwrite_configfiles, config):
    print(_warning, file=sys.stderr)
if workflow.is_main_process:
    # Folder outputs whose files were deleted or changed (Snakemake checks only existence).
    from tomosynth.manifest import damaged_warnings

    for _warning in damaged_warnings("results"):
        print(_warning, file=sys.stderr)
# Ctrl-C / kill -INT of Snakemake reaches the running jobs (trainings checkpoint and stop).
from tomosynth.jobs import forward_interrupt_to_jobs

forward_interrupt_to_jobs()


SCANS = config_checks.select_scans(config)
BUILTIN_SCANS = sorted(s for s in SCANS if "builtin" in config["scans"][s])
SIZES = plan.sizes(config)


wildcard_constraints:
    scan="|".join(SCANS),
    size=r"\d+",


# --- data stage ---------------------------------------------------------------------------
def get_scan_h5(wildcards):
    """The scan's DXchange file: simulated for built-in scans, the user's path otherwise."""
    return plan.scan_file(config, wildcards.scan)


def get_simulate_params(wildcards):
    """Simulator settings of one built-in scan: the shared sizes plus the scan's own entry."""
    entry = config["scans"][wildcards.scan]
    return dict(
        config["simulate"],
        kind=entry["builtin"],
        seed=entry["seed"],
        voxel_um=entry["voxel_um"],
        binning=entry["binning"],
        bone_fraction=entry["bone_fraction"],
        trabecular_scale=entry["trabecular_scale"],
    )


# recon keys that do not change the slices: the script reads them from the config (threads
# from the rule), so that changing them does not trigger a rerun through `params`.
RECON_RUN_KEYS = ("device", "memory_budget_mb", "threads")


def get_recon_params(wildcards):
    """Reconstruction settings of one scan (per-scan centre and slice range override)."""
    entry = config["scans"][wildcards.scan]
    params = {k: v for k, v in config["recon"].items() if k not in RECON_RUN_KEYS}
    if entry["center"] is not None:
        params["center"] = entry["center"]
    params["slices"] = entry["slices"]
    params["theta_units"] = entry["theta_units"]
    return params


def get_recon_env():
    """tomopy runs in its own conda env; the other backends in the recon env."""
    if config["recon"]["backend"] == "tomopy":
        return "../../envs/tomopy.yaml"
    return "../../envs/recon.yaml"


# Backends that run on CUDA when the device allows it (auto: tomopy is not in envs/recon.yaml,
# so auto resolves to one of these there).
RECON_GPU_BACKENDS = ("auto", "torch", "fourier")


def get_recon_gpu():
    """1 when the reconstruction can use CUDA (device auto/cuda and a GPU backend), else 0."""
    cfg = config["recon"]
    return int(
        cfg["device"] in ("auto", "cuda") and cfg["backend"] in RECON_GPU_BACKENDS
    )


def get_recon_mem_mb(wildcards, input):
    """Memory request of one reconstruction (MB), from the scan's shape.

    tomosynth.recon.recon_memory_bound_mb (the stated bound of one chunk, measured by
    benchmarks/bench_recon.py --memory) + 2 B x (A+F+D) x R x C (raw chunk of the
    sinogram-order copy) + 1 GB of imported libraries (+1 GB of CUDA libraries when a GPU
    is requested), times 1.5 for node-to-node differences; at least 2000.
    """
    from tomosynth.recon import recon_memory_bound_mb

    shape = scan_shape(wildcards.scan)
    a, f, d, rows, cols = shape
    cfg = config["recon"]
    r = min(cfg["chunk_rows"], rows)
    bound = recon_memory_bound_mb(
        a, f, d, r, cols, cfg["backend"], cfg["memory_budget_mb"], cfg["threads"]
    )
    mb = bound + 2 * (a + f + d) * r * cols / 2**20 + 1024 * (1 + get_recon_gpu())
    return max(2000, int(math.ceil(1.5 * mb / 100.0)) * 100)


# Seconds per slice per (angle x column^2), measured on a 2-core machine at 2048 columns /
# 1,500 angles, one thread (benchmarks/bench_recon.py, README): fourier ~3.2 slices/s
# (5.2e-11), torch FBP 0.13 slices/s (1.2e-9), astra 0.011 slices/s (1.5e-8); tomopy
# gridrec 4.55 slices/s (3.5e-11, issue-tracker measurement). On a GPU: not measured yet;
# assumed no faster than the fourier backend on one CPU thread (operation counts suggest
# ~0.01 s per such slice). Reading: 50 MB/s of uncompressed counts.
RECON_SECONDS_PER_ANGLE_PIXEL2 = {
    "fourier": 5.2e-11,
    "auto": 5.2e-11,
    "torch": 1.2e-9,
    "astra": 1.5e-8,
    "tomopy": 3.5e-11,
    "gpu": 5.2e-11,
}
RECON_READ_BYTES_PER_S = 50e6


def get_recon_runtime(wildcards, input, threads):
    """Minutes for the scheduler: slices x per-slice cost on the device (CPU cost divided
    by threads) + one read of the counts, times 1.5, plus 10 min for start-up and the
    centre search; 120 when the scan's shape is unknown."""
    shape = scan_shape(wildcards.scan)
    a, f, d, rows, cols = shape
    cfg = config["recon"]
    if get_recon_gpu():
        per_slice = RECON_SECONDS_PER_ANGLE_PIXEL2["gpu"] * a * cols**2
    else:
        rate = RECON_SECONDS_PER_ANGLE_PIXEL2[cfg["backend"]]
        per_slice = rate * a * cols**2 / threads
    read = 2 * (a + f + d) * rows * cols / RECON_READ_BYTES_PER_S
    return int(math.ceil(1.5 * (rows * per_slice + read) / 60.0)) + 10


def scan_sizes(scan):
    """PNG sizes of one scan (tomosynth.plan.scan_sizes)."""
    return plan.scan_sizes(config, scan)


def get_scan_sizes(wildcards):
    return scan_sizes(wildcards.scan)


def get_scan_overview_pngs(wildcards):
    return [plan.png_folder(wildcards.scan, s) for s in scan_sizes(wildcards.scan)]


def data_targets():
    targets = expand(rules.split_manifest.output.split, scan=SCANS)
    for scan in SCANS:
        targets += expand(rules.export_png.output.png, scan=scan, size=scan_sizes(scan))
    return targets


# --- job sizes (tomosynth.sizing: formulas and measured per-unit costs) ---------------------
SIZING = config["sizing"]
SIZING_THREADS = SIZING["threads"]


def sizing_policy():
    from tomosynth.sizing import Policy

    return Policy(
        margin=SIZING["margin"],
        overhead_minutes=SIZING["overhead_minutes"],
        max_runtime_minutes=SIZING["max_runtime_minutes"],
    )


_SHAPES = {}


FALLBACK_SCAN_SHAPE = (1500, 20, 20, 2048, 2048)  # tomo_00001's header


def scan_shape(scan):
    """(angles, flats, darks, detector rows reconstructed, columns) of a scan: the
    simulator's settings for a built-in scan, the DXchange header otherwise
    (inspect_dxchange with the scan's theta_units; no projections read), or
    FALLBACK_SCAN_SHAPE for a file that fails its checks (the job itself then stops with
    the one-line error)."""
    if scan not in _SHAPES:
        entry = config["scans"][scan]
        if "builtin" in entry:
            b = entry["binning"]
            sim = config["simulate"]
            a, f, d = sim["angles"], sim["n_flats"], sim["n_darks"]
            rows, cols = sim["slices"] // b, sim["columns"] // b
        else:
            from tomosynth.errors import DataError
            from tomosynth.io import inspect_dxchange

            try:
                info = inspect_dxchange(entry["path"], entry["theta_units"])
                a, f, d = info.n_angles, info.n_flats, info.n_darks
                rows, cols = info.n_rows, info.n_cols
            except DataError:
                # The reconstruct job reports a bad file in one line; until then its jobs are
                # sized as a Tomobank scan.
                a, f, d, rows, cols = FALLBACK_SCAN_SHAPE
        if entry["slices"]:
            start, stop = entry["slices"]
            rows = max(0, min(stop, rows) - start)
        _SHAPES[scan] = (a, f, d, rows, cols)
    return _SHAPES[scan]


def scan_geometry(scan):
    """(angles, detector rows reconstructed, columns) of a scan (`scan_shape`)."""
    a, _, _, rows, cols = scan_shape(scan)
    return a, rows, cols


def kept_slices(scan):
    """PNG slices of a scan: reconstructed rows minus preprocess.skip_slices."""
    return max(1, scan_geometry(scan)[1] - config["preprocess"]["skip_slices"])


def split_count(scan, part):
    """Slices of one split part (train/val/test), as make_split rounds them."""
    n = kept_slices(scan)
    frac = config["preprocess"]["split"]
    val, test = (
        max(1, round(frac[k] * n)) if frac[k] > 0 else 0 for k in ("val", "test")
    )
    return {"train": max(0, n - val - test), "val": val, "test": test}[part]


def job_size(name, wildcards):
    """{runtime, mem_mb} of one job of the rule `name` (see tomosynth.sizing for each formula)."""
    from tomosynth import sizing

    policy = sizing_policy()
    if name in ("clip_bounds", "export_png"):
        _, rows, cols = scan_geometry(wildcards.scan)
        n = kept_slices(wildcards.scan)
        return getattr(sizing, name)(n, cols, SIZING_THREADS[name], policy)
    if name == "compute_bone_metrics":
        return sizing.bone_metrics(
            kept_slices(wildcards.scan), SRGAN["hr_size"], policy
        )
    if name == "compute_distance":
        dist = EVALUATE["distance"]
        sets = distance_sets(wildcards.scan)
        return sizing.distance(
            n_real=kept_slices(wildcards.scan),
            n_generated=len(sets) * config["wgan_gp"]["sample"]["n"],
            n_sets=len(sets),
            n_references=2,
            replicates=dist["bootstrap"]
            + dist["baseline_repeats"]
            + dist["fid_inf_points"]
            + 1,
            fid=bool(get_distance_gpu()),
            device=EVALUATE["device"],
            gpu=bool(get_distance_gpu()),
            threads=SIZING_THREADS["compute_distance"],
            policy=policy,
        )
    if name == "train_srcnn":
        scan = wildcards.scan
        return sizing.train_srcnn(
            n_train=split_count(scan, "train"),
            n_val=split_count(scan, "val"),
            size=HIGH_SIZE,
            cfg=config["srcnn"],
            gpu=True,
            policy=policy,
        )
    if name == "train_srgan":
        preset = srgan_preset(wildcards.preset)
        _, specimens = srgan_fold(wildcards.scan)
        return sizing.train_srgan(
            n_train=sum(split_count(s, "train") for s in specimens),
            n_val=sum(split_count(s, "val") for s in specimens),
            hr_size=SRGAN["hr_size"],
            scale=int(wildcards.scale),
            train=preset["train"],
            generator=preset["generator"],
            device=SRGAN["device"],
            gpu=True,
            policy=policy,
        )
    raise ValueError(f"job_size: no formula for the rule {name}")


def size_of(name, key):
    """A resource callable: `key` (runtime or mem_mb) of the job of rule `name`."""

    def resource(wildcards):
        return job_size(name, wildcards)[key]

    return resource


# --- generators (wgan_gp) ------------------------------------------------------------------
WGAN_GP_SCANS = plan.wgan_gp_scans(config)
if set(WGAN_GP_SCANS) - set(SCANS):
    raise ValueError(
        f"config wgan_gp.scans: {sorted(set(WGAN_GP_SCANS) - set(SCANS))} not in scans {SCANS}"
    )
if WGAN_GP_SCANS and any(s < 16 or s & (s - 1) for s in SIZES):
    raise ValueError(
        f"config preprocess.sizes {SIZES}: the WGAN-GP needs powers of two >= 16 "
        "(it doubles a 16x16 map); change the sizes or set wgan_gp.scans: []"
    )


def get_wgan_gp_params(wildcards):
    """Training settings of one size: wgan_gp.train with its by_size overrides applied."""
    overrides = config["wgan_gp"]["by_size"]
    override = overrides.get(
        str(wildcards.size), overrides.get(int(wildcards.size), {})
    )
    return dict(config["wgan_gp"]["train"], **override)


def get_wgan_gp_runtime(wildcards):
    """SLURM/local runtime in minutes: the training budget plus the configured margin."""
    cfg = config["wgan_gp"]
    return int(
        math.ceil(cfg["train"]["budget_minutes"] + cfg["runtime_margin_minutes"])
    )


def wgan_gp_targets():
    return expand(
        [
            rules.train_wgan_gp.output.model,
            rules.sample_wgan_gp.output.samples,
            rules.sample_wgan_gp.output.contact_sheet,
        ],
        scan=WGAN_GP_SCANS,
        size=SIZES,
    )


# --- upscaling (bicubic, srcnn) -------------------------------------------------------------
# Low-resolution samples (smallest PNG size) are upscaled to the largest size; SRCNN is
# trained on the real pairs of the same two sizes. New model-based methods (srgan) add
# themselves to UPSCALE_METHODS and to get_upscale_model.
UPSCALE_METHODS = list(plan.UPSCALE_METHODS)
LOW_SIZE, HIGH_SIZE = plan.low_high(config)


wildcard_constraints:
    method="|".join(UPSCALE_METHODS),


def upscale_scans():
    """Scans with generated samples to upscale (the WGAN-GP scans), checked against scans."""
    scans = plan.wgan_gp_scans(config)
    unknown = [s for s in scans if s not in config["scans"]]
    if unknown:
        raise ValueError(f"wgan_gp.scans: {unknown} not among the configured scans")
    return scans


def get_upscale_model(wildcards):
    """The trained model a method needs: SRCNN's best.pt for srcnn, an SRGAN preset trained
    on the scan's real pairs for srgan, nothing for bicubic."""
    model = plan.upscale_model(config, wildcards.scan, wildcards.method)
    return [] if model is None else model


def upscale_targets():
    """Upscaled sample folders per scan and method, and the SRCNN figures."""
    methods = plan.upscale_methods(config)  # none with a single PNG size
    if not methods:
        return []
    targets = expand(rules.upscale.output.images, scan=upscale_scans(), method=methods)
    if "srcnn" in methods:
        targets += [
            str(rules.plot_srcnn_training.output.png),
            str(rules.plot_srcnn_training.output.pdf),
            str(rules.plot_srcnn_comparison.output.png),
            str(rules.plot_srcnn_comparison.output.pdf),
        ]
    return targets


# --- SRGAN family ----------------------------------------------------------------------------
SRGAN = config["srgan"]
SRGAN_PRESETS = sorted(SRGAN["presets"])


wildcard_constraints:
    preset="|".join(SRGAN_PRESETS),
    scale="2|4|8",


def _srgan_check_scan(scan, key):
    if scan not in config["scans"]:
        raise ValueError(f"config {key}: {scan!r} is not a scan listed under scans")
    return scan


def srgan_preset(preset):
    """A preset merged over the shared srgan settings: weights, train, generator, discriminator."""
    p = SRGAN["presets"][preset]
    for block in ("train", "generator", "discriminator"):
        unknown = set(p[block]) - set(SRGAN[block])
        if unknown:
            raise ValueError(
                f"config srgan.presets.{preset}.{block}: unknown keys {sorted(unknown)}"
            )
    return {
        "weights": {k: p["weights"][k] for k in ("adversarial", "l1", "tv")},
        "train": {**SRGAN["train"], **p["train"]},
        "generator": {**SRGAN["generator"], **p["generator"]},
        "discriminator": {**SRGAN["discriminator"], **p["discriminator"]},
    }


def srgan_fold(scan):
    """(fold index, training specimens) of the model applied to `scan`.

    Without cross-validation (scan not in srgan.cv.specimens): (None, [scan]), the scan's own
    train/val splits. With it: the specimens outside the scan's fold (tomosynth.sr_data).
    """
    specimens = sorted(SRGAN["cv"]["specimens"])
    if scan not in specimens:
        return None, [scan]
    for s in specimens:
        _srgan_check_scan(s, "srgan.cv.specimens")
    from tomosynth.sr_data import fold_of  # imports torch: only when CV is configured

    return fold_of(scan, specimens, SRGAN["cv"]["folds"])


def srgan_lr_source(scan):
    """LR of a scan's SRGAN models: an upscaler of GAN samples (a wgan_gp scan) learns from
    srgan.upscaler_lr_source (export: the scan's own low-size PNGs, made as the samples
    imitate), every other scan from srgan.lr_source."""
    if scan in plan.wgan_gp_scans(config):
        return SRGAN["upscaler_lr_source"]
    return SRGAN["lr_source"]


def _srgan_lr_scan(scan):
    lr_scan = SRGAN["lr_scans"].get(scan)
    if lr_scan is None:
        raise ValueError(f"config srgan.lr_scans: no coarse scan given for {scan!r}")
    return _srgan_check_scan(lr_scan, f"srgan.lr_scans.{scan}")


def _srgan_slice_stride(scan):
    """LR slice index = HR slice index // stride: the coarse scan's extra row binning."""
    hr_bin = config["scans"][scan]["binning"]
    lr_bin = config["scans"][_srgan_lr_scan(scan)]["binning"]
    if lr_bin % hr_bin:
        raise ValueError(
            f"config scans: binning of the LR scan of {scan!r} is not a multiple of its own"
        )
    return lr_bin // hr_bin


def _srgan_folders(scan, scale):
    """HR and (real-pair mode) LR PNG folders of a scan."""
    hr_size = SRGAN["hr_size"]
    if hr_size % int(scale):
        raise ValueError(
            f"config srgan.hr_size: {hr_size} is not divisible by the scale {scale}"
        )
    out = {"hr": plan.png_folder(scan, hr_size)}
    source = srgan_lr_source(scan)
    if source == "pairs":
        out["lr"] = plan.png_folder(_srgan_lr_scan(scan), hr_size // int(scale))
    elif source == "export":
        if hr_size // int(scale) not in config["preprocess"]["sizes"]:
            raise ValueError(
                f"config srgan lr source export for {scan!r} at x{scale}: "
                f"{hr_size // int(scale)} px is not in preprocess.sizes; add it"
            )
        out["lr"] = plan.png_folder(scan, hr_size // int(scale))
    return out


def get_train_srgan_input(wildcards):
    """HR (and real LR) folders and split manifests of the training specimens."""
    _, specimens = srgan_fold(wildcards.scan)
    folders = [_srgan_folders(s, wildcards.scale) for s in specimens]
    out = {
        "hr": [f["hr"] for f in folders],
        "split": [plan.split_file(s) for s in specimens],
    }
    if all("lr" in f for f in folders):
        out["lr"] = [f["lr"] for f in folders]
    return out


def get_train_srgan_params(wildcards):
    """Training config (a preset at a scale) and provenance of one model."""
    preset = srgan_preset(wildcards.preset)
    fold, specimens = srgan_fold(wildcards.scan)
    pairs = [srgan_lr_source(s) == "pairs" for s in specimens]
    return {
        "config": {
            "scale": int(wildcards.scale),
            "generator": preset["generator"],
            "discriminator": preset["discriminator"],
            "weights": preset["weights"],
            **preset["train"],
            "seed": SRGAN["seed"],
            "device": SRGAN["device"],
        },
        "slice_strides": [
            _srgan_slice_stride(s) if p else 1 for s, p in zip(specimens, pairs)
        ],
        "meta": {
            "scan": wildcards.scan,
            "preset": wildcards.preset,
            "fold": fold,
            "train_specimens": specimens,
            "lr_source": srgan_lr_source(wildcards.scan),
        },
    }


def get_super_resolve_input(wildcards):
    """The scan's model and its HR (and real LR) slices."""
    return {
        "model": plan.srgan_model(wildcards.scan, wildcards.preset, wildcards.scale),
        **_srgan_folders(wildcards.scan, wildcards.scale),
    }


def get_super_resolve_params(wildcards):
    fold, specimens = srgan_fold(wildcards.scan)
    pairs = srgan_lr_source(wildcards.scan) == "pairs"
    entry = config["scans"][wildcards.scan]
    # PNG pixel = voxel x reconstructed width / hr_size; the width is known for built-in scans
    hr_voxel_um = None
    if "builtin" in entry:
        columns = config["simulate"]["columns"] // entry["binning"]
        hr_voxel_um = entry["voxel_um"] * columns / SRGAN["hr_size"]
    return {
        "scale": int(wildcards.scale),
        "slice_stride": _srgan_slice_stride(wildcards.scan) if pairs else 1,
        "device": SRGAN["device"],
        "batch_size": SRGAN["infer_batch"],
        "meta": {
            "scan": wildcards.scan,
            "preset": wildcards.preset,
            "scale": int(wildcards.scale),
            "fold": fold,
            "train_specimens": specimens,
            "lr_source": srgan_lr_source(wildcards.scan),
            "lr_scan": SRGAN["lr_scans"].get(wildcards.scan) if pairs else None,
            "scan_voxel_um": entry["voxel_um"],
            "hr_size": SRGAN["hr_size"],
            "hr_voxel_um": hr_voxel_um,
            "seed": SRGAN["seed"],
        },
    }


def srgan_run_grid():
    """(preset, scale) pairs of the default target."""
    return plan.srgan_run_grid(config)


def srgan_full_grid():
    """(preset, scale) pairs of srgan_all: every preset at its report scales."""
    return plan.srgan_full_grid(config)


def _srgan_volumes(scan, grid):
    return [plan.sr_volume(scan, p, s) for p, s in grid]


def get_sr_metrics_volumes(wildcards):
    return _srgan_volumes(wildcards.scan, srgan_run_grid())


def get_sr_metrics_grid_volumes(wildcards):
    return _srgan_volumes(wildcards.scan, srgan_full_grid())


def get_sr_eval_set(wildcards):
    """Slices scored: the test split, or all slices of a held-out (cross-validated) specimen."""
    fold, _ = srgan_fold(wildcards.scan)
    return "test" if fold is None else "all"


def srgan_cv_slices():
    return expand(
        rules.compute_sr_metrics.output.slices, scan=sorted(SRGAN["cv"]["specimens"])
    )


def srgan_targets():
    """Default SRGAN outputs: per-scan PSNR/SSIM tables, the bar plot (and the CV table)."""
    scans = [_srgan_check_scan(s, "srgan.scans") for s in SRGAN["scans"]]
    if not scans or not srgan_run_grid():
        return []
    for p in SRGAN["run_presets"]:
        if p not in SRGAN["presets"]:
            raise ValueError(f"config srgan.run_presets: {p!r} is not a preset")
    targets = expand(rules.compute_sr_metrics.output.table, scan=scans)
    targets += [
        str(rules.plot_sr_metrics.output.png),
        str(rules.plot_sr_metrics.output.pdf),
    ]
    if SRGAN["cv"]["specimens"]:
        targets.append(str(rules.compute_sr_metrics_cv.output.table))
    return targets


# --- evaluation, plots and report -----------------------------------------------------------
EVALUATE = config["evaluate"]


def per_scan(scans, *patterns):
    """Each pattern (an output of a rule with the one wildcard scan) for each scan, scan by
    scan."""
    return [str(p).format(scan=scan) for scan in scans for p in patterns]


def evaluate_scans():
    """Scans whose generated sets are evaluated: the WGAN-GP scans."""
    return upscale_scans()


def evaluate_methods():
    """Upscaling methods compared (evaluate.methods), each produced by the upscale rule."""
    methods = list(EVALUATE["methods"])
    unknown = [m for m in methods if m not in UPSCALE_METHODS]
    if unknown:
        raise ValueError(
            f"config evaluate.methods: {unknown} are not upscaling methods; known methods are {UPSCALE_METHODS}"
        )
    return plan.evaluate_methods(config)  # none with a single PNG size


def distance_sets(scan):
    """Compared image sets of a scan (tomosynth.plan.distance_sets)."""
    evaluate_methods()
    return plan.distance_sets(config, scan)


def get_compute_distance_input(wildcards):
    """Real PNGs, split manifest, scan context (centre, clip bounds), sets and checkpoints."""
    scan = wildcards.scan
    inputs = {
        "png": plan.png_folder(scan, HIGH_SIZE),
        "split": plan.split_file(scan),
        "bounds": plan.bounds_file(scan),
        "recon": plan.recon_folder(scan),
    }
    inputs.update({s.key: s.folder for s in distance_sets(scan)})
    inputs.update({f"ckpt_{m.name}": m.checkpoint for m in plan.models(config, scan)})
    return inputs


def get_distance_sets(wildcards):
    """Input key -> [set name, label] for the compute_distance script."""
    return {s.key: [s.name, s.label] for s in distance_sets(wildcards.scan)}


def get_distance_provenance(wildcards):
    """Seeds and settings recorded in the distance table's sidecar JSON."""
    return {
        "scan_config": config["scans"][wildcards.scan],
        "split_seed": config["preprocess"]["seed"],
        "percentiles": config["preprocess"]["percentiles"],
        "wgan_gp_seed": config["wgan_gp"]["train"]["seed"],
        "wgan_gp_sample": config["wgan_gp"]["sample"],
        "srcnn_seed": config["srcnn"]["seed"],
        "sizes": {"low": LOW_SIZE, "high": HIGH_SIZE},
    }


def get_distance_validation_input(wildcards):
    """Real PNGs (the size the distances are computed at) and the split manifest."""
    return {
        "png": plan.png_folder(wildcards.scan, HIGH_SIZE),
        "split": plan.split_file(wildcards.scan),
    }


def get_distance_gpu():
    """1 when the Inception may run (weights configured and present, or pytorch-fid's
    default), 0 when only the weight-free FRD can be computed."""
    weights = EVALUATE["fid_weights"]
    return int(weights is None or Path(weights).is_file())


def get_compute_table_input(wildcards):
    """Training checkpoints (their folder's log.csv is read beside them: train_srgan does
    not declare its log), and the distance tables (for the scores)."""
    inputs = {}
    for scan in evaluate_scans():
        for model in plan.models(config, scan):
            inputs[f"ckpt_{model.name}"] = model.checkpoint
        inputs[f"distance_{scan}"] = per_scan(
            [scan], rules.compute_distance.output.table
        )[0]
    return inputs


def get_compute_table_models():
    """Model name -> scan, for compute_table (folders come from the inputs)."""
    return {
        m.name: scan for scan in evaluate_scans() for m in plan.models(config, scan)
    }


def get_compute_table_pipelines():
    """Set name -> [scan, models whose training produced it] (the equal-budget comparison)."""
    evaluate_methods()
    return plan.pipelines(config)


def evaluate_targets():
    scans = evaluate_scans()
    distance = rules.compute_distance.output
    plot = rules.plot_distance.output
    validation = rules.plot_distance_validation.output
    return (
        per_scan(scans, distance.table, distance.provenance)
        + per_scan(scans, plot.png, plot.pdf, plot.provenance)
        + per_scan(scans, validation.table)
        + per_scan(scans, validation.png, validation.pdf)
        + [
            str(rules.compute_table.output.table),
            str(rules.compute_table.output.provenance),
        ]
    )


# --- summary and report --------------------------------------------------------------------
def summary_tables():
    """Metrics tables gathered in results/summary.md: input name -> (title, path)."""
    tables = {}
    for scan in evaluate_scans():
        tables[f"distance_{scan}"] = (
            plan.distance_title(scan),
            per_scan([scan], rules.compute_distance.output.table)[0],
        )
        tables[f"distance_validation_{scan}"] = (
            plan.distance_validation_title(scan),
            per_scan([scan], rules.plot_distance_validation.output.table)[0],
        )
        tables[f"morphology_{scan}"] = (
            plan.morphology_title(scan),
            per_scan([scan], rules.compute_morphology.output.table)[0],
        )
    tables["compute"] = (plan.COMPUTE_TITLE, str(rules.compute_table.output.table))
    sr_tables = set(expand(rules.compute_sr_metrics.output.table, scan=SRGAN["scans"]))
    sr_tables.add(str(rules.compute_sr_metrics_cv.output.table))
    for path in srgan_targets():
        if path in sr_tables:
            name = Path(path).stem
            tables[f"sr_{name}"] = (plan.sr_title(name), path)
    for path in bone_targets():
        if path.endswith("_correlations.csv"):
            stem = Path(path).stem.removesuffix("_correlations")
            tables[f"bone_{stem}"] = (plan.bone_title(stem), path)
    return tables


def get_summary_titles():
    return {key: title for key, (title, _) in summary_tables().items()}


def get_summary_inputs(wildcards):
    inputs = {key: path for key, (_, path) in summary_tables().items()}
    inputs["plots"] = summary_plots()
    return inputs


def sample_sets(scan):
    """Image sets shown side by side (tomosynth.plan.sample_sets)."""
    return plan.sample_sets(config, scan)


def get_sample_set_folders(wildcards):
    return [s.folder for s in sample_sets(wildcards.scan)]


def get_sample_set_labels(wildcards):
    return [s.label for s in sample_sets(wildcards.scan)]


def report_targets():
    """Data overview per scan; loss curves (both sizes on one figure) and progress grids of
    the trained generators."""
    return (
        per_scan(SCANS, rules.plot_scan_overview.output.png)
        + per_scan(WGAN_GP_SCANS, rules.plot_gan_losses.output.png)
        + per_scan(WGAN_GP_SCANS, rules.plot_samples.output.png)
        + expand(rules.plot_gan_progress.output.png, scan=WGAN_GP_SCANS, size=SIZES)
    )


def stage_targets():
    return (
        data_targets()
        + wgan_gp_targets()
        + upscale_targets()
        + srgan_targets()
        + evaluate_targets()
        + bone_targets()
        + morphology_targets()
        + report_targets()
    )


def summary_plots():
    """Every figure of the run (PNG), linked from the summary."""
    plots = f"{plan.RESULTS}/plots/"
    return sorted(
        {t for t in stage_targets() if t.startswith(plots) and t.endswith(".png")}
    )


def get_final_output():
    """Everything the default target builds."""
    return stage_targets() + [str(rules.summarize.output.md)]


# --- bone and morphology ---------------------------------------------------------------------
BONE = EVALUATE["bone"]
MORPHOLOGY = EVALUATE["morphology"]


def get_bone_voxel_um(wildcards):
    """Fallback voxel size (um) of an SR volume; its meta.json hr_voxel_um wins when set."""
    return config["scans"][wildcards.scan]["voxel_um"]


def get_bone_provenance(wildcards):
    """Settings recorded in the bone table's sidecar JSON."""
    return {
        "scan": wildcards.scan,
        "preset": wildcards.preset,
        "scale": int(wildcards.scale),
        "scan_config": config["scans"][wildcards.scan],
        "srgan_seed": SRGAN["seed"],
    }


def get_bone_title(wildcards):
    return (
        f"{wildcards.scan}, {wildcards.preset} x{wildcards.scale}: per-ROI bone metrics"
    )


def morphology_sets(scan):
    """Image sets whose morphology is compared (tomosynth.plan.morphology_sets): real PNGs
    and WGAN-GP samples at every size, and the upscaled low-size samples of each method.
    """
    evaluate_methods()
    return plan.morphology_sets(config, scan)


def get_compute_morphology_input(wildcards):
    return {s.key: s.folder for s in morphology_sets(wildcards.scan)}


def get_morphology_sets(wildcards):
    """Input key -> [set name, kind] for the compute_morphology script."""
    return {s.key: [s.label, s.kind] for s in morphology_sets(wildcards.scan)}


def get_morphology_provenance(wildcards):
    return {
        "scan": wildcards.scan,
        "scan_config": config["scans"][wildcards.scan],
        "split_seed": config["preprocess"]["seed"],
        "wgan_gp_seed": config["wgan_gp"]["train"]["seed"],
        "sizes": SIZES,
    }


def bone_targets():
    """Bone tables and figures of every SR volume of the default SRGAN grid."""
    bone, plot = rules.compute_bone_metrics.output, rules.plot_bone.output
    patterns = [
        bone.table,
        bone.correlations,
        bone.consistency,
        plot.png,
        plot.pdf,
        plot.consistency_png,
        plot.consistency_pdf,
    ]
    return [
        str(p).format(scan=scan, preset=preset, scale=scale)
        for scan in SRGAN["scans"]
        for preset, scale in srgan_run_grid()
        for p in patterns
    ]


def morphology_targets():
    """Morphology tables and figures of every evaluated (WGAN-GP) scan."""
    morphology, plot = rules.compute_morphology.output, rules.plot_morphology.output
    return expand([morphology.table, plot.png, plot.pdf], scan=evaluate_scans())

# Shared helpers: config validation, target lists, input functions. Only this file holds
# helpers; rule files stay declarative.
import sys
from pathlib import Path

from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir)))  # tomosynth of this checkout
from tomosynth import config_checks, plan, sizing

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
def with_size(pattern, size):
    """An output pattern with its {size} wildcard filled in (the other wildcards kept)."""
    return expand(pattern, size=size, allow_missing=True)[0]


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
    return sizing.gpu(cfg["device"], cfg["backend"] in RECON_GPU_BACKENDS)


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


# --- job sizes: one policy (tomosynth.sizing) turns each job's estimated need into its request
POLICY = sizing.Policy.from_config(config["sizing"])
SIZING_THREADS = config["sizing"]["threads"]
FALLBACK_SCAN_SHAPE = (1500, 20, 20, 2048, 2048)  # tomo_00001's header
_SHAPES = {}


def scan_shape(scan):
    """(angles, flats, darks, detector rows reconstructed, columns) of a scan: the
    simulator's settings for a built-in scan, the DXchange header otherwise (no projections
    read), or FALLBACK_SCAN_SHAPE for a file that fails its checks (the reconstruct job then
    stops with the one-line error)."""
    if scan not in _SHAPES:
        entry, sim = config["scans"][scan], config["simulate"]
        if "builtin" in entry:
            b = entry["binning"]
            shape = (sim["angles"], sim["n_flats"], sim["n_darks"])
            shape += (sim["slices"] // b, sim["columns"] // b)
        else:
            from tomosynth.errors import DataError
            from tomosynth.io import inspect_dxchange

            try:
                i = inspect_dxchange(entry["path"], entry["theta_units"])
                shape = (i.n_angles, i.n_flats, i.n_darks, i.n_rows, i.n_cols)
            except DataError:
                shape = FALLBACK_SCAN_SHAPE
        if entry["slices"]:
            start, stop = entry["slices"]
            shape = shape[:3] + (max(0, min(stop, shape[3]) - start), shape[4])
        _SHAPES[scan] = shape
    return _SHAPES[scan]


def split_count(scan, part):
    """Slices of one split part (train/val/test) of a scan."""
    return plan.split_counts(config, scan_shape(scan)[3])[part]


def _size_reconstruct(wc):
    from tomosynth.recon import recon_memory_bound_mb

    cfg, shape = config["recon"], scan_shape(wc.scan)
    a, f, d, rows, cols = shape
    r = min(cfg["chunk_rows"], rows)
    bound = recon_memory_bound_mb(
        a, f, d, r, cols, cfg["backend"], cfg["memory_budget_mb"], cfg["threads"]
    )
    return sizing.reconstruct(
        shape=shape,
        chunk_bound_mb=bound,
        chunk_rows=cfg["chunk_rows"],
        backend=cfg["backend"],
        gpu=bool(get_recon_gpu()),
        threads=cfg["threads"],
        policy=POLICY,
    )


def _size_data(name, wc):
    n, cols = plan.kept_slices(config, scan_shape(wc.scan)[3]), scan_shape(wc.scan)[4]
    return getattr(sizing, name)(n, cols, SIZING_THREADS[name], POLICY)


def _size_distance(wc):
    dist, sets = EVALUATE["distance"], distance_sets(wc.scan)
    return sizing.distance(
        n_real=plan.kept_slices(config, scan_shape(wc.scan)[3]),
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
        policy=POLICY,
    )


def _size_train_srgan(wc):
    preset = plan.srgan_preset(config, wc.preset)
    _, specimens = srgan_fold(wc.scan)
    return sizing.train_srgan(
        n_train=sum(split_count(s, "train") for s in specimens),
        n_val=sum(split_count(s, "val") for s in specimens),
        hr_size=SRGAN["hr_size"],
        scale=int(wc.scale),
        train=preset["train"],
        generator=preset["generator"],
        device=SRGAN["device"],
        gpu=True,
        policy=POLICY,
    )


def job_size(name, wc):
    """{runtime, mem_mb} of one job of `name` (formulas in tomosynth.sizing)."""
    if name in ("clip_bounds", "export_png"):
        return _size_data(name, wc)
    if name == "reconstruct":
        return _size_reconstruct(wc)
    if name == "compute_distance":
        return _size_distance(wc)
    if name == "train_srgan":
        return _size_train_srgan(wc)
    if name == "compute_bone_metrics":
        n = plan.kept_slices(config, scan_shape(wc.scan)[3])
        return sizing.bone_metrics(n, SRGAN["hr_size"], POLICY)
    if name == "super_resolve":
        n = plan.kept_slices(config, scan_shape(wc.scan)[3])
        return sizing.super_resolve(n, SRGAN["hr_size"], int(wc.scale), POLICY)
    if name == "train_srcnn":
        return sizing.train_srcnn(
            n_train=split_count(wc.scan, "train"),
            n_val=split_count(wc.scan, "val"),
            size=HIGH_SIZE,
            cfg=config["srcnn"],
            gpu=True,
            policy=POLICY,
        )
    if name == "train_wgan_gp":
        cfg = config["wgan_gp"]
        extra = cfg["runtime_margin_minutes"]
        return sizing.train_wgan_gp(
            get_wgan_gp_params(wc)["budget_minutes"], extra, POLICY
        )
    return sizing.unmeasured(name, POLICY)


def size_of(name, key):
    """A resource callable: `key` (runtime or mem_mb) of the jobs of `name`."""
    return lambda wildcards: job_size(name, wildcards)[key]


def gpu_of(name):
    """A resource callable: 1 when a job of `name` runs on CUDA, per tomosynth.sizing.gpu."""
    if name in ("train_wgan_gp", "sample_wgan_gp"):
        return lambda wc: sizing.gpu(get_wgan_gp_params(wc)["device"])
    if name == "upscale":
        device = config["upscale"]["device"]
        return lambda wc: sizing.gpu(device, wc.method != "bicubic")
    device = config["srcnn" if name == "train_srcnn" else "srgan"]["device"]
    return lambda wc: sizing.gpu(device)


# --- generators (wgan_gp) ------------------------------------------------------------------
WGAN_GP_SCANS = plan.wgan_gp_scans(config)
# Keys of the wgan_gp block that the training loop reads (the rest: scans, runtime, sampling).
WGAN_GP_TRAIN_KEYS = (
    "seed device budget_minutes max_epochs batch_size n_critic lambda_gp lr betas latent_dim "
    "channel_multiplier max_channels progress_every progress_images checkpoint_every "
    "checkpoint_minutes amp "
    "channels_last"
).split()


def get_wgan_gp_params(wildcards):
    """Training settings of one size: the wgan_gp block with its by_size overrides applied."""
    cfg = config["wgan_gp"]
    params = {key: cfg[key] for key in WGAN_GP_TRAIN_KEYS}
    overrides = cfg["by_size"]
    params.update(
        overrides.get(str(wildcards.size), overrides.get(int(wildcards.size), {}))
    )
    return params


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
    """Scans with generated samples to upscale (the WGAN-GP scans)."""
    return WGAN_GP_SCANS


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


def _fold_of(scan, specimens, folds):
    from tomosynth.sr_data import fold_of  # imports torch: only when CV is configured

    return fold_of(scan, specimens, folds)


def srgan_fold(scan):
    """(fold index, training specimens) of the model applied to `scan` (tomosynth.plan)."""
    return plan.srgan_fold(config, scan, _fold_of)


def get_train_srgan_input(wildcards):
    """HR (and real LR) folders and split manifests of the training specimens."""
    _, specimens = srgan_fold(wildcards.scan)
    return plan.train_srgan_input(config, specimens, wildcards.scale)


def get_train_srgan_params(wildcards):
    """Training config (a preset at a scale) and provenance of one model."""
    wc = wildcards
    return plan.train_srgan_params(config, wc.scan, wc.preset, wc.scale, _fold_of)


def get_super_resolve_input(wildcards):
    """The scan's model and its HR (and real LR) slices."""
    wc = wildcards
    return {
        "model": plan.srgan_model(wc.scan, wc.preset, wc.scale),
        **plan.srgan_folders(config, wc.scan, wc.scale),
    }


def get_super_resolve_params(wildcards):
    wc = wildcards
    return plan.super_resolve_params(config, wc.scan, wc.preset, wc.scale, _fold_of)


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
    scans = SRGAN["scans"]
    if not scans or not srgan_run_grid():
        return []
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


def distance_sets(scan):
    """Compared image sets of a scan (tomosynth.plan.distance_sets)."""
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
        "wgan_gp_seed": config["wgan_gp"]["seed"],
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
    """Training folders' logs and checkpoints, and the distance tables (for the scores)."""
    inputs = {}
    for scan in evaluate_scans():
        for model in plan.models(config, scan):
            inputs[f"log_{model.name}"] = model.log
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
        "wgan_gp_seed": config["wgan_gp"]["seed"],
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

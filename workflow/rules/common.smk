# Shared helpers: config validation, target lists, input functions. Only this file holds
# helpers; rule files stay declarative.
import inspect
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
def plan_of(function, **extra):
    """An input/params function: tomosynth.plan's `function(config, **wildcards, **extra)`
    (the wildcards it names)."""
    names = inspect.signature(function).parameters
    return lambda wc: function(
        config, **{k: v for k, v in wc.items() if k in names}, **extra
    )


def with_size(pattern, size):
    """An output pattern with its {size} wildcard filled in (the other wildcards kept)."""
    return expand(pattern, size=size, allow_missing=True)[0]


def get_recon_env():
    """tomopy runs in its own conda env; the other backends in the recon env."""
    if config["recon"]["backend"] == "tomopy":
        return "../../envs/tomopy.yaml"
    return "../../envs/recon.yaml"


def get_scan_overview_pngs(wildcards):
    sizes = plan.scan_sizes(config, wildcards.scan)
    return [plan.png_folder(wildcards.scan, s) for s in sizes]


def data_targets():
    targets = expand(rules.split_manifest.output.split, scan=SCANS)
    for scan in SCANS:
        sizes = plan.scan_sizes(config, scan)
        targets += expand(rules.export_png.output.png, scan=scan, size=sizes)
    return targets


# --- job sizes: one policy (tomosynth.sizing) turns each job's estimated need into its request
SIZING_THREADS = config["sizing"]["threads"]
_SHAPES = {}


def _read_header(path, theta_units):
    from tomosynth.io import inspect_dxchange

    i = inspect_dxchange(path, theta_units)
    return i.n_angles, i.n_flats, i.n_darks, i.n_rows, i.n_cols


def scan_shape(scan):
    """(angles, flats, darks, rows reconstructed, columns) of a scan (tomosynth.plan)."""
    if scan not in _SHAPES:
        _SHAPES[scan] = plan.scan_shape(config, scan, _read_header)
    return _SHAPES[scan]


def _recon_bound_mb(scan):
    from tomosynth.recon import recon_memory_bound_mb

    a, f, d, rows, cols = scan_shape(scan)
    cfg = config["recon"]
    r = min(cfg["chunk_rows"], rows)
    args = (cfg["backend"], cfg["memory_budget_mb"], cfg["threads"])
    return recon_memory_bound_mb(a, f, d, r, cols, *args)


def job_size(name, wc):
    """{runtime, mem_mb} of one job of `name` (formulas in tomosynth.sizing)."""
    if name == "train_wgan_gp":  # the per-size training params hold the budget
        budget, extra = get_wgan_gp_params(wc)["budget_minutes"], config["wgan_gp"]
        policy = sizing.Policy.from_config(config["sizing"])
        return sizing.train_wgan_gp(budget, extra["runtime_margin_minutes"], policy)
    bound = _recon_bound_mb(wc.scan) if name == "reconstruct" else 0.0
    return sizing.job(
        config,
        name,
        dict(wc.items()),
        scan_shape,
        chunk_bound_mb=bound,
        fold_of=_fold_of,
    )


def size_of(name, key):
    """A resource callable: `key` (runtime or mem_mb) of the jobs of `name`."""
    return lambda wildcards: job_size(name, wildcards)[key]


def get_compute_bone_metrics_threads(wildcards):
    """Worker processes of one compute_bone_metrics job (tomosynth.sizing.job_threads)."""
    return sizing.job_threads(
        config, "compute_bone_metrics", dict(wildcards.items()), scan_shape
    )


def bone_size_of(key):
    """A resource callable: `key` of a compute_bone_metrics job for the threads Snakemake
    grants it (its worker processes, at most --cores)."""
    return lambda wildcards, threads: sizing.job(
        config,
        "compute_bone_metrics",
        dict(wildcards.items()),
        scan_shape,
        granted_threads=threads,
    )[key]


def gpu_of(name):
    """The gpu request of the jobs of `name` (tomosynth.sizing.job_gpu): a number where the
    config alone decides, a resource callable where the job's wildcards do."""
    if name.endswith("wgan_gp"):  # the per-size training params hold the device
        return lambda wc: sizing.job_gpu(
            config, name, device=get_wgan_gp_params(wc)["device"]
        )
    if name == "upscale":
        return lambda wc: sizing.job_gpu(config, name, method=wc.method)
    return sizing.job_gpu(config, name)


def outputs(*names, **wildcards):
    """Every output of the named rules, expanded over the wildcards."""
    return expand([f for n in names for f in getattr(rules, n).output], **wildcards)


# --- generators (wgan_gp) ------------------------------------------------------------------
WGAN_GP_SCANS = plan.wgan_gp_scans(config)


def get_wgan_gp_params(wildcards):
    """Training settings of one size: wgan_gp.train with its by_size overrides applied."""
    overrides = config["wgan_gp"]["by_size"]
    override = overrides.get(
        str(wildcards.size), overrides.get(int(wildcards.size), {})
    )
    return dict(config["wgan_gp"]["train"], **override)


def wgan_gp_targets():
    return outputs("train_wgan_gp", "sample_wgan_gp", scan=WGAN_GP_SCANS, size=SIZES)


# --- upscaling (bicubic, srcnn, srgan): low-size samples upscaled to the high size -------------
LOW_SIZE, HIGH_SIZE = plan.low_high(config)


wildcard_constraints:
    method="|".join(plan.UPSCALE_METHODS),


def upscale_scans():
    """Scans with generated samples to upscale (the WGAN-GP scans)."""
    return WGAN_GP_SCANS


def get_upscale_model(wildcards):
    """The trained model a method needs (SRCNN, an SRGAN preset), nothing for bicubic."""
    model = plan.upscale_model(config, wildcards.scan, wildcards.method)
    return [] if model is None else model


def upscale_targets():
    """Upscaled sample folders per scan and method, and the SRCNN figures."""
    methods = plan.upscale_methods(config)  # none with a single PNG size
    targets = outputs("upscale", scan=WGAN_GP_SCANS, method=methods)
    if "srcnn" in methods:
        targets += outputs("plot_srcnn_training", "plot_srcnn_comparison")
    return targets


# --- SRGAN family ----------------------------------------------------------------------------
SRGAN = config["srgan"]


wildcard_constraints:
    preset="|".join(sorted(SRGAN["presets"])),
    scale="2|4|8",


def _fold_of(scan, specimens, folds):
    from tomosynth.sr_data import fold_of  # imports torch: only when CV is configured

    return fold_of(scan, specimens, folds)


def srgan_cv_slices():
    specimens = sorted(SRGAN["cv"]["specimens"])
    return expand(rules.compute_sr_metrics.output.slices, scan=specimens)


def srgan_targets():
    """Default SRGAN outputs: per-scan PSNR/SSIM tables, the bar plot (and the CV table)."""
    if not SRGAN["scans"] or not plan.srgan_run_grid(config):
        return []
    targets = outputs("compute_sr_metrics", scan=SRGAN["scans"])
    targets += outputs("plot_sr_metrics")
    cv = SRGAN["cv"]["specimens"]
    return targets + (outputs("compute_sr_metrics_cv") if cv else [])


# --- evaluation -------------------------------------------------------------------------------
EVALUATE = config["evaluate"]
BONE = EVALUATE["bone"]
MORPHOLOGY = EVALUATE["morphology"]


def per_scan(scans, *patterns):
    """Each pattern (an output with the one wildcard scan) for each scan, scan by scan."""
    return [str(p).format(scan=scan) for scan in scans for p in patterns]


def get_compute_table_input(wildcards):
    """Training folders' logs and checkpoints, and the distance tables (for the scores)."""
    inputs = {}
    for scan in WGAN_GP_SCANS:
        for model in plan.models(config, scan):
            inputs[f"ckpt_{model.name}"] = model.checkpoint
        table = rules.compute_distance.output.table
        inputs[f"distance_{scan}"] = per_scan([scan], table)[0]
    return inputs


def get_compute_table_models():
    """Model name -> scan, for compute_table (folders come from the inputs)."""
    return {m.name: s for s in WGAN_GP_SCANS for m in plan.models(config, s)}


def evaluate_targets():
    names = ("compute_distance", "plot_distance", "plot_distance_validation")
    return outputs(*names, scan=WGAN_GP_SCANS) + outputs("compute_table")


def get_bone_title(wildcards):
    return plan.bone_figure_title(wildcards.scan, wildcards.preset, wildcards.scale)


def bone_targets():
    """Bone tables and figures of every SR volume of the default SRGAN grid."""
    names, scans = ("compute_bone_metrics", "plot_bone"), SRGAN["scans"]
    grid = plan.srgan_run_grid(config)
    return [t for p, s in grid for t in outputs(*names, scan=scans, preset=p, scale=s)]


def morphology_targets():
    """Morphology tables and figures of every evaluated (WGAN-GP) scan."""
    return outputs("compute_morphology", "plot_morphology", scan=WGAN_GP_SCANS)


# --- summary and report --------------------------------------------------------------------
def summary_tables():
    """Metrics tables gathered in results/summary.md: input name -> (title, path)."""
    per_scan_tables = {
        "distance": (plan.distance_title, rules.compute_distance.output.table),
        "distance_validation": (
            plan.distance_validation_title,
            rules.plot_distance_validation.output.table,
        ),
        "morphology": (plan.morphology_title, rules.compute_morphology.output.table),
    }
    tables = {
        f"{key}_{scan}": (title(scan), per_scan([scan], pattern)[0])
        for scan in WGAN_GP_SCANS
        for key, (title, pattern) in per_scan_tables.items()
    }
    tables["compute"] = (plan.COMPUTE_TITLE, str(rules.compute_table.output.table))
    sr_tables = set(expand(rules.compute_sr_metrics.output.table, scan=SRGAN["scans"]))
    sr_tables.add(str(rules.compute_sr_metrics_cv.output.table))
    for path in (p for p in srgan_targets() if p in sr_tables):
        tables[f"sr_{Path(path).stem}"] = (plan.sr_title(Path(path).stem), path)
    for path in (p for p in bone_targets() if p.endswith("_correlations.csv")):
        stem = Path(path).stem.removesuffix("_correlations")
        tables[f"bone_{stem}"] = (plan.bone_title(stem), path)
    return tables


def get_summary_titles():
    return {key: title for key, (title, _) in summary_tables().items()}


def get_summary_inputs(wildcards):
    inputs = {key: path for key, (_, path) in summary_tables().items()}
    inputs["plots"] = summary_plots()
    return inputs


def report_targets():
    """Data overview per scan; loss curves and progress grids of the trained generators."""
    gans = outputs("plot_gan_losses", "plot_samples", scan=WGAN_GP_SCANS)
    progress = outputs("plot_gan_progress", scan=WGAN_GP_SCANS, size=SIZES)
    return outputs("plot_scan_overview", scan=SCANS) + gans + progress


def stage_targets():
    stages = (data_targets, wgan_gp_targets, upscale_targets, srgan_targets)
    stages += (evaluate_targets, bone_targets, morphology_targets, report_targets)
    return [t for stage in stages for t in stage()]


def summary_plots():
    """Every figure of the run (PNG), linked from the summary."""
    plots = f"{plan.RESULTS}/plots/"
    targets = stage_targets()
    return sorted({t for t in targets if t.startswith(plots) and t.endswith(".png")})


def get_final_output():
    """Everything the default target builds."""
    return stage_targets() + [str(rules.summarize.output.md)]

"""The run plan (tomosynth.plan): image sets, models and paths for the default config and
small variants, written out here by hand as the reference."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from tomosynth import plan
from tomosynth.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def _merge(base: dict, new: dict) -> dict:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def config_with(*overlays: dict | Path) -> dict:
    """config.yaml with overlays merged in, validated (defaults filled) as the workflow does."""
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    for overlay in overlays:
        if isinstance(overlay, Path):
            overlay = yaml.safe_load(overlay.read_text())
        _merge(cfg, copy.deepcopy(overlay))
    validate(cfg, str(SCHEMA))
    return cfg


def rows(sets):
    return [(s.key, s.kind, s.size, s.method, s.folder, s.label) for s in sets]


def test_default_config_sets_of_shale():
    cfg = config_with()
    up = "results/upscaled/shale"
    assert rows(plan.distance_sets(cfg, "shale")) == [
        ("upscaled_bicubic", "upscaled", 256, "bicubic", f"{up}/bicubic", "64 px GAN + bicubic"),
        ("upscaled_srcnn", "upscaled", 256, "srcnn", f"{up}/srcnn", "64 px GAN + SRCNN"),
        ("upscaled_srgan", "upscaled", 256, "srgan", f"{up}/srgan", "64 px GAN + SRGAN"),
        ("generated_256", "generated", 256, None, "results/samples/wgan_gp/shale_256px", "256 px GAN"),
    ]  # fmt: skip
    # names in the distance table: the folder below results/
    assert [s.name for s in plan.distance_sets(cfg, "shale")] == [
        "upscaled/shale/bicubic",
        "upscaled/shale/srcnn",
        "upscaled/shale/srgan",
        "samples/wgan_gp/shale_256px",
    ]
    expected_all = [
        ("real_64", "real", 64, None, "results/png/shale/64px", "real 64 px"),
        ("generated_64", "generated", 64, None, "results/samples/wgan_gp/shale_64px", "64 px GAN"),
        ("real_256", "real", 256, None, "results/png/shale/256px", "real 256 px"),
        ("generated_256", "generated", 256, None, "results/samples/wgan_gp/shale_256px", "256 px GAN"),
        ("upscaled_bicubic", "upscaled", 256, "bicubic", f"{up}/bicubic", "64 px GAN + bicubic"),
        ("upscaled_srcnn", "upscaled", 256, "srcnn", f"{up}/srcnn", "64 px GAN + SRCNN"),
        ("upscaled_srgan", "upscaled", 256, "srgan", f"{up}/srgan", "64 px GAN + SRGAN"),
    ]  # fmt: skip
    assert rows(plan.sample_sets(cfg, "shale")) == expected_all
    assert rows(plan.morphology_sets(cfg, "shale")) == expected_all


def test_default_config_models_pipelines_and_grids():
    cfg = config_with()
    assert [(m.name, m.checkpoint, m.log) for m in plan.models(cfg, "shale")] == [
        ("wgan_gp_shale_64px", "results/models/wgan_gp/shale_64px/final.pt", "results/models/wgan_gp/shale_64px/log.csv"),
        ("wgan_gp_shale_256px", "results/models/wgan_gp/shale_256px/final.pt", "results/models/wgan_gp/shale_256px/log.csv"),
        ("srcnn_shale", "results/models/srcnn/shale/best.pt", "results/models/srcnn/shale/log.csv"),
        ("srgan_shale", "results/models/srgan/shale_exp_d_x4/best.pt", "results/models/srgan/shale_exp_d_x4/log.csv"),
    ]  # fmt: skip
    assert plan.pipelines(cfg) == {
        "upscaled/shale/bicubic": ["shale", ["wgan_gp_shale_64px"]],
        "upscaled/shale/srcnn": ["shale", ["wgan_gp_shale_64px", "srcnn_shale"]],
        "upscaled/shale/srgan": ["shale", ["wgan_gp_shale_64px", "srgan_shale"]],
        "samples/wgan_gp/shale_256px": ["shale", ["wgan_gp_shale_256px"]],
    }
    assert plan.srgan_run_grid(cfg) == [("exp_d", 2), ("exp_d", 4)]
    full = plan.srgan_full_grid(cfg)
    assert ("exp_b", 2) in full and ("exp_b", 8) in full and ("progressive", 8) in full
    assert len(full) == 5 + 3 + 2 + 2  # exp_a..f (exp_b at 3 scales), se_*, progressive, stacked
    assert plan.upscale_model(cfg, "shale", "bicubic") is None
    assert plan.upscale_model(cfg, "shale", "srcnn") == "results/models/srcnn/shale/best.pt"
    assert (
        plan.upscale_model(cfg, "shale", "srgan") == "results/models/srgan/shale_exp_d_x4/best.pt"
    )


def test_tiny_config_sets():
    cfg = config_with(ROOT / "tests" / "workflow" / "tiny" / "config.yaml")
    assert plan.low_high(cfg) == (16, 32)
    assert [s.label for s in plan.distance_sets(cfg, "shale")] == [
        "16 px GAN + bicubic",
        "16 px GAN + SRCNN",
        "16 px GAN + SRGAN",
        "32 px GAN",
    ]
    assert [s.folder for s in plan.morphology_sets(cfg, "shale")][:4] == [
        "results/png/shale/16px",
        "results/samples/wgan_gp/shale_16px",
        "results/png/shale/32px",
        "results/samples/wgan_gp/shale_32px",
    ]


def test_methods_differ_between_samples_and_evaluation():
    cfg = config_with({"upscale": {"methods": ["bicubic"]}, "evaluate": {"methods": ["srcnn"]}})
    assert [s.key for s in plan.sample_sets(cfg, "shale")][4:] == ["upscaled_bicubic"]
    assert [s.key for s in plan.morphology_sets(cfg, "shale")][4:] == ["upscaled_srcnn"]
    assert [s.key for s in plan.distance_sets(cfg, "shale")] == ["upscaled_srcnn", "generated_256"]
    assert [m.name for m in plan.models(cfg, "shale")][-1] == "srcnn_shale"
    cfg = config_with({"evaluate": {"methods": ["bicubic"]}})
    assert [m.name for m in plan.models(cfg, "shale")] == [
        "wgan_gp_shale_64px",
        "wgan_gp_shale_256px",
    ]


def test_single_size_has_nothing_upscaled():
    cfg = config_with({"preprocess": {"sizes": [64]}, "srgan": {"scans": []}})
    assert plan.evaluate_methods(cfg) == [] and plan.upscale_methods(cfg) == []
    assert rows(plan.distance_sets(cfg, "shale")) == [
        ("generated_64", "generated", 64, None, "results/samples/wgan_gp/shale_64px", "64 px GAN")
    ]
    assert [s.key for s in plan.sample_sets(cfg, "shale")] == ["real_64", "generated_64"]
    assert [m.name for m in plan.models(cfg, "shale")] == ["wgan_gp_shale_64px"]


def test_scan_sizes_and_files():
    cfg = config_with(
        {
            "scans": {
                "bone-lr": {"builtin": "bone", "seed": 2, "binning": 2},
                "small": {"builtin": "bone", "binning": 8},
                "real": {"path": "/data/x.h5"},
            },
            "preprocess": {"sizes": [64, 128, 256]},
        }
    )
    assert plan.scan_sizes(cfg, "bone") == [64, 128, 256]  # 256 columns
    assert plan.scan_sizes(cfg, "bone-lr") == [64, 128]  # 128 columns: no 256 px
    assert plan.scan_sizes(cfg, "small") == [32]  # 32 columns: only its own width
    assert plan.scan_sizes(cfg, "real") == [64, 128, 256]  # width unknown before reading
    assert plan.scan_file(cfg, "bone") == "results/scans/bone.h5"
    assert plan.scan_file(cfg, "real") == "/data/x.h5"


def test_srgan_upscaling_needs_the_high_size_as_hr():
    cfg = config_with({"srgan": {"hr_size": 64}})
    with pytest.raises(ValueError, match="srgan.hr_size = 256"):
        plan.upscale_model(cfg, "shale", "srgan")


@pytest.mark.parametrize(
    "overlay",
    [
        {},
        {"preprocess": {"sizes": [32, 64, 128]}, "wgan_gp": {"scans": ["shale", "bone"]}},
        {"upscale": {"methods": ["bicubic", "srcnn"]}, "evaluate": {"methods": ["srgan"]}},
    ],
)
def test_one_label_per_set_and_one_set_per_label(overlay):
    cfg = config_with(overlay)
    label_of: dict[str, str] = {}
    folder_of: dict[str, str] = {}
    for scan in plan.wgan_gp_scans(cfg):
        for sets in (plan.distance_sets, plan.sample_sets, plan.morphology_sets):
            for s in sets(cfg, scan):
                assert label_of.setdefault(s.folder, s.label) == s.label, s.folder
                if s.scan == "shale":  # labels do not name the scan
                    assert folder_of.setdefault(s.label, s.folder) == s.folder, s.label


def test_every_results_path_is_built_in_one_place():
    """plan.py builds each results/ path in one function of its paths block; common.smk
    holds no literal results/ path (it uses the plan or the rules' outputs)."""
    src = (ROOT / "tomosynth" / "plan.py").read_text()
    paths_block = src.split("# --- paths")[1].split("# --- scans and sizes")[0]
    rest = src.replace(paths_block, "")
    assert "{RESULTS}/" not in rest
    built = re.findall(r'return f"\{RESULTS\}/([^"]+)"', paths_block)
    assert len(built) == len(set(built)) >= 10
    common = (ROOT / "workflow" / "rules" / "common.smk").read_text()
    code = "\n".join(line.split("#")[0] for line in common.splitlines())
    assert not re.search(r"""["']results/""", code)


def test_plan_imports_without_torch_or_snakemake():
    code = "import sys, tomosynth.plan; print(sorted({'torch', 'snakemake'} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


# --- SRGAN plan, rule parameters and scan shapes (moved from common.smk) ----------------------
PAIRS = {
    "scans": {"bone-lr": {"builtin": "bone", "seed": 3, "voxel_um": 10.0, "binning": 2}},
    "preprocess": {"sizes": [64, 128, 256]},
    "srgan": {"lr_source": "pairs", "lr_scans": {"bone": "bone-lr"}},
}


def test_srgan_preset_merges_over_the_shared_block_and_rejects_unknown_keys():
    cfg = config_with({"srgan": {"presets": {"exp_d": {"train": {"epochs": 7}}}}})
    merged = plan.srgan_preset(cfg, "exp_d")
    assert merged["train"]["epochs"] == 7
    assert merged["train"]["batch_size"] == cfg["srgan"]["train"]["batch_size"]
    assert merged["generator"] == cfg["srgan"]["generator"]
    assert merged["weights"] == {"adversarial": 0.01, "l1": 1.0, "tv": 0.0001}  # report eq. 1
    bad = config_with({"srgan": {"presets": {"exp_d": {"train": {"epoch": 7}}}}})
    with pytest.raises(ConfigError, match=r"srgan.presets.exp_d.train: unknown keys \['epoch'\]"):
        plan.srgan_preset(bad, "exp_d")


def test_srgan_fold_asks_fold_of_only_under_cross_validation():
    calls = []

    def fold_of(scan, specimens, k):
        calls.append((scan, specimens, k))
        return 1, [s for s in specimens if s != scan]

    cfg = config_with()
    assert plan.srgan_fold(cfg, "bone", fold_of) == (None, ["bone"])
    assert calls == []
    cv = config_with(PAIRS, {"srgan": {"cv": {"specimens": ["bone", "bone-lr"], "folds": 2}}})
    assert plan.srgan_fold(cv, "bone", fold_of) == (1, ["bone-lr"])
    assert calls == [("bone", ["bone", "bone-lr"], 2)]


def test_srgan_folders_and_strides_of_real_pairs():
    cfg = config_with(PAIRS)
    assert plan.srgan_folders(cfg, "bone", 2) == {
        "hr": "results/png/bone/256px",
        "lr": "results/png/bone-lr/128px",
    }
    assert plan.srgan_slice_stride(cfg, "bone") == 2  # binning 2 over binning 1
    assert plan.srgan_slice_stride(config_with(), "bone") == 1  # bicubic LR: no stride
    with pytest.raises(ConfigError, match="not divisible by the scale 3"):
        plan.srgan_folders(cfg, "bone", 3)
    # shale is the WGAN-GP scan: its upscaler learns from its own export pairs (matched
    # degradation), whatever srgan.lr_source says; with pairs it needs a coarse scan
    assert plan.srgan_folders(cfg, "shale", 4)["lr"] == "results/png/shale/64px"
    assert plan.srgan_lr_source(cfg, "shale") == "export"
    assert plan.srgan_lr_source(cfg, "bone") == "pairs"
    lonely = config_with(
        PAIRS, {"scans": {"bone2": {"builtin": "bone", "seed": 5, "voxel_um": 5.0}}}
    )
    with pytest.raises(ConfigError, match="no coarse scan given for 'bone2'"):
        plan.srgan_folders(lonely, "bone2", 2)
    odd = config_with(PAIRS, {"scans": {"bone": {"binning": 3}}})
    with pytest.raises(ConfigError, match="not a multiple"):
        plan.srgan_slice_stride(odd, "bone")


def test_srgan_params_of_training_and_inference():
    cfg = config_with(PAIRS)

    def no_cv(*args):
        raise AssertionError("no cross-validation configured")

    train = plan.train_srgan_params(cfg, "bone", "exp_d", "4", no_cv)
    assert train["config"]["scale"] == 4 and train["slice_strides"] == [2]
    assert train["config"]["seed"] == cfg["srgan"]["seed"]
    assert train["meta"]["train_specimens"] == ["bone"] and train["meta"]["fold"] is None
    sr = plan.super_resolve_params(cfg, "bone", "exp_d", "2", no_cv)
    assert sr["slice_stride"] == 2 and sr["meta"]["lr_scan"] == "bone-lr"
    # built-in bone: 256 columns / binning 1 at 5 um, written as 256 px: 5 um per pixel
    assert sr["meta"]["hr_voxel_um"] == pytest.approx(5.0 * 256 / 256)
    assert plan.train_srgan_inputs(cfg, "bone", "exp_d", "2", no_cv) == {
        "hr": ["results/png/bone/256px"],
        "split": ["results/png/bone/split.json"],
        "lr": ["results/png/bone-lr/128px"],
    }


def test_split_counts_round_as_make_split():
    cfg = config_with({"preprocess": {"skip_slices": 4}})
    counts = plan.split_counts(cfg, 104)  # 100 kept slices, 0.8 / 0.1 / 0.1
    assert counts == {"train": 80, "val": 10, "test": 10}
    assert plan.split_counts(cfg, 7) == {"train": 1, "val": 1, "test": 1}  # at least one each


def test_scan_shape_from_simulator_header_or_fallback():
    cfg = config_with({"scans": {"real": {"path": "/data/x.h5", "voxel_um": 1.0,
                                          "slices": [10, 50]}}})  # fmt: skip
    sim = cfg["simulate"]
    assert plan.scan_shape(cfg, "shale", None) == (
        sim["angles"], sim["n_flats"], sim["n_darks"], sim["slices"], sim["columns"]
    )  # fmt: skip
    assert plan.scan_shape(cfg, "real", lambda p, u: (900, 10, 5, 2000, 1024)) == (
        900, 10, 5, 40, 1024
    )  # fmt: skip

    def broken(path, units):
        raise DataError(f"{path}: not a DXchange file")

    assert plan.scan_shape(cfg, "real", broken)[4] == plan.FALLBACK_SCAN_SHAPE[4]


def test_wgan_gp_needs_power_of_two_sizes():
    with pytest.raises(ConfigError, match="powers of two >= 16"):
        plan.wgan_gp_scans(config_with({"preprocess": {"sizes": [48, 256]}}))
    assert plan.wgan_gp_scans(config_with({"preprocess": {"sizes": [48]},
                                           "wgan_gp": {"scans": []}})) == []  # fmt: skip

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

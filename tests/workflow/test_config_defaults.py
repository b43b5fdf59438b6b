"""One source of defaults: the schema's are the real-scale ones; config.yaml is the demo.

config.yaml stays the demo (every test, `make demo` and `make study` build on it), so each of
its departures from the schema's defaults is listed here with its reason, and any other
departure fails. config/thesis.yaml must name every key the demo changes (so nothing of the
demo leaks into a full-scale run) and match the papers' settings, written below key by key
with the section they come from. Configs are merged the way the Snakefile merges them:
config.yaml, then the --configfile overlays key by key, then the schema's defaults filled in.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml
from snakemake.utils import validate

from tomosynth import config_checks
from tomosynth.errors import ConfigError
from tomosynth.train.wgan_gp import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
CONFIG = ROOT / "config.yaml"
THESIS = ROOT / "config" / "thesis.yaml"
FAST = ROOT / "config" / "fast.yaml"
# Maps keyed by user-chosen names: compared as a whole, not key by key.
NAMED_MAPS = {"scans", "presets", "lr_scans", "by_size"}

# Every intended difference between config.yaml (the demo) and the schema's defaults.
DEMO_DIFFERENCES = {
    "scans": "the demo adds the built-in bone scan beside the built-in shale",
    "preprocess.skip_slices": "40 simulated slices: skip 4, not the thesis' 59",
    "wgan_gp.runtime_margin_minutes": "1-minute trainings need no 30-minute margin",
    "wgan_gp.train.budget_minutes": "1 minute per generator on 2 CPU cores (thesis 240)",
    "wgan_gp.train.batch_size": "16 of the ~25 demo training slices (thesis 64)",
    "wgan_gp.train.max_channels": "16 starting channels so a CPU trains both sizes in minutes",
    "wgan_gp.train.channels_last": "faster CPU convolutions; the thesis used the default layout",
    "wgan_gp.sample.n": "100 samples suffice for the demo's figures (thesis 1,000)",
    "wgan_gp.sample.batch": "smaller generator calls on a CPU",
    "srcnn.channels": "half the paper's feature maps",
    "srcnn.lr": "faster learning for a 25-epoch cap",
    "srcnn.last_layer_lr_scale": "one learning rate for the short demo training",
    "srcnn.max_epochs": "25 epochs (about a minute) instead of early stopping deciding",
    "srcnn.patch_size": "random 32 px patches instead of whole slices",
    "srcnn.patches_per_image": "4 patches per slice",
    "upscale.methods": "the demo shows the SRGAN upscaler too",
    "evaluate.methods": "the demo scores the SRGAN upscaler too",
    "evaluate.bone.tissue": "the built-in bone is a whole bone in air (envelope), not a core",
    "srgan.presets": "the demo lists the report's SE and x8 experiments as extra presets",
    "srgan.run_scales": "x2 and x4 models of the demo's preset",
    "srgan.train.epochs": "30 epochs (about 20 s of CPU) instead of 300",
    "srcnn.budget_minutes": "no wall-clock budget: the demo's 25 epochs bound SRCNN (schema: 240)",
    "srgan.train.adv_lr": "G 1e-4 in the adversarial phase: chosen by the evidence runs (README)",
    "srgan.train.adv_lr_d": "D 4e-4: balanced D loss (~0.26) in the short demo runs",
    "srgan.train.pitch_weight": "LR-pitch penalty on: an L1 model paints a dot grid (results.md)",
    "srgan.generator.upsample": "resize-convolution: no LR-pitch dot grid at demo length",
    "srgan.train.pretrain_epochs": "an L1 warm-up keeps a 30-epoch GAN stable",
    "srgan.train.batch_size": "16 patches per step on a CPU",
    "srgan.train.lr": "a faster learning rate for 30 epochs",
    "srgan.train.patch_size": "64 px patches of the 256 px demo slices",
    "srgan.train.patches_per_image": "4 patches per slice of the small demo scan",
    "srgan.train.budget_minutes": "5 minutes per model",
    "srgan.generator.channels": "16 channels (report 64)",
    "srgan.generator.n_blocks": "2 residual blocks (report 16)",
    "srgan.generator.se_reduction": "4: the demo's 16 channels leave 1 per squeeze at 16",
    "srgan.discriminator.base_features": "8 (report 64): a tiny CPU discriminator",
    "srgan.discriminator.max_features": "64 (report 512)",
    "srgan.discriminator.n_layers": "6 (report 8)",
}

# The papers' settings: key, value, source. Thesis = Yüksel 2026 (shale, WGAN-GP + SRCNN);
# report = Robin 2021 (bone, SRGAN); both in the project's seed documents.
PAPER = [
    ("scans.tomo-00001.slices", [0, 1792], "thesis 5.1: tomo_00001 'consists of 1792 slices'"),
    ("preprocess.skip_slices", 59, "thesis 5.1: 'the first 59 slices ... were excluded'"),
    ("preprocess.percentiles", [1, 99], "thesis 5.1: 'lower and upper 1st percentile'"),
    ("preprocess.sizes", [64, 256], "thesis 5.1: 256 x 256 and 64 x 64 PNGs"),
    ("recon.backend", "tomopy", "thesis 5.1: reconstructed with Tomobank's tomopy_rec.py"),
    ("wgan_gp.train.budget_minutes", 240, "thesis 5.2: 'time budget was set to 4 hours'"),
    ("wgan_gp.train.max_epochs", 1000000, "thesis 5.2: epochs 'an impossibly high number'"),
    ("wgan_gp.train.batch_size", 64, "thesis 5.2: PyTorch-GAN wgan_gp defaults, minimal changes"),
    ("wgan_gp.train.n_critic", 5, "thesis 5.2: PyTorch-GAN wgan_gp defaults"),
    ("wgan_gp.train.lambda_gp", 10, "thesis 4.2.3 eq. 4 / PyTorch-GAN wgan_gp defaults"),
    ("wgan_gp.train.lr", 0.0002, "thesis 5.2: PyTorch-GAN wgan_gp defaults"),
    ("wgan_gp.train.betas", [0.5, 0.999], "thesis 5.2: PyTorch-GAN wgan_gp defaults"),
    ("wgan_gp.train.latent_dim", 100, "thesis 5.2: PyTorch-GAN default, kept at 64 px"),
    ("wgan_gp.by_size.256.latent_dim", 200, "thesis 5.2: 'increased to 200' at 256 px"),
    ("wgan_gp.train.channel_multiplier", 1.0, "thesis 5.2: channels 'twice the ... size'"),
    ("wgan_gp.train.max_channels", None, "thesis 5.2: no cap on the starting channels"),
    ("wgan_gp.train.progress_every", 5, "thesis 5.2: progress every 5 epochs at 64 px"),
    ("wgan_gp.by_size.256.progress_every", 2, "thesis 5.2: and every 2 at 256 px"),
    ("wgan_gp.train.amp", False, "thesis 5.2: the PyTorch-GAN example trains in fp32"),
    ("wgan_gp.train.channels_last", False, "thesis 5.2: the example's default layout"),
    ("wgan_gp.sample.n", 1000, "thesis 6: 'the 1000 generated samples'"),
    ("srcnn.channels", [64, 32], "thesis 4.4 / 5.3: SRCNN's 64 and 32 feature maps"),
    ("srcnn.kernels", [9, 1, 5], "thesis 4.4 / 5.3: SRCNN 9-1-5"),
    ("srcnn.lr", 0.0001, "thesis 5.3: the SRCNN implementation's learning rate"),
    ("srcnn.last_layer_lr_scale", 0.1, "thesis 5.3: SRCNN's 10x smaller last-layer rate"),
    ("srcnn.patch_size", None, "thesis 5.3: trained on the (whole) bicubic-upscaled slices"),
    ("srcnn.patience", 20, "thesis 5.3: 'over 20 consecutive epochs'"),
    ("srcnn.min_delta", 1e-5, "thesis 5.3: 'improvement greater than 1 x 10^-5'"),
    ("srcnn.decimals", 6, "thesis 5.3: '(rounded to six decimals)'"),
    ("upscale.methods", ["bicubic", "srcnn"], "thesis 5.3 / fig. 11: bicubic and SRCNN"),
    ("evaluate.methods", ["bicubic", "srcnn"], "thesis 6 / fig. 11: bicubic and SRCNN FIDs"),
    ("evaluate.bone.tissue", "roi", "report 4.6: trabecular bone measured in a masked region"),
    ("srgan.run_scales", [4], "report 4.3: the loss experiments ran at x4"),
    ("srgan.train.epochs", 300, "report 4.2: 'during 300 epochs'"),
    ("srgan.train.pretrain_epochs", 0, "report 4.2: no separate warm-up"),
    ("srgan.train.batch_size", 32, "report 4.2: 'on a 32 batch size'"),
    ("srgan.train.lr", 0.00002, "report 4.2: 'lr = 0.00002'"),
    ("srgan.train.betas", [0.5, 0.999], "report 4.2: 'b1 = 0.5 and b2 = 0.999'"),
    ("srgan.train.patch_size", 96, "report 4.2: 'random patches of 96x96 pixels'"),
    ("srgan.train.patches_per_image", 1, "report 4.2: a patch 'for each image'"),
    ("srgan.generator.kind", "srgan", "report 3.3: the SRGAN generator"),
    ("srgan.generator.n_blocks", 16, "report 4.2: 'The generator contains 16 ResNet blocks'"),
    ("srgan.generator.channels", 64, "report 3.3 fig. 1: n64 feature maps"),
    ("srgan.generator.kernel", 9, "report 3.3 fig. 1: k9 outer convolutions"),
    ("srgan.generator.se", "none", "report 4.4: SE blocks brought no significant gain"),
    ("srgan.generator.se_reduction", 16, "report 3.4: SE blocks of ref. [13] (r = 16)"),
    ("srgan.generator.skip", "none", "report 4.2: no global bicubic skip"),
    ("srgan.discriminator.head", "patch", "report 4.2: sigmoid replaced by a convolution"),
    ("srgan.discriminator.base_features", 64, "report 3.3.1: 'from 64 feature maps'"),
    ("srgan.discriminator.max_features", 512, "report 3.3.1: '... to 512'"),
    ("srgan.discriminator.n_layers", 8, "report 3.3.1 fig. 1: eight convolution layers"),
]


@pytest.fixture(scope="module")
def merged(wf) -> Callable[..., dict]:
    """The config the workflow sees: the files merged in order (conftest's merge, as
    Snakemake does it), then checked and filled with the schema's defaults; cached."""

    @functools.cache
    def filled(files: tuple[Path, ...]) -> dict:
        cfg = wf.merged_config(*files)
        config_checks.check_schema(cfg, SCHEMA)
        validate(cfg, str(SCHEMA))
        return cfg

    return lambda *files: copy.deepcopy(filled(files))


def flat(node: dict, prefix: str = "") -> dict[str, Any]:
    """Dotted keys -> values; the maps keyed by user-chosen names stay whole."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value and key not in NAMED_MAPS:
            out.update(flat(value, path))
        else:
            out[path] = value
    return out


def differences(a: dict, b: dict) -> set[str]:
    fa, fb = flat(a), flat(b)
    return {k for k in fa.keys() | fb.keys() if fa.get(k, "<unset>") != fb.get(k, "<unset>")}


def lookup(cfg: dict, dotted: str) -> Any:
    """Value at a dotted key; scan names contain no dots, so the split is safe."""
    node: Any = cfg
    for part in dotted.split("."):
        assert isinstance(node, dict) and part in node, f"{dotted}: no {part!r} in the config"
        node = node[part]
    return node


def test_demo_differs_from_the_schema_defaults_only_where_listed(merged):
    found = differences(merged(), merged(CONFIG))
    unlisted = sorted(found - set(DEMO_DIFFERENCES))
    stale = sorted(set(DEMO_DIFFERENCES) - found)
    assert not unlisted, (
        f"config.yaml differs from the schema's defaults at {unlisted}: make the schema default "
        "the real-scale value, or list the key in DEMO_DIFFERENCES with its reason"
    )
    assert not stale, f"DEMO_DIFFERENCES lists keys config.yaml no longer changes: {stale}"


def test_config_yaml_says_it_is_the_demo():
    head = CONFIG.read_text().splitlines()[0].lower()
    assert "demo" in head, "config.yaml's first line must say it is the demo configuration"


def test_thesis_inherits_nothing_from_the_demo(merged):
    # the same overlay over the schema's defaults alone gives the same run: every demo value
    # is overridden (the demo's extra scans and presets are names that the thesis never runs)
    on_demo = merged(CONFIG, THESIS)
    on_schema = merged(THESIS)
    leaked = differences(on_demo, on_schema) - {"scans", "srgan.presets"}
    assert not leaked, f"config/thesis.yaml inherits the demo's {sorted(leaked)}: set them"
    assert on_demo["run_scans"] == ["tomo-00001"]
    assert set(on_demo["srgan"]["run_presets"]) <= set(on_schema["srgan"]["presets"])


@pytest.mark.parametrize("key, value, source", PAPER, ids=[row[0] for row in PAPER])
def test_thesis_matches_the_papers(merged, key, value, source):
    got = lookup(merged(CONFIG, THESIS), key)
    assert got == value, f"config/thesis.yaml {key} = {got!r}, the paper has {value!r} ({source})"


def test_thesis_trains_on_1733_slices(merged):
    cfg = merged(CONFIG, THESIS)
    start, stop = cfg["scans"]["tomo-00001"]["slices"]
    assert stop - start - cfg["preprocess"]["skip_slices"] == 1733  # thesis 5.1


def test_thesis_states_its_gpu_hours(merged):
    text = THESIS.read_text()
    budget = lookup(merged(CONFIG, THESIS), "wgan_gp.train.budget_minutes")
    assert "GPU-hours" in text and "2 x 240 min" in text and budget == 240


def test_fast_overlay_changes_only_the_speed_ups(merged):
    changed = differences(merged(CONFIG, THESIS), merged(CONFIG, THESIS, FAST))
    assert changed == {"wgan_gp.train.amp", "wgan_gp.train.channels_last"}


def test_wgan_gp_train_block_is_the_trainer_config(merged):
    # the workflow passes wgan_gp.train (plus by_size) straight to TrainConfig.from_dict
    schema = yaml.safe_load(SCHEMA.read_text())
    wgan = schema["properties"]["wgan_gp"]["properties"]
    assert set(wgan["train"]["properties"]) == {f.name for f in fields(TrainConfig)}
    by_size = set(wgan["by_size"]["additionalProperties"]["properties"])
    assert by_size <= set(wgan["train"]["properties"])
    # one source of defaults: the trainer's own defaults are the schema's
    defaults = {k: v.get("default") for k, v in wgan["train"]["properties"].items()}
    trainer = {
        f.name: list(f.default) if f.name == "betas" else f.default for f in fields(TrainConfig)
    }
    assert trainer == defaults
    cfg = merged(CONFIG, THESIS)["wgan_gp"]
    for override in cfg["by_size"].values():
        TrainConfig.from_dict({**cfg["train"], **override})  # raises on an unknown key


@pytest.mark.parametrize("key", ["budget_minutes", "lr", "amp"])
def test_old_flat_wgan_gp_key_names_its_new_place(merged, tmp_path, key):
    overlay = tmp_path / "old.yaml"
    overlay.write_text(f"wgan_gp:\n  {key}: 1\n")
    with pytest.raises(ConfigError, match=rf"wgan_gp\.{key}: .*moved under wgan_gp\.train"):
        merged(CONFIG, overlay)


def test_a_real_scan_on_the_demo_settings_warns(merged, tmp_path):
    h5 = tmp_path / "mine.h5"
    h5.write_bytes(b"")
    mine = tmp_path / "mine.yaml"
    mine.write_text(
        f"scans:\n  mine: {{path: {h5}, voxel_um: 1.0}}\nrun_scans: [mine]\n"
        "wgan_gp: {scans: [mine]}\nsrgan: {scans: [mine], hr_size: 256}\n"
    )
    lines = config_checks.demo_scale_warnings(merged(CONFIG, mine))
    assert len(lines) == 2 and all("config/thesis.yaml" in x for x in lines)
    assert "budget_minutes 1.0, max_channels 16" in lines[0] and "channels 16" in lines[1]
    # the thesis overlay on top: full-scale models, no warning
    assert config_checks.demo_scale_warnings(merged(CONFIG, mine, THESIS, mine)) == []
    assert config_checks.demo_scale_warnings(merged(CONFIG)) == []  # built-in scans only

"""Study criteria (tomosynth.metrics.study), collection (tomosynth.study), study configs, and
the committed study results in docs/study/ held to the criteria."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from _shale import shale_slices
from scipy import stats

from tomosynth import cli, config_checks
from tomosynth.io import read_png_stack, write_png
from tomosynth.metrics.bone import METRICS
from tomosynth.metrics.criteria import median_profile
from tomosynth.metrics.study import (
    MIN_HELD_OUT_GAIN_DB,
    MIN_SR_GAIN_DB,
    _bone_criteria,
    bone_correlation_table,
    bone_correlations,
    disc_center,
    primary_sr_table,
    profile_correlation,
    ring_check,
    sr_protocol_criteria,
    sr_vs_bicubic,
    study_criteria,
    thesis_ranking,
)
from tomosynth.metrics.study_sets import TABLE, check_sets
from tomosynth.study import collect_study, earlier_jobs, run_earlier_jobs, stage_times

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
STUDY_DOCS = ROOT / "docs" / "study"


def _core(n: int = 64, ring: float = 200.0, center=None, r_ring=(26.0, 28.0), seed=0, noise=3.0):
    """A sample disc (120) of radius 22 px, air gap, container ring, air outside, + noise."""
    c = ((n - 1) / 2, (n - 1) / 2) if center is None else center
    yy, xx = np.indices((n, n), dtype=np.float64)
    r = np.hypot(yy - c[0], xx - c[1])
    img = np.full((n, n), 10.0)
    img[r < 22] = 120.0
    img[(r >= r_ring[0]) & (r < r_ring[1])] = ring
    return img + np.random.default_rng(seed).normal(0, noise, (n, n))


# ------------------------------------------------------------------ radial profile, ring


def test_disc_center_finds_an_off_centre_disc():
    img = _core(center=(30.0, 22.0), r_ring=(60, 60))  # no ring: only the disc is bright
    cy, cx = disc_center(img)
    assert cy == pytest.approx(30.0, abs=0.15) and cx == pytest.approx(22.0, abs=0.15)


def test_profile_correlation_is_pearson():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=40), rng.normal(size=40)
    assert profile_correlation(a, b) == pytest.approx(stats.pearsonr(a, b)[0])
    assert profile_correlation(a, 3 * a + 7) == pytest.approx(1.0)
    assert math.isnan(profile_correlation(a, np.ones(40)))


def test_ring_check_finds_the_ring_and_its_absence():
    def radial_profile(img):
        return median_profile(img[None], (31.5, 31.5))

    radii, real = radial_profile(_core())
    _, faint = radial_profile(_core(ring=90.0, seed=3))  # a fainter ring, same place
    _, none = radial_profile(_core(ring=10.0, seed=4))  # no ring
    _, moved = radial_profile(_core(r_ring=(14.0, 16.0), seed=5))  # ring inside the sample
    res = ring_check(radii, real, real)
    assert 26 <= res["real_radius"] <= 28 and res["shows"]
    assert ring_check(radii, faint, real)["shows"]
    assert not ring_check(radii, none, real)["shows"]
    assert not ring_check(radii, moved, real)["shows"]
    # the real profile of a ringless sample has no ring to compare against
    assert math.isnan(ring_check(radii, real, none)["real_radius"])


# ------------------------------------------------------------------ tables


def _distance_table() -> pd.DataFrame:
    rows = [
        ("real_split/half_a", "real_split/half_b", 2.0, 1.8, 2.3, "real split"),
        ("upscaled/s/bicubic", "train", 9.0, 8.5, 9.5, "64 px GAN + bicubic"),
        ("upscaled/s/bicubic", "test", 1.0, 0.9, 1.1, "64 px GAN + bicubic"),
        ("upscaled/s/srcnn", "train", 8.0, 7.0, 9.2, "64 px GAN + SRCNN"),
        ("samples/wgan_gp/s_256px", "train", 12.0, 11.0, 13.0, "256 px GAN"),
    ]
    return pd.DataFrame(
        [
            {
                "set": s,
                "reference": ref,
                "metric": "log FRD",
                "value": v,
                "ci_low": lo,
                "ci_high": hi,
                "n_set": 10,
                "baseline_same_n": 2.1,
                "label": lab,
            }
            for s, ref, v, lo, hi, lab in rows
        ]
    )


def test_thesis_ranking_orders_by_distance_to_train_with_the_baseline_first():
    t = thesis_ranking(_distance_table())
    assert list(t["label"]) == [
        "real split",
        "64 px GAN + SRCNN",
        "64 px GAN + bicubic",
        "256 px GAN",
    ]
    assert list(t["rank"]) == [0, 1, 2, 3]
    # SRCNN [7, 9.2] overlaps bicubic [8.5, 9.5]; bicubic's CI ends below the 256 px one's
    assert list(t["separated_from_next"]) == [None, False, True, None]


def _sr_table(gain: float, ssim_sr: float) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"preset": "bicubic", "scale": 4, "method": "bicubic", "n_slices": 8,
             "psnr_mean": 24.0, "ssim_mean": 0.60},
            {"preset": "exp_d", "scale": 4, "method": "srgan", "n_slices": 8,
             "psnr_mean": 24.0 + gain, "ssim_mean": ssim_sr},
            {"preset": "exp_d", "scale": 2, "method": "srgan", "n_slices": 8,
             "psnr_mean": 40.0, "ssim_mean": 0.99},
        ]
    )  # fmt: skip


@pytest.mark.parametrize(
    ("gain", "ssim_sr", "passed"),
    [(1.2, 0.62, True), (0.8, 0.62, False), (1.5, 0.58, False), (MIN_SR_GAIN_DB, 0.60, True)],
)
def test_sr_vs_bicubic(gain, ssim_sr, passed):
    res = sr_vs_bicubic(_sr_table(gain, ssim_sr), "exp_d", 4)
    assert res["gain_db"] == pytest.approx(gain) and res["passed"] is passed
    assert res["psnr_bicubic"] == 24.0 and res["n_slices"] == 8


def test_sr_protocol_criteria_give_gains_over_bicubic_and_neighbours(tmp_path):
    within = _sr_table(0.4, 0.62).assign(protocol="within-specimen")
    neighbours = {"preset": "neighbour_average", "scale": 4, "method": "neighbour_average",
                  "n_slices": 8, "psnr_mean": 24.9, "ssim_mean": 0.63,
                  "protocol": "within-specimen"}  # fmt: skip
    within = pd.concat([within, pd.DataFrame([neighbours])], ignore_index=True)
    within.to_csv(tmp_path / "bone.csv", index=False)
    _sr_table(1.1, 0.65).assign(protocol="held-out specimen").to_csv(
        tmp_path / "bone2.csv", index=False
    )
    pd.DataFrame({"fold": [0], "psnr_mean": [1.0]}).to_csv(tmp_path / "cv.csv", index=False)
    crit = {c.name: c for c in sr_protocol_criteria(tmp_path, "exp_d", 4)}
    assert len(crit) == 3  # bicubic and neighbours on bone, bicubic on bone2; cv.csv skipped
    within_bic = crit["exp_d x4 on bone (within-specimen): PSNR gain over bicubic (dB)"]
    within_nb = crit[
        "exp_d x4 on bone (within-specimen): PSNR gain over the neighbour average (dB)"
    ]
    held = crit["exp_d x4 on bone2 (held-out specimen): PSNR gain over bicubic (dB)"]
    assert within_bic.value == pytest.approx(0.4) and within_nb.value == pytest.approx(-0.5)
    assert held.value == pytest.approx(1.1)
    assert all(c.passed is None for c in crit.values())  # reported, not held


def _old_bone_tables(folder: Path) -> None:
    """A run's per-ROI bone table (LR +10 %, SR -30 % but right on Tb.Th) and a correlations
    table from before the agreement columns."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    hr = rng.uniform(1.0, 2.0, size=(10, len(METRICS)))
    rows = []
    for kind, factor in (("hr", 1.0), ("lr", 1.1), ("sr", 0.7)):  # LR +10 %, SR -30 %
        for roi in range(10):
            vals = hr[roi] * factor
            if kind == "sr":  # SR is right on Tb.Th only
                vals[list(METRICS).index("Tb.Th")] = hr[roi, list(METRICS).index("Tb.Th")]
            rows.append({"kind": kind, "region": "trabecular", "roi": roi,
                         **dict(zip(METRICS, vals, strict=True))})  # fmt: skip
    pd.DataFrame(rows).to_csv(folder / "bone2_exp_d_x4.csv", index=False)
    old = pd.DataFrame([{"kind": "sr", "region": "trabecular", "metric": "BV/TV", "n": 10,
                         "r": 1.0, "ci_low": 1.0, "ci_high": 1.0}])  # fmt: skip
    old.to_csv(folder / "bone2_exp_d_x4_correlations.csv", index=False)


def test_primary_sr_table_is_the_held_out_specimen_where_there_is_one(tmp_path):
    _sr_table(1.3, 0.65).assign(protocol="within-specimen").to_csv(tmp_path / "bone.csv")
    assert primary_sr_table(tmp_path, "bone") == (tmp_path / "bone.csv", False)
    _sr_table(0.6, 0.65).assign(protocol="held-out specimen").to_csv(tmp_path / "bone2.csv")
    assert primary_sr_table(tmp_path, "bone") == (tmp_path / "bone2.csv", True)
    (tmp_path / "bone.csv").rename(tmp_path / "other.csv")
    (tmp_path / "bone2.csv").unlink()
    assert primary_sr_table(tmp_path, "bone") is None


def test_bone_correlations_add_agreement_to_an_old_table_and_report_the_goal(tmp_path):
    _old_bone_tables(tmp_path)
    corr = bone_correlations(tmp_path)["bone2"]
    assert "recomputed" in corr["source"].iloc[0]
    bvtv = corr[(corr["kind"] == "sr") & (corr["metric"] == "BV/TV")].iloc[0]
    assert bvtv["bias"] == pytest.approx(-0.3) and bvtv["mare"] == pytest.approx(0.3)
    crit = {c.name.split(":")[0]: c for c in _bone_criteria(bone_correlation_table(corr), " (x)")}
    goal = crit["microstructure goal (x)"]
    assert goal.value == 1.0 and goal.passed is None  # only Tb.Th: 0 % against LR's 10 %
    assert "Tb.Th SR 0% vs LR 10%" in goal.detail and "BV/TV SR 30% vs LR 10%" in goal.detail


def test_study_report_draws_a_bland_altman_figure_where_the_run_drew_none(tmp_path):
    _old_bone_tables(tmp_path / "metrics" / "bone")
    written = cli.bland_altman_figures(tmp_path)
    png = tmp_path / "plots" / "bone_bland_altman_bone2_exp_d_x4.png"
    assert written == [png] and png.stat().st_size > 10_000
    assert cli.bland_altman_figures(tmp_path) == []  # the report's figure is kept
    # a rerun whose plot_bone drew its own figure: the report's earlier one is stale
    (tmp_path / "plots" / "bland_altman_bone2_exp_d_x4.png").write_bytes(b"png")
    assert cli.bland_altman_figures(tmp_path) == [] and not png.exists()


def test_bone_correlation_table_puts_sr_and_lr_side_by_side():
    corr = pd.DataFrame(
        [
            {"kind": "sr", "metric": "BV/TV", "n": 9, "r": 0.9, "ci_low": 0.6, "ci_high": 0.98},
            {"kind": "lr", "metric": "BV/TV", "n": 9, "r": -0.95, "ci_low": -1, "ci_high": -0.8},
            {"kind": "sr", "metric": "Tb.Th", "n": 9, "r": 0.7, "ci_low": 0.1, "ci_high": 0.9},
            {"kind": "lr", "metric": "Tb.Th", "n": 9, "r": 0.2, "ci_low": -0.5, "ci_high": 0.7},
        ]
    )
    t = bone_correlation_table(corr).set_index("metric")
    assert t.loc["BV/TV", "r_sr"] == 0.9 and t.loc["BV/TV", "r_lr"] == -0.95
    assert t.loc["BV/TV", "sr_closer"] is False or not t.loc["BV/TV", "sr_closer"]  # |r| smaller
    assert t.loc["Tb.Th", "sr_closer"]
    assert "bias_sr" not in t.columns  # no agreement columns in, none out
    corr["bias"] = [-0.51, 0.19, 0.3, -0.02]  # the bone table's median relative error
    t = bone_correlation_table(corr).set_index("metric")
    assert t.loc["BV/TV", "bias_sr"] == -0.51 and t.loc["BV/TV", "bias_lr"] == 0.19
    assert "sr_lower_error" not in t.columns  # no errors in, no error comparison out
    corr["mare"] = [0.51, 0.19, 0.1, 0.2]  # SR worse on BV/TV, better on Tb.Th
    t = bone_correlation_table(corr).set_index("metric")
    assert not t.loc["BV/TV", "sr_lower_error"] and t.loc["Tb.Th", "sr_lower_error"]


# ------------------------------------------------------------------ a whole results tree


@pytest.fixture(scope="module")
def shale():
    """80 built-in shale slices at 64 px: 40 training and 20 held-out (the run's PNG
    folder and split) and 20 more real slices that a generator that learned might give."""
    s = shale_slices(64, 80, seed=0)
    order = np.random.default_rng(0).permutation(80)
    return s, sorted(order[:40]), sorted(order[40:60]), s[sorted(order[60:])]


def _tree(root: Path, shale, generated: np.ndarray) -> Path:
    res = root / "results"
    slices, train, held, _ = shale
    names = {i: f"slice_{i:05d}.png" for i in (*train, *held)}
    for i, name in names.items():
        write_png(res / "png" / "shale" / "64px" / name, slices[i])
    split = {"train": [names[i] for i in train], "test": [names[i] for i in held]}
    (res / "png" / "shale" / "split.json").write_text(json.dumps(split))
    for i, img in enumerate(generated):
        write_png(res / "samples" / "wgan_gp" / "shale_64px" / f"sample_{i:05d}.png", img)
    write_png(res / "samples" / "wgan_gp" / "shale_64px_contact_sheet.png", generated[0])
    (res / "samples" / "wgan_gp" / "shale_256px").mkdir(parents=True)
    (res / "metrics" / "distance").mkdir(parents=True)
    _distance_table().to_csv(res / "metrics" / "distance" / "shale.csv", index=False)
    (res / "metrics" / "sr").mkdir(parents=True)
    _sr_table(1.3, 0.65).to_csv(res / "metrics" / "sr" / "bone.csv", index=False)
    (res / "plots").mkdir(parents=True)
    write_png(res / "plots" / "samples_shale.png", generated[0])
    (res / "summary.md").write_text("# summary\n")
    model = res / "models" / "srgan" / "bone_exp_d_x4"
    model.mkdir(parents=True)
    pd.DataFrame(  # best validation PSNR in the warm-up; the adversarial phase fell apart
        {
            "epoch": [1, 2, 3, 4],
            "phase": ["pretrain", "pretrain", "adversarial", "adversarial"],
            "elapsed_s": [30.0, 60.0, 90.0, 120.0],
            "val_psnr": [26.0, 27.5, 20.1, 7.8],
            "bicubic_psnr": [26.2] * 4,
        }
    ).to_csv(model / "log.csv", index=False)
    bench = root / "logs" / "benchmark" / "train_wgan_gp"
    bench.mkdir(parents=True)
    for name, s in (("shale_64px.tsv", 60.5), ("shale_256px.tsv", 61.0)):
        (bench / name).write_text(f"s\th:m:s\tmax_rss\n{s}\t0:01:00\t900.5\n")
    return root


def _by_name(crit) -> dict:
    return {c.name: c for c in crit}


def test_criteria_of_a_results_tree_that_learned(tmp_path, shale):
    crit, tables = study_criteria(_tree(tmp_path, shale, shale[3]) / "results")
    by = _by_name(crit)
    gan = by["64 px GAN passes every in-sample criterion"]
    assert gan.passed is None and gan.detail == "passes every criterion"  # reported
    for key in ("(a)", "(b)", "(c)"):
        held = next(c for c in crit if c.name.startswith(f"baseline {key}"))
        assert held.passed and held.detail.startswith("fails: "), held
    assert by["(e) held-out real slices (the target) passes all"].passed
    sets = tables["sets"]
    assert list(dict.fromkeys(sets["set"])) == [
        "gan_64px",
        "mean_noise",
        "repeated_noise",
        "blurred",
        "training",
        "heldout",
    ]
    assert set(sets.loc[sets["set"] == "training", "n_images"]) == {40}
    assert set(sets.loc[sets["set"] == "heldout", "n_images"]) == {20}
    assert by["SRGAN exp_d x4 PSNR gain over bicubic (dB)"].passed
    assert list(tables["ranking"]["rank"]) == [0, 1, 2, 3]


def test_criteria_fail_for_one_repeated_ringless_blob(tmp_path, shale):
    blob = np.full((64, 64), 10, np.uint8)
    yy, xx = np.indices((64, 64))
    blob[np.hypot(yy - 31.5, xx - 31.5) < 12] = 150  # too small, no ring, always the same
    crit, _ = study_criteria(_tree(tmp_path, shale, np.stack([blob] * 6)) / "results")
    gan = _by_name(crit)["64 px GAN passes every in-sample criterion"]
    assert gan.value < 5 and "container ring" in gan.detail and "diversity" in gan.detail


def test_collect_study_writes_tables_times_and_criteria_and_checks(tmp_path, shale, capsys):
    work = _tree(tmp_path / "run", shale, shale[3][:8])
    out = tmp_path / "docs"
    recipe = tmp_path / "study.yaml"
    recipe.write_text("wgan_gp: {train: {budget_minutes: 1}}\n")
    _compute_and_sr_records(work / "results")
    collect_study(work, out, total_wall_s=600, recipe=recipe)
    assert (out / "recipe.yaml").read_text() == recipe.read_text()
    for name in ("criteria.md", "criteria.csv", "summary.md", "wall_times.md", "wall_times.csv"):
        assert (out / name).is_file(), name
    # every set's images, as written: the generator's samples and the real held-out slices
    images = out / "images"
    assert len(list((images / "gan_64px").glob("slice_*.png"))) == 8
    np.testing.assert_array_equal(read_png_stack(images / "heldout"), shale[0][shale[2]])
    assert check_sets(out) == []
    assert cli.main(["study-check", str(out)]) == 0
    # a tampered table fails and names the set and the criterion
    table = pd.read_csv(out / TABLE)
    row = (table["set"] == "gan_64px") & table["criterion"].str.startswith("porosity")
    table.loc[row, "value"] += 0.01
    table.to_csv(out / TABLE, index=False)
    capsys.readouterr()
    assert cli.main(["study-check", str(out)]) == 1
    said = capsys.readouterr().out
    assert "set gan_64px: criterion 'porosity in the disc': value committed" in said
    # a tampered image fails too (its folder's manifest no longer matches)
    table.loc[row, "value"] -= 0.01
    table.to_csv(out / TABLE, index=False)
    write_png(images / "blurred" / "slice_00000.png", np.zeros((64, 64), np.uint8))
    assert cli.main(["study-check", str(out)]) == 2
    study_md = (out / "study.md").read_text()
    assert "| 0 | real split | log FRD: 2 [1.8, 2.3] | 10 |  |  | 2.14 |" in study_md  # thesis
    # generator-only budget and total compute with the upscaler's training, side by side
    assert (
        "| 1 | 64 px GAN + SRCNN | log FRD: 8 [7, 9.2] | 10 | 16 min budget, ran 16.0 min "
        "| 26.0 min (generator + srcnn_s 10.0 min) | 180.82 |"
    ) in study_md
    assert (
        "By log FRD, the study orders the thesis' sets 64 px GAN + SRCNN < 64 px GAN + bicubic "
        "< 256 px GAN: not the thesis' order (64 px GAN + bicubic < 64 px GAN + SRCNN < 256 px "
        "GAN by FID)."
    ) in study_md
    assert "- `exp_d_x4` (bone): within-specimen: the split manifest's test slices" in study_md
    assert "- SRCNN `s` (one phase, MSE): 3 epochs in 0.1 min; the kept checkpoint is epoch 2" in (
        study_md
    )
    assert "no bias (median relative error) or MAE columns" in study_md
    assert "End to end (`make study`, one invocation): 10.0 min." in study_md
    assert "ran before this invocation" not in study_md
    assert "| x4 | srgan | 25.30 | 0.650 | 32.977 / 0.8693 |" in study_md  # report's exp_d
    # the SR row of an adversarial preset says which phase its checkpoint comes from
    assert (
        "`bone_exp_d_x4`: 4 epochs (2 L1 warm-up, 2 adversarial) in 2.0 min. The kept "
        "checkpoint is epoch 2, from the L1 warm-up (validation PSNR 27.50 dB, bicubic "
        "26.20 dB); the last epoch scored 7.80 dB."
    ) in study_md
    assert (out / "models" / "srgan" / "bone_exp_d_x4" / "log.csv").is_file()
    assert (out / "plots" / "samples_shale.png").is_file()
    assert (out / "metrics" / "sr" / "bone.csv").is_file()
    assert (out / "samples" / "shale_64px_contact_sheet.png").is_file()
    times = pd.read_csv(out / "wall_times.csv")
    assert times.loc[0, "stage"] == "train_wgan_gp" and times.loc[0, "jobs"] == 2
    assert times.loc[0, "wall_s"] == pytest.approx(121.5)
    assert "10.0 min" in (out / "wall_times.md").read_text()
    assert stage_times(work / "logs" / "benchmark")["max_rss_mb"].iloc[0] == pytest.approx(900.5)


def _compute_and_sr_records(res: Path) -> None:
    """A compute table (WGAN-GP 16 min + SRCNN 10 min), an SR provenance record of a
    within-specimen test split and an SRCNN training log, as a study run writes them."""
    rows = [
        ("model", "wgan_gp_s_64px", "wgan_gp_s_64px", 16.0, 960.0),
        ("model", "srcnn_s", "srcnn_s", 12.0, 600.0),
        ("pipeline", "upscaled/s/srcnn", "wgan_gp_s_64px;srcnn_s", 28.0, 1560.0),
    ]
    table = pd.DataFrame(rows, columns=["row_type", "name", "models", "budget_minutes", "wall_s"])
    table.to_csv(res / "metrics" / "compute.csv", index=False)
    meta = {"fold": None, "lr_scan": None, "preset": "exp_d"}
    (res / "metrics" / "sr" / "bone.json").write_text(
        json.dumps({"volumes": {"results/sr_volumes/bone/exp_d_x4": meta}})
    )
    log = res / "models" / "srcnn" / "s"
    log.mkdir(parents=True)
    pd.DataFrame(
        {"epoch": [1, 2, 3], "val_psnr": [25.0, 27.0, 26.5], "elapsed_s": [2.0, 4.0, 6.0]}
    ).to_csv(log / "log.csv", index=False)


def test_earlier_jobs_count_benchmarks_older_than_the_invocation(tmp_path):
    bench = tmp_path / "rule"
    bench.mkdir()
    for name, age_s in (("a.tsv", 30), ("b.tsv", 3000), ("c.tsv", 7200)):
        (bench / name).write_text("s\n1\n")
        t = 1_000_000.0 - age_s
        os.utime(bench / name, (t, t))
    # an invocation of 40 minutes ending now: b and c ran before it
    assert earlier_jobs(tmp_path, 2400, now=1_000_000.0) == 2
    assert earlier_jobs(tmp_path, 10_000, now=1_000_000.0) == 0
    # a report made long after the run: counted from the run's last job, not from now
    assert run_earlier_jobs(tmp_path, 2400 - 30) == 2  # b and c before a's invocation
    assert run_earlier_jobs(tmp_path, 7200) == 0


# ------------------------------------------------------------------ configs


def _merged(*overlays: Path) -> dict:
    from snakemake.utils import update_config, validate

    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    for overlay in overlays:
        update_config(cfg, yaml.safe_load(overlay.read_text()))
    config_checks.check_schema(cfg, SCHEMA)
    validate(cfg, str(SCHEMA))  # fills the defaults, as the workflow does
    return cfg


def test_study_config_is_valid_and_equal_budget():
    cfg = _merged(ROOT / "config" / "study.yaml")
    config_checks.check_consistency(cfg)
    w = cfg["wgan_gp"]
    assert "budget_minutes" not in w["by_size"].get("256", {})  # equal budget per resolution
    assert "budget_minutes" not in w["by_size"].get("64", {})
    assert cfg["preprocess"]["sizes"] == [64, 256]
    assert cfg["simulate"]["axial_variety"] > 0
    assert "exp_d" in cfg["srgan"]["run_presets"] and 4 in cfg["srgan"]["run_scales"]
    # the upscalers get the same training budget (both count in the pipelines' compute)
    assert cfg["srcnn"]["budget_minutes"] == cfg["srgan"]["train"]["budget_minutes"]


def test_gpu_check_config_is_valid():
    cfg = _merged(ROOT / "config" / "study.yaml", ROOT / "config" / "gpu_check.yaml")
    config_checks.check_consistency(cfg)
    assert cfg["wgan_gp"]["train"]["budget_minutes"] <= 2 and cfg["wgan_gp"]["train"]["amp"]


def test_thesis_config_is_valid(tmp_path):
    cfg = _merged(ROOT / "config" / "thesis.yaml")
    train = cfg["wgan_gp"]["train"]
    assert train["budget_minutes"] == 240 and train["max_channels"] is None
    assert cfg["preprocess"]["skip_slices"] == 59 and cfg["preprocess"]["sizes"] == [64, 256]
    scan = tmp_path / "tomo_00001.h5"
    scan.write_bytes(b"")  # the placeholder path, made to exist for the consistency checks
    cfg["scans"]["tomo-00001"]["path"] = str(scan)
    config_checks.restrict_to_run_scans(cfg)
    config_checks.check_consistency(cfg)


# ------------------------------------------------------------------ committed results


def test_committed_study_results_meet_the_criteria():
    crit_csv = STUDY_DOCS / "criteria.csv"
    if not crit_csv.is_file():
        pytest.skip(
            "docs/study/ holds no study results yet: run `make study` and commit docs/study/"
        )
    if not (STUDY_DOCS / TABLE).is_file():
        pytest.skip(
            "docs/study/ predates the per-set criteria and their images (issue 20): rerun "
            "`make study` and commit docs/study/"
        )
    crit = pd.read_csv(crit_csv)
    held = crit[crit["passed"].notna()]
    failed = held[~held["passed"].astype(str).isin(["True", "true"])]
    assert failed.empty, (
        f"criteria not met: {failed[['name', 'value', 'threshold']].to_dict('records')}"
    )
    # recomputed from the committed images, not only read from criteria.csv
    assert check_sets(STUDY_DOCS) == []
    table, held_out = primary_sr_table(STUDY_DOCS / "metrics" / "sr", "bone")
    assert held_out, "the study's SR test is a specimen never seen in training"
    sr = sr_vs_bicubic(pd.read_csv(table), "exp_d", 4, MIN_HELD_OUT_GAIN_DB)
    assert sr["passed"], sr
    ranking = pd.read_csv(STUDY_DOCS / "criteria_ranking.csv")
    assert (ranking["rank"] == 0).any(), "the real-split baseline is missing"
    # the committed results are those of today's recipe (comments may differ, values not)
    recipe = yaml.safe_load((STUDY_DOCS / "recipe.yaml").read_text())
    assert recipe == yaml.safe_load((ROOT / "config" / "study.yaml").read_text()), (
        "config/study.yaml changed since docs/study/ was made: rerun `make study`, recommit"
    )
    assert {"ci_low", "ci_high"} <= set(ranking.columns)


def test_readme_config_examples_are_valid(tmp_path):
    # a user copies these blocks into an overlay: each must pass the schema as written
    # (scan names, for one, allow no "_": a Tomobank file is configured as tomo-00001)
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    examples = [b for b in blocks if re.match(r"(scans|run_scans|recon|wgan_gp):", b)]
    assert examples, "no config example found in the README"
    for i, block in enumerate(examples):
        overlay = tmp_path / f"example_{i}.yaml"
        overlay.write_text(block)
        _merged(overlay)

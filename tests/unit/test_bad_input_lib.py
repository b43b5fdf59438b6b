"""Bad-input corpus: broken scans, contradictory configs and damaged results.

Each case asserts a one-line error naming the file or key, and that nothing partial is left
where the output would go. Scans go through the real reconstruction (`reconstruct_scan`),
configs through the checks the workflow runs at parse time, damaged results through the
library readers every rule uses.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from tomosynth import config_checks
from tomosynth.errors import ConfigError, DataError
from tomosynth.io import (
    list_pngs,
    list_slices,
    read_png_stack,
    read_tiff_stack,
    write_png,
)
from tomosynth.preprocess import kept_slices
from tomosynth.recon import reconstruct_scan

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
A, R, C = 24, 4, 32


def _good():
    rng = np.random.default_rng(0)
    theta = np.linspace(0.0, np.pi, A, endpoint=False)
    dark = rng.poisson(100, (2, R, C)).astype(np.float32)
    flat = rng.poisson(5000, (3, R, C)).astype(np.float32)
    yy, xx = np.mgrid[:R, :C]
    trans = 0.3 + 0.5 * np.exp(-(((xx - C / 2) / 6.0) ** 2))[None]
    data = (np.broadcast_to(trans, (A, R, C)) * 4900 + 100).astype(np.float32)
    return data, flat, dark, theta


def _write(path: Path, *, data=None, flat=None, dark=None, theta=None, units="degrees"):
    d, f, k, t = _good()
    d, f, k = (
        (d if data is None else data),
        (f if flat is None else flat),
        (k if dark is None else dark),
    )
    t = np.rad2deg(t) if theta is None else theta
    with h5py.File(path, "w") as h:
        h["/exchange/data"] = d
        h["/exchange/data_white"] = f
        h["/exchange/data_dark"] = k
        h["/exchange/theta"] = t
        if units is not None:
            h["/exchange/theta"].attrs["units"] = units
    return path


def _scan_cases():
    d, f, k, t = _good()
    return {
        "negative_counts": (dict(data=-d), "negative values"),
        "radians_without_units": (dict(theta=t, units=None), "theta_units: radians"),
        "degrees_marked_radians": (
            dict(theta=np.rad2deg(t), units="radians"),
            "theta_units: degrees",
        ),
        "constant_angles": (dict(theta=np.zeros(A)), "spans only 0 degrees"),
        "repeated_angles": (dict(theta=np.repeat([0.0, 60.0, 120.0], A // 3)), "distinct angles"),
        "flats_are_darks": (dict(flat=k[:1].repeat(3, 0)), "not brighter than dark"),
        "data_flat_swapped": (dict(data=np.repeat(f[:1], A, 0) * 3, flat=d[:3]), "brighter than"),
        "nan_counts": (dict(data=np.where(np.arange(C) == 3, np.nan, d).astype(np.float32)), "NaN"),
        "unknown_theta_units": (dict(units="gradians"), "unknown units"),
        "theta_length": (dict(theta=np.linspace(0, 180, A - 2)), "angles but"),
        "flat_shape": (dict(flat=np.ones((3, R, C + 2), np.float32) * 5000), "differ from"),
        "data_2d": (dict(data=d[0]), "must be 3D"),
    }


SCAN_CASES = _scan_cases()


@pytest.mark.parametrize("case", sorted(SCAN_CASES))
def test_bad_scan_stops_reconstruction_with_one_line(tmp_path, case):
    kwargs, needle = SCAN_CASES[case]
    h5 = _write(tmp_path / f"{case}.h5", **kwargs)
    out = tmp_path / "results" / "recon" / case
    with pytest.raises(DataError) as err:
        reconstruct_scan(h5, out, backend="torch", center=C / 2, chunk_rows=2)
    msg = str(err.value)
    assert "\n" not in msg and str(h5) in msg and needle in msg, msg
    # nothing partial: neither the folder nor a temporary one beside it
    assert not (tmp_path / "results" / "recon").exists() or not any(
        (tmp_path / "results" / "recon").iterdir()
    )


def test_good_scan_and_theta_units_override_reconstruct(tmp_path):
    """The corpus' reference scan is accepted; radians without units pass with the override."""
    d, f, k, t = _good()
    h5 = _write(tmp_path / "rad.h5", theta=t, units=None)
    meta = reconstruct_scan(
        h5, tmp_path / "r", backend="torch", center=C / 2, chunk_rows=2, theta_units="radians"
    )
    ref = _write(tmp_path / "deg.h5")
    reconstruct_scan(ref, tmp_path / "d", backend="torch", center=C / 2, chunk_rows=2)
    assert meta["n_slices"] == R
    np.testing.assert_allclose(read_tiff_stack(tmp_path / "r"), read_tiff_stack(tmp_path / "d"))


def test_directory_as_scan(tmp_path):
    with pytest.raises(DataError, match="is a directory"):
        reconstruct_scan(tmp_path, tmp_path / "out", backend="torch", center=C / 2)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------ config


@pytest.fixture(scope="module")
def base_config():
    """config.yaml with the schema's defaults filled in, as the workflow sees it."""
    from snakemake.utils import validate

    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    validate(cfg, str(SCHEMA))
    return cfg


def _set(cfg: dict, dotted: str, value):
    node = cfg
    *parents, last = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return cfg


CONFIG_CASES = {
    # (dotted key, value, text expected in the message): schema level
    "unknown_top_key": ("bogus", 1, "unknown config key 'bogus'; valid keys: evaluate"),
    "unknown_nested_key": ("recon.bogus", 1, "under recon; valid keys: backend, bad_rows, center"),
    "percentile_above_100": ("preprocess.percentiles", [1, 101], "preprocess.percentiles[1]"),
    "bad_backend": ("recon.backend", "fast", "recon.backend"),
    "wrong_type": ("simulate.angles", "many", "simulate.angles"),
    "bad_theta_units": ("scans.shale.theta_units", "grad", "scans.shale.theta_units"),
    "empty_run_scans": ("run_scans", [], "run_scans"),
    # cross-checks
    "reversed_percentiles": ("preprocess.percentiles", [99, 1], "low < high"),
    "equal_percentiles": ("preprocess.percentiles", [5, 5], "low < high"),
    "split_sum": ("preprocess.split", {"train": 0.8, "val": 0.4, "test": 0.3}, "must be 1"),
    "reversed_slices": ("scans.shale.slices", [20, 10], "scans.shale.slices"),
    "unknown_run_scan": ("run_scans", ["granite"], "config run_scans"),
    "unknown_wgan_scan": ("wgan_gp.scans", ["granite"], "config wgan_gp.scans"),
    "unknown_preset": ("srgan.run_presets", ["exp_z"], "srgan.run_presets"),
    "hr_size_not_a_size": ("srgan.hr_size", 128, "srgan.hr_size"),
    "skip_all_slices": ("preprocess.skip_slices", 40, "preprocess.skip_slices"),
    "cv_folds": ("srgan.cv", {"specimens": ["bone", "shale"], "folds": 3}, "srgan.cv.folds"),
    "pretrain_over_epochs": ("srgan.train.pretrain_epochs", 31, "pretrain_epochs"),
    "missing_scan_file": ("scans.mine", {"path": "/nonexistent/x.h5"}, "does not exist"),
    # issue 21 §10: a preset's open blocks, checked against srgan.generator / srgan.train
    "preset_generator_key": (
        "srgan.presets.exp_d.generator",
        {"n_blocks": 4, "chanels": 8},
        "srgan.presets.exp_d.generator: unknown key 'chanels'; valid keys (those of srgan",
    ),
    "preset_train_key": ("srgan.presets.exp_a.train", {"lr_g": 1}, "exp_a.train: unknown key"),
    # issue 21 §16: each split set a stage reads is non-empty
    "empty_val_and_test": (
        "preprocess.split",
        {"train": 1, "val": 0, "test": 0},
        "preprocess.split: test, val are 0, which leaves those sets empty, but compute_distance",
    ),
    "empty_train": (
        "preprocess.split",
        {"train": 0, "val": 0.5, "test": 0.5},
        "preprocess.split: train is 0, which leaves that set empty, but train_wgan_gp reads train",
    ),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_bad_config_is_one_line_naming_the_key(base_config, case, tmp_path):
    key, value, needle = CONFIG_CASES[case]
    cfg = _set(copy.deepcopy(base_config), key, value)
    with pytest.raises(ConfigError) as err:
        config_checks.check_schema(cfg, SCHEMA)
        config_checks.check_consistency(cfg)
    msg = str(err.value)
    assert "\n" not in msg and len(msg) < 400, msg
    assert needle in msg, msg


def test_scan_path_that_is_a_directory(base_config, tmp_path):
    cfg = _set(copy.deepcopy(base_config), "scans.mine", {"path": str(tmp_path)})
    with pytest.raises(ConfigError, match="scans.mine.path: .* is a directory"):
        config_checks.check_consistency(cfg)


def test_valid_configs_pass(base_config):
    config_checks.check_schema(base_config, SCHEMA)
    config_checks.check_consistency(base_config)
    tiny = yaml.safe_load((ROOT / "tests/workflow/tiny/config.yaml").read_text())
    merged = copy.deepcopy(base_config)

    def update(base: dict, new: dict) -> None:  # as Snakemake merges --configfile overlays
        for k, v in new.items():
            if isinstance(v, dict) and isinstance(base.get(k), dict):
                update(base[k], v)
            else:
                base[k] = v

    update(merged, tiny)
    config_checks.check_consistency(merged)


def test_run_scans_restricts_every_stage(base_config, tmp_path):
    h5 = tmp_path / "mine.h5"
    h5.write_bytes(b"")  # existence is what the parse-time check sees
    cfg = copy.deepcopy(base_config)
    cfg["scans"]["mine"] = {"path": str(h5), "voxel_um": 1.0}
    cfg["run_scans"] = ["mine"]
    config_checks.check_consistency(cfg)
    config_checks.restrict_to_run_scans(cfg)
    assert config_checks.select_scans(cfg) == ["mine"]
    assert cfg["wgan_gp"]["scans"] == [] and cfg["srgan"]["scans"] == []
    assert config_checks.select_scans(base_config) == ["bone", "shale"]


def test_empty_mapping_in_overlay_warns(base_config, tmp_path):
    overlay = tmp_path / "my.yaml"
    overlay.write_text("scans: {}\nrecon: {}\nwgan_gp:\n  by_size: {}\n")
    lines = config_checks.overlay_warnings([overlay], base_config)
    assert len(lines) == 3
    assert any("'scans: {}' has no effect" in x and "run_scans" in x for x in lines)
    assert any("wgan_gp.by_size: {}" in x for x in lines)
    assert any("'recon: {}'" in x for x in lines)
    overlay.write_text("recon:\n  chunk_rows: 4\n")
    assert config_checks.overlay_warnings([overlay], base_config) == []


# ------------------------------------------------------------------------------ results


def _png_folder(tmp_path: Path) -> Path:
    from tomosynth.io import atomic_dir

    out = tmp_path / "results" / "png" / "shale" / "16px"
    with atomic_dir(out) as tmp:
        for i in range(5):
            write_png(tmp / f"slice_{i:05d}.png", np.full((16, 16), 40 * i, np.uint8))
    return out


def _tiff_folder(tmp_path: Path) -> Path:
    from tomosynth.io import atomic_dir, write_tiff_slices

    out = tmp_path / "results" / "recon" / "shale"
    with atomic_dir(out) as tmp:
        write_tiff_slices(tmp, np.random.default_rng(0).random((4, 8, 8), dtype=np.float32))
    return out


def _delete(folder: Path) -> str:
    victim = sorted(folder.glob("slice_*"))[2]
    victim.unlink()
    return victim.name


def _overwrite(folder: Path) -> str:
    victim = sorted(folder.glob("slice_*"))[1]
    data = bytearray(victim.read_bytes())
    data[-20] ^= 0xFF  # same size, other content (and a newer mtime)
    victim.write_bytes(bytes(data))
    return victim.name


def _add(folder: Path) -> str:
    extra = folder / "slice_09999.png"
    shutil.copy(sorted(folder.glob("slice_*"))[0], extra)
    return extra.name


def _truncate(folder: Path) -> str:
    victim = sorted(folder.glob("slice_*"))[0]
    victim.write_bytes(victim.read_bytes()[:10])
    return victim.name


RESULT_CASES = {
    "png_deleted_list": (_png_folder, _delete, lambda f: list_pngs(f), "missing"),
    "png_deleted_read": (_png_folder, _delete, lambda f: read_png_stack(f), "missing"),
    "png_changed": (
        _png_folder,
        _overwrite,
        lambda f: read_png_stack(f, ["slice_00000.png"]),
        "changed",
    ),
    "png_added": (_png_folder, _add, lambda f: list_pngs(f), "not in"),
    "png_truncated": (_png_folder, _truncate, lambda f: list_slices(f, "png"), "changed"),
    "tiff_deleted": (_tiff_folder, _delete, lambda f: read_tiff_stack(f), "missing"),
    "tiff_changed": (_tiff_folder, _overwrite, lambda f: kept_slices(f, 0), "changed"),
    "tiff_listed": (
        _tiff_folder,
        _truncate,
        lambda f: read_tiff_stack(sorted(f.glob("*.tiff"))),
        "changed",
    ),
}


@pytest.mark.parametrize("case", sorted(RESULT_CASES))
def test_damaged_results_are_named_with_the_fix(tmp_path, case, monkeypatch):
    monkeypatch.setenv("TOMOSYNTH_RULE", "export_png")
    make, damage, consume, needle = RESULT_CASES[case]
    folder = make(tmp_path)
    consume(folder)  # intact: reads
    name = damage(folder)
    with pytest.raises(DataError) as err:
        consume(folder)
    msg = str(err.value)
    assert "\n" not in msg and name in msg and needle in msg, msg
    assert f"snakemake --forcerun export_png, or delete {folder}" in msg


def test_damaged_manifest_itself(tmp_path):
    folder = _png_folder(tmp_path)
    (folder / "MANIFEST.json").write_text("{not json")
    with pytest.raises(DataError, match="unreadable manifest"):
        list_pngs(folder)


def test_manifest_records_names_count_and_sha256(tmp_path):
    import hashlib

    folder = _png_folder(tmp_path)
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    assert manifest["count"] == 5 and sorted(manifest["files"]) == [
        f"slice_{i:05d}.png" for i in range(5)
    ]
    for name, entry in manifest["files"].items():
        data = (folder / name).read_bytes()
        assert entry["size"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()


def test_verify_command(tmp_path, capsys):
    from tomosynth.cli import main

    results = tmp_path / "results"
    png = _png_folder(tmp_path)
    tiff = _tiff_folder(tmp_path)
    assert main(["verify", str(results)]) == 0
    assert "2 folders, 9 files checked (sha256)" in capsys.readouterr().out
    # a changed file whose size and time were restored is found only by hashing
    victim = sorted(tiff.glob("*.tiff"))[0]
    st = victim.stat()
    data = bytearray(victim.read_bytes())
    data[-1] ^= 1
    victim.write_bytes(bytes(data))
    import os

    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    _delete(png)
    assert main(["verify", str(results), "--fast"]) == 1
    out = capsys.readouterr().out
    assert "1 damaged" in out and "slice_00002.png: missing" in out
    assert main(["verify", str(results)]) == 1
    out = capsys.readouterr().out
    assert "2 damaged" in out and f"{victim}: changed" in out
    assert main(["verify", str(tmp_path / "absent")]) == 2


def test_verify_console_script_is_declared():
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["tomosynth"] == "tomosynth.cli:main"


def test_parse_time_warning_names_the_damaged_folder(tmp_path, monkeypatch):
    from tomosynth.manifest import damaged_warnings

    monkeypatch.setenv("TOMOSYNTH_RULE", "export_png")
    png = _png_folder(tmp_path)
    _tiff_folder(tmp_path)
    assert damaged_warnings(tmp_path / "results") == []
    name = _delete(png)
    (line,) = damaged_warnings(tmp_path / "results")
    assert f"{png} is damaged" in line and name in line and "--forcerun export_png" in line
    assert damaged_warnings(tmp_path / "absent") == []


# ------------------------------------------------------------------------------ issue 21 §1-3


def test_recon_folder_has_a_manifest_that_consumers_and_verify_check(tmp_path, capsys):
    from tomosynth.cli import main

    h5 = _write(tmp_path / "scan.h5")
    out = tmp_path / "results" / "recon" / "mine"
    reconstruct_scan(h5, out, backend="torch", center=C / 2, chunk_rows=2)
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert sorted(manifest["files"]) == ["recon.json"] + [f"slice_{i:05d}.tiff" for i in range(R)]
    assert len(kept_slices(out, 0)) == R
    victim = out / "slice_00002.tiff"
    victim.unlink()
    with pytest.raises(DataError, match="slice_00002.tiff: missing"):
        kept_slices(out, 0)  # clip_bounds / export_png would have gone on with R - 1 slices
    assert main(["verify", str(tmp_path / "results")]) == 1
    assert "slice_00002.tiff: missing" in capsys.readouterr().out


def test_missing_manifest_is_damage_inside_a_job_and_for_verify(tmp_path, monkeypatch, capsys):
    from tomosynth.cli import main
    from tomosynth.manifest import damaged_warnings

    folder = _png_folder(tmp_path)
    (folder / "MANIFEST.json").unlink()
    _delete(folder)
    assert len(list_pngs(folder)) == 4  # outside a workflow job: a hand-made folder
    monkeypatch.setenv("TOMOSYNTH_RULE", "compute_morphology")
    for consume in (list_pngs, read_png_stack, lambda f: read_png_stack(f, ["slice_00000.png"])):
        with pytest.raises(DataError) as err:
            consume(folder)
        msg = str(err.value)
        assert "\n" not in msg and f"{folder}: no MANIFEST.json" in msg, msg
        assert f"delete {folder} and run snakemake again" in msg
    assert main(["verify", str(tmp_path / "results")]) == 1
    out = capsys.readouterr().out
    assert f"DAMAGED {folder}" in out and "no MANIFEST.json" in out
    (line,) = damaged_warnings(tmp_path / "results")
    assert f"{folder} is damaged" in line and "no MANIFEST.json" in line
    # a folder that is not a published output needs none, even in a job
    other = tmp_path / "mine"
    other.mkdir()
    write_png(other / "a.png", np.zeros((4, 4), np.uint8))
    assert len(list_pngs(other)) == 1


def test_stale_temporaries_of_a_killed_export_are_cleaned(tmp_path):
    import os

    from tomosynth.io import atomic_dir, atomic_file

    parent = tmp_path / "results" / "png" / "shale"
    parent.mkdir(parents=True)
    old_style = parent / ".64px.k2j4h5g6.tmp"  # left by a killed export (before pids)
    dead = parent / ".64px.4194303-abcd1234.tmp"  # above pid_max: no such process
    live = parent / f".64px.{os.getpid()}-zzzz9999.tmp"  # being written by a live process
    other = parent / ".64pxx.k2j4h5g6.tmp"  # another output's temporary
    for d in (old_style, dead, live, other):
        d.mkdir()
        (d / "slice_00000.png").write_bytes(b"partial")
    stale_file = parent / ".split.json.k2j4h5g6.tmp"
    stale_file.write_text("{")
    with atomic_dir(parent / "64px") as tmp:
        write_png(tmp / "slice_00000.png", np.zeros((4, 4), np.uint8))
    left = sorted(p.name for p in parent.iterdir())
    assert left == sorted(["64px", live.name, other.name, stale_file.name]), left
    with atomic_file(parent / "split.json") as tmp:
        tmp.write_text("{}")
    assert not stale_file.exists() and (parent / "split.json").read_text() == "{}"


# ------------------------------------------------------------------------------ issue 21 §4-6


def _simulated(path: Path, theta_deg: np.ndarray, *, dtype=np.uint16, bad_row=None):
    """A simulated shale scan (8 rows x 32 columns) at the given angles, as raw counts;
    `bad_row` is saturated at the dtype's maximum, above its flats."""
    from tomosynth.simulate import shale_phantom, simulate_projections

    vol = shale_phantom(columns=32, slices=8, seed=3)
    data, flat, dark = simulate_projections(
        vol, np.deg2rad(theta_deg), photons=8000, dark_counts=100, n_flats=2, n_darks=2, seed=1
    )
    data, flat, dark = (x.astype(dtype) for x in (data, flat, dark))
    if bad_row is not None:
        data[:, bad_row, :] = np.iinfo(dtype).max
    return _write(path, data=data, flat=flat, dark=dark, theta=theta_deg)


def test_stalled_stage_stops_with_the_angle_and_the_indices(tmp_path):
    theta = np.linspace(0, 180, 60, endpoint=False)
    theta[42:] = theta[42]  # the last 30 % at one angle (as in the issue: r 0.28)
    h5 = _simulated(tmp_path / "stalled.h5", theta)
    with pytest.raises(DataError) as err:
        reconstruct_scan(h5, tmp_path / "results/recon/s", backend="torch", center=16)
    msg = str(err.value)
    assert "\n" not in msg and str(h5) in msg, msg
    assert "17 of 60 projections repeat" in msg and "indices 42-59" in msg and "126 degrees" in msg
    assert not (tmp_path / "results/recon/s").exists()
    # two repeats in 60 are below the threshold (a 0..360 scan repeats its first angle once)
    ok = np.linspace(0, 180, 60, endpoint=False)
    ok[10] = ok[9]
    from tomosynth.scan_checks import check_angles

    assert check_angles(h5, np.deg2rad(ok)) == []


def test_angular_gap_is_a_warning_naming_the_range(tmp_path, caplog):
    import logging

    theta = np.linspace(0, 180, 60, endpoint=False)
    theta = np.delete(theta, np.arange(20, 30))  # 60..87 degrees missing
    h5 = _simulated(tmp_path / "gap.h5", theta)
    with caplog.at_level(logging.WARNING, logger="tomosynth.recon"):
        reconstruct_scan(h5, tmp_path / "r", backend="torch", center=16, chunk_rows=4)
    (line,) = [r.getMessage() for r in caplog.records if "no projections between" in r.getMessage()]
    assert "between 57 and 90 degrees" in line and "projections 19 and 20" in line, line
    assert "11 angular steps" in line


def test_glitched_angle_is_named_with_its_index(tmp_path):
    theta = np.linspace(0, 180, 60, endpoint=False)
    theta[17] = 9999.0
    h5 = _simulated(tmp_path / "glitch.h5", theta)
    with pytest.raises(DataError) as err:
        reconstruct_scan(h5, tmp_path / "r", backend="torch", center=16)
    msg = str(err.value)
    assert "\n" not in msg and "index 17: 9999 degrees" in msg and "0 to 177 degrees" in msg
    assert "set theta_units" not in msg  # the old advice repeated the same error


@pytest.mark.parametrize("chunk_rows", [2, 8])
def test_saturated_row_stops_or_is_masked(tmp_path, chunk_rows):
    theta = np.linspace(0, 180, 60, endpoint=False)
    h5 = _simulated(tmp_path / "sat.h5", theta, dtype=np.int16, bad_row=5)
    kw = dict(backend="torch", center=16, chunk_rows=chunk_rows)
    with pytest.raises(DataError) as err:
        reconstruct_scan(h5, tmp_path / "results/recon/sat", **kw)
    msg = str(err.value)
    assert "\n" not in msg and "row 5: saturated" in msg and "recon.bad_rows: mask" in msg, msg
    assert "row 4" not in msg and "row 6" not in msg
    assert not (tmp_path / "results/recon/sat").exists()
    masked = reconstruct_scan(h5, tmp_path / "m", bad_rows="mask", **kw)
    clean = _simulated(tmp_path / "clean.h5", theta, dtype=np.int16)
    reconstruct_scan(clean, tmp_path / "c", **kw)
    got, ref = read_tiff_stack(tmp_path / "m"), read_tiff_stack(tmp_path / "c")
    assert masked["n_slices"] == 8
    np.testing.assert_array_equal(got[5], ref[4])  # row 5 masked by its neighbour below
    np.testing.assert_array_equal(np.delete(got, 5, 0), np.delete(ref, 5, 0))
    # recon.json names the masked row, why, and the row that replaced it
    (entry,) = masked["bad_rows"]["masked"]
    assert masked["bad_rows"]["policy"] == "mask"
    assert entry["row"] == 5 and entry["replaced_by"] == 4 and "saturated" in entry["reason"]
    assert json.loads((tmp_path / "m" / "recon.json").read_text())["bad_rows"] == masked["bad_rows"]
    clean_meta = json.loads((tmp_path / "c" / "recon.json").read_text())
    assert clean_meta["bad_rows"] == {"policy": "error", "masked": []}


def test_masked_row_of_a_reused_chunk_stays_in_recon_json(tmp_path, monkeypatch):
    from tomosynth.recon import chunks

    theta = np.linspace(0, 180, 60, endpoint=False)
    h5 = _simulated(tmp_path / "sat.h5", theta, dtype=np.int16, bad_row=5)
    kw = dict(backend="torch", center=16, chunk_rows=2, bad_rows="mask")
    write = chunks.write_tiff_slices

    def killed_at_row_6(folder, rec, first_index=0, **kw):
        if first_index == 6:
            raise KeyboardInterrupt  # the job killed after the chunk holding row 5
        return write(folder, rec, first_index=first_index, **kw)

    monkeypatch.setattr(chunks, "write_tiff_slices", killed_at_row_6)
    with pytest.raises(KeyboardInterrupt):
        reconstruct_scan(h5, tmp_path / "results/recon/sat", **kw)
    monkeypatch.setattr(chunks, "write_tiff_slices", write)
    meta = reconstruct_scan(h5, tmp_path / "results/recon/sat", **kw)
    assert meta["resume"]["reused_chunks"] == 3 and meta["resume"]["computed_chunks"] == 1
    assert [(m["row"], m["replaced_by"]) for m in meta["bad_rows"]["masked"]] == [(5, 4)]


def test_over_flat_row_below_saturation_is_named(tmp_path):
    from tomosynth.io import read_dxchange
    from tomosynth.scan_checks import bad_detector_rows

    theta = np.linspace(0, 180, 60, endpoint=False)
    h5 = _simulated(tmp_path / "bright.h5", theta)
    with h5py.File(h5, "r+") as h:
        flat = h["/exchange/data_white"][()]
        dark = h["/exchange/data_dark"][()]
        beam = flat[:, 3].mean() - dark[:, 3].mean()
        lam = 1.63 * beam + dark[:, 3].mean()
        noisy = np.random.default_rng(0).poisson(lam, (60, 32)).astype(np.uint16)
        h["/exchange/data"][:, 3, :] = noisy  # noisy: not a plateau, not saturated
    p = read_dxchange(h5)  # the chunk's rows are mostly normal: not "swapped"
    bad = bad_detector_rows(p)
    assert list(bad) == [3] and "transmission 1.6" in bad[3] and "brighter than its flats" in bad[3]


# ------------------------------------------------------------------------------ issue 21 §7 14 16 17


def test_split_needs_follow_the_stages_that_run(base_config):
    cfg = copy.deepcopy(base_config)
    cfg["preprocess"]["split"] = {"train": 0.9, "val": 0.1, "test": 0.0}
    with pytest.raises(ConfigError, match="split: test is 0, .* compute_distance"):
        config_checks.check_consistency(cfg)
    # without the WGAN-GP and the SRGAN stages nothing reads the test set
    cfg["wgan_gp"]["scans"], cfg["srgan"]["scans"] = [], []
    config_checks.check_consistency(cfg)
    assert config_checks.needed_splits(cfg) == {}


@pytest.mark.parametrize(
    "text, where, needle",
    [
        ("recon:\n  chunk_rows: [1\nx: 2\n", ":3:2:", "expected ',' or ']'"),
        ("a: 1\n\tb: 2\n", ":2:1:", "'\\t'"),
        ("a: 1\n b: 2\n", ":2:3:", "mapping values are not allowed"),
    ],
)
def test_yaml_syntax_error_names_file_and_line(tmp_path, text, where, needle, capsys):
    from tomosynth.cli import main

    bad = tmp_path / "overlay.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError) as err:
        config_checks.check_yaml_files([ROOT / "config.yaml", bad])
    msg = str(err.value)
    assert "\n" not in msg and f"{bad}{where}" in msg and needle in msg, msg
    assert main(["check-config", str(ROOT / "config.yaml"), str(bad)]) == 1
    assert capsys.readouterr().err.strip() == msg.removeprefix("config file ")
    config_checks.check_yaml_files([ROOT / "config.yaml"])  # the real one parses


def test_missing_config_file_is_one_line(tmp_path, capsys):
    from tomosynth.cli import main

    with pytest.raises(ConfigError, match=r"absent.yaml: no such config file$"):
        config_checks.check_yaml_files([tmp_path / "absent.yaml"])
    assert main(["check-config", str(tmp_path / "absent.yaml")]) == 1
    assert capsys.readouterr().err == f"{tmp_path / 'absent.yaml'}: no such config file\n"


@pytest.mark.parametrize(
    "argv, files",
    [
        (["-n", "--configfile", "a.yaml", "b.yaml", "--cores", "1"], ["a.yaml", "b.yaml"]),
        (["--configfiles=a.yaml", "all", "--configfile", "b.yaml"], ["a.yaml", "b.yaml"]),
        (["--configfile", "a.yaml", "-n", "target"], ["a.yaml"]),
        (["-n", "--config", "x=1"], []),
    ],
)
def test_configfile_args_as_snakemake_takes_them(argv, files):
    assert config_checks.configfile_args(argv) == files


@pytest.mark.parametrize("text, what", [("", "is empty"), ("- a\n- b\n", "is a list")])
def test_config_file_without_keys_is_named(tmp_path, text, what):
    bad = tmp_path / "x.yaml"
    bad.write_text(text)
    assert config_checks.yaml_problem(bad).startswith(f"{bad}: the config file {what}")


def test_memory_request_above_the_limit_names_the_key():
    lines = config_checks.memory_warnings(
        [("reconstruct", "scan=shale", 265_000), ("clip_bounds", "scan=shale", 3000)],
        64_000,
        "this machine's memory",
    )
    assert lines == [
        "warning: rule reconstruct (scan=shale) asks for 265 GB of memory, more than this "
        "machine's memory (64 GB): lower recon.chunk_rows (or recon.memory_budget_mb)"
    ]
    assert config_checks.memory_warnings([("reconstruct", "scan=s", 10**6)], None, "x") == []
    import os

    mem = config_checks.machine_memory_mb()
    expected = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e6
    assert mem is not None and abs(mem - expected) <= 1


def test_scan_job_memory_evaluates_the_rules_resource_functions():
    from types import SimpleNamespace

    from snakemake.resources import Resource

    def mem(wildcards, input):
        return {"a": 1000, "b": 300_000}[wildcards.scan]

    rules = [
        SimpleNamespace(
            name="reconstruct",
            wildcard_names={"scan"},
            resources={"mem_mb": Resource("mem_mb", mem)},
        ),
        SimpleNamespace(
            name="export_png",
            wildcard_names={"scan", "size"},
            resources={"mem_mb": Resource("mem_mb", mem)},
        ),
        SimpleNamespace(
            name="fixed", wildcard_names={"scan"}, resources={"mem_mb": Resource("mem_mb", 5)}
        ),
    ]
    got = config_checks.scan_job_memory(rules, ["a", "b"])
    assert got == [
        ("reconstruct", "scan=a", 1000),
        ("reconstruct", "scan=b", 300_000),
        ("fixed", "scan=a", 5),
        ("fixed", "scan=b", 5),
    ]


# ------------------------------------------------------------------------------ issue 21 §15


def test_checkpoint_default_is_two_minutes_in_code_and_schema():
    from tomosynth.train.common import DEFAULT_CHECKPOINT_MINUTES
    from tomosynth.train.wgan_gp import TrainConfig

    schema = yaml.safe_load(SCHEMA.read_text())
    wgan = schema["properties"]["wgan_gp"]["properties"]
    assert DEFAULT_CHECKPOINT_MINUTES == 2.0 and TrainConfig().checkpoint_minutes == 2.0
    assert wgan["train"]["properties"]["checkpoint_minutes"]["default"] == 2


def test_start_over_keeps_the_old_checkpoint_until_the_new_one_is_written(tmp_path):
    from tomosynth.checkpoint import load_checkpoint
    from tomosynth.train.wgan_gp import WganGpData, train_wgan_gp

    png = tmp_path / "16px"
    png.mkdir()
    rng = np.random.default_rng(0)
    names = [f"slice_{i:05d}.png" for i in range(8)]
    for name in names:
        write_png(png / name, rng.integers(0, 256, (16, 16)).astype(np.uint8))
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": names[:6], "val": names[6:7], "test": names[7:]}))
    cfg = dict(batch_size=4, max_channels=4, latent_dim=4, n_critic=1, progress_images=4)
    out = tmp_path / "model"
    train_wgan_gp({**cfg, "max_epochs": 1}, WganGpData(png, split), out, progress_bar=False)
    old = (out / "latest.pt").read_bytes()
    assert load_checkpoint(out / "latest.pt")["finished"]
    seen = []

    def at_epoch_end(row):  # before the new run's first checkpoint (2 minutes not yet passed)
        seen.append((out / "latest.pt").read_bytes() == old)

    # other settings: the finished run is not resumed, the training starts over
    train_wgan_gp(
        {**cfg, "max_epochs": 2, "lr": 5e-4},
        WganGpData(png, split),
        out,
        on_epoch_end=at_epoch_end,
        progress_bar=False,
    )
    assert seen == [True, True]  # a kill -9 in these epochs would still find the old one
    assert (out / "latest.pt").read_bytes() != old
    assert load_checkpoint(out / "latest.pt")["epoch"] == 2


# ------------------------------------------------------------------------------ issue 21 §8 9 11 13


def test_full_disk_during_reconstruction_says_no_space_and_keeps_chunks(tmp_path, monkeypatch):
    import errno

    import tifffile

    h5 = _write(tmp_path / "scan.h5")
    out = tmp_path / "results" / "recon" / "mine"
    real = tifffile.imwrite
    calls = []

    def short_write(path, data, *a, **kw):  # numpy's message for a short write
        calls.append(path)
        if len(calls) > 2:
            raise OSError("4096 requested and 3004 written")
        return real(path, data, *a, **kw)

    monkeypatch.setattr(tifffile, "imwrite", short_write)
    with pytest.raises(OSError) as err:
        reconstruct_scan(h5, out, backend="torch", center=C / 2, chunk_rows=2)
    msg = str(err.value)
    assert err.value.errno == errno.ENOSPC and "\n" not in msg, msg
    assert f"no space left on {tmp_path / 'results' / 'recon' / '.mine.partial' / 'slices'}" in msg
    assert "3004 written" in msg
    assert not out.exists()
    partial = tmp_path / "results" / "recon" / ".mine.partial"
    assert len(list((partial / "chunks").glob("rows_*.json"))) == 1  # kept for the rerun
    assert not list((partial / "slices").glob(".*.tmp"))  # no temporary left behind
    monkeypatch.setattr(tifffile, "imwrite", real)
    meta = reconstruct_scan(h5, out, backend="torch", center=C / 2, chunk_rows=2)
    assert meta["resume"]["reused_chunks"] == 1


def test_full_disk_during_export_says_no_space(tmp_path, monkeypatch):
    import errno
    import shutil as sh
    from collections import namedtuple

    import cv2

    from tomosynth.preprocess import export_png

    folder = _tiff_folder(tmp_path)
    bounds = tmp_path / "bounds.json"
    bounds.write_text(json.dumps({"low": 0.0, "high": 1.0}))
    out = tmp_path / "results" / "png" / "shale" / "8px"
    usage = namedtuple("usage", "total used free")
    # OpenCV's encoder only says False; the free space tells why (tomosynth.io.write_png)
    monkeypatch.setattr(cv2, "imencode", lambda *a: (False, None))
    monkeypatch.setattr(sh, "disk_usage", lambda p: usage(10**9, 10**9 - 3004, 3004))
    with pytest.raises(OSError) as err:
        export_png(folder, bounds, out, size=8, skip_slices=0, threads=1)
    assert err.value.errno == errno.ENOSPC and "no space left on" in str(err.value)
    assert f"{out.parent}" in str(err.value) and "free 0.0 MiB" in str(err.value)
    assert sorted(p.name for p in out.parent.iterdir()) == []  # no partial folder
    monkeypatch.setattr(sh, "disk_usage", lambda p: usage(10**12, 0, 10**12))
    with pytest.raises(DataError, match="could not write the file"):
        export_png(folder, bounds, out, size=8, skip_slices=0, threads=1)


@pytest.mark.parametrize("text", ['{"low": 0.1, "hi', "", "[1, 2]"])
def test_corrupt_bounds_json_names_the_file_and_the_rule(tmp_path, text):
    from tomosynth.preprocess import export_png

    folder = _tiff_folder(tmp_path)
    bounds = tmp_path / "results" / "preprocess" / "shale" / "bounds.json"
    bounds.parent.mkdir(parents=True)
    bounds.write_text(text)
    out = tmp_path / "results" / "png" / "shale" / "8px"
    with pytest.raises(DataError) as err:
        export_png(folder, bounds, out, size=8, skip_slices=0, threads=1)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{bounds}: damaged"), msg
    assert "snakemake --forcerun clip_bounds" in msg and not out.exists()


def test_permission_denied_is_said_first(tmp_path, monkeypatch):
    import os

    import h5py

    from tomosynth.io import inspect_dxchange, read_json

    h5 = _write(tmp_path / "scan.h5")
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if Path(p) == h5 else real_access(p, mode)
    )
    with pytest.raises(DataError) as err:
        inspect_dxchange(h5)
    assert str(err.value).startswith(f"{h5}: permission denied") and "corrupt" not in str(err.value)
    monkeypatch.setattr(os, "access", real_access)
    # h5py reports EACCES inside its own text (as root, os.access says yes to everything)

    def denied(*a, **kw):
        raise OSError(
            "Unable to synchronously open file (unable to open file: name = 'x', errno = 13, "
            "error message = 'Permission denied', flags = 0, o_flags = 0)"
        )

    monkeypatch.setattr(h5py, "File", denied)
    with pytest.raises(DataError, match=r"scan.h5: permission denied \(not readable"):
        reconstruct_scan(h5, tmp_path / "out", backend="torch", center=C / 2)
    monkeypatch.undo()
    js = tmp_path / "x.json"
    js.write_text("{}")
    if os.getuid() != 0:  # chmod does not stop root
        js.chmod(0)
        with pytest.raises(DataError, match="permission denied"):
            read_json(js)


@pytest.mark.parametrize("name", ["latest.pt", "best.pt"])
def test_truncated_checkpoint_names_the_file_and_the_fix(tmp_path, name):
    import torch

    from tomosynth.checkpoint import load_checkpoint, save_checkpoint

    path = tmp_path / name
    save_checkpoint(path, {"w": torch.arange(1000.0), "epoch": 3})
    path.write_bytes(path.read_bytes()[:-700])  # a copy or a disk that stopped half-way
    with pytest.raises(DataError) as err:
        load_checkpoint(path)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{path}: unreadable checkpoint"), msg
    assert len(msg) - len(str(path)) < 250 and "truncated or corrupt" in msg
    if name == "latest.pt":
        assert "mv latest.pt latest.pt.bad" in msg and "delete it" in msg and "from scratch" in msg
    else:
        assert "run snakemake again" in msg


# ------------------------------------------------------------------------------ issue 21 §12


@pytest.fixture
def fake_run(tmp_path):
    """A process that looks like `snakemake --cores 1` working in tmp_path / "run"."""
    import subprocess
    import sys

    folder = tmp_path / "run"
    folder.mkdir()
    exe = tmp_path / "bin" / "snakemake"
    exe.parent.mkdir()
    exe.symlink_to(sys.executable)
    proc = subprocess.Popen(
        [str(exe), "-c", "import time; time.sleep(120)", "--cores", "1"], cwd=folder
    )
    yield folder, proc
    proc.kill()
    proc.wait()


def test_second_run_in_a_folder_is_told_it_is_in_use(fake_run, tmp_path):
    import time

    from tomosynth.jobs import in_use_message, is_snakemake_run, other_runs, read_only

    folder, proc = fake_run
    deadline = time.monotonic() + 10
    while not other_runs(folder) and time.monotonic() < deadline:
        time.sleep(0.05)  # exec of the child
    assert other_runs(folder) == [proc.pid]
    msg = in_use_message(folder)
    assert msg.startswith(f"{folder} is in use by another Snakemake run (pid {proc.pid}:")
    assert f"kill -INT {proc.pid}" in msg and "\n" not in msg
    assert in_use_message(tmp_path) is None  # another folder is free
    assert is_snakemake_run(["/venv/bin/python", "-m", "snakemake", "--cores", "2"])
    assert not is_snakemake_run(["python", "-m", "snakemake", "--mode", "remote"])  # its jobs
    assert not is_snakemake_run(["python", ".snakemake/scripts/tmpab.train_wgan_gp.py"])
    assert read_only(["-pn"]) and read_only(["--unlock"]) and not read_only(["--cores", "2"])
    proc.kill()
    proc.wait()
    assert in_use_message(folder) is None


def test_full_disk_inside_an_atomic_folder_is_said_once(tmp_path, monkeypatch):
    import errno

    import tifffile

    from tomosynth.io import atomic_dir, write_tiff_slices

    def full(*a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tifffile, "imwrite", full)
    out = tmp_path / "results" / "recon" / "x"
    with pytest.raises(OSError) as err, atomic_dir(out) as tmp:
        write_tiff_slices(tmp, np.zeros((2, 4, 4), np.float32))
    assert str(err.value).count("no space left on") == 1 and not out.exists()
    assert list(out.parent.iterdir()) == []


def test_schema_recon_enums_are_what_the_code_accepts():
    """The schema's recon enums equal the names the code takes, and each of them works."""
    from tomosynth.recon.backends import BACKENDS
    from tomosynth.recon.center import CENTER_METHODS, find_center
    from tomosynth.recon.filters import FILTERS, ramp_filter
    from tomosynth.scan_checks import BAD_ROW_POLICIES
    from tomosynth.simulate import shale_phantom, simulate_projections

    recon = yaml.safe_load(SCHEMA.read_text())["properties"]["recon"]["properties"]
    assert recon["filter"]["enum"] == list(FILTERS)
    assert recon["center_method"]["enum"] == list(CENTER_METHODS)
    assert recon["backend"]["enum"] == list(BACKENDS)
    assert recon["bad_rows"]["enum"] == list(BAD_ROW_POLICIES)
    # every listed filter is the window tomopy's name stands for (f in cycles/pixel)
    windows = {
        "ramlak": lambda f: np.ones_like(f),
        "shepp": np.sinc,
        "cosine": lambda f: np.cos(np.pi * f),
        "hann": lambda f: 0.5 + 0.5 * np.cos(2 * np.pi * f),
        "hamming": lambda f: 0.54 + 0.46 * np.cos(2 * np.pi * f),
        "parzen": lambda f: (1 - 2 * f) ** 3,
        "butterworth": lambda f: 1 / (1 + (f / 0.4) ** 16),
    }
    assert sorted(recon["filter"]["enum"]) == sorted([*windows, "none"])
    ramp = ramp_filter(64, "ramlak")
    f = np.fft.rfftfreq(2 * (len(ramp) - 1))
    for name, window in windows.items():
        np.testing.assert_allclose(ramp_filter(64, name), ramp * window(f), atol=1e-12)
    np.testing.assert_array_equal(ramp_filter(64, "none"), np.ones_like(f))
    with pytest.raises(ConfigError, match="recon.filter"):
        ramp_filter(64, "blackman")
    # every listed centre method finds the axis of a simulated scan (centre 16 of 32)
    theta = np.deg2rad(np.linspace(0, 180, 61))  # 0 and 180 degrees: a pair for correlation
    vol = shale_phantom(columns=32, slices=2, seed=3)
    proj, flat, dark = simulate_projections(
        vol, theta, photons=50000, dark_counts=0, n_flats=2, n_darks=2, seed=1
    )
    p = -np.log(np.clip(proj / flat.mean(0), 1e-6, None))
    for method in recon["center_method"]["enum"]:
        assert abs(find_center(p, theta, method=method, device="cpu") - 16) < 1, method
    with pytest.raises(ConfigError, match="recon.center_method"):
        find_center(p, theta, method="gradient", device="cpu")


def test_center_method_reaches_the_reconstruction_only_when_chosen():
    from tomosynth.plan import recon_params

    recon = {"backend": "auto", "center": "auto", "center_method": "auto", "threads": 2}
    config = {"recon": recon, "scans": {"s": {"center": None, "slices": None, "theta_units": None}}}
    assert "center_method" not in recon_params(config, "s")  # default: params as before
    config["recon"] = dict(recon, center_method="entropy")
    assert recon_params(config, "s")["center_method"] == "entropy"

"""Provenance sidecars and the compute-accounting table."""

import csv
import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import torch

from tomosynth.errors import DataError
from tomosynth.metrics.compute import compute_table, read_training_log
from tomosynth.provenance import (
    checkpoint_hashes,
    provenance,
    scan_context,
    sidecar_path,
    write_sidecar,
)

WGAN_FIELDS = ["epoch", "wall_s", "g_loss", "c_loss", "gp", "wasserstein", "images_per_s"]


def _wgan_dir(path, rows, device="cuda"):
    path.mkdir(parents=True)
    with open(path / "log.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, WGAN_FIELDS)
        w.writeheader()
        w.writerows(rows)
    torch.save(
        {"seed": 0, "run_config": {"device": device, "budget_minutes": 6.0}, "w": torch.ones(2)},
        path / "final.pt",
    )
    return path


def _rows(n, per_epoch_s, ips):
    return [
        {"epoch": e + 1, "wall_s": per_epoch_s * (e + 1), "g_loss": 0, "c_loss": 0, "gp": 0,
         "wasserstein": 0, "images_per_s": ips[e]}
        for e in range(n)
    ]  # fmt: skip


@pytest.fixture
def models(tmp_path):
    low = _wgan_dir(tmp_path / "wgan_gp/s_64px", _rows(4, 90.0, [100.0, 120.0, 110.0, 130.0]))
    high = _wgan_dir(tmp_path / "wgan_gp/s_256px", _rows(2, 1800.0, [10.0, 12.0]), device="cpu")
    srcnn = tmp_path / "srcnn/s"
    srcnn.mkdir(parents=True)
    (srcnn / "log.csv").write_text("epoch,train_mse,elapsed_s,seed\n1,0.1,30.5,0\n2,0.05,61.0,0\n")
    torch.save({"device": "cuda:0"}, srcnn / "best.pt")
    dist = tmp_path / "d.csv"
    pd.DataFrame(
        {
            "set": ["upscaled/s/bicubic", "upscaled/s/bicubic", "samples/wgan_gp/s_256px"],
            "reference": ["train", "test", "train"],
            "metric": ["FRD (tomosynth radiomics features)"] * 3,
            "value": [12.0, 13.0, 40.0],
        }
    ).to_csv(dist, index=False)
    return {"low": low, "high": high, "srcnn": srcnn, "dist": dist}


def test_compute_table_matches_the_logs(models):
    table = compute_table(
        {"wgan_64": ("s", models["low"]), "wgan_256": ("s", models["high"]),
         "srcnn": ("s", models["srcnn"])},
        {"upscaled/s/bicubic": ("s", ["wgan_64"]), "upscaled/s/srcnn": ("s", ["wgan_64", "srcnn"]),
         "samples/wgan_gp/s_256px": ("s", ["wgan_256"])},
        [models["dist"]],
    )  # fmt: skip
    rows = table.set_index("name")
    log = pd.read_csv(models["low"] / "log.csv")
    assert rows.loc["wgan_64", "images_per_s"] == pytest.approx(log["images_per_s"].mean())
    assert rows.loc["wgan_64", "epochs"] == 4
    assert rows.loc["wgan_64", "wall_s"] == pytest.approx(360.0)
    assert rows.loc["wgan_64", "device_hours"] == pytest.approx(0.1)
    assert rows.loc["wgan_64", "device"] == "cuda"  # from the checkpoint's run config
    assert rows.loc["wgan_64", "budget_minutes"] == 6.0
    sha = hashlib.sha256((models["low"] / "final.pt").read_bytes()).hexdigest()
    assert rows.loc["wgan_64", "checkpoint_sha256"] == sha
    assert rows.loc["wgan_256", "images_per_s"] == pytest.approx(11.0)
    assert np.isnan(rows.loc["srcnn", "images_per_s"])  # SRCNN does not log it
    assert rows.loc["srcnn", "wall_s"] == pytest.approx(61.0)
    assert rows.loc["srcnn", "device"] == "cuda:0"
    bic = rows.loc["upscaled/s/bicubic"]
    assert bic["row_type"] == "pipeline" and bic["score"] == 12.0  # vs train, not test
    assert bic["score_per_device_hour"] == pytest.approx(12.0 / 0.1)
    sr = rows.loc["upscaled/s/srcnn"]
    assert sr["device_hours"] == pytest.approx((360.0 + 61.0) / 3600)
    assert pd.isna(sr["budget_minutes"])  # the SRCNN checkpoint records no budget
    assert np.isnan(sr["score"])  # no distance row for it
    assert rows.loc["samples/wgan_gp/s_256px", "score_per_device_hour"] == pytest.approx(40.0)


def test_compute_table_errors(models, tmp_path):
    with pytest.raises(DataError, match="no compute row"):
        compute_table({"a": ("s", models["low"])}, {"x": ("s", ["b"])})
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad/log.csv").write_text("epoch,loss\n1,2\n")
    with pytest.raises(DataError, match="wall_s"):
        read_training_log(tmp_path / "bad/log.csv")


def test_provenance_sidecar(tmp_path, models):
    record = provenance(scan="s", seeds={"split": 0}, value=float("nan"), arr=np.arange(3),
                        checkpoints=checkpoint_hashes({"m": models["low"], "gone": tmp_path / "x"}))  # fmt: skip
    assert record["versions"]["numpy"] == np.__version__
    assert record["versions"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    out = tmp_path / "t.csv"
    path = write_sidecar(out, record)
    assert path == sidecar_path(out) == tmp_path / "t.json"
    back = json.loads(path.read_text())
    assert back["value"] is None and back["arr"] == [0, 1, 2] and back["seeds"] == {"split": 0}
    assert (
        back["checkpoints"]["m"]["sha256"]
        == hashlib.sha256((models["low"] / "final.pt").read_bytes()).hexdigest()
    )
    assert back["checkpoints"]["gone"]["sha256"] is None


def test_scan_context_reads_centre_and_bounds(tmp_path):
    (tmp_path / "recon").mkdir()
    (tmp_path / "recon/recon.json").write_text(json.dumps({"center": 128.5, "backend": "astra"}))
    (tmp_path / "bounds.json").write_text(json.dumps({"low": -0.1, "high": 0.9}))
    ctx = scan_context(tmp_path / "recon", tmp_path / "bounds.json")
    assert ctx["center"] == 128.5 and ctx["clip_bounds"] == {"low": -0.1, "high": 0.9}
    assert scan_context(tmp_path / "none", None)["center"] is None


def test_figure_provenance_collects_scan_checkpoint_and_table_records(tmp_path):
    import hashlib
    import json

    from tomosynth.provenance import figure_provenance

    res = tmp_path / "results"
    (res / "recon" / "rock").mkdir(parents=True)
    (res / "recon" / "rock" / "recon.json").write_text(json.dumps({"center": 63.5}))
    (res / "preprocess" / "rock").mkdir(parents=True)
    (res / "preprocess" / "rock" / "bounds.json").write_text(json.dumps({"low": -1, "high": 2}))
    model = res / "models" / "m"
    model.mkdir(parents=True)
    (model / "final.pt").write_bytes(b"weights")
    (model / "log.csv").write_text("epoch\n1\n")
    table = res / "metrics" / "t.csv"
    table.parent.mkdir(parents=True)
    table.write_text("a\n1\n")
    (res / "metrics" / "t.json").write_text(json.dumps({"seeds": {"split": 7}}))

    side = figure_provenance(
        res / "plots" / "fig.png",
        [model / "log.csv", table, model / "progress"],
        scans=["rock"],
        results=res,
        seed=3,
    )
    assert side == res / "plots" / "fig.json"
    rec = json.loads(side.read_text())
    assert rec["scans"]["rock"]["center"] == 63.5
    assert rec["scans"]["rock"]["clip_bounds"] == {"low": -1, "high": 2}
    digest = hashlib.sha256(b"weights").hexdigest()
    assert rec["inputs"][str(model / "log.csv")]["checkpoint"]["sha256"] == digest
    assert rec["inputs"][str(table)]["sidecar"] == {"seeds": {"split": 7}}
    assert rec["seed"] == 3 and rec["versions"]["numpy"]

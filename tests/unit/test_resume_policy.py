"""One resume policy for every trainer: the decision table of ResumableRun, and for WGAN-GP,
SRCNN and SRGAN alike: changed data starts over, a finished run is published again without
training, and an interrupted run resumes to the weights of an uninterrupted one."""

import hashlib
import json
import logging
import math
import signal

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

import tomosynth.train.srcnn as srcnn_train
import tomosynth.train.srgan as srgan_train
import tomosynth.train.wgan_gp as wgan_train
from tomosynth.errors import ConfigError
from tomosynth.sr_data import bicubic_downscale
from tomosynth.train.common import (
    ResumableRun,
    RunRecord,
    StopRequested,
    StopSignal,
    config_digest,
    data_digest,
    load_checkpoint,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/unit/conftest.py


# --- the decision table -------------------------------------------------------------------------
CFG = {"lr": 1e-3, "seed": 0, "device": "cpu", "budget_minutes": 10.0, "max_epochs": 5}


def _run(**kw):
    base = dict(
        kind="t",
        config=dict(CFG),
        data_digest="d1",
        max_epochs=5,
        budget_s=600.0,
        resumable_keys=frozenset({"device", "budget_minutes", "max_epochs"}),
        republish_ignores=frozenset({"device"}),
    )
    return ResumableRun(**{**base, **kw})


def _record(**kw):
    base = dict(kind="t", config=dict(CFG), data_digest="d1", finished=False, epoch=2)
    return RunRecord(**{**base, **kw})


def test_decision_table():
    run = _run()
    assert run.decide(None).action == "fresh"
    assert run.decide(_record()).action == "resume"
    d = run.decide(_record(data_digest="d2"))
    assert d.start_over and d.reason == "the training images changed"
    assert run.decide(_record(data_digest=None)).start_over  # cannot tell: train again
    assert "'other'" in run.decide(_record(kind="other")).reason
    d = run.decide(_record(config={**CFG, "lr": 1e-4}))
    assert d.start_over and "['lr']" in d.reason
    # limits, device: may change on resume
    other_limits = {**CFG, "device": "cuda", "budget_minutes": 20.0, "max_epochs": 9}
    assert run.decide(_record(config=other_limits)).resume
    # finished: same settings (device aside) -> republish; other limits -> per trainer
    assert run.decide(_record(finished=True)).republish
    assert run.decide(_record(finished=True, config={**CFG, "device": "cuda"})).republish
    raised = {**CFG, "max_epochs": 9}
    d = run.decide(_record(finished=True, config=raised))
    assert d.start_over and "finished" in d.reason and "max_epochs" in d.reason
    assert _run(continue_finished=True).decide(_record(finished=True, config=raised)).resume
    assert (
        _run(continue_finished=True)
        .decide(_record(finished=True, config={**CFG, "lr": 1.0}))
        .start_over
    )
    # a run cannot be undone: past the new cap or the new budget -> start over
    d = _run(max_epochs=3).decide(_record(epoch=4))
    assert d.start_over and "more than the cap 3" in d.reason
    assert _run(max_epochs=4).decide(_record(epoch=4)).resume
    d = _run(budget_s=60.0).decide(_record(passed_s=60.0))
    assert d.start_over and "budget of 1 min" in d.reason
    assert _run(budget_s=60.0).decide(_record(passed_s=59.9)).resume
    assert _run(budget_s=math.inf).decide(_record(passed_s=1e9)).resume


def test_digests_are_closed_forms():
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    b = np.linspace(0, 1, 5, dtype=np.float32)
    assert data_digest(a) == hashlib.sha256(a.tobytes()).hexdigest()
    assert (
        data_digest(a, b, algorithm="sha1") == hashlib.sha1(a.tobytes() + b.tobytes()).hexdigest()
    )
    assert data_digest(a.T) == hashlib.sha256(np.ascontiguousarray(a.T).tobytes()).hexdigest()
    canonical = json.dumps({"lr": 1e-3, "seed": 0}, sort_keys=True, separators=(",", ":"))
    assert config_digest(CFG, {"device", "budget_minutes", "max_epochs"}) == (
        hashlib.sha256(canonical.encode()).hexdigest()
    )
    run = _run()
    assert run.config_digest() == _run(config={**CFG, "device": "cuda"}).config_digest()
    assert run.config_digest() != _run(config={**CFG, "lr": 2e-3}).config_digest()


# --- the three trainers ----------------------------------------------------------------------------
def _smooth(rng, n, size):
    f = ndimage.gaussian_filter(rng.standard_normal((n, size, size)), (0, 2, 2))
    f = (f - f.min()) / (f.max() - f.min())
    return f


class Wgan:
    """WGAN-GP on 32 blurred 16-px slices; variant 1 trains on 24 of them."""

    name = "wgan_gp"
    owner = wgan_train._Trainer
    outputs = ("final.pt", "log.csv")
    weights_file = "final.pt"
    cfg = dict(
        batch_size=16, max_channels=8, n_critic=2, lr=1e-3, betas=(0.5, 0.9), latent_dim=8,
        progress_every=2, progress_images=4, budget_minutes=10.0,
    )  # fmt: skip

    def __init__(self, root):
        png = root / "png"
        png.mkdir()
        imgs = np.round(255 * _smooth(np.random.default_rng(0), 32, 16)).astype(np.uint8)
        names = [f"slice_{i:05d}.png" for i in range(32)]
        for name, img in zip(names, imgs, strict=True):
            Image.fromarray(img).save(png / name)
        self.png = png
        self.splits = []
        for k, n in enumerate((32, 24)):
            path = root / f"split{k}.json"
            path.write_text(json.dumps({"train": names[:n], "val": [], "test": []}))
            self.splits.append(path)

    def train(self, out, epochs, variant=0, stop=None):
        hook = None
        if stop is not None:

            def hook(row):  # a SIGTERM arriving after the first epoch
                if row["epoch"] == 1:
                    stop.request(signal.SIGTERM)

        return wgan_train.train_wgan_gp(
            {**self.cfg, "max_epochs": epochs},
            wgan_train.WganGpData(self.png, self.splits[variant]),
            out,
            stop=stop,
            on_epoch_end=hook,
            progress_bar=False,
        )

    @staticmethod
    def weights(path):
        ck = load_checkpoint(path)
        return {**ck["generator"], **{f"critic.{k}": v for k, v in ck["critic"].items()}}


class Srcnn:
    """SRCNN on 6 pairs of 32-px slices (4 train, 2 val); variant 1 inverts one train target."""

    name = "srcnn"
    owner = srcnn_train._SRCNNRun
    outputs = ("best.pt", "log.csv")
    weights_file = "latest.pt"
    cfg = dict(
        channels=(4, 4), kernels=(3, 1, 3), lr=1e-2, patch_size=16, patience=10, seed=3,
        device="cpu",
    )  # fmt: skip

    def __init__(self, root):
        highs = np.round(255 * _smooth(np.random.default_rng(1), 6, 32)).astype(np.uint8)
        names = [f"slice_{i:05d}.png" for i in range(6)]
        self.dirs = []
        for k in range(2):
            low, high = root / f"low{k}", root / f"high{k}"
            low.mkdir()
            high.mkdir()
            for i, (name, img) in enumerate(zip(names, highs, strict=True)):
                img = 255 - img if (k == 1 and i == 0) else img
                Image.fromarray(img).save(high / name)
                small = img.reshape(8, 4, 8, 4).mean(axis=(1, 3))
                Image.fromarray(np.round(small).astype(np.uint8)).save(low / name)
            self.dirs.append((low, high))
        self.split = root / "split.json"
        self.split.write_text(json.dumps({"train": names[:4], "val": names[4:], "test": []}))

    def train(self, out, epochs, variant=0, stop=None):
        if stop is not None:
            stop.request(signal.SIGTERM)  # checked after the first epoch
        low, high = self.dirs[variant]
        return srcnn_train.train_srcnn(
            {"max_epochs": epochs, **self.cfg},
            srcnn_train.SRCNNData(low, high, self.split),
            out,
            stop=stop,
        )

    @staticmethod
    def weights(path):
        return load_checkpoint(path)["model"]


class Srgan:
    """A tiny SRGAN at x2 on 4 + 2 smooth 16-px slices; variant 1 changes one train image."""

    name = "srgan"
    owner = srgan_train._SRGANRun
    outputs = ("best.pt", "log.csv")
    weights_file = "latest.pt"

    def __init__(self, root):
        vol = _smooth(np.random.default_rng(2), 6, 16).astype(np.float32)
        changed = vol.copy()
        changed[0] = 1.0 - changed[0]
        self.data = [
            (v[:4], bicubic_downscale(v[:4], 2), v[4:], bicubic_downscale(v[4:], 2))
            for v in (vol, changed)
        ]

    def cfg(self, epochs):
        return srgan_train.SRGANTrainConfig.from_dict(
            {
                "scale": 2,
                "generator": {"channels": 4, "n_blocks": 1, "kernel": 3},
                "discriminator": {"base_features": 4, "max_features": 8, "n_layers": 2},
                "weights": {"l1": 1.0, "adversarial": 1e-3, "tv": 0.0},
                "epochs": epochs,
                "pretrain_epochs": 1,
                "batch_size": 2,
                "lr": 1e-3,
                "patch_size": 8,
                "device": "cpu",
            }
        )

    def train(self, out, epochs, variant=0, stop=None):
        if stop is not None:
            stop.request(signal.SIGTERM)  # checked after the first epoch
        return srgan_train.train_srgan(
            self.cfg(epochs),
            srgan_train.SRGANData(*self.data[variant]),
            out,
            stop=stop,
            restart_on_mismatch=True,
        )

    @staticmethod
    def weights(path):
        ck = load_checkpoint(path)["model"]
        return {
            **ck["generator"],
            **{f"d.{k}": v for k, v in ck["discriminators"].items()},
        }


TRAINERS = [Wgan, Srcnn, Srgan]


def _rows(path):
    return path.read_text().splitlines()


def _same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("kind", TRAINERS, ids=lambda t: t.name)
def test_changed_data_starts_over(kind, tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO)
    t = kind(tmp_path)
    t.train(tmp_path / "m", epochs=2)
    t.train(tmp_path / "m", epochs=2, variant=1)
    said = capsys.readouterr().err + caplog.text
    assert "the training images changed" in said
    assert len(_rows(tmp_path / "m" / "log.csv")) == 1 + 2  # no epochs 3, 4 on top
    t.train(tmp_path / "ref", epochs=2, variant=1)
    _same(t.weights(tmp_path / "m" / t.weights_file), t.weights(tmp_path / "ref" / t.weights_file))


def test_srgan_changed_data_is_an_error_without_restart(tmp_path):
    """The workflow restarts; a direct call refuses to resume a model of other images."""
    t = Srgan(tmp_path)
    t.train(tmp_path / "m", epochs=1)
    with pytest.raises(ConfigError, match="the training images changed"):
        srgan_train.train_srgan(
            t.cfg(1), srgan_train.SRGANData(*t.data[1]), tmp_path / "m", restart_on_mismatch=False
        )


@pytest.mark.parametrize("kind", TRAINERS, ids=lambda t: t.name)
def test_finished_run_is_republished_without_training(kind, tmp_path, monkeypatch, capsys, caplog):
    t = kind(tmp_path)
    out = tmp_path / "m"
    first = t.train(out, epochs=2)
    log_before = (out / "log.csv").read_text()
    weights_before = t.weights(out / t.weights_file)
    for name in t.outputs:  # Snakemake deletes the outputs of an interrupted job
        (out / name).unlink()

    def no_training(self, *args, **kwargs):
        raise AssertionError("an epoch was trained again")

    monkeypatch.setattr(t.owner, "run_epoch", no_training)
    again = t.train(out, epochs=2)
    said = capsys.readouterr().err + caplog.text
    assert "without retraining" in said
    assert (out / "log.csv").read_text() == log_before
    assert len(_rows(out / "log.csv")) == 1 + 2
    assert all((out / name).exists() for name in t.outputs)
    _same(t.weights(out / t.weights_file), weights_before)
    if kind is Wgan:
        assert again["epoch"] == first["epoch"] == 2
    else:
        assert again == first


@pytest.mark.parametrize("kind", TRAINERS, ids=lambda t: t.name)
def test_interrupted_run_resumes_to_the_uninterrupted_weights(kind, tmp_path):
    """Exact equality: CPU, one thread, RNG state in the checkpoint."""
    t = kind(tmp_path)
    t.train(tmp_path / "ref", epochs=3)
    with pytest.raises(StopRequested):
        t.train(tmp_path / "cut", epochs=3, stop=StopSignal())
    assert len(_rows(tmp_path / "cut" / "log.csv")) == 1 + 1
    for name in t.outputs:
        (tmp_path / "cut" / name).unlink(missing_ok=True)
    t.train(tmp_path / "cut", epochs=3)
    _same(
        t.weights(tmp_path / "cut" / t.weights_file),
        t.weights(tmp_path / "ref" / t.weights_file),
    )
    assert len(_rows(tmp_path / "cut" / "log.csv")) == 1 + 3

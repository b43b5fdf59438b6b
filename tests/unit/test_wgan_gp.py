"""WGAN-GP: architecture, gradient penalty, budget, resume, learning, signals, sampling."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from tomosynth.errors import ConfigError, DataError
from tomosynth.losses import gradient_penalty
from tomosynth.models.wgan_gp import Critic, Generator, load_wgan_generator
from tomosynth.train import wgan_gp as wg
from tomosynth.train.common import StopRequested, StopSignal, load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
SIZE = 16
# Tiny, fast settings; lr/betas chosen so 16-px blobs are learnt within seconds.
FAST = dict(
    batch_size=16,
    max_channels=16,
    n_critic=5,
    lr=1e-3,
    betas=(0.5, 0.9),
    latent_dim=16,
    progress_every=2,
    progress_images=4,
    budget_minutes=10.0,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/unit/conftest.py


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    """64 blurred-blob 16-px slices (0..255) and a split manifest using 48 for training."""
    root = tmp_path_factory.mktemp("blobs")
    png = root / f"{SIZE}px"
    png.mkdir()
    rng = np.random.default_rng(0)
    names = []
    for i in range(64):
        img = np.zeros((SIZE, SIZE))
        for _ in range(2):
            y, x = rng.integers(3, SIZE - 3, 2)
            img[y, x] = 1.0
        img = ndimage.gaussian_filter(img, 2.0)
        img = np.round(255 * img / img.max()).astype(np.uint8)
        name = f"slice_{i:05d}.png"
        Image.fromarray(img).save(png / name)
        names.append(name)
    split = {
        "scan": "blobs",
        "seed": 0,
        "train": names[:48],
        "val": names[48:56],
        "test": names[56:],
    }
    (root / "split.json").write_text(json.dumps(split))
    return png, root / "split.json"


def _train(blobs, out, **kw):
    png, split = blobs
    return wg.train_wgan_gp({**FAST, **kw}, wg.WganGpData(png, split), out, progress_bar=False)


# --- architecture ------------------------------------------------------------------------
@pytest.mark.parametrize("size", [16, 32, 64, 128, 256])
def test_shapes(size):
    g = Generator(size, latent_dim=8, max_channels=4)
    c = Critic(size, max_channels=4)
    x = g(torch.randn(3, 8))
    assert x.shape == (3, 1, size, size)
    assert x.min() >= -1 and x.max() <= 1
    assert c(x).shape == (3,)


@pytest.mark.parametrize(("size", "expected"), [(64, [128, 64]), (256, [512, 256, 128, 64])])
def test_generator_channels_follow_thesis(size, expected):
    """Blocks start at 2 x size channels and halve from the second block on (thesis 5.2)."""
    g = Generator(size, latent_dim=4)
    block_out = [m.out_channels for m in g.blocks if isinstance(m, torch.nn.Conv2d)][1::2]
    assert block_out == expected
    ups = [m for m in g.blocks if isinstance(m, torch.nn.Upsample)]
    assert len(ups) == int(np.log2(size // 16))
    assert g.project.out_features == 2 * size * 16 * 16


def test_critic_has_no_batch_norm_and_leaky_relu():
    c = Critic(64, max_channels=8)
    kinds = {type(m) for m in c.modules()}
    assert torch.nn.LeakyReLU in kinds
    assert not any(issubclass(k, torch.nn.modules.batchnorm._BatchNorm) for k in kinds)


@pytest.mark.parametrize("size", [48, 8, 100])
def test_bad_size_is_refused(size):
    with pytest.raises(ConfigError, match=r"power of two >= 16"):
        Generator(size)
    with pytest.raises(ConfigError, match=str(size)):
        Critic(size)


# --- gradient penalty ----------------------------------------------------------------------
class Linear(torch.nn.Module):
    """D(x) = <w, x> + b: its input gradient is w everywhere."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(w)

    def forward(self, x):
        return x.flatten(1) @ self.w.flatten() + 0.3


def test_gradient_penalty_of_linear_critic():
    torch.manual_seed(0)
    w = torch.randn(1, 4, 4, dtype=torch.float64)
    real, fake = (
        torch.randn(5, 1, 4, 4, dtype=torch.float64),
        torch.randn(5, 1, 4, 4, dtype=torch.float64),
    )
    gp = gradient_penalty(Linear(w), real, fake, lambda_gp=10.0)
    expected = 10.0 * (np.linalg.norm(w.numpy()) - 1.0) ** 2
    assert gp.item() == pytest.approx(expected, rel=1e-10)
    unit = gradient_penalty(Linear(w / w.norm()), real, fake, lambda_gp=10.0)
    assert abs(unit.item()) < 1e-20
    # differentiable w.r.t. the critic's weights: d/dw lambda (||w|| - 1)^2 = 2 lambda (||w||-1) w/||w||
    crit = Linear(w.clone())
    gradient_penalty(crit, real, fake, lambda_gp=10.0).backward()
    n = w.norm()
    torch.testing.assert_close(crit.w.grad, 2 * 10.0 * (n - 1) * w / n)


def test_gradient_penalty_interpolates_per_sample():
    """D(x) = ||x||^2 / 2 has gradient x, so the penalty is lambda * mean((||x_hat|| - 1)^2)."""
    torch.manual_seed(1)
    real, fake = (
        torch.randn(6, 1, 3, 3, dtype=torch.float64),
        torch.randn(6, 1, 3, 3, dtype=torch.float64),
    )
    alpha = torch.rand(6, dtype=torch.float64)
    gp = gradient_penalty(lambda x: 0.5 * (x**2).flatten(1).sum(1), real, fake, 2.0, alpha=alpha)
    r, f, a = real.numpy().reshape(6, -1), fake.numpy().reshape(6, -1), alpha.numpy()[:, None]
    x_hat = a * r + (1 - a) * f
    expected = 2.0 * np.mean((np.linalg.norm(x_hat, axis=1) - 1) ** 2)
    assert gp.item() == pytest.approx(expected, rel=1e-10)


def test_fused_critic_losses_equal_separate_passes():
    torch.manual_seed(2)
    critic = Critic(32, max_channels=8).double()
    real, fake = (
        torch.rand(4, 1, 32, 32).double() * 2 - 1,
        torch.rand(4, 1, 32, 32).double() * 2 - 1,
    )
    alpha = torch.rand(4, dtype=torch.float64)
    loss, gp, w = wg.critic_losses(critic, real, fake, alpha, 10.0)
    ref_gp = gradient_penalty(critic, real, fake, 10.0, alpha=alpha)
    ref_w = critic(real).mean() - critic(fake).mean()
    torch.testing.assert_close(gp, ref_gp)
    torch.testing.assert_close(w, ref_w)
    torch.testing.assert_close(loss, ref_gp - ref_w)


# --- training: budget, resume, learning ------------------------------------------------------
def test_budget_stops_at_first_epoch_boundary_after_it(blobs, tmp_path):
    budget_s = 2.0
    state = _train(blobs, tmp_path, budget_minutes=budget_s / 60, max_epochs=100_000)
    rows = state["log"]
    assert state["stop_reason"] == "budget"
    assert rows[-1]["wall_s"] >= budget_s > rows[-2]["wall_s"]
    assert state["epoch"] == len(rows) == rows[-1]["epoch"]
    final = load_checkpoint(tmp_path / "final.pt")
    assert final["epoch"] == state["epoch"] and final["finished"]
    with open(tmp_path / "log.csv") as fh:
        assert len(fh.read().splitlines()) == len(rows) + 1


def test_max_epochs_outputs_and_checkpoint_contents(blobs, tmp_path):
    state = _train(blobs, tmp_path, max_epochs=5, seed=3)
    assert state["stop_reason"] == "max_epochs" and state["epoch"] == 5
    ck = load_checkpoint(tmp_path / "final.pt")
    for key in ("generator", "critic", "opt_g", "opt_c", "rng", "model_config", "run_config"):
        assert key in ck
    assert ck["seed"] == 3 and ck["versions"]["torch"] == torch.__version__
    assert ck["model_config"] == {
        "size": 16,
        "latent_dim": 16,
        "channel_multiplier": 1.0,
        "max_channels": 16,
    }
    # progress every 2 epochs, plus the last epoch
    names = sorted(p.name for p in (tmp_path / "progress").iterdir())
    assert names == ["MANIFEST.json", "epoch_00002.png", "epoch_00004.png", "epoch_00005.png"]
    grid = np.asarray(Image.open(tmp_path / "progress" / "epoch_00004.png"))
    assert grid.dtype == np.uint8 and grid.shape == (2 + 2 * (SIZE + 2), 2 + 2 * (SIZE + 2))


def _weights(path):
    ck = load_checkpoint(path)
    return ck["generator"], ck["critic"]


def _assert_same_weights(a, b):
    for sa, sb in zip(a, b, strict=True):
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), k


def test_same_seed_same_weights_and_other_seed_differs(blobs, tmp_path):
    _train(blobs, tmp_path / "a", max_epochs=3)
    _train(blobs, tmp_path / "b", max_epochs=3)
    _train(blobs, tmp_path / "c", max_epochs=3, seed=1)
    _assert_same_weights(_weights(tmp_path / "a/final.pt"), _weights(tmp_path / "b/final.pt"))
    g_a, g_c = _weights(tmp_path / "a/final.pt")[0], _weights(tmp_path / "c/final.pt")[0]
    assert not torch.equal(g_a["project.weight"], g_c["project.weight"])


def test_resume_after_epoch_stop_gives_same_weights(blobs, tmp_path):
    _train(blobs, tmp_path / "full", max_epochs=6)
    out = tmp_path / "split"
    stop = StopSignal()

    def after_epoch(row):
        if row["epoch"] == 3:
            stop.request(signal.SIGTERM)

    png, split = blobs
    with pytest.raises(StopRequested):
        wg.train_wgan_gp(
            {**FAST, "max_epochs": 6},
            wg.WganGpData(png, split),
            out,
            stop=stop,
            on_epoch_end=after_epoch,
            progress_bar=False,
        )
    latest = load_checkpoint(out / "latest.pt")
    assert latest["epoch"] == 3 and not latest["finished"]
    assert not (out / "final.pt").exists()
    state = _train(blobs, out, max_epochs=6)
    assert state["epoch"] == 6
    assert [r["epoch"] for r in state["log"]] == [1, 2, 3, 4, 5, 6]
    assert state["log"][2]["wall_s"] <= state["log"][3]["wall_s"]  # budget time carried over
    _assert_same_weights(_weights(tmp_path / "full/final.pt"), _weights(out / "final.pt"))
    full_log = load_checkpoint(tmp_path / "full/final.pt")["log"]
    assert [r["wasserstein"] for r in full_log] == [r["wasserstein"] for r in state["log"]]


class _SlowSave:
    """Checkpoint writer that first does a real, slow write: `seconds` of fsync'd 1 MB
    blocks to a scratch file beside the checkpoint (a slow shared file system)."""

    def __init__(self, seconds):
        self.seconds, self.calls = seconds, 0

    def __call__(self, path, state):
        self.calls += 1
        scratch = Path(path).with_suffix(".slow")
        t0 = time.monotonic()
        with open(scratch, "wb") as fh:
            while time.monotonic() - t0 < self.seconds:
                fh.write(os.urandom(1 << 20))
                fh.flush()
                os.fsync(fh.fileno())
        scratch.unlink()
        from tomosynth.train.common import save_checkpoint

        save_checkpoint(path, state)


def test_checkpoint_time_is_excluded_from_the_budget_and_logged(blobs, tmp_path, monkeypatch):
    """Slow checkpoint writes (every epoch here) do not eat the budget; log.csv's save_s
    records them and wall_s + save_s is the real time."""
    slow = _SlowSave(0.4)
    monkeypatch.setattr(wg, "save_checkpoint", slow)
    t0 = time.monotonic()
    state = _train(blobs, tmp_path, max_epochs=6, checkpoint_minutes=0)
    real = time.monotonic() - t0
    rows = state["log"]
    assert slow.calls >= 5 + 2  # every epoch but the last, then latest.pt and final.pt
    saves = [float(r["save_s"]) for r in rows]
    assert saves == sorted(saves) and saves[-1] >= 5 * 0.4  # 5 checkpoints before epoch 6
    assert state["save_s"] >= 5 * 0.4
    # The budget's clock (wall_s, elapsed_s) runs only while training: it misses the saves.
    assert rows[-1]["wall_s"] < real - 5 * 0.4
    assert state["elapsed_s"] == pytest.approx(rows[-1]["wall_s"], abs=0.5)
    with open(tmp_path / "log.csv") as fh:
        header = fh.readline().strip().split(",")
    assert "save_s" in header
    # The device's model is recorded for the compute table.
    assert state["device_name"]


def test_checkpoints_follow_wall_time_not_epochs(blobs, tmp_path, monkeypatch):
    """With the default 10-minute interval a short run writes no per-epoch latest.pt."""
    slow = _SlowSave(0.0)
    monkeypatch.setattr(wg, "save_checkpoint", slow)
    _train(blobs, tmp_path, max_epochs=4)
    assert slow.calls == 2  # only the finished latest.pt and final.pt


class _StopAtCheck:
    """A stop flag that turns on at its n-th check (inside an epoch: between batches)."""

    def __init__(self, n):
        self.n, self.checks, self.signum = n, 0, signal.SIGUSR1

    @property
    def requested(self):
        self.checks += 1
        return self.checks >= self.n


def test_resume_mid_epoch_gives_same_weights(blobs, tmp_path):
    _train(blobs, tmp_path / "full", max_epochs=4)
    png, split = blobs
    # 48 images / batch 16 = 3 batches per epoch; each batch checks once, each epoch end once:
    # checks 1-4 in epoch 1, 5 and 6 before batches 1 and 2 of epoch 2, 7 before its 3rd batch.
    with pytest.raises(StopRequested, match="in epoch 2"):
        wg.train_wgan_gp(
            {**FAST, "max_epochs": 4},
            wg.WganGpData(png, split),
            tmp_path / "mid",
            stop=_StopAtCheck(7),
            progress_bar=False,
        )
    latest = load_checkpoint(tmp_path / "mid/latest.pt")
    assert latest["epoch"] == 1 and latest["batch"] == 2 and latest["perm"] is not None
    _train(blobs, tmp_path / "mid", max_epochs=4)
    _assert_same_weights(_weights(tmp_path / "full/final.pt"), _weights(tmp_path / "mid/final.pt"))


def test_changed_config_starts_over(blobs, tmp_path):
    _train(blobs, tmp_path, max_epochs=2)
    state = _train(blobs, tmp_path, max_epochs=3, lr=5e-4)
    assert [r["epoch"] for r in state["log"]] == [1, 2, 3]
    ref = _train(blobs, tmp_path / "ref", max_epochs=3, lr=5e-4)
    _assert_same_weights(_weights(tmp_path / "final.pt"), _weights(tmp_path / "ref/final.pt"))
    assert ref["epoch"] == 3


def _stop_after(epoch):
    stop = StopSignal()

    def after_epoch(row):
        if row["epoch"] == epoch:
            stop.request(signal.SIGUSR1)

    return stop, after_epoch


def test_epoch_cap_raised_continues_and_finished_run_retrains(blobs, tmp_path):
    png, split = blobs
    _train(blobs, tmp_path / "ref2", max_epochs=2)
    _train(blobs, tmp_path / "ref5", max_epochs=5)
    stop, after = _stop_after(3)
    with pytest.raises(StopRequested):
        wg.train_wgan_gp(
            {**FAST, "max_epochs": 4},
            wg.WganGpData(png, split),
            tmp_path / "m",
            stop=stop,
            on_epoch_end=after,
            progress_bar=False,
        )
    state = _train(blobs, tmp_path / "m", max_epochs=5)  # a raised cap continues from epoch 3
    assert [r["epoch"] for r in state["log"]] == [1, 2, 3, 4, 5]
    _assert_same_weights(_weights(tmp_path / "ref5/final.pt"), _weights(tmp_path / "m/final.pt"))
    _train(blobs, tmp_path / "m", max_epochs=2)  # finished: a rerun trains again
    _assert_same_weights(_weights(tmp_path / "ref2/final.pt"), _weights(tmp_path / "m/final.pt"))
    stop, after = _stop_after(3)
    with pytest.raises(StopRequested):
        wg.train_wgan_gp(
            {**FAST, "max_epochs": 5},
            wg.WganGpData(png, split),
            tmp_path / "m2",
            stop=stop,
            on_epoch_end=after,
            progress_bar=False,
        )
    _train(blobs, tmp_path / "m2", max_epochs=2)  # cannot undo epoch 3: starts over
    _assert_same_weights(_weights(tmp_path / "ref2/final.pt"), _weights(tmp_path / "m2/final.pt"))


def test_changed_training_images_start_over(blobs, tmp_path):
    png, split = blobs
    _train(blobs, tmp_path / "m", max_epochs=2)
    other = tmp_path / "split.json"
    manifest = json.loads(split.read_text())
    manifest["train"] = manifest["train"][:40]
    other.write_text(json.dumps(manifest))
    state = wg.train_wgan_gp(
        {**FAST, "max_epochs": 3}, wg.WganGpData(png, other), tmp_path / "m", progress_bar=False
    )
    assert [r["epoch"] for r in state["log"]] == [1, 2, 3]
    ref = wg.train_wgan_gp(
        {**FAST, "max_epochs": 3}, wg.WganGpData(png, other), tmp_path / "r", progress_bar=False
    )
    assert ref["data_sha256"] == state["data_sha256"]
    _assert_same_weights(_weights(tmp_path / "r/final.pt"), _weights(tmp_path / "m/final.pt"))


def test_unknown_config_key_is_refused(blobs, tmp_path):
    with pytest.raises(ConfigError, match="learning_rate"):
        _train(blobs, tmp_path, learning_rate=1e-3)


def test_training_lowers_wasserstein_estimate(blobs, tmp_path, monkeypatch):
    """The critic's Wasserstein estimate first rises (critic learns) and then falls as the
    generator catches up; with a frozen generator it stays high, so the check has teeth."""
    epochs = 60

    def late_over_peak(rows):
        w = np.array([r["wasserstein"] for r in rows])
        return w[-10:].mean() / w[:20].max()

    learnt = late_over_peak(_train(blobs, tmp_path / "learn", max_epochs=epochs)["log"])
    monkeypatch.setattr(wg._Trainer, "generator_step", lambda self, n: None)
    frozen = late_over_peak(_train(blobs, tmp_path / "frozen", max_epochs=epochs)["log"])
    assert learnt < 0.6, learnt
    assert frozen > 0.9, frozen


# --- signals through the real script ---------------------------------------------------------
_RUNNER = """
import runpy, sys, types
sys.path.insert(0, {scripts!r})
png, split, out, log, params = sys.argv[1:6]
import json
smk = types.SimpleNamespace(
    input=types.SimpleNamespace(png=png, split=split),
    output=types.SimpleNamespace(model=out + "/final.pt"),
    params=types.SimpleNamespace(train=json.loads(params)),
    threads=1,
    log=[log],
)
runpy.run_path({script!r}, init_globals={{"snakemake": smk}}, run_name="__main__")
"""


def _run_script(blobs, out, params, log):
    png, split = blobs
    code = _RUNNER.format(
        scripts=str(ROOT / "scripts"), script=str(ROOT / "scripts/train_wgan_gp.py")
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, str(png), str(split), str(out), str(log), json.dumps(params)],
        cwd=ROOT,
    )


def test_sigterm_checkpoints_and_rerun_resumes(blobs, tmp_path):
    out = tmp_path / "model"
    params = {**FAST, "betas": list(FAST["betas"]), "max_epochs": 1_000_000}
    proc = _run_script(blobs, out, params, tmp_path / "a.log")
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # wait until a few epochs are logged
            log = out / "log.csv"
            if log.exists() and len(log.read_text().splitlines()) > 3:
                break
            assert proc.poll() is None, (tmp_path / "a.log").read_text()
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 75, (tmp_path / "a.log").read_text()
    assert "stopped by signal" in (tmp_path / "a.log").read_text()
    saved = load_checkpoint(out / "latest.pt")
    k = saved["epoch"]
    assert k >= 3 and not (out / "final.pt").exists()
    # Snakemake deletes declared outputs before rerunning; latest.pt must be enough.
    os.remove(out / "log.csv")
    params["max_epochs"] = k + 2
    proc = _run_script(blobs, out, params, tmp_path / "b.log")
    assert proc.wait(timeout=120) == 0, (tmp_path / "b.log").read_text()
    assert f"at epoch {k}" in (tmp_path / "b.log").read_text()
    final = load_checkpoint(out / "final.pt")
    assert final["epoch"] == k + 2
    assert [r["epoch"] for r in final["log"]] == list(range(1, k + 3))
    lines = (out / "log.csv").read_text().splitlines()
    assert len(lines) == k + 3


# --- sampling ---------------------------------------------------------------------------------
def test_sampling_is_seeded_uint8_and_has_a_contact_sheet(blobs, tmp_path):
    _train(blobs, tmp_path / "m", max_epochs=2)
    files = wg.sample_wgan_gp(
        tmp_path / "m",
        tmp_path / "s",
        n=10,
        seed=5,
        batch=4,
        contact_sheet=tmp_path / "sheet.png",
        device="cpu",
    )
    assert [f.name for f in files] == [f"sample_{i:05d}.png" for i in range(10)]
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["MANIFEST.json"] + [
        f.name for f in files
    ]
    imgs = np.stack([np.asarray(Image.open(f)) for f in files])
    assert imgs.dtype == np.uint8 and imgs.shape == (10, SIZE, SIZE)
    # Independent reference: run the stored generator on the same CPU latents.
    gen, _ = load_wgan_generator(tmp_path / "m/final.pt")
    z = torch.randn(10, 16, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ref = ((gen(z)[:, 0] + 1) * 127.5).round().clamp(0, 255).numpy().astype(np.uint8)
    np.testing.assert_array_equal(imgs, ref)
    wg.sample_wgan_gp(tmp_path / "m", tmp_path / "s2", n=10, seed=6, batch=10, device="cpu")
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "s2/sample_00000.png")), imgs[0])
    sheet = np.asarray(Image.open(tmp_path / "sheet.png"))
    assert sheet.shape == (2 + 3 * (SIZE + 2), 2 + 4 * (SIZE + 2))  # 10 images: 3 rows of 4
    np.testing.assert_array_equal(sheet[2 : 2 + SIZE, 2 : 2 + SIZE], imgs[0])
    np.testing.assert_array_equal(sheet[20 : 20 + SIZE, 2 : 2 + SIZE], imgs[4])


# --- figures ----------------------------------------------------------------------------------
def test_training_figures(blobs, tmp_path):
    from tomosynth.plots.training import plot_gan_losses, plot_progress

    _train(blobs, tmp_path / "a", max_epochs=4)
    _train(blobs, tmp_path / "b", max_epochs=6, seed=1)
    logs = {"a": tmp_path / "a/log.csv", "b": tmp_path / "b/log.csv"}
    plot_gan_losses(logs, tmp_path / "loss.png", tmp_path / "loss.pdf")
    img = np.asarray(Image.open(tmp_path / "loss.png").convert("L"))
    assert img.shape[1] > 500 and img.std() > 10  # drawn, not blank
    assert (tmp_path / "loss.pdf").read_bytes()[:4] == b"%PDF"
    plot_progress(tmp_path / "b/progress", tmp_path / "progress.png")
    assert np.asarray(Image.open(tmp_path / "progress.png")).ndim >= 2
    (tmp_path / "bad.csv").write_text("epoch,g_loss\n1,0.5\n")
    with pytest.raises(DataError, match="lacks columns"):
        plot_gan_losses({"bad": tmp_path / "bad.csv"}, tmp_path / "x.png")
    with pytest.raises(DataError, match="no epoch_"):
        plot_progress(tmp_path, tmp_path / "y.png")


def test_finished_training_is_republished_without_retraining(blobs, tmp_path, capsys):
    import shutil

    png, split = blobs
    first = _train(blobs, tmp_path, max_epochs=3, device="cpu")
    log_before = (tmp_path / "log.csv").read_text()
    grids = sorted(p.name for p in (tmp_path / "progress").glob("*.png"))
    # Snakemake deletes the declared outputs of an interrupted (incomplete) job
    (tmp_path / "final.pt").unlink()
    (tmp_path / "log.csv").unlink()
    shutil.rmtree(tmp_path / "progress")

    def no_training(row):
        raise AssertionError(f"trained epoch {row['epoch']} again")

    # the device preference may differ (a GPU node after a CPU one): still the same run
    state = wg.train_wgan_gp(
        {**FAST, "max_epochs": 3, "device": "auto"},
        wg.WganGpData(png, split),
        tmp_path,
        on_epoch_end=no_training,
        progress_bar=False,
    )
    assert "published it again as final.pt without retraining" in capsys.readouterr().err
    assert state["epoch"] == first["epoch"] == 3
    _assert_same_weights(_weights(tmp_path / "final.pt"), (first["generator"], first["critic"]))
    assert (tmp_path / "log.csv").read_text() == log_before
    assert sorted(p.name for p in (tmp_path / "progress").glob("*.png")) == grids
    # other data: trains again
    with pytest.raises(AssertionError, match="trained epoch 1 again"):
        wg.train_wgan_gp(
            {**FAST, "max_epochs": 3, "seed": 7},
            wg.WganGpData(png, split),
            tmp_path,
            on_epoch_end=no_training,
            progress_bar=False,
        )

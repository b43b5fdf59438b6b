"""FID through pytorch-fid's real InceptionV3 loading path, offline, on random weights.

The weights here are random (same architecture, built from pytorch_fid.inception's own
blocks): the numbers exercise the code path and are not FIDs.
"""

import os
import socket

import numpy as np
import pytest
import torch
from PIL import Image
from pytorch_fid import inception as pfi
from pytorch_fid.fid_score import calculate_frechet_distance, compute_statistics_of_path

from tomosynth.errors import ConfigError
from tomosynth.io import list_pngs
from tomosynth.metrics import distance as D
from tomosynth.metrics import fid


@pytest.fixture(scope="module")
def fake_weights(tmp_path_factory):
    """A random-weight state dict of pytorch-fid's FID Inception, under the expected name."""
    torch.manual_seed(0)
    net = pfi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = pfi.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = pfi.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = pfi.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = pfi.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = pfi.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = pfi.FIDInceptionE_1(1280)
    net.Mixed_7c = pfi.FIDInceptionE_2(2048)
    state = net.state_dict()
    path = tmp_path_factory.mktemp("weights") / fid.FID_WEIGHTS_FILENAME
    torch.save(state, path)
    return path, state


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture(scope="module")
def model(fake_weights):
    torch.set_num_threads(1)
    return fid.load_inception(fake_weights[0], "cpu")


def _pngs(folder, n, seed, size=24):
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(n):
        img = (rng.random((size, size)) * 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"slice_{i:05d}.png")
    return [str(f) for f in list_pngs(folder)]


def test_real_loading_path_reads_the_local_file(fake_weights, no_network):
    path, state = fake_weights
    before = os.environ.get("TORCH_HOME")
    net = fid.load_inception(path, "cpu")
    assert os.environ.get("TORCH_HOME") == before  # restored
    assert not net.training
    first = net.blocks[0][0].conv.weight  # Conv2d_1a_3x3
    last = net.blocks[3][2].branch_pool.conv.weight  # Mixed_7c
    assert torch.equal(first, state["Conv2d_1a_3x3.conv.weight"])
    assert torch.equal(last, state["Mixed_7c.branch_pool.conv.weight"])


def test_null_weights_use_the_hub_cache_and_never_download(
    fake_weights, no_network, tmp_path, monkeypatch
):
    # evaluate.fid_weights: null reads the file where pytorch-fid caches it; when it is not
    # there the error names that place, and no connection is attempted either way
    path, state = fake_weights
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = tmp_path / "hub" / "checkpoints" / fid.FID_WEIGHTS_FILENAME
    assert fid.default_weights_path() == cached
    with pytest.raises(ConfigError, match="evaluate.fid_weights is null") as err:
        fid.load_inception(None)
    assert str(cached) in str(err.value)
    cached.parent.mkdir(parents=True)
    cached.symlink_to(path)
    net = fid.load_inception(None, "cpu")
    assert torch.equal(net.blocks[0][0].conv.weight, state["Conv2d_1a_3x3.conv.weight"])


def test_weights_name_and_url_are_pytorch_fids():
    assert fid.FID_WEIGHTS_URL == pfi.FID_WEIGHTS_URL
    assert fid.FID_WEIGHTS_URL.rsplit("/", 1)[-1] == fid.FID_WEIGHTS_FILENAME


def test_offline_torch_home_layout(fake_weights):
    path, _ = fake_weights
    with fid.offline_torch_home(path) as home:
        assert os.environ["TORCH_HOME"] == str(home)
        linked = home / "hub" / "checkpoints" / fid.FID_WEIGHTS_FILENAME
        assert linked.resolve() == path.resolve()
        assert torch.hub.get_dir() == str(home / "hub")
    assert not home.exists()


def test_missing_weights_message_says_where(tmp_path):
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(ConfigError) as err:
        fid.load_inception(missing)
    msg = str(err.value)
    assert str(missing) in msg and fid.FID_WEIGHTS_FILENAME in msg
    assert "evaluate.fid_weights" in msg and "FID_WEIGHTS_URL" in msg


def test_grayscale_features_equal_manual_three_channel_input(model, tmp_path):
    files = _pngs(tmp_path / "g", 3, 0)
    feats = fid.inception_features(files, model, batch_size=2)
    assert feats.shape == (3, 2048)
    # the documented convention: gray replicated to 3 channels, [0, 1], 299 px inside the net
    imgs = [np.asarray(Image.open(f)) / 255.0 for f in files]
    x = torch.tensor(np.stack(imgs), dtype=torch.float32)[:, None].repeat(1, 3, 1, 1)
    with torch.no_grad():
        manual = model(x)[0].squeeze(3).squeeze(2).numpy()
    np.testing.assert_allclose(feats, manual, rtol=1e-4, atol=1e-9)


@pytest.fixture(scope="module")
def fid_table(fake_weights, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fidtable")
    real = _pngs(tmp / "real", 8, 1)
    gen = _pngs(tmp / "gen", 4, 2)
    # FRD v1 rows too (pyradiomics, ~1 s an image): 3 images per set and reference
    settings = D.DistanceSettings(bootstrap=5, kid_subsets=2, fid_inf_points=2, frd_max_images=3)
    with pytest.MonkeyPatch.context() as mp:  # no network anywhere on this path
        mp.setattr(socket.socket, "connect", lambda *a, **k: pytest.fail("network access"))
        table = D.distance_table(
            "t",
            {"samples/gen": ("gen", gen)},
            {"train": real[:6], "test": real[6:]},
            real,
            stats_dir=tmp / "stats",
            fid_weights=str(fake_weights[0]),
            batch_size=4,
            settings=settings,
        )
    return table, tmp / "stats"


def test_distance_table_runs_the_fid_path(fid_table):
    table, stats = fid_table
    fid_rows = table[table["metric"] == "FID"]
    assert len(fid_rows) == 3 and (fid_rows["feature_dim"] == 2048).all()
    assert (table["metric"] == "FRD v1 (frd-score 1.0.1)").sum() == 3
    # the offline metric's z-scoring and log do not touch FID: linear FD of raw features
    assert (fid_rows["value"] == fid_rows["fd"]).all() and (
        fid_rows["dropped_features"] == ""
    ).all()
    gen = D.load_stats(stats / "fid_samples__gen.npz")["features"]
    train = D.load_stats(stats / "fid_train.npz")["features"]
    row = fid_rows[(fid_rows["set"] == "samples/gen") & (fid_rows["reference"] == "train")]
    assert row["value"].iloc[0] == pytest.approx(D.frechet_distance_features(gen, train), rel=1e-9)
    assert not table["warning"].str.contains("reported instead").any()
    # N = 4 << 2 x 2048: FID-infinity blank with the reason
    assert fid_rows["fid_inf"].isna().all() and fid_rows["fid_inf_note"].str.contains("2048").all()
    assert fid_rows["warning"].str.contains("feature dim 2048").all()
    # the cached statistics are pytorch-fid's --save-stats format (its own reader) ...
    feats = D.load_stats(stats / "fid_samples__gen.npz")["features"]
    mu, sigma = compute_statistics_of_path(
        str(stats / "fid_samples__gen.npz"), None, 1, 2048, "cpu"
    )
    np.testing.assert_allclose(mu, feats.mean(0))
    np.testing.assert_allclose(sigma, np.cov(feats, rowvar=False))
    assert feats.shape == (4, 2048)


@pytest.mark.slow  # pytorch-fid's sqrtm of a 2048 x 2048 product takes ~100 s on 2 cores
def test_fid_table_value_equals_pytorch_fid_on_cached_stats(fid_table):
    table, stats = fid_table
    m1, s1 = compute_statistics_of_path(str(stats / "fid_samples__gen.npz"), None, 1, 2048, "cpu")
    m2, s2 = compute_statistics_of_path(str(stats / "fid_train.npz"), None, 1, 2048, "cpu")
    row = table[(table["metric"] == "FID") & (table["set"] == "samples/gen")]
    row = row[row["reference"] == "train"]
    expected = calculate_frechet_distance(m1, s1, m2, s2)
    assert row["value"].iloc[0] == pytest.approx(expected, rel=1e-6)

"""The srgan upscaling method applies a trained SRGAN generator to a folder of samples."""

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from tomosynth.errors import DataError
from tomosynth.models.srgan import GeneratorConfig, build_generator
from tomosynth.train.common import save_checkpoint
from tomosynth.upscale import upscale_folder


def _checkpoint(path, scale=2):
    torch.manual_seed(0)
    cfg = GeneratorConfig(scale=scale, channels=8, n_blocks=1)
    g = build_generator(cfg)
    save_checkpoint(
        path,
        {
            "kind": "srgan_generator",
            "generator_config": dataclasses.asdict(cfg),
            "generator": g.state_dict(),
            "scale": scale,
        },
    )
    return cfg, g.state_dict()


def test_srgan_upscaling_equals_the_generator_applied_directly(tmp_path):
    torch.set_num_threads(1)
    cfg, state = _checkpoint(tmp_path / "best.pt")
    src = tmp_path / "low"
    src.mkdir()
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (3, 16, 16), dtype=np.uint8)
    for i, img in enumerate(imgs):
        Image.fromarray(img).save(src / f"sample_{i:05d}.png")
    upscale_folder(src, tmp_path / "up", "srgan", 32, model_path=tmp_path / "best.pt", device="cpu")

    # Independent application: a fresh network with the saved weights, in eval mode.
    net = build_generator(dataclasses.asdict(cfg))
    net.load_state_dict(state)
    net.eval()
    with torch.no_grad():
        ref = net(torch.from_numpy(imgs.astype(np.float32) / 255.0)[:, None])[:, 0].numpy()
    ref = np.rint(np.clip(ref, 0, 1) * 255).astype(np.uint8)
    for i in range(3):
        got = np.asarray(Image.open(tmp_path / "up" / f"sample_{i:05d}.png"))
        assert got.shape == (32, 32)
        np.testing.assert_array_equal(got, ref[i])


def test_srgan_scale_must_match_the_sizes(tmp_path):
    _checkpoint(tmp_path / "best.pt", scale=2)
    src = tmp_path / "low"
    src.mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(src / "a.png")
    with pytest.raises(DataError, match="x2"):
        upscale_folder(src, tmp_path / "up", "srgan", 64, model_path=tmp_path / "best.pt")
    assert not (tmp_path / "up").exists()


def test_upscale_logs_the_hf_energy_of_training_lr_and_of_the_inputs(tmp_path, caplog):
    """Matched degradation: the log holds both mean squared Laplacians and their ratio."""
    from scipy import ndimage

    from tomosynth.train.common import load_checkpoint
    from tomosynth.upscale import log_input_match

    _checkpoint(tmp_path / "best.pt", scale=2)
    ckpt = load_checkpoint(tmp_path / "best.pt")
    save_checkpoint(
        tmp_path / "best.pt", {**ckpt, "train_lr_hf_energy": 0.02, "lr_source": "export"}
    )
    src = tmp_path / "low"
    src.mkdir()
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, (4, 16, 16), dtype=np.uint8)
    for i, img in enumerate(imgs):
        Image.fromarray(img).save(src / f"sample_{i:05d}.png")
    x = imgs.astype(np.float64) / 255.0
    expected = np.mean([np.mean(ndimage.laplace(im, mode="reflect") ** 2) for im in x])
    with caplog.at_level("INFO", logger="tomosynth.upscale"):
        got = log_input_match(src, sorted(p.name for p in src.iterdir()), tmp_path / "best.pt")
    assert got["inputs"] == pytest.approx(expected, rel=1e-5)
    assert got["train_lr"] == 0.02 and got["ratio"] == pytest.approx(expected / 0.02, rel=1e-5)
    assert "matched degradation" in caplog.text and "export" in caplog.text

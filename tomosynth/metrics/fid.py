"""Inception features for FID through pytorch-fid's own code, with local weights.

pytorch-fid builds its FID InceptionV3 and fetches ``pt_inception-2015-12-05-6726825d.pth``
with torch hub, which first looks in ``$TORCH_HOME/hub/checkpoints/``. To load a local
weights file offline we point ``TORCH_HOME`` at a private temporary folder holding a link
to the configured file under that name, so pytorch-fid's real loading code runs unchanged.

Grayscale: images go through ``pytorch_fid.fid_score.get_activations``, which opens each
file with PIL and converts it to RGB (an 8-bit grayscale image is replicated into three
equal channels), scales it to [0, 1] floats (``ToTensor``), and InceptionV3 then resizes it
bilinearly to 299 x 299 (``resize_input=True``) and maps it to [-1, 1]. This is the path
pytorch-fid's command line takes for grayscale PNGs, so our numbers match ``python -m
pytorch_fid`` on the same folders.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from tomosynth.errors import ConfigError

FID_WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + FID_WEIGHTS_FILENAME
)
FID_DIMS = 2048
METRIC_NAME = "FID"


@contextlib.contextmanager
def offline_torch_home(weights: str | os.PathLike) -> Iterator[Path]:
    """Temporarily set ``TORCH_HOME`` to a folder whose hub cache holds `weights`.

    The file is linked (copied where links are impossible) as
    ``hub/checkpoints/pt_inception-2015-12-05-6726825d.pth``; the previous ``TORCH_HOME``
    is restored on exit.
    """
    weights = Path(weights).resolve()
    old = os.environ.get("TORCH_HOME")
    with tempfile.TemporaryDirectory(prefix="tomosynth-torch-home-") as tmp:
        ckpt_dir = Path(tmp) / "hub" / "checkpoints"
        ckpt_dir.mkdir(parents=True)
        target = ckpt_dir / FID_WEIGHTS_FILENAME
        try:
            target.symlink_to(weights)
        except OSError:
            import shutil

            shutil.copyfile(weights, target)
        os.environ["TORCH_HOME"] = tmp
        try:
            yield Path(tmp)
        finally:
            if old is None:
                os.environ.pop("TORCH_HOME", None)
            else:
                os.environ["TORCH_HOME"] = old


def default_weights_path() -> Path:
    """Where torch hub caches pytorch-fid's weights on this machine (may not exist)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_FILENAME


def missing_weights_message(weights: str | os.PathLike | None, hint_fallback: bool = True) -> str:
    """Explain where the FID weights must go (config key, file name, download URL)."""
    where = (
        f"the configured file evaluate.fid_weights = {weights}"
        if weights is not None
        else f"torch hub's cache {default_weights_path()} (evaluate.fid_weights is null)"
    )
    return (
        f"FID Inception weights not found at {where}. Download {FID_WEIGHTS_FILENAME} "
        f"(pytorch-fid's FID_WEIGHTS_URL: {FID_WEIGHTS_URL}) on a machine with network, put it "
        "on this machine and set evaluate.fid_weights to its path"
        + (
            "; or set evaluate.offline_fallback: true to report the offline FRD instead."
            if hint_fallback
            else "."
        )
    )


def load_inception(
    weights: str | os.PathLike | None = None, device: str | torch.device = "cpu"
) -> torch.nn.Module:
    """pytorch-fid's FID InceptionV3 (2048-d pool features), in eval mode on `device`.

    Never downloads: the workflow runs where there may be no network, so a missing file is
    a ConfigError saying where to put it, not a connection attempt that fails or hangs.

    Parameters
    ----------
    weights : local ``.pth`` state dict of pytorch-fid's FID Inception, or None for the
        file pytorch-fid itself would use, torch hub's cache (:func:`default_weights_path`).
    """
    from pytorch_fid.inception import InceptionV3

    path = Path(weights) if weights is not None else default_weights_path()
    if not path.is_file():
        raise ConfigError(missing_weights_message(weights))
    block = InceptionV3.BLOCK_INDEX_BY_DIM[FID_DIMS]
    with offline_torch_home(path):
        model = InceptionV3([block])
    return model.to(device).eval()


def inception_features(
    files: Sequence[str | os.PathLike],
    model: torch.nn.Module,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """2048-d Inception pool features ``(len(files), 2048)`` via pytorch-fid's get_activations."""
    from pytorch_fid.fid_score import get_activations

    files = [str(f) for f in files]
    bs = max(1, min(int(batch_size), len(files)))
    return get_activations(files, model, batch_size=bs, dims=FID_DIMS, device=device, num_workers=0)

"""The torch device of a job: which one, why CUDA is missing, and the name of the hardware.

One selector for every stage (training, inference, reconstruction, features): ``auto``
takes CUDA when torch can use it; a job given a GPU stops instead of running on the CPU.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tomosynth.errors import ConfigError, DeviceError

if TYPE_CHECKING:  # torch is imported where used: the tomopy reconstruction runs without it
    import torch

#: Oldest Linux NVIDIA driver for each CUDA major version of a torch build (CUDA's minor
#: version compatibility: a driver of the major version's first release runs every later minor
#: release; NVIDIA's CUDA toolkit release notes, table 3).
MIN_DRIVER_FOR_CUDA = {"11": "450.80.02", "12": "525.60.13", "13": "580.65.06"}


def nvidia_driver() -> str:
    """The NVIDIA driver version and GPU names as ``nvidia-smi`` reports them, or why not.

    Reads ``/proc/driver/nvidia/version`` when ``nvidia-smi`` is missing; never raises.
    """
    import shutil
    import subprocess

    smi = shutil.which("nvidia-smi")
    if smi is not None:
        try:
            proc = subprocess.run(
                [smi, "--query-gpu=driver_version,name", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return f"nvidia-smi failed ({type(exc).__name__}: {exc})"
        text = (proc.stdout or proc.stderr).strip().replace("\n", "; ")
        if proc.returncode != 0:
            return f"nvidia-smi exited {proc.returncode}: {text or 'no output'}"
        return f"nvidia-smi: driver, GPU = {text or 'no GPU listed'}"
    proc_file = Path("/proc/driver/nvidia/version")
    if proc_file.is_file():
        return f"no nvidia-smi on PATH; {proc_file}: {proc_file.read_text().splitlines()[0]}"
    return "no nvidia-smi on PATH and no /proc/driver/nvidia/version: no NVIDIA driver loaded"


def cuda_diagnostics() -> str:
    """One line on why torch cannot use CUDA: torch build, torch's own CUDA error, driver."""
    import torch

    build = torch.version.cuda
    parts = [
        f"torch {torch.__version__} "
        + (f"built for CUDA {build}" if build else "is a CPU-only build (torch.version.cuda None)")
    ]
    if build:
        need = MIN_DRIVER_FOR_CUDA.get(str(build).split(".")[0])
        if need:
            parts.append(f"needs an NVIDIA driver >= {need}")
        try:
            torch.cuda.init()  # raises with the driver's reason where is_available() is silent
            parts.append(f"torch.cuda sees {torch.cuda.device_count()} device(s)")
        except Exception as exc:  # torch raises RuntimeError/AssertionError variants
            parts.append(f"torch.cuda: {str(exc).strip().splitlines()[0]}")
    parts.append(nvidia_driver())
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    parts.append(f"CUDA_VISIBLE_DEVICES={visible!r}")
    return "; ".join(parts)


def gpu_job_requires_cuda(resources: Any) -> bool:
    """True for a Snakemake job that was given a GPU on a profile that promises one.

    `resources` is ``snakemake.resources``: the job asked for ``gpu >= 1`` and the profile
    set ``cuda_required=1`` (the ``slurm`` profile does; the local ``default`` profile and the
    CI overlay ``slurm-ci``, whose GPU is a fake GRES, do not).
    """

    def get(name: str) -> int:
        value = getattr(resources, name, None)
        if value is None and isinstance(resources, dict):
            value = resources.get(name)
        try:
            return int(value or 0)
        except (TypeError, ValueError):
            return 0

    return get("gpu") >= 1 and get("cuda_required") >= 1


def select_device(prefer: str | torch.device = "auto", require_cuda: bool = False) -> torch.device:
    """Pick the torch device.

    Parameters
    ----------
    prefer : {"auto", "cpu", "cuda"} or torch.device
        ``auto`` uses CUDA when present and the CPU otherwise; ``cuda`` without a GPU is an error.
        A ``torch.device`` is returned as it is.
    require_cuda : bool
        The job was given a GPU (:func:`gpu_job_requires_cuda`): ``auto`` without a working
        CUDA raises instead of falling back to the CPU, which would spend a GPU job's whole
        time budget at CPU speed. An explicit ``prefer="cpu"`` is always honoured.

    Raises
    ------
    DeviceError
        CUDA was required or requested and torch cannot use it; the message names the torch
        build, torch's CUDA error and the driver (:func:`cuda_diagnostics`).
    """
    import torch

    if isinstance(prefer, torch.device):
        return prefer
    if prefer not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device: expected 'auto', 'cpu' or 'cuda', got {prefer!r}")
    if prefer == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if prefer == "cuda":
        raise ConfigError(
            f"device: 'cuda' requested but torch sees no CUDA device ({cuda_diagnostics()})"
        )
    if require_cuda:
        raise DeviceError(
            "this job was given a GPU (gpu=1 on a profile with cuda_required=1) but torch "
            f"cannot use CUDA, so it stops instead of running on the CPU: {cuda_diagnostics()}. "
            "Fix the node's driver or the env's torch build, or set the stage's device: cpu "
            "to run on the CPU on purpose"
        )
    return torch.device("cpu")


def device_name(device: torch.device | str) -> str:
    """Model of the device a run used: the GPU's name, or the CPU's model name."""
    import torch

    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return str(torch.cuda.get_device_name(device))
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"CPU: {line.split(':', 1)[1].strip()}"
    except OSError:
        pass
    return f"CPU: {platform.processor() or platform.machine()}"

"""Collect the project's Python dependencies as wheels for a GPU node without internet.

A GPU node's image usually holds PyTorch and the scientific stack (numpy, scipy, OpenCV,
h5py, pandas, matplotlib, scikit-image, ...) but not Snakemake, jsonschema, pytorch-fid or
finufft. This script walks the dependency closure of ``tomosynth[workflow]`` as installed
in the running environment (so the versions are the tested ones), leaves out torch,
torchvision and the packages a GPU image provides (``--assume-present``), and downloads a
wheel of each remaining package, for the node's Python version and platform, into one
folder. ``benchmarks/gpu_check.sh --offline FOLDER`` installs from it with no network.

    python benchmarks/wheelhouse.py wheelhouse/ [--python-version 3.12]

The folder gets ``requirements.txt`` (what it holds, pinned) and ``assumed.txt`` (what the
node must provide). A folder over ``--max-mib`` (60) is an error: carry less, or assume more.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]

#: Never collected: the GPU node's own CUDA build of torch must be used; FRD v1's stack
#: (frd-score, pyradiomics-bhklab, SimpleITK: ~90 MB, and pyradiomics-bhklab is published as
#: source only, with a C extension to build for the node's Python) does not fit the folder.
#: Without it a GPU node reports Inception FID (local weights) and the tables say that FRD
#: v1 was not computed; see gpu_check.sh.
NEVER = {
    "torch", "torchvision", "tomosynth", "frd-score", "pyradiomics-bhklab",
    "opencv-contrib-python-headless",
}  # fmt: skip

#: Binary packages a CUDA/PyTorch image provides (and their binary helpers); the node
#: must have them, and gpu_check.sh checks that they import before it starts.
GPU_IMAGE = {
    "numpy", "scipy", "h5py", "pandas", "matplotlib", "scikit-image", "pillow",
    "opencv-python-headless", "contourpy", "kiwisolver", "fonttools", "pyyaml", "psutil",
    "markupsafe", "charset-normalizer", "wrapt", "tifffile", "tqdm", "imageio", "networkx",
    "lazy-loader", "python-dateutil", "tzdata", "packaging", "pyparsing", "cycler",
}  # fmt: skip


def canonical(name: str) -> str:
    """PEP 503 normalised package name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def project_requirements(extras: tuple[str, ...] = ("workflow",)) -> list[str]:
    """The project's own requirements (pyproject.toml, not a possibly stale install)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in extras:
        reqs += project["optional-dependencies"][extra]
    return reqs


def installed_closure(
    roots: list[str], skip: set[str] = frozenset(), missing_ok: bool = False
) -> dict[str, str]:
    """Installed name -> version of `roots` (requirement strings) and everything they need,
    walking the installed metadata; names in `skip` are neither taken nor followed."""
    found: dict[str, str] = {}
    stack = [(Requirement(text), ("",)) for text in roots]
    while stack:
        req, extras = stack.pop()
        key = canonical(req.name)
        if key in found or key in skip:
            continue
        if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in extras):
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            if missing_ok:
                continue
            raise
        found[key] = dist.version
        stack += [(Requirement(text), ("", *req.extras)) for text in dist.requires or []]
    return found


def closure(extras: tuple[str, ...] = ("workflow",)) -> dict[str, str]:
    """Installed name -> version of everything the project needs, torch and FRD excluded."""
    return installed_closure(project_requirements(extras), NEVER)


def plan(assume_present: set[str]) -> tuple[dict[str, str], dict[str, str]]:
    """(to collect, assumed present on the node), both name -> tested version."""
    deps = closure()
    assumed = {k: v for k, v in deps.items() if k in assume_present}
    wanted = {k: v for k, v in deps.items() if k not in assume_present}
    return wanted, assumed


def is_pure(name: str) -> bool:
    """Whether the installed distribution came from a pure-Python (any-platform) wheel."""
    wheel = metadata.distribution(name).read_text("WHEEL") or ""
    return "Root-Is-Purelib: true" in wheel


def download(wanted: dict[str, str], out: Path, python_version: str | None) -> None:
    """Exact versions: binary wheels for the node's Python; pure ones built where PyPI
    has only a source archive (``pip wheel``)."""
    pins = [f"{name}=={version}" for name, version in sorted(wanted.items())]
    pure = [p for p in pins if is_pure(p.split("==")[0])]
    binary = [p for p in pins if p not in pure]
    common = ["--no-deps", "-q", "--disable-pip-version-check"]
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "wheel", *common, "-w", str(out), *pure], check=True)
    if not binary:
        return
    cmd = [*pip, "download", *common, "--only-binary=:all:", "-d", str(out)]
    if python_version:
        cmd += ["--python-version", python_version, "--implementation", "cp"]
        for tag in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"):
            cmd += ["--platform", tag]
    subprocess.run([*cmd, *binary], check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for the wheels")
    parser.add_argument(
        "--python-version", help="the node's Python, e.g. 3.12 (default: this interpreter's)"
    )
    parser.add_argument(
        "--assume-present",
        default=",".join(sorted(GPU_IMAGE)),
        help="comma-separated packages the node provides (default: a CUDA PyTorch image's)",
    )
    parser.add_argument("--max-mib", type=float, default=60.0, help="size limit of the folder")
    args = parser.parse_args(argv)

    assume = {canonical(n) for n in args.assume_present.split(",") if n.strip()}
    wanted, assumed = plan(assume)
    args.out.mkdir(parents=True, exist_ok=True)
    download(wanted, args.out, args.python_version)
    pins = "".join(f"{k}=={v}\n" for k, v in sorted(wanted.items()))
    (args.out / "requirements.txt").write_text(pins)
    (args.out / "assumed.txt").write_text(
        "".join(f"{k}=={v}\n" for k, v in sorted(assumed.items()))
    )
    wheels = sorted(args.out.glob("*.whl"))
    mib = sum(w.stat().st_size for w in wheels) / 2**20
    print(f"{len(wheels)} wheels, {mib:.1f} MiB in {args.out} (assumed present: {len(assumed)})")
    if mib > args.max_mib:
        print(
            f"error: {args.out} holds {mib:.1f} MiB, over --max-mib {args.max_mib}", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

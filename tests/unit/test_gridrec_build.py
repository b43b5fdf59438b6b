# SPDX-License-Identifier: BSD-3-Clause
"""The benchmark's gridrec peer (benchmarks/gridrec_build.py) against tomopy's own outputs.

The build needs a tomopy source tree or git directory in ``TOMOSYNTH_GRIDREC_SRC``, gcc
and fftw3f; where any is missing the test is skipped (tomopy's source is not part of
this repository). The reference is tomopy's stored ``tomopy.recon(..., "gridrec")``
output (tests/data/tomopy), compared as tomopy's own tests do (rtol 1e-2).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
TOMOPY = ROOT / "tests" / "data" / "tomopy"


@pytest.fixture(scope="module")
def gridrec():
    spec = importlib.util.spec_from_file_location(
        "gridrec_build", ROOT / "benchmarks" / "gridrec_build.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if not os.environ.get(mod.ENV_SRC):
        pytest.skip(f"{mod.ENV_SRC} not set: no tomopy source to build gridrec from")
    try:
        return mod.Gridrec()
    except mod.GridrecUnavailable as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("name", ["ramlak", "shepp"])
def test_built_gridrec_reproduces_tomopy_outputs(gridrec, name):
    proj = np.load(TOMOPY / "proj.npy")
    theta = np.load(TOMOPY / "angle.npy")
    ref = np.load(TOMOPY / f"gridrec_{name}.npy")
    out = gridrec(proj, theta, filter_name=name)
    assert out.shape == ref.shape == (8, 48, 48)
    np.testing.assert_allclose(out, ref, rtol=1e-2, atol=1e-4 * np.abs(ref).max())
    # another filter gives a clearly different image: the filter name reaches the C code
    other = gridrec(proj, theta, filter_name="ramlak" if name == "shepp" else "shepp")
    assert np.abs(other - ref).max() > 1e-2 * np.abs(ref).max()
    # two threads split the rows into blocks (as tomopy's ncore): same images
    np.testing.assert_allclose(gridrec(proj, theta, filter_name=name, threads=2), out, atol=1e-5)

# SPDX-License-Identifier: BSD-3-Clause
"""Orientation of projector, reconstructions and simulator against astra-toolbox.

astra's ``parallel`` geometry is the independent oracle (tomopy uses the same one): a ray
at angle theta reaches the detector at ``s = x cos(theta) + y sin(theta)``, x along the
image columns, y up. Only asymmetric objects are used (Shepp-Logan plus a bright marker in
one quadrant, random textures), so that every flip, transpose and 90-degree rotation of a
result is told apart from the right one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from skimage.data import shepp_logan_phantom
from skimage.transform import resize

from tomosynth import recon
from tomosynth.io import write_dxchange

astra = pytest.importorskip("astra", reason="astra-toolbox is the oracle here")

torch.set_num_threads(1)
N = 96


def _phantom(n: int = N) -> np.ndarray:
    """Shepp-Logan plus a bright marker in the upper-right quadrant (rows < n/2, cols > n/2)."""
    img = resize(shepp_logan_phantom(), (n, n), anti_aliasing=True).astype(np.float32)
    r, c = int(0.22 * n), int(0.64 * n)
    img[r : r + n // 8, c : c + n // 8] = 1.0
    return img


def _astra_sino(img: np.ndarray, theta: np.ndarray, center: float | None = None) -> np.ndarray:
    """astra's CPU strip-projector line integrals, (angles, n).

    ``center=None`` is astra's ``parallel`` geometry (axis at detector position n/2);
    otherwise ``parallel_vec`` with the same rays and the detector moved so that the axis
    projects onto detector position `center` (pixels from the detector's first edge).
    """
    n = img.shape[0]
    vol_geom = astra.create_vol_geom(n, n)
    theta = np.asarray(theta, np.float64)
    if center is None:
        proj_geom = astra.create_proj_geom("parallel", 1.0, n, theta)
    else:
        u = np.stack((np.cos(theta), np.sin(theta)), axis=1)  # detector pixel vector
        ray = np.stack((np.sin(theta), -np.cos(theta)), axis=1)
        vectors = np.concatenate((ray, -(center - n / 2.0) * u, u), axis=1)
        proj_geom = astra.create_proj_geom("parallel_vec", n, vectors)
    pid = astra.create_projector("strip", proj_geom, vol_geom)
    try:
        sid, sino = astra.create_sino(np.ascontiguousarray(img, np.float32), pid)
        astra.data2d.delete(sid)
    finally:
        astra.projector.delete(pid)
    return np.asarray(sino, np.float32)


def _dihedral(img: np.ndarray) -> dict[str, np.ndarray]:
    """The 8 symmetries of the square (identity first)."""
    return {
        "identity": img,
        "rot90": np.rot90(img, 1),
        "rot180": np.rot90(img, 2),
        "rot270": np.rot90(img, 3),
        "flip rows": img[::-1],
        "flip columns": img[:, ::-1],
        "transpose": img.T,
        "anti-transpose": np.rot90(img, 2).T,
    }


def _disc(n: int, radius: float) -> np.ndarray:
    c = np.arange(n) + 0.5 - n / 2.0
    return (c[:, None] ** 2 + c[None, :] ** 2) < radius**2


def _pearson(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    return float(np.corrcoef(a[mask], b[mask])[0, 1])


def _assert_right_way_round(
    rec: np.ndarray, truth: np.ndarray, mask: np.ndarray, lo: float, hi: float
):
    scores = {k: _pearson(rec, np.ascontiguousarray(v), mask) for k, v in _dihedral(truth).items()}
    assert scores["identity"] >= lo, scores
    for name, r in scores.items():
        if name != "identity":
            assert r <= hi, (name, scores)


def _centroids(sino: np.ndarray) -> np.ndarray:
    d = np.arange(sino.shape[-1]) + 0.5
    return (sino * d).sum(-1) / sino.sum(-1)


def test_marker_lands_where_astra_puts_it():
    # a small bright square off-centre in the upper-right quadrant: its centroid on the
    # detector at 0, 45, 90 and 135 degrees from our projector and from astra's, within
    # half a pixel; and where s = x cos + y sin (x right, y up) puts it
    n = 64
    img = np.zeros((n, n), np.float32)
    img[10:14, 44:48] = 1.0  # centre at row 11.5, column 45.5 (pixel indices)
    theta = np.array([0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4])
    ours = _centroids(recon.forward_project(img, theta, device="cpu"))
    theirs = _centroids(_astra_sino(img, theta))
    np.testing.assert_allclose(ours, theirs, atol=0.5)
    x, y = 45.5 + 0.5 - n / 2, n / 2 - 0.5 - 11.5
    expected = x * np.cos(theta) + y * np.sin(theta) + n / 2  # detector position, pixels
    np.testing.assert_allclose(theirs, expected, atol=0.5)
    # the four positions are far apart, so a rotated or mirrored projector cannot pass
    assert np.ptp(expected) > 10


@pytest.mark.parametrize("center", [37.3, 26.0])
def test_centre_convention_matches_astra(center):
    # with the axis off the detector's middle: our projector and astra's (detector moved,
    # parallel_vec) put the marker at the same detector position at all four angles
    n = 64
    img = np.zeros((n, n), np.float32)
    img[10:14, 44:48] = 1.0
    theta = np.array([0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4])
    ours = _centroids(recon.forward_project(img, theta, center=center, device="cpu"))
    theirs = _centroids(_astra_sino(img, theta, center=center))
    np.testing.assert_allclose(ours, theirs, atol=0.5)
    x, y = 45.5 + 0.5 - n / 2, n / 2 - 0.5 - 11.5
    np.testing.assert_allclose(theirs, x * np.cos(theta) + y * np.sin(theta) + center, atol=0.5)


@pytest.mark.parametrize(
    ("method", "theta"),
    [
        ("correlation", np.linspace(0.0, np.pi, 181)),  # 0 and 180 degrees both present
        ("entropy", np.linspace(0.0, np.pi, 180, endpoint=False)),
    ],
)
def test_find_center_on_astra_projections(method, theta):
    # astra's projections of the asymmetric phantom with the axis at 50.3 px of 96
    img = np.pad(_phantom(80), 8) * np.float32(0.02)
    sino = _astra_sino(img, theta, center=50.3)
    found = recon.find_center(sino, theta, method=method, search=6, device="cpu")
    assert abs(found - 50.3) < 0.5


def test_forward_project_matches_astra_sinogram():
    # the whole sinogram of the asymmetric phantom, 60 angles: within 1 % of its peak on
    # average (bilinear ray sampling vs astra's strip areas); a mirrored detector is far off
    img = _phantom(64)
    theta = np.linspace(0.0, np.pi, 60, endpoint=False)
    ours = recon.forward_project(img, theta, device="cpu")
    theirs = _astra_sino(img, theta)
    scale = np.abs(theirs).max()
    assert np.abs(ours - theirs).mean() < 0.01 * scale
    assert np.abs(ours - theirs[:, ::-1]).mean() > 0.05 * scale


def _write_astra_scan(
    path: Path, img: np.ndarray, theta: np.ndarray, rows: int, center: float | None = None
) -> None:
    """DXchange file of astra's projections: counts = dark + I0 exp(-p).

    `write_dxchange` stores theta in degrees (Tomobank's layout); `reconstruct_scan` reads
    it back in radians.
    """
    line = _astra_sino(img, theta, center)  # (angles, n)
    i0, dark = 30000.0, 100.0
    counts = dark + i0 * np.exp(-line)
    data = np.repeat(np.round(counts)[:, None, :], rows, axis=1).astype(np.uint16)
    n = img.shape[0]
    write_dxchange(
        path,
        data,
        np.full((4, rows, n), dark + i0).astype(np.uint16),
        np.full((2, rows, n), dark).astype(np.uint16),
        theta,
    )


@pytest.fixture(scope="module")
def astra_scan(tmp_path_factory) -> tuple[Path, np.ndarray]:
    img = _phantom(N) * np.float32(0.02)  # attenuation per pixel: chords up to ~1.5
    theta = np.linspace(0.0, np.pi, 180, endpoint=False)
    path = tmp_path_factory.mktemp("astra") / "scan.h5"
    _write_astra_scan(path, img, theta, rows=3)
    return path, img


@pytest.mark.parametrize("backend", ["torch", "astra", "tomopy"])
def test_astra_scan_reconstructs_right_way_round(astra_scan, tmp_path, backend):
    # astra's projections of the asymmetric phantom, through the DXchange file and
    # reconstruct_scan (normalise, minus-log, FBP), centre = cols / 2 (astra's axis):
    # Pearson r with the truth >= 0.95 over the sample disc, and <= 0.8 with each of the
    # other 7 flips/rotations/transposes of the truth
    if backend == "tomopy" and not recon.tomopy_available():
        pytest.skip("tomopy not importable here (conda-only; envs/tomopy.yaml)")
    path, img = astra_scan
    out = tmp_path / "rec"
    recon.reconstruct_scan(path, out, backend=backend, center=None, chunk_rows=2, device="cpu")
    stack = np.stack([tifffile.imread(p) for p in sorted(out.glob("slice_*.tiff"))])
    assert stack.shape == (3, N, N)
    mask = _disc(N, 0.45 * N)
    for rec in stack:
        _assert_right_way_round(rec, img, mask, lo=0.95, hi=0.8)
    # and the scale: attenuation per pixel, as astra's own FBP gives it
    assert stack[0][mask].mean() == pytest.approx(img[mask].mean(), rel=0.05)


def test_off_centre_astra_scan_with_auto_centre(tmp_path):
    # axis at 50.3 px of 96 (astra parallel_vec), no 180-degree pair: the entropy search
    # finds it, and the torch reconstruction is the right way round
    img = np.pad(_phantom(80), 8) * np.float32(0.02)
    theta = np.linspace(0.0, np.pi, 180, endpoint=False)
    path = tmp_path / "scan.h5"
    _write_astra_scan(path, img, theta, rows=2, center=50.3)
    out = tmp_path / "rec"
    meta = recon.reconstruct_scan(path, out, backend="torch", center="auto", device="cpu")
    assert abs(meta["center"] - 50.3) < 0.5
    rec = tifffile.imread(out / "slice_00000.tiff")
    _assert_right_way_round(rec, img, _disc(N, 0.45 * N), lo=0.95, hi=0.8)


def test_astra_fbp_is_the_oracle_for_torch(astra_scan):
    # astra's own FBP (not through our wrapper) of astra's sinogram is the right way round,
    # and our torch FBP of the same sinogram agrees with it pixel by pixel
    _, img = astra_scan
    theta = np.linspace(0.0, np.pi, 180, endpoint=False)
    sino = _astra_sino(img, theta)
    vol_geom = astra.create_vol_geom(N, N)
    proj_geom = astra.create_proj_geom("parallel", 1.0, N, theta)
    pid = astra.create_projector("line", proj_geom, vol_geom)
    sid = astra.data2d.create("-sino", proj_geom, sino)
    rid = astra.data2d.create("-vol", vol_geom)
    cfg = astra.astra_dict("FBP")
    cfg.update(ProjectorId=pid, ProjectionDataId=sid, ReconstructionDataId=rid)
    cfg["FilterType"] = "ram-lak"
    alg = astra.algorithm.create(cfg)
    try:
        astra.algorithm.run(alg)
        theirs = astra.data2d.get(rid)
    finally:
        astra.algorithm.delete(alg)
        astra.data2d.delete([sid, rid])
        astra.projector.delete(pid)
    mask = _disc(N, 0.45 * N)
    _assert_right_way_round(theirs, img, mask, lo=0.95, hi=0.8)
    ours = recon.fbp(sino, theta, device="cpu")[0]
    assert _pearson(ours, theirs, mask) >= 0.98


def test_simulated_scan_reconstructs_right_way_round(tmp_path):
    # the simulator's shale phantom (random grains and pores: no symmetry) projected by
    # simulate_scan and reconstructed by astra's FBP (independent of our back-projector)
    # and by the torch backend: each slice correlates with its ground-truth slice inside
    # the sample, not with any flip or rotation of it
    from tomosynth.simulate import KINDS, simulate_scan

    n, rows, seed = 64, 2, 3
    path = tmp_path / "shale.h5"
    simulate_scan(
        path,
        "shale",
        columns=n,
        slices=rows,
        angles=180,
        photons=40000.0,
        dark_counts=50.0,
        n_flats=4,
        n_darks=2,
        seed=seed,
        voxel_um=1.0,
    )
    truth = KINDS["shale"](n, rows, seed)
    inside = _disc(n, 0.3 * n)  # the random texture only: no container ring
    for backend in ("astra", "torch"):
        out = tmp_path / backend
        recon.reconstruct_scan(path, out, backend=backend, center=None, device="cpu")
        for k, name in enumerate(sorted(out.glob("slice_*.tiff"))):
            _assert_right_way_round(tifffile.imread(name), truth[k], inside, lo=0.7, hi=0.3)

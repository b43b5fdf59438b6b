"""Tests for tomosynth.simulate: phantoms, Beer-Lambert projections, noise, binning, scans."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.measure import block_reduce

from tomosynth.errors import ConfigError
from tomosynth.io import inspect_dxchange, read_dxchange
from tomosynth.recon import forward_project
from tomosynth.simulate import (
    bone_phantom,
    shale_phantom,
    simulate_projections,
    simulate_scan,
    transmission,
)

torch.set_num_threads(1)

N, SLICES = 64, 16
THETA = np.linspace(0.0, np.pi, 24, endpoint=False)


@pytest.fixture(scope="module")
def shale() -> np.ndarray:
    return shale_phantom(N, SLICES, seed=3)


@pytest.fixture(scope="module")
def bone() -> np.ndarray:
    return bone_phantom(N, SLICES, seed=3)


def _radius(n: int) -> np.ndarray:
    """Distance of each pixel centre from the rotation axis at pixel (n - 1) / 2."""
    off = np.arange(n) - (n - 1) / 2.0
    return np.hypot(off[:, None], off[None, :])


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / max(1.0, float(a.sum() + b.sum()))


def _minus_log(data, flat, dark) -> np.ndarray:
    d = dark.astype(np.float64).mean(axis=0)
    f = flat.astype(np.float64).mean(axis=0)
    return -np.log((data - d) / (f - d))


# ---------------------------------------------------------------------------- phantoms


def test_shale_phases_and_fractions(shale):
    assert shale.shape == (SLICES, N, N) and shale.dtype == np.float32
    r = _radius(N)
    u = shale * N / 3.0  # matrix attenuation is ~1 in these units
    assert np.all(u[:, r > 0.47 * N] == 0), "air outside the container"
    assert np.all(u[:, (r > 0.40 * N) & (r < 0.42 * N)] == 0), "air gap inside the container"
    ring = u[:, (r > 0.43 * N + 0.5) & (r < 0.455 * N - 0.5)]
    assert ring.size > 0 and np.allclose(ring, 1.3), "uniform container ring, brighter than matrix"
    sample = u[:, r < 0.36 * N]
    fractions = {
        "pores": np.mean(sample < 0.2),
        "matrix": np.mean((sample > 0.8) & (sample < 1.25)),
        "grains": np.mean(sample > 1.6),
    }
    assert 0.01 < fractions["pores"] < 0.15, fractions
    assert fractions["matrix"] > 0.8, fractions
    assert 0.003 < fractions["grains"] < 0.06, fractions
    assert sample.max() > 2.5, "some grains are much denser than the matrix"
    matrix = sample[(sample > 0.8) & (sample < 1.25)]
    assert 0.01 < matrix.std() < 0.15, "low-contrast but textured matrix"
    # pores are flattened along the bedding: longer along the last axis than the middle one
    pores = (u < 0.2) & (r < 0.36 * N)[None]
    labels, n_lab = ndimage.label(pores)
    extents = np.array([[s.stop - s.start for s in sl] for sl in ndimage.find_objects(labels)])
    big = extents[extents.prod(axis=1) >= 8]
    assert n_lab > 10 and np.median(big[:, 2] / big[:, 1]) > 1.5


def test_bone_phases_and_fractions(bone):
    assert bone.shape == (SLICES, N, N) and bone.dtype == np.float32
    r = _radius(N)
    u = bone * N / 1.6  # cortical bone 3, trabeculae 2.6, marrow 0.8 in these units
    assert np.all(u[:, r > 0.45 * N] == 0), "air outside"
    shell = u[:, (r > 0.33 * N) & (r < 0.36 * N)]
    assert np.mean(np.abs(shell - 3.0) < 0.2) > 0.9, "cortical shell"
    medulla = u[:, r < 0.22 * N]
    marrow = np.mean(np.abs(medulla - 0.8) < 0.1)
    trabecular = np.mean(np.abs(medulla - 2.6) < 0.2)
    assert np.mean(medulla == 0) == 0, "no air inside the bone"
    assert 0.65 < marrow and 0.1 < trabecular < 0.35 and marrow + trabecular > 0.99
    # the trabeculae form a network attached to the cortex, not isolated specks
    labels, _ = ndimage.label(u > 2.0)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    trab = np.abs(u - 2.6) < 0.2
    assert np.mean(labels[trab] == sizes.argmax()) > 0.75


@pytest.mark.parametrize("kind", ["shale", "bone"])
def test_features_continue_across_slices(kind, shale, bone):
    vol = {"shale": shale, "bone": bone}[kind]
    inner = (_radius(N) < 0.25 * N)[None]
    u = vol * N
    masks = [(u < 0.6) & inner, (u > 4.8) & inner] if kind == "shale" else [(u > 3.2) & inner]
    for m in masks:
        near = np.mean([_dice(m[k], m[k + 1]) for k in range(SLICES - 1)])
        far = np.mean([_dice(m[k], m[k + 8]) for k in range(SLICES - 8)])
        assert near > far + 0.15, (near, far)


@pytest.mark.parametrize("make", [shale_phantom, bone_phantom])
def test_phantom_seed(make):
    a, b, c = make(32, 4, seed=5), make(32, 4, seed=5), make(32, 4, seed=6)
    np.testing.assert_array_equal(a, b)
    assert np.mean(a != c) > 0.1


def test_transmission_range_is_size_independent():
    """Scaling mu by 1/columns keeps the transmission through the sample in range."""
    theta = np.linspace(0.0, np.pi, 8, endpoint=False)
    for make in (shale_phantom, bone_phantom):
        stats = []
        for n in (32, 96):
            t = transmission(make(n, 2, seed=1), theta)
            stats.append((t.min(), np.median(t[t < 0.99])))
        for t_min, t_med in stats:
            assert 0.03 < t_min < 0.2 and 0.05 < t_med < 0.6, (make.__name__, stats)
        assert abs(stats[0][1] - stats[1][1]) < 0.05, stats


# ---------------------------------------------------------------------------- projections


def test_beer_lambert_matches_forward_projection(shale):
    """With many photons, -log of the normalised counts is the line integral."""
    vol = shale[4:8]
    data, flat, dark = simulate_projections(
        vol, THETA, photons=60000, dark_counts=50, n_flats=10, n_darks=10, seed=0
    )
    assert data.dtype == flat.dtype == dark.dtype == np.uint16
    assert data.shape == (THETA.size, 4, N)
    got = _minus_log(data, flat, dark)
    want = forward_project(vol, THETA)
    # counts >= 60000 * 0.05: relative noise <= 2 % per pixel
    assert np.max(np.abs(got - want)) < 0.12
    assert np.mean(np.abs(got - want)) < 0.01
    assert abs(np.mean(got - want)) < 0.002


def test_uniform_cylinder_closed_form():
    """Line integral of a uniform disc of radius R: 2 mu sqrt(R^2 - s^2)."""
    n, mu, radius, sup = 48, 0.04, 18.0, 8
    # anti-aliased disc: each pixel holds its covered area fraction (8 x 8 supersampling)
    fine = (np.arange(n * sup) + 0.5) / sup - n / 2.0
    disc = block_reduce(
        (np.hypot(fine[:, None], fine[None, :]) < radius) * 1.0, (sup, sup), np.mean
    )
    vol = np.broadcast_to((mu * disc).astype(np.float32), (2, n, n)).copy()
    theta = np.array([0.0, 0.7, 2.0])
    got = -np.log(transmission(vol, theta))
    s = np.arange(n) + 0.5 - n / 2.0  # signed detector position, axis at n / 2
    want = 2.0 * mu * np.sqrt(np.clip(radius**2 - s**2, 0.0, None))
    core = np.abs(s) < radius - 3
    np.testing.assert_allclose(
        got[:, :, core], np.broadcast_to(want[core], got[:, :, core].shape), rtol=0.03
    )
    assert np.all(got[:, :, np.abs(s) > radius + 1.5] < 1e-6)


def test_rows_are_slices():
    """A feature in one slice attenuates only that detector row, at every angle."""
    vol = np.zeros((6, 32, 32), np.float32)
    vol[4, 10:20, 12:16] = 0.1
    t = transmission(vol, THETA)
    rows_hit = np.where((t < 0.999).any(axis=(0, 2)))[0]
    assert rows_hit.tolist() == [4]


def test_poisson_statistics_of_flats_darks_and_data():
    vol = np.zeros((16, 32, 32), np.float32)
    vol[:, 8:24, 8:24] = 0.05
    theta = np.linspace(0.0, np.pi, 16, endpoint=False)
    photons, dark_counts = 900.0, 40.0
    data, flat, dark = simulate_projections(
        vol, theta, photons=photons, dark_counts=dark_counts, n_flats=8, n_darks=8, seed=11
    )
    for frames, mean in ((flat, photons + dark_counts), (dark, dark_counts)):
        x = frames.astype(np.float64)
        assert abs(x.mean() - mean) < 5 * np.sqrt(mean / x.size)
        assert x.var(ddof=1) / mean == pytest.approx(1.0, abs=0.1)
    # projections: standardised residuals around the expected counts are ~N(0, 1)
    lam = photons * transmission(vol, theta).astype(np.float64) + dark_counts
    z = (data - lam) / np.sqrt(lam)
    assert abs(z.mean()) < 5 / np.sqrt(z.size)
    assert z.var() == pytest.approx(1.0, abs=0.06)
    # each row draws its own noise: no two rows of an open-beam region are equal
    assert not np.array_equal(data[:, 0, :4], data[:, 1, :4])


def test_projection_seed(shale):
    kw = dict(photons=1000, dark_counts=10, n_flats=2, n_darks=2)
    a = simulate_projections(shale[:4], THETA, seed=1, **kw)
    b = simulate_projections(shale[:4], THETA, seed=1, slab_rows=1, **kw)
    c = simulate_projections(shale[:4], THETA, seed=2, **kw)
    for x, y, z in zip(a, b, c, strict=True):
        np.testing.assert_array_equal(x, y)  # slab size changes memory, not the result
        assert np.mean(x != z) > 0.5


def test_binning_is_block_average_of_full_resolution(shale):
    full = transmission(shale, THETA)
    for b in (2, 4):
        binned = transmission(shale, THETA, binning=b)
        assert binned.shape == (THETA.size, SLICES // b, N // b)
        reference = block_reduce(full.astype(np.float64), (1, b, b), np.mean)
        np.testing.assert_allclose(binned, reference, rtol=1e-5, atol=1e-7)


def test_blur_matches_gaussian_filter_and_is_slab_independent(bone):
    plain = transmission(bone, THETA[:6], binning=2)
    blurred = transmission(bone, THETA[:6], binning=2, blur_sigma=1.0)
    slabbed = transmission(bone, THETA[:6], binning=2, blur_sigma=1.0, slab_rows=3)
    reference = np.stack([ndimage.gaussian_filter(p, 1.0, mode="nearest") for p in plain])
    np.testing.assert_allclose(blurred, reference, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(slabbed, blurred, rtol=1e-6, atol=1e-7)


def test_invalid_projection_arguments(shale):
    kw = dict(photons=100, dark_counts=10, n_flats=2, n_darks=2, seed=0)
    with pytest.raises(ConfigError, match="binning"):
        simulate_projections(shale[:3], THETA, binning=2, **kw)
    with pytest.raises(ConfigError, match="overflow uint16"):
        simulate_projections(shale[:2], THETA, **{**kw, "photons": 65000})
    with pytest.raises(ConfigError, match="n_flats"):
        simulate_projections(shale[:2], THETA, **{**kw, "n_flats": 0})
    with pytest.raises(ConfigError, match="photons"):
        simulate_projections(shale[:2], THETA, **{**kw, "photons": -1})


# ---------------------------------------------------------------------------- scans

SCAN = dict(
    columns=32, slices=8, angles=12, photons=5000, dark_counts=20, n_flats=4, n_darks=3, seed=7
)


def test_simulate_scan_writes_dxchange(tmp_path):
    path = tmp_path / "shale.h5"
    simulate_scan(path, "shale", voxel_um=0.65, **SCAN)
    info = inspect_dxchange(path)
    assert (info.n_angles, info.n_rows, info.n_cols) == (12, 8, 32)
    assert (info.n_flats, info.n_darks) == (4, 3)
    np.testing.assert_allclose(info.theta, np.arange(12) * np.pi / 12, atol=1e-12)
    for key, value in SCAN.items():
        assert info.attrs[key] == value
    assert info.attrs["kind"] == "shale"
    assert info.attrs["voxel_size_um"] == pytest.approx(0.65)
    with h5py.File(path, "r") as f:
        assert f["/exchange/data"].dtype == np.uint16
    proj = read_dxchange(path)
    # the file holds the phantom's projections (not some other object)
    want = forward_project(shale_phantom(32, 8, 7), info.theta)
    got = _minus_log(proj.data, proj.flat, proj.dark)
    assert np.mean(np.abs(got - want)) < 0.05
    assert [p.name for p in tmp_path.iterdir()] == ["shale.h5"]


def test_binned_scan_is_the_same_object_at_coarser_voxels(tmp_path):
    full_path, binned_path = tmp_path / "full.h5", tmp_path / "bin.h5"
    kw = {**SCAN, "photons": 30000}
    simulate_scan(full_path, "bone", voxel_um=5.0, **kw)
    simulate_scan(binned_path, "bone", voxel_um=5.0, binning=2, **kw)
    info = inspect_dxchange(binned_path)
    assert (info.n_rows, info.n_cols) == (4, 16)
    assert info.attrs["voxel_size_um"] == pytest.approx(10.0)
    full, binned = read_dxchange(full_path), read_dxchange(binned_path)

    def norm(p):
        d = p.dark.mean(axis=0)
        return (p.data - d) / (p.flat.mean(axis=0) - d)

    # same object: the binned scan's transmission is the block average of the full one's
    reference = block_reduce(norm(full), (1, 2, 2), np.mean)
    assert np.mean(np.abs(norm(binned) - reference)) < 0.004
    other = tmp_path / "other.h5"
    simulate_scan(other, "bone", voxel_um=5.0, binning=2, **{**kw, "seed": 8})
    assert np.mean(np.abs(norm(read_dxchange(other)) - reference)) > 0.01


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"kind": "granite"}, "kind"),
        ({"columns": 8}, "columns"),
        ({"angles": 1}, "angles"),
        ({"photons": 0}, "photons"),
        ({"dark_counts": -5}, "dark_counts"),
        ({"n_darks": 0}, "n_darks"),
        ({"voxel_um": 0.0}, "voxel_um"),
        ({"binning": 3}, "binning"),
    ],
)
def test_simulate_scan_rejects_bad_values(tmp_path, change, key):
    args = {"kind": "bone", "voxel_um": 1.0, **SCAN, **change}
    kind = args.pop("kind")
    with pytest.raises(ConfigError, match=key):
        simulate_scan(tmp_path / "x.h5", kind, **args)
    assert list(tmp_path.iterdir()) == []


def _slice_stats(vol: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-slice pore fraction and mean attenuation inside 0.3 x width of the axis."""
    n = vol.shape[-1]
    core = _radius(n) < 0.3 * n
    unit = 3.0 / n
    inner = vol[:, core]
    return (inner < 0.2 * unit).mean(axis=1), inner.mean(axis=1)


def test_axial_variety_zero_is_the_default_object(shale):
    assert np.array_equal(shale_phantom(N, SLICES, seed=3, axial_variety=0.0), shale)


def test_axial_variety_makes_slices_differ_along_the_axis():
    plain = shale_phantom(N, 48, seed=5)
    varied = shale_phantom(N, 48, seed=5, axial_variety=1.0)
    pores_plain, density_plain = _slice_stats(plain)
    pores_varied, density_varied = _slice_stats(varied)
    # pore fraction x e^(+-0.8) and matrix density +-8 % at one standard deviation of the
    # axial profiles: the slice-to-slice spread grows well beyond the plain phantom's
    assert pores_varied.std() > 2.5 * pores_plain.std()
    assert density_varied.std() > 2.5 * density_plain.std()
    # still a shale sample in a container: container ring and air unchanged
    r = _radius(N)
    ring = (r >= 0.43 * N) & (r < 0.45 * N)
    assert np.allclose(varied[:, ring], 1.3 * 3.0 / N)
    assert np.all(varied[:, r > 0.47 * N] == 0)


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_axial_variety_out_of_range(bad):
    with pytest.raises(ConfigError, match="axial_variety"):
        shale_phantom(N, 8, seed=0, axial_variety=bad)

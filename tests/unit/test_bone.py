"""Bone microstructure metrics on phantoms of known geometry."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from tomosynth.errors import ConfigError, DataError
from tomosynth.metrics import geometry
from tomosynth.metrics.bone import (
    METRICS,
    binarize,
    bone_metrics,
    intersection_surface,
    pattern_factor,
    roi_metrics,
    split_rois,
    surface_area,
)
from tomosynth.metrics.geometry import distance_ridge, local_thickness


def _ball(n: int, radius: float, centre: float | None = None) -> np.ndarray:
    c = n // 2 if centre is None else centre
    g = np.mgrid[:n, :n, :n] - c
    return (g**2).sum(0) <= radius**2


@pytest.mark.parametrize("t", [1, 2, 3, 4, 5, 6, 8, 11])
def test_plate_thickness_within_one_voxel(t):
    vol = np.zeros((24, 24, 40), dtype=bool)
    vol[:, :, 12 : 12 + t] = True
    th = local_thickness(vol)
    assert abs(th[vol].mean() - t) <= 1.0
    assert np.all(th[~vol] == 0)
    # Units: voxel_um 20 -> 0.02 mm per voxel.
    m = bone_metrics(vol, 0.02)
    assert abs(m["Tb.Th"] - 0.02 * t) <= 0.02 + 1e-12
    assert m["Tb.Th.pm"] == pytest.approx(0.02 * t, rel=0.02)  # 2 BV/BS of a plate


@pytest.mark.parametrize("radius", [3, 5, 8, 12])
def test_ball_thickness_is_diameter(radius):
    ball = _ball(2 * radius + 9, radius)
    th = local_thickness(ball)
    assert abs(th[ball].mean() - 2 * radius) <= 1.0
    # every voxel of a ball lies in the ball's own largest sphere
    assert th[ball].max() - th[ball].min() < 1e-5


@pytest.mark.parametrize("radius", [2, 4, 7])
def test_rod_thickness_is_diameter(radius):
    n = 2 * radius + 7
    g = np.mgrid[:n, :n] - n // 2
    disc = (g**2).sum(0) <= radius**2
    rod = np.broadcast_to(disc, (20, n, n)).copy()
    th = local_thickness(rod)
    assert abs(th[rod].mean() - 2 * radius) <= 1.0


def test_thickness_against_brute_force():
    # Independent definition: max over all phase voxels c of 2 d(c) with |p - c| < d(c).
    rng = np.random.default_rng(3)
    vol = ndi.gaussian_filter(rng.standard_normal((14, 14, 14)), 1.5) > 0.1
    d = ndi.distance_transform_edt(vol)
    cs = np.argwhere(vol)
    dc = d[vol]
    ref = np.zeros(vol.shape)
    for p in cs:
        dist = np.sqrt(((cs - p) ** 2).sum(1))
        ref[tuple(p)] = 2 * dc[dist < dc].max()
    np.testing.assert_allclose(local_thickness(vol), ref, atol=1e-5)
    # the ridge keeps enough centres and drops some
    assert 0 < distance_ridge(d).sum() < vol.sum()


def test_thickness_binned_path_close_to_exact():
    # Forces the distance-transform path for wide marrow spaces; compare to direct painting.
    vol = np.ones((30, 30, 30), dtype=bool)
    vol[:, :, 14:16] = False
    exact = local_thickness(vol)

    orig = geometry._ball_volume
    try:
        geometry._ball_volume = lambda d2, ndim=3: 10**12  # every radius too costly to paint
        binned = local_thickness(vol)
    finally:
        geometry._ball_volume = orig
    assert abs(binned[vol].mean() - exact[vol].mean()) <= 0.5


def test_bvtv_exact_and_units():
    rng = np.random.default_rng(0)
    vol = np.zeros(16 * 16 * 16, dtype=bool)
    vol[rng.choice(vol.size, 1024, replace=False)] = True
    vol = vol.reshape(16, 16, 16)
    m = bone_metrics(vol, 0.01)
    assert m["BV/TV"] == 1024 / 4096
    assert m["BV"] == pytest.approx(1024 * 1e-6)
    assert m["TV"] == pytest.approx(4096 * 1e-6)
    assert m["TS"] == pytest.approx(6 * 16 * 16 * 1e-4)


def test_sphere_and_cube_surface():
    r = 12
    ball = _ball(40, r)
    assert surface_area(ball, closed=True) == pytest.approx(4 * np.pi * r**2, rel=0.04)
    cube = np.zeros((40, 40, 40), dtype=bool)
    cube[5:35, 5:35, 5:35] = True
    assert surface_area(cube, 0.5) == pytest.approx(6 * 30**2 * 0.25, rel=0.04)
    m = bone_metrics(cube, 0.5)
    assert m["BS/BV"] == pytest.approx(6 / 15.0, rel=0.04)


def test_roi_faces_not_counted_as_bone_surface():
    vol = np.zeros((20, 20, 20), dtype=bool)
    vol[:, :, 5:9] = True  # a plate crossing the whole ROI: its area is 2 faces of 20 x 20
    assert surface_area(vol) == pytest.approx(2 * 400, rel=1e-3)
    assert intersection_surface(vol) == 4 * 20 * 4  # four cut faces of 20 x 4 voxels


def test_pattern_factor_sign():
    # Isolated convex balls (rod-like) give Tb.Pf > 0; a marrow cavity (concave) < 0.
    balls = _ball(24, 6)
    assert pattern_factor(balls) > 0
    shell = ~_ball(24, 8)
    assert pattern_factor(shell) < 0


def test_cortical_envelope_tissue():
    g = np.mgrid[:16, :32, :32]
    rho = np.sqrt((g[1] - 15.5) ** 2 + (g[2] - 15.5) ** 2)
    shell = (rho <= 12) & (rho > 8)
    m = bone_metrics(shell, 1.0, tissue="envelope")
    filled = rho <= 12
    assert m["TV"] == filled.sum()
    assert m["BV/TV"] == pytest.approx(shell.sum() / filled.sum())
    with pytest.raises(ConfigError):
        bone_metrics(shell, 1.0, tissue="box")


def test_split_rois_and_roi_metrics():
    rois = split_rois((40, 33, 32), 16)
    assert len(rois) == 2 * 2 * 2
    assert {(r.z, r.y, r.x) for r in rois} == {
        (z, y, x) for z in (0, 16) for y in (0, 16) for x in (0, 16)
    }
    vol = np.zeros((32, 32, 32), dtype=bool)
    vol[:, :, 4:8] = True
    vol[:, :, 20:26] = True
    rows = list(roi_metrics(vol, 1.0, 16, progress=False))
    assert len(rows) == 8
    for roi, m in rows:
        expected = 4 if roi.x == 0 else 6
        assert abs(m["Tb.Th"] - expected) <= 1
        assert m["BV/TV"] == expected / 16


def test_binarize_otsu_and_fixed():
    vol = np.zeros((8, 8, 8), dtype=np.float32)
    vol[:4] = 0.9
    mask, thr = binarize(vol + 0.1)
    assert mask.sum() == 4 * 64 and 0.1 <= thr < 1.0
    mask, thr = binarize(vol, 0.95)
    assert not mask.any() and thr == 0.95
    with pytest.raises(DataError):
        binarize(np.zeros((4, 4, 4)))


def test_evaluate_sr_volume_tables(tmp_path):
    import json

    from scipy import stats

    from tomosynth.io import write_tiff_slices
    from tomosynth.metrics.bone_tables import evaluate_sr_volume

    rng = np.random.default_rng(5)
    hr = ndi.gaussian_filter(rng.standard_normal((16, 48, 48)), 2.0)
    hr = ((hr - hr.min()) / (hr.max() - hr.min())).astype(np.float32)
    sr = np.clip(hr + 0.02 * rng.standard_normal(hr.shape), 0, 1).astype(np.float32)
    lr = ndi.gaussian_filter(hr, 1.5).astype(np.float32)
    vol = tmp_path / "vol"
    for kind, v in {"lr": lr, "sr": sr, "hr": hr}.items():
        write_tiff_slices(vol / kind, v)
    (vol / "meta.json").write_text(json.dumps({"hr_voxel_um": 10.0}))
    tables, record = evaluate_sr_volume(vol, voxel_um=None, roi_size=16, r_max=4)
    table = tables["table"]
    assert len(table) == 3 * 9 and set(table["kind"]) == {"lr", "sr", "hr"}
    corr = tables["correlations"]
    row = corr[(corr.kind == "sr") & (corr.metric == "BV/TV")].iloc[0]
    x = table[table.kind == "sr"].sort_values("roi")["BV/TV"]
    y = table[table.kind == "hr"].sort_values("roi")["BV/TV"]
    ref = stats.pearsonr(x, y)
    assert (
        row.n == 9 and row.r == pytest.approx(ref.statistic) and row.p == pytest.approx(ref.pvalue)
    )
    assert row.r > 0.9  # SR is HR plus a little noise
    # BV/TV column is the voxel fraction above each volume's Otsu threshold
    from skimage.filters import threshold_otsu

    t = threshold_otsu(hr)
    first = table[(table.kind == "hr") & (table.roi == 0)].iloc[0]
    assert first["BV/TV"] == pytest.approx((hr[:16, :16, :16] > t).mean())
    assert first["TV"] == pytest.approx(16**3 * 0.01**3)
    cons = tables["consistency"]
    assert set(cons.quantity) == {"s2_slice", "s2_plane", "ssim_next"} | {
        f"minkowski_{k}" for k in ("volume", "surface", "mean_curvature", "euler")
    }
    assert record["voxel_um"] == 10.0


def test_bone_figure_points_are_table_values(tmp_path):
    import pandas as pd

    from tomosynth.metrics.bone_tables import correlation_table
    from tomosynth.plots.bone import bone_figure, plot_bone

    rng = np.random.default_rng(7)
    rows = []
    for kind in ("hr", "sr", "lr"):
        for roi in range(6):
            rows.append({"kind": kind, "roi": roi, "BV/TV": rng.random(), "Tb.Th": rng.random()})
    table = pd.DataFrame(rows)
    full = table.reindex(columns=[*table.columns, *(m for m in METRICS if m not in table)])
    corr = correlation_table(full)
    fig = bone_figure(table, corr, ["BV/TV", "Tb.Th"])
    ax = fig.axes[0]
    pts = [c.get_offsets() for c in ax.collections]
    hr = table[table.kind == "hr"].sort_values("roi")["BV/TV"].to_numpy()
    sr = table[table.kind == "sr"].sort_values("roi")["BV/TV"].to_numpy()
    np.testing.assert_allclose(pts[0][:, 0], hr)
    np.testing.assert_allclose(pts[0][:, 1], sr)
    r = corr[(corr.kind == "sr") & (corr.metric == "BV/TV")].r.iloc[0]
    assert f"r={r:.3f}" in ax.get_legend().get_texts()[0].get_text()
    table.to_csv(tmp_path / "t.csv", index=False)
    corr.to_csv(tmp_path / "c.csv", index=False)
    plot_bone(tmp_path / "t.csv", tmp_path / "c.csv", tmp_path / "b.png", tmp_path / "b.pdf")
    assert (tmp_path / "b.png").stat().st_size > 0 and (tmp_path / "b.pdf").stat().st_size > 0


def test_marrow_spacing_excludes_air_outside_the_cortex():
    # A cortical tube (radii 8..12) in a 64 x 64 field: with the envelope tissue, Tb.Sp is
    # the thickness of the marrow cavity alone, not of the air around the specimen.
    n, h = 64, 64  # one cubic ROI covers the volume
    yy, xx = np.mgrid[:h, :h] - (h - 1) / 2.0
    r = np.hypot(yy, xx)
    tube = np.broadcast_to((r >= 8) & (r <= 12), (n, h, h)).copy()
    cavity = np.broadcast_to(r < 8, (n, h, h)).copy()
    (_, m), *_ = roi_metrics(tube, 1.0, roi_size=h, tissue="envelope", progress=False)
    ref = local_thickness(cavity)  # the rod's diameter wherever the faces do not matter
    assert m["Tb.Sp"] == pytest.approx(float(np.median(ref[cavity])), rel=0.02)
    assert m["Tb.Sp"] < 16.0  # the cavity's diameter bounds it; the air would push it up


def test_consistency_table_carries_3d_minkowski_functionals_of_the_bone():
    from tomosynth.metrics.bone_tables import consistency_table

    r = 8.0
    vol = _ball(32, r).astype(np.float32)  # bone = 1, background = 0 (threshold 0.5)
    table = consistency_table({"hr": vol}, threshold=0.5, r_max=4)
    mk = table[table["quantity"].str.startswith("minkowski_")].set_index("quantity")["value"]
    assert mk["minkowski_volume"] == float(vol.sum())
    assert mk["minkowski_volume"] == pytest.approx(4 / 3 * np.pi * r**3, rel=0.05)
    assert mk["minkowski_surface"] == pytest.approx(4 * np.pi * r**2, rel=0.05)
    assert mk["minkowski_mean_curvature"] == pytest.approx(4 * np.pi * r, rel=0.1)
    assert mk["minkowski_euler"] == 1.0
    assert set(table["quantity"]) >= {"s2_slice", "s2_plane", "ssim_next"}


def _plates(n: int = 96, thickness: int = 6, gap: int = 10, offset: int = 5) -> np.ndarray:
    """Parallel plates normal to x, `thickness` voxels thick with `gap`-voxel gaps; the
    offset puts the volume faces in the middle of a gap (a half gap at each face)."""
    x = np.arange(n)
    plate = (x - offset) % (thickness + gap) < thickness
    return np.broadcast_to(plate, (n, n, n)).copy()


def test_plates_without_a_cortex_have_their_spacing_in_every_roi():
    # Closed form: between infinite plates the marrow is a slab of the gap's width, so its
    # local thickness is the gap (10), the bone's the plate (6), Tb.N = 1 / 16 per voxel.
    vol = _plates(n=64)
    assert vol[0, 0, :5].sum() == 0 and vol[0, 0, 59:].sum() == 0  # half gaps at both faces
    rows = list(roi_metrics(vol, 1.0, 32, progress=False))
    assert len(rows) == 8
    for _, m in rows:  # the half gaps at the faces are unknown, not counted at 5 or 10
        assert m["Tb.Th"] == pytest.approx(6.0, abs=1e-5)
        assert m["Tb.Sp"] == pytest.approx(10.0, abs=1e-5)
        assert m["Tb.N"] == pytest.approx(1 / 16, rel=1e-5)
    # The envelope tissue holds no marrow here (the gaps reach the faces): Tb.Sp undefined.
    (_, m), *_ = roi_metrics(vol, 1.0, 32, tissue="envelope", progress=False)
    assert np.isnan(m["Tb.Sp"]) and abs(m["Tb.Th"] - 6) <= 1


def test_given_tissue_mask_restricts_the_marrow():
    vol = _plates(n=64)
    mask = np.zeros(vol.shape, dtype=bool)
    mask[:, :, :32] = True  # the tissue is the half x < 32
    rows = {roi.x: m for roi, m in roi_metrics(vol, 1.0, 32, tissue=mask, progress=False)}
    inside, outside = rows[0], rows[32]
    # Marrow of the tissue half: the whole gap 11..20 (10 wide) and the gap 27..31 cut by
    # the tissue's edge (5 wide; the tissue's edge bounds the marrow); the half gap at the
    # volume face is unknown. So Tb.Sp lies between 5 and 10, nearer 10 (10 x 10 + 5 x 5).
    assert 25 / 3 - 0.5 < inside["Tb.Sp"] < 10
    assert inside["TV"] == 32**3 and inside["BV"] == vol[:32, :32, :32].sum()
    assert outside["TV"] == 0 and np.isnan(outside["BV/TV"]) and np.isnan(outside["Tb.Sp"])


def _cortical_bone(n: int = 24, h: int = 128, r_in: float = 40.0, r_out: float = 58.0):
    """A tube of cortex (radii r_in..r_out, 18 voxels thick) in air, with plates 3 voxels
    thick and 7 apart filling its marrow cavity; returns (bone, cortex, cavity)."""
    yy, xx = np.mgrid[:h, :h] - (h - 1) / 2.0
    r = np.broadcast_to(np.hypot(yy, xx), (n, h, h))
    cortex = (r >= r_in) & (r <= r_out)
    cavity = r < r_in
    plates = np.broadcast_to(np.arange(h) % 10 < 3, (n, h, h))
    return cortex | (cavity & plates), cortex, cavity


def test_trabecular_rois_lie_inside_the_cortex_and_exclude_it():
    from tomosynth.metrics.bone import endosteal_envelope, trabecular_rois

    bone, cortex, cavity = _cortical_bone()
    inside = endosteal_envelope(bone, cortex_min_thickness=12)
    # the endosteal envelope is the cavity, trabeculae included, within a voxel
    assert (inside & cortex).sum() == 0
    assert (inside ^ cavity).sum() <= 0.02 * cavity.sum()
    rois = trabecular_rois(bone, 16)
    expected = [r for r in split_rois(bone.shape, 16) if cavity[r.slices].all()]
    assert len(expected) >= 8
    assert {r.index for r in rois} == {r.index for r in expected}
    for r in rois:
        assert not cortex[r.slices].any()


def test_roi_table_reports_all_and_trabecular_regions():
    from tomosynth.metrics.bone_tables import correlation_table, roi_table

    bone, cortex, cavity = _cortical_bone(n=16)
    hr = bone.astype(np.float32)
    sr = np.roll(hr, 1, axis=2)  # SR: the HR shifted by a voxel
    table = roi_table({"sr": sr, "hr": hr}, 1000.0, threshold=0.5, roi_size=16, progress=False)
    assert set(table["region"]) == {"all", "trabecular"}
    assert set(table["tissue"]) == {"roi"}
    n_all = len(split_rois(bone.shape, 16))
    trab = table[(table.region == "trabecular") & (table.kind == "hr")]
    assert len(table[(table.region == "all") & (table.kind == "hr")]) == n_all
    assert 0 < len(trab) < n_all
    for row in trab.itertuples():
        s = (slice(row.z, row.z + 16), slice(row.y, row.y + 16), slice(row.x, row.x + 16))
        assert not cortex[s].any() and cavity[s].all()
    # trabecular ROIs hold only the plates: 3 voxels thick, 7 apart (closed form)
    m = trab.set_index("roi")
    assert ((m["Tb.Th"] - 3).abs() <= 1).all() and ((m["Tb.Sp"] - 7).abs() <= 1).all()
    corr = correlation_table(table)
    assert set(corr["region"]) == {"all", "trabecular"}
    row = corr[(corr.region == "trabecular") & (corr.metric == "BV/TV")].iloc[0]
    assert row.n == len(trab)
    assert "tissue = the ROI" in row.convention


# --- volume faces: unknown, neither doubled nor halved (issue 24 item 6) ---------------------
@pytest.mark.parametrize(
    "offset, where",
    [(0, "plate at the low face, gap at the high face"), (5, "faces mid-gap"), (11, "mid-plate")],
)
def test_face_cut_plates_are_unknown_not_doubled(offset, where):
    # Plates 6 voxels thick, 10 apart, normal to x. Closed form (BoneJ's convention, even
    # widths are exact): every voxel of a whole plate has thickness 6, of a whole gap 10.
    # A plate or gap cut by a face (or reaching it) has an unknown width: it is left out.
    n = 64
    x = np.arange(n)
    plate = (x - offset) % 16 < 6
    vol = np.broadcast_to(plate, (32, 32, n)).copy()
    for phase, width in ((vol, 6.0), (~vol, 10.0)):
        t, _ = geometry.thickness_known(phase)
        known = t[phase][np.isfinite(t[phase])]
        np.testing.assert_array_equal(known, width)
        # Whole structures (runs along x that touch no x face) are known away from the y
        # and z faces (farther than their width + 1): only the face band is left out.
        runs, count = ndi.label(phase[0, 0])
        whole = np.isin(runs, [i for i in range(1, count + 1) if runs[0] != i != runs[-1]])
        k = int(width) + 1
        core = np.zeros(phase.shape, dtype=bool)
        core[k:-k, k:-k] = whole
        assert core.sum() > 0 and np.isfinite(t[core]).all(), where
        # Structures cut by an x face (or reaching it) are unknown throughout.
        cut = phase & ~np.broadcast_to(whole, phase.shape)
        assert np.isnan(t[cut]).all(), where
        # the old convention (outside = the phase) counts the face structures wider
        assert local_thickness(phase)[phase].mean() >= width
    rows = list(roi_metrics(vol, 1.0, 32, progress=False))
    assert len(rows) == 2
    for _, m in rows:  # both ROIs touch a face
        assert m["Tb.Th"] == pytest.approx(6.0, abs=1e-5), where
        assert m["Tb.Sp"] == pytest.approx(10.0, abs=1e-5), where


def test_thickness_known_is_the_plain_map_away_from_the_faces():
    # Balls and a rod that touch no face: the unknown outside changes nothing.
    vol = _ball(30, 6, centre=10) | _ball(30, 4, centre=21)
    vol[14:16, 14:16, 3:27] = True
    t, top = geometry.thickness_known(vol)
    np.testing.assert_allclose(t, local_thickness(vol), atol=1e-6)
    assert top == pytest.approx(12.0, abs=1.0)


def _spheres_inside(n: int = 32, seed: int = 2) -> np.ndarray:
    """Random balls of radius 2-5 at least 1 voxel from every face."""
    rng = np.random.default_rng(seed)
    g = np.mgrid[:n, :n, :n]
    vol = np.zeros((n, n, n), dtype=bool)
    for _ in range(14):
        r = rng.uniform(2, 5)
        c = rng.uniform(r + 1.5, n - r - 2.5, size=3)
        vol |= ((g - c[:, None, None, None]) ** 2).sum(0) <= r * r
    return vol


def test_block_wise_thickness_equals_the_whole_volume():
    from tomosynth.metrics.bone import context_thickness, roi_blocks

    vol = _spheres_inside()
    assert not any(np.take(vol, i, axis=a).any() for a in range(3) for i in (0, -1))
    old = local_thickness(vol)  # the whole-volume map of the old code
    whole_marrow, _ = geometry.thickness_known(~vol)
    for box, _ in roi_blocks(split_rois(vol.shape, 8), 16):
        t = context_thickness(lambda c: vol[c], vol.shape, box, halo=2)
        np.testing.assert_allclose(t, old[box], atol=1e-6)
        t = context_thickness(lambda c: ~vol[c], vol.shape, box, halo=2)
        np.testing.assert_array_equal(np.isnan(t), np.isnan(whole_marrow[box]))
        np.testing.assert_allclose(t, whole_marrow[box], atol=1e-6)
    # ROI metrics in blocks of one ROI equal those of the old whole-volume Tb.Th
    for roi, m in roi_metrics(vol, 1.0, 16, progress=False, block=16):
        s = roi.slices
        expected = old[s][vol[s]].mean() if vol[s].any() else np.nan
        assert m["Tb.Th"] == pytest.approx(expected, rel=1e-6, nan_ok=True)


def test_trabecular_rois_slab_wise_equal_whole():
    from tomosynth.metrics.bone import endosteal_envelope, trabecular_rois

    bone, _, _ = _cortical_bone(n=20)
    inside = endosteal_envelope(bone)
    whole = {r.index for r in split_rois(bone.shape, 8) if inside[r.slices].all()}
    assert whole
    for slab in (3, 7, 100):
        assert {r.index for r in trabecular_rois(bone, 8, slab=slab)} == whole


@pytest.mark.parametrize("workers", [1, 3])
def test_streamed_mask_and_otsu_equal_whole_volume(tmp_path, workers):
    """The stack read slice by slice (in one process, or in runs on 3 forked workers):
    scikit-image's Otsu of the whole volume, its mask, and each consecutive-slice SSIM."""
    from skimage.filters import threshold_otsu
    from skimage.metrics import structural_similarity

    from tomosynth.io import write_tiff_slices
    from tomosynth.metrics.bone_stream import read_stack_mask, stack_paths

    rng = np.random.default_rng(4)
    vol = ndi.gaussian_filter(rng.random((13, 20, 24)), 1.0).astype(np.float32)
    vol[5] += 0.3  # an asymmetric stack: one bright slice
    write_tiff_slices(tmp_path / "hr", vol)
    mask, thr, ssim = read_stack_mask(stack_paths(tmp_path, "hr"), workers=workers)
    assert thr == pytest.approx(float(threshold_otsu(vol)), rel=1e-6)
    np.testing.assert_array_equal(mask, vol > threshold_otsu(vol))
    ref = [
        structural_similarity(
            vol[i].astype(np.float64), vol[i + 1].astype(np.float64), data_range=1.0
        )
        for i in range(len(vol) - 1)
    ]
    np.testing.assert_allclose(ssim, ref, rtol=1e-12)
    given, thr2, _ = read_stack_mask(stack_paths(tmp_path, "hr"), threshold=0.6, workers=workers)
    assert thr2 == 0.6
    np.testing.assert_array_equal(given, vol > 0.6)


def test_streamed_mask_names_a_slice_of_another_size(tmp_path):
    from tomosynth.io import write_tiff_slices
    from tomosynth.metrics.bone_stream import read_stack_mask, stack_paths

    write_tiff_slices(tmp_path / "hr", np.zeros((4, 8, 8), np.float32) + np.arange(8) / 8)
    import tifffile

    bad = stack_paths(tmp_path, "hr")[2]
    tifffile.imwrite(bad, np.zeros((8, 9), np.float32))
    for workers in (1, 2):
        with pytest.raises(DataError, match=bad.name):
            read_stack_mask(stack_paths(tmp_path, "hr"), workers=workers)


def test_stack_runs_cover_every_slice_once():
    from tomosynth.metrics.pool import even_runs

    for n, parts in ((1, 4), (7, 3), (13, 12), (100, 7), (5, 50)):
        r = even_runs(n, parts)
        assert [i for a, b in r for i in range(a, b)] == list(range(n))
        assert len(r) == min(n, parts)


def test_correlation_table_agreement_columns_and_relative_errors():
    import pandas as pd

    from tomosynth.metrics.bone_tables import correlation_table, relative_error_table

    rng = np.random.default_rng(1)
    hr = rng.uniform(1.0, 2.0, 12)
    sr, lr = hr * 0.5, hr * 1.1 + rng.normal(0, 0.01, 12)
    rows = [
        {"kind": k, "roi": i, "region": "trabecular", **{m: v[i] for m in METRICS}}
        for k, v in (("hr", hr), ("sr", sr), ("lr", lr))
        for i in range(12)
    ]
    table = pd.DataFrame(rows)
    corr = correlation_table(table)
    row = corr[(corr.kind == "sr") & (corr.metric == "Tb.Th")].iloc[0]
    d = sr - hr
    assert row.bias == pytest.approx(-0.5) and row.mare == pytest.approx(0.5)
    assert row.mae == pytest.approx(np.abs(d).mean())
    assert row.loa_low == pytest.approx(d.mean() - 1.96 * d.std(ddof=1))
    assert row.loa_high == pytest.approx(d.mean() + 1.96 * d.std(ddof=1))
    err = relative_error_table(table).set_index("metric")
    assert list(err.index) == [
        "BV/TV", "BS/BV", "Tb.Th", "Tb.Sp", "Tb.N", "Tb.Th.pm", "Tb.Sp.pm", "Tb.N.pm", "Tb.Pf"
    ]  # fmt: skip
    assert err.loc["Tb.Th", "sr_mare"] == pytest.approx(0.5)
    assert err.loc["Tb.Th", "lr_mare"] == pytest.approx(np.median(np.abs(lr / hr - 1)))
    assert (err["winner"] == "lr").all() and (err["n"] == 12).all()


def test_bland_altman_figure_draws_means_differences_and_limits(tmp_path):
    import pandas as pd

    from tomosynth.metrics.bone_tables import correlation_table
    from tomosynth.plots.bone import bland_altman_figure, plot_bland_altman

    rng = np.random.default_rng(3)
    hr = rng.uniform(0.1, 0.3, 10)
    vals = {"hr": hr, "sr": hr + rng.normal(0.02, 0.01, 10), "lr": hr * 0.8}
    table = pd.DataFrame(
        [{"kind": k, "roi": i, "BV/TV": v[i]} for k, v in vals.items() for i in range(10)]
    )
    full = table.reindex(columns=[*table.columns, *(m for m in METRICS if m not in table)])
    corr = correlation_table(full)
    fig = bland_altman_figure(table, corr, ["BV/TV"])
    ax = fig.axes[0]
    pts = ax.collections[0].get_offsets()
    np.testing.assert_allclose(pts[:, 0], (vals["sr"] + hr) / 2)
    np.testing.assert_allclose(pts[:, 1], vals["sr"] - hr)
    d = vals["sr"] - hr
    levels = sorted(float(line.get_ydata()[0]) for line in ax.get_lines()[:3])
    expected = [d.mean() - 1.96 * d.std(ddof=1), d.mean(), d.mean() + 1.96 * d.std(ddof=1)]
    np.testing.assert_allclose(levels, expected, rtol=1e-9)
    table.to_csv(tmp_path / "t.csv", index=False)
    corr.to_csv(tmp_path / "c.csv", index=False)
    plot_bland_altman(
        tmp_path / "t.csv", tmp_path / "c.csv", tmp_path / "b.png", tmp_path / "b.pdf"
    )
    assert (tmp_path / "b.png").stat().st_size > 0 and (tmp_path / "b.pdf").stat().st_size > 0


@pytest.mark.parametrize("slab, tile", [(3, 5), (8, 8), (1, 100), (40, 2)])
def test_minkowski_tiles_in_z_and_y_equal_the_whole_volume(slab, tile):
    # Tiles bound the memory by the width, not the cross-section (2048^2 slices).
    rng = np.random.default_rng(0)
    m = ndi.gaussian_filter(rng.random((30, 41, 37)), 1.5) > 0.5
    whole = geometry.minkowski_3d(m, slab=0)
    got = geometry.minkowski_3d(m, slab=slab, tile=tile)
    assert got["volume"] == whole["volume"] and got["euler"] == whole["euler"]
    assert got["surface"] == pytest.approx(whole["surface"], rel=1e-6)
    assert got["mean_curvature"] == pytest.approx(whole["mean_curvature"], rel=1e-5)


def test_envelope_slabwise_equals_the_whole_volume():
    from tomosynth.metrics.bone import envelope, envelope_slabwise

    bone, _, _ = _cortical_bone(n=20)
    bone[7:9] = False  # a gap in the cortex along the slab axis
    whole = envelope(bone)
    for slab in (1, 3, 7, 100):
        np.testing.assert_array_equal(envelope_slabwise(bone, slab), whole)


def test_distance_ridge_is_its_definition_voxel_by_voxel():
    # Brute force: c is dropped when some 26-neighbour c' inside the array has
    # d(c') >= d(c) + |c - c'| (its sphere contains c's); border voxels included.
    rng = np.random.default_rng(5)
    vol = ndi.gaussian_filter(rng.standard_normal((9, 11, 10)), 1.2) > 0.0
    d = ndi.distance_transform_edt(vol)
    ref = np.zeros(vol.shape, dtype=bool)
    offs = [np.array(o) for o in np.ndindex(3, 3, 3) if o != (1, 1, 1)]
    for p in np.argwhere(d > 0):
        ref[tuple(p)] = True
        for o in offs:
            q = p + o - 1
            if np.all(q >= 0) and np.all(q < vol.shape):
                if d[tuple(q)] >= d[tuple(p)] + np.linalg.norm(o - 1) - 1e-6:
                    ref[tuple(p)] = False
    np.testing.assert_array_equal(distance_ridge(d), ref)


def test_mean_curvature_counts_edges_shared_by_exactly_two_triangles():
    # Two triangles hinged on the edge (0,0,0)-(0,0,2) at 90 degrees: 1/2 x 2 x pi/2 in
    # magnitude; a third triangle on the same edge makes it non-manifold: skipped.
    verts = np.array([[0, 0, 0], [0, 0, 2], [0, 1, 0], [1, 0, 0], [-1, -1, 0]], dtype=float)
    hinge = np.array([[0, 1, 2], [1, 0, 3]])
    assert abs(geometry.integral_mean_curvature(verts, hinge)) == pytest.approx(np.pi / 2)
    three = np.vstack([hinge, [[0, 1, 4]]])
    assert geometry.integral_mean_curvature(verts, three) == 0.0

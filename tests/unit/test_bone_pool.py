"""ROI blocks of the bone metrics in forked worker processes (tomosynth.metrics.bone)."""

import multiprocessing

import numpy as np
import pytest
from scipy import ndimage as ndi

from tomosynth.errors import ConfigError
from tomosynth.metrics import bone, pool
from tomosynth.metrics.bone import roi_metrics, split_rois, worker_pool
from tomosynth.metrics.geometry import local_thickness

fork_only = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
)


def _asymmetric_bone(shape=(36, 40, 44), seed=3) -> np.ndarray:
    """Smoothed noise thresholded to ~35 % bone: plates and rods of a few voxels, touching
    every face, in a volume whose three sides differ."""
    rng = np.random.default_rng(seed)
    field = ndi.gaussian_filter(rng.normal(size=shape), 2.0)
    return field > np.quantile(field, 0.65)


def _table(rows) -> tuple[list[tuple[int, int, int, int]], np.ndarray]:
    corners = [(r.index, r.z, r.y, r.x) for r, _ in rows]
    values = np.array([[m[k] for k in bone.METRICS] for _, m in rows])
    return corners, values


@fork_only
@pytest.mark.parametrize("tissue", ["roi", "mask"])
def test_pool_equals_one_process_in_roi_order(tissue):
    vol = _asymmetric_bone()
    tis = "roi"
    if tissue == "mask":  # a tissue mask that is not the ROI: a slanted half-space
        z, y, x = np.indices(vol.shape)
        tis = (z + y + x) > 20
    kw = dict(roi_stride=None, tissue=tis, progress=False, block=16)
    blocks = bone.roi_blocks(split_rois(vol.shape, 8), 16)
    assert len(blocks) >= 4
    serial = list(roi_metrics(vol, 0.01, 8, workers=1, **kw))
    pooled = list(roi_metrics(vol, 0.01, 8, workers=3, **kw))
    c1, v1 = _table(serial)
    c3, v3 = _table(pooled)
    assert c3 == c1 == sorted(c1)  # every ROI, in ROI order
    assert len(c3) == len(split_rois(vol.shape, 8))
    np.testing.assert_array_equal(v3, v1)  # bitwise (NaN where NaN)
    assert not pool.SHARED  # the masks are released after the pool


@fork_only
def test_pool_thickness_equals_the_whole_volume_map():
    """Independent reference: Tb.Th of balls away from the faces is the mean of the
    whole-volume local thickness (geometry.local_thickness) over each ROI's bone."""
    from test_bone import _spheres_inside  # balls of radius 2-5 inside a 32^3 volume

    vol = _spheres_inside()
    whole = local_thickness(vol)
    rows = list(roi_metrics(vol, 1.0, 8, progress=False, block=16, workers=2))
    assert len(rows) == 64
    for roi, m in rows:
        s = roi.slices
        expected = whole[s][vol[s]].mean() if vol[s].any() else np.nan
        assert m["Tb.Th"] == pytest.approx(expected, rel=1e-6, nan_ok=True)


def test_one_worker_starts_no_pool(monkeypatch):
    def no_pool(*args, **kwargs):
        raise AssertionError("workers=1 must not start a process pool")

    monkeypatch.setattr(pool.multiprocessing, "get_context", no_pool)
    vol = _asymmetric_bone((16, 20, 24))
    rows = list(roi_metrics(vol, 1.0, 8, progress=False, block=8, workers=1))
    assert len(rows) == len(split_rois(vol.shape, 8))
    with worker_pool(1, vol) as executor:
        assert executor is None
    assert not pool.SHARED


def test_without_fork_runs_in_this_process(monkeypatch):
    monkeypatch.setattr(pool.multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    monkeypatch.setattr(pool.multiprocessing, "get_context", lambda *a: pytest.fail("forked"))
    vol = _asymmetric_bone((16, 20, 24))
    with worker_pool(4, vol) as executor:
        assert executor is None
    rows = list(roi_metrics(vol, 1.0, 8, progress=False, block=8, workers=4))
    serial = list(roi_metrics(vol, 1.0, 8, progress=False, block=8, workers=1))
    np.testing.assert_array_equal(_table(rows)[1], _table(serial)[1])


@pytest.mark.parametrize("workers", [0, -2, 1.5, "2", True, None])
def test_bad_worker_count_is_a_config_error(workers):
    vol = np.zeros((8, 8, 8), dtype=bool)
    with pytest.raises(ConfigError, match="workers"):
        list(roi_metrics(vol, 1.0, 8, progress=False, workers=workers))


@fork_only
def test_minkowski_tiles_on_the_pool_equal_the_whole_volume():
    from tomosynth.metrics.bone import minkowski_pooled
    from tomosynth.metrics.geometry import minkowski_3d

    vol = _asymmetric_bone((20, 24, 28))
    whole = minkowski_3d(vol, slab=0)  # one mesh, one Euler number: no tiles
    one = minkowski_pooled(vol, 1, slab=6, tile=8)
    pooled = minkowski_pooled(vol, 3, slab=6, tile=8)  # 4 x 4 = 16 mesh tiles
    assert pooled == one  # the same tiles summed in the same order: bitwise
    for k, v in whole.items():
        assert pooled[k] == pytest.approx(v, rel=1e-6, abs=1e-6)  # float32 meshes
    assert not pool.SHARED


@fork_only
def test_evaluate_sr_volume_with_workers_writes_the_same_tables(tmp_path):
    import pandas as pd

    from tomosynth.io import write_json, write_tiff_slices
    from tomosynth.metrics.bone_tables import evaluate_sr_volume

    rng = np.random.default_rng(0)
    base = ndi.gaussian_filter(rng.normal(size=(16, 20, 24)), 2.0)
    base = (base - base.min()) / (base.max() - base.min())
    for i, kind in enumerate(("lr", "sr", "hr")):
        noisy = base + rng.normal(0, 0.02 * (i + 1), base.shape)
        write_tiff_slices(tmp_path / "v" / kind, noisy.clip(0, 1).astype(np.float32))
    write_json(tmp_path / "v" / "meta.json", {"hr_voxel_um": 10.0})
    kw = dict(voxel_um=None, roi_size=8, r_max=4, block=8)
    one, rec1 = evaluate_sr_volume(tmp_path / "v", workers=1, **kw)
    two, rec2 = evaluate_sr_volume(tmp_path / "v", workers=2, **kw)
    for key in ("table", "correlations", "consistency"):
        pd.testing.assert_frame_equal(two[key], one[key], check_exact=True)
    assert len(one["table"]) >= 3 * 4 * 3  # lr, sr, hr x several blocks of ROIs


@fork_only
def test_a_dying_worker_fails_the_run_instead_of_hanging(monkeypatch):
    from concurrent.futures.process import BrokenProcessPool

    def killed(*args, **kwargs):  # a worker killed for memory by the batch system
        import os

        os._exit(137)

    monkeypatch.setattr(bone, "_block_rows", killed)  # forked workers inherit the patch
    vol = _asymmetric_bone((16, 20, 24))
    with pytest.raises(BrokenProcessPool):
        list(roi_metrics(vol, 1.0, 8, progress=False, block=8, workers=2))
    assert not pool.SHARED


@fork_only
@pytest.mark.parametrize("workers", [2, 3])
def test_envelopes_and_trabecular_rois_on_workers_equal_one_process(workers):
    """The periosteal envelope and the trabecular ROIs, slab by slab on forked workers
    (written into a shared mask, or returned per slab): the same as the whole volume."""
    from tomosynth.metrics.bone import envelope, envelope_slabwise, trabecular_rois

    vol = _asymmetric_bone((40, 60, 68))
    inner = np.zeros_like(vol)
    inner[:, 14:46, 14:54] = True
    shell = np.zeros_like(vol)
    shell[:, 2:58, 2:66] = True
    shell &= ~inner  # a cortex 12 voxels thick around the trabeculae
    bone_ = shell | (vol & inner)
    whole = envelope(bone_)
    np.testing.assert_array_equal(envelope_slabwise(bone_, slab=7, workers=workers), whole)
    one = trabecular_rois(bone_, 8, cortex_min_thickness=10, slab=5)
    assert 20 < len(one) < 100  # of 280: some inside the cortex, most not
    many = trabecular_rois(bone_, 8, cortex_min_thickness=10, slab=5, workers=workers)
    assert [r.index for r in many] == [r.index for r in one]
    assert not pool.SHARED


@fork_only
def test_jobs_read_the_shared_arrays_the_same_way_with_and_without_workers():
    """One job function serves both: in this process (1 worker) the arrays are in SHARED
    as in a forked worker, and a pool gives SHARED its previous contents back."""
    a, b = np.arange(6), np.arange(6) * 10
    with pool.forked_pool(1, x=a) as p1:
        assert p1 is None and pool.SHARED["x"] is a
        assert pool.pool_map(p1, _sum_of_shared, [(0, 3), (3, 6)]) == [3, 12]
        with pool.forked_pool(2, x=b) as p2:
            assert pool.pool_map(p2, _sum_of_shared, [(0, 3), (3, 6)]) == [30, 120]
        assert pool.SHARED == {"x": a}  # the outer pool's arrays are back
    assert not pool.SHARED


def _sum_of_shared(run: tuple[int, int]) -> int:
    from tomosynth.metrics.pool import SHARED

    return int(SHARED["x"][run[0] : run[1]].sum())

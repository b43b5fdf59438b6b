"""Tests for tomosynth.io: DXchange layout, bad inputs, atomic writes, TIFF/PNG stacks."""

from __future__ import annotations

from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import tifffile

from tomosynth.errors import DataError
from tomosynth.io import (
    Projections,
    ScanInfo,
    inspect_dxchange,
    list_slices,
    read_dxchange,
    read_png_stack,
    read_tiff_stack,
    slice_name,
    write_dxchange,
    write_png,
    write_tiff_slices,
)

N_ANGLES, N_ROWS, N_COLS = 12, 10, 16


def _arrays(seed: int = 0):
    rng = np.random.default_rng(seed)
    data = rng.integers(200, 4000, (N_ANGLES, N_ROWS, N_COLS)).astype(np.uint16)
    flat = rng.integers(4000, 5000, (3, N_ROWS, N_COLS)).astype(np.uint16)
    dark = rng.integers(0, 100, (2, N_ROWS, N_COLS)).astype(np.uint16)
    theta = np.linspace(0.0, np.pi, N_ANGLES, endpoint=False)
    return data, flat, dark, theta


@pytest.fixture
def scan(tmp_path: Path) -> tuple[Path, tuple]:
    arrays = _arrays()
    path = tmp_path / "scan.h5"
    write_dxchange(path, *arrays, attrs={"voxel_um": 0.65, "sim": {"kind": "shale", "seed": 3}})
    return path, arrays


def _write_raw(path: Path, *, skip: str = "", theta=None, flat=None, data=None, units="degrees"):
    """Write a DXchange-like file directly with h5py (to build broken files)."""
    d, f, k, t = _arrays()
    d = d if data is None else data
    f = f if flat is None else flat
    t = np.rad2deg(t) if theta is None else theta
    with h5py.File(path, "w") as h:
        for key, arr in (("data", d), ("data_white", f), ("data_dark", k), ("theta", t)):
            if key != skip:
                h.create_dataset(f"/exchange/{key}", data=arr)
        if skip != "theta" and units is not None:
            h["/exchange/theta"].attrs["units"] = units
    return path


# ---------------------------------------------------------------------------- round trip


def test_round_trip_full_read(scan):
    path, (data, flat, dark, theta) = scan
    proj = read_dxchange(path)
    assert isinstance(proj, Projections)
    assert proj.rows == (0, N_ROWS)
    for got, want in ((proj.data, data), (proj.flat, flat), (proj.dark, dark)):
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want.astype(np.float32))
    np.testing.assert_allclose(proj.theta, theta, rtol=0, atol=1e-12)


def test_layout_is_tomobank_like(scan):
    """Datasets as dxchange reads them; theta stored in degrees with a units attribute."""
    path, (data, flat, dark, theta) = scan
    with h5py.File(path, "r") as h:
        assert h["/exchange/data"].dtype == np.uint16
        assert h["/exchange/data"].shape == data.shape
        assert h["/exchange/data_white"].shape == flat.shape
        assert h["/exchange/data_dark"].shape == dark.shape
        np.testing.assert_allclose(h["/exchange/theta"][()], theta * 180.0 / np.pi, atol=1e-10)
        units = h["/exchange/theta"].attrs["units"]
        assert (units.decode() if isinstance(units, bytes) else units) == "degrees"
        assert h.attrs["voxel_um"] == pytest.approx(0.65)


def test_inspect_reports_shape_theta_and_attrs(scan):
    path, (_, _, _, theta) = scan
    info = inspect_dxchange(path)
    assert isinstance(info, ScanInfo)
    assert (info.n_angles, info.n_rows, info.n_cols) == (N_ANGLES, N_ROWS, N_COLS)
    assert (info.n_flats, info.n_darks) == (3, 2)
    np.testing.assert_allclose(info.theta, theta, atol=1e-12)
    assert info.attrs["voxel_um"] == pytest.approx(0.65)
    assert info.attrs["sim"] == {"kind": "shale", "seed": 3}


@pytest.mark.parametrize(
    ("units", "scale"),
    [("radians", 1.0), ("rad", 1.0), ("degrees", np.pi / 180), (None, np.pi / 180)],
)
def test_theta_units_attribute(tmp_path, units, scale):
    # half a turn in the stored unit
    raw = np.linspace(0.0, np.pi if scale == 1.0 else 180.0, N_ANGLES, endpoint=False)
    path = _write_raw(tmp_path / "u.h5", theta=raw, units=units)
    np.testing.assert_allclose(inspect_dxchange(path).theta, raw * scale, atol=1e-12)


@pytest.mark.parametrize("rows", [(0, 1), (3, 7), (9, 10), (0, N_ROWS)])
def test_partial_rows_equal_rows_of_full_read(scan, rows):
    path, _ = scan
    full = read_dxchange(path)
    part = read_dxchange(path, rows=rows)
    r0, r1 = rows
    assert part.rows == rows
    np.testing.assert_array_equal(part.data, full.data[:, r0:r1])
    np.testing.assert_array_equal(part.flat, full.flat[:, r0:r1])
    np.testing.assert_array_equal(part.dark, full.dark[:, r0:r1])


def test_float_data_round_trip(tmp_path):
    data, flat, dark, theta = _arrays()
    data = data.astype(np.float32) + 0.25
    path = tmp_path / "f.h5"
    write_dxchange(path, data, flat, dark, theta)
    np.testing.assert_array_equal(read_dxchange(path, (2, 4)).data, data[:, 2:4])


# ---------------------------------------------------------------------------- bad input


def _raises(path: Path, func, *args, match: str):
    with pytest.raises(DataError) as err:
        func(path, *args)
    msg = str(err.value)
    assert str(path) in msg, msg
    assert match.lower() in msg.lower(), msg
    return msg


@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.02])
def test_truncated_file(scan, fraction):
    path, _ = scan
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(int(size * fraction))
    for func in (inspect_dxchange, read_dxchange):
        _raises(path, func, match="truncated")


def test_not_hdf5_and_missing_file(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("this is not HDF5\n")
    _raises(text, read_dxchange, match="not a readable HDF5")
    _raises(tmp_path / "absent.h5", inspect_dxchange, match="does not exist")


@pytest.mark.parametrize("key", ["data", "data_white", "data_dark", "theta"])
def test_missing_dataset(tmp_path, key):
    path = _write_raw(tmp_path / "m.h5", skip=key)
    _raises(path, read_dxchange, match=f"missing dataset /exchange/{key}")


def test_theta_of_wrong_length(tmp_path):
    path = _write_raw(tmp_path / "t.h5", theta=np.linspace(0, 180, N_ANGLES - 1, endpoint=False))
    msg = _raises(path, inspect_dxchange, match="/exchange/theta has")
    assert f"{N_ANGLES - 1} angles" in msg and f"{N_ANGLES} projections" in msg


def test_non_finite_theta(tmp_path):
    theta = np.linspace(0, 180, N_ANGLES, endpoint=False)
    theta[4] = np.nan
    _raises(_write_raw(tmp_path / "n.h5", theta=theta), read_dxchange, match="NaN or infinite")


def test_wrong_ndim_and_mismatched_flats(tmp_path):
    data = _arrays()[0]
    _raises(_write_raw(tmp_path / "a.h5", data=data[0]), inspect_dxchange, match="must be 3D")
    flat = np.full((3, N_ROWS, N_COLS + 1), 4000, np.uint16)
    _raises(_write_raw(tmp_path / "b.h5", flat=flat), inspect_dxchange, match="differ from")


def test_all_dark_flats(tmp_path):
    rng = np.random.default_rng(5)
    data, _, _, theta = _arrays()
    dark = rng.poisson(100, (4, N_ROWS, N_COLS)).astype(np.uint16)
    path = tmp_path / "dark.h5"
    # the shutter never opened: flats are dark frames (two noise realisations, one shifted
    # up by a count so that a plain mean comparison would not catch it)
    for flat in (rng.poisson(100, (3, N_ROWS, N_COLS)), dark[:2] + 1, dark[:2] // 2):
        write_dxchange(path, data, flat.astype(np.uint16), dark, theta)
        _raises(path, read_dxchange, match="flat fields are not brighter than dark fields")
    # a weak but real beam (flat 100 counts above a dark of 100 +- 10) is accepted
    # (with projections below the open beam: brighter ones are rejected as swapped datasets)
    weak = rng.poisson(200, (3, N_ROWS, N_COLS)).astype(np.uint16)
    write_dxchange(path, np.minimum(data, 180), weak, dark, theta)
    assert read_dxchange(path, (0, 2)).flat.mean() > 190


def test_nan_counts_are_reported_for_the_chunk_holding_them(tmp_path):
    data, flat, dark, theta = _arrays()
    data = data.astype(np.float32)
    data[5, 6, 3] = np.nan
    path = tmp_path / "nan.h5"
    write_dxchange(path, data, flat, dark, theta)
    _raises(path, read_dxchange, match="NaN or infinite")
    _raises(path, read_dxchange, (4, 8), match="NaN or infinite")
    ok = read_dxchange(path, (0, 6))  # rows without the NaN still read
    assert np.isfinite(ok.data).all()


@pytest.mark.parametrize("rows", [(0, N_ROWS + 1), (-1, 3), (5, 5), (7, 2), (N_ROWS, N_ROWS + 2)])
def test_row_range_out_of_bounds(scan, rows):
    path, _ = scan
    msg = _raises(path, read_dxchange, rows, match="out of bounds")
    assert f"0..{N_ROWS}" in msg


# ---------------------------------------------------------------------------- atomic writes


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_failed_write_leaves_no_partial_file(tmp_path):
    data, flat, dark, theta = _arrays()
    path = tmp_path / "out.h5"
    # attribute h5py cannot store: fails after the datasets were written
    with pytest.raises(TypeError):
        write_dxchange(path, data, flat, dark, theta, attrs={"bad": object()})
    assert _leftovers(tmp_path) == []
    with pytest.raises(DataError, match="theta"):
        write_dxchange(path, data, flat, dark, theta[:-1])
    assert _leftovers(tmp_path) == []


def test_failed_overwrite_keeps_previous_file(scan):
    path, (data, flat, dark, theta) = scan
    before = path.read_bytes()
    with pytest.raises(TypeError):
        write_dxchange(path, data * 0, flat, dark, theta, attrs={"bad": object()})
    assert path.read_bytes() == before
    assert _leftovers(path.parent) == [path.name]


# ---------------------------------------------------------------------------- TIFF / PNG stacks


def test_slice_name():
    assert slice_name(7, "png") == "slice_00007.png"
    assert slice_name(12345, ".tiff") == "slice_12345.tiff"


def test_tiff_round_trip_and_listing(tmp_path):
    rng = np.random.default_rng(1)
    vol = rng.normal(size=(3, 5, 7)).astype(np.float64)
    paths = write_tiff_slices(tmp_path / "t", vol, first_index=98)
    assert [p.name for p in paths] == ["slice_00098.tiff", "slice_00099.tiff", "slice_00100.tiff"]
    assert list_slices(tmp_path / "t", "tiff") == paths
    # independent reader: tifffile directly
    np.testing.assert_array_equal(tifffile.imread(paths[1]), vol[1].astype(np.float32))
    assert tifffile.imread(paths[0]).dtype == np.float32
    stack = read_tiff_stack(tmp_path / "t")
    assert stack.dtype == np.float32 and stack.shape == (3, 5, 7)
    np.testing.assert_array_equal(stack, vol.astype(np.float32))
    np.testing.assert_array_equal(read_tiff_stack([paths[2], paths[0]]), stack[[2, 0]])


def test_tiff_slices_on_threads_are_the_same_files_with_their_sha256(tmp_path, monkeypatch):
    import hashlib
    import threading
    import time

    vol = np.random.default_rng(2).normal(size=(5, 6, 7)).astype(np.float32)
    one: dict[str, str] = {}
    write_tiff_slices(tmp_path / "one", vol, first_index=3, digests=one)
    imwrite, seen = tifffile.imwrite, set()

    def recorded(*args, **kwargs):
        seen.add(threading.get_ident())
        time.sleep(0.02)  # so that one pool thread cannot take every slice
        return imwrite(*args, **kwargs)

    monkeypatch.setattr(tifffile, "imwrite", recorded)
    three: dict[str, str] = {}
    paths = write_tiff_slices(tmp_path / "three", vol, first_index=3, digests=three, threads=3)
    assert [p.name for p in paths] == [f"slice_{i:05d}.tiff" for i in range(3, 8)]
    assert threading.get_ident() not in seen and len(seen) >= 2
    for p in paths:
        data = p.read_bytes()
        assert data == (tmp_path / "one" / p.name).read_bytes()
        assert three[p.name] == one[p.name] == hashlib.sha256(data).hexdigest()
        np.testing.assert_array_equal(tifffile.imread(p), vol[int(p.stem[6:]) - 3])


def test_tiff_stack_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no slice_"):
        list_slices(tmp_path / "empty", "tiff")
    with pytest.raises(DataError, match="does not exist"):
        list_slices(tmp_path / "nowhere", "png")
    folder = tmp_path / "mixed"
    write_tiff_slices(folder, np.zeros((2, 4, 4)))
    tifffile.imwrite(folder / "slice_00002.tiff", np.zeros((4, 5), np.float32))
    with pytest.raises(DataError, match="slice_00002.tiff"):
        read_tiff_stack(folder)


def test_png_round_trip_with_opencv_reference(tmp_path):
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (9, 11), dtype=np.uint8)
    write_png(tmp_path / slice_name(0, "png"), img)
    np.testing.assert_array_equal(
        cv2.imread(str(tmp_path / "slice_00000.png"), cv2.IMREAD_UNCHANGED), img
    )
    # a PNG written by OpenCV reads back identically
    cv2.imwrite(str(tmp_path / "slice_00001.png"), img[::-1])
    stack = read_png_stack(tmp_path)
    assert stack.dtype == np.uint8 and stack.shape == (2, 9, 11)
    np.testing.assert_array_equal(stack[0], img)
    np.testing.assert_array_equal(stack[1], img[::-1])
    picked = read_png_stack(tmp_path, ["slice_00001.png", "slice_00000.png"])
    np.testing.assert_array_equal(picked, stack[::-1])


def test_png_colour_is_converted_to_gray(tmp_path):
    gray = np.arange(30, dtype=np.uint8).reshape(5, 6) * 8
    cv2.imwrite(str(tmp_path / "slice_00000.png"), np.stack([gray] * 3, axis=-1))
    np.testing.assert_array_equal(read_png_stack(tmp_path)[0], gray)


def test_png_errors(tmp_path):
    write_png(tmp_path / "slice_00000.png", np.zeros((4, 4), np.uint8))
    write_png(tmp_path / "slice_00001.png", np.zeros((4, 5), np.uint8))
    with pytest.raises(DataError, match="slice_00001.png"):
        read_png_stack(tmp_path)
    with pytest.raises(DataError, match="slice_00009.png"):
        read_png_stack(tmp_path, ["slice_00000.png", "slice_00009.png"])
    (tmp_path / "slice_00002.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match="slice_00002.png"):
        read_png_stack(tmp_path, ["slice_00002.png"])
    with pytest.raises(DataError, match="uint8"):
        write_png(tmp_path / "x.png", np.zeros((4, 4), np.float32))
    assert not (tmp_path / "x.png").exists()


# ---------------------------------------------------------------------------- physics checks


def test_radians_without_units_attribute_are_rejected_with_what_to_set(tmp_path):
    # a half turn stored in radians, no units attribute: read as degrees it spans 3 degrees
    theta = np.linspace(0.0, np.pi, N_ANGLES, endpoint=False)
    path = _write_raw(tmp_path / "rad.h5", theta=theta, units=None)
    msg = _raises(path, inspect_dxchange, match="spans only")
    assert "theta_units: radians" in msg
    # the override reads it correctly, equal to the file with the attribute
    np.testing.assert_allclose(inspect_dxchange(path, theta_units="radians").theta, theta)
    np.testing.assert_allclose(read_dxchange(path, (0, 1), theta_units="radians").theta, theta)


def test_theta_units_override_must_agree_with_the_attribute(tmp_path):
    path = _write_raw(tmp_path / "deg.h5")  # units="degrees"
    _raises(path, inspect_dxchange, "radians", match="remove theta_units")
    assert inspect_dxchange(path, theta_units="degrees").n_angles == N_ANGLES


def test_degrees_marked_as_radians_are_rejected(tmp_path):
    path = _write_raw(tmp_path / "d.h5", theta=np.linspace(0, 180, N_ANGLES), units="radians")
    msg = _raises(path, inspect_dxchange, match="degrees read as radians")
    assert "theta_units: degrees" in msg


def test_constant_or_mostly_repeated_angles_are_rejected(tmp_path):
    theta = np.repeat([0.0, 90.0, 179.0], N_ANGLES // 3)
    _raises(_write_raw(tmp_path / "r.h5", theta=theta), inspect_dxchange, match="distinct angles")
    _raises(
        _write_raw(tmp_path / "c.h5", theta=np.zeros(N_ANGLES)), inspect_dxchange, match="spans"
    )


def test_unsorted_distinct_angles_are_accepted(tmp_path):
    rng = np.random.default_rng(1)
    theta = rng.permutation(np.linspace(0, 180, N_ANGLES, endpoint=False))
    info = inspect_dxchange(_write_raw(tmp_path / "u.h5", theta=theta))
    np.testing.assert_allclose(info.theta, np.deg2rad(theta))


def test_negative_float_counts_are_rejected(tmp_path):
    data, flat, dark, theta = _arrays()
    path = tmp_path / "neg.h5"
    write_dxchange(path, -data.astype(np.float32), flat, dark, theta)
    msg = _raises(path, read_dxchange, match="negative values")
    assert "/exchange/data " in msg and "raw detector counts" in msg
    # a few slightly negative values (dark-subtracted noise) are tolerated
    noisy = data.astype(np.float32)
    noisy[0, 0, 0] = -3.0
    write_dxchange(path, noisy, flat, dark, theta)
    assert read_dxchange(path).data.min() == -3.0


def test_projections_brighter_than_flats_are_rejected(tmp_path):
    data, flat, dark, theta = _arrays()
    path = tmp_path / "swap.h5"
    # data and data_white swapped: the "flats" are projections, the "data" is the open beam
    write_dxchange(path, np.repeat(flat[:1], N_ANGLES, 0) * 2, data[:3], dark, theta)
    _raises(path, read_dxchange, match="brighter than /exchange/data_white")


def test_directory_as_scan_path(tmp_path):
    _raises(tmp_path, inspect_dxchange, match="is a directory")
    _raises(tmp_path, read_dxchange, match="is a directory")


def test_uncompressed_scan_is_contiguous_and_reads_the_same(tmp_path):
    data, flat, dark, theta = _arrays()
    path = tmp_path / "plain.h5"
    write_dxchange(path, data, flat, dark, theta, compress=False)
    with h5py.File(path, "r") as h:
        for key in ("data", "data_white", "data_dark"):
            ds = h[f"/exchange/{key}"]
            assert ds.compression is None and ds.chunks is None, key
    scan = read_dxchange(path)
    np.testing.assert_array_equal(scan.data, data)
    np.testing.assert_array_equal(scan.flat, flat)
    np.testing.assert_allclose(scan.theta, theta)


def test_write_tiff_slices_digests_are_the_bytes_written(tmp_path):
    import hashlib

    from tomosynth.io import write_tiff_slices

    vol = np.random.default_rng(3).random((3, 17, 23)).astype(np.float32)
    digests: dict[str, str] = {}
    paths = write_tiff_slices(tmp_path / "hashed", vol, first_index=5, digests=digests)
    plain = write_tiff_slices(tmp_path / "plain", vol, first_index=5)
    assert sorted(digests) == ["slice_00005.tiff", "slice_00006.tiff", "slice_00007.tiff"]
    for path, ref, img in zip(paths, plain, vol, strict=True):
        data = path.read_bytes()
        assert data == ref.read_bytes()  # the same bytes as tifffile writing to the file
        assert digests[path.name] == hashlib.sha256(data).hexdigest()
        np.testing.assert_array_equal(tifffile.imread(path), img)


def test_row_checks_share_one_pass_and_match_the_formula(tmp_path):
    """`read_dxchange`'s per-row statistics, reused by `check_rows`, name the same bad rows
    as the formula written out here on the raw arrays (and as a chunk without them)."""
    from tomosynth.io import read_dxchange, write_dxchange
    from tomosynth.scan_checks import bad_detector_rows

    rng = np.random.default_rng(4)
    data = rng.poisson(2000.0, (40, 8, 32)).astype(np.float32)
    flat = rng.poisson(4000.0, (5, 8, 32)).astype(np.float32)
    dark = rng.poisson(100.0, (3, 8, 32)).astype(np.float32)
    data[:, 2, :] = 5000.0  # saturated: every pixel at the chunk's maximum, above the flats
    data[:, 5, :] = 4500.0 + rng.poisson(50.0, (40, 32))  # over-flat, below the maximum
    write_dxchange(tmp_path / "s.h5", data, flat, dark, np.linspace(0, np.pi, 40))
    p = read_dxchange(tmp_path / "s.h5", rows=(0, 8))
    assert p.stats is not None
    np.testing.assert_array_equal(p.stats.data, data.mean(axis=(0, 2), dtype=np.float64))
    np.testing.assert_array_equal(p.stats.data_max, data.max(axis=(0, 2)))
    d = dark.mean(axis=(0, 2), dtype=np.float64)
    beam = flat.mean(axis=(0, 2), dtype=np.float64) - d
    signal = data.mean(axis=(0, 2), dtype=np.float64) - d
    top = data.max()
    expected = {}
    for i in range(8):
        plateau = float(np.mean(data[:, i, :] == top))
        if plateau > 0.5 and top >= beam[i] + d[i]:
            expected[i] = "saturated"
        elif signal[i] / beam[i] > 1.1:
            expected[i] = "transmission"
    assert expected == {2: "saturated", 5: "transmission"}
    found = bad_detector_rows(p)
    assert {r: why.split(":")[0].split(" ")[0] for r, why in found.items()} == expected
    p.stats = None  # as after masking: computed again from the counts
    assert bad_detector_rows(p) == found

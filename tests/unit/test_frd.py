"""FRD v1 through frd-score: our wrapper against frd-score itself and against the metric
written out here with scipy; identical sets give ~0, blur a larger distance; FID-infinity
is blank below its rule."""

import socket

import numpy as np
import pytest
from _frd_reference import frd_v1_by_hand
from PIL import Image
from scipy import ndimage

from tomosynth.metrics import distance as D
from tomosynth.metrics import frd as R
from tomosynth.metrics import frechet as Fr

N = 5  # images per set: pyradiomics takes ~1 s an image whatever the size


def _textures(path, n, sigma, seed, size=32):
    path.mkdir()
    rng = np.random.default_rng(seed)
    files = []
    for i in range(n):
        im = ndimage.gaussian_filter(rng.normal(size=(size, size)), sigma)
        im = (im - im.mean()) / im.std() * 40 + 128
        files.append(str(path / f"slice_{i:05d}.png"))
        Image.fromarray(im.clip(0, 255).astype(np.uint8)).save(files[-1])
    return files


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("frd")
    files = {
        "a": _textures(tmp / "a", N, 2.0, 0),
        "b": _textures(tmp / "b", N, 2.0, 1),  # same texture, other draws
        "blur": _textures(tmp / "blur", N, 3.5, 1),  # the same draws, smoother
    }
    with pytest.MonkeyPatch.context() as mp:  # nothing may be downloaded
        mp.setattr(socket.socket, "connect", lambda *a, **k: pytest.fail("network access"))
        feats = {k: R.features(v) for k, v in files.items()}
    return tmp, files, {k: v[0] for k, v in feats.items()}, feats["a"][1]


def test_feature_space_is_frd_v1(sets):
    _, _, feats, names = sets
    assert R.METRIC_NAME == "FRD v1 (frd-score 1.0.1)"
    assert R.versions()["frd-score"] == "1.0.1" and R.versions()["pyradiomics-bhklab"] == "3.1.4"
    assert feats["a"].shape == (N, 398) and len(names) == 398
    # frd-score's 2D v1 space as it really comes out: 77 original features (18 first order,
    # 22 GLCM, 16 GLRLM, 16 GLSZM, 5 NGTDM), the same for 4 wavelet bands, 13 numeric
    # diagnostics; no LoG: frd-score hands pyradiomics a (1, H, W) volume, and pyradiomics
    # skips LoG on images under 4 voxels in any dimension
    groups = [n.split("_")[0] for n in names]
    assert sum(g in ("firstorder", "glcm", "glrlm", "glszm", "ngtdm") for g in groups) == 77
    assert {g for g in groups if g.startswith("wavelet")} == {
        f"wavelet-{b}" for b in ("LL", "LH", "HL", "HH")
    }
    assert groups.count("diagnostics") == 13 and not any("log-sigma" in n for n in names)


def test_wrapper_equals_independent_computation(sets):
    _, _, feats, _ = sets
    for other in ("b", "blur"):
        expected, fd, keep = frd_v1_by_hand(feats[other], feats["a"])
        assert R.frd_v1(feats[other], feats["a"]) == pytest.approx(expected, rel=1e-5)
        # the fast exact Fréchet distance the bootstrap uses, on the same space
        dist, space = D.frd_v1_distance("cpu")
        assert dist(feats[other], feats["a"]) == pytest.approx(fd, rel=1e-5)
        assert space(feats[other], feats["a"])[0].shape[1] == keep.sum()
        # the vectorised z-scoring is frd-score's own per-column loop, number for number
        for fast, slow in zip(
            R.normalise(feats[other], feats["a"]),
            R.normalise(feats[other], feats["a"], exact=True),
            strict=True,
        ):
            np.testing.assert_array_equal(fast, slow)


def test_identical_sets_give_zero_and_blur_a_larger_distance(sets):
    _, _, feats, _ = sets
    dist, _ = D.frd_v1_distance("cpu")
    assert abs(dist(feats["a"], feats["a"])) < 1e-6  # linear FD of a set with itself
    assert R.frd_v1(feats["a"], feats["a"]) < -5  # ln of ~0 (frd-score's sqrtm round-off)
    real = R.frd_v1(feats["b"], feats["a"])
    blurred = R.frd_v1(feats["blur"], feats["a"])
    assert blurred > real + 1.0  # e^1: the blurred set is farther by a factor > 2.7


@pytest.mark.slow  # frd-score extracts every image again (~15 s on 2 busy cores)
def test_wrapper_equals_frd_score_compute_frd(sets):
    import frd_score

    tmp, files, feats, _ = sets
    for other in ("b", "blur"):
        ours = R.frd_v1(feats[other], feats["a"])
        theirs = frd_score.compute_frd([str(tmp / "a"), str(tmp / other)], num_workers=1)
        assert ours == pytest.approx(theirs, rel=1e-6, abs=1e-9)


def test_fid_inf_blank_below_the_rule_and_reported_above():
    rng = np.random.default_rng(0)
    d = 8
    ref = rng.normal(size=(200, d))
    settings = D.DistanceSettings(bootstrap=0, kid_subsets=2, fid_inf_points=4)
    # smallest N of the fit = round(0.3 * 40) = 12 < 2 x 8: blank, with the reason
    small = D.compare_sets(rng.normal(size=(40, d)), ref, ref, settings)
    assert np.isnan(small["fid_inf"]) and "12 < 2 x feature dim 8" in small["fid_inf_note"]
    # 0.3 * 60 = 18 >= 16: reported, and near the truth (0) compared with the biased FD
    big = D.compare_sets(rng.normal(size=(60, d)), ref, ref, settings)
    assert big["fid_inf_note"] == "" and np.isfinite(big["fid_inf"])
    assert abs(big["fid_inf"]) < big["value"]
    assert "fit 30 < 2 x feature dim 2048" in Fr.fid_inf_validity(100, 2048, 0.3, 2.0)
    assert Fr.fid_inf_validity(20000, 2048, 0.3, 2.0) == ""


def test_separation_marks_differences_within_the_bootstrap_spread():
    import pandas as pd

    t = pd.DataFrame(
        {
            "metric": "m",
            "reference": "train",
            "set": ["real_split/half_a", "s1", "s2", "s3"],
            "value": [1.0, 10.0, 10.1, 12.0],
            "ci_low": [0.5, 9.8, 9.9, 11.9],
            "ci_high": [1.5, 10.2, 10.3, 12.1],
        }
    )
    out = D.mark_separation(t).set_index("set")["vs_next"]
    assert out["s1"].startswith("not separated from s2")  # |0.1| < half-width 0.2
    assert out["s2"].startswith("separated from s3")  # |1.9| >= 0.2
    assert out["s3"] == "" and out["real_split/half_a"] == ""

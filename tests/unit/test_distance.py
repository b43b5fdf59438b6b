"""Fréchet distance, bootstrap, baselines, FID-infinity, the FRD feature set and the bar plot."""

import json

import mpmath
import numpy as np
import pandas as pd
import pytest
from _frd_reference import frd_v1_by_hand
from PIL import Image
from pytorch_fid.fid_score import calculate_frechet_distance
from scipy import ndimage, stats
from skimage.feature import local_binary_pattern

from tomosynth.errors import DataError
from tomosynth.io import list_pngs
from tomosynth.metrics import distance as D
from tomosynth.metrics import features as F
from tomosynth.metrics import frd as R


def _random_cov(rng, d, rank=None, eps=0.0):
    a = rng.normal(size=(d, rank or d))
    return a @ a.T / (rank or d) + eps * np.eye(d)


# --- Fréchet distance ------------------------------------------------------------------------
@pytest.mark.parametrize("d", [2, 3, 16, 64])
def test_frechet_matches_pytorch_fid_full_rank(d):
    rng = np.random.default_rng(d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = _random_cov(rng, d), _random_cov(rng, d)
    ours = D.frechet_distance(mu1, s1, mu2, s2)
    ref = calculate_frechet_distance(mu1, s1, mu2, s2)
    assert ours == pytest.approx(ref, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize(("d", "rank", "eps"), [(16, 4, 1e-6), (64, 10, 1e-6), (64, 63, 1e-8)])
def test_frechet_matches_pytorch_fid_near_singular(d, rank, eps):
    # covariances of rank `rank` plus eps*I: condition numbers up to ~1e8
    rng = np.random.default_rng(rank)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = _random_cov(rng, d, rank, eps), _random_cov(rng, d, rank, eps)
    ours = D.frechet_distance(mu1, s1, mu2, s2)
    ref = calculate_frechet_distance(mu1, s1, mu2, s2)
    assert ours == pytest.approx(ref, rel=1e-6, abs=1e-6)


def test_frechet_rank_deficient_against_high_precision():
    # N < d sample covariances (exactly singular): a 40-digit mpmath reference
    rng = np.random.default_rng(3)
    d = 12
    x, y = rng.normal(size=(5, d)), rng.normal(size=(7, d)) * 1.5
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    mpmath.mp.dps = 40

    def mp_cov(a):  # the covariance in 40 digits: its null space stays exactly null
        c = mpmath.matrix(a.tolist())
        c = c - mpmath.ones(a.shape[0], 1) * (mpmath.ones(1, a.shape[0]) * c) / a.shape[0]
        return c.T * c / (a.shape[0] - 1)

    m1, m2 = mp_cov(x), mp_cov(y)
    e, q = mpmath.eigsy(m1)
    r = q * mpmath.diag([mpmath.sqrt(max(v, 0)) for v in e]) * q.T
    e2, _ = mpmath.eigsy(r * m2 * r)
    tr_sqrt = float(mpmath.fsum([mpmath.sqrt(max(v, 0)) for v in e2]))
    diff = x.mean(0) - y.mean(0)
    trace = float(mpmath.fsum([m1[i, i] + m2[i, i] for i in range(d)]))
    exact = diff @ diff + trace - 2 * tr_sqrt
    assert D.frechet_distance(x.mean(0), s1, y.mean(0), s2) == pytest.approx(exact, rel=1e-9)
    assert D.frechet_distance_features(x, y) == pytest.approx(exact, rel=1e-9)
    ref = calculate_frechet_distance(x.mean(0), s1, y.mean(0), s2)
    assert ref == pytest.approx(exact, rel=1e-6)


def test_frechet_closed_forms():
    rng = np.random.default_rng(0)
    s = _random_cov(rng, 5)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    # equal covariances: squared mean difference
    assert D.frechet_distance(mu1, s, mu2, s) == pytest.approx(((mu1 - mu2) ** 2).sum(), abs=1e-9)
    # diagonal covariances: sum (sqrt a - sqrt b)^2
    a, b = rng.uniform(0.1, 3, 5), rng.uniform(0.1, 3, 5)
    expected = ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert D.frechet_distance(np.zeros(5), np.diag(a), np.zeros(5), np.diag(b)) == pytest.approx(
        expected, rel=1e-12
    )


@pytest.mark.parametrize(("n1", "n2", "d"), [(8, 11, 40), (60, 70, 10), (30, 5, 30)])
def test_feature_path_equals_statistics_path(n1, n2, d):
    rng = np.random.default_rng(n1)
    x, y = rng.normal(size=(n1, d)), rng.normal(size=(n2, d)) + 0.3
    s1, s2 = D.feature_stats(x), D.feature_stats(y)
    ref = calculate_frechet_distance(s1.mu, s1.sigma, s2.mu, s2.sigma)
    assert D.frechet_distance_features(x, y) == pytest.approx(ref, rel=1e-6)


def test_frechet_rejects_mismatched_dims():
    with pytest.raises(DataError):
        D.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(DataError):
        D.frechet_distance_features(np.zeros((1, 3)), np.zeros((4, 3)))


# --- small-sample statistics -----------------------------------------------------------------
def test_bootstrap_ci_contains_full_sample_value_and_is_seeded():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 4)) + 1.0
    y = rng.normal(size=(300, 4))
    full = D.frechet_distance_features(x, y)
    lo, hi = D.bootstrap_ci(x, y, n_boot=200, seed=5)
    assert lo < full < hi
    assert hi - lo < full  # an informative interval, not an arbitrary wide one
    assert D.bootstrap_ci(x, y, n_boot=200, seed=5) == (lo, hi)
    assert D.bootstrap_ci(x, y, n_boot=200, seed=6) != (lo, hi)


def _gaussian_pair(seed, n_x, n_ref, d=16, shift=1.0):
    """x ~ N(mu, I) with |mu| = shift, ref ~ N(0, I): true Fréchet distance shift^2."""
    rng = np.random.default_rng(seed)
    mu = np.zeros(d)
    mu[0] = shift
    return rng.normal(size=(n_x, d)) + mu, rng.normal(size=(n_ref, d))


def test_fid_infinity_keeps_the_full_reference_and_subsamples_only_x():
    x, ref = _gaussian_pair(0, 200, 700)
    calls = []

    def record(a, b):
        calls.append((len(a), len(b), len(np.unique(a, axis=0))))
        return D.frechet_distance_features(a, b)

    _, ns, _ = D.fid_infinity(x, ref, n_points=15, min_fraction=0.1, distance=record)
    assert {c[1] for c in calls} == {700}  # the reference is never subsampled
    assert [c[0] for c in calls] == list(ns) and ns.min() == 20 and ns.max() == 200
    assert all(n == u for n, _, u in calls)  # drawn without replacement
    assert len(ns) == 15 and np.all(np.diff(ns) > 0)


def test_fid_infinity_recovers_a_known_gaussian_distance():
    # Closed form: ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) = 1 for equal covariances.
    # The reference has 20,000 draws (the paper keeps a large training set's statistics);
    # x has 1,000, subsampled from 100. What is left is mostly the sampling noise of x's own
    # mean (cross term 2 (xbar - mu) . mu, sd 2 / sqrt(1000) = 0.063), hence the tolerances:
    # mean of 8 estimates within 0.08 of the truth, every estimate within 0.2 (the previous
    # estimator, subsampling both sets, gave 0.86 +/- 0.33 on a case with true value 1).
    estimates, plain = [], []
    for seed in range(8):
        x, ref = _gaussian_pair(10 + seed, 1000, 20000)
        estimates.append(D.fid_infinity(x, ref, n_points=15, min_fraction=0.1)[0])
        plain.append(D.frechet_distance_features(x[:100], ref))
    estimates = np.array(estimates)
    assert abs(estimates.mean() - 1.0) < 0.08
    assert np.all(np.abs(estimates - 1.0) < 0.2)  # every single estimate, not just the mean
    assert np.mean(plain) > 1.15  # the small-N bias that the extrapolation removes


def test_fid_infinity_of_one_gaussian_is_near_zero_while_small_n_is_not():
    x, ref = _gaussian_pair(2, 400, 20000, shift=0.0)
    f_inf, ns, means = D.fid_infinity(x, ref, n_points=8, min_fraction=0.1, repeats=3)
    assert D.frechet_distance_features(x[:40], ref) > 0.3  # the small-N bias: true value 0
    assert abs(f_inf) < 0.05
    assert means[0] > means[-1]  # larger N, smaller biased distance
    assert np.isnan(D.fid_infinity(x[:2], ref)[0])  # one N only: no line to fit


def test_split_baseline_uses_disjoint_subsets_of_n():
    real = np.arange(40, dtype=float)[:, None] * np.ones((1, 3))
    seen = []

    def record(a, b):
        seen.append((set(a[:, 0]), set(b[:, 0])))
        return 1.0

    value, n = D.split_baseline(real, n=15, repeats=3, seed=0, distance=record)
    assert (value, n) == (1.0, 15)
    assert len(seen) == 3
    for a, b in seen:
        assert len(a) == len(b) == 15 and not a & b
    _, n_cap = D.split_baseline(real, n=35, repeats=1, distance=record)
    assert n_cap == 20  # capped at half of the pool
    _, n_half = D.split_baseline(real, repeats=1, distance=record)
    assert n_half == 20
    with pytest.raises(DataError):
        D.split_baseline(real[:3])


def test_zscore_uses_reference_statistics():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(20, 3)) * [1, 2, 0] + [0, 1, 5]
    x = rng.normal(size=(7, 3))
    z = D.zscore(x, ref)
    sd = ref.std(0, ddof=1)
    np.testing.assert_allclose(z, (x[:, :2] - ref.mean(0)[:2]) / sd[:2])  # constant: dropped


def test_stats_npz_is_readable_by_pytorch_fid(tmp_path):
    from pytorch_fid.fid_score import compute_statistics_of_path

    x = np.random.default_rng(0).normal(size=(9, 4))
    path = tmp_path / "s.npz"
    D.save_stats(path, x, metric="FRD")
    mu, sigma = compute_statistics_of_path(str(path), None, 1, 4, "cpu")
    np.testing.assert_allclose(mu, x.mean(0))
    np.testing.assert_allclose(sigma, np.cov(x, rowvar=False))
    st = D.load_stats(path)
    assert int(st["n"]) == 9 and st["metric"] == "FRD"


# --- FRD feature set -------------------------------------------------------------------------
def test_feature_names_match_dimension():
    names = F.feature_names()
    assert len(names) == F.FEATURE_DIM == 53 and len(set(names)) == 53
    assert "FID" not in F.METRIC_NAME and "FRD" in F.METRIC_NAME


def test_features_first_order_gradient_lbp_against_references():
    rng = np.random.default_rng(0)
    img = (ndimage.gaussian_filter(rng.normal(size=(40, 48)), 2) * 400 + 128).clip(0, 255)
    img = img.astype(np.uint8)
    f = dict(zip(F.feature_names(), F.image_features(img), strict=True))
    x = img / 255.0
    assert f["mean"] == pytest.approx(x.mean())
    assert f["std"] == pytest.approx(x.std())
    assert f["skewness"] == pytest.approx(stats.skew(x.ravel()))
    assert f["kurtosis"] == pytest.approx(stats.kurtosis(x.ravel()))
    assert f["p90"] == pytest.approx(np.percentile(x, 90))
    g = np.hypot(ndimage.sobel(x, 0), ndimage.sobel(x, 1))
    assert f["grad_mean"] == pytest.approx(g.mean())
    lbp = local_binary_pattern(img, 8, 1, method="uniform")
    assert f["lbp_9"] == pytest.approx((lbp == 9).mean())
    spec = [f[f"spectrum_band{i}"] for i in range(F.SPECTRUM_BANDS)]
    assert sum(spec) == pytest.approx(1.0)


def test_glcm_and_spectrum_of_a_checkerboard():
    img = ((np.indices((32, 32)).sum(0) % 2) * 255).astype(np.uint8)
    f = dict(zip(F.feature_names(), F.image_features(img), strict=True))
    # levels 0 and 31: neighbours differ at 0 and 90 degrees (contrast 31^2), agree at 45/135
    assert f["glcm_contrast_d1"] == pytest.approx(31**2 / 2)
    assert f["glcm_contrast_d2"] == pytest.approx(0.0)  # even offsets land on the same colour
    # all power at the Nyquist corner (radius 0.71 cycles/px): the last band
    assert f[f"spectrum_band{F.SPECTRUM_BANDS - 1}"] == pytest.approx(1.0)


def test_features_of_constant_image_are_finite():
    assert np.isfinite(F.image_features(np.full((16, 16), 9, np.uint8))).all()
    with pytest.raises(DataError):
        F.image_features(np.zeros((16, 16), np.float32))


def test_read_gray_names_bad_file(tmp_path):
    bad = tmp_path / "x.png"
    bad.write_text("not an image")
    with pytest.raises(DataError, match="x.png"):
        F.read_gray(bad)


# --- the table and the bar plot --------------------------------------------------------------
def _folder(path, n, sigma, shift, rng, size=32):
    path.mkdir()
    for i in range(n):
        im = ndimage.gaussian_filter(rng.normal(size=(size, size)), sigma)
        im = (im - im.mean()) / im.std() * 40 + 128 + shift
        Image.fromarray(im.clip(0, 255).astype(np.uint8)).save(path / f"slice_{i:05d}.png")
    return [str(f) for f in list_pngs(path)]


@pytest.fixture(scope="module")
def frd_table(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("frd")
    rng = np.random.default_rng(0)
    real = _folder(tmp / "real", 24, 2, 0, rng)
    a = _folder(tmp / "a", 10, 1, 0, rng)
    b = _folder(tmp / "b", 10, 2, 15, rng)
    # FRD v1 (pyradiomics, ~1 s an image) on 3 images per set and reference
    settings = D.DistanceSettings(bootstrap=30, kid_subsets=5, fid_inf_points=3, frd_max_images=3)
    table = D.distance_table(
        "toy",
        {"upscaled/toy/bicubic": ("64 px GAN + bicubic", a), "samples/x": ("256 px GAN", b)},
        {"train": real[:18], "test": real[18:]},
        real,
        stats_dir=tmp / "stats",
        fid_weights=str(tmp / "missing" / "weights.pth"),
        offline_fallback=True,
        settings=settings,
    )
    return table, tmp


def test_distance_table_frd_fallback(frd_table):
    table, tmp = frd_table
    assert list(table.columns) == D.TABLE_COLUMNS
    assert set(table["metric"]) == {R.METRIC_NAME}  # no FID without weights; FRD v1 ranks
    assert R.METRIC_NAME == "FRD v1 (frd-score 1.0.1)"
    assert len(table) == 1 + 2 * 2
    assert table["warning"].str.contains("FRD v1 \\(frd-score 1.0.1\\) reported instead").all()
    gen = table[table["set"] == "samples/x"].set_index("reference")
    # FRD v1 on a seeded draw of 3 images per set and reference, and the table says so
    assert (gen["n_set"] == 3).all() and (gen["n_total"] == 10).all()
    assert (gen["n_ref"] == 3).all() and gen["warning"].str.contains("draw of 3 of 10").all()
    assert (gen["baseline_n"] == 3).all() and (gen["feature_dim"] > 300).all()
    split = table[table["set"] == "real_split/half_a"].iloc[0]
    assert split["n_set"] == split["n_ref"] == 3  # halves of the 6 drawn real images
    # a set of another texture (sigma 1 px, not 2) lies above the real-vs-real baseline;
    # samples/x differs only by a grey shift, which pyradiomics' per-image normalisation
    # (frd-score's v1 setting normalize: true) removes
    other = table[table["set"] == "upscaled/toy/bicubic"]
    assert (other["value"] > other["baseline_same_n"]).all()
    # N = 3 << 2 x ~400 features: FID-infinity is blank, with the rule as the reason
    assert table["fid_inf"].isna().all()
    assert table["fid_inf_note"].str.contains("fid_inf_min_n_per_dim").all()
    # the secondary column: our own 53 features, labelled, on the full sets
    assert np.isfinite(table[D.SECONDARY_COLUMN]).all()


def test_distance_table_values_recomputed_independently(frd_table):
    table, tmp = frd_table

    def feats(tag, k):
        return D.load_stats(tmp / "stats" / f"{tag}_{k}.npz")["features"]

    for ref in ("train", "test"):
        row = table[(table["set"] == "samples/x") & (table["reference"] == ref)].iloc[0]
        # FRD v1 from the cached pyradiomics features, computed here independently
        expected, _fd, keep = frd_v1_by_hand(feats("frd_v1", "samples__x"), feats("frd_v1", ref))
        assert row["value"] == pytest.approx(expected, rel=1e-4)
        assert row["fd"] == pytest.approx(np.exp(expected), rel=1e-3)  # the fast exact FD
        assert row["feature_dim"] == keep.sum()
        # the secondary column: our 53 features z-scored by train (ddof 1), log FD
        train = feats("frd", "train")
        mu, sd = train.mean(0), train.std(0, ddof=1)
        k53 = sd > 1e-4  # the default frd_min_std: degenerate reference features are dropped

        def z(a, mu=mu, sd=sd, k53=k53):
            return ((a - mu) / np.where(k53, sd, 1))[:, k53]

        x, r = z(feats("frd", "samples__x")), z(feats("frd", ref))
        own = calculate_frechet_distance(
            x.mean(0), np.cov(x, rowvar=False), r.mean(0), np.cov(r, rowvar=False)
        )
        assert row[D.SECONDARY_COLUMN] == pytest.approx(np.log(own), rel=1e-6)


def _cheap_features(files):
    """Mean, std and mean gradient magnitude of each image: a stand-in feature extractor."""
    out = []
    for f in files:
        im = np.asarray(Image.open(f), dtype=np.float64)
        gy, gx = np.gradient(im)
        out.append([im.mean(), im.std(), np.hypot(gx, gy).mean()])
    return np.asarray(out)


def _fd_by_hand(a, b):
    """Fréchet distance of two Gaussians fitted to the rows of `a` and `b` (scipy's sqrtm)."""
    from scipy import linalg

    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


@pytest.fixture
def fid_only_outputs(tmp_path, monkeypatch, caplog):
    """distance outputs with FID available (a cheap stand-in) and frd-score not installed."""
    from importlib import metadata
    from types import SimpleNamespace

    def version(dist):
        if dist == "frd-score":
            raise metadata.PackageNotFoundError(dist)
        return metadata.version(dist)

    monkeypatch.setattr(
        R,
        "metadata",
        SimpleNamespace(version=version, PackageNotFoundError=metadata.PackageNotFoundError),
    )
    monkeypatch.setattr(R, "feature_array", lambda files: pytest.fail("FRD v1 features extracted"))
    fake = D._Metric("FID", "fid", _cheap_features, "cheap stand-in")
    monkeypatch.setattr(D, "_fid_metric", lambda *a, **k: (fake, ""))
    rng = np.random.default_rng(1)
    real = _folder(tmp_path / "real", 16, 2, 0, rng)
    gen = _folder(tmp_path / "gen", 8, 1, 10, rng)
    settings = D.DistanceSettings(bootstrap=5, kid_subsets=2, fid_inf_points=2)
    out = tmp_path / "results/metrics/distance"
    with caplog.at_level("WARNING", logger="tomosynth.metrics.distance"):
        table = D.write_distance_outputs(
            out / "toy.csv", out / "toy/stats", "toy", {"samples/x": ("GAN", gen)},
            {"train": real[:12], "test": real[12:]}, real, settings=settings,
        )  # fmt: skip
    return table, out, real, gen, caplog.text


def test_fid_without_the_frd_stack_skips_frd_v1_and_says_why(fid_only_outputs):
    table, _out, real, gen, log = fid_only_outputs
    assert set(table["metric"]) == {"FID"}  # no FRD v1 rows, and no failure
    assert f"{R.METRIC_NAME} not computed: frd-score not installed; the table holds FID" in log
    row = table[(table["set"] == "samples/x") & (table["reference"] == "train")].iloc[0]
    expected = _fd_by_hand(_cheap_features(gen), _cheap_features(real[:12]))
    assert row["value"] == pytest.approx(expected, rel=1e-6)


def test_distance_outputs_scan_column_and_stats_folder_manifest(fid_only_outputs):
    from tomosynth.manifest import MANIFEST_NAME, verify_folder

    table, out, *_ = fid_only_outputs
    csv = pd.read_csv(out / "toy.csv", keep_default_na=False)
    assert len(csv) == len(table) == 3 and (csv["scan"] == "toy").all()
    stats = out / "toy" / "stats"
    manifest = json.loads((stats / MANIFEST_NAME).read_text())
    names = sorted(p.name for p in stats.iterdir() if p.name != MANIFEST_NAME)
    assert sorted(manifest["files"]) == names and "fid_samples__x.npz" in names
    assert [p.name for p in out.rglob(".*")] == []  # no temporary folder left beside it
    assert verify_folder(stats)
    (stats / "fid_train.npz").unlink()
    with pytest.raises(DataError, match="fid_train.npz: missing"):
        verify_folder(stats)


def test_offline_fallback_off_stops_with_location(tmp_path):
    from tomosynth.errors import ConfigError

    f = _folder(tmp_path / "r", 6, 1, 0, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="pt_inception-2015-12-05-6726825d.pth") as err:
        D.distance_table("t", {"s": ("s", f)}, {"train": f}, f, fid_weights="/no/such.pth",
                         offline_fallback=False)  # fmt: skip
    assert "/no/such.pth" in str(err.value) and "evaluate.fid_weights" in str(err.value)


def test_bar_heights_are_the_table_values(frd_table, tmp_path):
    from tomosynth.plots.distance import distance_figure, plot_distance

    table, _ = frd_table
    fig, drawn = distance_figure(table)
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    expected = list(table["value"])  # real split first, then the sets in table order
    assert heights == pytest.approx(expected, rel=1e-12)
    assert R.METRIC_NAME in ax.get_ylabel()
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert all(f"N={n}" in lab for n, lab in zip(table["n_set"], labels, strict=True))
    got = plot_distance(table, tmp_path / "d.png", tmp_path / "d.pdf")
    assert (tmp_path / "d.png").stat().st_size > 0 and (tmp_path / "d.pdf").stat().st_size > 0
    back = pd.DataFrame(json.loads(json.dumps(got))[R.METRIC_NAME])
    np.testing.assert_allclose(back["value"], table["value"])
    assert drawn == got


@pytest.mark.parametrize(("n1", "n2", "d"), [(8, 11, 40), (60, 70, 10)])
def test_torch_path_equals_numpy_path(n1, n2, d):
    rng = np.random.default_rng(n2)
    x, y = rng.normal(size=(n1, d)), rng.normal(size=(n2, d)) * 0.7
    ref = D.frechet_distance_features(x, y)
    assert D.frechet_distance_torch(x, y, "cpu") == pytest.approx(ref, rel=1e-9)
    assert D.distance_function("cpu") is D.frechet_distance_features


@pytest.mark.gpu
def test_torch_path_on_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    rng = np.random.default_rng(0)
    for n, d in [(30, 64), (300, 64)]:
        x, y = rng.normal(size=(n, d)), rng.normal(size=(n, d)) + 0.2
        got = D.distance_function("cuda")(x, y)
        assert got == pytest.approx(D.frechet_distance_features(x, y), rel=1e-9)


def test_cached_features_hit_and_invalidation(tmp_path):
    rng = np.random.default_rng(0)
    files = _folder(tmp_path / "imgs", 3, 1, 0, rng)
    calls = []

    def extract(fs):
        calls.append(len(fs))
        return F.radiomics_features(fs)

    cache = tmp_path / "c.npz"
    first = D.cached_features(files, "FRD", extract, cache)
    again = D.cached_features(files, "FRD", extract, cache)
    np.testing.assert_array_equal(first, again)
    assert calls == [3]  # the second call read the cache
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(files[0])  # content changed
    changed = D.cached_features(files, "FRD", extract, cache)
    assert calls == [3, 3] and not np.array_equal(changed, first)


def test_zscore_treats_rounding_level_spread_as_constant():
    # A percentile of clipped 8-bit images that always lands on one grey value: float
    # rounding gives a std of ~1e-17, which must not become a 1e16 scale factor: the
    # feature is dropped even without a threshold.
    ref = np.full((30, 2), 25.0 / 255.0)
    ref[:, 0] += np.random.default_rng(1).normal(scale=1e-17, size=30)
    ref[:, 1] = np.linspace(0, 1, 30)
    x = np.array([[0.4, 0.5]])
    z = D.zscore(x, ref, min_std=0.0)
    assert z.shape == (1, 1)
    assert z[0, 0] == pytest.approx((0.5 - 0.5) / ref[:, 1].std(ddof=1), abs=1e-12)


def test_real_features_are_extracted_once_and_survive_reruns(tmp_path, monkeypatch):
    """The real pool goes through the extractor once; train/test are row subsets of it; a
    rerun with a fresh stats folder (Snakemake deletes declared outputs) extracts nothing
    real again thanks to the content-addressed cache."""
    rng = np.random.default_rng(5)
    real = _folder(tmp_path / "real", 24, 1, 0, rng)
    gen = _folder(tmp_path / "gen", 10, 2, 15, rng)
    calls = []
    real_extract = F.radiomics_features

    def counting(files):  # the hook: a counter around the real extraction function
        calls.append(list(files))
        return real_extract(files)

    monkeypatch.setattr(F, "radiomics_features", counting)
    v1_calls = []
    v1_extract = R.feature_array

    def v1_counting(files):
        v1_calls.append(list(files))
        return v1_extract(files)

    monkeypatch.setattr(R, "feature_array", v1_counting)
    settings = D.DistanceSettings(bootstrap=5, kid_subsets=3, fid_inf_points=2, frd_max_images=2)

    def run(stats):
        return D.distance_table(
            "toy", {"samples/x": ("GAN", gen)}, {"train": real[:16], "test": real[16:]}, real,
            stats_dir=tmp_path / stats, fid_weights=str(tmp_path / "none.pth"),
            settings=settings, cache_dir=tmp_path / "cache",
        )  # fmt: skip

    first = run("stats1")
    extracted = [f for c in calls for f in c]
    assert sorted(f for f in extracted if f in real) == sorted(real)  # each real image once
    assert sorted(f for f in extracted if f in gen) == sorted(gen)
    # the subsets equal the pool's rows (same values as extracting them separately)
    st = D.load_stats(tmp_path / "stats1" / "frd_train.npz")
    np.testing.assert_array_equal(st["features"], real_extract(real[:16]))
    v1 = [f for c in v1_calls for f in c]
    assert len(v1) == len(set(v1)) == 2 + 2 + 2  # 2 drawn per reference and per set, once
    calls.clear()
    v1_calls.clear()
    second = run("stats2")
    assert calls == [] and v1_calls == []  # nothing extracted again
    pd.testing.assert_frame_equal(first, second)

"""In-sample criteria of generated image sets, held against trivial baselines.

A criterion that a generator which learned nothing also passes shows nothing. So every set
(each generator's samples, and the baselines of :func:`baseline_sets`: the mean real image
plus noise, one real slice repeated plus noise, the training slices blurred by 1 px, the
training slices themselves and the held-out real slices) is measured by the same code,
:func:`set_criteria`, against the held-out real slices, and the thresholds are set so that
the trivial baselines fail at least one criterion while real slices pass all: the
held-out set itself and, more to the point, other real slices of the same core
(``tests/unit/test_criteria.py`` asserts both on the built-in shale, and on a core whose
layers differ along the axis). The tolerances are floors (:data:`THRESHOLDS`) widened by
the real variation of the run's own data (standard errors of set means, or the
training-vs-held-out difference), so a layered core does not fail its own slices.

Everything except the radial profile is measured inside the sample disc (the container
ring, air gap and air are the same in every slice and would dominate): a square crop
inscribed in the disc for the power spectrum, the pore correlation S2, the gradient
anisotropy and the SSIMs, the disc itself for the porosity. Images are 8-bit (uint8
0..255, 2-D, square), so that the numbers can be recomputed from the committed PNGs
(``tomosynth study-check``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, signal
from skimage.filters import threshold_otsu

from tomosynth.errors import DataError
from tomosynth.metrics.geometry import s2_radial

__all__ = [
    "BASELINES",
    "THRESHOLDS",
    "Reference",
    "anisotropy",
    "baseline_sets",
    "crops",
    "median_profile",
    "nn_ssim",
    "power_spectrum",
    "reference",
    "sample_disc",
    "set_criteria",
    "split_real",
]

#: Baseline sets: name -> what it is (the criteria table's column names).
BASELINES = {
    "mean_noise": "(a) mean real image + noise of the real per-pixel spread",
    "repeated_noise": "(b) one real training slice repeated + noise",
    "blurred": "(c) real training slices blurred by 1 px",
    "training": "(d) the training slices themselves (memorisation ceiling)",
    "heldout": "(e) held-out real slices (the target)",
}
#: Tolerances, as floors. The power spectrum bands, porosity and anisotropy widen to Z
#: standard errors of the difference of the set means (from the per-image spread of the
#: set and of the held-out slices); profile r, S2, diversity and memorisation to SPREAD x
#: the difference between two real sets of the run's own data (training vs held-out; for
#: memorisation, the halves of the held-out set). So layers that differ along the core do
#: not fail real slices, and (a)-(c) still fail at least one criterion (module docstring).
#: Keys: profile r (the threshold is at most this), spectrum band ratio factor, porosity
#: difference (absolute), S2 correlation-function difference, anisotropy ratio factor,
#: pairwise-SSIM allowance, nearest-neighbour SSIM allowance; the noise sd of baseline (b)
#: in grey levels.
THRESHOLDS = {
    "profile_r": 0.9,
    "spectrum_factor": 1.5,
    "porosity_abs": 0.05,
    "s2_abs": 0.1,
    "anisotropy_factor": 1.15,
    "diversity_allowance": 0.1,
    "memorisation_allowance": 0.1,
    "repeat_noise_sd": 10.0,
}
SPREAD = 2.0
#: Standard errors of the difference of two set means allowed for per-image statistics.
Z = 3.0
SPECTRUM_BANDS = 4
S2_LAGS = 6
#: A generated ring peak must be within this many px of the real one and reach this
#: fraction of the real peak's prominence.
RING_WINDOW_PX = 2.0
RING_MIN_RELATIVE_PROMINENCE = 0.25
#: The analysis disc is this fraction of the sample's radius (keeps the edge out).
DISC_MARGIN = 0.85


def disc_center(image: np.ndarray) -> tuple[float, float]:
    """Centre (row, col) in px of the bright sample disc: centroid of the pixels above Otsu.

    Parameters
    ----------
    image : (h, w) array
        A slice or the mean of a set of slices (sample and container bright, air dark).
    """
    img = np.asarray(image, dtype=np.float64)
    if img.max() == img.min():
        return (img.shape[0] - 1) / 2.0, (img.shape[1] - 1) / 2.0
    rows, cols = np.nonzero(img > threshold_otsu(img))
    return float(rows.mean()), float(cols.mean())


def profile_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r of two profiles on the same radii (nan if either is constant)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise DataError(f"profiles differ in length: {a.shape} vs {b.shape}")
    if a.std() == 0 or b.std() == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def _peaks(profile: np.ndarray, min_prominence: float) -> tuple[np.ndarray, np.ndarray]:
    # pad with the edge minimum so a peak in the outermost bin can still be found
    padded = np.concatenate([profile, [profile.min()]])
    idx, props = signal.find_peaks(padded, prominence=min_prominence)
    keep = idx < len(profile)
    return idx[keep], props["prominences"][keep]


def ring_check(
    radii: np.ndarray,
    generated: np.ndarray,
    real: np.ndarray,
    window_px: float = RING_WINDOW_PX,
    min_relative_prominence: float = RING_MIN_RELATIVE_PROMINENCE,
) -> dict:
    """Does the container ring of the real profile show in the generated one?

    The real ring is the outermost peak of the real profile whose prominence is at least
    10 % of the profile's range. The generated profile shows it if it has a peak within
    `window_px` of that radius whose prominence is at least `min_relative_prominence` of the
    real peak's.

    Returns
    -------
    dict
        ``real_radius``, ``real_prominence`` (nan when the real profile has no ring),
        ``generated_radius``, ``generated_prominence`` (nan when none is found) and ``shows``.
    """
    real = np.asarray(real, dtype=np.float64)
    gen = np.asarray(generated, dtype=np.float64)
    out = {
        "real_radius": math.nan,
        "real_prominence": math.nan,
        "generated_radius": math.nan,
        "generated_prominence": math.nan,
        "shows": False,
    }
    span = float(real.max() - real.min())
    idx, prom = _peaks(real, 0.1 * span) if span > 0 else (np.array([], int), np.array([]))
    if len(idx) == 0:
        return out
    k = int(np.argmax(radii[idx]))
    out["real_radius"], out["real_prominence"] = float(radii[idx[k]]), float(prom[k])
    gidx, gprom = _peaks(gen, 0.0)
    near = np.abs(radii[gidx] - out["real_radius"]) <= window_px
    if near.any():
        j = int(np.argmax(np.where(near, gprom, -np.inf)))
        out["generated_radius"], out["generated_prominence"] = (
            float(radii[gidx[j]]),
            float(gprom[j]),
        )
        out["shows"] = bool(gprom[j] >= min_relative_prominence * out["real_prominence"])
    return out


def _u8(images: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(images)
    if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] != arr.shape[2]:
        raise DataError(f"{what}: expected square images (n, h, h), got shape {arr.shape}")
    return arr.astype(np.float64)


def split_real(names: list[str], seed: int, heldout_fraction: float) -> tuple[list, list]:
    """Seeded split of real slice names into (training, held-out), both sorted."""
    if len(names) < 4:
        raise DataError(f"need at least 4 real slices to split, got {len(names)}")
    order = np.random.default_rng(seed).permutation(len(names))
    k = min(max(int(round(heldout_fraction * len(names))), 2), len(names) - 2)
    held = sorted(names[i] for i in order[:k])
    return sorted(set(names) - set(held)), held


def sample_disc(train: np.ndarray) -> tuple[tuple[float, float], float]:
    """Centre (row, col) and analysis radius (px) of the sample disc of the real slices.

    The sample's edge is the first radius where the mean image's radial profile falls
    below Otsu's threshold of the mean image (the air gap); the analysis radius is
    :data:`DISC_MARGIN` of it.
    """
    mean = _u8(train, "training slices").mean(axis=0)
    center = disc_center(mean)
    radii, prof = _profile(mean, center)
    below = np.nonzero(prof < threshold_otsu(mean))[0]
    edge = radii[below[0]] - 0.5 if len(below) else radii[-1]
    if edge < 4:
        raise DataError(f"sample disc of radius {edge:.1f} px is too small to measure")
    return center, DISC_MARGIN * float(edge)


def _profile(img: np.ndarray, center) -> tuple[np.ndarray, np.ndarray]:
    h, w = img.shape
    yy, xx = np.indices((h, w), dtype=np.float64)
    r = np.hypot(yy - center[0], xx - center[1])
    n_bins = max(int(min(center[0], center[1], h - 1 - center[0], w - 1 - center[1]) + 0.5), 1)
    idx = r.astype(np.int64)
    keep = idx < n_bins
    sums = np.bincount(idx[keep], weights=img[keep], minlength=n_bins)
    counts = np.bincount(idx[keep], minlength=n_bins)
    ok = counts > 0
    return (np.arange(n_bins) + 0.5)[ok], sums[ok] / counts[ok]


def median_profile(images: np.ndarray, center) -> tuple[np.ndarray, np.ndarray]:
    """Per-image radial profiles (1 px bins), their median over the images per radius."""
    profiles = [_profile(img, center) for img in _u8(images, "images")]
    return profiles[0][0], np.median(np.stack([p for _, p in profiles]), axis=0)


def crops(images: np.ndarray, center, radius: float) -> np.ndarray:
    """The square crop inscribed in the analysis disc of every image, (n, s, s)."""
    half = int(math.floor(radius / math.sqrt(2)))
    r0, c0 = int(round(center[0])), int(round(center[1]))
    arr = _u8(images, "images")
    out = arr[:, r0 - half : r0 + half, c0 - half : c0 + half]
    if out.shape[1] < 8 or out.shape[1] != 2 * half or out.shape[2] != 2 * half:
        raise DataError(f"in-sample crop of {2 * half} px does not fit the images")
    return out


def band_powers(crop_stack: np.ndarray, bands: int = SPECTRUM_BANDS) -> np.ndarray:
    """Per-image radially averaged power spectrum of mean-subtracted, Hann-windowed crops,
    averaged in `bands` equal bands of spatial frequency from 1 cycle per crop to Nyquist:
    ``(n, bands)``."""
    n = crop_stack.shape[-1]
    win = np.outer(np.hanning(n), np.hanning(n))
    x = (crop_stack - crop_stack.mean(axis=(1, 2), keepdims=True)) * win
    power = np.abs(np.fft.fft2(x)) ** 2
    f = np.fft.fftfreq(n) * n
    k = np.hypot(*np.meshgrid(f, f, indexing="ij"))
    edges = np.linspace(1.0, n / 2, bands + 1)
    return np.stack(
        [power[:, (k >= lo) & (k < hi)].mean(axis=1) for lo, hi in itertools.pairwise(edges)],
        axis=1,
    )


def power_spectrum(crop_stack: np.ndarray, bands: int = SPECTRUM_BANDS) -> np.ndarray:
    """The set's mean of :func:`band_powers` per band."""
    return band_powers(crop_stack, bands).mean(axis=0)


def _s2_corr(masks: np.ndarray, lags: int = S2_LAGS) -> tuple[float, np.ndarray]:
    """Porosity and the pore correlation function (S2(r) - phi^2) / (phi - phi^2), r=1..lags."""
    s2 = np.mean([s2_radial(m, r_max=lags)[1] for m in masks], axis=0)
    phi = float(s2[0])
    if phi <= 0 or phi >= 1:
        return phi, np.full(lags, np.nan)
    return phi, (s2[1:] - phi**2) / (phi - phi**2)


def anisotropy(crop_stack: np.ndarray, per_image: bool = False) -> float | np.ndarray:
    """Mean squared vertical over horizontal finite difference (> 1: horizontal streaks), of
    the set (or of each image with `per_image`)."""
    axes = (1, 2) if per_image else None
    gy = (np.diff(crop_stack, axis=1) ** 2).mean(axis=axes)
    gx = (np.diff(crop_stack, axis=2) ** 2).mean(axis=axes)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(gx > 0, gy / np.where(gx > 0, gx, 1.0), np.nan)
    return ratio if per_image else float(ratio)


def _welch_se(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Standard error of the difference of two set means (per column), Welch's form."""

    def var_n(a: np.ndarray) -> np.ndarray:
        return a.var(axis=0, ddof=1) / len(a) if len(a) > 1 else np.zeros(a.shape[1:])

    return np.sqrt(var_n(np.asarray(x, float)) + var_n(np.asarray(y, float)))


def _window(n: int, sigma: float = 1.5, truncate: float = 3.5) -> np.ndarray:
    """Rows: the SSIM Gaussian window (sigma 1.5 px, truncated at 3.5 sigma, as
    :func:`tomosynth.metrics.image.ssim`) at every offset that fits in `n` px, so that
    ``W @ x @ W.T`` is the windowed mean at every valid position."""
    radius = int(truncate * sigma + 0.5)
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k /= k.sum()
    m = n - len(k) + 1
    if m < 1:
        raise DataError(f"in-sample crops of {n} px are smaller than the {len(k)} px window")
    w = np.zeros((m, n))
    for i in range(m):
        w[i, i : i + len(k)] = k
    return w


def _ssim_stats(stack: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = w @ stack @ w.T
    return mu, w @ (stack * stack) @ w.T - mu * mu


def _ssim_of(a, sa, b, sb, w: np.ndarray) -> np.ndarray:
    """Mean SSIM (8-bit range, Gaussian window, population covariance; Wang et al. 2004) of
    images `a` and `b` (broadcastable) with their window means and variances `sa`, `sb`."""
    c1, c2 = (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2
    (ma, va), (mb, vb) = sa, sb
    cov = w @ (a * b) @ w.T - ma * mb
    s = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
    return s.mean(axis=(-2, -1))


def _mean_pairwise(crop_stack: np.ndarray, max_pairs: int = 300, seed: int = 0) -> float:
    """Mean SSIM over (a seeded subset of) pairs of Gaussian-smoothed (1 px) crops: noise
    added to copies of one image does not hide that they are copies."""
    n = len(crop_stack)
    if n < 2:
        return math.nan
    pairs = list(itertools.combinations(range(n), 2))
    if len(pairs) > max_pairs:
        rng = np.random.default_rng(seed)
        pairs = [pairs[i] for i in sorted(rng.choice(len(pairs), max_pairs, replace=False))]
    i, j = np.array(pairs).T
    smooth = ndimage.gaussian_filter(crop_stack, sigma=(0, 1.0, 1.0))
    w = _window(smooth.shape[-1])
    mu, var = _ssim_stats(smooth, w)
    return float(np.mean(_ssim_of(smooth[i], (mu[i], var[i]), smooth[j], (mu[j], var[j]), w)))


def nn_ssim(crop_stack: np.ndarray, train_crops: np.ndarray) -> np.ndarray:
    """Each crop's highest SSIM to any training crop (8-bit range, Gaussian window)."""
    w = _window(crop_stack.shape[-1])
    sa, st = _ssim_stats(crop_stack, w), _ssim_stats(train_crops, w)
    best = np.full(len(crop_stack), -np.inf)
    for k, t in enumerate(train_crops):
        s = _ssim_of(crop_stack, sa, t, (st[0][k], st[1][k]), w)
        best = np.maximum(best, s)
    return best


@dataclass
class Reference:
    """What every set is measured against: the held-out real slices' statistics, the
    training crops (memorisation), the disc and the pore threshold (grey level)."""

    center: tuple[float, float]
    radius: float
    threshold: float
    train_crops: np.ndarray
    radii: np.ndarray
    profile: np.ndarray
    spectrum: np.ndarray
    porosity: float
    s2: np.ndarray
    anisotropy: float
    diversity: float
    nn_ssim: float
    tol: dict
    per_image: dict


def _disc_pixels(images: np.ndarray, center, radius: float) -> np.ndarray:
    h = images.shape[-1]
    yy, xx = np.indices((h, h), dtype=np.float64)
    inside = np.hypot(yy - center[0], xx - center[1]) < radius
    return images[:, inside]


def _measure(images: np.ndarray, center, radius: float, threshold: float) -> dict:
    arr = _u8(images, "images")
    c = crops(arr, center, radius)
    radii, prof = median_profile(arr, center)
    _, s2 = _s2_corr(c < threshold)
    bands = band_powers(c)
    pores = _disc_pixels(arr, center, radius) < threshold
    return {
        "radii": radii,
        "profile": prof,
        "spectrum": bands.mean(axis=0),
        "porosity": float(pores.mean()),
        "s2": s2,
        "anisotropy": anisotropy(c),
        "diversity": _mean_pairwise(c),
        "crops": c,
        # per image, for the standard errors of the set means
        "log_bands": np.log(np.maximum(bands, 1e-300)),
        "porosity_i": pores.mean(axis=1),
        "log_anisotropy_i": np.log(np.maximum(anisotropy(c, per_image=True), 1e-300)),
    }


def _tolerances(train: dict, held: dict, nn_halves: tuple[float, float]) -> dict:
    """Tolerances of :func:`set_criteria`: the floors of :data:`THRESHOLDS` widened to
    :data:`SPREAD` x the differences between two real sets of the run's own data."""
    th = THRESHOLDS
    r = profile_correlation(train["profile"], held["profile"])
    s2 = np.abs(train["s2"] - held["s2"])
    return {
        "profile_r": min(th["profile_r"], r - 0.05) if np.isfinite(r) else th["profile_r"],
        "s2_abs": max(th["s2_abs"], SPREAD * float(np.nanmax(s2)))
        if np.isfinite(s2).any()
        else th["s2_abs"],
        "diversity_allowance": max(
            th["diversity_allowance"], SPREAD * abs(train["diversity"] - held["diversity"])
        ),
        "memorisation_allowance": max(
            th["memorisation_allowance"], SPREAD * abs(nn_halves[0] - nn_halves[1])
        ),
    }


def reference(train: np.ndarray, heldout: np.ndarray) -> Reference:
    """The reference of :func:`set_criteria` from the real training and held-out slices.

    The pore threshold is Otsu's threshold of the training slices' in-disc pixels; the
    tolerances come from :func:`_tolerances`.
    """
    train = _u8(train, "training slices")
    center, radius = sample_disc(train)
    threshold = float(threshold_otsu(_disc_pixels(train, center, radius)))
    m = _measure(heldout, center, radius, threshold)
    m_train = _measure(train, center, radius, threshold)
    train_crops = m_train["crops"]
    nn = nn_ssim(m["crops"], train_crops)
    halves = (float(np.mean(nn[0::2])), float(np.mean(nn[1::2])))
    return Reference(
        center=center,
        radius=radius,
        threshold=threshold,
        train_crops=train_crops,
        radii=m["radii"],
        profile=m["profile"],
        spectrum=m["spectrum"],
        porosity=m["porosity"],
        s2=m["s2"],
        anisotropy=m["anisotropy"],
        diversity=m["diversity"],
        nn_ssim=float(np.mean(nn)),
        tol=_tolerances(m_train, m, halves),
        per_image={k: m[k] for k in ("log_bands", "porosity_i", "log_anisotropy_i")},
    )


def set_criteria(images: np.ndarray, ref: Reference) -> list[dict]:
    """Every criterion of one image set against `ref`: rows ``criterion, value, threshold,
    passed`` (value is the set's; the threshold names the held-out real value)."""
    th = ref.tol
    m = _measure(images, ref.center, ref.radius, ref.threshold)
    rows = []

    def add(name: str, value: float, threshold: str, passed: bool) -> None:
        rows.append(
            {
                "criterion": name,
                "value": float(value),
                "threshold": threshold,
                "passed": bool(passed),
            }
        )

    r = profile_correlation(m["profile"], ref.profile)
    add(
        "radial profile r (median per image)",
        r,
        f">= {th['profile_r']:.3g}",
        np.isfinite(r) and r >= th["profile_r"],
    )
    ring = ring_check(ref.radii, m["profile"], ref.profile)
    add(
        "container ring (median profile), prominence",
        ring["generated_prominence"],
        f"peak within 2 px of real {ring['real_radius']:.1f} px",
        ring["shows"],
    )
    # spectrum, porosity, anisotropy: the floor of THRESHOLDS or Z standard errors of the
    # difference of the two set means (per-image spread), whichever is wider
    fl, pi = THRESHOLDS, ref.per_image
    log_f = np.maximum(
        math.log(fl["spectrum_factor"]), Z * _welch_se(m["log_bands"], pi["log_bands"])
    )
    ratios = m["spectrum"] / ref.spectrum
    for k, (q, f) in enumerate(zip(ratios, np.exp(log_f), strict=True)):
        add(
            f"power spectrum band {k + 1}/{len(ratios)}, ratio to held-out",
            q,
            f"in [{1 / f:.3g}, {f:.3g}]",
            1 / f <= q <= f,
        )
    d = max(fl["porosity_abs"], Z * float(_welch_se(m["porosity_i"], pi["porosity_i"])))
    add(
        "porosity in the disc",
        m["porosity"],
        f"held-out {ref.porosity:.3f} +- {d:.3g}",
        abs(m["porosity"] - ref.porosity) <= d,
    )
    diff = float(np.nanmax(np.abs(m["s2"] - ref.s2))) if np.isfinite(m["s2"]).any() else np.inf
    add(
        f"S2 correlation function, max difference (lags 1-{S2_LAGS} px)",
        diff,
        f"<= {th['s2_abs']:.3g}",
        diff <= th["s2_abs"],
    )
    se = float(_welch_se(m["log_anisotropy_i"], pi["log_anisotropy_i"]))
    f = math.exp(max(math.log(fl["anisotropy_factor"]), Z * se)) if np.isfinite(se) else math.inf
    a = m["anisotropy"]
    add(
        "gradient anisotropy (vertical / horizontal)",
        a,
        f"held-out {ref.anisotropy:.3f} x/ {f:.3g}",
        np.isfinite(a) and ref.anisotropy / f <= a <= ref.anisotropy * f,
    )
    lim = ref.diversity + th["diversity_allowance"]
    add(
        "pairwise SSIM of smoothed crops (diversity)",
        m["diversity"],
        f"<= {lim:.3f}",
        np.isfinite(m["diversity"]) and m["diversity"] <= lim,
    )
    nn = float(np.mean(nn_ssim(m["crops"], ref.train_crops)))
    lim = ref.nn_ssim + th["memorisation_allowance"]
    add("nearest-neighbour SSIM to training (memorisation)", nn, f"<= {lim:.3f}", nn <= lim)
    return rows


def baseline_sets(
    train: np.ndarray, heldout: np.ndarray, n: int, seed: int, noise_sd: float | None = None
) -> dict[str, np.ndarray]:
    """The baseline sets of :data:`BASELINES`, uint8, seeded.

    (a) and (b) have `n` images; (c) and (d) hold every training slice, (e) every held-out
    one. (a): the training slices' mean plus Gaussian noise of their per-pixel standard
    deviation; (b): one training slice plus Gaussian noise of sd `noise_sd` grey levels
    (``THRESHOLDS["repeat_noise_sd"]`` by default); (c): Gaussian blur, sigma 1 px.
    """
    t = _u8(train, "training slices")
    rng = np.random.default_rng(seed)
    sd = THRESHOLDS["repeat_noise_sd"] if noise_sd is None else noise_sd

    def u8(x: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(x), 0, 255).astype(np.uint8)

    one = t[rng.integers(len(t))]
    return {
        "mean_noise": u8(t.mean(0) + rng.normal(0.0, 1.0, (n, *t.shape[1:])) * t.std(0)),
        "repeated_noise": u8(one + rng.normal(0.0, sd, (n, *t.shape[1:]))),
        "blurred": u8(ndimage.gaussian_filter(t, sigma=(0, 1.0, 1.0))),
        "training": u8(t),
        "heldout": u8(_u8(heldout, "held-out slices")),
    }

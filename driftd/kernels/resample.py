"""Resampling kernels for threshold calibration (:mod:`driftd.stats.calibrate`).

Random numbers are drawn outside the kernels (NumPy ``Generator``, seeded by the caller) and
passed in as arrays: a kernel is then a pure function of its inputs, gives the same result
compiled or with ``NUMBA_DISABLE_JIT=1``, and never touches a global random state.

Sorted draws without a sort (:func:`draw_sorted`). The order statistics ``U_(1) ≤ … ≤ U_(m)``
of ``m`` uniforms are ``S_i / S_{m+1}`` for the partial sums ``S_i`` of ``m + 1`` standard
exponential spacings, so ``m + 1`` exponentials give ``m`` sorted uniforms in ``O(m)``, and
the population proxy's quantile function turns them into a sorted window: the reference
sample in the bulk (``sample[floor(U · n)]``, i.e. a bootstrap draw) and generalised-Pareto
tails beyond the sample's extreme order statistics (``tails``, all zeros for the plain
bootstrap).

:func:`null_statistics` computes one drift statistic per resampled window against the
reference, with the glue of the registered tests (:mod:`driftd.stats.numeric`,
:mod:`driftd.stats.binned`) and their kernels — except Wasserstein-1, which
:func:`wasserstein_sorted` computes from the quantile functions in ``O(m log(n/m))`` per window
instead of the ``O(n + m)`` merge (the same number to ~1e-13). The statistic is picked by one
of the integer codes below. The calibration checks the result against the test object on the
first window before trusting it.

Each kernel has a NumPy twin (suffix ``_np``) for the tests.
"""

from __future__ import annotations

import math

import numpy as np

from driftd.arrays import FloatArray
from driftd.kernels import binning, divergence, twosample
from driftd.kernels._jit import kernel

# statistic codes for null_statistics
WASSERSTEIN = 0  # wasserstein_sorted(ref, cur) / scale     (wasserstein: scale 1)
ENERGY = 1  # twosample.energy(ref, cur)
MEAN_SHIFT = 2  # |mean(cur) - center| / scale               (mean_diff)
PSI = 3  # divergence.psi(probs, bin counts, eps)
KL = 4  # divergence.kl(probs, bin counts, eps)
JS = 5  # divergence.js_distance(probs, bin counts)
HELLINGER = 6  # divergence.hellinger(probs, bin counts)
TV = 7  # divergence.total_variation(probs, bin counts)
N_CODES = 8


# Layout of the ``tails`` parameter vector of :func:`draw_sorted` (one GPD per tail; a tail
# probability of 0 switches that tail off, and all zeros is the plain bootstrap).
TAIL_P_LO, TAIL_U_LO, TAIL_XI_LO, TAIL_SIGMA_LO = 0, 1, 2, 3
TAIL_P_HI, TAIL_U_HI, TAIL_XI_HI, TAIL_SIGMA_HI = 4, 5, 6, 7
N_TAIL_PARAMS = 8


@kernel
def gpd_excess(s: float, xi: float, sigma: float) -> float:
    """Excess over the threshold at tail probability ``s`` in (0, 1] of a generalised Pareto
    distribution: ``sigma · (s^-xi - 1) / xi`` (``-sigma · ln s`` for ``xi == 0``)."""
    ls = math.log(s)
    if abs(xi) < 1e-12:
        return -sigma * ls
    return sigma * math.expm1(-xi * ls) / xi


@kernel
def draw_sorted(sample: FloatArray, spacings: FloatArray, tails: FloatArray) -> FloatArray:
    """``len(spacings) - 1`` ascending draws from the sorted ``sample``'s population proxy.

    The sorted uniforms ``U_(i)`` come from the standard exponential ``spacings`` (all > 0);
    ``U`` in the bulk maps to ``sample[floor(U · n)]`` (a bootstrap draw), ``U`` below
    ``tails[TAIL_P_LO]`` to ``u_lo - gpd_excess((U / p_lo), xi_lo, sigma_lo)`` and ``U`` above
    ``1 - tails[TAIL_P_HI]`` to ``u_hi + gpd_excess((1 - U) / p_hi, …)``. With the tail
    thresholds at the sample's order statistics bounding the bulk, the result is ascending.
    """
    m = spacings.shape[0] - 1
    n = sample.shape[0]
    if m <= 0 or n <= 0:
        return np.empty(0, dtype=np.float64)
    out = np.empty(m, dtype=np.float64)
    p_lo = tails[TAIL_P_LO]
    p_hi = tails[TAIL_P_HI]
    total = 0.0
    for i in range(m + 1):
        total += spacings[i]
    acc = 0.0
    for i in range(m):
        acc += spacings[i]
        u = acc / total
        if u < p_lo:
            out[i] = tails[TAIL_U_LO] - gpd_excess(
                u / p_lo, tails[TAIL_XI_LO], tails[TAIL_SIGMA_LO]
            )
        elif p_hi > 0.0 and u > 1.0 - p_hi:
            out[i] = tails[TAIL_U_HI] + gpd_excess(
                (1.0 - u) / p_hi, tails[TAIL_XI_HI], tails[TAIL_SIGMA_HI]
            )
        else:
            j = int(u * n)
            x = sample[j if j < n else n - 1]  # u < 1, but rounding may reach n
            # the bulk stays between the tail thresholds even where u·n rounds across them
            if p_lo > 0.0 and x < tails[TAIL_U_LO]:
                x = tails[TAIL_U_LO]
            if p_hi > 0.0 and x > tails[TAIL_U_HI]:
                x = tails[TAIL_U_HI]
            out[i] = x
    return out


@kernel
def quantile_prefix(a: FloatArray) -> FloatArray:
    """Prefix sums of the sorted reference ``a`` for :func:`wasserstein_sorted`, shape
    ``(n + 1, 2)``: row ``k`` holds ``Σ_{i<k} (a[i] - a[n // 2])`` as a compensated (Neumaier)
    pair ``hi + lo``, so the sum over any index range is accurate to a relative ~1e-16 of that
    range's own sum. Centring on the median keeps the sums small for data far from 0."""
    n = a.shape[0]
    out = np.zeros((n + 1, 2), dtype=np.float64)
    if n == 0:
        return out
    shift = a[n // 2]
    s = 0.0
    c = 0.0
    for i in range(n):
        t = a[i] - shift
        u = s + t
        if abs(s) >= abs(t):
            c += (s - u) + t
        else:
            c += (t - u) + s
        s = u
        out[i + 1, 0] = s
        out[i + 1, 1] = c
    return out


@kernel
def count_below(a: FloatArray, x: float, lo: int) -> int:
    """Number of values of ascending ``a`` that are ``< x``, knowing it is at least ``lo``:
    exponential then binary search from ``lo``."""
    n = a.shape[0]
    if lo >= n or a[lo] >= x:
        return lo
    prev = lo
    step = 1
    k = lo + 1
    while k < n and a[k] < x:
        prev = k
        step *= 2
        k = lo + step
    if k > n:
        k = n
    lo2 = prev + 1
    while lo2 < k:
        mid = (lo2 + k) >> 1
        if a[mid] < x:
            lo2 = mid + 1
        else:
            k = mid
    return lo2


@kernel
def wasserstein_sorted(a: FloatArray, prefix: FloatArray, b: FloatArray) -> float:
    """Wasserstein-1 distance of the sorted reference ``a`` and the sorted window ``b`` — the
    quantity :func:`driftd.kernels.twosample.wasserstein` computes by a merge over both
    samples — in ``O(m log(n/m))`` per window after the ``O(n)`` :func:`quantile_prefix`.

    ``W1 = ∫₀¹ |Qa(u) - Qb(u)| du`` with the empirical quantile functions. On
    ``u ∈ (j/m, (j+1)/m]`` the window's quantile is the constant ``c = b[j]`` and the
    reference's is non-decreasing, so the integral splits where ``Qa`` reaches ``c`` (at
    ``u = #{a < c} / n``) into two one-signed integrals of ``Qa``, read off the prefix sums:
    ``∫₀ᵘ Qa = (Σ_{i<k} a[i] + (u n - k) a[k]) / n`` with ``k = floor(u n)``. Every reference
    access moves forward, so the reference is streamed, not searched. Both samples must be
    finite; ``b`` may reach beyond ``a``'s range.
    """
    n = a.shape[0]
    m = b.shape[0]
    if n == 0 or m == 0:
        return np.nan
    shift = a[n // 2]
    inv_n = 1.0 / n
    inv_m = 1.0 / m
    q = n // m
    r = n - q * m
    # state at u0 = j/m: k0 = floor(j n / m), rem0 = j n - k0 m; A0 = n ∫₀^u0 (Qa - shift)
    k0 = 0
    rem0 = 0
    a0_hi = 0.0
    a0_lo = 0.0
    k_star = 0  # #{a < c}, non-decreasing in j
    acc = 0.0
    for j in range(m):
        c = b[j] - shift
        k1 = k0 + q
        rem1 = rem0 + r
        if rem1 >= m:
            rem1 -= m
            k1 += 1
        # n ∫₀^u1 (Qa - shift) as hi + lo
        a1_hi = prefix[k1, 0]
        a1_lo = prefix[k1, 1]
        if rem1 > 0:
            a1_lo += (rem1 * inv_m) * (a[k1] - shift)
        k_star = count_below(a, b[j], k_star)
        # the split point p = k_star / n, clipped to [u0, u1] (compared in units of 1/(n m))
        km = k_star * m
        if km <= k0 * m + rem0:
            below = 0.0
            above = (a1_hi - a0_hi) + (a1_lo - a0_lo)
            width_below = 0.0
            width_above = 1.0
        elif km >= k1 * m + rem1:
            below = (a1_hi - a0_hi) + (a1_lo - a0_lo)
            above = 0.0
            width_below = 1.0
            width_above = 0.0
        else:
            p_hi = prefix[k_star, 0]
            p_lo = prefix[k_star, 1]
            below = (p_hi - a0_hi) + (p_lo - a0_lo)
            above = (a1_hi - p_hi) + (a1_lo - p_lo)
            # widths in units of 1/m: (k_star - u0 n) / n · m
            width_below = (km - (k0 * m + rem0)) * inv_n
            width_above = 1.0 - width_below
        # below: Qa < c, so ∫ (c - Qa); above: Qa >= c, so ∫ (Qa - c); both scaled by n
        acc += max(c * width_below * n * inv_m - below, 0.0)
        acc += max(above - c * width_above * n * inv_m, 0.0)
        k0 = k1
        rem0 = rem1
        a0_hi = a1_hi
        a0_lo = a1_lo
    return float(acc * inv_n)


@kernel
def window_statistic(
    code: int,
    sample: FloatArray,
    prefix: FloatArray,
    cur: FloatArray,
    edges: FloatArray,
    probs: FloatArray,
    center: float,
    scale: float,
    eps: float,
) -> float:
    """Statistic ``code`` of the sorted window ``cur`` against the reference (its sorted
    ``sample`` and that sample's :func:`quantile_prefix`, its bins ``edges``/``probs``, its
    ``center`` and ``scale``); NaN for an empty window or an unknown code."""
    m = cur.shape[0]
    if m == 0:
        return np.nan
    if code == WASSERSTEIN:
        return wasserstein_sorted(sample, prefix, cur) / scale
    if code == ENERGY:
        return twosample.energy(sample, cur)
    if code == MEAN_SHIFT:
        acc = 0.0
        for i in range(m):
            acc += cur[i]
        return float(abs(acc / m - center) / scale)
    if code < PSI or code >= N_CODES:
        return np.nan
    counts = binning.bin_counts_sorted(cur, edges).astype(np.float64)
    if code == PSI:
        return divergence.psi(probs, counts, eps)
    if code == KL:
        return divergence.kl(probs, counts, eps)
    if code == JS:
        return divergence.js_distance(probs, counts)
    if code == HELLINGER:
        return divergence.hellinger(probs, counts)
    return divergence.total_variation(probs, counts)


@kernel
def null_statistics(
    sample: FloatArray,
    prefix: FloatArray,
    spacings: FloatArray,
    tails: FloatArray,
    code: int,
    edges: FloatArray,
    probs: FloatArray,
    center: float,
    scale: float,
    eps: float,
) -> FloatArray:
    """One statistic per row of ``spacings`` (shape ``(rows, m + 1)``): the window is ``m``
    sorted draws from the population proxy (:func:`draw_sorted`), compared with the reference
    (``sample``, ``edges``/``probs``, ``center``/``scale``) by :func:`window_statistic`."""
    rows = spacings.shape[0]
    out = np.empty(rows, dtype=np.float64)
    for r in range(rows):
        cur = draw_sorted(sample, spacings[r], tails)
        out[r] = window_statistic(code, sample, prefix, cur, edges, probs, center, scale, eps)
    return out


# --------------------------------------------------------------------------- NumPy twins


def gpd_excess_np(s: float, xi: float, sigma: float) -> float:
    """NumPy twin of :func:`gpd_excess`."""
    if abs(xi) < 1e-12:
        return float(-sigma * np.log(s))
    return float(sigma * np.expm1(-xi * np.log(s)) / xi)


def draw_sorted_np(sample: FloatArray, spacings: FloatArray, tails: FloatArray) -> FloatArray:
    """NumPy twin of :func:`draw_sorted` (same left-to-right sums, so the same draws)."""
    x = np.asarray(sample, dtype=np.float64)
    sp = np.asarray(spacings, dtype=np.float64)
    n = x.shape[0]
    if sp.shape[0] <= 1 or n <= 0:
        return np.empty(0, dtype=np.float64)
    c = np.cumsum(sp)
    u = c[:-1] / c[-1]
    out: FloatArray = x[np.minimum((u * n).astype(np.int64), n - 1)]
    p_lo, u_lo, xi_lo, s_lo, p_hi, u_hi, xi_hi, s_hi = (float(t) for t in tails)
    if p_lo > 0.0:
        out = np.maximum(out, u_lo)
    if p_hi > 0.0:
        out = np.minimum(out, u_hi)
    lo = u < p_lo
    hi = ~lo & (p_hi > 0.0) & (u > 1.0 - p_hi)
    out[lo] = [u_lo - gpd_excess_np(v / p_lo, xi_lo, s_lo) for v in u[lo]]
    out[hi] = [u_hi + gpd_excess_np((1.0 - v) / p_hi, xi_hi, s_hi) for v in u[hi]]
    return out


def quantile_prefix_np(a: FloatArray) -> FloatArray:
    """NumPy twin of :func:`quantile_prefix` (plain cumulative sums, ``lo`` column 0)."""
    x = np.asarray(a, dtype=np.float64)
    out = np.zeros((x.shape[0] + 1, 2), dtype=np.float64)
    if x.shape[0]:
        out[1:, 0] = np.cumsum(x - x[x.shape[0] // 2])
    return out


def wasserstein_sorted_np(a: FloatArray, prefix: FloatArray, b: FloatArray) -> float:
    """NumPy twin of :func:`wasserstein_sorted`: ``∫₀¹ |Qa - Qb|`` summed exactly over the
    pooled breakpoints ``i/n`` and ``j/m`` (in integer units of ``1/(n m)``); ``prefix`` is
    accepted for the same signature and not used."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    n = x.shape[0]
    m = y.shape[0]
    if n == 0 or m == 0:
        return math.nan
    t = np.union1d(np.arange(n + 1, dtype=np.int64) * m, np.arange(m + 1, dtype=np.int64) * n)
    start = t[:-1]
    width = np.diff(t)
    # on (t_i, t_i+1] both quantile functions are constant: a[t_i // m], b[t_i // n]
    return float(np.sum(np.abs(x[start // m] - y[start // n]) * width) / (n * m))


def window_statistic_np(
    code: int,
    sample: FloatArray,
    prefix: FloatArray,
    cur: FloatArray,
    edges: FloatArray,
    probs: FloatArray,
    center: float,
    scale: float,
    eps: float,
) -> float:
    """NumPy twin of :func:`window_statistic`."""
    if cur.shape[0] == 0:
        return math.nan
    if code == WASSERSTEIN:
        return wasserstein_sorted_np(sample, prefix, cur) / scale
    if code == ENERGY:
        return twosample.energy_np(sample, cur)
    if code == MEAN_SHIFT:
        return abs(float(np.mean(cur)) - center) / scale
    if code < PSI or code >= N_CODES:
        return math.nan
    counts = binning.bin_counts_np(cur, edges).astype(np.float64)
    if code == PSI:
        return divergence.psi_np(probs, counts, eps)
    if code == KL:
        return divergence.kl_np(probs, counts, eps)
    if code == JS:
        return divergence.js_distance_np(probs, counts)
    if code == HELLINGER:
        return divergence.hellinger_np(probs, counts)
    return divergence.total_variation_np(probs, counts)


def null_statistics_np(
    sample: FloatArray,
    prefix: FloatArray,
    spacings: FloatArray,
    tails: FloatArray,
    code: int,
    edges: FloatArray,
    probs: FloatArray,
    center: float,
    scale: float,
    eps: float,
) -> FloatArray:
    """NumPy twin of :func:`null_statistics`."""
    return np.array(
        [
            window_statistic_np(
                code,
                sample,
                prefix,
                draw_sorted_np(sample, row, tails),
                edges,
                probs,
                center,
                scale,
                eps,
            )
            for row in np.asarray(spacings, dtype=np.float64)
        ],
        dtype=np.float64,
    )

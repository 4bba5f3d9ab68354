"""Two-sample rank statistics by one merge over two *sorted* samples, ``O(n + m)``.

Every kernel takes ``a`` (reference) and ``b`` (current), both ascending. NaN values are
ignored defensively: ``np.sort`` puts them last, and the kernels only read the non-NaN prefix.
An empty sample (after that) gives NaN. Ties are handled exactly as scipy does:

* empirical CDFs are right-continuous, evaluated at every pooled value
  (``searchsorted(..., side="right") / n``, as in ``scipy.stats.ks_2samp`` and
  ``scipy.stats.wasserstein_distance``);
* ranks are mid-ranks (``scipy.stats.rankdata(method="average")``), as in
  ``scipy.stats.cramervonmises_2samp`` and the default (``variant="midrank"``)
  ``scipy.stats.anderson_ksamp``.

Each kernel has a plain-NumPy twin (suffix ``_np``) written the way scipy writes it; tests
check one against the other and both against scipy.
"""

from __future__ import annotations

import math

import numpy as np

from driftd.arrays import FloatArray
from driftd.kernels._jit import kernel


@kernel
def valid_len(a: FloatArray) -> int:
    """Length of the non-NaN prefix of a sorted array (NaN sort last)."""
    n = a.shape[0]
    while n > 0 and np.isnan(a[n - 1]):
        n -= 1
    return int(n)


@kernel
def gallop_left(x: FloatArray, v: float, lo: int, hi: int) -> int:
    """First index ``k`` in ``[lo, hi)`` with ``x[k] >= v`` (``hi`` if none), for ascending
    ``x`` with ``x[lo] < v``: exponential then binary search, ``O(log(k - lo))``."""
    prev = lo
    k = lo + 1
    step = 1
    while k < hi and x[k] < v:
        prev = k
        step *= 2
        k = lo + step
    if k > hi:
        k = hi
    lo2 = prev + 1
    while lo2 < k:
        mid = (lo2 + k) >> 1
        if x[mid] < v:
            lo2 = mid + 1
        else:
            k = mid
    return lo2


@kernel
def ks_statistic(a: FloatArray, b: FloatArray) -> float:
    """Two-sided two-sample Kolmogorov–Smirnov statistic ``max |F_a - F_b|``.

    ``F_a - F_b`` only rises along a run of ``a`` values with no ``b`` value in between (and
    only falls along a run of ``b`` values), so its extremes sit at run ends: runs are skipped
    by galloping, ``O(r log((n + m) / r))`` for ``r`` runs — a 100k reference against a 5k
    window costs about what the window does.
    """
    n1 = valid_len(a)
    n2 = valid_len(b)
    if n1 == 0 or n2 == 0:
        return np.nan
    i = 0
    j = 0
    dmax = 0.0
    dmin = 0.0
    # once one sample is exhausted the difference moves monotonically to 0: nothing to record
    while i < n1 and j < n2:
        ai = a[i]
        bj = b[j]
        if ai < bj:
            i = gallop_left(a, bj, i, n1)
            diff = i / n1 - j / n2
            if diff > dmax:
                dmax = diff
        elif bj < ai:
            j = gallop_left(b, ai, j, n2)
            diff = i / n1 - j / n2
            if diff < dmin:
                dmin = diff
        else:  # a value present in both samples
            while i < n1 and a[i] == ai:
                i += 1
            while j < n2 and b[j] == ai:
                j += 1
            diff = i / n1 - j / n2
            if diff > dmax:
                dmax = diff
            elif diff < dmin:
                dmin = diff
    return max(dmax, min(-dmin, 1.0))


@kernel
def cdf_distances(a: FloatArray, b: FloatArray) -> tuple[float, float]:
    """``(wasserstein_1, energy_distance)`` between the empirical distributions.

    ``W1 = ∫ |F_a - F_b|`` and ``energy = sqrt(2 ∫ (F_a - F_b)^2)`` (scipy's definitions),
    both integrated exactly over the pooled sorted values. Runs of one sample between two
    values of the other are walked in a tight inner loop (the usual case when a large
    reference meets a small window).
    """
    n1 = valid_len(a)
    n2 = valid_len(b)
    if n1 == 0 or n2 == 0:
        return np.nan, np.nan
    w1 = 0.0
    l2 = 0.0
    i = 0
    j = 0
    z = min(a[0], b[0])
    while i < n1 and a[i] <= z:
        i += 1
    while j < n2 and b[j] <= z:
        j += 1
    prev = z
    diff = i / n1 - j / n2  # F_a - F_b on [prev, next pooled value)
    while i < n1 or j < n2:
        if j < n2 and (i >= n1 or b[j] < a[i]):
            # run of b values strictly below a[i] (or to the end of b)
            lim = a[i] if i < n1 else np.inf
            while j < n2 and (i >= n1 or b[j] < lim):  # (an infinite value: no limit)
                z = b[j]
                delta = z - prev
                w1 += abs(diff) * delta
                l2 += diff * diff * delta
                j += 1
                while j < n2 and b[j] == z:
                    j += 1
                diff = i / n1 - j / n2
                prev = z
        elif i < n1 and (j >= n2 or a[i] < b[j]):
            lim = b[j] if j < n2 else np.inf
            while i < n1 and (j >= n2 or a[i] < lim):
                z = a[i]
                delta = z - prev
                w1 += abs(diff) * delta
                l2 += diff * diff * delta
                i += 1
                while i < n1 and a[i] == z:
                    i += 1
                diff = i / n1 - j / n2
                prev = z
        else:  # a[i] == b[j]
            z = a[i]
            delta = z - prev
            w1 += abs(diff) * delta
            l2 += diff * diff * delta
            while i < n1 and a[i] == z:
                i += 1
            while j < n2 and b[j] == z:
                j += 1
            diff = i / n1 - j / n2
            prev = z
    return w1, math.sqrt(2.0) * math.sqrt(l2)


@kernel
def wasserstein(a: FloatArray, b: FloatArray) -> float:
    """Wasserstein-1 distance (``scipy.stats.wasserstein_distance``): the same number as
    ``cdf_distances(a, b)[0]``, bit for bit.

    A window meets a larger reference, so the pooled values are walked as runs of reference
    values up to each window value, with the window's CDF fixed along a run: one branch per
    run instead of one per value. Ties are not skipped but summed as zero-width terms,
    ``|F_a - F_b| * 0``, which leave the running sum exactly as it was; the non-zero terms come
    in the same order as in :func:`cdf_distances`, so the sum rounds the same way. Samples
    made mostly of ties (counts) take :func:`cdf_distances`, which skips them; infinite values too
    (``inf - inf`` would not be a zero width).
    """
    n1 = valid_len(a)
    n2 = valid_len(b)
    if n1 == 0 or n2 == 0:
        return np.nan
    if not (np.isfinite(a[0]) and np.isfinite(a[n1 - 1])):
        return cdf_distances(a, b)[0]
    if not (np.isfinite(b[0]) and np.isfinite(b[n2 - 1])):
        return cdf_distances(a, b)[0]
    ties = 0
    probes = 0
    for k in range(0, n1 - 1, max(1, (n1 - 1) // 32)):
        probes += 1
        if a[k] == a[k + 1]:
            ties += 1
    if ties * 4 > probes * 3:  # mostly ties (counts): skipping them is cheaper
        return cdf_distances(a, b)[0]
    w1 = 0.0
    i = 0
    prev = min(a[0], b[0])
    for j in range(n2):
        bj = b[j]
        fb = j / n2
        while i < n1 and a[i] <= bj:  # equal values: the reference's first, as zero widths
            z = a[i]
            w1 += abs(i / n1 - fb) * (z - prev)
            prev = z
            i += 1
        w1 += abs(i / n1 - fb) * (bj - prev)
        prev = bj
    while i < n1:
        z = a[i]
        w1 += abs(i / n1 - 1.0) * (z - prev)
        prev = z
        i += 1
    return w1


@kernel
def energy(a: FloatArray, b: FloatArray) -> float:
    """Energy distance (``scipy.stats.energy_distance``)."""
    return cdf_distances(a, b)[1]


@kernel
def cvm_u(a: FloatArray, b: FloatArray) -> float:
    """Anderson's ``U = n Σ (r(x_i) - i)^2 + m Σ (r(y_j) - j)^2`` with mid-ranks.

    Mid-ranks are half-integers, so ``2 (r - i)`` is an integer: the two sums are accumulated
    exactly in int64 and ``U`` is rounded once. (scipy sums floats; the two agree to ~1e-15
    relative.) ``T = U / (n m (n + m)) - (4 n m - 1) / (6 (n + m))`` is
    :func:`cvm_statistic`.
    """
    n1 = valid_len(a)
    n2 = valid_len(b)
    if n1 == 0 or n2 == 0:
        return np.nan
    i = 0
    j = 0
    sa = 0  # Σ (2 (r - i))^2 over a, exact
    sb = 0
    while i < n1 or j < n2:
        if j >= n2 or (i < n1 and a[i] <= b[j]):
            z = a[i]
        else:
            z = b[j]
        start = i + j  # pooled values strictly below z
        i0 = i
        j0 = j
        while i < n1 and a[i] <= z:
            i += 1
        while j < n2 and b[j] <= z:
            j += 1
        tied = (i - i0) + (j - j0)
        base = 2 * start + tied + 1  # 2 * midrank of the tie group
        for k in range(i0 + 1, i + 1):
            d = base - 2 * k
            sa += d * d
        for k in range(j0 + 1, j + 1):
            d = base - 2 * k
            sb += d * d
    return (n1 * float(sa) + n2 * float(sb)) / 4.0


@kernel
def cvm_statistic(a: FloatArray, b: FloatArray) -> float:
    """Two-sample Cramér–von Mises ``T`` (``scipy.stats.cramervonmises_2samp().statistic``)."""
    n1 = valid_len(a)
    n2 = valid_len(b)
    if n1 == 0 or n2 == 0:
        return np.nan
    u = cvm_u(a, b)
    k = float(n1) * float(n2)
    nn = float(n1 + n2)
    return u / (k * nn) - (4.0 * k - 1.0) / (6.0 * nn)


@kernel
def ad_midrank_a2kn(a: FloatArray, b: FloatArray) -> float:
    """Scholz–Stephens ``A²_akN`` (midrank version, eq. 7) for two samples, unstandardised.

    NaN when a sample is empty or the pooled sample has fewer than two distinct values.
    """
    n1 = valid_len(a)
    n2 = valid_len(b)
    if n1 == 0 or n2 == 0:
        return np.nan
    nn = n1 + n2
    i = 0
    j = 0
    acc_a = 0.0
    acc_b = 0.0
    distinct = 0
    while i < n1 or j < n2:
        if j >= n2 or (i < n1 and a[i] <= b[j]):
            z = a[i]
        else:
            z = b[j]
        start = i + j
        i0 = i
        j0 = j
        while i < n1 and a[i] <= z:
            i += 1
        while j < n2 and b[j] <= z:
            j += 1
        distinct += 1
        fa = i - i0
        fb = j - j0
        lj = float(fa + fb)
        bj = start + lj / 2.0
        denom = bj * (nn - bj) - nn * lj / 4.0
        ma = i - fa / 2.0
        mb = j - fb / 2.0
        if denom > 0.0:  # 0 only when one tie group holds everything (no distinct values)
            w = lj / float(nn)
            da = nn * ma - bj * n1
            db = nn * mb - bj * n2
            acc_a += w * (da * da) / denom
            acc_b += w * (db * db) / denom
    if distinct < 2:
        return np.nan
    return (acc_a / n1 + acc_b / n2) * ((nn - 1.0) / nn)


# --------------------------------------------------------------------------- NumPy twins


def _clean_sorted(x: FloatArray) -> FloatArray:
    x = np.asarray(x, dtype=np.float64)
    return np.sort(x[~np.isnan(x)])


def ks_statistic_np(a: FloatArray, b: FloatArray) -> float:
    """NumPy twin of :func:`ks_statistic` (scipy's searchsorted formulation)."""
    a = _clean_sorted(a)
    b = _clean_sorted(b)
    if a.size == 0 or b.size == 0:
        return math.nan
    pooled = np.concatenate([a, b])
    cdf1 = np.searchsorted(a, pooled, side="right") / a.size
    cdf2 = np.searchsorted(b, pooled, side="right") / b.size
    diffs = cdf1 - cdf2
    return float(max(diffs.max(), np.clip(-diffs.min(), 0.0, 1.0)))


def _cdf_gaps(a: FloatArray, b: FloatArray) -> tuple[FloatArray, FloatArray]:
    pooled = np.sort(np.concatenate([a, b]), kind="mergesort")
    deltas = np.diff(pooled)
    ua = np.searchsorted(a, pooled[:-1], side="right") / a.size
    ub = np.searchsorted(b, pooled[:-1], side="right") / b.size
    return ua - ub, deltas


def wasserstein_np(a: FloatArray, b: FloatArray) -> float:
    """NumPy twin of :func:`wasserstein`."""
    a = _clean_sorted(a)
    b = _clean_sorted(b)
    if a.size == 0 or b.size == 0:
        return math.nan
    diff, deltas = _cdf_gaps(a, b)
    return float(np.dot(np.abs(diff), deltas))


def energy_np(a: FloatArray, b: FloatArray) -> float:
    """NumPy twin of :func:`energy`."""
    a = _clean_sorted(a)
    b = _clean_sorted(b)
    if a.size == 0 or b.size == 0:
        return math.nan
    diff, deltas = _cdf_gaps(a, b)
    return float(math.sqrt(2.0) * math.sqrt(float(np.dot(diff * diff, deltas))))


def _midranks(z: FloatArray) -> FloatArray:
    """``scipy.stats.rankdata(z, method="average")`` in NumPy."""
    order = np.argsort(z, kind="mergesort")
    zs = z[order]
    n = zs.size
    new = np.r_[True, zs[1:] != zs[:-1]]
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], n]
    ranks_sorted = np.repeat((starts + 1 + ends) / 2.0, ends - starts)
    out = np.empty(n, dtype=np.float64)
    out[order] = ranks_sorted
    return out


def cvm_u_np(a: FloatArray, b: FloatArray) -> float:
    """NumPy twin of :func:`cvm_u`."""
    a = _clean_sorted(a)
    b = _clean_sorted(b)
    if a.size == 0 or b.size == 0:
        return math.nan
    r = _midranks(np.concatenate([a, b]))
    ra = r[: a.size]
    rb = r[a.size :]
    return float(
        a.size * np.sum((ra - np.arange(1, a.size + 1)) ** 2)
        + b.size * np.sum((rb - np.arange(1, b.size + 1)) ** 2)
    )


def cvm_statistic_np(a: FloatArray, b: FloatArray) -> float:
    """NumPy twin of :func:`cvm_statistic`."""
    u = cvm_u_np(a, b)
    if math.isnan(u):
        return math.nan
    n1 = int(np.count_nonzero(~np.isnan(a)))
    n2 = int(np.count_nonzero(~np.isnan(b)))
    k = n1 * n2
    nn = n1 + n2
    return u / (k * nn) - (4 * k - 1) / (6 * nn)


def ad_midrank_a2kn_np(a: FloatArray, b: FloatArray) -> float:
    """NumPy twin of :func:`ad_midrank_a2kn` (scipy's ``_anderson_ksamp_midrank``)."""
    a = _clean_sorted(a)
    b = _clean_sorted(b)
    if a.size == 0 or b.size == 0:
        return math.nan
    z = np.sort(np.concatenate([a, b]))
    zstar = np.unique(z)
    if zstar.size < 2:
        return math.nan
    nn = z.size
    left = z.searchsorted(zstar, "left")
    lj = z.searchsorted(zstar, "right") - left
    bj = left + lj / 2.0
    total = 0.0
    for s in (a, b):
        right = s.searchsorted(zstar, side="right")
        fij = right - s.searchsorted(zstar, "left")
        mij = right - fij / 2.0
        inner = lj / float(nn) * (nn * mij - bj * s.size) ** 2 / (bj * (nn - bj) - nn * lj / 4.0)
        total += float(inner.sum()) / s.size
    return total * (nn - 1.0) / nn

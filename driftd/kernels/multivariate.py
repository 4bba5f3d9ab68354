"""Kernels of the multivariate drift statistics (:mod:`driftd.stats.multivariate`).

Rows are float64 C-contiguous ``(n, d)`` arrays, one column per (encoded) feature.

PCA reconstruction error (NannyML's ``DataReconstructionDriftCalculator``): a row ``x`` has its
missing values replaced by ``fill``, is standardised, ``s = (x - center) / scale``, and
projected onto the ``k`` principal directions (rows of ``components``, orthonormal) fitted on
the reference; its error is the Euclidean norm of what the projection misses,
``‖z - Cᵀ C z‖`` with ``z = s - pca_mean`` — the distance between the standardised row and
its PCA reconstruction. The residual is computed directly, not as ``‖z‖² - ‖C z‖²``, which
would cancel catastrophically for rows close to the principal subspace.

Maximum mean discrepancy with the Gaussian kernel ``k(x, y) = exp(-gamma ‖x - y‖²)``, as the
biased (V-) statistic ``MMD² = mean K_rr + mean K_ss - 2 mean K_rs`` (diagonals included, so
it is never negative and its null distribution is a weighted sum of χ²₁ variables, the shape
:func:`driftd.stats.calibrate.statistic_threshold` extrapolates). The reference block
``mean K_rr`` is fixed per profile and passed in. Kernel means are computed by explicit loops
over rows and features — no BLAS, so the kernels need nothing but numba at run time, and
distances come from differences, never from ``‖x‖² + ‖y‖² - 2 x·y``.

Each kernel has a NumPy twin (suffix ``_np``) for the tests; all release the GIL.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from driftd.kernels._jit import kernel

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


# --------------------------------------------------------------------------- PCA


@kernel
def pca_errors(
    x: FloatArray,
    fill: FloatArray,
    center: FloatArray,
    scale: FloatArray,
    pca_mean: FloatArray,
    components: FloatArray,
) -> FloatArray:
    """Reconstruction error of every row of ``x`` (NaN replaced by ``fill``)."""
    n = x.shape[0]
    d = x.shape[1]
    k = components.shape[0]
    out = np.empty(n, dtype=np.float64)
    z = np.empty(d, dtype=np.float64)
    p = np.empty(k, dtype=np.float64)
    for i in range(n):
        for j in range(d):
            v = x[i, j]
            if np.isnan(v):
                v = fill[j]
            z[j] = (v - center[j]) / scale[j] - pca_mean[j]
        for c in range(k):
            t = 0.0
            for j in range(d):
                t += components[c, j] * z[j]
            p[c] = t
        acc = 0.0
        for j in range(d):
            r = z[j]
            for c in range(k):
                r -= components[c, j] * p[c]
            acc += r * r
        out[i] = math.sqrt(acc)
    return out


@kernel
def pca_mean_error(
    x: FloatArray,
    fill: FloatArray,
    center: FloatArray,
    scale: FloatArray,
    pca_mean: FloatArray,
    components: FloatArray,
) -> float:
    """Mean of :func:`pca_errors` over the rows of ``x``; NaN for no rows."""
    n = x.shape[0]
    if n == 0:
        return np.nan
    e = pca_errors(x, fill, center, scale, pca_mean, components)
    acc = 0.0
    for i in range(n):
        acc += e[i]
    return float(acc / n)


def pca_errors_np(
    x: FloatArray,
    fill: FloatArray,
    center: FloatArray,
    scale: FloatArray,
    pca_mean: FloatArray,
    components: FloatArray,
) -> FloatArray:
    """NumPy twin of :func:`pca_errors`."""
    s = (np.where(np.isnan(x), fill[None, :], x) - center) / scale
    z = s - pca_mean
    r = z - (z @ components.T) @ components
    out: FloatArray = np.sqrt(np.sum(r * r, axis=1))
    return out


def pca_mean_error_np(
    x: FloatArray,
    fill: FloatArray,
    center: FloatArray,
    scale: FloatArray,
    pca_mean: FloatArray,
    components: FloatArray,
) -> float:
    """NumPy twin of :func:`pca_mean_error`."""
    if x.shape[0] == 0:
        return math.nan
    return float(np.mean(pca_errors_np(x, fill, center, scale, pca_mean, components)))


# --------------------------------------------------------------------------- MMD


@kernel
def _sq_dist(a: FloatArray, i: int, b: FloatArray, j: int) -> float:
    acc = 0.0
    for c in range(a.shape[1]):
        t = a[i, c] - b[j, c]
        acc += t * t
    return acc


@kernel
def sq_dists_upper(a: FloatArray) -> FloatArray:
    """Squared distances of all pairs ``i < j`` of rows of ``a``, row-major (length
    ``n (n - 1) / 2``): the sample of the median heuristic."""
    n = a.shape[0]
    out = np.empty(n * (n - 1) // 2, dtype=np.float64)
    at = 0
    for i in range(n):
        for j in range(i + 1, n):
            out[at] = _sq_dist(a, i, a, j)
            at += 1
    return out


@kernel
def _row_kernel_sum(
    a: FloatArray, i: int, bt: FloatArray, lo: int, gamma: float, d2: FloatArray
) -> float:
    """``Σ_{j >= lo} k(a_i, b_j)`` with ``b`` given transposed (``bt``, shape ``(d, m)``).

    The squared distances are accumulated feature by feature over a contiguous run of ``j``
    (a loop the compiler vectorises) before the exponentials: about twice as fast as one
    distance at a time, and the exponentials are then most of the cost."""
    w = d2[lo:]
    k = w.shape[0]
    # zero-based loops over slices: with ``range(lo, m)`` numba's loops do not vectorise
    w[:] = 0.0
    for c in range(bt.shape[0]):
        x = a[i, c]
        col = bt[c, lo:]
        for j in range(k):
            t = x - col[j]
            w[j] += t * t
    acc = 0.0
    for j in range(k):
        acc += math.exp(-gamma * w[j])
    return acc


@kernel
def kernel_row_means(a: FloatArray, b: FloatArray, gamma: float) -> FloatArray:
    """``mean_j k(a_i, b_j)`` for every row ``a_i``; NaN when ``b`` has no rows."""
    n = a.shape[0]
    m = b.shape[0]
    out = np.empty(n, dtype=np.float64)
    if m == 0:
        out[:] = np.nan
        return out
    bt = np.ascontiguousarray(b.T)
    d2 = np.empty(m, dtype=np.float64)
    for i in range(n):
        out[i] = _row_kernel_sum(a, i, bt, 0, gamma, d2) / m
    return out


@kernel
def kernel_mean(a: FloatArray, b: FloatArray, gamma: float) -> float:
    """``mean_{i,j} k(a_i, b_j)``; NaN when either side has no rows."""
    n = a.shape[0]
    m = b.shape[0]
    if n == 0 or m == 0:
        return np.nan
    bt = np.ascontiguousarray(b.T)
    d2 = np.empty(m, dtype=np.float64)
    acc = 0.0
    for i in range(n):
        acc += _row_kernel_sum(a, i, bt, 0, gamma, d2)
    return float(acc / (n * m))


@kernel
def _self_sum(a: FloatArray, at: FloatArray, gamma: float, d2: FloatArray) -> float:
    """``Σ_{i<j} k(a_i, a_j)`` (``at`` = ``a`` transposed)."""
    acc = 0.0
    for i in range(a.shape[0] - 1):
        acc += _row_kernel_sum(a, i, at, i + 1, gamma, d2)
    return acc


@kernel
def kernel_mean_self(a: FloatArray, gamma: float) -> float:
    """``mean_{i,j} k(a_i, a_j)`` over all ``n²`` pairs, diagonal (``k = 1``) included, from
    the ``i < j`` half."""
    n = a.shape[0]
    if n == 0:
        return np.nan
    at = np.ascontiguousarray(a.T)
    d2 = np.empty(n, dtype=np.float64)
    return float((2.0 * _self_sum(a, at, gamma, d2) + n) / (n * n))


@kernel
def mmd2(r: FloatArray, s: FloatArray, gamma: float, krr: float) -> float:
    """Biased MMD² of the reference rows ``r`` (whose ``kernel_mean_self`` is ``krr``) and the
    window rows ``s``; NaN when either has no rows."""
    if s.shape[0] == 0 or r.shape[0] == 0:
        return np.nan
    return krr + kernel_mean_self(s, gamma) - 2.0 * kernel_mean(s, r, gamma)


@kernel
def null_mmd2(
    pool: FloatArray, cross: FloatArray, idx: IntArray, gamma: float, krr: float
) -> FloatArray:
    """One MMD² per row of ``idx`` (shape ``(resamples, m)``): the window is the rows
    ``pool[idx[b]]`` (distinct indices: a subsample without replacement) and ``cross[p]`` is
    ``mean_j k(pool_p, r_j)`` for the fixed reference rows (:func:`kernel_row_means`), so the
    cross term of a resample costs ``O(m)`` and only its own block ``O(m² d)``."""
    rows = idx.shape[0]
    m = idx.shape[1]
    d = pool.shape[1]
    out = np.empty(rows, dtype=np.float64)
    if m == 0:
        out[:] = np.nan
        return out
    sub = np.empty((m, d), dtype=np.float64)
    st = np.empty((d, m), dtype=np.float64)
    d2 = np.empty(m, dtype=np.float64)
    for b in range(rows):
        krs = 0.0
        for u in range(m):
            iu = idx[b, u]
            krs += cross[iu]
            for c in range(d):
                x = pool[iu, c]
                sub[u, c] = x
                st[c, u] = x
        kss = _self_sum(sub, st, gamma, d2)
        out[b] = krr + (2.0 * kss + m) / (m * m) - 2.0 * krs / m
    return out


def _gram_np(a: FloatArray, b: FloatArray, gamma: float) -> FloatArray:
    d2 = np.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=2)
    out: FloatArray = np.exp(-gamma * d2)
    return out


def sq_dists_upper_np(a: FloatArray) -> FloatArray:
    """NumPy twin of :func:`sq_dists_upper`."""
    iu, ju = np.triu_indices(a.shape[0], k=1)
    out: FloatArray = np.sum((a[iu] - a[ju]) ** 2, axis=1)
    return out


def kernel_row_means_np(a: FloatArray, b: FloatArray, gamma: float) -> FloatArray:
    """NumPy twin of :func:`kernel_row_means`."""
    if b.shape[0] == 0:
        return np.full(a.shape[0], np.nan)
    out: FloatArray = _gram_np(a, b, gamma).mean(axis=1)
    return out


def kernel_mean_np(a: FloatArray, b: FloatArray, gamma: float) -> float:
    """NumPy twin of :func:`kernel_mean`."""
    if a.shape[0] == 0 or b.shape[0] == 0:
        return math.nan
    return float(_gram_np(a, b, gamma).mean())


def kernel_mean_self_np(a: FloatArray, gamma: float) -> float:
    """NumPy twin of :func:`kernel_mean_self`."""
    return kernel_mean_np(a, a, gamma)


def mmd2_np(r: FloatArray, s: FloatArray, gamma: float, krr: float) -> float:
    """NumPy twin of :func:`mmd2`."""
    if s.shape[0] == 0 or r.shape[0] == 0:
        return math.nan
    return krr + kernel_mean_self_np(s, gamma) - 2.0 * kernel_mean_np(s, r, gamma)


def null_mmd2_np(
    pool: FloatArray, cross: FloatArray, idx: IntArray, gamma: float, krr: float
) -> FloatArray:
    """NumPy twin of :func:`null_mmd2`."""
    if idx.shape[1] == 0:
        return np.full(idx.shape[0], np.nan)
    return np.array(
        [
            krr + kernel_mean_self_np(pool[row], gamma) - 2.0 * float(np.mean(cross[row]))
            for row in idx
        ],
        dtype=np.float64,
    )

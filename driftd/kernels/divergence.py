"""Divergences between two binned distributions, and Pearson's χ² on a 2×k count table.

Inputs are aligned non-negative weight vectors ``p`` (reference) and ``q`` (current) of the
same length: bin shares or raw counts. Each kernel normalises both to sum 1 first (as
``scipy.spatial.distance.jensenshannon`` does), so counts can be passed directly. A vector
summing to zero gives NaN. NaN weights are treated as 0.

Zero shares: PSI and KL have a log of a ratio, so a zero share is replaced by ``eps``
(default ``EPS = 1e-4``, the usual PSI practice, e.g. Evidently) on *both* sides, without
renormalising. JS, Hellinger and total variation need no such fix and use the exact shares.

=========  ==========================================================  ==============
kernel     formula (p = reference, q = current, shares)                 range
=========  ==========================================================  ==============
psi        Σ (q'ᵢ - p'ᵢ) · ln(q'ᵢ / p'ᵢ)                                [0, ∞)
kl         KL(p ‖ q) = Σ p'ᵢ · ln(p'ᵢ / q'ᵢ)  (nats)                     [0, ∞)
js         sqrt(½ KL₂(p ‖ m) + ½ KL₂(q ‖ m)), m = (p + q)/2, base 2     [0, 1]
hellinger  sqrt(½ Σ (√pᵢ - √qᵢ)²)                                       [0, 1]
tv         ½ Σ |pᵢ - qᵢ|                                               [0, 1]
=========  ==========================================================  ==============
(x' = eps where x == 0, else x.)
"""

from __future__ import annotations

import math

import numpy as np

from driftd.arrays import FloatArray, IntArray
from driftd.kernels._jit import kernel

EPS = 1e-4
_LN2 = math.log(2.0)


@kernel
def _normalised(w: FloatArray) -> FloatArray:
    """``w / w.sum()`` with NaN and negative weights zeroed; all-NaN when the sum is 0."""
    out = np.empty(w.shape[0], dtype=np.float64)
    total = 0.0
    for i in range(w.shape[0]):
        x = w[i]
        if np.isnan(x) or x < 0.0:
            x = 0.0
        out[i] = x
        total += x
    if total > 0.0:
        for i in range(out.shape[0]):
            out[i] /= total
    else:
        out[:] = np.nan
    return out


@kernel
def _usable(pn: FloatArray, qn: FloatArray) -> bool:
    """Both normalised vectors are non-empty distributions of the same length."""
    return (
        pn.shape[0] > 0
        and pn.shape[0] == qn.shape[0]
        and not np.isnan(pn[0])
        and not np.isnan(qn[0])
    )


@kernel
def psi(p: FloatArray, q: FloatArray, eps: float = EPS) -> float:
    """Population stability index (natural log), zero shares floored to ``eps``."""
    pn = _normalised(p)
    qn = _normalised(q)
    if not _usable(pn, qn):
        return np.nan
    acc = 0.0
    for i in range(pn.shape[0]):
        a = pn[i]
        b = qn[i]
        if a == 0.0:
            a = eps
        if b == 0.0:
            b = eps
        acc += (b - a) * math.log(b / a)
    return acc


@kernel
def kl(p: FloatArray, q: FloatArray, eps: float = EPS) -> float:
    """Kullback–Leibler divergence KL(p ‖ q) in nats, zero shares floored to ``eps``."""
    pn = _normalised(p)
    qn = _normalised(q)
    if not _usable(pn, qn):
        return np.nan
    acc = 0.0
    for i in range(pn.shape[0]):
        a = pn[i]
        b = qn[i]
        if a == 0.0:
            a = eps
        if b == 0.0:
            b = eps
        acc += a * math.log(a / b)
    return acc


@kernel
def js_distance(p: FloatArray, q: FloatArray) -> float:
    """Jensen–Shannon distance, base 2 (``scipy.spatial.distance.jensenshannon(p, q, 2)``)."""
    pn = _normalised(p)
    qn = _normalised(q)
    if not _usable(pn, qn):
        return np.nan
    acc = 0.0
    for i in range(pn.shape[0]):
        a = pn[i]
        b = qn[i]
        m = (a + b) / 2.0
        if a > 0.0:
            acc += a * math.log(a / m)
        if b > 0.0:
            acc += b * math.log(b / m)
    return math.sqrt(max(acc / _LN2 / 2.0, 0.0))


@kernel
def hellinger(p: FloatArray, q: FloatArray) -> float:
    """Hellinger distance ``sqrt(½ Σ (√p - √q)²)``."""
    pn = _normalised(p)
    qn = _normalised(q)
    if not _usable(pn, qn):
        return np.nan
    acc = 0.0
    for i in range(pn.shape[0]):
        d = math.sqrt(pn[i]) - math.sqrt(qn[i])
        acc += d * d
    return math.sqrt(acc / 2.0)


@kernel
def total_variation(p: FloatArray, q: FloatArray) -> float:
    """Total variation distance ``½ Σ |p - q|``."""
    pn = _normalised(p)
    qn = _normalised(q)
    if not _usable(pn, qn):
        return np.nan
    acc = 0.0
    for i in range(pn.shape[0]):
        acc += abs(pn[i] - qn[i])
    return acc / 2.0


@kernel
def chi2_contingency_2xk(
    ref: IntArray, cur: IntArray, correction: bool = True
) -> tuple[float, int]:
    """Pearson χ² of the 2×k table ``[ref; cur]`` and its degrees of freedom.

    Columns empty in both rows are dropped first (they carry no information and would make an
    expected count zero). Expected counts are ``row_total * col_total / total``; with one degree
    of freedom and ``correction`` the Yates continuity correction is applied, exactly as
    ``scipy.stats.chi2_contingency`` does by default. Returns ``(nan, 0)`` when a row is empty
    and ``(0.0, 0)`` when fewer than two columns remain.
    """
    k = ref.shape[0]
    r1 = 0
    r2 = 0
    ncols = 0
    for i in range(k):
        r1 += ref[i]
        r2 += cur[i]
        if ref[i] + cur[i] > 0:
            ncols += 1
    if r1 <= 0 or r2 <= 0:
        return np.nan, 0
    dof = ncols - 1
    if dof <= 0:
        return 0.0, 0
    total = r1 + r2
    stat = 0.0
    for i in range(k):
        col = ref[i] + cur[i]
        if col <= 0:
            continue
        for row in range(2):
            obs = float(ref[i]) if row == 0 else float(cur[i])
            rsum = r1 if row == 0 else r2
            exp = (rsum * col) / total
            if correction and dof == 1:
                diff = exp - obs
                mag = min(0.5, abs(diff))
                if diff > 0:
                    obs = obs + mag
                elif diff < 0:
                    obs = obs - mag
            d = obs - exp
            stat += d * d / exp
    return stat, dof


# --------------------------------------------------------------------------- NumPy twins


def _norm_np(w: FloatArray) -> FloatArray:
    w = np.where(np.isnan(w) | (w < 0), 0.0, np.asarray(w, dtype=np.float64))
    s = w.sum()
    return w / s if s > 0 else np.full(w.shape, np.nan)


def psi_np(p: FloatArray, q: FloatArray, eps: float = EPS) -> float:
    a = _norm_np(p)
    b = _norm_np(q)
    a = np.where(a == 0, eps, a)
    b = np.where(b == 0, eps, b)
    return float(np.sum((b - a) * np.log(b / a)))


def kl_np(p: FloatArray, q: FloatArray, eps: float = EPS) -> float:
    a = _norm_np(p)
    b = _norm_np(q)
    a = np.where(a == 0, eps, a)
    b = np.where(b == 0, eps, b)
    return float(np.sum(a * np.log(a / b)))


def js_distance_np(p: FloatArray, q: FloatArray) -> float:
    a = _norm_np(p)
    b = _norm_np(q)
    if a.size == 0 or np.isnan(a).any() or np.isnan(b).any():
        return math.nan
    m = (a + b) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(a > 0, a * np.log(a / m), 0.0)
        right = np.where(b > 0, b * np.log(b / m), 0.0)
    js = float(np.sum(left) + np.sum(right)) / math.log(2.0)
    return math.nan if math.isnan(js) else math.sqrt(max(js / 2.0, 0.0))


def hellinger_np(p: FloatArray, q: FloatArray) -> float:
    a = _norm_np(p)
    b = _norm_np(q)
    return float(np.sqrt(np.sum((np.sqrt(a) - np.sqrt(b)) ** 2) / 2.0))


def total_variation_np(p: FloatArray, q: FloatArray) -> float:
    a = _norm_np(p)
    b = _norm_np(q)
    return float(np.sum(np.abs(a - b)) / 2.0)


def chi2_contingency_2xk_np(
    ref: IntArray, cur: IntArray, correction: bool = True
) -> tuple[float, int]:
    table = np.array([ref, cur], dtype=np.int64)
    if table[0].sum() <= 0 or table[1].sum() <= 0:
        return math.nan, 0
    table = table[:, table.sum(axis=0) > 0]
    dof = table.shape[1] - 1
    if dof <= 0:
        return 0.0, 0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    observed = table.astype(np.float64)
    if correction and dof == 1:
        diff = expected - observed
        observed = observed + np.minimum(0.5, np.abs(diff)) * np.sign(diff)
    return float(np.sum((observed - expected) ** 2 / expected)), dof

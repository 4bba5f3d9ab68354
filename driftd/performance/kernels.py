"""Numba kernels for model-performance metrics, the bootstrap and DeLong's AUC variance.

Every metric has an integer id (``ACCURACY`` … ``BIAS``) so one compiled kernel serves all of
them. Inputs are float64 C-contiguous arrays with NaN already removed by the caller
(:mod:`driftd.performance.metrics`):

* ``s`` — classifier score (probability of the positive class) or regression prediction;
* ``y`` — label as 0.0/1.0 (classification) or target value (regression);
* ``p`` — uint8, 1 where the event was predicted positive (``s >= threshold`` or the
  event's own predicted label); unused for regression.

Kernels that need order (ROC AUC, DeLong) take ``s`` ascending with ``y``/``p`` aligned. An
empty sample, or a metric undefined on it (AUC with one class, precision with no predicted
positive), gives NaN. Definitions follow scikit-learn to 1e-9 (see the ``*_np`` twins and
``tests/performance/test_metrics.py``):

* log loss clips probabilities to ``[eps, 1 - eps]`` (``eps`` = float64 machine epsilon),
  the probability of the *negative* class being clipped after ``1 - s`` as sklearn does;
* MAPE divides by ``max(|y|, eps)``;
* expected calibration error uses 10 equal-width bins on ``[0, 1]`` assigned like
  ``sklearn.calibration.calibration_curve(strategy="uniform")`` (bin ``k`` is
  ``(k/10, (k+1)/10]``, the first bin also holds 0; scores outside ``[0, 1]`` fall in the
  end bins) and is ``Σ_bins (n_bin / n) · |mean(y) - mean(s)|``.

Resampling uses a counter-based generator (SplitMix64) so the NumPy twin of the bootstrap can
draw the very same indices vectorised: draw ``k`` of sample ``j`` is
``mix(base_j + (k + 1)·γ)`` with ``base_j = mix(seed + (j + 1)·κ)``, mapped to an index by
``floor(u53 · 2⁻⁵³ · n)``.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from driftd.kernels._jit import kernel

FloatArray = npt.NDArray[np.float64]
U8Array = npt.NDArray[np.uint8]
I64Array = npt.NDArray[np.int64]
KeyArray = npt.NDArray[np.uint64]

ACCURACY = 0
PRECISION = 1
RECALL = 2
F1 = 3
ROC_AUC = 4
LOG_LOSS = 5
BRIER = 6
POSITIVE_RATE = 7
LABEL_POSITIVE_RATE = 8
ECE = 9
MAE = 10
RMSE = 11
MAPE = 12
BIAS = 13

CLASSIFICATION_NAMES = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "log_loss",
    "brier",
    "positive_rate",
    "label_positive_rate",
    "ece",
)
REGRESSION_NAMES = ("mae", "rmse", "mape", "bias")
METRIC_IDS: dict[str, int] = {
    name: i for i, name in enumerate(CLASSIFICATION_NAMES + REGRESSION_NAMES)
}

EPS = float(np.finfo(np.float64).eps)
ECE_BINS = 10
# inner edges, exactly as calibration_curve builds them (np.linspace, so 0.30000000000000004)
ECE_EDGES: FloatArray = np.linspace(0.0, 1.0, ECE_BINS + 1)[1:-1].copy()

# kinds of metric, by how a resample is aggregated
_CONFUSION = 0  # from the 2x2 confusion counts
_MEAN = 1  # mean of a per-event value
_ROOT_MEAN = 2  # square root of a mean
_BINNED = 3  # ECE: per-bin sums
_RANK = 4  # ROC AUC: needs the sorted order


@kernel
def metric_kind(mid: int) -> int:
    if mid == ROC_AUC:
        return _RANK
    if mid == ECE:
        return _BINNED
    if mid == RMSE:
        return _ROOT_MEAN
    if mid in (LOG_LOSS, BRIER, MAE, MAPE, BIAS):
        return _MEAN
    return _CONFUSION


@kernel
def event_value(mid: int, s: float, y: float) -> float:
    """The per-event quantity whose mean is the metric (log loss, Brier, MAE, MAPE, bias) or
    whose mean's square root is (RMSE)."""
    if mid == LOG_LOSS:
        q = s if y > 0.5 else 1.0 - s
        q = min(max(q, EPS), 1.0 - EPS)
        return -math.log(q)
    if mid == BRIER:
        return (y - s) * (y - s)
    d = s - y
    if mid == MAE:
        return abs(d)
    if mid == RMSE:
        return d * d
    if mid == MAPE:
        return abs(d) / max(abs(y), EPS)
    return d  # BIAS


@kernel
def from_confusion(mid: int, tp: float, fp: float, fn: float, tn: float) -> float:
    n = tp + fp + fn + tn
    if n <= 0.0:
        return np.nan
    if mid == ACCURACY:
        return (tp + tn) / n
    if mid == PRECISION:
        return tp / (tp + fp) if tp + fp > 0.0 else np.nan
    if mid == RECALL:
        return tp / (tp + fn) if tp + fn > 0.0 else np.nan
    if mid == F1:
        d = 2.0 * tp + fp + fn
        return 2.0 * tp / d if d > 0.0 else np.nan
    if mid == POSITIVE_RATE:
        return (tp + fp) / n
    return (tp + fn) / n  # LABEL_POSITIVE_RATE


@kernel
def ece_bin(s: float, edges: FloatArray) -> int:
    """``np.searchsorted(edges, s, side="left")``: the number of inner edges below ``s``."""
    b = 0
    while b < edges.shape[0] and edges[b] < s:
        b += 1
    return b


@kernel
def auc_sorted_w(s: FloatArray, y: FloatArray, w: FloatArray) -> float:
    """Weighted ROC AUC over ascending scores, ties counted one half (Mann–Whitney):
    ``Σ_groups P_g (N_below + N_g / 2) / (P N)``."""
    n = s.shape[0]
    pos = 0.0
    neg_below = 0.0
    num = 0.0
    i = 0
    while i < n:
        j = i
        pg = 0.0
        ng = 0.0
        while j < n and s[j] == s[i]:
            if y[j] > 0.5:
                pg += w[j]
            else:
                ng += w[j]
            j += 1
        num += pg * (neg_below + 0.5 * ng)
        neg_below += ng
        pos += pg
        i = j
    if pos <= 0.0 or neg_below <= 0.0:
        return np.nan
    return num / (pos * neg_below)


@kernel
def metric_sorted(mid: int, s: FloatArray, y: FloatArray, p: U8Array, edges: FloatArray) -> float:
    """One metric on a whole sample (``s`` ascending when ``mid == ROC_AUC``)."""
    n = s.shape[0]
    if n == 0:
        return np.nan
    kind = metric_kind(mid)
    if kind == _CONFUSION:
        tp = 0.0
        fp = 0.0
        fn = 0.0
        for i in range(n):
            if y[i] > 0.5:
                if p[i]:
                    tp += 1.0
                else:
                    fn += 1.0
            elif p[i]:
                fp += 1.0
        return from_confusion(mid, tp, fp, fn, n - tp - fp - fn)
    if kind == _RANK:
        return auc_sorted_w(s, y, np.ones(n))
    if kind == _BINNED:
        bsum = np.zeros(edges.shape[0] + 1)
        for i in range(n):
            bsum[ece_bin(s[i], edges)] += y[i] - s[i]
        return float(np.sum(np.abs(bsum))) / float(n)
    acc = 0.0
    for i in range(n):
        acc += event_value(mid, s[i], y[i])
    if kind == _ROOT_MEAN:
        return math.sqrt(acc / float(n))
    return acc / float(n)


@kernel
def classification_all(
    s: FloatArray, y: FloatArray, p: U8Array, edges: FloatArray, out: FloatArray
) -> None:
    """All classification metrics into ``out`` (indexed by metric id); ``s`` ascending."""
    for mid in range(ECE + 1):
        out[mid] = metric_sorted(mid, s, y, p, edges)


@kernel
def regression_all(pred: FloatArray, y: FloatArray, out: FloatArray) -> None:
    """MAE, RMSE, MAPE and bias into ``out[0:4]``."""
    p = np.zeros(0, dtype=np.uint8)
    for k in range(4):
        out[k] = metric_sorted(MAE + k, pred, y, p, ECE_EDGES)


# ------------------------------------------------------------------------------ NumPy twins


def metric_np(mid: int, s: FloatArray, y: FloatArray, p: U8Array) -> float:
    """NumPy twin of :func:`metric_sorted`; any order (ranks instead of a sorted merge)."""
    n = int(s.shape[0])
    if n == 0:
        return math.nan
    pos = y > 0.5
    pp = p.astype(bool) if p.shape[0] else np.zeros(0, dtype=bool)
    if mid in (ACCURACY, PRECISION, RECALL, F1, POSITIVE_RATE, LABEL_POSITIVE_RATE):
        tp = float(np.sum(pos & pp))
        fp = float(np.sum(~pos & pp))
        fn = float(np.sum(pos & ~pp))
        tn = float(n) - tp - fp - fn
        if mid == ACCURACY:
            return float(np.mean(pos == pp))
        if mid == PRECISION:
            return tp / (tp + fp) if tp + fp > 0 else math.nan
        if mid == RECALL:
            return tp / (tp + fn) if tp + fn > 0 else math.nan
        if mid == F1:
            return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else math.nan
        if mid == POSITIVE_RATE:
            return (tp + fp) / n
        return (tp + fn) / (tp + fp + fn + tn)
    if mid == ROC_AUC:
        npos = int(np.sum(pos))
        nneg = n - npos
        if npos == 0 or nneg == 0:
            return math.nan
        return (float(np.sum(midranks_np(s)[pos])) - npos * (npos + 1) / 2) / (npos * nneg)
    if mid == ECE:
        b = np.searchsorted(ECE_EDGES, s, side="left")
        bsum = np.bincount(b, weights=y - s, minlength=ECE_BINS)
        return float(np.sum(np.abs(bsum))) / n
    if mid == LOG_LOSS:
        q = np.clip(np.where(pos, s, 1.0 - s), EPS, 1.0 - EPS)
        return float(np.mean(-np.log(q)))
    d = s - y
    if mid == BRIER:
        return float(np.mean(d * d))
    if mid == MAE:
        return float(np.mean(np.abs(d)))
    if mid == RMSE:
        return float(np.sqrt(np.mean(d * d)))
    if mid == MAPE:
        return float(np.mean(np.abs(d) / np.maximum(np.abs(y), EPS)))
    return float(np.mean(d))


def midranks_np(x: FloatArray) -> FloatArray:
    """1-based average ranks (``scipy.stats.rankdata(method="average")``)."""
    _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts).astype(np.float64)
    return (upper - (counts - 1) / 2.0)[inv]


def classification_all_np(s: FloatArray, y: FloatArray, p: U8Array) -> FloatArray:
    """NumPy twin of :func:`classification_all`."""
    return np.array([metric_np(m, s, y, p) for m in range(ECE + 1)])


def regression_all_np(pred: FloatArray, y: FloatArray) -> FloatArray:
    """NumPy twin of :func:`regression_all`."""
    p = np.zeros(0, dtype=np.uint8)
    return np.array([metric_np(MAE + k, pred, y, p) for k in range(4)])


# ------------------------------------------------------------------------------ bootstrap

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_KAPPA = np.uint64(0xD1B54A32D192ED03)
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_S11 = np.uint64(11)
_S27 = np.uint64(27)
_S30 = np.uint64(30)
_S31 = np.uint64(31)
_INV53 = 1.0 / 9007199254740992.0


@kernel
def splitmix(z: np.uint64) -> np.uint64:
    z = (z ^ (z >> _S30)) * _C1
    z = (z ^ (z >> _S27)) * _C2
    return z ^ (z >> _S31)


@kernel
def stream_base(seed: int, stream: int) -> np.uint64:
    return splitmix(np.uint64(seed) + np.uint64(stream + 1) * _KAPPA)


@kernel
def _prepare(
    mid: int, s: FloatArray, y: FloatArray, p: U8Array, edges: FloatArray
) -> tuple[I64Array, FloatArray]:
    """Per-event codes and values the resampling loop aggregates."""
    n = s.shape[0]
    kind = metric_kind(mid)
    codes = np.zeros(n, dtype=np.int64)
    vals = np.zeros(n)
    for i in range(n):
        if kind == _CONFUSION:
            codes[i] = (2 if y[i] > 0.5 else 0) + (1 if p[i] else 0)
        elif kind == _BINNED:
            codes[i] = ece_bin(s[i], edges)
            vals[i] = y[i] - s[i]
        elif kind == _MEAN or kind == _ROOT_MEAN:
            vals[i] = event_value(mid, s[i], y[i])
    return codes, vals


@kernel
def _resample(
    mid: int,
    s: FloatArray,
    y: FloatArray,
    codes: I64Array,
    vals: FloatArray,
    w: FloatArray,
    bins: FloatArray,
    state: np.uint64,
) -> tuple[float, np.uint64]:
    """The metric on one resample with replacement of the same size; returns it and the
    generator's new state."""
    n = s.shape[0]
    fn = float(n)
    kind = metric_kind(mid)
    if kind == _CONFUSION:
        cells = np.zeros(4)
        for _ in range(n):
            state += _GAMMA
            cells[codes[int((splitmix(state) >> _S11) * _INV53 * fn)]] += 1.0
        return from_confusion(mid, cells[3], cells[1], cells[2], cells[0]), state
    if kind == _RANK:
        w[:] = 0.0
        for _ in range(n):
            state += _GAMMA
            w[int((splitmix(state) >> _S11) * _INV53 * fn)] += 1.0
        return auc_sorted_w(s, y, w), state
    if kind == _BINNED:
        bins[:] = 0.0
        for _ in range(n):
            state += _GAMMA
            k = int((splitmix(state) >> _S11) * _INV53 * fn)
            bins[codes[k]] += vals[k]
        return float(np.sum(np.abs(bins))) / fn, state
    acc = 0.0
    for _ in range(n):
        state += _GAMMA
        acc += vals[int((splitmix(state) >> _S11) * _INV53 * fn)]
    if kind == _ROOT_MEAN:
        return math.sqrt(acc / fn), state
    return acc / fn, state


@kernel
def bootstrap_diffs(
    mid: int,
    s1: FloatArray,
    y1: FloatArray,
    p1: U8Array,
    s2: FloatArray,
    y2: FloatArray,
    p2: U8Array,
    two_sample: bool,
    base_value: float,
    n_resamples: int,
    seed: int,
    edges: FloatArray,
) -> FloatArray:
    """``metric(resample of 1) − metric(resample of 2)`` (or ``− base_value`` when not
    ``two_sample``) for ``n_resamples`` independent resamples of each sample. Samples are
    sorted by score when ``mid == ROC_AUC``. A resample where the metric is undefined gives
    NaN (the caller drops those)."""
    out = np.full(n_resamples, np.nan)
    if s1.shape[0] == 0 or (two_sample and s2.shape[0] == 0):
        return out
    c1, v1 = _prepare(mid, s1, y1, p1, edges)
    c2, v2 = _prepare(mid, s2, y2, p2, edges)
    w1 = np.zeros(s1.shape[0])
    w2 = np.zeros(s2.shape[0])
    bins = np.zeros(edges.shape[0] + 1)
    st1 = stream_base(seed, 0)
    st2 = stream_base(seed, 1)
    for b in range(n_resamples):
        m1, st1 = _resample(mid, s1, y1, c1, v1, w1, bins, st1)
        if two_sample:
            m2, st2 = _resample(mid, s2, y2, c2, v2, w2, bins, st2)
            out[b] = m1 - m2
        else:
            out[b] = m1 - base_value
    return out


def _splitmix_np(z: KeyArray) -> KeyArray:
    z = (z ^ (z >> _S30)) * _C1
    z = (z ^ (z >> _S27)) * _C2
    return z ^ (z >> _S31)


def resample_indices_np(seed: int, stream: int, b: int, n: int) -> I64Array:
    """Indices of resample ``b`` (0-based) of a sample of size ``n`` in ``stream``."""
    with np.errstate(over="ignore"):
        base = _splitmix_np(
            np.array([np.uint64(seed) + np.uint64(stream + 1) * _KAPPA], dtype=np.uint64)
        )[0]
        k = np.arange(b * n + 1, (b + 1) * n + 1, dtype=np.uint64)
        z = _splitmix_np(base + k * _GAMMA)
    return ((z >> _S11).astype(np.float64) * _INV53 * float(n)).astype(np.int64)


def bootstrap_diffs_np(
    mid: int,
    s1: FloatArray,
    y1: FloatArray,
    p1: U8Array,
    s2: FloatArray,
    y2: FloatArray,
    p2: U8Array,
    two_sample: bool,
    base_value: float,
    n_resamples: int,
    seed: int,
    edges: FloatArray,
) -> FloatArray:
    """NumPy twin of :func:`bootstrap_diffs`: the same draws, the metric recomputed from
    scratch on each resampled array by :func:`metric_np`."""
    out = np.full(n_resamples, np.nan)
    n1 = s1.shape[0]
    n2 = s2.shape[0]
    if n1 == 0 or (two_sample and n2 == 0):
        return out
    clf = mid < MAE
    for b in range(n_resamples):
        i1 = resample_indices_np(seed, 0, b, n1)
        m1 = metric_np(mid, s1[i1], y1[i1], p1[i1] if clf else p1)
        if two_sample:
            i2 = resample_indices_np(seed, 1, b, n2)
            out[b] = m1 - metric_np(mid, s2[i2], y2[i2], p2[i2] if clf else p2)
        else:
            out[b] = m1 - base_value
    return out


# ------------------------------------------------------------------------------ DeLong


@kernel
def delong_sorted(s: FloatArray, y: FloatArray) -> tuple[float, float]:
    """ROC AUC and its DeLong variance ``S10/m + S01/n`` over ascending scores.

    The structural components are, per tie group, ``V10 = (N_below + N_g/2) / n`` for its
    positives and ``V01 = (P_above + P_g/2) / m`` for its negatives (DeLong et al. 1988, in
    the midrank form of Sun & Xu 2014). Needs at least two of each class (NaN variance
    otherwise; NaN AUC with one class)."""
    total = s.shape[0]
    m = 0.0
    for i in range(total):
        if y[i] > 0.5:
            m += 1.0
    nn = total - m
    if m == 0.0 or nn == 0.0:
        return np.nan, np.nan
    # pass 1: AUC
    num = 0.0
    neg_below = 0.0
    i = 0
    while i < total:
        j = i
        pg = 0.0
        ng = 0.0
        while j < total and s[j] == s[i]:
            if y[j] > 0.5:
                pg += 1.0
            else:
                ng += 1.0
            j += 1
        num += pg * (neg_below + 0.5 * ng)
        neg_below += ng
        i = j
    auc = num / (m * nn)
    if m < 2.0 or nn < 2.0:
        return auc, np.nan
    # pass 2: variances of the structural components
    s10 = 0.0
    s01 = 0.0
    neg_below = 0.0
    pos_below = 0.0
    i = 0
    while i < total:
        j = i
        pg = 0.0
        ng = 0.0
        while j < total and s[j] == s[i]:
            if y[j] > 0.5:
                pg += 1.0
            else:
                ng += 1.0
            j += 1
        v10 = (neg_below + 0.5 * ng) / nn
        v01 = (m - pos_below - pg + 0.5 * pg) / m
        s10 += pg * (v10 - auc) * (v10 - auc)
        s01 += ng * (v01 - auc) * (v01 - auc)
        neg_below += ng
        pos_below += pg
        i = j
    return auc, s10 / (m - 1.0) / m + s01 / (nn - 1.0) / nn


def delong_np(s: FloatArray, y: FloatArray) -> tuple[float, float]:
    """NumPy twin of :func:`delong_sorted` (any order), with midranks as Sun & Xu write it."""
    pos = y > 0.5
    m = int(np.sum(pos))
    n = s.shape[0] - m
    if m == 0 or n == 0:
        return math.nan, math.nan
    tz = midranks_np(s)
    tx = midranks_np(s[pos])
    ty = midranks_np(s[~pos])
    v10 = (tz[pos] - tx) / n
    v01 = 1.0 - (tz[~pos] - ty) / m
    auc = float(np.sum(tz[pos]) - m * (m + 1) / 2) / (m * n)
    if m < 2 or n < 2:
        return auc, math.nan
    return auc, float(np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n)

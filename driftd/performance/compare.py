"""Is a model version worse than its baseline? A difference with a confidence interval.

``compare(metric, current, baseline)`` computes ``metric(current) − metric(baseline)`` where
the baseline is another version's labelled window (two independent samples) or a fixed
reference value (e.g. the profile's reference performance), and a confidence interval for it:

* **bootstrap** (any metric): ``n_resamples`` resamples with replacement of each sample,
  independently, seeded (the same inputs and seed give the same interval); percentile interval
  of the resampled differences (NumPy's linear quantiles). Resamples on which the metric is
  undefined (e.g. one class only, for ROC AUC) are dropped.
* **DeLong** (ROC AUC): the difference ± ``z`` · ``sqrt(var_current + var_baseline)`` with
  each variance from DeLong's structural components (independent samples, so no covariance;
  ``var_baseline = 0`` against a fixed value). Exact in ``O(n log n)``, no resampling.

:func:`degraded` is the alert rule: the interval must exclude zero on the *bad* side of the
metric's :data:`DIRECTION` **and** the point difference must be at least ``min_effect`` in
that direction. The first condition keeps small windows from alerting on noise, the second
keeps large windows from alerting on differences nobody cares about. With a 95% interval the
chance of a false flag between two equally good versions is at most 2.5% per comparison (one
side of the interval), and lower still with ``min_effect > 0``.

``positive_rate``, ``label_positive_rate`` and ``bias`` have no better side: a shift either
way counts (direction ``"either"``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from driftd.performance import kernels as K
from driftd.performance.metrics import (
    FloatArray,
    U8Array,
    prepare_classification,
    prepare_regression,
    task_of,
)

_SEED_MASK = (1 << 63) - 1  # seeds are used modulo 2⁶³ (any int works)

Direction = Literal["higher", "lower", "either"]
Method = Literal["auto", "bootstrap", "delong"]

DIRECTION: dict[str, Direction] = {
    "accuracy": "higher",
    "precision": "higher",
    "recall": "higher",
    "f1": "higher",
    "roc_auc": "higher",
    "log_loss": "lower",
    "brier": "lower",
    "ece": "lower",
    "positive_rate": "either",
    "label_positive_rate": "either",
    "mae": "lower",
    "rmse": "lower",
    "mape": "lower",
    "bias": "either",
}

# Minimum effects worth an alert, in the metric's own units. Regression errors are in the
# target's units, so they default to 0 (any significant change) and should be configured.
DEFAULT_MIN_EFFECT: dict[str, float] = {
    "accuracy": 0.02,
    "precision": 0.03,
    "recall": 0.03,
    "f1": 0.03,
    "roc_auc": 0.02,
    "log_loss": 0.05,
    "brier": 0.01,
    "ece": 0.02,
    "positive_rate": 0.05,
    "label_positive_rate": 0.05,
    "mae": 0.0,
    "rmse": 0.0,
    "mape": 0.05,
    "bias": 0.0,
}


@dataclass(frozen=True, slots=True)
class Sample:
    """A labelled window: ``pred`` is the score (classification) or prediction (regression),
    ``y`` the label or target; ``pred_labels`` optional predicted classes (-1 = not given)."""

    pred: npt.ArrayLike
    y: npt.ArrayLike
    pred_labels: npt.ArrayLike | None = None


SampleLike = Sample | tuple[npt.ArrayLike, npt.ArrayLike]


@dataclass(frozen=True, slots=True)
class Comparison:
    """Outcome of :func:`compare`; ``difference = current − baseline``."""

    metric: str
    current: float
    baseline: float
    difference: float
    ci_low: float
    ci_high: float
    level: float
    method: Literal["bootstrap", "delong"]
    direction: Direction
    min_effect: float
    n_current: int
    n_baseline: int | None  # None: the baseline is a fixed value
    degraded: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN as ``None``): the shape of a ``performance.degraded`` payload's
        metric entry."""

        def num(x: float) -> float | None:
            return x if math.isfinite(x) else None

        return {
            "metric": self.metric,
            "current": num(self.current),
            "baseline": num(self.baseline),
            "difference": num(self.difference),
            "ci": [num(self.ci_low), num(self.ci_high)],
            "level": self.level,
            "method": self.method,
            "direction": self.direction,
            "min_effect": self.min_effect,
            "n_current": self.n_current,
            "n_baseline": self.n_baseline,
            "degraded": self.degraded,
        }


@dataclass(frozen=True, slots=True)
class _Prepared:
    s: FloatArray
    y: FloatArray
    p: U8Array


def _as_sample(x: SampleLike) -> Sample:
    return x if isinstance(x, Sample) else Sample(x[0], x[1])


def _prepare(metric: str, sample: SampleLike, threshold: float) -> _Prepared:
    smp = _as_sample(sample)
    if task_of(metric) == "classification":
        s, y, p = prepare_classification(smp.pred, smp.y, threshold, smp.pred_labels)
        return _Prepared(s, y, p)
    s, y = prepare_regression(smp.pred, smp.y)
    return _Prepared(s, y, np.zeros(0, dtype=np.uint8))


def _value(mid: int, d: _Prepared) -> float:
    return float(K.metric_sorted(mid, d.s, d.y, d.p, K.ECE_EDGES))


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")


def _baseline(
    metric: str, baseline: SampleLike | float, threshold: float
) -> tuple[_Prepared | None, float]:
    if isinstance(baseline, int | float):
        return None, float(baseline)
    base = _prepare(metric, baseline, threshold)
    return base, _value(K.METRIC_IDS[metric], base)


def _bootstrap(
    mid: int,
    cur: _Prepared,
    base: _Prepared | None,
    base_value: float,
    level: float,
    n_resamples: int,
    seed: int,
) -> tuple[float, float, float]:
    _check_level(level)
    if n_resamples < 1:
        raise ValueError("n_resamples must be at least 1")
    b = base if base is not None else _Prepared(np.zeros(0), np.zeros(0), np.zeros(0, np.uint8))
    with np.errstate(all="ignore"):  # wrapping uint64 arithmetic when run without the JIT
        diff = _value(mid, cur) - base_value
        diffs = K.bootstrap_diffs(
            mid, cur.s, cur.y, cur.p, b.s, b.y, b.p, base is not None, base_value,
            n_resamples, seed & _SEED_MASK, K.ECE_EDGES,
        )  # fmt: skip
    ok = diffs[np.isfinite(diffs)]
    if ok.size == 0 or not math.isfinite(diff):
        return diff, math.nan, math.nan
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(ok, [alpha, 1.0 - alpha])
    return diff, float(lo), float(hi)


def _delong(
    cur: _Prepared, base: _Prepared | None, base_value: float, level: float
) -> tuple[float, float, float]:
    _check_level(level)
    auc1, var1 = K.delong_sorted(cur.s, cur.y)
    var2 = 0.0
    if base is not None:
        base_value, var2 = K.delong_sorted(base.s, base.y)
    diff = float(auc1 - base_value)
    half = NormalDist().inv_cdf(0.5 + level / 2.0) * math.sqrt(var1 + var2)
    if not math.isfinite(half) or not math.isfinite(diff):
        return diff, math.nan, math.nan
    return diff, diff - half, diff + half


def bootstrap_ci(
    metric: str,
    current: SampleLike,
    baseline: SampleLike | float,
    *,
    threshold: float = 0.5,
    level: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``(difference, low, high)``: point difference and percentile bootstrap interval."""
    task_of(metric)
    base, base_value = _baseline(metric, baseline, threshold)
    cur = _prepare(metric, current, threshold)
    return _bootstrap(K.METRIC_IDS[metric], cur, base, base_value, level, n_resamples, seed)


def delong_ci(
    current: SampleLike,
    baseline: SampleLike | float,
    *,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """``(difference, low, high)`` for ROC AUC with DeLong's variance (independent samples)."""
    base, base_value = _baseline("roc_auc", baseline, 0.5)
    return _delong(_prepare("roc_auc", current, 0.5), base, base_value, level)


def degraded(
    metric: str,
    baseline: float,
    current: float,
    ci: tuple[float, float],
    min_effect: float,
) -> bool:
    """Whether ``current`` is worse than ``baseline``: the interval of ``current − baseline``
    lies entirely on the bad side of zero and the point difference is at least
    ``min_effect`` on that side. Anything undefined (NaN) is not a degradation."""
    lo, hi = ci
    effect = current - baseline
    if not all(math.isfinite(x) for x in (lo, hi, effect)):
        return False
    direction = DIRECTION[metric]
    if direction == "higher":
        return hi < 0.0 and -effect >= min_effect
    if direction == "lower":
        return lo > 0.0 and effect >= min_effect
    return (hi < 0.0 or lo > 0.0) and abs(effect) >= min_effect


def compare(
    metric: str,
    current: SampleLike,
    baseline: SampleLike | float,
    *,
    threshold: float = 0.5,
    level: float = 0.95,
    min_effect: float | None = None,
    method: Method = "auto",
    n_resamples: int = 1000,
    seed: int = 0,
) -> Comparison:
    """Compare ``metric`` on the current window with a baseline window or fixed value.

    ``method="auto"`` uses DeLong for ``roc_auc`` and the bootstrap otherwise;
    ``min_effect=None`` takes :data:`DEFAULT_MIN_EFFECT`. Raises ``ValueError`` only on misuse
    (unknown metric, DeLong for another metric, a level outside (0, 1))."""
    task_of(metric)
    if method == "auto":
        method = "delong" if metric == "roc_auc" else "bootstrap"
    if method == "delong" and metric != "roc_auc":
        raise ValueError(f"DeLong intervals are for roc_auc only, not {metric!r}")
    effect = DEFAULT_MIN_EFFECT[metric] if min_effect is None else float(min_effect)
    mid = K.METRIC_IDS[metric]
    cur = _prepare(metric, current, threshold)
    cur_value = _value(mid, cur)
    base, base_value = _baseline(metric, baseline, threshold)
    if method == "delong":
        diff, lo, hi = _delong(cur, base, base_value, level)
    else:
        diff, lo, hi = _bootstrap(mid, cur, base, base_value, level, n_resamples, seed)
    return Comparison(
        metric=metric,
        current=cur_value,
        baseline=base_value,
        difference=diff,
        ci_low=lo,
        ci_high=hi,
        level=level,
        method=method,
        direction=DIRECTION[metric],
        min_effect=effect,
        n_current=int(cur.s.shape[0]),
        n_baseline=None if base is None else int(base.s.shape[0]),
        degraded=degraded(metric, base_value, cur_value, (lo, hi), effect),
    )


def compare_all(
    metrics: Iterable[str],
    current: SampleLike,
    baseline: SampleLike | dict[str, float],
    *,
    threshold: float = 0.5,
    level: float = 0.95,
    min_effect: dict[str, float] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Comparison]:
    """:func:`compare` for several metrics against one baseline window, or against fixed
    reference values (``{metric: value}``; metrics without a value are skipped)."""
    out: dict[str, Comparison] = {}
    for m in metrics:
        if isinstance(baseline, dict):
            if m not in baseline:
                continue
            base: SampleLike | float = float(baseline[m])
        else:
            base = baseline
        out[m] = compare(
            m, current, base, threshold=threshold, level=level,
            min_effect=(min_effect or {}).get(m), n_resamples=n_resamples, seed=seed,
        )  # fmt: skip
    return out

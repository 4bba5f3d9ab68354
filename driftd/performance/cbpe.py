"""Confidence-based performance estimation (CBPE, as NannyML's ``CBPE``) for binary
classifiers: a window's accuracy, precision, recall, F1 and ROC AUC estimated from its scores
alone, long before its labels arrive.

**Fit** (on reference scores *with* labels): an isotonic calibration map from score to
probability of the positive class (pool-adjacent-violators, :mod:`driftd.kernels.isotonic`;
equal to scikit-learn's ``IsotonicRegression(out_of_bounds="clip")``), the reference's
realised metrics (:func:`driftd.performance.metrics.classification_metrics`), and per metric
the two numbers of NannyML's sampling error, ``se(n) = std / sqrt(n · fraction)``: the
standard deviation of the metric's per-event contribution in the reference and the share of
events that contribute (positive predictions for precision, positive labels for recall, …).

**Estimate** (a window's scores): with calibrated probabilities ``p`` and the predicted class
``ŷ`` (``score >= threshold``, or the event's own predicted label), the expected confusion
matrix is ``TP = Σ_{ŷ=1} p``, ``FP = Σ_{ŷ=1} (1 - p)``, ``FN = Σ_{ŷ=0} p``,
``TN = Σ_{ŷ=0} (1 - p)``, and

==================  ==============================================================
``accuracy``        ``(TP + TN) / n``
``precision``       ``TP / (TP + FP)``
``recall``          ``TP / (TP + FN)``
``f1``              ``TP / (TP + (FP + FN) / 2)``
``roc_auc``         area under the expected ROC curve: events by descending score,
                    each adding ``p`` expected positives and ``1 - p`` negatives
                    (tied scores form one step, i.e. count one half)
``positive_rate``   ``(TP + FP) / n`` — observed, not estimated: the predictions
                    are known
==================  ==============================================================

each with the band ``estimate ± band_sigmas · se(n)`` (``band_sigmas = 3``, NannyML's
``SAMPLING_ERROR_RANGE``) clipped to ``[0, 1]``. These equal NannyML's binary CBPE with
calibration on (its ``needs_calibration`` check can turn calibration off), except that an
undefined metric (no predicted positive for precision, …) is NaN where NannyML returns 0.

**Validity.** Calibrated probabilities stay right under *covariate shift* — the inputs'
distribution moves, ``P(label | score)`` does not — which is what CBPE assumes; a change of
``P(label | score)`` itself (concept drift) is invisible to it and needs the labels
(:mod:`driftd.performance.compare`). The band is the window's sampling error at the
reference's spread, not the error of the calibration map.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np
import numpy.typing as npt

from driftd.kernels import isotonic
from driftd.performance.compare import DEFAULT_MIN_EFFECT, DIRECTION
from driftd.performance.metrics import classification_metrics, json_metrics

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

CBPE_METRICS: tuple[str, ...] = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "positive_rate",
)
DEFAULT_BAND_SIGMAS = 3.0


class MetricEstimate(TypedDict):
    """One metric of a window: the estimate and its band (None when undefined)."""

    estimate: float | None
    lower: float | None
    upper: float | None


# =========================================================================== isotonic map


def isotonic_fit(
    x: npt.ArrayLike, y: npt.ArrayLike, w: npt.ArrayLike | None = None
) -> tuple[FloatArray, FloatArray]:
    """The non-decreasing least-squares fit of ``y`` on ``x`` as interpolation points
    ``(xs, ys)`` — scikit-learn's ``X_thresholds_`` / ``y_thresholds_``: points inside a
    constant run dropped, since they change no interpolated value."""
    xa = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
    ya = np.ascontiguousarray(y, dtype=np.float64).reshape(-1)
    wa = np.ones_like(xa) if w is None else np.ascontiguousarray(w, dtype=np.float64).reshape(-1)
    if not xa.shape == ya.shape == wa.shape:
        raise ValueError("x, y and w differ in length")
    keep = (wa > 0) & np.isfinite(xa) & np.isfinite(ya)
    xa, ya, wa = xa[keep], ya[keep], wa[keep]
    if xa.shape[0] == 0:
        raise ValueError("isotonic_fit needs at least one point")
    order = np.lexsort((ya, xa))
    ux, uy, uw = isotonic.merge_ties(
        np.ascontiguousarray(xa[order]),
        np.ascontiguousarray(ya[order]),
        np.ascontiguousarray(wa[order]),
    )
    fy = isotonic.pav(uy, uw)
    mask = np.ones(fy.shape[0], dtype=bool)
    mask[1:-1] = (fy[1:-1] != fy[:-2]) | (fy[1:-1] != fy[2:])
    return np.ascontiguousarray(ux[mask]), np.ascontiguousarray(fy[mask])


def isotonic_predict(xs: FloatArray, ys: FloatArray, x: npt.ArrayLike) -> FloatArray:
    """Linear interpolation between the fitted points, constant beyond them."""
    xa = np.asarray(x, dtype=np.float64)
    if ys.shape[0] == 1:
        return np.full(xa.shape, float(ys[0]))
    out: FloatArray = np.interp(xa, xs, ys)
    return out


# =========================================================================== estimates


def _predicted(
    scores: FloatArray, threshold: float, pred_labels: npt.ArrayLike | None
) -> BoolArray:
    predicted = scores >= threshold
    if pred_labels is not None:
        pl = np.asarray(pred_labels).reshape(-1)
        if pl.shape != scores.shape:
            raise ValueError("pred_labels and scores differ in length")
        predicted = np.where(pl >= 0, pl > 0, predicted)
    return predicted


def _div(a: float, b: float) -> float:
    return a / b if b > 0.0 else math.nan


def expected_auc(probs: FloatArray, scores: FloatArray) -> float:
    """ROC AUC of the expected ROC curve (module docstring); NaN without expected
    positives or negatives."""
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    p = probs[order]
    if s.shape[0] == 0:
        return math.nan
    starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
    tp = np.add.reduceat(p, starts)
    fp = np.add.reduceat(1.0 - p, starts)
    total_p = float(tp.sum())
    total_n = float(fp.sum())
    if not (total_p > 0.0 and total_n > 0.0):
        return math.nan
    before = np.cumsum(tp) - tp
    return float(np.sum(fp * (before + 0.5 * tp)) / (total_p * total_n))


def expected_metrics(
    probs: npt.ArrayLike, predicted: npt.ArrayLike, scores: npt.ArrayLike
) -> dict[str, float]:
    """The :data:`CBPE_METRICS` from calibrated probabilities, predicted classes (bool) and
    the raw scores (for the ROC order): the direct expected-confusion-matrix computation."""
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    yhat = np.asarray(predicted, dtype=bool).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    n = p.shape[0]
    if n == 0:
        return {m: math.nan for m in CBPE_METRICS}
    tp = float(np.sum(p[yhat]))
    fp = float(np.sum(1.0 - p[yhat]))
    fn = float(np.sum(p[~yhat]))
    tn = float(np.sum(1.0 - p[~yhat]))
    return {
        "accuracy": (tp + tn) / n,
        "precision": _div(tp, tp + fp),
        "recall": _div(tp, tp + fn),
        "f1": _div(tp, tp + 0.5 * (fp + fn)),
        "roc_auc": expected_auc(p, s),
        "positive_rate": float(np.count_nonzero(yhat)) / n,
    }


def _sampling_components(
    scores: FloatArray, labels: BoolArray, predicted: BoolArray
) -> dict[str, tuple[float, float]]:
    """Per metric ``(std, fraction)`` of NannyML's ``sampling_error`` module (binary)."""
    n = scores.shape[0]
    tp = labels & predicted
    fp = ~labels & predicted
    fn = labels & ~predicted

    def std(x: npt.NDArray[Any]) -> float:
        return float(np.std(x.astype(np.float64))) if x.size else math.nan

    out: dict[str, tuple[float, float]] = {
        "accuracy": (std(labels == predicted), 1.0),
        # per positive prediction: 1 if right
        "precision": (std(tp[predicted]), float(np.count_nonzero(predicted)) / n),
        # per positive label: 1 if found
        "recall": (std(tp[labels]), float(np.count_nonzero(labels)) / n),
        "positive_rate": (std(predicted), 1.0),
    }
    # F1: events that count (TP, FP, FN), TP scaled so that their mean is F1
    relevant = tp | fp | fn
    k = int(np.count_nonzero(relevant))
    if k:
        n_tp = int(np.count_nonzero(tp))
        factor = k / (0.5 * (k - n_tp) + n_tp)
        out["f1"] = (std(tp[relevant] * factor), k / n)
    else:
        out["f1"] = (math.nan, 0.0)
    # ROC AUC: spread of the share of negatives ranked below each positive (the minority
    # class taken as positive), NannyML's auroc_sampling_error_components
    y = labels.astype(np.float64)
    s = scores
    if np.mean(y) > 0.5:
        y = 1.0 - y
        s = 1.0 - s
    order = np.argsort(s, kind="stable")
    ranks = np.flatnonzero(y[order] > 0)
    # NannyML drops the rank value 0 (np.unique(y * rank)[1:]), so a positive ranked first
    # is skipped — kept here for equal results
    ranks = ranks[ranks > 0]
    n_pos = float(np.sum(y))
    n_neg = n - n_pos
    if ranks.size and n_neg > 0:
        below = (ranks - np.arange(ranks.shape[0])) / n_neg
        out["roc_auc"] = (float(np.std(below)), n_pos / n)
    else:
        out["roc_auc"] = (math.nan, 0.0)
    return out


def _clean_scores(scores: npt.ArrayLike) -> tuple[FloatArray, BoolArray]:
    s = np.ascontiguousarray(scores, dtype=np.float64).reshape(-1)
    keep = np.isfinite(s)
    return s, keep


@dataclass(frozen=True, slots=True, eq=False)
class CBPE:
    """A fitted estimator (build with :func:`fit_cbpe`)."""

    threshold: float  # predicted positive when score >= threshold
    calibration_x: FloatArray  # isotonic map: interpolation points (scores) ...
    calibration_y: FloatArray  # ... and probabilities
    sampling: dict[str, tuple[float, float]]  # metric -> (std, fraction)
    reference: dict[str, float]  # realised classification metrics of the reference
    reference_events: int
    band_sigmas: float = DEFAULT_BAND_SIGMAS

    def calibrated(self, scores: npt.ArrayLike) -> FloatArray:
        """Calibrated probabilities of the positive class."""
        return isotonic_predict(self.calibration_x, self.calibration_y, scores)

    def sampling_error(self, metric: str, n: int) -> float:
        """NannyML's sampling error of ``metric`` for a window of ``n`` events."""
        std, fraction = self.sampling[metric]
        size = n * fraction
        if not (size > 0.0 and math.isfinite(std)):
            return math.nan
        return std / math.sqrt(size)

    def estimate_values(
        self, scores: npt.ArrayLike, *, pred_labels: npt.ArrayLike | None = None
    ) -> dict[str, float]:
        """The point estimates of the window (NaN scores dropped)."""
        s, keep = _clean_scores(scores)
        yhat = _predicted(s, self.threshold, pred_labels)
        s, yhat = s[keep], yhat[keep]
        return expected_metrics(self.calibrated(s), yhat, s)

    def estimate(
        self, scores: npt.ArrayLike, *, pred_labels: npt.ArrayLike | None = None
    ) -> dict[str, MetricEstimate]:
        """``{metric: {"estimate", "lower", "upper"}}`` for the :data:`CBPE_METRICS`,
        JSON-ready (None where undefined)."""
        s, keep = _clean_scores(scores)
        n = int(np.count_nonzero(keep))
        values = self.estimate_values(s, pred_labels=pred_labels)
        out: dict[str, MetricEstimate] = {}
        for metric in CBPE_METRICS:
            v = values[metric]
            half = self.band_sigmas * self.sampling_error(metric, n)
            if math.isfinite(v) and math.isfinite(half):
                out[metric] = {
                    "estimate": v,
                    "lower": max(v - half, 0.0),
                    "upper": min(v + half, 1.0),
                }
            else:
                out[metric] = {
                    "estimate": v if math.isfinite(v) else None,
                    "lower": None,
                    "upper": None,
                }
        return out

    # ----------------------------------------------------------------- state

    def to_state(self) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
        """``(meta, arrays)``: JSON-ready metadata and plain NumPy arrays (no pickle)."""
        meta: dict[str, Any] = {
            "method": "cbpe",
            "threshold": self.threshold,
            "band_sigmas": self.band_sigmas,
            "reference_events": self.reference_events,
            "sampling": {
                m: [None if not math.isfinite(v) else v for v in sf]
                for m, sf in self.sampling.items()
            },
            "reference": json_metrics(self.reference),
        }
        arrays: dict[str, npt.NDArray[Any]] = {
            "calibration_x": self.calibration_x,
            "calibration_y": self.calibration_y,
        }
        return meta, arrays

    @staticmethod
    def from_state(meta: Mapping[str, Any], arrays: Mapping[str, npt.NDArray[Any]]) -> CBPE:
        """Inverse of :meth:`to_state`; ``ValueError`` on inconsistent state."""
        if meta.get("method") != "cbpe":
            raise ValueError(f"not a cbpe state: {meta.get('method')!r}")
        xs = np.ascontiguousarray(arrays["calibration_x"], dtype=np.float64)
        ys = np.ascontiguousarray(arrays["calibration_y"], dtype=np.float64)
        if xs.ndim != 1 or xs.shape != ys.shape or xs.shape[0] == 0:
            raise ValueError("cbpe state: calibration arrays must be equal, non-empty 1-D")

        def num(v: Any) -> float:
            return math.nan if v is None else float(v)

        return CBPE(
            threshold=float(meta["threshold"]),
            calibration_x=xs,
            calibration_y=ys,
            sampling={str(m): (num(sf[0]), num(sf[1])) for m, sf in dict(meta["sampling"]).items()},
            reference={str(k): num(v) for k, v in dict(meta["reference"]).items()},
            reference_events=int(meta["reference_events"]),
            band_sigmas=float(meta["band_sigmas"]),
        )


def fit_cbpe(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    threshold: float = 0.5,
    pred_labels: npt.ArrayLike | None = None,
    band_sigmas: float = DEFAULT_BAND_SIGMAS,
) -> CBPE:
    """Fit on the reference: ``scores`` (probability of the positive class), ``labels``
    (``> 0`` positive), optional predicted labels (``-1`` = use the threshold). Pairs with a
    missing score or label are dropped. ``ValueError`` when nothing is left."""
    s = np.ascontiguousarray(scores, dtype=np.float64).reshape(-1)
    y = np.ascontiguousarray(labels, dtype=np.float64).reshape(-1)
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in length: {s.shape[0]} != {y.shape[0]}")
    if not band_sigmas > 0.0:
        raise ValueError("band_sigmas must be > 0")
    yhat = _predicted(s, threshold, pred_labels)
    keep = np.isfinite(s) & np.isfinite(y)
    s, y, yhat = s[keep], y[keep], yhat[keep]
    if s.shape[0] == 0:
        raise ValueError("cbpe needs reference scores with labels")
    positive = y > 0
    xs, ys = isotonic_fit(s, positive.astype(np.float64))
    reference = classification_metrics(
        s, positive.astype(np.float64), threshold, pred_labels=yhat.astype(np.int8)
    )
    return CBPE(
        threshold=float(threshold),
        calibration_x=xs,
        calibration_y=ys,
        sampling=_sampling_components(s, positive, yhat),
        reference=reference,
        reference_events=int(s.shape[0]),
        band_sigmas=float(band_sigmas),
    )


def degraded(
    estimates: Mapping[str, MetricEstimate],
    reference: Mapping[str, float],
    min_effect: Mapping[str, float] | None = None,
) -> list[str]:
    """Metrics whose estimate is worse than the reference's realised value, like
    :func:`driftd.performance.compare.degraded`: the whole band on the bad side of the
    reference (:data:`driftd.performance.compare.DIRECTION`; either side for
    ``positive_rate``) *and* the estimate at least ``min_effect`` (default
    :data:`~driftd.performance.compare.DEFAULT_MIN_EFFECT`) away. With the 3σ band a window
    whose true value equals the reference is flagged with probability about 0.13 % per metric
    (0.27 % for two-sided ``positive_rate``), less with ``min_effect``."""
    effects = DEFAULT_MIN_EFFECT if min_effect is None else {**DEFAULT_MIN_EFFECT, **min_effect}
    out: list[str] = []
    for metric, e in estimates.items():
        ref = reference.get(metric, math.nan)
        est, lo, hi = e["estimate"], e["lower"], e["upper"]
        if est is None or lo is None or hi is None or not math.isfinite(ref):
            continue
        effect = effects.get(metric, 0.0)
        direction = DIRECTION.get(metric, "either")
        low = hi < ref and ref - est >= effect
        high = lo > ref and est - ref >= effect
        if (direction == "higher" and low) or (direction == "lower" and high):
            out.append(metric)
        elif direction == "either" and (low or high):
            out.append(metric)
    return out


__all__ = [
    "CBPE",
    "CBPE_METRICS",
    "DEFAULT_BAND_SIGMAS",
    "MetricEstimate",
    "degraded",
    "expected_auc",
    "expected_metrics",
    "fit_cbpe",
    "isotonic_fit",
    "isotonic_predict",
]

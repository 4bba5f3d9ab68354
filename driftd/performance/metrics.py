"""Model-performance metrics on a window of labelled predictions.

Classification (binary): ``scores`` are the model's probability of the positive class,
``labels`` are 1 for positive and 0 for negative (any value ``> 0`` counts as positive, so
±1 labels work too). An event is *predicted positive* when ``score >= threshold``, or, when
``pred_labels`` is given, when its predicted label is 1 (a predicted label of -1 means "not
given" and falls back to the threshold).

=========================  ================================================================
metric                     definition (scikit-learn equivalent, equal to 1e-9)
=========================  ================================================================
``accuracy``               share of events whose predicted class is the label
                           (``accuracy_score``)
``precision``              ``tp / (tp + fp)`` (``precision_score(zero_division=nan)``)
``recall``                 ``tp / (tp + fn)`` (``recall_score(zero_division=nan)``)
``f1``                     ``2tp / (2tp + fp + fn)`` (``f1_score(zero_division=nan)``)
``roc_auc``                area under the ROC curve, ties counted one half
                           (``roc_auc_score``)
``log_loss``               mean ``-log p(label)``, probabilities clipped to
                           ``[eps, 1 - eps]`` (``log_loss(labels=[0, 1])``)
``brier``                  mean ``(label - score)²`` (``brier_score_loss``)
``positive_rate``          share predicted positive — the "approval rate" when positive
                           means "approve"
``label_positive_rate``    share of positive labels — the "default rate" when a positive
                           label means "defaulted"
``ece``                    expected calibration error, 10 equal-width bins on ``[0, 1]``
                           binned like ``calibration_curve(strategy="uniform")``:
                           ``Σ_bins (n_bin / n) |mean(label) - mean(score)|``
=========================  ================================================================

Regression: ``mae``, ``rmse`` (``root_mean_squared_error``), ``mape``
(``mean_absolute_percentage_error``: ``|pred - y| / max(|y|, eps)``, a fraction, not
percent) and ``bias`` (mean of ``pred - y``: positive when the model over-predicts).

Pairs where the score/prediction or the label/target is NaN are dropped. A metric that is
undefined on the window — anything on an empty window, ROC AUC with a single class,
precision with nothing predicted positive, recall with no positive label — is NaN. Nothing
here raises on data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from driftd.performance import kernels as K

FloatArray = npt.NDArray[np.float64]
U8Array = npt.NDArray[np.uint8]
Task = Literal["classification", "regression"]

CLASSIFICATION_METRICS: tuple[str, ...] = K.CLASSIFICATION_NAMES
REGRESSION_METRICS: tuple[str, ...] = K.REGRESSION_NAMES
METRICS: tuple[str, ...] = CLASSIFICATION_METRICS + REGRESSION_METRICS


def task_of(metric: str) -> Task:
    """``"classification"`` or ``"regression"``; ``ValueError`` for an unknown name."""
    if metric in CLASSIFICATION_METRICS:
        return "classification"
    if metric in REGRESSION_METRICS:
        return "regression"
    raise ValueError(f"unknown performance metric {metric!r}; known: {', '.join(METRICS)}")


def _f64(a: npt.ArrayLike) -> FloatArray:
    return np.ascontiguousarray(a, dtype=np.float64).reshape(-1)


def prepare_classification(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    threshold: float = 0.5,
    pred_labels: npt.ArrayLike | None = None,
) -> tuple[FloatArray, FloatArray, U8Array]:
    """``(s, y, p)`` as the kernels take them: NaN pairs dropped, sorted by score (stable),
    labels as 0.0/1.0, ``p`` = 1 where predicted positive."""
    s = _f64(scores)
    y = _f64(labels)
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in length: {s.shape[0]} != {y.shape[0]}")
    keep = ~(np.isnan(s) | np.isnan(y))
    predicted = s >= threshold
    if pred_labels is not None:
        pl = np.asarray(pred_labels).reshape(-1)
        if pl.shape != s.shape:
            raise ValueError("pred_labels and scores differ in length")
        given = pl >= 0
        predicted = np.where(given, pl > 0, predicted)
    s, y, predicted = s[keep], y[keep], predicted[keep]
    order = np.argsort(s, kind="stable")
    return (
        np.ascontiguousarray(s[order]),
        (y[order] > 0).astype(np.float64),
        predicted[order].astype(np.uint8),
    )


def prepare_regression(pred: npt.ArrayLike, y: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """``(pred, y)`` as float64 with NaN pairs dropped."""
    p = _f64(pred)
    t = _f64(y)
    if p.shape != t.shape:
        raise ValueError(f"pred and y differ in length: {p.shape[0]} != {t.shape[0]}")
    keep = ~(np.isnan(p) | np.isnan(t))
    if keep.all():
        return p, t
    return np.ascontiguousarray(p[keep]), np.ascontiguousarray(t[keep])


def classification_metrics(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    threshold: float = 0.5,
    *,
    pred_labels: npt.ArrayLike | None = None,
) -> dict[str, float]:
    """Every classification metric (see the module docstring) on one window."""
    s, y, p = prepare_classification(scores, labels, threshold, pred_labels)
    out = np.empty(len(CLASSIFICATION_METRICS))
    with np.errstate(all="ignore"):
        K.classification_all(s, y, p, K.ECE_EDGES, out)
    return {name: float(v) for name, v in zip(CLASSIFICATION_METRICS, out, strict=True)}


def regression_metrics(pred: npt.ArrayLike, y: npt.ArrayLike) -> dict[str, float]:
    """MAE, RMSE, MAPE and bias on one window."""
    p, t = prepare_regression(pred, y)
    out = np.empty(len(REGRESSION_METRICS))
    with np.errstate(all="ignore"):
        K.regression_all(p, t, out)
    return {name: float(v) for name, v in zip(REGRESSION_METRICS, out, strict=True)}


def metric_value(
    metric: str,
    pred: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    threshold: float = 0.5,
    pred_labels: npt.ArrayLike | None = None,
) -> float:
    """One metric by name (``pred`` is the score for classification metrics)."""
    task = task_of(metric)
    mid = K.METRIC_IDS[metric]
    with np.errstate(all="ignore"):
        if task == "classification":
            s, t, p = prepare_classification(pred, y, threshold, pred_labels)
        else:
            s, t = prepare_regression(pred, y)
            p = np.zeros(0, dtype=np.uint8)
        return float(K.metric_sorted(mid, s, t, p, K.ECE_EDGES))


def json_metrics(values: Mapping[str, float]) -> dict[str, Any]:
    """``values`` with NaN/±inf as ``None``, ready for a JSON document."""
    return {k: (v if math.isfinite(v) else None) for k, v in values.items()}

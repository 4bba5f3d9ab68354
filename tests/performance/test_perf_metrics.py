"""Performance metrics vs scikit-learn (to 1e-9) and the numba kernels vs their NumPy twins.

Runs unchanged with ``NUMBA_DISABLE_JIT=1``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_absolute_percentage_error,
    precision_score,
    recall_score,
    roc_auc_score,
    root_mean_squared_error,
)

from driftd.performance import kernels as K
from driftd.performance.metrics import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    classification_metrics,
    metric_value,
    prepare_classification,
    regression_metrics,
    task_of,
)

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------ strategies

# extreme probabilities (log-loss clipping), the threshold itself and a few tied values
_EXTREME = st.sampled_from(
    [0.0, 1.0, 5e-324, 1e-300, 1e-17, 1.0 - 1e-16, 1.0 - 2.2e-16, 0.5, 0.1, 0.3, 0.7, 0.9]
)
_ANY_P = st.floats(0.0, 1.0, allow_nan=False)
_TIED_P = st.integers(0, 4).map(lambda k: k / 4.0)


@st.composite
def classified(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """(scores, labels): ties, extremes, single-class, all-correct and random windows."""
    n = draw(st.integers(1, 60))
    kind = draw(st.sampled_from(["any", "tied", "extreme", "mixed"]))
    elements = {"any": _ANY_P, "tied": _TIED_P, "extreme": _EXTREME}.get(
        kind, st.one_of(_ANY_P, _TIED_P, _EXTREME)
    )
    s = draw(arrays(np.float64, n, elements=elements))
    lab = draw(st.sampled_from(["random", "zeros", "ones", "correct"]))
    if lab == "zeros":
        y = np.zeros(n)
    elif lab == "ones":
        y = np.ones(n)
    elif lab == "correct":
        y = (s >= 0.5).astype(np.float64)
    else:
        y = draw(arrays(np.float64, n, elements=st.sampled_from([0.0, 1.0])))
    return s, y


_REAL = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
_SMALL = st.sampled_from([0.0, -0.0, 1e-300, -1e-12, 2.5e-310, 1.0, -1.0, 3.0])


@st.composite
def regressed(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(1, 60))
    el = st.one_of(_REAL, _SMALL)
    return draw(arrays(np.float64, n, elements=el)), draw(arrays(np.float64, n, elements=el))


# ------------------------------------------------------------------ references


def close(a: float, b: float, rel: float = 1e-9, abs_: float = 1e-12) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


def ece_reference(s: np.ndarray, y: np.ndarray) -> float:
    """ECE from sklearn's calibration_curve, weighted by the bins' counts."""
    prob_true, prob_pred = calibration_curve(y, s, n_bins=10, strategy="uniform", pos_label=1)
    bins = np.linspace(0.0, 1.0, 11)
    counts = np.bincount(np.searchsorted(bins[1:-1], s), minlength=10)
    counts = counts[counts > 0]
    return float(np.sum(counts / s.size * np.abs(prob_true - prob_pred)))


def sklearn_classification(s: np.ndarray, y: np.ndarray, thr: float = 0.5) -> dict[str, float]:
    yi = y.astype(int)
    pred = (s >= thr).astype(int)
    both = 0 < yi.sum() < yi.size
    return {
        "accuracy": accuracy_score(yi, pred),
        "precision": precision_score(yi, pred, zero_division=np.nan),
        "recall": recall_score(yi, pred, zero_division=np.nan),
        "f1": f1_score(yi, pred, zero_division=np.nan),
        "roc_auc": roc_auc_score(yi, s) if both else math.nan,
        "log_loss": log_loss(yi, s, labels=[0, 1]),
        "brier": brier_score_loss(yi, s, pos_label=1),
        "positive_rate": float(np.mean(pred)),
        "label_positive_rate": float(np.mean(yi)),
        "ece": ece_reference(s, y),
    }


# ------------------------------------------------------------------ vs scikit-learn


@SETTINGS
@given(classified())
def test_classification_metrics_equal_sklearn(data: tuple[np.ndarray, np.ndarray]) -> None:
    s, y = data
    got = classification_metrics(s, y)
    want = sklearn_classification(s, y)
    assert list(got) == list(CLASSIFICATION_METRICS)
    for name in CLASSIFICATION_METRICS:
        assert close(got[name], float(want[name])), (name, got[name], want[name])


@SETTINGS
@given(classified(), st.sampled_from([0.0, 0.25, 0.3, 0.5, 0.9, 1.0]))
def test_threshold_moves_the_confusion_metrics(
    data: tuple[np.ndarray, np.ndarray], thr: float
) -> None:
    s, y = data
    got = classification_metrics(s, y, threshold=thr)
    want = sklearn_classification(s, y, thr)
    for name in ("accuracy", "precision", "recall", "f1", "positive_rate", "roc_auc"):
        assert close(got[name], float(want[name])), (name, got[name], want[name])


@SETTINGS
@given(regressed())
def test_regression_metrics_equal_sklearn(data: tuple[np.ndarray, np.ndarray]) -> None:
    pred, y = data
    got = regression_metrics(pred, y)
    assert list(got) == list(REGRESSION_METRICS)
    assert close(got["mae"], mean_absolute_error(y, pred))
    assert close(got["rmse"], root_mean_squared_error(y, pred))
    assert close(got["mape"], mean_absolute_percentage_error(y, pred))
    # the mean error can cancel: compare relative to the mean absolute error
    d = pred - y
    assert math.isclose(got["bias"], float(np.mean(d)), rel_tol=1e-9, abs_tol=1e-9 * got["mae"])


def test_auc_with_many_ties_matches_sklearn_on_a_large_window() -> None:
    rng = np.random.default_rng(7)
    s = np.round(rng.random(20_000), 2)  # 101 distinct values: ties everywhere
    y = (rng.random(20_000) < s).astype(np.float64)
    got = classification_metrics(s, y)
    assert close(got["roc_auc"], roc_auc_score(y, s))
    assert close(got["log_loss"], log_loss(y, s))
    assert close(got["ece"], ece_reference(s, y))


# ------------------------------------------------------------------ undefined cases


def test_empty_window_is_all_nan_and_never_raises() -> None:
    for v in classification_metrics([], []).values():
        assert math.isnan(v)
    for v in regression_metrics([], []).values():
        assert math.isnan(v)
    for name in CLASSIFICATION_METRICS + REGRESSION_METRICS:
        assert math.isnan(metric_value(name, [], []))


def test_single_class_and_nothing_predicted_positive() -> None:
    m = classification_metrics([0.1, 0.2, 0.3], [0, 0, 0])
    assert math.isnan(m["roc_auc"])
    assert math.isnan(m["precision"])  # nothing predicted positive
    assert math.isnan(m["recall"])  # no positive label
    assert math.isnan(m["f1"])
    assert m["accuracy"] == 1.0
    assert m["positive_rate"] == 0.0 and m["label_positive_rate"] == 0.0


def test_all_correct() -> None:
    m = classification_metrics([0.9, 0.8, 0.2, 0.6], [1, 1, 0, 1])
    assert m["accuracy"] == m["precision"] == m["recall"] == m["f1"] == m["roc_auc"] == 1.0


def test_nan_pairs_are_dropped() -> None:
    s = np.array([0.9, np.nan, 0.2, 0.6, 0.3])
    y = np.array([1.0, 1.0, 0.0, np.nan, 1.0])
    assert classification_metrics(s, y) == classification_metrics([0.9, 0.2, 0.3], [1, 0, 1])
    assert regression_metrics(s, y) == regression_metrics([0.9, 0.2, 0.3], [1, 0, 1])


def test_labels_above_zero_are_positive() -> None:
    assert classification_metrics([0.9, 0.2, 0.7], [1, -1, -1]) == classification_metrics(
        [0.9, 0.2, 0.7], [1, 0, 0]
    )


def test_pred_labels_override_the_threshold() -> None:
    s = [0.9, 0.2, 0.7, 0.4]
    y = [1, 0, 0, 1]
    m = classification_metrics(s, y, pred_labels=[0, 1, -1, 1])  # -1: use the threshold
    assert m["positive_rate"] == 0.75
    assert m["accuracy"] == 0.25
    assert m["roc_auc"] == classification_metrics(s, y)["roc_auc"]  # scores only


def test_metric_value_agrees_with_the_dicts() -> None:
    rng = np.random.default_rng(3)
    s = rng.random(500)
    y = (rng.random(500) < s).astype(float)
    cm = classification_metrics(s, y, 0.4)
    for name in CLASSIFICATION_METRICS:
        assert metric_value(name, s, y, threshold=0.4) == cm[name]
    t = rng.normal(size=500)
    rm = regression_metrics(s, t)
    for name in REGRESSION_METRICS:
        assert metric_value(name, s, t) == rm[name]
    assert task_of("mae") == "regression" and task_of("f1") == "classification"
    with pytest.raises(ValueError, match="unknown performance metric"):
        metric_value("r2", s, t)
    with pytest.raises(ValueError, match="differ in length"):
        classification_metrics([0.1], [1, 0])


# ------------------------------------------------------------------ kernels vs twins


@SETTINGS
@given(classified(), st.sampled_from([0.3, 0.5]))
def test_classification_kernel_equals_numpy_twin(
    data: tuple[np.ndarray, np.ndarray], thr: float
) -> None:
    s, y = data
    ss, yy, pp = prepare_classification(s, y, thr)
    out = np.empty(len(CLASSIFICATION_METRICS))
    K.classification_all(ss, yy, pp, K.ECE_EDGES, out)
    # the twin takes any order: give it the unsorted window
    twin = K.classification_all_np(s, (y > 0).astype(float), (s >= thr).astype(np.uint8))
    np.testing.assert_allclose(out, twin, rtol=1e-12, atol=1e-15, equal_nan=True)


@SETTINGS
@given(regressed())
def test_regression_kernel_equals_numpy_twin(data: tuple[np.ndarray, np.ndarray]) -> None:
    pred, y = data
    out = np.empty(4)
    K.regression_all(pred, y, out)
    twin = K.regression_all_np(pred, y)
    np.testing.assert_allclose(out[:3], twin[:3], rtol=1e-12, atol=0.0)
    assert math.isclose(out[3], twin[3], rel_tol=1e-12, abs_tol=1e-12 * out[0])

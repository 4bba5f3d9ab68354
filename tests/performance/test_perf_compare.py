"""Comparison with a baseline: bootstrap and DeLong kernels vs their twins and definitions,
the degradation rule, the API. Small samples: runs with ``NUMBA_DISABLE_JIT=1`` too (the
large-sample calibration tests are in ``test_perf_calibration.py``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from perf_data import credit_window
from sklearn.metrics import roc_auc_score

from driftd.performance import kernels as K
from driftd.performance.compare import (
    DEFAULT_MIN_EFFECT,
    DIRECTION,
    compare,
    degraded,
)
from driftd.performance.metrics import METRICS, prepare_classification, prepare_regression

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------ kernels vs twins


@SETTINGS
@given(
    st.sampled_from(METRICS),
    st.integers(1, 25),
    st.integers(1, 25),
    st.booleans(),
    st.integers(0, 2**63 - 1),
    st.data(),
)
def test_bootstrap_kernel_equals_numpy_twin(
    metric: str, n1: int, n2: int, two: bool, seed: int, data: st.DataObject
) -> None:
    el = st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0, 0.1, 0.9, 1e-300])
    s1 = data.draw(arrays(np.float64, n1, elements=el))
    s2 = data.draw(arrays(np.float64, n2, elements=el))
    y1 = data.draw(arrays(np.float64, n1, elements=st.sampled_from([0.0, 1.0])))
    y2 = data.draw(arrays(np.float64, n2, elements=st.sampled_from([0.0, 1.0])))
    mid = K.METRIC_IDS[metric]
    if mid < K.MAE:
        a = prepare_classification(s1, y1)
        b = prepare_classification(s2, y2)
    else:
        a = (*prepare_regression(s1, y1), np.zeros(0, np.uint8))
        b = (*prepare_regression(s2, y2), np.zeros(0, np.uint8))
    args = (mid, *a, *b, two, 0.25, 30, seed, K.ECE_EDGES)
    with np.errstate(all="ignore"):
        got = K.bootstrap_diffs(*args)
        want = K.bootstrap_diffs_np(*args)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, equal_nan=True)


def test_resample_indices_are_uniform_and_in_range() -> None:
    idx = np.concatenate([K.resample_indices_np(11, 0, b, 1000) for b in range(200)])
    assert idx.min() == 0 and idx.max() == 999
    counts = np.bincount(idx, minlength=1000)
    assert abs(counts.mean() - 200) < 1e-9 and counts.std() < 20  # Poisson(200): sd ≈ 14


def brute_delong(s: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """DeLong's structural components by the O(mn) definition."""
    x = s[y > 0.5][:, None]
    z = s[y <= 0.5][None, :]
    psi = (x > z) + 0.5 * (x == z)
    v10 = psi.mean(axis=1)
    v01 = psi.mean(axis=0)
    m, n = psi.shape
    return float(psi.mean()), float(v10.var(ddof=1) / m + v01.var(ddof=1) / n)


@SETTINGS
@given(st.integers(4, 40), st.data())
def test_delong_kernel_twin_and_definition(n: int, data: st.DataObject) -> None:
    s = data.draw(arrays(np.float64, n, elements=st.sampled_from([0.0, 0.2, 0.5, 0.7, 1.0])))
    y = data.draw(arrays(np.float64, n, elements=st.sampled_from([0.0, 1.0])))
    npos = int(y.sum())
    ss, yy, _ = prepare_classification(s, y)
    auc, var = K.delong_sorted(ss, yy)
    auc_np, var_np = K.delong_np(s, y)
    if npos == 0 or npos == n:
        assert math.isnan(auc) and math.isnan(auc_np)
        return
    assert math.isclose(auc, roc_auc_score(y, s), rel_tol=1e-12, abs_tol=1e-15)
    assert math.isclose(auc, auc_np, rel_tol=1e-12, abs_tol=1e-15)
    if npos < 2 or n - npos < 2:
        assert math.isnan(var) and math.isnan(var_np)
        return
    b_auc, b_var = brute_delong(s, y)
    assert math.isclose(auc, b_auc, rel_tol=1e-12)
    assert math.isclose(var, b_var, rel_tol=1e-9, abs_tol=1e-15)
    assert math.isclose(var_np, b_var, rel_tol=1e-9, abs_tol=1e-15)


# ------------------------------------------------------------------ the rule


def test_degraded_rule_directions_and_min_effect() -> None:
    assert degraded("accuracy", 0.85, 0.80, (-0.06, -0.03), 0.02)
    assert not degraded("accuracy", 0.85, 0.80, (-0.06, 0.01), 0.02)  # CI spans 0
    assert not degraded("accuracy", 0.85, 0.84, (-0.015, -0.005), 0.02)  # too small
    assert not degraded("accuracy", 0.80, 0.85, (0.03, 0.06), 0.02)  # better
    assert degraded("log_loss", 0.40, 0.50, (0.05, 0.15), 0.05)
    assert not degraded("log_loss", 0.50, 0.40, (-0.15, -0.05), 0.05)
    assert degraded("positive_rate", 0.40, 0.30, (-0.12, -0.08), 0.05)  # either way
    assert degraded("positive_rate", 0.30, 0.40, (0.08, 0.12), 0.05)
    assert not degraded("accuracy", 0.85, math.nan, (-0.06, -0.03), 0.02)
    assert not degraded("accuracy", 0.85, 0.80, (math.nan, math.nan), 0.0)
    assert set(DIRECTION) == set(METRICS) == set(DEFAULT_MIN_EFFECT)


def test_small_windows_do_not_alert_on_noise() -> None:
    rng = np.random.default_rng(9)
    v1 = credit_window(rng, 100, 0.85)
    v2 = credit_window(rng, 100, 0.80)
    c = compare("accuracy", v2, v1, min_effect=0.0, n_resamples=300)
    assert c.ci_high - c.ci_low > 0.15 and not c.degraded


# ------------------------------------------------------------------ API


def test_compare_against_a_fixed_reference_value() -> None:
    rng = np.random.default_rng(2)
    cur = credit_window(rng, 1000, 0.78)
    c = compare("accuracy", cur, 0.86, n_resamples=300)
    assert c.n_baseline is None and c.baseline == 0.86 and c.degraded
    assert c.ci_low < c.difference < c.ci_high
    d = compare("roc_auc", cur, 0.5)
    assert d.method == "delong" and not d.degraded  # far better than a coin
    doc = c.to_dict()
    assert doc["ci"] == [c.ci_low, c.ci_high] and doc["metric"] == "accuracy"


def test_same_seed_same_interval_and_undefined_is_nan() -> None:
    rng = np.random.default_rng(8)
    a = credit_window(rng, 500, 0.8)
    b = credit_window(rng, 500, 0.8)
    assert compare("f1", a, b, seed=3, n_resamples=100) == compare(
        "f1", a, b, seed=3, n_resamples=100
    )
    assert compare("f1", a, b, seed=3, n_resamples=100) != compare(
        "f1", a, b, seed=4, n_resamples=100
    )
    one_class = (np.array([0.2, 0.7, 0.4]), np.zeros(3))
    c = compare("roc_auc", one_class, b)
    assert math.isnan(c.current) and math.isnan(c.ci_low) and not c.degraded
    e = compare("accuracy", ([], []), b)
    assert math.isnan(e.difference) and not e.degraded and e.to_dict()["current"] is None
    assert math.isnan(compare("roc_auc", one_class, b, method="bootstrap").ci_low)


def test_misuse_raises() -> None:
    w = (np.array([0.2, 0.7]), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="roc_auc only"):
        compare("accuracy", w, w, method="delong")
    with pytest.raises(ValueError, match="unknown performance metric"):
        compare("r2", w, w)
    with pytest.raises(ValueError, match="level"):
        compare("accuracy", w, w, level=1.5)
    with pytest.raises(ValueError, match="n_resamples"):
        compare("accuracy", w, w, n_resamples=0)

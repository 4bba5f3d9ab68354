"""CBPE: the isotonic kernels against their twins and scikit-learn, estimates equal to
NannyML's ``CBPE`` (to 1e-6) and to a direct scikit-learn computation, the band tracking the
realised accuracy under covariate shift, state round-trips.

Runs with ``NUMBA_DISABLE_JIT=1`` too (``make test-nojit``): the kernels are O(n).
"""

from __future__ import annotations

import math

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nannyml_support import calibration_forced, nml, quiet
from sklearn.isotonic import IsotonicRegression, isotonic_regression
from sklearn.metrics import accuracy_score

from driftd.kernels import isotonic as K
from driftd.performance.cbpe import (
    CBPE,
    CBPE_METRICS,
    degraded,
    expected_auc,
    expected_metrics,
    fit_cbpe,
    isotonic_fit,
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NANNY_METRICS = ("roc_auc", "f1", "precision", "recall", "accuracy")

# the logit of P(label | x) is x; x ~ N(0, s): accuracy at 0.5 is 0.80 for s = 2.3195 and
# 0.70 for s = 1.1939 (numerical integration) — applicants bunching at the decision boundary
SPREAD_80 = 2.319491936627374
SPREAD_70 = 1.1939095491887968


def calibrated_stream(rng: np.random.Generator, n: int, spread: float) -> tuple[np.ndarray, ...]:
    """Scores equal to P(label = 1 | x): calibrated, and they stay so under covariate shift."""
    x = rng.normal(0.0, spread, n)
    score = 1.0 / (1.0 + np.exp(-x))
    label = (rng.random(n) < score).astype(np.int64)
    return score, label


def miscalibrated_stream(rng: np.random.Generator, n: int, mu: float) -> tuple[np.ndarray, ...]:
    x = rng.normal(mu, 1.5, n)
    label = (rng.random(n) < 1.0 / (1.0 + np.exp(-1.2 * x))).astype(np.int64)
    score = 1.0 / (1.0 + np.exp(-(0.9 * x + 0.3)))  # overconfident and shifted
    return score, label


# ------------------------------------------------------------------ isotonic kernels


@st.composite
def weighted(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(1, 40))
    y = np.array(
        draw(st.lists(st.sampled_from([0.0, 1.0, 0.5, 0.25, 2.0]), min_size=n, max_size=n))
    )
    w = np.array(draw(st.lists(st.sampled_from([1.0, 2.0, 0.5, 3.0]), min_size=n, max_size=n)))
    return y, w


@SETTINGS
@given(weighted())
def test_pav_matches_twin_and_scikit_learn(yw: tuple[np.ndarray, np.ndarray]) -> None:
    y, w = yw
    got = K.pav(y, w)
    np.testing.assert_allclose(got, K.pav_np(y, w), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got, isotonic_regression(y, sample_weight=w), rtol=1e-12, atol=1e-14)
    assert np.all(np.diff(got) >= -1e-15)


@SETTINGS
@given(
    st.lists(
        st.sampled_from([0.0, 0.1, 0.1 + 1e-16, 0.1 + 2e-15, 0.5, 0.9]), min_size=1, max_size=30
    )
)
def test_merge_ties_matches_twin(xs: list[float]) -> None:
    x = np.sort(np.array(xs))
    rng = np.random.default_rng(len(xs))
    y = rng.random(x.shape[0])
    w = rng.uniform(0.5, 2.0, x.shape[0])
    for a, b in zip(K.merge_ties(x, y, w), K.merge_ties_np(x, y, w), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13)


@pytest.mark.parametrize("ties", [False, True])
def test_isotonic_fit_equals_scikit_learn(ties: bool) -> None:
    rng = np.random.default_rng(40)
    s, y = miscalibrated_stream(rng, 5000, 0.3)
    if ties:
        s = np.round(s, 2)  # many tied scores
    xs, ys = isotonic_fit(s, y)
    iso = IsotonicRegression(out_of_bounds="clip", increasing=True).fit(s, y)
    np.testing.assert_array_equal(xs, iso.X_thresholds_)
    np.testing.assert_allclose(ys, iso.y_thresholds_, rtol=1e-12, atol=1e-15)
    probe = np.concatenate([rng.uniform(-0.2, 1.2, 500), s[:100]])
    model = fit_cbpe(s, y)
    np.testing.assert_allclose(model.calibrated(probe), iso.predict(probe), rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------ estimates


def nannyml_cbpe(
    ref: tuple[np.ndarray, ...], ana: tuple[np.ndarray, ...], chunk: int
) -> pd.DataFrame:
    def frame(s: np.ndarray, y: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame({"s": s, "y": y, "p": (s >= 0.5).astype(np.int64)})

    with quiet(), calibration_forced():
        est = nml.CBPE(
            y_pred_proba="s",
            y_pred="p",
            y_true="y",
            problem_type="classification_binary",
            metrics=list(NANNY_METRICS),
            chunk_size=chunk,
        )
        est.fit(frame(*ref))
        out: pd.DataFrame = est.estimate(frame(*ana)).filter(period="analysis").to_df()
    return out


@pytest.mark.parametrize("mu", [0.0, -0.6])
def test_estimates_equal_nannyml(mu: float) -> None:
    rng = np.random.default_rng(41)
    ref = miscalibrated_stream(rng, 20_000, 0.5)
    ana = miscalibrated_stream(rng, 6000, mu)
    chunk = 2000
    res = nannyml_cbpe(ref, ana, chunk)
    model = fit_cbpe(*ref)
    for c in range(3):
        window = ana[0][c * chunk : (c + 1) * chunk]
        est = model.estimate(window)
        for metric in NANNY_METRICS:
            row = res.iloc[c]
            assert est[metric]["estimate"] == pytest.approx(row[(metric, "value")], abs=1e-6)
            assert est[metric]["lower"] == pytest.approx(
                row[(metric, "lower_confidence_boundary")], abs=1e-6
            )
            assert est[metric]["upper"] == pytest.approx(
                row[(metric, "upper_confidence_boundary")], abs=1e-6
            )
            assert model.sampling_error(metric, chunk) == pytest.approx(
                row[(metric, "sampling_error")], rel=1e-9
            )


def test_estimates_equal_a_direct_scikit_learn_computation() -> None:
    rng = np.random.default_rng(42)
    ref_s, ref_y = miscalibrated_stream(rng, 10_000, 0.5)
    s, _ = miscalibrated_stream(rng, 3000, -0.3)
    p = IsotonicRegression(out_of_bounds="clip").fit(ref_s, ref_y).predict(s)
    yhat = s >= 0.5
    # expected confusion matrix, entry by entry
    tp, fp = p[yhat].sum(), (1 - p[yhat]).sum()
    fn, tn = p[~yhat].sum(), (1 - p[~yhat]).sum()
    # expected ROC AUC: each (positive, negative) pair weighted by its probability
    order = np.argsort(s)
    ps = p[order]
    above = np.sum(ps) - np.cumsum(ps)  # expected positives scored strictly higher (no ties)
    auc = float(np.sum((1 - ps) * (above + 0.5 * ps)) / (tp + fn) / (fp + tn))
    want = {
        "accuracy": (tp + tn) / s.size,
        "precision": tp / (tp + fp),
        "recall": tp / (tp + fn),
        "f1": 2 * tp / (2 * tp + fp + fn),
        "roc_auc": auc,
        "positive_rate": yhat.mean(),
    }
    got = fit_cbpe(ref_s, ref_y).estimate_values(s)
    assert set(got) == set(CBPE_METRICS)
    for m in CBPE_METRICS:
        assert got[m] == pytest.approx(want[m], rel=1e-10), m


def test_expected_auc_counts_ties_one_half() -> None:
    rng = np.random.default_rng(43)
    s = rng.integers(0, 5, 60).astype(np.float64)
    p = rng.random(60)
    num = sum(
        p[i] * (1 - p[j]) * (1.0 if s[i] > s[j] else 0.5 if s[i] == s[j] else 0.0)
        for i in range(60)
        for j in range(60)
    )
    want = num / (p.sum() * (1 - p).sum())
    assert expected_auc(p, s) == pytest.approx(want, rel=1e-12)
    # with 0/1 "probabilities" it is the ordinary ROC AUC of those labels
    y = (rng.random(60) < 0.4).astype(np.float64)
    pos, neg = s[y > 0], s[y == 0]
    mw = np.mean((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :]))
    assert expected_auc(y, s) == pytest.approx(mw, rel=1e-12)


def test_covariate_shift_is_tracked_within_the_band() -> None:
    rng = np.random.default_rng(44)
    ref = calibrated_stream(rng, 50_000, SPREAD_80)
    model = fit_cbpe(*ref)
    assert model.reference["accuracy"] == pytest.approx(0.80, abs=0.01)
    size = 2000
    inside = 0
    flagged = {"stationary": 0, "shifted": 0}
    estimates, realised = [], []
    for w in range(60):
        spread = SPREAD_80 if w < 30 else SPREAD_70
        s, y = calibrated_stream(rng, size, spread)
        est = model.estimate(s)["accuracy"]
        real = accuracy_score(y, s >= 0.5)
        assert est["lower"] is not None and est["upper"] is not None
        inside += est["lower"] <= real <= est["upper"]
        if "accuracy" in degraded(model.estimate(s), model.reference):
            flagged["stationary" if w < 30 else "shifted"] += 1
        estimates.append(est["estimate"])
        realised.append(real)
    assert inside >= 58  # a 3σ band: all but a rare window
    est_arr, real_arr = np.array(estimates), np.array(realised)
    assert est_arr[:30].mean() == pytest.approx(0.80, abs=0.01)
    assert est_arr[30:].mean() == pytest.approx(0.70, abs=0.01)
    assert np.abs(est_arr - real_arr).mean() < 0.01
    assert flagged == {"stationary": 0, "shifted": 30}


def test_band_shrinks_with_the_window_and_degenerate_inputs() -> None:
    rng = np.random.default_rng(45)
    model = fit_cbpe(*calibrated_stream(rng, 5000, SPREAD_80))
    s, _ = calibrated_stream(rng, 4000, SPREAD_80)
    wide = model.estimate(s[:400])["accuracy"]
    narrow = model.estimate(s)["accuracy"]
    assert wide["upper"] - wide["lower"] > 3 * (narrow["upper"] - narrow["lower"])  # type: ignore[operator]
    empty = model.estimate(np.zeros(0))
    assert all(v == {"estimate": None, "lower": None, "upper": None} for v in empty.values())
    with_nan = np.concatenate([s[:100], [np.nan, np.nan]])
    assert model.estimate(with_nan) == model.estimate(s[:100])
    # nothing predicted positive: precision undefined, accuracy still estimated
    low = model.estimate(np.full(50, 0.1))
    assert low["precision"]["estimate"] is None and low["accuracy"]["estimate"] is not None
    # a reference of one class: no ROC AUC band, the rest still works
    one = fit_cbpe(s[:500], np.zeros(500))
    assert one.estimate(s[500:900])["roc_auc"]["lower"] is None
    assert math.isnan(one.reference["roc_auc"])
    with pytest.raises(ValueError):
        fit_cbpe([np.nan], [1])
    with pytest.raises(ValueError):
        fit_cbpe([0.1, 0.2], [1])


def test_predicted_labels_override_the_threshold() -> None:
    rng = np.random.default_rng(46)
    s, y = calibrated_stream(rng, 3000, SPREAD_80)
    pl = np.where(rng.random(3000) < 0.5, (s >= 0.3).astype(np.int64), -1)
    model = fit_cbpe(s, y, pred_labels=pl)
    p = model.calibrated(s)
    yhat = np.where(pl >= 0, pl > 0, s >= 0.5)
    want = expected_metrics(p, yhat, s)
    assert model.estimate_values(s, pred_labels=pl) == want
    assert model.reference["positive_rate"] == pytest.approx(yhat.mean())


def test_state_round_trips_exactly() -> None:
    rng = np.random.default_rng(47)
    model = fit_cbpe(*miscalibrated_stream(rng, 8000, 0.5), threshold=0.4, band_sigmas=2.0)
    meta, arrays = model.to_state()
    back = CBPE.from_state(orjson.loads(orjson.dumps(meta)), arrays)
    s, _ = miscalibrated_stream(rng, 1000, -0.2)
    assert back.estimate(s) == model.estimate(s)
    assert back.threshold == 0.4 and back.band_sigmas == 2.0
    assert back.reference == model.reference or all(
        (a == b) or (math.isnan(a) and math.isnan(b))
        for a, b in zip(back.reference.values(), model.reference.values(), strict=True)
    )
    with pytest.raises(ValueError):
        CBPE.from_state({**meta, "method": "x"}, arrays)

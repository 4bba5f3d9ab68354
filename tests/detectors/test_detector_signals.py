"""The aggregate signals fed to detectors: sampled / averaged scores, per-window statistics."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from driftd.detectors import ScoreSignal, StatisticSignal


def test_sample_keeps_order_and_bound_and_is_seeded() -> None:
    rng = np.random.default_rng(0)
    scores = rng.uniform(size=1000)
    scores[::7] = np.nan
    pos = np.arange(5001, 6001, dtype=np.int64)
    sig = ScoreSignal("sample", max_per_batch=50, seed=3)
    v, p = sig(scores, pos)
    assert v.size == p.size == 50
    assert np.all(np.diff(p) > 0)  # stream order
    assert np.array_equal(v, scores[p - 5001]) and np.isfinite(v).all()
    v2, p2 = ScoreSignal("sample", max_per_batch=50, seed=3)(scores, pos)
    assert np.array_equal(p, p2) and np.array_equal(v, v2)  # no hidden state
    _, p3 = ScoreSignal("sample", max_per_batch=50, seed=4)(scores, pos)
    assert not np.array_equal(p, p3)
    _, p4 = sig(scores[1:], pos[1:])  # another batch (first position differs)
    assert not np.array_equal(p, p4)


def test_sample_is_uniform_over_the_batch() -> None:
    sig = ScoreSignal("sample", max_per_batch=10, seed=1)
    counts = np.zeros(100)
    for start in range(1, 200_001, 100):
        _, p = sig(np.zeros(100), np.arange(start, start + 100))
        counts[p - start] += 1
    # 2000 batches × 10 draws over 100 slots: 200 expected per slot.
    assert counts.sum() == 20_000 and counts.min() > 140 and counts.max() < 260


def test_small_batches_pass_through_without_nans() -> None:
    sig = ScoreSignal("sample", max_per_batch=8)
    v, p = sig(np.array([0.1, np.nan, 0.3]), np.array([7, 8, 9]))
    assert v.tolist() == [0.1, 0.3] and p.tolist() == [7, 9]
    v, p = sig(np.array([]), np.array([], dtype=np.int64))
    assert v.size == 0 and p.size == 0 and v.dtype == np.float64 and p.dtype == np.int64


def test_mean_mode() -> None:
    sig = ScoreSignal("mean")
    v, p = sig(np.array([0.2, np.nan, 0.4, 0.6]), np.array([10, 12, 11, 13]))
    assert v.tolist() == pytest.approx([0.4]) and p.tolist() == [13]
    v, p = sig(np.array([np.nan]), np.array([14]))
    assert v.size == 0 and p.size == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "median"}, "'sample' or 'mean'"),
        ({"max_per_batch": 0}, "max_per_batch must be an integer ≥ 1"),
        ({"max_per_batch": 2.0}, "max_per_batch must be an integer ≥ 1"),
        ({"seed": -1}, "seed must be an integer ≥ 0"),
    ],
)
def test_score_signal_params(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ScoreSignal(**kwargs)


def test_score_signal_shapes() -> None:
    with pytest.raises(ValueError, match="1-d arrays of one length"):
        ScoreSignal()(np.zeros(3), np.zeros(2, dtype=np.int64))


EVALUATION: dict[str, Any] = {
    "window": {"start_position": 15001, "end_position": 20000, "events": 5000},
    "features": {
        "income": {"test": "ks", "statistic": 0.041, "p_value": 0.0003},
        "region": {"test": "chi2", "statistic": None, "p_value": None},
        "age": {"test": "psi", "statistic": float("nan"), "p_value": None},
    },
    "prediction": {"test": "psi", "statistic": 0.27, "p_value": None},
    "drift_share": 0.25,
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("drift_share", [0.25]),
        ("prediction", [0.27]),
        ("feature:income", [0.041]),
        ("feature:region", []),  # undefined statistic: nothing to feed
        ("feature:age", []),
    ],
)
def test_statistic_signal(source: str, expected: list[float]) -> None:
    v, p = StatisticSignal(source)(EVALUATION)
    assert v.tolist() == expected and p.tolist() == [20000] * len(expected)


def test_statistic_signal_edge_cases() -> None:
    assert StatisticSignal("feature:income").feature == "income"
    assert StatisticSignal("prediction")({**EVALUATION, "prediction": None})[0].size == 0
    empty_window = {
        **EVALUATION,
        "window": {"start_position": None, "end_position": None, "events": 0},
    }
    assert StatisticSignal()(empty_window)[0].size == 0
    with pytest.raises(KeyError, match="no feature 'salary'"):
        StatisticSignal("feature:salary")(EVALUATION)
    for bad in ("share", "feature:", "features.income"):
        with pytest.raises(ValueError, match="'drift_share', 'prediction' or 'feature:<name>'"):
            StatisticSignal(bad)

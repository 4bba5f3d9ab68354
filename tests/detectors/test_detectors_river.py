"""river detectors on aggregate signals: pinned detections, registry, params, exact restore."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from driftd.detectors import (
    ScoreSignal,
    SignalDetector,
    StatisticSignal,
    build_detector,
    detector_names,
    get_detector,
)

ADWIN = {"type": "adwin", "delta": 0.002}
PAGE_HINKLEY = {
    "type": "page_hinkley",
    "threshold": 25,
    "min_instances": 30,
    "delta": 0.005,
    "alpha": 0.9999,
}
KSWIN = {"type": "kswin", "alpha": 0.005, "window_size": 100, "stat_size": 30, "seed": 42}


def score_stream(
    seed: int, shift_to: float, n: int = 40_000
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Approval scores around 0.30; from position n/2 + 1 on, around ``shift_to``."""
    rng = np.random.default_rng(seed)
    scores = np.clip(rng.normal(0.30, 0.10, n), 0.0, 1.0)
    scores[n // 2 :] = np.clip(rng.normal(shift_to, 0.10, n - n // 2), 0.0, 1.0)
    return scores, np.arange(1, n + 1, dtype=np.int64)


def feed_scores(
    configs: list[dict[str, Any]],
    signal: ScoreSignal,
    scores: npt.NDArray[np.float64],
    pos: npt.NDArray[np.int64],
    batch: int,
) -> tuple[list[SignalDetector], list[list[int]]]:
    dets = [build_detector(c) for c in configs]
    hits: list[list[int]] = [[] for _ in dets]
    for a in range(0, scores.size, batch):
        values, positions = signal(scores[a : a + batch], pos[a : a + batch])
        for d, h in zip(dets, hits, strict=True):
            h += d.update_many(values, positions)
    return dets, hits


# ---------------------------------------------------------------- pinned behaviour


def test_score_shift_detected_at_pinned_positions() -> None:
    scores, pos = score_stream(2026, 0.40)  # shift at position 20001
    sig = ScoreSignal("sample", max_per_batch=32, seed=7)
    (adwin, ph), hits = feed_scores([ADWIN, PAGE_HINKLEY], sig, scores, pos, batch=250)
    assert hits == [[21000], [22068]]
    for d, h in zip((adwin, ph), hits, strict=True):
        assert d.n_seen == 160 * 32 and d.n_skipped == 0
        assert d.drift_count == 1 and d.last_drift_position == h[0]
    assert (adwin.name, ph.name) == ("adwin", "page_hinkley")


@pytest.mark.parametrize(("seed", "n"), [(2026, 40_000), (1, 400_000)])
def test_stationary_scores_raise_nothing(seed: int, n: int) -> None:
    scores, pos = score_stream(seed, 0.30, n)
    sig = ScoreSignal("sample", max_per_batch=32, seed=7)
    dets, hits = feed_scores([ADWIN, PAGE_HINKLEY], sig, scores, pos, batch=250)
    assert hits == [[], []]
    assert all(d.drift_count == 0 and d.last_drift_position is None for d in dets)


def test_batch_mean_signal_detects_shift() -> None:
    ph = {"type": "page_hinkley", "threshold": 0.5, "min_instances": 10}
    sig = ScoreSignal("mean")
    scores, pos = score_stream(2026, 0.40)
    dets, hits = feed_scores([ph], sig, scores, pos, batch=100)
    assert hits == [[20600]] and dets[0].n_seen == 400
    scores, pos = score_stream(2026, 0.30)
    assert feed_scores([ph], sig, scores, pos, batch=100)[1] == [[]]


def window_statistics(
    seed: int, shift: float, n_windows: int = 300, size: int = 500
) -> list[dict[str, Any]]:
    """Evaluation dicts of consecutive count windows: KS of `income` against a reference."""
    rng = np.random.default_rng(seed)
    ref = rng.normal(0.0, 1.0, 5000)
    x = rng.normal(0.0, 1.0, size * n_windows)
    x[size * (n_windows // 2) :] += shift  # shift from window 150 on: position 75001
    out = []
    for i in range(n_windows):
        d = float(stats.ks_2samp(ref, x[i * size : (i + 1) * size]).statistic)
        out.append(
            {
                "window": {
                    "start_position": i * size + 1,
                    "end_position": (i + 1) * size,
                    "events": size,
                },
                "features": {"income": {"test": "ks", "statistic": d, "p_value": None}},
                "prediction": None,
                "drift_share": 0.0,
            }
        )
    return out


@pytest.mark.parametrize(("shift", "expected"), [(0.3, [82000]), (0.0, [])])
def test_kswin_on_per_window_statistics(shift: float, expected: list[int]) -> None:
    sig = StatisticSignal("feature:income")
    det = build_detector(KSWIN)
    hits: list[int] = []
    for ev in window_statistics(5, shift):
        hits += det.update_many(*sig(ev))
    assert hits == expected
    assert det.n_seen == 300 and det.drift_count == len(expected)


# ---------------------------------------------------------------- registry and params


def test_registry_names() -> None:
    assert detector_names() == ["adwin", "kswin", "page_hinkley"]
    assert get_detector("adwin").name == "adwin"


def test_unknown_detector_names_the_known_ones() -> None:
    with pytest.raises(
        KeyError, match=r"unknown detector 'cusum'; known detectors: adwin, kswin, page_hinkley"
    ):
        build_detector({"type": "cusum"})
    with pytest.raises(KeyError, match="needs a 'type'.*adwin, kswin, page_hinkley"):
        build_detector({"delta": 0.1})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"type": "adwin", "delta": 0}, r"adwin\.delta must be > 0\.0, got 0"),
        ({"type": "adwin", "delta": 1.5}, r"adwin\.delta must be < 1\.0"),
        ({"type": "adwin", "delta": float("nan")}, r"adwin\.delta must be finite"),
        ({"type": "adwin", "delta": "small"}, r"adwin\.delta must be a number, got 'small'"),
        ({"type": "adwin", "clock": 0}, r"adwin\.clock must be ≥ 1"),
        ({"type": "adwin", "clock": 2.5}, r"adwin\.clock must be an integer"),
        ({"type": "adwin", "max_buckets": True}, r"adwin\.max_buckets must be a number"),
        ({"type": "adwin", "replay_limit": 0}, r"adwin\.replay_limit must be ≥ 1"),
        (
            {"type": "adwin", "deltta": 0.1},
            r"unknown parameter\(s\) 'deltta' for detector 'adwin'; known parameters: clock, delta",
        ),
        ({"type": "page_hinkley", "threshold": 0}, r"page_hinkley\.threshold must be > 0\.0"),
        ({"type": "page_hinkley", "alpha": 0}, r"page_hinkley\.alpha must be > 0\.0"),
        ({"type": "page_hinkley", "alpha": 1.01}, r"page_hinkley\.alpha must be ≤ 1\.0"),
        ({"type": "page_hinkley", "min_instances": 0}, r"page_hinkley\.min_instances must be ≥ 1"),
        (
            {"type": "page_hinkley", "mode": "sideways"},
            r"page_hinkley\.mode must be one of \['both', 'up', 'down'\]",
        ),
        ({"type": "kswin", "alpha": 1}, r"kswin\.alpha must be < 1\.0"),
        (
            {"type": "kswin", "window_size": 100, "stat_size": 51},
            r"kswin\.stat_size \(51\) must be at most half of kswin\.window_size \(100\)",
        ),
        ({"type": "kswin", "seed": None}, r"kswin\.seed must be a number"),
        ({"type": "kswin", "seed": -1}, r"kswin\.seed must be ≥ 0"),
    ],
)
def test_invalid_params_raise_value_error(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_detector(config)


def test_params_are_validated_and_defaulted() -> None:
    d = build_detector(
        {
            "type": "page_hinkley",
            "threshold": 50,
            "alpha": np.float64(0.99),
            "min_instances": np.int64(5),
        }
    )
    assert d.config == {
        "min_instances": 5,
        "delta": 0.005,
        "threshold": 50.0,
        "alpha": 0.99,
        "mode": "both",
        "replay_limit": 20_000,
    }
    assert type(d.config["min_instances"]) is int and type(d.config["threshold"]) is float
    assert repr(d).startswith("PageHinkley(min_instances=5, ")


# ---------------------------------------------------------------- contract over every detector


@pytest.mark.parametrize("name", detector_names())
def test_contract(name: str) -> None:
    d = build_detector({"type": name})
    assert d.name == name and type(d) is get_detector(name)
    assert d.update_many(np.empty(0), np.empty(0, dtype=np.int64)) == []
    assert d.update_many(np.array([np.nan, np.inf, -np.inf]), np.array([1, 2, 3])) == []
    assert (d.n_seen, d.n_skipped, d.drift_count, d.last_drift_position) == (0, 3, 0, None)
    fresh = roundtrip(d)
    assert same_state(fresh.snapshot(), d.snapshot())
    with pytest.raises(ValueError, match="1-d arrays of one length"):
        d.update_many(np.zeros(3), np.zeros(2, dtype=np.int64))
    rng = np.random.default_rng(0)
    values = np.r_[rng.normal(0, 0.05, 400), rng.normal(1, 0.05, 400)]
    hits = d.update_many(values, np.arange(1, 801, dtype=np.int64))
    assert hits and all(400 < h <= 800 for h in hits)  # a unit mean shift, found after it
    assert d.update(0.5, 801) in (True, False) and d.n_seen == 801


# ---------------------------------------------------------------- state


def roundtrip(d: SignalDetector) -> SignalDetector:
    """Snapshot → JSON text + .npz bytes (no pickle anywhere) → restore."""
    state = d.snapshot()
    arrays = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
    text = json.dumps({k: v for k, v in state.items() if k not in arrays})
    buf = io.BytesIO()
    savez: Any = np.savez  # numpy's stub types the keyword `allow_pickle` against **arrays
    savez(buf, **arrays)
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as z:
        loaded = {k: z[k] for k in z.files}
    return SignalDetector.restore({**json.loads(text), **loaded})


def same_state(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        if isinstance(a[k], np.ndarray):
            if not np.array_equal(a[k], b[k]):
                return False
        elif a[k] != b[k]:
            return False
    return True


def drifting_stream(seed: int, n: int) -> npt.NDArray[np.float64]:
    """Piecewise-constant means with noise: several detections for every detector."""
    rng = np.random.default_rng(seed)
    means = np.repeat(rng.choice([0.2, 0.5, 0.8], size=n // 150 + 1), 150)[:n]
    return means + rng.normal(0, 0.05, n)


def run_with_restarts(
    config: dict[str, Any], values: npt.NDArray[np.float64], cuts: list[int]
) -> tuple[list[int], SignalDetector]:
    d = build_detector(config)
    pos = np.arange(1, values.size + 1, dtype=np.int64)
    hits: list[int] = []
    bounds = [0, *sorted(set(cuts)), values.size]
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        hits += d.update_many(values[a:b], pos[a:b])
        d = roundtrip(d)
    return hits, d


@settings(max_examples=40, deadline=None)
@given(
    cfg=st.sampled_from(
        [
            ADWIN,
            {"type": "adwin", "clock": 1, "delta": 0.01},
            PAGE_HINKLEY,
            {"type": "page_hinkley", "threshold": 1, "min_instances": 10},
        ]
    ),
    seed=st.integers(0, 3),
    cuts=st.lists(st.integers(0, 1500), max_size=8),
)
def test_restore_is_exact_within_replay_limit(
    cfg: dict[str, Any], seed: int, cuts: list[int]
) -> None:
    values = drifting_stream(seed, 1500)
    straight, d1 = run_with_restarts(cfg, values, [])
    restarted, d2 = run_with_restarts(cfg, values, cuts)
    assert straight == restarted and len(straight) >= 2
    assert same_state(d1.snapshot(), d2.snapshot())
    assert (d2.drift_count, d2.last_drift_position, d2.n_seen) == (
        len(straight),
        straight[-1],
        1500,
    )


@pytest.mark.parametrize("cuts", [[50, 99, 100, 101], [260, 640, 1100], list(range(0, 1200, 97))])
def test_kswin_restore_is_exact_at_any_length(cuts: list[int]) -> None:
    # KSWIN keeps its own window and random state: exact far beyond window_size values.
    values = drifting_stream(7, 1200)
    straight, d1 = run_with_restarts(KSWIN, values, [])
    restarted, d2 = run_with_restarts(KSWIN, values, cuts)
    assert straight == restarted and len(straight) >= 2
    assert same_state(d1.snapshot(), d2.snapshot())


def test_restore_right_after_a_detection() -> None:
    values = drifting_stream(1, 1500)
    pos = np.arange(1, 1501, dtype=np.int64)
    for cfg in (ADWIN, PAGE_HINKLEY, KSWIN):
        straight, _ = run_with_restarts(cfg, values, [])
        cut, nxt = straight[0], straight[1]  # position p is values[p - 1]
        assert nxt - cut > 150  # long enough for KSWIN to draw from its random state again
        d = build_detector(cfg)
        assert d.update_many(values[:cut], pos[:cut]) == [cut]
        assert d.drift_detected and d.since_reset == 0
        r = roundtrip(d)  # river restarts on the next value; the restored one must match
        assert r.drift_detected and r.history().size == 0
        a = slice(cut, nxt - 1)
        assert d.update_many(values[a], pos[a]) == r.update_many(values[a], pos[a]) == []
        assert same_state(r.snapshot(), d.snapshot())  # KSWIN: random state included
        b = slice(nxt - 1, None)
        assert d.update_many(values[b], pos[b]) == r.update_many(values[b], pos[b]) == straight[1:]


def test_history_is_bounded_and_restore_beyond_it_is_approximate() -> None:
    cfg = {"type": "page_hinkley", "threshold": 1000, "replay_limit": 50}  # never detects
    d = build_detector(cfg)
    values = np.random.default_rng(3).normal(0.5, 0.1, 500)
    d.update_many(values, np.arange(1, 501))
    assert d.since_reset == 500 and not d.history_exact
    assert np.array_equal(d.history(), values[-50:])
    r = roundtrip(d)
    assert (r.n_seen, r.since_reset, r.drift_count) == (500, 500, 0)
    assert np.array_equal(r.history(), values[-50:])
    # Exactly at the bound it is still exact.
    e = build_detector(cfg)
    e.update_many(values[:50], np.arange(1, 51))
    assert e.history_exact and np.array_equal(e.history(), values[:50])


def test_restore_checks_the_type() -> None:
    state = build_detector(ADWIN).snapshot()
    assert type(get_detector("adwin").restore(state)).__name__ == "Adwin"
    with pytest.raises(ValueError, match="cannot restore a 'adwin' state as 'kswin'"):
        get_detector("kswin").restore(state)
    with pytest.raises(KeyError, match="unknown detector 'gone'"):
        SignalDetector.restore({**state, "type": "gone"})


def test_non_finite_values_are_skipped() -> None:
    d = build_detector(ADWIN)
    d.update_many(np.array([0.1, np.nan, 0.2, np.inf]), np.array([1, 2, 3, 4]))
    assert (d.n_seen, d.n_skipped) == (2, 2)
    assert d.history().tolist() == [0.1, 0.2]


@settings(max_examples=60, deadline=None)
@given(
    limit=st.sampled_from([1, 7, 64, 65, 300]),
    chunks=st.lists(st.integers(0, 200), max_size=12),
)
def test_history_ring_keeps_the_latest_values_in_order(limit: int, chunks: list[int]) -> None:
    d = build_detector({"type": "page_hinkley", "threshold": 1e9, "replay_limit": limit})
    fed: list[float] = []
    for n in chunks:
        values = np.arange(len(fed), len(fed) + n, dtype=np.float64)
        d.update_many(values, values.astype(np.int64))
        fed += values.tolist()
        assert d.history().tolist() == fed[-limit:] if fed else d.history().size == 0
        assert d.history_exact == (len(fed) <= limit)
    assert roundtrip(d).history().tolist() == d.history().tolist()

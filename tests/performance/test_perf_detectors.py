"""Error-stream detectors (river ADWIN / DDM): same detections as river fed directly, pinned
positions on seeded streams, and state restored by replay without pickle."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from river.drift import ADWIN
from river.drift.binary import DDM

from driftd.performance.detectors import ErrorStreamDetector, error_stream


def error_rate_jump(seed: int = 42) -> np.ndarray:
    """3,000 events at a 10% error rate, then 3,000 at 30%."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.random(3000) < 0.1, rng.random(3000) < 0.3]).astype(np.float64)


def feed(det: ErrorStreamDetector, err: np.ndarray, batch: int = 250) -> list[int]:
    out: list[int] = []
    for b in range(0, err.shape[0], batch):
        out += [b + i for i in det.update(err[b : b + batch]).detections]
    return out


def river_positions(name: str, err: np.ndarray) -> list[int]:
    det = ADWIN() if name == "adwin" else DDM()
    pos = []
    for i, x in enumerate(err.tolist()):
        det.update(bool(x) if name == "ddm" else x)
        if det.drift_detected:
            pos.append(i)
    return pos


@pytest.mark.parametrize(("name", "pinned"), [("adwin", [3103]), ("ddm", [3744])])
def test_detects_the_error_rate_jump_where_river_does(name: str, pinned: list[int]) -> None:
    err = error_rate_jump()
    det = ErrorStreamDetector(name)  # type: ignore[arg-type]
    assert feed(det, err) == river_positions(name, err) == pinned
    assert det.n_detections == 1 and det.n_seen == 6000


def test_adwin_is_quiet_on_a_stable_stream() -> None:
    """DDM is not: on a stable 10% error rate it fires now and then (river's DDM compares the
    running error with its running minimum), which is why ADWIN is the default."""
    for seed in range(5):
        rng = np.random.default_rng(seed)
        err = (rng.random(6000) < 0.1).astype(np.float64)
        assert feed(ErrorStreamDetector("adwin"), err) == []
        assert feed(ErrorStreamDetector("ddm"), err) == river_positions("ddm", err)


@pytest.mark.parametrize("name", ["adwin", "ddm"])
@pytest.mark.parametrize("cut", [0, 1000, 3103, 3104, 3744, 3745, 5000])
def test_restore_by_replay_continues_exactly(name: str, cut: int) -> None:
    err = error_rate_jump()
    whole = ErrorStreamDetector(name)  # type: ignore[arg-type]
    expected = feed(whole, err)
    first = ErrorStreamDetector(name)  # type: ignore[arg-type]
    got = feed(first, err[:cut])
    snap = first.snapshot()
    assert snap["meta"]["exact"]
    meta = json.loads(json.dumps(snap["meta"]))  # JSON-able, no pickle
    again = ErrorStreamDetector.restore({"errors": np.array(snap["errors"]), "meta": meta})
    got += [cut + i for i in feed(again, err[cut:])]
    assert got == expected
    assert again.n_seen == whole.n_seen and again.n_detections == whole.n_detections


def test_replay_buffer_is_bounded() -> None:
    err = error_rate_jump()
    det = ErrorStreamDetector("adwin", max_replay=500)
    feed(det, err[:2000])
    snap = det.snapshot()
    assert snap["errors"].shape == (500,) and not snap["meta"]["exact"]
    np.testing.assert_array_equal(snap["errors"], err[1500:2000])
    # approximate, but still a working detector: it catches the jump
    again = ErrorStreamDetector.restore(snap)
    assert feed(again, err[2000:]) != []


def test_regression_errors_and_nan() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(0, 1, 4000)
    pred = y + np.concatenate([rng.normal(0, 1, 2000), rng.normal(0, 2, 2000)])
    err = error_stream("regression", pred, y)
    np.testing.assert_array_equal(err, np.abs(pred - y))
    det = ErrorStreamDetector("adwin", {"delta": 0.002})
    hits = feed(det, err)
    assert len(hits) >= 1 and 2000 <= hits[0] < 2400
    with pytest.raises(ValueError, match="0/1 errors"):
        ErrorStreamDetector("ddm").update(err[:10])
    d = ErrorStreamDetector("ddm")
    d.update([0.0, math.nan, 1.0])
    assert d.n_seen == 2


def test_error_stream_for_classifiers() -> None:
    err = error_stream("classification", [0.9, 0.2, 0.6, 0.4, np.nan], [1, 1, 0, 0, 1])
    np.testing.assert_array_equal(err[:4], [0.0, 1.0, 1.0, 0.0])
    assert math.isnan(err[4])
    err = error_stream("classification", [0.9, 0.2], [1, 1], pred_labels=[0, -1])
    np.testing.assert_array_equal(err, [1.0, 1.0])
    with pytest.raises(ValueError, match="unknown detector"):
        ErrorStreamDetector("kswin")  # type: ignore[arg-type]

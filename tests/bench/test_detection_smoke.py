"""Smoke test of the detection benchmark (``python -m benchmarks.detection``) at tiny sizes:
the streams it generates, how it scores engine outputs, and one end-to-end run whose JSON line
has the documented shape. The real figures come from the full-size run
(docs/detection-quality.md); nothing here pins detection quality."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `benchmarks` is not installed; pytest may run from elsewhere
    sys.path.insert(0, str(ROOT))

from benchmarks import detection  # noqa: E402

TINY = [
    "--stationary-events",
    "6000",
    "--reference-events",
    "4000",
    "--pre-change-events",
    "3000",
    "--post-change-events",
    "3000",
    "--trials",
    "1",
    "--batch",
    "700",
    "--seed",
    "7",
    "--mode-events",
    "6000",
    "--warmup-events",
    "2000",
    "--config-overrides",
    json.dumps({"window": {"type": "sliding", "events": 1000, "step": 250}}),
    "--json",
]


def _events(segments: list[tuple[int, detection.Drift]], seed: int) -> list[dict[str, Any]]:
    return [
        orjson.loads(line) for chunk in detection.stream(segments, (seed,), 100.0) for line in chunk
    ]


def test_streams_are_seeded_and_drift_only_what_they_say() -> None:
    neutral = detection.NEUTRAL
    assert _events([(500, neutral)], 1) == _events([(500, neutral)], 1)
    assert _events([(500, neutral)], 1) != _events([(500, neutral)], 2)

    ev = _events([(2000, neutral), (4000, detection.Drift(missing_rate=0.3, version="v2"))], 3)
    assert set(ev[0]["features"]) == set(detection.FEATURES)
    assert [e["ts"] for e in ev[:3]] == [
        detection.T0_MS,
        detection.T0_MS + 10,
        detection.T0_MS + 20,
    ]
    before, after = ev[:2000], ev[2000:]
    assert {e["model_version"] for e in before} == {"v1"}
    assert {e["model_version"] for e in after} == {"v2"}
    assert all(e["features"]["normal_b"] is not None for e in before)
    nulls = sum(e["features"]["normal_b"] is None for e in after) / len(after)
    assert 0.27 < nulls < 0.33
    assert all(e["features"]["normal_a"] is not None for e in after)

    shifted = _events([(6000, detection.Drift(mean_shift_sigma=0.5))], 4)
    plain = _events([(6000, neutral)], 4)
    mean = lambda es: sum(e["features"]["normal_a"] for e in es) / len(es)  # noqa: E731
    assert mean(shifted) - mean(plain) == pytest.approx(5.0, abs=1e-9)  # same draws, +0.5σ
    cats = _events([(6000, detection.Drift(cat3_a_probs=(0.5, 0.3, 0.2)))], 5)
    share_c = sum(e["features"]["cat3_a"] == "c" for e in cats) / len(cats)
    assert 0.18 < share_c < 0.22


def test_correlated_pair_changes_nothing_else_and_flips() -> None:
    def corr(events: list[dict[str, Any]]) -> float:
        a = [e["features"]["corr_a"] for e in events]
        b = [e["features"]["corr_b"] for e in events]
        return float(np.corrcoef(a, b)[0, 1])

    plain = _events([(3000, detection.NEUTRAL)], 8)
    chunks = detection.stream([(3000, detection.NEUTRAL)], (8,), 100.0, with_correlated=True)
    both = [orjson.loads(line) for chunk in chunks for line in chunk]
    for p, b in zip(plain, both, strict=True):  # the other features' values are the same
        assert {k: v for k, v in b["features"].items() if k not in detection.CORRELATED} == (
            p["features"]
        )
    assert 0.77 < corr(both) < 0.83
    flipped = detection.stream([(3000, detection.Drift(corr_rho=-0.8))], (8,), 100.0, True)
    ev = [orjson.loads(line) for chunk in flipped for line in chunk]
    assert -0.83 < corr(ev) < -0.77
    # the marginals stay standard normal
    a, b = ([e["features"][k] for e in ev] for k in detection.CORRELATED)
    assert abs(np.mean(a)) < 0.05 and abs(np.std(b) - 1.0) < 0.05


def test_multivariate_scoring() -> None:
    run = detection.MvRun("mmd", change=10_000, window_events=1000)
    mv = {"method": "mmd", "statistic": 0.001, "threshold": 0.004, "drifted": False}

    def ev(end: int, drifted: bool, feature: bool = False) -> dict[str, Any]:
        out = _evaluation(end, 1000, drifted, feature)
        return {**out, "monitor": "mv_mmd", "quality_breaches": [],
                "multivariate": {**mv, "drifted": drifted}}  # fmt: skip

    run.feed(
        [
            ev(9000, False),
            {**ev(9500, False), "monitor": "bench"},  # another monitor's line: not scored
            ev(10_250, True),
            {**_alert("drift.detected", 10_500, ["multivariate"]), "monitor": "mv_mmd"},
            ev(10_500, True, feature=True),
        ]
    )
    assert run.evaluations == 3 and run.breaches == 0 and run.max_statistic == 0.001
    assert run.first_breach_delay == 250 and run.feature_breaches == 1
    assert run.detection == {"delay_events": 500, "features": ["multivariate"]}
    assert run.false_alerts == []


def test_deep_merge_merges_mappings_and_null_deletes() -> None:
    base = {"window": {"type": "sliding", "events": 5000, "step": 1000}, "prediction": {"k": 1}}
    got = detection.deep_merge(base, {"window": {"events": 2000}, "prediction": None, "x": [1]})
    assert got == {"window": {"type": "sliding", "events": 2000, "step": 1000}, "x": [1]}
    assert base["window"]["events"] == 5000  # not mutated


def _evaluation(end: int, events: int, drifted: bool, feature_drifted: bool) -> dict[str, Any]:
    r = {"test": "js", "statistic": 0.2, "p_value": None, "threshold": 0.1}
    return {
        "type": "evaluation",
        "window": {"start_position": end - events + 1, "end_position": end, "events": events},
        "features": {"cat3_a": {**r, "drifted": feature_drifted}},
        "prediction": None,
        "drifted": drifted,
        "state": "ok",
    }


def _alert(event: str, end: int, names: list[str]) -> dict[str, Any]:
    return {
        "type": "alert",
        "event": event,
        "model_version": "v1",
        "rollback_to": None,
        "severity": "critical",
        "window": {"start_position": end - 999, "end_position": end, "events": 1000},
        "features": [{"name": n, "test": "js"} for n in names],
    }


def test_scoring_false_alerts_and_delay() -> None:
    run = detection.Run(change=10_000, target="cat3_a", window_events=1000)
    run.feed(
        [
            _evaluation(2000, 1000, True, True),
            _alert("drift.detected", 2000, ["cat3_a"]),  # before the change: false
            _alert("drift.resolved", 4000, []),
            _evaluation(10_000, 1000, False, False),  # ends at the change: still undrifted
            _evaluation(10_250, 1000, True, True),
            _evaluation(10_500, 1000, True, True),
            _alert("drift.detected", 10_500, ["cat3_a"]),
            _evaluation(11_000, 1000, True, True),
        ]
    )
    assert [a["end_position"] for a in run.false_alerts] == [2000]
    assert run.undrifted_evaluations == 2 and run.breaches == 1
    assert run.first_breach_delay == 250
    assert run.detection is not None
    assert run.detection["delay_events"] == 500 and run.detection["names_target"]
    assert not run.open_at_change
    assert run.full_window is not None and run.full_window["end_position"] == 11_000


def test_tiny_end_to_end_run(capsys: pytest.CaptureFixture[str]) -> None:
    result = detection.main(TINY)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == json.loads(json.dumps(result))
    names = {"stationary"} | {s.name for s in detection.SCENARIOS}
    assert set(result["streams"]) == names
    for s in result["streams"].values():
        assert isinstance(s["detected"], bool)
        assert s["delay_events"] is None or isinstance(s["delay_events"], int)
        assert isinstance(s["false_alerts"], int) and s["seconds"] >= 0
    assert result["false_alerts"] == sum(s["false_alerts"] for s in result["streams"].values())
    assert result["stationary_events"] == 6000 + 6 * 3000
    assert result["window_events"] == 1000 and result["window_step"] == 250
    assert result["streams"]["stationary"]["evaluations"] == 6000 // 250 - 3  # from 1000 on
    assert result["targets"]["stationary_events"]["met"] is False  # far below 1M
    assert result["targets_met"] is False
    # the large shifts are found, by the feature they are about
    for name in ("mean_shift_0.5sigma", "score_shift_new_version"):
        s = result["streams"][name]
        assert s["detected"] and 0 < s["delay_events"] <= 3000, s
    score = result["streams"]["score_shift_new_version"]["detections"][0]
    assert score["model_version"] == "v2" and score["rollback_to"] == "v1"
    # the multivariate monitors read the stationary stream and their flip streams
    assert set(result["multivariate"]) == {"pca_reconstruction", "mmd"}
    for m in result["multivariate"].values():
        st, fl = m["stationary"], m["correlation_flip"]
        assert st["events"] == 6000 and st["evaluations"] == 6000 // 250 - 3
        assert isinstance(st["false_alerts"], int) and st["threshold"] > st["null_centre"]
        assert st["headroom_used"] is not None and st["headroom_used"] < 1.0  # no breach
        assert fl["trials"] == 1 and fl["pre_change_events"] == 3000
        assert isinstance(fl["alert_names_only_multivariate"], bool)
    for key in ("multivariate_false_alerts", "multivariate_stationary_events",
                "correlation_flip_pca_reconstruction", "correlation_flip_mmd"):  # fmt: skip
        assert key in result["targets"]

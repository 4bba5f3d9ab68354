"""Performance estimated before the labels (``performance: {estimate: cbpe}``, issue 18),
wired end to end: CBPE fitted by ``driftd profile build`` on labelled reference events and
stored in the profile, a ``performance_estimate`` line for every evaluated window, alerts
``performance.estimated_degraded`` / ``…_resolved`` through the monitor's policy, metrics,
the status API pairing each estimate with the realised value once labels arrive, checkpoints,
and configuration errors naming their key.

The stream (tests/mv_workload.py) shifts its inputs so that accuracy falls from 0.80 to 0.70
while the scores stay calibrated, then recovers; labels arrive a day after their predictions
(``driftd replay --labels``). The estimate tracks the realised accuracy within its band and
raises the alert long before enough labels exist for the delayed-label verdict.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from driftd_testutil import api_view, registry_of, roundtrip
from mv_workload import (
    SPREAD_70,
    SPREAD_80,
    T0_MS,
    build_profile,
    credit_events,
    read_jsonl,
    write_config,
    write_lines,
)
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from driftd.cli import main
from driftd.config import load_config
from driftd.monitor.outputs import for_actions
from driftd.runtime.pipeline import Pipeline
from driftd.types import RawRecord

SHIFT = 20_000  # events at accuracy 0.80 before the shift
SHIFTED = 20_000  # events at 0.70
RECOVERED = 10_000  # events at 0.80 again
STEP_S = 10.0  # event time between events
LABEL_DELAY_S = 86_400.0  # a label arrives one day after its prediction: 8,640 events later
WINDOW, STEP = 2000, 500


def monitor(profile: Path, **perf: Any) -> dict[str, Any]:
    return {
        "name": "credit",
        "model": "credit",
        "reference": {"type": "profile", "path": str(profile)},
        "window": {"type": "sliding", "events": WINDOW, "step": STEP},
        "features": {"x": {"kind": "numeric"}},
        "prediction": {"kind": "numeric"},
        "performance": {
            "estimate": "cbpe",
            "window": WINDOW,
            "step": STEP,
            "baseline": "reference",
            "reference": {"accuracy": 0.80},
            "label_horizon_s": 30 * 86_400,
            **perf,
        },
        "policy": {"min_events": 1000, "consecutive": 2, "cooldown_s": 0},
    }


@pytest.fixture(scope="module")
def shift(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("cbpe-shift")
    rng = np.random.default_rng(44)
    ref, _, _ = credit_events(rng, 20_000, SPREAD_80, 0, step_s=1.0)
    events: list[bytes] = []
    labels: list[int] = []
    times: list[int] = []
    start = 0
    for n, spread in ((SHIFT, SPREAD_80), (SHIFTED, SPREAD_70), (RECOVERED, SPREAD_80)):
        ev, lab, ts = credit_events(rng, n, spread, start, step_s=STEP_S, with_labels=False)
        events += ev
        labels += lab
        times += ts
        start += n
    label_lines = [
        orjson.dumps(
            {
                "event_id": f"c{i}",
                "label": labels[i],
                "ts": times[i] + int(LABEL_DELAY_S * 1000),
            }
        )
        for i in range(len(events))
    ]
    profile = tmp / "credit.json"
    cfg = write_config(tmp, [monitor(profile)])
    build_profile(cfg, "credit", write_lines(tmp / "ref.jsonl", ref), profile)
    out = tmp / "out.jsonl"
    argv = ["replay", "-c", str(cfg), str(write_lines(tmp / "events.jsonl", events))]
    argv += ["--labels", str(write_lines(tmp / "labels.jsonl", label_lines))]
    assert main([*argv, "--out", str(out), "--batch", "1000"]) == 0
    return {
        "tmp": tmp,
        "cfg": cfg,
        "profile": profile,
        "events": events,
        "labels": np.asarray(labels),
        "label_lines": label_lines,
        "times": times,
        "out": read_jsonl(out),
    }


def estimates(out: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in out if o["type"] == "performance_estimate"]


def alerts(out: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    return [o for o in out if o["type"] == "alert" and o["event"].startswith(prefix)]


def realised_accuracy(shift: dict[str, Any], window: dict[str, Any]) -> float:
    a, b = window["start_position"], window["end_position"]
    y = shift["labels"][a - 1 : b]
    scores = np.array(
        [orjson.loads(e)["prediction"] for e in shift["events"][a - 1 : b]], dtype=np.float64
    )
    return float(np.mean((scores >= 0.5) == (y > 0)))


def test_profile_stores_the_estimator_fitted_on_labelled_reference(shift: dict[str, Any]) -> None:
    doc = orjson.loads(shift["profile"].read_bytes())
    est = doc["estimator"]
    assert est["key"] == {"method": "cbpe", "threshold": 0.5}
    assert est["meta"]["reference_events"] == 20_000
    assert est["meta"]["reference"]["accuracy"] == pytest.approx(0.80, abs=0.01)
    assert set(est["arrays"]) == {"calibration_x", "calibration_y"}


def test_estimate_tracks_the_realised_accuracy_within_its_band(shift: dict[str, Any]) -> None:
    lines = estimates(shift["out"])
    # one estimate per evaluated window of the drift monitor, from policy.min_events on
    evals = [o for o in shift["out"] if o["type"] == "evaluation"]
    assert [e["window"] for e in lines] == [e["window"] for e in evals]
    total = SHIFT + SHIFTED + RECOVERED
    assert len(lines) == (total - 1000) // STEP + 1
    inside, errors = 0, []
    for e in lines:
        assert set(e["metrics"]) == {
            "accuracy", "precision", "recall", "f1", "roc_auc", "positive_rate"
        }  # fmt: skip
        acc = e["metrics"]["accuracy"]
        real = realised_accuracy(shift, e["window"])
        inside += acc["lower"] <= real <= acc["upper"]
        if e["window"]["events"] == WINDOW:
            errors.append(acc["estimate"] - real)
    assert inside >= len(lines) - 2  # a 3σ band: all but a rare window
    assert np.abs(errors).mean() < 0.01
    shifted = [
        e["metrics"]["accuracy"]["estimate"]
        for e in lines
        if SHIFT + WINDOW <= e["window"]["end_position"] <= SHIFT + SHIFTED
    ]
    assert np.mean(shifted) == pytest.approx(0.70, abs=0.01)


def test_estimated_degraded_is_raised_before_labels_could_say_it(shift: dict[str, Any]) -> None:
    out = shift["out"]
    [est, resolved] = alerts(out, "performance.estimated")
    assert est["event"] == "performance.estimated_degraded" and est["severity"] == "warning"
    assert est["metric"] == "accuracy" and est["method"] == "cbpe"
    assert est["upper"] < est["reference_value"] - 0.02
    assert est["estimate"] == pytest.approx(0.73, abs=0.03)
    assert est["model_version"] == "v1" and "segment" not in est  # per version, as labels
    # within a window length of the shift (second breaching window, policy consecutive: 2)
    p_est = est["window"]["end_position"]
    assert SHIFT < p_est <= SHIFT + WINDOW
    # the labels of the first shifted event arrive a day (8,640 events) after it
    label_lag = int(LABEL_DELAY_S / STEP_S)
    labelled = [o for o in out if o["type"] == "performance"]
    # when the estimate alerted no shifted event had its label yet, let alone the
    # 2,000 the delayed-label comparison needs
    assert p_est < SHIFT + label_lag
    assert all(not o["degraded"] for o in labelled if o["window"]["end_position"] <= p_est)
    [late] = [a for a in alerts(out, "performance.") if a["event"] == "performance.degraded"]
    assert late["window"]["end_position"] > SHIFT + label_lag + WINDOW // 2 > p_est
    # the episode resolves once the inputs are back (resolution of a warning: a warning)
    assert resolved["event"] == "performance.estimated_resolved"
    assert resolved["resolves"] == est["id"] and resolved["severity"] == "warning"
    assert resolved["window"]["end_position"] > SHIFT + SHIFTED
    # warnings are audited, not sent to actions
    assert not for_actions(est) and not for_actions(resolved)
    assert for_actions(late)


def test_estimate_lines_state_and_audit(shift: dict[str, Any]) -> None:
    from driftd.actions.audit import decisions

    lines = estimates(shift["out"])
    states = [e["state"] for e in lines]
    assert states[0] == "ok" and "pending" in states and "alerting" in states
    held = [d for d in decisions(shift["out"]) if d.get("kind") == "performance_estimate"]
    assert held and held[0]["decision"] == "hold"
    assert held[0]["breaches"][0]["metric"] == "accuracy"


def test_critical_severity_drives_actions(shift: dict[str, Any], tmp_path: Path) -> None:
    cfg = load_config(
        write_config(tmp_path, [monitor(shift["profile"], estimate_severity="critical",
                                        labels=False)]),
        environ={},
    )  # fmt: skip
    engine = Pipeline(cfg)
    assert engine.perf is None  # labels: false — no label join, nothing kept per prediction
    recs = [RawRecord(v, i + 1, None) for i, v in enumerate(shift["events"])]
    out = [o for i in range(0, len(recs), 2500) for o in engine.process(recs[i : i + 2500])]
    [est, resolved] = alerts(out, "performance.estimated")
    assert est["severity"] == "critical" and for_actions(est)
    assert resolved["severity"] == "info" and for_actions(resolved)
    replayed = alerts(shift["out"], "performance.estimated")
    assert [a["id"] for a in (est, resolved)] == [a["id"] for a in replayed]  # stable ids
    # counted with the drift alert the shifted inputs also raise
    assert [a["event"] for a in alerts(out, "drift.detected")] == ["drift.detected"]
    status = engine.status().monitor("credit")
    assert status is not None and status.alerts == {"critical": 2}


def test_metrics_and_api_pair_the_estimate_with_the_realised_value(
    shift: dict[str, Any], tmp_path: Path
) -> None:
    cfg = load_config(shift["cfg"], environ={})
    engine = Pipeline(cfg)
    # predictions and their (delayed) labels in one stream, in event-time order
    delay = int(LABEL_DELAY_S * 1000)
    stream = sorted(
        [(t, 0, e) for t, e in zip(shift["times"], shift["events"], strict=True)]
        + [(t + delay, 1, lab) for t, lab in zip(shift["times"], shift["label_lines"],
                                                 strict=True)]
    )  # fmt: skip
    upto = SHIFT + 14_000  # labels of the first shifted events have arrived
    lines = [v for t, _, v in stream if t <= T0_MS + upto * STEP_S * 1000]
    recs = [RawRecord(v, i + 1, None) for i, v in enumerate(lines)]
    for i in range(0, len(recs), 3000):
        engine.process(recs[i : i + 3000])
    view = api_view(engine, "credit")
    pe = view["performance_estimate"]["v1"]
    assert pe["state"] == "alerting" and pe["degraded"] and pe["open_alert_id"]
    acc = pe["metrics"]["accuracy"]
    assert set(acc) == {"estimate", "lower", "upper", "reference", "realised"}
    assert acc["reference"] == pytest.approx(0.80, abs=0.01)
    real = view["performance"]["v1"]["last_evaluation"]["metrics"]["accuracy"]
    assert acc["realised"] == real and real < 0.77  # the labels now say it too
    assert pe["realised_window"]["labelled_events"] > 0
    text = generate_latest(registry_of(engine)).decode()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    got = {
        s.labels["metric"]: s.value
        for s in fams["driftd_performance_estimated"].samples
        if s.labels["monitor"] == "credit" and s.labels["model_version"] == "v1"
    }
    assert got["accuracy"] == pytest.approx(acc["estimate"])
    assert set(got) == {"accuracy", "precision", "recall", "f1", "roc_auc", "positive_rate"}
    lower = {
        s.labels["metric"]: s.value for s in fams["driftd_performance_estimated_lower"].samples
    }
    assert lower["accuracy"] == pytest.approx(acc["lower"])
    [deg] = fams["driftd_performance_estimated_degraded"].samples
    assert deg.value == 1.0
    realised = {
        s.labels["metric"]: s.value
        for s in fams["driftd_performance"].samples
        if s.labels["monitor"] == "credit"
    }
    assert realised["accuracy"] == pytest.approx(real)
    # the estimate's state survives a checkpoint: the open episode is not raised again
    second = roundtrip(engine, cfg, tmp_path / "ck")
    view2 = api_view(second, "credit")
    assert view2["performance_estimate"]["v1"]["open_alert_id"] == pe["open_alert_id"]
    rest = [RawRecord(v, len(recs) + i + 1, None) for i, v in enumerate(
        [v for t, _, v in stream if t > T0_MS + upto * STEP_S * 1000]
    )]  # fmt: skip
    more = [o for i in range(0, len(rest), 3000) for o in second.process(rest[i : i + 3000])]
    assert [a["event"] for a in alerts(more, "performance.estimated")] == [
        "performance.estimated_resolved"
    ]


def _check(tmp: Path, mon: dict[str, Any]) -> tuple[int, str]:
    cfg = write_config(tmp, [mon])
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["check-config", "-c", str(cfg)])
    return rc, err.getvalue()


def test_configuration_errors_name_their_key(shift: dict[str, Any], tmp_path: Path) -> None:
    base = monitor(shift["profile"])
    rc, err = _check(tmp_path, base)
    assert rc == 0, err
    perf = base["performance"]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"performance": {**perf, "task": "regression", "reference": {"mae": 1.0},
                          "baseline": "previous_version"}},
         "monitors.0.performance.estimate"),
        ({"performance": {**perf, "estimate_metrics": ["log_loss"]}},
         "monitors.0.performance.estimate_metrics.0"),
        ({"performance": {**perf, "estimate_min_effect": {"brier": 0.1}}},
         "monitors.0.performance.estimate_min_effect.brier"),
        ({"performance": {**perf, "estimate": None, "labels": False}},
         "monitors.0.performance.labels"),
        ({"performance": {**perf, "estimate_severity": "fatal"}},
         "monitors.0.performance.estimate_severity"),
        ({"prediction": None}, "monitors.0.performance.estimate"),
        ({"prediction": {"kind": "categorical"}}, "monitors.0.performance.estimate"),
        ({"reference": {"type": "warmup", "events": 1000}}, "monitors.0.performance.estimate"),
        ({"performance": {**perf, "threshold": 0.6}}, "monitors.0.performance.estimate"),
    ]  # fmt: skip
    for change, key in cases:
        rc, err = _check(tmp_path, {**base, **change})
        assert rc == 2 and f"{key}:" in err, (change, err)


def test_profile_build_needs_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    ref, _, _ = credit_events(rng, 500, SPREAD_80, 0, with_labels=False)
    cfg = write_config(tmp_path, [monitor(tmp_path / "p.json")])
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(
            ["profile", "build", "-c", str(cfg), "--monitor", "credit", "--input",
             str(write_lines(tmp_path / "ref.jsonl", ref)), "--out", str(tmp_path / "p.json")]
        )  # fmt: skip
    assert rc == 2 and "schema.label:" in err.getvalue()
    assert not (tmp_path / "p.json").exists()


def test_for_actions_keeps_the_rule_for_drift_alerts() -> None:
    from driftd.monitor.outputs import alert_line

    def line(kind: str, severity: str) -> dict[str, Any]:
        return alert_line(
            kind, "id", 0.0, monitor="m", model="x", version="v", rollback_to=None,
            severity=severity, reason="r", body={},
        )  # fmt: skip

    assert not for_actions(line("drift.warning", "warning"))  # as before: audited only
    assert for_actions(line("drift.detected", "critical"))
    assert for_actions(line("drift.resolved", "info"))
    assert for_actions(line("performance.degraded", "critical"))
    assert not for_actions(line("performance.estimated_degraded", "warning"))
    assert not for_actions({"type": "evaluation", "severity": "critical"})

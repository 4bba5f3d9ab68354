"""Delayed-label performance monitoring through the engine and `driftd replay` (issue 8):
detection positions pinned, labels from a second file or from the same stream, emitted
metric values equal scikit-learn's, exact restore from a checkpoint, late / orphaned / bad
labels counted, configuration errors naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import yaml
from driftd_testutil import build_credit_profile, read_jsonl, roundtrip, write_lines
from perf_workload import BAD_SHIFT, PERFORMANCE, labelled_stream, perf_config
from prometheus_client.parser import text_string_to_metric_families
from sklearn import metrics as skm

from driftd.cli import main
from driftd.config import load_config
from driftd.metrics import build_registry
from driftd.monitor.outputs import webhook_payload
from driftd.runtime.pipeline import Pipeline
from driftd.types import RawRecord


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_credit_profile(tmp_path_factory.mktemp("perf-profile"))


def replay(tmp: Path, cfg: Path, preds: list[bytes], labels: list[bytes] | None) -> list[Any]:
    src = write_lines(tmp / "preds.jsonl", preds)
    args = ["replay", "-c", str(cfg), str(src), "--out", str(tmp / "out.jsonl"), "--batch", "500"]
    args += ["--audit", str(tmp / "audit.jsonl")]
    if labels is not None:
        args += ["--labels", str(write_lines(tmp / "labels.jsonl", labels))]
    assert main(args) == 0
    return read_jsonl(tmp / "out.jsonl")


def perf_lines(out: list[Any], version: str) -> list[Any]:
    return [o for o in out if o["type"] == "performance" and o["model_version"] == version]


def alerts(out: list[Any]) -> list[Any]:
    return [o for o in out if o["type"] == "alert" and o["event"].startswith("performance.")]


def by_time(preds: list[bytes], labels: list[bytes]) -> list[bytes]:
    """One stream: predictions and label events in event-time order."""

    def ts(raw: bytes) -> str:
        return str(orjson.loads(raw)["ts"])

    return sorted(preds + labels, key=ts)


def test_replay_flags_worse_version_at_pinned_position(tmp_path: Path, profile: Path) -> None:
    preds, labels = labelled_stream(v2_shift=BAD_SHIFT)
    out = replay(tmp_path, perf_config(tmp_path, profile=profile), preds, labels)
    [a] = alerts(out)
    assert a["event"] == "performance.degraded"
    assert a["model_version"] == "v2" and a["rollback_to"] == "v1"
    assert a["baseline_version"] == "v1" and a["metric"] == "accuracy"
    assert a["severity"] == "critical" and a["id"]
    # Pinned: the second breaching evaluation (policy consecutive: 2), 2500 labelled v2 events,
    # reached while the replay had read 8000 predictions (of 10,000).
    assert a["window"] == {"events": 2000, "labelled_events": 2500, "end_position": 8000}
    assert a["current"] < a["baseline"] - 0.04
    lo, hi = a["ci"]
    assert lo < a["difference"] < hi < 0
    assert a["difference"] == pytest.approx(a["current"] - a["baseline"], abs=1e-12)
    v2 = perf_lines(out, "v2")
    assert [e["state"] for e in v2[:2]] == ["pending", "alerting"]
    # the audit log has the held breach, then the alert with its full payload
    audit = read_jsonl(tmp_path / "audit.jsonl")
    assert [(r["decision"], r.get("kind"), r["reason"]) for r in audit[:3]] == [
        ("hold", "performance", "breach 1 of 2 needed"),
        ("hold", "performance", "2 consecutive breaching evaluations"),  # as drift evaluations
        ("performance.degraded", None, "2 consecutive breaching evaluations"),
    ]
    assert audit[0]["breaches"][0]["metric"] == "accuracy" and audit[2]["id"] == a["id"]
    assert all(not e["degraded"] for e in perf_lines(out, "v1"))
    s = out[-1]
    assert s["type"] == "summary" and s["labels"] == len(labels)
    assert s["events"] == s["accepted"] + s["labels"] + sum(s["rejected"].values())


def test_replay_equal_version_not_flagged(tmp_path: Path, profile: Path) -> None:
    preds, labels = labelled_stream(v2_shift=0.0)
    out = replay(tmp_path, perf_config(tmp_path, profile=profile), preds, labels)
    assert alerts(out) == []
    v2 = perf_lines(out, "v2")
    compared = [e for e in v2 if e["comparisons"]]
    assert len(compared) >= 5  # compared at every step, never degraded
    for e in compared:
        c = e["comparisons"]["accuracy"]
        assert c["ci"][0] < 0 < c["ci"][1] and not e["degraded"] and e["state"] == "ok"


def test_labels_in_the_same_stream_give_the_same_verdicts(tmp_path: Path, profile: Path) -> None:
    preds, labels = labelled_stream(v2_shift=BAD_SHIFT)
    cfg = perf_config(tmp_path, profile=profile)
    (tmp_path / "two").mkdir()
    two_files = replay(tmp_path / "two", cfg, preds, labels)
    one = replay(tmp_path, cfg, by_time(preds, labels), None)
    [a2], [a1] = alerts(two_files), alerts(one)
    for k in ("current", "baseline", "ci", "difference", "metrics", "model_version"):
        assert a1[k] == a2[k], k
    assert a1["window"]["labelled_events"] == 2500
    assert a1["window"]["end_position"] == 14_500  # position in the merged stream
    s = one[-1]
    assert s["labels"] == len(labels) and s["accepted"] == len(preds) and s["rejected"] == {}


def test_emitted_metrics_equal_sklearn(tmp_path: Path, profile: Path) -> None:
    preds, labels = labelled_stream(v2_shift=BAD_SHIFT, n=3000, n2=100)
    perf = {"window": 4000, "step": 3000, "min_events": 3000, "label_horizon_s": 3600,
            "metrics": ["accuracy", "roc_auc"], "threshold": 0.5}  # fmt: skip
    cfg = perf_config(tmp_path, profile=profile, performance=perf)
    engine = Pipeline(load_config(cfg))
    recs = [RawRecord(v, i + 1, None) for i, v in enumerate(by_time(preds, labels))]
    for i in range(0, len(recs), 700):
        engine.process(recs[i : i + 700])
    assert engine.perf is not None
    ev = engine.perf.monitors["credit"].versions["v1"].latest
    assert ev is not None
    assert ev["window"]["labelled_events"] == 3000  # every v1 prediction, joined
    # The same pairs, joined by hand from the generated data.
    y_of = {d["event_id"]: d["label"] for d in map(orjson.loads, labels)}
    v1 = [orjson.loads(p) for p in preds[:3000]]
    s = np.array([d["prediction"] for d in v1])
    y = np.array([y_of[d["event_id"]] for d in v1])
    yhat = s >= 0.5
    expected = {
        "accuracy": skm.accuracy_score(y, yhat),
        "precision": skm.precision_score(y, yhat),
        "recall": skm.recall_score(y, yhat),
        "f1": skm.f1_score(y, yhat),
        "roc_auc": skm.roc_auc_score(y, s),
        "log_loss": skm.log_loss(y, s, labels=[0, 1]),
        "brier": skm.brier_score_loss(y, s),
        "positive_rate": float(np.mean(yhat)),
        "label_positive_rate": float(np.mean(y)),
    }
    for name, want in expected.items():
        assert ev["metrics"][name] == pytest.approx(want, abs=1e-9, rel=0), name
    # …and the Prometheus gauge carries the same values.
    text = _scrape(engine)
    for name, want in expected.items():
        got = text[("driftd_performance", ("credit", "v1", name))]
        assert got == pytest.approx(want, abs=1e-9, rel=0), name
    assert text[("driftd_labelled_events_total", ("credit", "v1"))] == 3000


def _scrape(engine: Pipeline) -> dict[tuple[str, tuple[str, ...]], float]:
    """Samples by (name, label values in the order driftd declares the labels)."""
    from prometheus_client import generate_latest

    out: dict[tuple[str, tuple[str, ...]], float] = {}
    body = generate_latest(build_registry(engine.status)).decode()
    order = ("monitor", "model_version", "metric", "outcome", "reason")  # as declared
    for fam in text_string_to_metric_families(body):
        for smp in fam.samples:
            vals = tuple(smp.labels[k] for k in order if k in smp.labels)
            out[(smp.name, vals)] = smp.value
    return out


def test_restart_from_checkpoint_is_exact(tmp_path: Path, profile: Path) -> None:
    preds, labels = labelled_stream(v2_shift=BAD_SHIFT)
    stream = by_time(preds, labels)
    perf = {**PERFORMANCE, "detector": "adwin"}  # the river detector's state is restored too
    cfg = load_config(perf_config(tmp_path, profile=profile, performance=perf))
    recs = [RawRecord(v, i + 1, None) for i, v in enumerate(stream)]
    batches = [recs[i : i + 600] for i in range(0, len(recs), 600)]
    cut = len(batches) // 2  # mid-stream: thousands of predictions still wait for labels

    def run(engine: Pipeline, bs: list[list[RawRecord]]) -> list[Any]:
        return [o for b in bs for o in engine.process(b) if o["type"] != "evaluation"]

    whole = Pipeline(cfg)
    run(whole, batches[:cut])
    expected = run(whole, batches[cut:])

    first = Pipeline(cfg)
    run(first, batches[:cut])
    assert first.perf is not None and first.perf.monitors["credit"].joiner.pending > 1000
    second = roundtrip(first, cfg, tmp_path / "ckpt")
    assert second.perf is not None
    got = run(second, batches[cut:])
    assert got == expected
    # the detections happen after the restart
    assert {o["type"] for o in got} == {"performance", "alert", "detector"}
    c1 = whole.perf.monitors["credit"].joiner.counters()  # type: ignore[union-attr]
    assert second.perf.monitors["credit"].joiner.counters() == c1


@pytest.mark.parametrize(
    ("detector", "position", "errors_seen"), [("adwin", 14_000, 6270), ("ddm", 13_000, 5773)]
)
def test_error_stream_detector_fires_after_the_switch(
    tmp_path: Path, profile: Path, detector: str, position: int, errors_seen: int
) -> None:
    perf = {**PERFORMANCE, "detector": detector}
    cfg = load_config(perf_config(tmp_path, profile=profile, performance=perf))
    found = {}
    for name, shift in (("worse", BAD_SHIFT), ("equal", 0.0)):
        engine = Pipeline(cfg)
        stream = by_time(*labelled_stream(v2_shift=shift))
        found[name] = [
            (o["model_version"], o["position"], o["errors_seen"], o["detector"])
            for i in range(0, len(stream), 500)
            for o in engine.process(
                [RawRecord(v, i + k + 1, None) for k, v in enumerate(stream[i : i + 500])]
            )
            if o["type"] == "detector"
        ]
    # Pinned: after the 4000 v1 errors, during v2; earlier than the windowed comparison
    # (position 14,500 in this stream) for DDM. Never on the equal version.
    assert found == {
        "worse": [("v2", position, errors_seen, f"performance_{detector}")],
        "equal": [],
    }


def test_daemon_without_performance_does_not_import_river() -> None:
    import subprocess
    import sys

    # river (the error-stream detectors) costs ~0.8 s of start-up; only performance monitors
    # and river detectors load it
    code = "import sys, driftd.runtime.daemon; print('river' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False"


def test_unusable_or_changed_performance_state_starts_fresh(tmp_path: Path, profile: Path) -> None:
    from driftd_testutil import LogLines

    preds, labels = labelled_stream(v2_shift=0.0, n=3000, n2=10)
    cfg = load_config(perf_config(tmp_path, profile=profile))
    e = Pipeline(cfg)
    e.process([RawRecord(v, i + 1, None) for i, v in enumerate(by_time(preds, labels))])
    assert e.perf is not None
    meta, arrays = e.perf.snapshot()
    broken = {k: v for k, v in arrays.items() if not k.endswith(".pending")}
    other = load_config(perf_config(tmp_path, profile=profile,
                                    performance={**PERFORMANCE, "window": 1000}))  # fmt: skip
    for config, arr, says in ((cfg, broken, "unusable"), (other, arrays, "changed")):
        fresh = Pipeline(config)
        assert fresh.perf is not None
        with LogLines() as log:
            fresh.perf.restore(meta, arr)
        assert says in log.text
        assert fresh.perf.monitors["credit"].joiner.pending == 0
        assert fresh.perf.monitors["credit"].versions == {}
        # windows restart at 0 labelled events: a new epoch keeps their alert ids new
        assert fresh.perf.monitors["credit"].epoch == 1
        assert fresh.perf.snapshot()[0]["monitors"][0]["epoch"] == 1
    ok = Pipeline(cfg)
    assert ok.perf is not None
    ok.perf.restore(meta, arrays)
    assert ok.perf.monitors["credit"].versions["v1"].window.total == 3000
    assert ok.perf.monitors["credit"].epoch == 0


def test_late_orphaned_duplicate_and_bad_labels_are_counted(tmp_path: Path, profile: Path) -> None:
    perf = {"window": 10, "step": 10, "label_horizon_s": 60, "metrics": ["accuracy"]}
    cfg = load_config(perf_config(tmp_path, profile=profile, performance=perf))
    preds, _ = labelled_stream(v2_shift=0.0, n=20, n2=1)
    ids = [orjson.loads(p)["event_id"] for p in preds]

    def label(eid: Any, t: str, y: Any = 1) -> bytes:
        return orjson.dumps({"event_id": eid, "label": y, "ts": f"2026-11-26T12:{t}Z"})

    lines = preds[:20] + [
        label(ids[0], "00:05"),  # joined
        label(ids[0], "00:06"),  # duplicate
        label("nobody", "00:07"),  # orphaned once the horizon passes
        label(None, "00:08"),  # no model, no event_id: not a label event (missing_model)
        label(ids[1], "00:09", "yes"),  # bad_label: not a number
        b'{"event_id": "x", "label": 1, "ts": "yesterday"}',  # bad_timestamp
        preds[20],
        preds[20].replace(b'"event_id":"', b'"id":"'),  # accepted, cannot be joined
    ]
    # Event time then moves on by more than the horizon (in a later batch: the joiner's clock
    # advances once per batch, before the batch's items).
    later = [label(ids[2], "01:30")]  # late: its prediction expired at 12:01:00
    engine = Pipeline(cfg)
    engine.process([RawRecord(v, i + 1, None) for i, v in enumerate(lines)])
    engine.process([RawRecord(later[0], len(lines) + 1, None)])
    c = engine.perf.monitors["credit"].joiner.counters()  # type: ignore[union-attr]
    assert (c["joined"], c["duplicates"], c["orphaned"], c["late"]) == (1, 1, 1, 1)
    s = engine.summary()
    assert s["rejected"] == {"bad_label": 1, "bad_timestamp": 1, "missing_model": 1}
    assert s["accepted"] == 22 and s["labels"] == 4
    assert s["events"] == s["accepted"] + s["labels"] + sum(s["rejected"].values())
    m = _scrape(engine)
    for outcome, n in (("joined", 1), ("duplicate", 1), ("orphaned", 1), ("late", 1)):
        assert m[("driftd_labels_total", ("credit", outcome))] == n
    assert m[("driftd_predictions_unlabelled_total", ("credit", "expired"))] == 20
    assert m[("driftd_label_lag_seconds_count", ("credit",))] == 1
    assert m[("driftd_predictions_unjoinable_total", ("credit", "no_event_id"))] == 1


@pytest.mark.parametrize(
    ("perf", "kafka", "key"),
    [
        ({"metrics": ["accuracy", "mae"]}, {}, "monitors.0.performance.metrics.1"),
        ({"baseline": "reference"}, {}, "monitors.0.performance.reference"),
        ({"baseline": "last"}, {}, "monitors.0.performance.baseline"),
        (
            {"task": "regression", "metrics": ["mae"], "detector": "ddm"},
            {},
            "monitors.0.performance.detector",
        ),
        ({"label_horizon_s": 0}, {}, "monitors.0.performance.label_horizon_s"),
        ({"min_effect": {"acuracy": 0.1}}, {}, "monitors.0.performance.min_effect.acuracy"),
        ({}, {"topics": ["p"], "label_topics": ["p"]}, "kafka.label_topics"),
    ],
)
def test_bad_performance_config_names_the_key(
    tmp_path: Path, profile: Path, capsys: pytest.CaptureFixture[str], perf: Any, kafka: Any,
    key: str,
) -> None:  # fmt: skip
    p = perf_config(tmp_path, profile=profile)
    cfg = yaml.safe_load(p.read_text())
    cfg["monitors"][0]["performance"].update(perf)
    cfg["kafka"].update(kafka)
    p.write_text(yaml.safe_dump(cfg))
    assert main(["check-config", "-c", str(p)]) == 2
    assert f"config error: {key}:" in capsys.readouterr().err


def test_performance_metrics_pass_promtool(tmp_path: Path, profile: Path) -> None:
    import shutil
    import subprocess

    from prometheus_client import generate_latest

    preds, labels = labelled_stream(v2_shift=BAD_SHIFT)
    engine = Pipeline(load_config(perf_config(tmp_path, profile=profile)))
    stream = by_time(preds, labels)
    for i in range(0, len(stream), 2000):
        engine.process([RawRecord(v, i + k + 1, None) for k, v in enumerate(stream[i : i + 2000])])
    body = generate_latest(build_registry(engine.status))
    for name in ("driftd_performance{", "driftd_label_lag_seconds_bucket{",
                 "driftd_labelled_events_total{", "driftd_performance_degraded{"):  # fmt: skip
        assert name.encode() in body, name
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool (Debian package prometheus) is needed"
    r = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=60)
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), r


def test_recovered_version_resolves_the_alert(tmp_path: Path, profile: Path) -> None:
    from datetime import timedelta

    from perf_workload import RATE_PER_S, T0

    from driftd.demo.credit import generate, labels_for

    preds: list[bytes] = []
    labels: list[bytes] = []
    # v1 good; v2 bad for 4000 predictions, then (same version, fixed) good for 6000 more
    for k, (version, shift, n, start) in enumerate(
        [("v1", 0.0, 4000, 0.0), ("v2", BAD_SHIFT, 4000, 80.0), ("v2", 0.0, 6000, 160.0)]
    ):
        at = T0 + timedelta(seconds=start)
        ev = list(generate(n, version=version, seed=60 + k, score_shift=shift,
                           rate_per_s=RATE_PER_S, start=at, id_prefix=f"p{k}-"))  # fmt: skip
        preds += ev
        labels += labels_for(ev, score_shift=shift, seed=60 + k)
    cfg = load_config(perf_config(tmp_path, profile=profile))
    engine = Pipeline(cfg)
    stream = by_time(preds, labels)
    out = [
        o
        for i in range(0, len(stream), 1000)
        for o in engine.process(
            [RawRecord(v, i + k + 1, None) for k, v in enumerate(stream[i : i + 1000])]
        )
    ]
    degraded, resolved = alerts(out)
    assert degraded["event"] == "performance.degraded" and degraded["severity"] == "critical"
    assert resolved["event"] == "performance.resolved" and resolved["severity"] == "info"
    assert resolved["resolves"] == degraded["id"] and resolved["model_version"] == "v2"
    assert resolved["reason"] == "2 consecutive clean evaluations"
    assert resolved["window"]["labelled_events"] > degraded["window"]["labelled_events"] + 2000
    assert engine.perf is not None
    assert engine.perf.monitors["credit"].versions["v2"].policy.state == "ok"
    payload = webhook_payload(resolved)
    assert payload["type"] == "performance.resolved" and payload["id"] == resolved["id"]


def test_far_future_times_do_not_move_the_join_clock(tmp_path: Path, profile: Path) -> None:
    """One prediction and one label timestamped in year 9999 (e.g. nanoseconds read as ms)
    are set aside and counted; later predictions and labels still join."""
    perf = {"window": 10, "step": 10, "label_horizon_s": 60, "metrics": ["accuracy"]}
    cfg = load_config(perf_config(tmp_path, profile=profile, performance=perf))
    preds, _ = labelled_stream(v2_shift=0.0, n=20, n2=1)
    ids = [orjson.loads(p)["event_id"] for p in preds]
    doc = orjson.loads(preds[0])
    doc["ts"] = "9999-12-31T00:00:00Z"
    doc["event_id"] = "from-the-future"
    future_pred = orjson.dumps(doc)
    future_label = orjson.dumps({"event_id": ids[0], "label": 1, "ts": "9999-12-31T00:00:00Z"})
    engine = Pipeline(cfg)
    engine.process(
        [RawRecord(v, i + 1, None) for i, v in enumerate([future_pred, future_label, *preds[:20]])]
    )
    labels = [
        orjson.dumps({"event_id": eid, "label": 1, "ts": "2026-11-26T12:00:30Z"})
        for eid in ids[:20]
    ]
    engine.process([RawRecord(v, 100 + i, None) for i, v in enumerate(labels)])
    c = engine.perf.monitors["credit"].joiner.counters()  # type: ignore[union-attr]
    assert c["joined"] == 20 and c["late"] == 0 and c["expired"] == 0
    s = engine.summary()
    assert s["rejected"] == {"bad_label": 1}
    m = _scrape(engine)
    assert m[("driftd_predictions_unjoinable_total", ("credit", "future_ts"))] == 1

"""One verdict per model version, however the topic is partitioned (issue 12), on the broker.

Prediction logs are keyed by event id, so every model version is spread over every
partition. driftd merges the partitions: one window, one policy and one alert id per
(monitor, version), alerts and evaluations saying which partition offsets their window holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from driftd_testutil import (
    SECRET,
    Driftd,
    build_credit_profile,
    credit_config,
    http_get,
    metric_value,
    read_jsonl,
    wait_until,
    write_lines,
)
from kafka.partitioner.default import murmur2
from kafka_harness import SlowProducer, committed_offsets, produce

from driftd.cli import main
from driftd.demo.credit import generate
from driftd.demo.sink import WebhookSink

pytestmark = pytest.mark.kafka
Start = Callable[..., Driftd]
STEP = 500  # credit_config's window: sliding 2,000 events, step 500
V1 = V2 = 6000


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_credit_profile(tmp_path_factory.mktemp("uod-profile"))


def stream(seed: int = 61) -> list[bytes]:
    return list(generate(V1, version="v1", seed=seed)) + list(
        generate(V2, version="v2", seed=seed + 1, score_shift=1.0)
    )


def event_ids(lines: list[bytes]) -> list[bytes]:
    return [orjson.loads(v)["event_id"].encode() for v in lines]


def counts(d: Driftd) -> dict[str, int]:
    """Events merged per version ({} while the process is not answering yet)."""
    code, body = http_get(d.base + "/api/v1/monitors/credit")
    if code != 200:
        return {}
    return {v: s["events"] for v, s in orjson.loads(body)["versions"].items()}


def drift_alerts(sink: WebhookSink) -> list[dict[str, Any]]:
    return [
        p
        for p in (orjson.loads(r.body) for r in sink.requests)
        if p["type"] in ("drift.detected", "drift.resolved")
    ]


def v2_events_merged(window: dict[str, Any], first_v2: dict[str, int]) -> int:
    """v2 events merged into v2's stream when the window was evaluated: per partition, the
    window's last offset past the partition's first v2 offset (every v2 event up to it)."""
    return sum(
        last - first_v2[key] + 1 for key, (_first, last) in window["partitions"].items()
    )


def config(tmp: Path, profile: Path, bootstrap: str, topic: str, url: str, **state: Any) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    cfg = credit_config(
        tmp, profile=profile, bootstrap=bootstrap, topic=topic, group=f"g-{topic}",
        webhook_url=url,
    )  # fmt: skip
    if state:
        doc = yaml.safe_load(cfg.read_text())
        doc["state"].update(state)
        cfg.write_text(yaml.safe_dump(doc))
    return cfg


def partition_of(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (murmur2 of the key)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def test_one_alert_per_version_over_four_partitions_keyed_by_event_id(
    tmp_path: Path,
    profile: Path,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    driftd_proc: Start,
) -> None:
    lines = stream()
    keys = event_ids(lines)
    one, four = make_topic(partitions=1), make_topic(partitions=4)
    first_v2: dict[str, int] = {}  # per partition: the offset of its first v2 event
    sent: dict[int, int] = {}
    for key, line in zip(keys, lines, strict=True):
        p = partition_of(key, 4)
        if b'"v2"' in line:
            first_v2.setdefault(f"{four}/{p}", sent.get(p, 0))
        sent[p] = sent.get(p, 0) + 1
    assert len(first_v2) == 4, "event ids must spread over every partition"
    delays: dict[str, int] = {}
    for topic, parts in ((one, 1), (four, 4)):
        with WebhookSink(SECRET) as sink:
            cfg = config(tmp_path / topic, profile, kafka_bootstrap, topic, sink.url)
            d = driftd_proc(cfg)
            wait_until(d.ready, 60, "driftd ready")
            # live traffic, as services publish it: the partitions interleave as they arrive
            prod = SlowProducer(kafka_bootstrap, topic, lines, rate=3000, keys=keys)
            prod.start()
            prod.join(90)
            assert prod.error is None
            wait_until(lambda d=d: counts(d) == {"v1": V1, "v2": V2}, 90, "every event merged")
            assert sink.wait_for(1, timeout_s=30)
            time.sleep(1.5)  # room for a (wrong) second alert to show up
            alerts = drift_alerts(sink)
            assert [(a["type"], a["model_version"]) for a in alerts] == [
                ("drift.detected", "v2")
            ], f"{parts} partitions: {alerts}"
            (alert,) = alerts
            assert alert["rollback_to"] == "v1"
            assert "partition" not in alert
            window = alert["window"]
            assert len(window["partitions"]) == parts
            assert window["events"] < 2000  # not full yet: it holds every v2 event merged
            if parts == 1:
                delays["one"] = window["partitions"][f"{one}/0"][1] - V1 + 1
            else:
                delays["four"] = v2_events_merged(window, first_v2)
                # the verdict and its series are the merged window's, not a partition's
                view = d.get_json("/api/v1/monitors/credit")
                v2 = view["versions"]["v2"]
                assert view["model_version"] == "v2" and view["drifted"] is True
                assert v2["window_events"] == 2000 and v2["open_alert_id"] == alert["id"]
                last = v2["last_evaluation"]["window"]
                assert last["events"] == 2000 and len(last["partitions"]) == 4
                assert v2_events_merged(last, first_v2) == V2
                metrics = d.metrics()
                labels = {"monitor": "credit", "model_version": "v2"}
                assert metric_value(metrics, "driftd_window_events", **labels) == 2000
                assert metric_value(metrics, "driftd_events_total", **labels) == V2
                assert metric_value(metrics, "driftd_monitor_drifted", **labels) == 1
            assert d.terminate() == 0
            assert sum(committed_offsets(kafka_bootstrap, f"g-{topic}", topic).values()) == len(
                lines
            )
    # detection within one window step of the single-partition stream
    assert abs(delays["four"] - delays["one"]) <= STEP, delays


def test_kill_9_at_several_points_delivers_each_transition_under_one_id(
    tmp_path: Path,
    profile: Path,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    driftd_proc: Start,
) -> None:
    topic = make_topic(partitions=4)
    lines = stream(seed=71)
    with WebhookSink(SECRET) as sink:
        cfg = config(tmp_path, profile, kafka_bootstrap, topic, sink.url)
        prod = SlowProducer(kafka_bootstrap, topic, lines, rate=2500, keys=event_ids(lines))
        d = driftd_proc(cfg)
        wait_until(d.ready, 60, "driftd ready")
        prod.start()
        kills = 0

        def restart_after(cond: Callable[[], bool], what: str) -> Driftd:
            nonlocal d, kills
            wait_until(cond, 90, what)
            d.kill()  # SIGKILL: no drain, no final checkpoint
            kills += 1
            d = driftd_proc(cfg)
            wait_until(d.ready, 60, "driftd ready after kill -9")
            return d

        def merged() -> int:
            return sum(counts(d).values())

        restart_after(lambda: merged() >= 3000, "mid v1")
        restart_after(lambda: counts(d).get("v2", 0) >= 700, "v2 windows filling")
        restart_after(lambda: len(sink.requests) >= 1, "the alert delivered")
        prod.join(60)
        assert prod.error is None
        restart_after(lambda: counts(d).get("v2", 0) >= V2 - 1000, "near the end")
        wait_until(lambda: counts(d) == {"v1": V1, "v2": V2}, 90, "every event merged once")
        time.sleep(2.0)
        alerts = drift_alerts(sink)
        assert kills == 4
        assert {(a["type"], a["model_version"]) for a in alerts} == {("drift.detected", "v2")}
        assert len({a["id"] for a in alerts}) == 1, "one transition delivered under two ids"
        view = d.get_json("/api/v1/monitors/credit")
        assert view["versions"]["v2"]["open_alert_id"] == alerts[0]["id"]
        assert d.terminate() == 0
    assert sum(committed_offsets(kafka_bootstrap, f"g-{topic}", topic).values()) == len(lines)


def test_replay_and_run_on_one_partition_give_identical_evaluations_and_alert_ids(
    tmp_path: Path,
    profile: Path,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    driftd_proc: Start,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    topic = make_topic(partitions=1)
    lines = stream(seed=81)
    lines[100:100] = [b"{broken", b'{"model": "credit-scoring"}']  # rejected, yet positions
    events = write_lines(tmp_path / "events.jsonl", lines)
    produce(kafka_bootstrap, topic, lines)
    with WebhookSink(SECRET) as sink:
        cfg = config(tmp_path, profile, kafka_bootstrap, topic, sink.url, audit_evaluations=True)
        d = driftd_proc(cfg)
        wait_until(lambda: counts(d) == {"v1": V1, "v2": V2}, 90, "every event")
        assert sink.wait_for(1, timeout_s=30)
        assert d.terminate() == 0
    assert main(["replay", "-c", str(cfg), str(events), "--out", str(tmp_path / "out.jsonl")]) == 0
    replayed = read_jsonl(tmp_path / "out.jsonl")
    audit = read_jsonl(cfg.parent / "state" / "audit.jsonl")

    def plain(line: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in line.items() if k not in ("ts", "decision")}
        window = dict(out["window"])
        assert window.pop("partitions", {f"{topic}/0": None}).keys() == {f"{topic}/0"}
        out["window"] = window
        return out

    run_evals = [plain(a) for a in audit if a["decision"] == "evaluation"]
    run_alerts = [plain(a) for a in audit if a["decision"] == "drift.detected"]
    rep_evals = [o for o in replayed if o["type"] == "evaluation"]
    rep_alerts = [o for o in replayed if o["type"] == "alert"]
    assert len(run_evals) == len(rep_evals) >= 20
    assert run_evals == rep_evals
    assert [a["id"] for a in run_alerts] == [a["id"] for a in rep_alerts] != []
    assert run_alerts == rep_alerts
    assert [p["id"] for p in (orjson.loads(r.body) for r in sink.requests)] == [
        rep_alerts[0]["id"]
    ]
    code, _ = http_get(d.base + "/healthz")  # the process is gone
    assert code != 200

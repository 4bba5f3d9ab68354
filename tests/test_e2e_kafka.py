"""The spine end to end on the real broker: `driftd run` as a process, a signed webhook to an
in-test receiver, gauges flipping, and offsets committed for every event after SIGTERM."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

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
    wait_until,
)
from kafka_harness import committed_offsets, produce

from driftd.actions.signing import verify
from driftd.demo.credit import generate
from driftd.demo.sink import WebhookSink


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_credit_profile(tmp_path_factory.mktemp("e2e-profile"))


@pytest.mark.kafka
@pytest.mark.parametrize("source", ["kafka", "confluent"])
def test_drift_to_signed_webhook_and_offsets(
    source: str,
    tmp_path: Path,
    profile: Path,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    driftd_proc: Callable[..., Driftd],
) -> None:
    topic = make_topic(partitions=1)
    group = f"e2e-{topic}"
    with WebhookSink(SECRET) as sink:
        cfg = credit_config(
            tmp_path,
            profile=profile,
            bootstrap=kafka_bootstrap,
            topic=topic,
            group=group,
            webhook_url=sink.url,
        )
        if source != "kafka":  # the same run on confluent-kafka (librdkafka)
            doc = yaml.safe_load(cfg.read_text())
            doc["source"] = {"type": source}
            cfg.write_text(yaml.safe_dump(doc))
        events = list(generate(6000, version="v1", seed=11)) + list(
            generate(6000, version="v2", seed=12, score_shift=1.0)
        )
        produce(kafka_bootstrap, topic, events)
        d = driftd_proc(cfg)
        wait_until(lambda: http_get(d.base + "/readyz")[0] == 200, 60, "/readyz")

        def v2_drifted() -> bool:
            view = d.get_json("/api/v1/monitors/credit")
            return bool(view["drifted"]) and view["model_version"] == "v2"

        wait_until(v2_drifted, 60, "monitor credit drifted on v2")
        code, text = http_get(d.base + "/metrics")
        assert code == 200
        metrics = text.decode()
        assert (
            metric_value(metrics, "driftd_monitor_drifted", monitor="credit", model_version="v2")
            == 1
        )
        assert (
            metric_value(metrics, "driftd_monitor_drifted", monitor="credit", model_version="v1")
            == 0
        )
        assert (
            metric_value(
                metrics,
                "driftd_feature_drifted",
                monitor="credit",
                model_version="v2",
                feature="prediction",
            )
            == 1
        )
        assert (
            metric_value(metrics, "driftd_events_total", monitor="credit", model_version="v1")
            == 6000
        )

        assert sink.wait_for(1, timeout_s=30)
        time.sleep(2.0)  # room for a (wrong) second delivery to show up
        assert len(sink.requests) == 1
        req = sink.requests[0]
        assert req.verified
        assert verify(SECRET, req.body, req.headers["driftd-signature"])
        payload = orjson.loads(req.body)
        assert req.headers["idempotency-key"] == payload["id"]
        assert payload["type"] == "drift.detected"
        assert payload["monitor"] == "credit" and payload["model"] == "credit-scoring"
        assert payload["model_version"] == "v2" and payload["rollback_to"] == "v1"
        assert payload["severity"] == "critical"
        assert {"name", "test", "statistic", "p_value", "threshold"} <= set(payload["features"][0])
        assert {"start_position", "end_position", "events"} <= set(payload["window"])
        assert isinstance(payload["drift_share"], float) and payload["time"].endswith("Z")

        assert d.terminate() == 0
    assert committed_offsets(kafka_bootstrap, group, topic) == {0: len(events)}


@pytest.mark.kafka
def test_sigterm_drains_and_commits_across_partitions(
    tmp_path: Path,
    profile: Path,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    driftd_proc: Callable[..., Driftd],
) -> None:
    topic = make_topic(partitions=4)
    group = f"drain-{topic}"
    cfg = credit_config(
        tmp_path, profile=profile, bootstrap=kafka_bootstrap, topic=topic, group=group
    )
    events = list(generate(8000, version="v1", seed=13))
    produce(kafka_bootstrap, topic, events)
    d = driftd_proc(cfg)
    wait_until(lambda: http_get(d.base + "/readyz")[0] == 200, 60, "/readyz")

    def all_counted() -> bool:
        code, text = http_get(d.base + "/metrics")
        return (
            metric_value(text.decode(), "driftd_events_total", monitor="credit", model_version="v1")
            == 8000
        )

    wait_until(all_counted, 60, "every event counted")
    t0 = time.monotonic()
    assert d.terminate() == 0
    assert time.monotonic() - t0 < 15
    offsets = committed_offsets(kafka_bootstrap, group, topic)
    assert sum(offsets.values()) == len(events)


@pytest.mark.kafka
def test_rejected_events_counted_on_broker(
    tmp_path: Path,
    profile: Path,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    driftd_proc: Callable[..., Driftd],
) -> None:
    topic = make_topic(partitions=1)
    cfg = credit_config(
        tmp_path, profile=profile, bootstrap=kafka_bootstrap, topic=topic, group=f"rej-{topic}"
    )
    good = list(generate(1000, version="v1", seed=14))
    bad = [b"{oops", b"[]", orjson.dumps({"model": "credit-scoring"}), b"x" * (2 * 1024 * 1024)]
    produce(kafka_bootstrap, topic, good + bad)
    d = driftd_proc(cfg)
    wait_until(lambda: http_get(d.base + "/readyz")[0] == 200, 60, "/readyz")

    def counted() -> bool:
        _, text = http_get(d.base + "/metrics")
        m = text.decode()
        total = sum(
            metric_value(m, "driftd_events_rejected_total", reason=r) or 0
            for r in ("invalid_json", "not_object", "missing_version", "too_large")
        )
        return (
            total == 4
            and metric_value(m, "driftd_events_total", monitor="credit", model_version="v1") == 1000
        )

    wait_until(counted, 60, "rejections counted by reason")
    assert d.terminate() == 0

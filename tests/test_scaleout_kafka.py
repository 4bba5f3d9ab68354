"""Scale-out through Kafka itself (issue 14): several processes, one verdict per version.

Topics of 4 partitions keyed by event id; panes go through the internal topic to the one
process that decides each monitor; state moves through the compacted state topic.
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
    wait_until,
)
from kafka import KafkaConsumer, TopicPartition
from kafka_harness import SlowProducer, committed_offsets, produce

from driftd.demo.credit import generate
from driftd.demo.sink import WebhookSink

pytestmark = pytest.mark.kafka
Start = Callable[..., Driftd]
V1 = V2 = 6000


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_credit_profile(tmp_path_factory.mktemp("scaleout-profile"))


def stream(seed: int) -> list[bytes]:
    return list(generate(V1, version="v1", seed=seed)) + list(
        generate(V2, version="v2", seed=seed + 1, score_shift=1.0)
    )


def keys(lines: list[bytes]) -> list[bytes]:
    return [orjson.loads(v)["event_id"].encode() for v in lines]


def scaled_config(tmp: Path, profile: Path, bootstrap: str, topic: str, url: str) -> Path:
    cfg = credit_config(
        tmp, profile=profile, bootstrap=bootstrap, topic=topic, group=f"so-{topic}",
        webhook_url=url,
    )  # fmt: skip
    doc = yaml.safe_load(cfg.read_text())
    doc["scale_out"] = {"enabled": True, "partitions": 4, "purge_interval_s": 1}
    cfg.write_text(yaml.safe_dump(doc))
    return cfg


def view(base: str) -> tuple[int, dict[str, Any]]:
    code, body = http_get(base + "/api/v1/monitors/credit")
    try:
        return code, orjson.loads(body)
    except orjson.JSONDecodeError:
        return code, {}


def counts(base: str) -> dict[str, int]:
    code, v = view(base)
    if code != 200:
        return {}
    return {name: s["events"] for name, s in v.get("versions", {}).items()}


def drift_alerts(sink: WebhookSink) -> list[dict[str, Any]]:
    return [
        p
        for p in (orjson.loads(r.body) for r in sink.requests)
        if p["type"] in ("drift.detected", "drift.resolved")
    ]


def first_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """``{partition: first offset kept}`` of the partitions that ever had a record."""
    c = KafkaConsumer(bootstrap_servers=bootstrap, client_id="driftd-tests-first")
    try:
        tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or ())]
        ends = c.end_offsets(tps)
        return {tp.partition: off for tp, off in c.beginning_offsets(tps).items() if ends[tp]}
    finally:
        c.close()


def purgeable(bootstrap: str, topic: str) -> dict[int, int]:
    """The monitors group's committed offsets on the panes topic, where it consumed any."""
    got = committed_offsets(bootstrap, f"so-{topic}.monitors", f"so-{topic}.panes")
    return {p: off for p, off in got.items() if off > 0}


def worker_bases(d: Driftd) -> list[str]:
    """The API of each of `--workers 2`: worker i listens on the configured port + i."""
    host, port = d.base.rsplit(":", 1)
    return [d.base, f"{host}:{int(port) + 1}"]


def test_workers_2_give_one_alert_per_version(
    tmp_path: Path,
    profile: Path,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    driftd_proc: Start,
) -> None:
    topic = make_topic(partitions=4)
    lines = stream(91)
    with WebhookSink(SECRET) as sink:
        cfg = scaled_config(tmp_path, profile, kafka_bootstrap, topic, sink.url)
        d = driftd_proc(cfg, "--workers", "2")
        bases = worker_bases(d)
        wait_until(lambda: all(http_get(b + "/readyz")[0] == 200 for b in bases), 90, "ready")
        # live traffic, as services publish it: every partition feeds every window
        prod = SlowProducer(kafka_bootstrap, topic, lines, rate=3000, keys=keys(lines))
        prod.start()
        prod.join(90)
        assert prod.error is None
        # the monitor is decided by one worker; asked, either answers (one through the other)
        wait_until(
            lambda: all(counts(b) == {"v1": V1, "v2": V2} for b in bases),
            120,
            "every event merged, whichever worker is asked",
        )
        assert sink.wait_for(1, timeout_s=30)
        time.sleep(2.0)
        alerts = drift_alerts(sink)
        assert [(a["type"], a["model_version"], a["rollback_to"]) for a in alerts] == [
            ("drift.detected", "v2", "v1")
        ]
        # the window merges partitions read by both processes in the order their panes
        # arrived: which ones it holds depends on how far each partition stage has got (on a
        # loaded machine one can lag a window behind); every event merged once is shown above
        assert len(alerts[0]["window"]["partitions"]) >= 2
        deciders = {http_get(b + "/api/v1/monitors/credit")[0] for b in bases}
        assert deciders == {200}
        # the rollback gate too: the same answer whichever process Flagger asks
        gates = [http_get(b + "/api/v1/gates/credit/rollback?model_version=v2") for b in bases]
        assert gates[0] == gates[1] and orjson.loads(gates[0][1])["model_version"] == "v2"
        # consumed panes are deleted (the topic has no time limit), up to the committed offsets
        panes = f"so-{topic}.panes"
        wait_until(
            lambda: first_offsets(kafka_bootstrap, panes) == purgeable(kafka_bootstrap, topic),
            30,
            "consumed panes purged",
        )
        assert sum(first_offsets(kafka_bootstrap, panes).values()) > 0, "nothing purged"
        assert d.terminate(timeout_s=60) == 0
    assert sum(committed_offsets(kafka_bootstrap, f"so-{topic}", topic).values()) == len(lines)


def test_kill_9_one_of_two_processes_the_other_takes_over(
    tmp_path: Path,
    profile: Path,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    driftd_proc: Start,
) -> None:
    topic = make_topic(partitions=4)
    lines = stream(93)
    with WebhookSink(SECRET) as sink:
        cfg = scaled_config(tmp_path, profile, kafka_bootstrap, topic, sink.url)
        doc = yaml.safe_load(cfg.read_text())
        doc["kafka"]["session_timeout_ms"] = 6000
        cfg.write_text(yaml.safe_dump(doc))
        a = driftd_proc(cfg, "--state-dir", str(tmp_path / "a"))
        b = driftd_proc(cfg, "--state-dir", str(tmp_path / "b"))
        wait_until(lambda: a.ready() and b.ready(), 90, "both ready")
        prod = SlowProducer(kafka_bootstrap, topic, lines, rate=2000, keys=keys(lines))
        prod.start()
        wait_until(lambda: sum(counts(a.base).values()) >= 4000, 90, "mid-stream")

        def decides(d: Driftd) -> bool:  # its own listing holds only what it decides
            return b'"name":"credit"' in http_get(d.base + "/api/v1/monitors")[1]

        wait_until(lambda: decides(a) != decides(b), 30, "exactly one process decides")
        decider, other = (a, b) if decides(a) else (b, a)
        decider.kill()  # SIGKILL the process that decides the monitor
        prod.join(90)
        assert prod.error is None
        wait_until(
            lambda: counts(other.base) == {"v1": V1, "v2": V2}, 120, "taken over, all merged once"
        )
        assert sink.wait_for(1, timeout_s=60)
        time.sleep(2.0)
        alerts = drift_alerts(sink)
        assert {(x["type"], x["model_version"], x["rollback_to"]) for x in alerts} == {
            ("drift.detected", "v2", "v1")
        }
        assert len({x["id"] for x in alerts}) == 1, "one transition under two ids"
        assert "restored from" in other.log_text() or "assigned" in other.log_text()
        assert other.terminate(timeout_s=60) == 0


def test_delayed_labels_over_4_partitions_with_workers_2(
    tmp_path: Path,
    profile: Path,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    driftd_proc: Start,
) -> None:
    """Predictions and labels co-partitioned (4 partitions each, keyed by event id): each
    label meets its prediction in the process that reads that partition number, the pairs
    go to the process deciding the monitor; every label joined once, whoever joined it."""
    from perf_workload import BAD_SHIFT, labelled_stream, perf_config

    n = 6000
    preds_topic = make_topic(partitions=4, prefix="so-preds")
    labels_topic = make_topic(partitions=4, prefix="so-labels")
    bad_p, bad_l = labelled_stream(v2_shift=BAD_SHIFT, n=n, n2=n)
    eq_p, eq_l = labelled_stream(v2_shift=0.0, n=n, n2=n, seed=41, model="credit-equal",
                                 id_prefix="eq-")  # fmt: skip
    with WebhookSink(SECRET) as sink:
        cfg = perf_config(
            tmp_path,
            profile=profile,
            # windows wide enough, and a minimum effect, that the equal version's verdicts
            # do not depend on which labels the interleaving of 4 partitions brings first
            performance={"window": 4000, "step": 1000, "label_horizon_s": 3600,
                         "metrics": ["accuracy"], "min_effect": {"accuracy": 0.03}},
            second_model="credit-equal",
            label_topic=labels_topic,
            bootstrap=kafka_bootstrap,
            topic=preds_topic,
            group=f"so-{preds_topic}",
            webhook_url=sink.url,
        )  # fmt: skip
        doc = yaml.safe_load(cfg.read_text())
        doc["scale_out"] = {"enabled": True, "partitions": 4, "purge_interval_s": 1}
        cfg.write_text(yaml.safe_dump(doc))
        d = driftd_proc(cfg, "--workers", "2")
        bases = worker_bases(d)
        wait_until(lambda: all(http_get(b + "/readyz")[0] == 200 for b in bases), 90, "ready")
        preds = bad_p + eq_p
        produce(kafka_bootstrap, preds_topic, preds, keys=keys(preds))
        labels = bad_l + eq_l
        produce(kafka_bootstrap, labels_topic, labels, keys=keys(labels))

        def total(name: str, **labels: str) -> float:
            # each series is exported by the one process deciding its monitor
            values = [metric_value(http_get(b + "/metrics")[1].decode(), name, **labels)
                      for b in bases]  # fmt: skip
            assert sum(v is not None for v in values) <= 1, (name, labels, values)
            return sum(v or 0 for v in values)

        wait_until(
            lambda: all(
                total("driftd_labelled_events_total", monitor=m, model_version=v) == n
                for m in ("credit", "credit-eq")
                for v in ("v1", "v2")
            ),
            120,
            "every prediction joined to its label",
        )
        for m in ("credit", "credit-eq"):
            assert total("driftd_labels_total", monitor=m, outcome="joined") == 2 * n
            for outcome in ("orphaned", "late", "duplicate"):
                assert total("driftd_labels_total", monitor=m, outcome=outcome) == 0
            assert total("driftd_label_lag_seconds_count", monitor=m) == 2 * n
        assert sink.wait_for(1, timeout_s=30)
        time.sleep(2.0)
        perf = [orjson.loads(r.body) for r in sink.requests]
        perf = [p for p in perf if p["type"].startswith("performance.")]
        assert [(p["type"], p["monitor"], p["model_version"], p["rollback_to"]) for p in perf] == [
            ("performance.degraded", "credit", "v2", "v1")
        ]
        # either process answers for both monitors, one of them through the other
        for b in bases:
            code, v = view(b)
            assert code == 200 and v["performance"]["v2"]["degraded"] is True, (code, v)
            code, body = http_get(b + "/api/v1/monitors/credit-eq")
            assert code == 200 and orjson.loads(body)["performance"]["v2"]["degraded"] is False
        assert d.terminate(timeout_s=60) == 0
    group = f"so-{preds_topic}"
    assert sum(committed_offsets(kafka_bootstrap, group, labels_topic).values()) == len(labels)
    assert sum(committed_offsets(kafka_bootstrap, group, preds_topic).values()) == len(preds)


def test_label_topic_with_another_partition_count_is_exit_2(
    tmp_path: Path,
    profile: Path,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    driftd_proc: Start,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from perf_workload import perf_config

    preds_topic = make_topic(partitions=4, prefix="so-preds")
    labels_topic = make_topic(partitions=2, prefix="so-labels")
    cfg = perf_config(
        tmp_path, profile=profile, label_topic=labels_topic, bootstrap=kafka_bootstrap,
        topic=preds_topic, group=f"so-{preds_topic}",
    )  # fmt: skip
    doc = yaml.safe_load(cfg.read_text())
    doc["scale_out"] = {"enabled": True, "partitions": 4, "purge_interval_s": 1}
    cfg.write_text(yaml.safe_dump(doc))
    d = driftd_proc(cfg)
    assert d.proc.wait(90) == 2
    err = d.log_text()
    assert "kafka.label_topics" in err
    assert f"{preds_topic}: 4 partitions" in err and f"{labels_topic}: 2 partitions" in err
    assert "Traceback" not in err
    # `check-config --connect` finds it before any process starts, and the internal topics'
    # partition count too
    from driftd.cli import main

    assert main(["check-config", "-c", str(cfg), "--connect"]) == 2
    assert "kafka.label_topics" in capsys.readouterr().err
    from kafka_harness import create_topic

    doc["kafka"]["group_id"] = f"so3-{preds_topic}"  # its panes topic made with 3 partitions
    create_topic(kafka_bootstrap, f"so3-{preds_topic}.panes", 3)
    doc["kafka"]["label_topics"] = []
    doc["monitors"] = [{**m, "performance": None} for m in doc["monitors"]]
    cfg.write_text(yaml.safe_dump(doc))
    assert main(["check-config", "-c", str(cfg), "--connect"]) == 2
    err = capsys.readouterr().err
    assert "scale_out.partitions" in err and "has 3 partitions, configured 4" in err
    doc["scale_out"]["partitions"] = 3
    cfg.write_text(yaml.safe_dump(doc))
    assert main(["check-config", "-c", str(cfg), "--connect"]) == 0

"""Nothing lost: crashes, broker restarts, receiver outages, garbage, scale-out and
rebalances — real faults against the real broker (issue 6)."""

from __future__ import annotations

import base64
import random
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from driftd_testutil import (
    SECRET,
    Driftd,
    build_credit_profile,
    credit_config,
    http_get,
    metric_value,
    read_jsonl,
    wait_until,
)
from kafka_harness import KafkaBroker, SlowProducer, committed_offsets, end_offsets, produce

from driftd.config import load_config
from driftd.demo.credit import generate
from driftd.demo.sink import WebhookSink
from driftd.runtime.pipeline import Pipeline
from driftd.types import RawRecord

pytestmark = pytest.mark.kafka
Start = Callable[..., Driftd]


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_credit_profile(tmp_path_factory.mktemp("faults-profile"))


def state_counts(d: Driftd) -> dict[str, int]:
    view = d.get_json("/api/v1/monitors/credit")
    return {v: s["events"] for v, s in view["versions"].items()}


def uninterrupted(cfg_path: Path, lines: list[bytes], topic: str) -> dict[str, dict[str, Any]]:
    """Last evaluation per version of a run that never crashed, over the same events."""
    engine = Pipeline(load_config(cfg_path, environ={}))
    recs = [RawRecord(v, i + 1, None, 0, i, topic) for i, v in enumerate(lines)]
    last: dict[str, dict[str, Any]] = {}
    for i in range(0, len(recs), 1000):
        for o in engine.process(recs[i : i + 1000]):
            if o["type"] == "evaluation":
                last[o["model_version"]] = o
    return last


def strip(ev: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ev.items() if k not in ("reason", "state")}


def test_sigkill_mid_stream_loses_nothing_and_counts_nothing_twice(
    tmp_path: Path,
    profile: Path,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    driftd_proc: Start,
) -> None:
    topic = make_topic(partitions=1)
    cfg = credit_config(
        tmp_path, profile=profile, bootstrap=kafka_bootstrap, topic=topic, group=f"crash-{topic}"
    )
    lines = list(generate(6000, version="v1", seed=41)) + list(
        generate(6000, version="v2", seed=42, income_shift=0.2)
    )
    prod = SlowProducer(kafka_bootstrap, topic, lines, rate=1500)
    d = driftd_proc(cfg)
    wait_until(d.ready, 60, "driftd ready")
    prod.start()
    ckpt = cfg.parent / "state" / "checkpoints" / "MANIFEST.json"
    wait_until(
        lambda: d.ready() and ckpt.exists() and sum(state_counts(d).values()) >= 3000,
        60,
        "driftd mid-stream with a checkpoint on disk",
    )
    assert sum(state_counts(d).values()) < len(lines), "not mid-stream: the test proves nothing"
    d.kill()  # SIGKILL: no drain, no final checkpoint
    prod.join(60)
    assert prod.error is None
    d2 = driftd_proc(cfg)
    wait_until(
        lambda: d2.ready() and state_counts(d2) == {"v1": 6000, "v2": 6000},
        60,
        "every event counted exactly once after the restart",
    )
    view = d2.get_json("/api/v1/monitors/credit")
    want = uninterrupted(cfg, lines, topic)
    for v in ("v1", "v2"):
        got = view["versions"][v]["last_evaluation"]
        assert strip(got) == strip(want[v]), f"{v}: restarted run differs from uninterrupted run"
    assert "restored" in d2.log_text()
    assert d2.terminate() == 0
    assert committed_offsets(kafka_bootstrap, f"crash-{topic}", topic) == {0: len(lines)}


def test_alert_delivered_once_and_not_raised_again_after_kill(
    tmp_path: Path,
    profile: Path,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    driftd_proc: Start,
) -> None:
    topic = make_topic(partitions=1)
    with WebhookSink(SECRET) as sink:
        cfg = credit_config(
            tmp_path,
            profile=profile,
            bootstrap=kafka_bootstrap,
            topic=topic,
            group=f"once-{topic}",
            webhook_url=sink.url,
        )
        lines = list(generate(3000, version="v1", seed=43)) + list(
            generate(4000, version="v2", seed=44, score_shift=1.2)
        )
        produce(kafka_bootstrap, topic, lines)
        d = driftd_proc(cfg)
        assert sink.wait_for(1, timeout_s=60)
        time.sleep(1.5)  # the alert's checkpoint and the delivery's done-log are written
        d.kill()
        produce(
            kafka_bootstrap, topic, list(generate(3000, version="v2", seed=45, score_shift=1.2))
        )
        d2 = driftd_proc(cfg)
        wait_until(lambda: d2.ready() and state_counts(d2).get("v2") == 7000, 60, "all of v2")
        time.sleep(2.0)
        ids = {orjson.loads(r.body)["id"] for r in sink.requests}
        assert len(ids) == 1, "the same alert went out under two ids"
        assert len(sink.requests) == 1, "the alert was raised or sent again after the restart"
        assert (
            metric_value(d2.metrics(), "driftd_alerts_total", monitor="credit", severity="critical")
            is None
        )
        assert d2.get_json("/api/v1/monitors/credit")["versions"]["v2"]["state"] == "alerting"
        assert d2.terminate() == 0


def test_broker_kill9_and_restart_driftd_reconnects(
    tmp_path: Path,
    profile: Path,
    private_kafka_broker: KafkaBroker,
    driftd_proc: Start,
) -> None:
    broker = private_kafka_broker
    boot = broker.bootstrap
    from kafka_harness import create_topic

    topic = "restart-topic"
    create_topic(boot, topic, partitions=2)
    cfg = credit_config(
        tmp_path, profile=profile, bootstrap=boot, topic=topic, group="restart-group"
    )
    first = list(generate(20_000, version="v1", seed=46))
    prod = SlowProducer(boot, topic, first, rate=4000)
    prod.start()
    d = driftd_proc(cfg)
    wait_until(lambda: d.ready() and sum(state_counts(d).values()) >= 3000, 60, "consuming")
    broker.kill9()
    time.sleep(3)
    assert d.proc.poll() is None, "driftd died with the broker"
    broker.resume()
    prod.join(180)
    assert prod.error is None
    second = list(generate(5000, version="v1", seed=47))
    produce(boot, topic, second)
    total = sum(end_offsets(boot, topic).values())
    assert total >= len(first) + len(second)
    try:
        wait_until(lambda: d.ready() and state_counts(d).get("v1") == total, 120, "all counted")
    except AssertionError:
        import signal as _s

        d.proc.send_signal(_s.SIGUSR1)
        time.sleep(1)
        raise AssertionError(f"counts {state_counts(d)} vs {total}; ready={d.ready()}") from None
    # Commits that failed while the broker was away are retried by later checkpoints.
    wait_until(
        lambda: sum(committed_offsets(boot, "restart-group", topic).values()) == total,
        90,
        "offsets committed again after the broker came back",
    )
    assert d.terminate() == 0


def test_receiver_outage_delays_alerts_but_never_consumption(
    tmp_path: Path,
    profile: Path,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    driftd_proc: Start,
) -> None:
    topic = make_topic(partitions=1)
    sink = WebhookSink(SECRET)
    sink.start()
    try:
        url = sink.url
        sink.down()  # the receiver is down from the start
        cfg = credit_config(
            tmp_path,
            profile=profile,
            bootstrap=kafka_bootstrap,
            topic=topic,
            group=f"outage-{topic}",
            webhook_url=url,
        )
        prod = SlowProducer(
            kafka_bootstrap,
            topic,
            list(generate(3000, version="v1", seed=48))
            + list(generate(30_000, version="v2", seed=49, score_shift=1.2)),
            rate=1500,
        )
        d = driftd_proc(cfg)
        wait_until(d.ready, 60, "ready")
        prod.start()
        t0 = time.monotonic()
        lags: list[float] = []
        counts: list[int] = []
        while time.monotonic() - t0 < 30:  # 30 s outage
            m = d.metrics()
            lags.append(metric_value(m, "driftd_consumer_lag", topic=topic, partition="0") or 0)
            counts.append(sum(state_counts(d).values()))
            time.sleep(1)
        m = d.metrics()
        assert (
            metric_value(m, "driftd_webhook_deliveries_total", action="rollback", outcome="retry")
            or 0
        ) >= 1
        assert metric_value(m, "driftd_webhook_pending", action="rollback") == 1
        assert counts[-1] > counts[5] > 0, "consumption stalled during the outage"
        assert max(lags) < 5000, f"lag grew during the outage: {max(lags)}"
        sink.up()
        assert sink.wait_for(1, timeout_s=30), "alert not delivered after the receiver came back"
        assert orjson.loads(sink.requests[0].body)["rollback_to"] == "v1"
        prod.join(60)
        assert d.terminate() == 0
    finally:
        sink.stop()


def fuzz_corpus(n: int, seed: int) -> list[bytes]:
    """Seeded garbage and near-miss events: random bytes, invalid UTF-8, deep nesting, huge
    numbers, NaN literals, 2 MB messages, wrong types — mixed with valid events."""
    rng = random.Random(seed)
    valid = list(generate(n, version="v1", seed=seed))
    out: list[bytes] = []
    for i in range(n):
        ok = orjson.loads(valid[i])
        kind = rng.randrange(12)
        if kind == 0:
            out.append(rng.randbytes(rng.randrange(0, 200)))
        elif kind == 1:
            out.append(b'{"model": "credit-scoring", "x": "\xff\xfe"}')
        elif kind == 2:
            out.append(b"[" * 5000 + b"]" * 5000)
        elif kind == 3:
            out.append(valid[i].replace(b'"age":', b'"age":1' + b"0" * 400 + b',"age2":'))
        elif kind == 4:
            out.append(valid[i].replace(b'"prediction":', b'"prediction":NaN,"p2":'))
        elif kind == 5 and i % 50 == 0:
            out.append(b'{"pad":"' + b"y" * (2 * 1024 * 1024) + b'"}')
        elif kind == 6:
            ok["features"]["income"] = rng.choice(["rich", [1], {"a": 1}])
            out.append(orjson.dumps(ok))
        elif kind == 7:
            ok["features"]["income"] = 1e308 * 10 if rng.random() < 0.5 else -0.0
            out.append(orjson.dumps(ok, option=orjson.OPT_SERIALIZE_NUMPY))
        elif kind == 8:
            out.append(orjson.dumps(rng.choice([None, 1, "s", [], 3.5, True])))
        else:
            out.append(valid[i])
    return out


def test_fuzz_through_the_broker_every_message_accounted_for(
    tmp_path: Path,
    profile: Path,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    driftd_proc: Start,
) -> None:
    import yaml

    topic = make_topic(partitions=2)
    cfg = credit_config(
        tmp_path, profile=profile, bootstrap=kafka_bootstrap, topic=topic, group=f"fuzz-{topic}"
    )
    data = yaml.safe_load(cfg.read_text())
    dlq = tmp_path / "dead-letter.jsonl"
    data["dead_letter"] = {"type": "file", "path": str(dlq)}
    cfg.write_text(yaml.safe_dump(data))
    corpus = fuzz_corpus(1500, seed=50)
    produce(kafka_bootstrap, topic, corpus)
    d = driftd_proc(cfg)

    def accounted() -> bool:
        if not d.ready():
            return False
        m = d.metrics()
        acc = metric_value(m, "driftd_events_total", monitor="credit", model_version="v1") or 0
        rej = sum(
            float(line.rsplit(" ", 1)[1])
            for line in m.splitlines()
            if line.startswith("driftd_events_rejected_total{")
        )
        return acc + rej == len(corpus)

    wait_until(accounted, 60, "accepted + rejected = consumed")
    assert d.terminate() == 0
    dead = read_jsonl(dlq)
    m_rejected = len(corpus) - sum(1 for x in corpus if _is_valid(x))
    assert len(dead) == m_rejected
    assert {r["reason"] for r in dead} >= {"invalid_json", "not_object", "too_large", "wrong_type"}
    for r in dead:
        raw = r["value"].encode() if r["value"] is not None else base64.b64decode(r["value_base64"])
        assert raw in corpus


def _is_valid(raw: bytes) -> bool:
    from driftd.config import FeatureConfig, SchemaConfig
    from driftd.ingest.decode import EventDecoder, Reject, RowMapper

    try:
        _, _, _, feats, pred = EventDecoder(SchemaConfig(), 1024 * 1024).decode(raw, None)
        RowMapper(
            [(n, FeatureConfig(kind="numeric")) for n in ("income", "age", "debt_ratio")],
            [(n, FeatureConfig(kind="categorical"), ()) for n in ("region", "employment")],
            "numeric",
        ).map(feats, pred, [], [])
        return True
    except Reject:
        return False


def _events_read(log_text: str) -> list[int]:
    """Events each process read, from its "stopped: N events read" line."""
    return [int(m) for m in re.findall(r"stopped: (\d+) events read", log_text)]


def _manifest_sources(state_dir: Path) -> dict[str, int]:
    doc = orjson.loads((state_dir / "checkpoints" / "MANIFEST.json").read_bytes())
    return dict(doc["meta"]["sources"])


def test_two_processes_and_a_rebalance_mid_stream_lose_nothing(
    tmp_path: Path,
    profile: Path,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    driftd_proc: Start,
) -> None:
    topic = make_topic(partitions=4)
    group = f"scale-{topic}"
    cfg = credit_config(
        tmp_path, profile=profile, bootstrap=kafka_bootstrap, topic=topic, group=group
    )
    lines = list(generate(24_000, version="v1", seed=51))
    prod = SlowProducer(kafka_bootstrap, topic, lines, rate=3000)
    a = driftd_proc(cfg, "--state-dir", str(tmp_path / "state-a"))
    b = driftd_proc(cfg, "--state-dir", str(tmp_path / "state-b"))
    wait_until(lambda: a.ready() and b.ready(), 60, "both ready")
    prod.start()
    time.sleep(3)
    assert b.terminate() == 0  # leaves the group mid-stream: its partitions move to `a`
    prod.join(60)
    assert prod.error is None
    ends = end_offsets(kafka_bootstrap, topic)
    assert sum(ends.values()) == len(lines) and sum(1 for v in ends.values() if v) >= 2

    def done() -> bool:
        return committed_offsets(kafka_bootstrap, group, topic) == ends

    wait_until(
        lambda: a.ready() and state_counts(a).get("v1", 0) > 0 and done(),
        90,
        "every partition committed to its end",
    )
    assert a.terminate() == 0
    for d in (a, b):  # revoke commits run on kafka-python's IO thread: none may fail
        text = d.log_text()
        assert "handling revoked partitions" not in text and "Cannot block" not in text
    # b handed its partitions over at the offsets its checkpoint covered: between the two
    # processes every event was read exactly once
    assert sum(_events_read(a.log_text()) + _events_read(b.log_text())) == len(lines)
    assert _manifest_sources(tmp_path / "state-a") == {
        f"{topic}/{p}": off for p, off in ends.items() if off
    }


def test_workers_flag_runs_a_group_of_processes(
    tmp_path: Path,
    profile: Path,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    driftd_proc: Start,
) -> None:
    topic = make_topic(partitions=4)
    group = f"workers-{topic}"
    cfg = credit_config(
        tmp_path, profile=profile, bootstrap=kafka_bootstrap, topic=topic, group=group
    )
    lines = list(generate(8000, version="v1", seed=52))
    produce(kafka_bootstrap, topic, lines, keys=[str(i % 16).encode() for i in range(len(lines))])
    ends = end_offsets(kafka_bootstrap, topic)
    d = driftd_proc(cfg, "--workers", "2")
    wait_until(
        lambda: committed_offsets(kafka_bootstrap, group, topic) == ends,
        90,
        "both workers committed every partition",
    )
    assert d.terminate(timeout_s=40) == 0
    log = d.log_text()
    assert sum(_events_read(log)) == len(lines)
    assert "started 2 workers" in log
    assert "handling revoked partitions" not in log and "Cannot block" not in log


def _alive(pid: int) -> bool:
    """Running (an exited orphan may stay a zombie where nothing reaps it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_workers_exit_when_their_supervisor_is_killed(
    tmp_path: Path,
    profile: Path,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    driftd_proc: Start,
) -> None:
    """kill -9 of `driftd run --workers 2` leaves no orphan consuming and holding its port."""
    topic = make_topic(partitions=2)
    cfg = credit_config(
        tmp_path, profile=profile, bootstrap=kafka_bootstrap, topic=topic, group=f"orph-{topic}"
    )
    d = driftd_proc(cfg, "--workers", "2")
    host, port = d.base.rsplit(":", 1)
    bases = [d.base, f"{host}:{int(port) + 1}"]
    wait_until(lambda: all(http_get(b + "/readyz")[0] == 200 for b in bases), 90, "ready")
    found = re.search(r"started 2 workers: pids (\d+), (\d+)", d.log_text())
    assert found, d.log_text()
    pids = [int(found[1]), int(found[2])]
    d.kill()
    wait_until(lambda: not any(_alive(p) for p in pids), 30, "workers gone")
    assert all(http_get(b + "/readyz")[0] != 200 for b in bases)
    assert d.log_text().count("the supervisor (pid") == 2


def test_unreachable_broker_at_start_then_available(
    tmp_path: Path,
    profile: Path,
    private_kafka_broker: KafkaBroker,
    driftd_proc: Start,
) -> None:
    broker = private_kafka_broker
    broker.stop()
    cfg = credit_config(
        tmp_path, profile=profile, bootstrap=broker.bootstrap, topic="late", group="late-group"
    )
    d = driftd_proc(cfg)
    time.sleep(6)
    assert d.proc.poll() is None, "driftd gave up instead of retrying"
    assert not d.ready()
    code, body = http_get(d.base + "/readyz")
    assert code == 503 and "Kafka" in orjson.loads(body)["reason"]
    broker.resume()
    produce(broker.bootstrap, "late", list(generate(1500, version="v1", seed=53)))
    wait_until(
        lambda: d.ready() and state_counts(d).get("v1") == 1500,
        120,
        "consuming once the broker is there",
    )
    assert d.terminate() == 0


def test_checkpoint_failure_at_runtime_is_loud_not_fatal(
    tmp_path: Path,
    profile: Path,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    driftd_proc: Start,
) -> None:
    import shutil

    topic = make_topic(partitions=1)
    cfg = credit_config(
        tmp_path, profile=profile, bootstrap=kafka_bootstrap, topic=topic, group=f"ckfail-{topic}"
    )
    produce(kafka_bootstrap, topic, list(generate(1000, version="v1", seed=54)))
    d = driftd_proc(cfg)
    ck = cfg.parent / "state" / "checkpoints"
    wait_until(
        lambda: d.ready() and state_counts(d).get("v1") == 1000 and ck.is_dir(), 60, "first batch"
    )
    shutil.rmtree(ck)
    ck.write_text("not a directory")  # every checkpoint write now fails
    produce(kafka_bootstrap, topic, list(generate(1000, version="v1", seed=55)))
    wait_until(lambda: state_counts(d).get("v1") == 2000, 60, "consumption goes on")
    wait_until(lambda: not d.ready(), 30, "readiness false while checkpoints fail")
    assert d.proc.poll() is None
    committed = committed_offsets(kafka_bootstrap, f"ckfail-{topic}", topic)
    assert committed.get(0, 0) <= 1000, "offsets committed without a checkpoint covering them"
    ck.unlink()
    wait_until(d.ready, 30, "ready again once checkpoints work")
    assert "CHECKPOINT FAILED" in d.log_text()
    assert d.terminate() == 0
    assert committed_offsets(kafka_bootstrap, f"ckfail-{topic}", topic) == {0: 2000}

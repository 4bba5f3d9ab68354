"""A bad disk, a crash loop, a full outbox and a long batch, against the real broker
(issue 13)."""

from __future__ import annotations

import random
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
from kafka_harness import SlowProducer, committed_offsets, produce

from driftd.demo.credit import generate
from driftd.demo.sink import WebhookSink

pytestmark = pytest.mark.kafka
Start = Callable[..., Driftd]


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_credit_profile(tmp_path_factory.mktemp("hardening-kafka-profile"))


def counts(d: Driftd) -> dict[str, int]:
    code, body = http_get(d.base + "/api/v1/monitors/credit")
    if code != 200:
        return {}
    return {v: s["events"] for v, s in orjson.loads(body)["versions"].items()}


def keyed(lines: list[bytes]) -> list[bytes]:
    return [orjson.loads(v)["event_id"].encode() for v in lines]


def manifest(state: Path) -> dict[str, Any]:
    return orjson.loads((state / "checkpoints" / "MANIFEST.json").read_bytes())  # type: ignore[no-any-return]


def test_a_bad_checkpoint_entry_is_set_aside_and_its_siblings_restored(
    tmp_path: Path,
    profile: Path,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    driftd_proc: Start,
) -> None:
    topic = make_topic(partitions=4)
    cfg = credit_config(
        tmp_path, profile=profile, bootstrap=kafka_bootstrap, topic=topic, group=f"bad-{topic}"
    )
    lines = list(generate(3000, version="v1", seed=11)) + list(
        generate(3000, version="v2", seed=12)
    )
    produce(kafka_bootstrap, topic, lines, keys=keyed(lines))
    d = driftd_proc(cfg)
    wait_until(lambda: counts(d) == {"v1": 3000, "v2": 3000}, 60, "all events")
    assert d.terminate() == 0
    state = cfg.parent / "state"
    entry = manifest(state)["entries"]["version/credit/v1"]["file"]
    path = state / "checkpoints" / entry
    path.write_bytes(path.read_bytes()[:100])  # truncated
    d2 = driftd_proc(cfg)
    wait_until(d2.ready, 60, "ready after a bad entry (no crash loop)")
    assert counts(d2) == {"v2": 3000}  # restored; v1 starts fresh (no new events of it)
    assert "unusable" in d2.log_text() and "starts fresh" in d2.log_text()
    assert metric_value(d2.metrics(), "driftd_checkpoint_entries_discarded_total") == 1
    assert [p.name.split(".npz")[0] for p in (state / "checkpoints" / "corrupt").iterdir()] == [
        entry.split(".npz")[0]
    ]
    produce(kafka_bootstrap, topic, list(generate(500, version="v1", seed=13)))
    wait_until(lambda: counts(d2).get("v1") == 500, 60, "v1 fresh")
    assert d2.terminate() == 0


def test_kill_9_loops_leave_no_stray_files(
    tmp_path: Path,
    profile: Path,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    driftd_proc: Start,
) -> None:
    topic = make_topic(partitions=4)
    cfg = credit_config(
        tmp_path, profile=profile, bootstrap=kafka_bootstrap, topic=topic, group=f"loop-{topic}"
    )
    doc = yaml.safe_load(cfg.read_text())
    doc["kafka"]["session_timeout_ms"] = 6000  # a killed member's partitions move on sooner
    cfg.write_text(yaml.safe_dump(doc))
    lines = list(generate(12_000, version="v1", seed=21))
    prod = SlowProducer(kafka_bootstrap, topic, lines, rate=1500, keys=keyed(lines))
    prod.start()
    rng = random.Random(5)
    for _ in range(4):
        d = driftd_proc(cfg)
        wait_until(d.ready, 60, "ready")
        time.sleep(rng.uniform(0.5, 2.0))
        d.kill()
    prod.join(90)
    assert prod.error is None
    d = driftd_proc(cfg)
    wait_until(lambda: counts(d) == {"v1": 12_000}, 90, "every event once")
    assert d.terminate() == 0
    ck = cfg.parent / "state" / "checkpoints"
    named = {e["file"] for e in manifest(cfg.parent / "state")["entries"].values()}
    assert {p.name for p in ck.iterdir()} == {"LOCK", "MANIFEST.json", *named}
    assert sum(committed_offsets(kafka_bootstrap, f"loop-{topic}", topic).values()) == 12_000


def test_a_full_outbox_pauses_consumption_and_drops_nothing(
    tmp_path: Path,
    profile: Path,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    driftd_proc: Start,
) -> None:
    topic = make_topic(partitions=2)
    delivered: list[str] = []
    with WebhookSink(
        SECRET, on_valid=lambda r: delivered.append(orjson.loads(r.body)["model_version"])
    ) as sink:
        sink.respond(503)  # the deployer is down
        cfg = credit_config(
            tmp_path,
            profile=profile,
            bootstrap=kafka_bootstrap,
            topic=topic,
            group=f"full-{topic}",
            webhook_url=sink.url,
        )
        doc = yaml.safe_load(cfg.read_text())
        doc["actions"]["rollback"]["max_pending"] = 1
        doc["kafka"]["max_poll_records"] = 500
        cfg.write_text(yaml.safe_dump(doc))
        drift = list(generate(3000, version="v2", seed=31, score_shift=1.2)) + list(
            generate(3000, version="v3", seed=32, score_shift=1.2)
        )
        tail = list(generate(6000, version="v1", seed=33))
        lines = list(generate(3000, version="v1", seed=30)) + drift + tail
        produce(kafka_bootstrap, topic, lines, keys=keyed(lines))
        d = driftd_proc(cfg)
        wait_until(
            lambda: http_get(d.base + "/readyz")[1].find(b"outbox full") >= 0,
            60,
            "readiness says the outbox is full",
        )
        # the status view is republished every 0.5 s (PUBLISH_S): readiness can say "full"
        # before the view counts the batch that filled the outbox
        time.sleep(1.5)
        stuck = counts(d)
        time.sleep(2.0)
        assert counts(d) == stuck and sum(stuck.values()) < len(lines), "consumption paused"
        assert metric_value(
            d.metrics(), "driftd_webhook_deliveries_total", action="rollback", outcome="dropped"
        ) in (None, 0)
        sink.respond(204)  # the deployer is back
        wait_until(lambda: counts(d) == {"v1": 9000, "v2": 3000, "v3": 3000}, 90, "resumed")
        wait_until(lambda: len(set(delivered)) == 2, 60, "both alerts delivered")
        wait_until(lambda: http_get(d.base + "/readyz")[0] == 200, 30, "ready again")
        assert set(delivered) == {"v2", "v3"}
        assert d.terminate() == 0


def test_a_long_batch_is_not_a_stall(
    tmp_path: Path,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    driftd_proc: Start,
) -> None:
    """Warmup references of four monitors complete, and calibrate, in one batch that takes
    longer than kafka.stall_restart_s: the watchdog (armed only inside poll) stays quiet and
    the references survive a kill -9."""
    topic = make_topic(partitions=1)
    # energy-distance thresholds calibrated by 25,000 resamples: ~2 s per monitor here
    features = {
        name: {"kind": "numeric", "test": "energy"}
        for name in ("income", "age", "debt_ratio", "loan_amount")
    }
    monitors = [
        {
            "name": f"w{i}",
            "model": "credit-scoring",
            "reference": {"type": "warmup", "events": 2000},
            "window": {"type": "sliding", "events": 2000, "step": 500},
            "features": features,
            "calibration": {"resamples": 25_000, "seed": i},
        }
        for i in range(4)
    ]
    cfg = tmp_path / "driftd.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "kafka": {
                    "bootstrap_servers": [kafka_bootstrap],
                    "topics": [topic],
                    "group_id": f"long-{topic}",
                    "stall_restart_s": 5,
                    "session_timeout_ms": 6000,
                    "max_poll_records": 10_000,
                },
                "monitors": monitors,
                "state": {"dir": str(tmp_path / "state"), "checkpoint_interval_s": 1},
            }
        )
    )
    produce(kafka_bootstrap, topic, list(generate(3000, version="v1", seed=41)))
    d = driftd_proc(cfg)
    wait_until(lambda: d.log_text().count("warmup reference complete") == 4, 180, "warmups")
    wait_until(lambda: d.log_text().count("calibrated") >= 4, 180, "calibrations")
    seconds = [
        float(line.split(" in ")[1].split("s")[0])
        for line in d.log_text().splitlines()
        if "calibrated" in line and " in " in line
    ]
    time.sleep(6)  # a watchdog firing late would show now
    log = d.log_text()
    assert "has not returned from poll" not in log and "restarting the process" not in log
    assert sum(seconds) > 5, seconds  # the batch was longer than stall_restart_s
    wait_until(lambda: (tmp_path / "state" / "checkpoints" / "MANIFEST.json").exists(), 30, "ckpt")
    time.sleep(1.5)
    d.kill()
    d2 = driftd_proc(cfg)
    wait_until(d2.ready, 60, "restarted")
    wait_until(lambda: d2.log_text().count("restored from the checkpoint") == 4, 60, "restored")
    assert "calibrated" not in d2.log_text().split("restored checkpoint")[-1]
    assert d2.terminate() == 0

"""Multivariate drift and estimated performance through `driftd run` on the real broker
(issue 18): the same lines, statistics and alert ids as `driftd replay` of the same events
(MMD's window subsamples are seeded by the window's end position), a drift alert naming only
`multivariate` delivered signed to the webhook, an estimated-performance alert delivered when
its severity is `critical` and only audited when it is `warning`, and the metrics of both.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import yaml
from driftd_testutil import SECRET, Driftd, metric_value, wait_until
from kafka_harness import committed_offsets, produce
from mv_workload import (
    SPREAD_70,
    SPREAD_80,
    build_profile,
    correlation_monitor,
    credit_events,
    flip_stream,
    read_jsonl,
    write_lines,
)

from driftd.actions.signing import verify
from driftd.cli import main
from driftd.demo.sink import WebhookSink


def estimate_monitor(name: str, profile: Path, severity: str) -> dict[str, Any]:
    return {
        "name": name,
        "model": "credit",
        "reference": {"type": "profile", "path": str(profile)},
        "window": {"type": "sliding", "events": 2000, "step": 500},
        "features": {"x": {"kind": "numeric", "threshold": 10.0}},  # no drift alerts here
        "prediction": {"kind": "numeric", "threshold": 10.0},
        "quality": {"out_of_range_rate": None},
        "performance": {"estimate": "cbpe", "labels": False, "estimate_severity": severity},
        "policy": {"min_events": 1000, "consecutive": 2, "cooldown_s": 0},
        "actions": ["rollback"],
    }


@pytest.mark.kafka
def test_run_equals_replay_and_alerts_reach_the_webhook(
    tmp_path: Path,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    driftd_proc: Callable[..., Driftd],
) -> None:
    topic = make_topic(partitions=1, prefix="mv")  # one partition: replay order == run order
    group = f"mv-{topic}"
    ref, flip = flip_stream(after=3000)
    rng = np.random.default_rng(12)
    credit_ref, _, _ = credit_events(rng, 20_000, SPREAD_80, 0, step_s=1.0)
    before, _, _ = credit_events(rng, 8000, SPREAD_80, 0, with_labels=False)
    after, _, _ = credit_events(rng, 6000, SPREAD_70, 8000, with_labels=False)
    events = flip + before + after
    with WebhookSink(SECRET) as sink:
        flip_mon = correlation_monitor("flip", tmp_path / "flip.json", "mmd")
        flip_mon["actions"] = ["rollback"]
        monitors = [
            flip_mon,
            estimate_monitor("est-warn", tmp_path / "credit.json", "warning"),
            estimate_monitor("est-crit", tmp_path / "credit.json", "critical"),
        ]
        cfg_doc = {
            "kafka": {"bootstrap_servers": [kafka_bootstrap], "topics": [topic],
                      "group_id": group, "poll_timeout_ms": 100},
            "monitors": monitors,
            "actions": {"rollback": {"type": "webhook", "url": sink.url,
                                     "secret": {"env": "DRIFTD_TEST_SECRET"},
                                     "backoff_initial_s": 0.05, "backoff_max_s": 0.5}},
            "state": {"dir": str(tmp_path / "state"), "checkpoint_interval_s": 1},
            "http": {"listen": "127.0.0.1:0"},
        }  # fmt: skip
        cfg = tmp_path / "driftd.yaml"
        cfg.write_text(yaml.safe_dump(cfg_doc, sort_keys=False))
        build_profile(cfg, "flip", write_lines(tmp_path / "ref.jsonl", ref), tmp_path / "flip.json")
        credit = write_lines(tmp_path / "credit-ref.jsonl", credit_ref)
        build_profile(cfg, "est-crit", credit, tmp_path / "credit.json")
        # what replay says of the same events
        src = write_lines(tmp_path / "events.jsonl", events)
        out = tmp_path / "replay.jsonl"
        assert main(["replay", "-c", str(cfg), str(src), "--out", str(out)]) == 0
        replayed = read_jsonl(out)
        expected = [o for o in replayed if o["type"] == "alert"]
        sent = [a for a in expected if a["severity"] != "warning"]
        assert {(a["monitor"], a["event"]) for a in sent} == {
            ("flip", "drift.detected"),
            ("est-crit", "performance.estimated_degraded"),
        }
        assert [a["monitor"] for a in expected if a["severity"] == "warning"] == ["est-warn"]

        produce(kafka_bootstrap, topic, events, keys=[orjson.loads(e)["event_id"].encode()
                                                      for e in events])  # fmt: skip
        d = driftd_proc(cfg)
        wait_until(d.ready, 90, "/readyz")
        assert sink.wait_for(len(sent), timeout_s=90), d.log_text()[-3000:]
        time.sleep(1.5)  # room for a wrong further delivery
        got = {orjson.loads(r.body)["id"]: r for r in sink.requests}
        assert set(got) == {a["id"] for a in sent}  # the same ids as replay; no warning sent
        for a in sent:
            r = got[a["id"]]
            assert verify(SECRET, r.body, r.headers["driftd-signature"])
            body = orjson.loads(r.body)
            assert body["type"] == a["event"]
            if a["monitor"] == "flip":
                assert [f["name"] for f in body["features"]] == ["multivariate"]
                assert body["features"][0]["test"] == "mmd"
                assert body["features"] == a["features"]  # the same statistic as replay
            else:
                assert body["severity"] == "critical" and body["metric"] == "accuracy"
                assert body["estimate"] == a["estimate"]
        m = d.metrics()
        stat = metric_value(
            m, "driftd_drift_statistic", monitor="flip", feature="multivariate", test="mmd"
        )
        last = [o for o in replayed if o["type"] == "evaluation" and o["monitor"] == "flip"][-1]
        assert stat == pytest.approx(last["multivariate"]["statistic"], rel=1e-12)
        for mon in ("est-warn", "est-crit"):
            assert (
                metric_value(
                    m, "driftd_performance_estimated_degraded", monitor=mon, model_version="v1"
                )
                == 1.0
            )
            acc = metric_value(
                m, "driftd_performance_estimated", monitor=mon, model_version="v1",
                metric="accuracy",
            )  # fmt: skip
            assert acc is not None and 0.65 < acc < 0.76
        assert metric_value(m, "driftd_alerts_total", monitor="est-warn", severity="warning") == 1
        assert d.terminate() == 0
    # the warning was audited, with the same id as in replay
    audit = read_jsonl(tmp_path / "state" / "audit.jsonl")
    warned = [r for r in audit if r["decision"] == "performance.estimated_degraded"]
    assert {r["monitor"]: r["severity"] for r in warned} == {
        "est-warn": "warning",
        "est-crit": "critical",
    }
    [w] = [a for a in expected if a["monitor"] == "est-warn"]
    assert [r["id"] for r in warned if r["monitor"] == "est-warn"] == [w["id"]]
    assert sum(committed_offsets(kafka_bootstrap, group, topic).values()) == len(events)

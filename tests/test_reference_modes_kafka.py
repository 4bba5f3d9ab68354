"""Reference modes through `driftd run` on the real broker: a warmup monitor and a version
monitor side by side, a restart after the warmup (the reference comes back from the
checkpoint, nothing is re-warmed), then signed alerts naming the references."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import yaml
from driftd_testutil import SECRET, Driftd, http_get, metric_value, wait_until
from kafka_harness import committed_offsets, produce
from refmode_util import interleave, mode_config

from driftd.demo.credit import generate
from driftd.demo.sink import WebhookSink


@pytest.mark.kafka
def test_warmup_and_version_monitors_survive_a_restart_and_alert(
    tmp_path: Path,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    driftd_proc: Callable[..., Driftd],
) -> None:
    topic = make_topic(partitions=1)
    group = f"refmodes-{topic}"
    with WebhookSink(SECRET) as sink:
        cfg = mode_config(
            tmp_path,
            {"type": "warmup", "events": 3000},
            bootstrap=kafka_bootstrap,
            topic=topic,
            group=group,
            webhook_url=sink.url,
        )
        data = yaml.safe_load(cfg.read_text())
        warm = data["monitors"][0]
        warm["name"] = "warm"
        canary = {**warm, "name": "canary", "reference": {"type": "version", "version": "previous"}}
        data["monitors"].append(canary)
        cfg.write_text(yaml.safe_dump(data))

        def counted(d: Driftd, monitor: str, version: str, n: int) -> Callable[[], bool]:
            def ok() -> bool:
                text = http_get(d.base + "/metrics")[1].decode()
                v = metric_value(
                    text, "driftd_events_total", monitor=monitor, model_version=version
                )
                return v == n

            return ok

        # Part 1: v1 only — its warmup (3,000 events) completes, then 3,000 are evaluated.
        produce(kafka_bootstrap, topic, list(generate(6000, version="v1", seed=71)))
        first = driftd_proc(cfg)
        wait_until(first.ready, 60, "/readyz")
        wait_until(counted(first, "warm", "v1", 6000), 60, "part 1 consumed")
        view = first.get_json("/api/v1/monitors/warm")
        assert view["drifted"] is False
        assert first.terminate() == 0  # final checkpoint: warmup reference included
        log1 = first.log_text()
        assert "monitor warm version v1: warmup reference complete at position 3000" in log1
        ref_v1 = log1.split("monitor warm version v1: warmup reference ")[2].split(" ")[0]

        # Part 2: v1's incomes move 30 %; v2 starts, its scores far above v1's.
        part2 = list(
            interleave(
                generate(4000, version="v1", seed=72, income_shift=0.3),
                generate(4000, version="v2", seed=73, score_shift=1.0),
            )
        )
        produce(kafka_bootstrap, topic, part2)
        second = driftd_proc(cfg)
        wait_until(second.ready, 60, "/readyz after restart")

        def alerted() -> set[tuple[str, str]]:
            return {
                (p["monitor"], p["model_version"])
                for p in (orjson.loads(r.body) for r in sink.valid_requests)
                if p["type"] == "drift.detected"
            }

        wait_until(lambda: {("warm", "v1"), ("canary", "v2")} <= alerted(), 90, "both alerts")
        wait_until(counted(second, "warm", "v2", 4000), 60, "part 2 consumed")
        assert second.terminate() == 0
        log2 = second.log_text()
        # v1's reference came back from the checkpoint; only v2 warmed up in this process.
        assert f"monitor warm version v1: warmup reference {ref_v1} restored" in log2
        assert "monitor warm version v1: warmup reference complete" not in log2
        assert "monitor warm version v2: warmup reference complete" in log2

        payloads = [orjson.loads(r.body) for r in sink.valid_requests]
        by = {(p["monitor"], p["model_version"]): p for p in payloads}
        w = by[("warm", "v1")]
        assert w["reference"] == f"warmup:v1:{ref_v1}"
        assert "income" in [f["name"] for f in w["features"]]
        assert w["window"]["end_position"] > 6000  # after the restart, on shifted incomes
        c = by[("canary", "v2")]
        assert c["rollback_to"] == "v1" and c["reference"].startswith("version:v1:")
        assert "prediction" in [f["name"] for f in c["features"]]
        assert ("canary", "v1") not in by  # the baseline is never compared with itself
    assert committed_offsets(kafka_bootstrap, group, topic) == {0: 6000 + len(part2)}

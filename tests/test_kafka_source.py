"""The Kafka source against the real broker: positions, explicit commits, stall detection."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from kafka_harness import committed_offsets, produce

from driftd.config import KafkaConfig
from driftd.sources.kafka import KafkaSource, _group_stable


@pytest.mark.kafka
def test_positions_commits_and_a_settled_idle_member_is_stable(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=2)
    produce(kafka_bootstrap, topic, [b"x%d" % i for i in range(50)], partition=1)
    assigned: list[list[str]] = []
    src = KafkaSource(
        KafkaConfig(bootstrap_servers=[kafka_bootstrap], topics=[topic], group_id=f"g-{topic}",
                    session_timeout_ms=10_000),
        on_assign=assigned.append,
    )
    src.open()
    try:
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 50 and time.monotonic() < deadline:
            got += src.poll(1000, 200)
        assert [r.position for r in got] == list(range(1, 51))  # offset + 1
        assert {r.partition for r in got} == {1} and got[0].topic == topic
        assert assigned and sorted(assigned[0]) == [f"{topic}/0", f"{topic}/1"]
        src.commit({f"{topic}/1": 50})
        src.commit({f"{topic}/1": 40})  # offsets only go up: refused, logged
        assert committed_offsets(kafka_bootstrap, f"g-{topic}", topic) == {1: 50}
        # A healthy member with nothing to read must not look stuck (no recycling).
        assert _group_stable(src.consumer)
        src._check_stall()
        src._check_stall()
        src._check_stall()
        assert src.recycles == 0
    finally:
        src.close()

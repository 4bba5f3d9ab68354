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
        KafkaConfig(
            bootstrap_servers=[kafka_bootstrap],
            topics=[topic],
            group_id=f"g-{topic}",
            session_timeout_ms=10_000,
        ),
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


@pytest.mark.kafka
def test_revoke_callback_commits_on_kafka_pythons_io_thread(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    """kafka-python 3 runs rebalance listeners on its IO thread, where a blocking commit
    raises. The runtime's on_revoke commits what it gives up; the source must deliver that
    commit before the partitions move (the bug: a second worker joining left the first one's
    revoke commit failed and the group stalled)."""
    topic = make_topic(partitions=4)
    group = f"g-{topic}"
    for p in range(4):
        produce(kafka_bootstrap, topic, [b"x%d" % i for i in range(10 + p)], partition=p)

    def cfg() -> KafkaConfig:
        return KafkaConfig(
            bootstrap_servers=[kafka_bootstrap],
            topics=[topic],
            group_id=group,
            session_timeout_ms=10_000,
        )

    revoked: list[list[str]] = []
    errors: list[BaseException] = []
    seen: dict[str, int] = {}

    def on_revoke(keys: list[str]) -> None:
        revoked.append(keys)
        try:  # what the daemon's checkpoint does: commit every revoked partition it read
            a.commit({k: seen[k] for k in keys if k in seen})
        except BaseException as exc:  # noqa: BLE001 - recorded, asserted below
            errors.append(exc)

    a = KafkaSource(cfg(), on_revoke=on_revoke)
    b = KafkaSource(cfg())
    a.open()
    try:
        deadline = time.monotonic() + 30
        while sum(seen.values()) < 10 + 11 + 12 + 13 and time.monotonic() < deadline:
            for r in a.poll(1000, 200):
                seen[f"{r.topic}/{r.partition}"] = r.offset + 1
        assert sum(seen.values()) == 46
        b.open()
        deadline = time.monotonic() + 40
        while not revoked and time.monotonic() < deadline:  # both must poll to rebalance
            a.poll(100, 100)
            b.poll(100, 100)
        assert revoked, "no rebalance happened"
        assert not errors, errors
        committed = committed_offsets(kafka_bootstrap, group, topic)
        for key in revoked[0]:
            p = int(key.rsplit("/", 1)[1])
            assert committed.get(p) == 10 + p, (key, committed)
    finally:
        b.close()
        a.close()

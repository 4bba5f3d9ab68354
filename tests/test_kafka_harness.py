"""Tests of the real-Kafka test plumbing (scripts/kafka/kafka.sh, kafka_harness, conftest)."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka_harness import (
    KafkaBroker,
    committed_offsets,
    consume,
    create_topic,
    end_offsets,
    produce,
)

pytestmark = pytest.mark.kafka


def _describe(bootstrap: str, topic: str) -> dict[str, Any]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        (desc,) = admin.describe_topics([topic])
        return desc  # type: ignore[no-any-return]
    finally:
        admin.close()


def test_kafka_topic_fixture(kafka_bootstrap: str, kafka_topic: str) -> None:
    desc = _describe(kafka_bootstrap, kafka_topic)
    assert desc["error_code"] == 0
    assert len(desc["partitions"]) == 1
    assert end_offsets(kafka_bootstrap, kafka_topic) == {0: 0}


def test_create_topic_with_4_partitions(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=4)
    desc = _describe(kafka_bootstrap, topic)
    assert desc["error_code"] == 0
    parts = sorted(desc["partitions"], key=lambda p: p["partition_index"])
    assert [p["partition_index"] for p in parts] == [0, 1, 2, 3]
    assert all(p["error_code"] == 0 and p["leader_id"] >= 0 for p in parts)

    # every partition is immediately writable
    for p in range(4):
        produce(kafka_bootstrap, topic, [f"p{p}-{i}".encode() for i in range(p + 1)], partition=p)
    assert end_offsets(kafka_bootstrap, topic) == {0: 1, 1: 2, 2: 3, 3: 4}


def test_round_trip_1000_messages_and_committed_offsets(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=4)
    n = 1000
    values = [f"msg-{i:04d}".encode() for i in range(n)]
    keys = [f"key-{i % 16}".encode() for i in range(n)]
    acks = produce(kafka_bootstrap, topic, values, keys=keys)
    assert len(acks) == n
    ends = end_offsets(kafka_bootstrap, topic)
    assert sum(ends.values()) == n
    assert len([p for p, off in ends.items() if off > 0]) > 1  # keys spread over partitions

    group = f"g-{uuid.uuid4().hex[:8]}"
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    got: list[Any] = []
    try:
        deadline = time.monotonic() + 60
        while len(got) < n and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                got.extend(batch)
        assert len(got) == n, f"consumed {len(got)}/{n}"
        consumer.commit()
    finally:
        consumer.close(autocommit=False)

    assert sorted(r.value for r in got) == values
    # per-partition order is preserved and keys stick to one partition
    by_part: dict[int, list[int]] = defaultdict(list)
    part_of_key: dict[bytes, int] = {}
    for r in got:
        by_part[r.partition].append(r.offset)
        assert part_of_key.setdefault(r.key, r.partition) == r.partition
    for offsets in by_part.values():
        assert offsets == sorted(offsets)

    committed = committed_offsets(kafka_bootstrap, group, topic)
    assert committed == {p: off for p, off in ends.items() if off > 0}
    assert sum(committed.values()) == n
    assert committed_offsets(kafka_bootstrap, f"{group}-unknown", topic) == {}


def test_3mb_message_round_trip(kafka_bootstrap: str, kafka_topic: str) -> None:
    big = bytes(range(256)) * (3 * 1024 * 1024 // 256)
    produce(kafka_bootstrap, kafka_topic, [big, b"small"])
    records = consume(kafka_bootstrap, kafka_topic, 2)
    assert [r.value for r in records] == [big, b"small"]


def test_broker_kill9_and_restart_keeps_data(private_kafka_broker: KafkaBroker) -> None:
    broker = private_kafka_broker
    bootstrap = broker.bootstrap
    topic = create_topic(bootstrap, f"crash-{uuid.uuid4().hex[:8]}", partitions=2)
    values = [f"v{i}".encode() for i in range(300)]
    produce(bootstrap, topic, values, keys=[str(i % 5).encode() for i in range(300)])
    group = f"g-{uuid.uuid4().hex[:8]}"
    first = consume(bootstrap, topic, 120, group_id=group, commit=True, max_poll_records=60)
    before = committed_offsets(bootstrap, group, topic)
    assert sum(before.values()) == len(first)

    broker.kill9()
    assert not broker.is_running()
    broker.resume()  # same port, same data dir, no reformat
    assert broker.is_running()

    assert sum(end_offsets(bootstrap, topic).values()) == 300
    assert committed_offsets(bootstrap, group, topic) == before
    everything = consume(bootstrap, topic, 300)
    assert sorted(r.value for r in everything) == sorted(values)
    # the group resumes from its committed position
    rest = consume(bootstrap, topic, 300 - len(first), group_id=group)
    assert sorted(r.value for r in first + rest) == sorted(values)
    # still writable after the crash
    produce(bootstrap, topic, [b"after-restart"], partition=0)


def test_open_clients_survive_broker_kill9(private_kafka_broker: KafkaBroker) -> None:
    """Producer and consumer instances that stay open across a crash/restart keep
    working (and kafka-python's reconnect attempts leak no sockets)."""
    broker = private_kafka_broker
    bootstrap = broker.bootstrap
    topic = create_topic(bootstrap, f"reconnect-{uuid.uuid4().hex[:8]}", partitions=2)
    group = f"g-{uuid.uuid4().hex[:8]}"
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )

    def poll_until(n: int, timeout_s: float = 60) -> list[Any]:
        got: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while len(got) < n and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                got.extend(batch)
        assert len(got) == n, f"consumed {len(got)}/{n}"
        return got

    try:
        for i in range(50):
            producer.send(topic, f"a{i}".encode())
        producer.flush(timeout=30)
        first = poll_until(50)
        consumer.commit()

        broker.kill9()
        broker.resume()

        futures = [producer.send(topic, f"b{i}".encode()) for i in range(50)]
        producer.flush(timeout=60)
        assert all(f.get(timeout=1) for f in futures)
        second = poll_until(50)
        consumer.commit()
    finally:
        consumer.close(autocommit=False)
        producer.close(timeout=30)

    assert sorted(r.value for r in first + second) == sorted(
        [f"a{i}".encode() for i in range(50)] + [f"b{i}".encode() for i in range(50)]
    )
    assert committed_offsets(bootstrap, group, topic) == {
        p: off for p, off in end_offsets(bootstrap, topic).items() if off > 0
    }

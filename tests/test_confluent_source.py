"""The confluent-kafka (librdkafka) source against the real broker: positions, explicit
commits that only go up, and a rebalance whose revoke callback commits and whose assign
callback's seeks become the start offsets."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from kafka_harness import committed_offsets, produce

from driftd.config import KafkaConfig
from driftd.sources.confluent import ConfluentSource


def _cfg(bootstrap: str, topic: str, group: str) -> KafkaConfig:
    return KafkaConfig(
        bootstrap_servers=[bootstrap], topics=[topic], group_id=group, session_timeout_ms=10_000
    )


@pytest.mark.kafka
def test_positions_commits_and_seek_on_assign(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=2)
    group = f"ck-{topic}"
    produce(kafka_bootstrap, topic, [b"x%d" % i for i in range(50)], partition=1)
    assigned: list[list[str]] = []
    src = ConfluentSource(_cfg(kafka_bootstrap, topic, group), on_assign=assigned.append)
    src.open()
    try:
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 50 and time.monotonic() < deadline:
            got += src.poll(1000, 200)
        assert [r.position for r in got] == list(range(1, 51))  # offset + 1
        assert [r.value for r in got[:2]] == [b"x0", b"x1"]
        assert {r.partition for r in got} == {1} and got[0].topic == topic
        assert got[0].timestamp_ms is not None and got[0].timestamp_ms > 1e12
        assert sorted(assigned[0]) == [f"{topic}/0", f"{topic}/1"]
        src.commit({f"{topic}/1": 50})
        src.commit({f"{topic}/1": 40})  # offsets only go up: refused, logged
        assert committed_offsets(kafka_bootstrap, group, topic) == {1: 50}
        assert src.lag().get((topic, 1)) == 0
    finally:
        src.close()

    # A new member whose on_assign restores a checkpoint at offset 30 resumes there.
    def restore(keys: list[str]) -> None:
        if f"{topic}/1" in keys:
            again.seek(f"{topic}/1", 30)

    again = ConfluentSource(_cfg(kafka_bootstrap, topic, group), on_assign=restore)
    again.open()
    try:
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 20 and time.monotonic() < deadline:
            got += again.poll(1000, 200)
        assert [r.offset for r in got] == list(range(30, 50))
    finally:
        again.close()


@pytest.mark.kafka
def test_revoke_callback_commits_before_partitions_move(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=4)
    group = f"ck-{topic}"
    for p in range(4):
        produce(kafka_bootstrap, topic, [b"x%d" % i for i in range(10 + p)], partition=p)
    revoked: list[list[str]] = []
    seen: dict[str, int] = {}

    def on_revoke(keys: list[str]) -> None:
        revoked.append(keys)
        a.commit({k: seen[k] for k in keys if k in seen})

    a = ConfluentSource(_cfg(kafka_bootstrap, topic, group), on_revoke=on_revoke)
    b = ConfluentSource(_cfg(kafka_bootstrap, topic, group))
    a.open()
    try:
        deadline = time.monotonic() + 30
        while sum(seen.values()) < 46 and time.monotonic() < deadline:
            for r in a.poll(1000, 200):
                seen[f"{r.topic}/{r.partition}"] = r.offset + 1
        assert sum(seen.values()) == 46
        b.open()
        deadline = time.monotonic() + 40
        while not revoked and time.monotonic() < deadline:
            a.poll(100, 100)
            b.poll(100, 100)
        assert revoked, "no rebalance happened"
        committed = committed_offsets(kafka_bootstrap, group, topic)
        for key in revoked[0]:
            p = int(key.rsplit("/", 1)[1])
            assert committed.get(p) == 10 + p, (key, committed)
    finally:
        b.close()
        a.close()


def test_missing_package_is_a_config_error_naming_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from driftd.errors import ConfigError

    monkeypatch.setitem(sys.modules, "confluent_kafka", None)  # import fails
    with pytest.raises(ConfigError) as exc:
        ConfluentSource(KafkaConfig())
    assert exc.value.key == "source.type" and "driftd[confluent]" in str(exc.value)


def test_fetch_size_librdkafka_refuses_is_a_config_error() -> None:
    from driftd.errors import ConfigError

    with pytest.raises(ConfigError) as exc:
        ConfluentSource(KafkaConfig(fetch_max_bytes=65536))
    assert exc.value.key == "kafka.fetch_max_bytes"

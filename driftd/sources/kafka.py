"""kafka-python consumer source: group membership, batch polling, explicit commits.

``enable_auto_commit`` is off. The runtime commits, per partition, the offset stored in the
checkpoint that covers it — never more. On a rebalance the runtime's callbacks run inside
``poll``: ``on_revoke`` (checkpoint and commit what is being given up) before the partitions
go, and ``on_assign`` (restore the partition's checkpoint and seek to its offset) before
records of a new partition are returned. CRC checks stay on (the ``crc32c`` package makes
them cheap).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer
from kafka.structs import OffsetAndMetadata, TopicPartition

from driftd.config import KafkaConfig
from driftd.errors import SourceError
from driftd.sources.base import Source
from driftd.types import RawRecord

log = logging.getLogger(__name__)

PartitionCallback = Callable[[list[str]], None]


def partition_key(topic: str, partition: int) -> str:
    return f"{topic}/{partition}"


def split_key(key: str) -> TopicPartition:
    topic, _, part = key.rpartition("/")
    return TopicPartition(topic, int(part))


def consumer_settings(cfg: KafkaConfig) -> dict[str, Any]:
    """kafka-python settings shared by driftd and the benchmark's raw-consumer ceiling."""
    s: dict[str, Any] = {
        "bootstrap_servers": cfg.bootstrap_servers,
        "group_id": cfg.group_id,
        "client_id": cfg.client_id,
        "enable_auto_commit": False,
        "auto_offset_reset": cfg.auto_offset_reset,
        "max_poll_records": cfg.max_poll_records,
        "fetch_max_bytes": cfg.fetch_max_bytes,
        "max_partition_fetch_bytes": cfg.max_partition_fetch_bytes,
        "session_timeout_ms": cfg.session_timeout_ms,
        "check_crcs": True,
        "security_protocol": cfg.security_protocol,
    }
    if cfg.sasl_mechanism:
        s["sasl_mechanism"] = cfg.sasl_mechanism
    if cfg.sasl_plain_username:
        s["sasl_plain_username"] = cfg.sasl_plain_username
    if cfg.sasl_plain_password:
        s["sasl_plain_password"] = cfg.sasl_plain_password.get_secret_value()
    for k in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        if getattr(cfg, k):
            s[k] = getattr(cfg, k)
    if cfg.ssl_password:
        s["ssl_password"] = cfg.ssl_password.get_secret_value()
    if cfg.security_protocol in ("SSL", "SASL_SSL"):
        s["ssl_check_hostname"] = cfg.ssl_check_hostname
    return s


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, source: KafkaSource) -> None:
        self.source = source

    def on_partitions_revoked(self, revoked: Any) -> None:
        keys = sorted(partition_key(tp.topic, tp.partition) for tp in revoked)
        if keys:
            log.info("partitions revoked: %s", ", ".join(keys))
            try:
                self.source.on_revoke(keys)
            except Exception:  # an error here must not break the consumer's group protocol
                log.exception("handling revoked partitions %s failed", keys)

    def on_partitions_assigned(self, assigned: Any) -> None:
        keys = sorted(partition_key(tp.topic, tp.partition) for tp in assigned)
        if keys:
            log.info("partitions assigned: %s", ", ".join(keys))
            try:
                self.source.on_assign(keys)
            except Exception:
                log.exception("handling assigned partitions %s failed", keys)


def _noop(keys: list[str]) -> None:
    pass


class KafkaSource(Source):
    def __init__(
        self,
        cfg: KafkaConfig,
        *,
        on_assign: PartitionCallback = _noop,
        on_revoke: PartitionCallback = _noop,
        consumer_factory: Callable[..., KafkaConsumer] = KafkaConsumer,
    ) -> None:
        self.cfg = cfg
        self.on_assign = on_assign
        self.on_revoke = on_revoke
        self._factory = consumer_factory
        self._consumer: KafkaConsumer | None = None
        self._committed: dict[str, int] = {}

    def open(self) -> None:
        try:
            consumer = self._factory(**consumer_settings(self.cfg))
        except Exception as exc:  # kafka-python raises many kinds (NoBrokersAvailable, …)
            raise SourceError(
                f"cannot connect to Kafka at {','.join(self.cfg.bootstrap_servers)}: {exc}"
            ) from exc
        consumer.subscribe(self.cfg.topics, listener=_Listener(self))
        self._consumer = consumer

    @property
    def consumer(self) -> KafkaConsumer:
        if self._consumer is None:
            raise SourceError("source is not open")
        return self._consumer

    def poll(self, max_records: int, timeout_ms: int) -> list[RawRecord]:
        batches = self.consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        out: list[RawRecord] = []
        for tp, records in batches.items():
            topic, part = tp.topic, tp.partition
            out.extend(
                RawRecord(r.value, r.offset + 1, r.timestamp, part, r.offset, topic)
                for r in records
            )
        return out

    def seek(self, key: str, offset: int) -> None:
        self.consumer.seek(split_key(key), offset)

    def commit(self, offsets: Mapping[str, int]) -> None:
        todo: dict[TopicPartition, OffsetAndMetadata] = {}
        for key, off in offsets.items():
            prev = self._committed.get(key, -1)
            if off < prev:  # offsets only go up
                log.error("refusing to commit %s at %d, below %d", key, off, prev)
                continue
            if off == prev:
                continue
            todo[split_key(key)] = OffsetAndMetadata(off, "", -1)
        if not todo:
            return
        self.consumer.commit(offsets=todo)
        for tp, om in todo.items():
            self._committed[partition_key(tp.topic, tp.partition)] = om.offset

    def forget(self, key: str) -> None:
        self._committed.pop(key, None)

    def lag(self) -> dict[tuple[str, int], int]:
        c = self._consumer
        if c is None:
            return {}
        out: dict[tuple[str, int], int] = {}
        for tp in c.assignment():
            hw = c.highwater(tp)
            if hw is None:
                continue
            try:
                pos = c.position(tp, timeout_ms=0)
            except Exception:  # noqa: BLE001 - position unknown right after a rebalance
                continue
            if pos is not None:
                out[(tp.topic, tp.partition)] = max(0, hw - pos)
        return out

    def close(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close(autocommit=False)
            except Exception as exc:  # noqa: BLE001 - leaving the group is best effort
                log.warning("closing the consumer: %s", exc)
            finally:
                self._consumer = None

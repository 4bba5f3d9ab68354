"""kafka-python consumer source: group membership, batch polling, manual commits.

``enable_auto_commit`` is off; :meth:`KafkaSource.commit` commits, per partition, the offset
after the last record handed out by ``poll``. The runtime calls it only once those records are
folded into state, so a crash replays (never skips) events. CRC checks stay on (the ``crc32c``
package makes them cheap).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer
from kafka.structs import OffsetAndMetadata, TopicPartition

from driftd.config import KafkaConfig
from driftd.errors import SourceError
from driftd.sources.base import Source
from driftd.types import RawRecord

log = logging.getLogger(__name__)


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


class KafkaSource(Source):
    def __init__(
        self,
        cfg: KafkaConfig,
        *,
        start_position: int = 0,
        consumer_factory: Callable[..., KafkaConsumer] = KafkaConsumer,
    ) -> None:
        self.cfg = cfg
        self._position = start_position
        self._factory = consumer_factory
        self._consumer: KafkaConsumer | None = None
        self._pending: dict[TopicPartition, int] = {}  # next offset to commit
        self._committed: dict[TopicPartition, int] = {}

    def open(self) -> None:
        try:
            self._consumer = self._factory(**consumer_settings(self.cfg))
        except Exception as exc:  # kafka-python raises many kinds (NoBrokersAvailable, …)
            raise SourceError(
                f"cannot connect to Kafka at {self.cfg.bootstrap_servers}: {exc}"
            ) from exc
        self._consumer.subscribe(self.cfg.topics)

    @property
    def consumer(self) -> KafkaConsumer:
        if self._consumer is None:
            raise SourceError("source is not open")
        return self._consumer

    def poll(self, max_records: int, timeout_ms: int) -> list[RawRecord]:
        batches = self.consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        out: list[RawRecord] = []
        pos = self._position
        for tp, records in batches.items():
            for r in records:
                pos += 1
                out.append(RawRecord(r.value, pos, r.timestamp, tp.partition, r.offset, tp.topic))
            if records:
                self._pending[tp] = records[-1].offset + 1
        self._position = pos
        return out

    def commit(self) -> None:
        if not self._pending:
            return
        offsets = {}
        for tp, off in self._pending.items():
            prev = self._committed.get(tp, -1)
            if off < prev:  # offsets only go up
                log.error("refusing to commit %s at %d below %d", tp, off, prev)
                continue
            offsets[tp] = OffsetAndMetadata(off, "", -1)
        self.consumer.commit(offsets=offsets)
        for tp, om in offsets.items():
            self._committed[tp] = om.offset
        self._pending.clear()

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

    @property
    def position(self) -> int:
        return self._position

    def close(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close(autocommit=False)
            finally:
                self._consumer = None

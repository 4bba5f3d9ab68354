"""confluent-kafka (librdkafka) consumer source: ``source: {type: confluent}``.

The same contract as :mod:`driftd.sources.kafka` — group membership, batch polling, explicit
commits of checkpointed offsets only, ``on_revoke`` / ``on_assign`` around a rebalance — on
librdkafka, which fetches and parses records on its own C threads. Installed with the
``driftd[confluent]`` extra; connection settings come from the ``kafka:`` block.

librdkafka runs rebalance callbacks inside ``consume`` on the calling thread, so the runtime's
callbacks may commit (synchronously) and seek. Seeks requested while partitions are being
assigned become the assignment's start offsets. CRC checks are on (``check.crcs``).
Partitions *lost* to the group (session expiry) are checkpointed but not committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from operator import methodcaller
from typing import Any

import numpy as np

from driftd.config import KafkaConfig
from driftd.errors import ConfigError, SourceError
from driftd.sources.base import Source, offsets_to_commit, partition_key, split_partition_key
from driftd.sources.batch import NO_TS, RecordBatch

log = logging.getLogger(__name__)

_ERROR = methodcaller("error")
_VALUE = methodcaller("value")
_OFFSET = methodcaller("offset")
_PARTITION = methodcaller("partition")
_TOPIC = methodcaller("topic")
_TIMESTAMP = methodcaller("timestamp")

PartitionCallback = Callable[[list[str]], None]
MIN_FETCH_MAX_BYTES = 1_000_000  # librdkafka's message.max.bytes


def _noop(keys: list[str]) -> None:
    pass


def _import() -> Any:
    try:
        import confluent_kafka
    except ImportError as exc:
        raise ConfigError(
            "source.type",
            "source type 'confluent' needs the confluent-kafka package: "
            "pip install 'driftd[confluent]'",
        ) from exc
    return confluent_kafka


def available() -> bool:
    try:
        _import()
    except ConfigError:
        return False
    return True


def consumer_settings(cfg: KafkaConfig) -> dict[str, Any]:
    """librdkafka settings equivalent to :func:`driftd.sources.kafka.consumer_settings`
    (shared by driftd and the benchmark's raw confluent ceiling)."""
    s: dict[str, Any] = {
        "bootstrap.servers": ",".join(cfg.bootstrap_servers),
        "group.id": cfg.group_id,
        "client.id": cfg.client_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": cfg.auto_offset_reset,
        "fetch.max.bytes": cfg.fetch_max_bytes,
        "max.partition.fetch.bytes": cfg.max_partition_fetch_bytes,
        # librdkafka pre-fetches into one local queue of up to 64 MiB (its default,
        # `queued.max.messages.kbytes`): measured here, 16 MiB cuts its consume rate to
        # 89k/s and 8 MiB to 64k/s against 190-230k/s at 64 MiB, so the default stays.
        "session.timeout.ms": cfg.session_timeout_ms,
        "check.crcs": True,
        "security.protocol": cfg.security_protocol.lower(),
    }
    if cfg.sasl_mechanism:
        s["sasl.mechanism"] = cfg.sasl_mechanism
    if cfg.sasl_plain_username:
        s["sasl.username"] = cfg.sasl_plain_username
    if cfg.sasl_plain_password:
        s["sasl.password"] = cfg.sasl_plain_password.get_secret_value()
    for ours, theirs in (
        ("ssl_cafile", "ssl.ca.location"),
        ("ssl_certfile", "ssl.certificate.location"),
        ("ssl_keyfile", "ssl.key.location"),
    ):
        if getattr(cfg, ours):
            s[theirs] = getattr(cfg, ours)
    if cfg.ssl_password:
        s["ssl.key.password"] = cfg.ssl_password.get_secret_value()
    if cfg.security_protocol in ("SSL", "SASL_SSL"):
        s["ssl.endpoint.identification.algorithm"] = "https" if cfg.ssl_check_hostname else "none"
    return s


class ConfluentSource(Source):
    def __init__(
        self,
        cfg: KafkaConfig,
        *,
        on_assign: PartitionCallback = _noop,
        on_revoke: PartitionCallback = _noop,
    ) -> None:
        self.ck = _import()
        if cfg.fetch_max_bytes < MIN_FETCH_MAX_BYTES:
            raise ConfigError(
                "kafka.fetch_max_bytes",
                f"{cfg.fetch_max_bytes} is below {MIN_FETCH_MAX_BYTES:,}: librdkafka (source type"
                " 'confluent') needs fetch.max.bytes >= message.max.bytes",
            )
        self.cfg = cfg
        self.on_assign = on_assign
        self.on_revoke = on_revoke
        self._consumer: Any = None
        self._committed: dict[str, int] = {}
        self._assigning: dict[str, int] | None = None  # seeks requested inside on_assign
        self._lost = False  # inside on_lost: checkpoint, do not commit
        self._errors_logged = 0
        self.co_partitioned = False
        self._paused = False

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> None:
        settings = consumer_settings(self.cfg)
        if self.co_partitioned:  # scale-out with label topics (see KafkaSource)
            settings["partition.assignment.strategy"] = "range"
        settings["error_cb"] = self._on_error
        settings["logger"] = logging.getLogger("driftd.sources.librdkafka")
        try:
            consumer = self.ck.Consumer(settings)
        except self.ck.KafkaException as exc:  # librdkafka refused a setting
            raise ConfigError("kafka", f"the confluent source refused a setting: {exc}") from exc
        try:
            # Fail early (and retry from the runtime) when no broker answers.
            consumer.list_topics(timeout=10)
        except self.ck.KafkaException as exc:
            consumer.close()
            raise SourceError(
                f"cannot connect to Kafka at {','.join(self.cfg.bootstrap_servers)}: {exc}"
            ) from exc
        consumer.subscribe(
            [*self.cfg.topics, *self.cfg.label_topics],
            on_assign=self._assigned,
            on_revoke=self._revoked,
            on_lost=self._lost_cb,
        )
        self._consumer = consumer

    @property
    def consumer(self) -> Any:
        if self._consumer is None:
            raise SourceError("source is not open")
        return self._consumer

    def close(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close()
            except Exception as exc:  # noqa: BLE001 - leaving the group is best effort
                log.warning("closing the consumer: %s", exc)
            finally:
                self._consumer = None

    def _on_error(self, err: Any) -> None:
        # Transient broker errors (all brokers down, …): librdkafka retries on its own.
        if self._errors_logged < 100 or self._errors_logged % 1000 == 0:
            log.warning("librdkafka: %s", err)
        self._errors_logged += 1

    # ------------------------------------------------------------------ rebalance

    def _assigned(self, consumer: Any, partitions: list[Any]) -> None:
        keys = sorted(partition_key(tp.topic, tp.partition) for tp in partitions)
        if keys:
            log.info("partitions assigned: %s", ", ".join(keys))
        self._assigning = {}
        try:
            if keys:
                self.on_assign(keys)
        except Exception:
            log.exception("handling assigned partitions %s failed", keys)
        finally:
            seeks, self._assigning = self._assigning, None
        for tp in partitions:
            off = seeks.get(partition_key(tp.topic, tp.partition))
            if off is not None:
                tp.offset = off
        consumer.assign(partitions)

    def _revoked(self, consumer: Any, partitions: list[Any]) -> None:
        keys = sorted(partition_key(tp.topic, tp.partition) for tp in partitions)
        if not keys:
            return
        log.info("partitions %s: %s", "lost" if self._lost else "revoked", ", ".join(keys))
        try:
            self.on_revoke(keys)
        except Exception:  # an error here must not break the consumer's group protocol
            log.exception("handling revoked partitions %s failed", keys)

    def _lost_cb(self, consumer: Any, partitions: list[Any]) -> None:
        self._lost = True
        try:
            self._revoked(consumer, partitions)
        finally:
            self._lost = False

    # ------------------------------------------------------------------ records

    def poll(self, max_records: int, timeout_ms: int) -> RecordBatch:
        msgs = self.consumer.consume(num_messages=max_records, timeout=timeout_ms / 1000)
        # librdkafka hands out messages in fetch order: a partition's in offset order, several
        # partitions' in long stretches. Each stretch is one run (positions follow the order
        # the messages came in); the fields are read column by column (C-level method calls),
        # with no object of ours per record.
        errors = list(map(_ERROR, msgs))
        good = msgs
        if any(e is not None for e in errors):
            eof = self.ck.KafkaError._PARTITION_EOF
            good = [m for m, e in zip(msgs, errors, strict=True) if e is None]
            for e in errors:
                if e is not None and e.code() != eof:
                    self._on_error(e)
        n = len(good)
        parts = np.fromiter(map(_PARTITION, good), dtype=np.int64, count=n)
        topics = list(map(_TOPIC, good))
        names = sorted(set(topics))
        code = parts.copy()
        if len(names) > 1:
            index = {t: k for k, t in enumerate(names)}
            code += np.fromiter(map(index.__getitem__, topics), np.int64, n) << 32
        cuts = [0, *(np.flatnonzero(code[1:] != code[:-1]) + 1).tolist(), n] if n else []
        runs = [
            (partition_key(topics[a], int(parts[a])), topics[a], a, b)
            for a, b in zip(cuts[:-1], cuts[1:], strict=True)
        ]
        stamps = np.array(list(map(_TIMESTAMP, good)), dtype=np.int64).reshape(n, 2)
        stamps = np.where(stamps[:, 0] != 0, stamps[:, 1], NO_TS)  # (type, ms); 0: none
        offs = np.fromiter(map(_OFFSET, good), dtype=np.int64, count=n)
        return RecordBatch.of_values(list(map(_VALUE, good)), offs, stamps, offs + 1, runs)

    def pause(self) -> None:
        c = self.consumer
        c.pause(c.assignment())
        self._paused = True

    def resume(self) -> None:
        c = self.consumer
        c.resume(c.assignment())
        self._paused = False

    def pause_keys(self, keys: list[str]) -> None:
        """Stop fetching these partitions (e.g. until their state is restored)."""
        self.consumer.pause([self.ck.TopicPartition(*split_partition_key(k)) for k in keys])

    def resume_keys(self, keys: list[str]) -> None:
        if not self._paused:  # a pause of everything (back-pressure) still holds them
            self.consumer.resume([self.ck.TopicPartition(*split_partition_key(k)) for k in keys])

    def seek(self, key: str, offset: int) -> None:
        if self._assigning is not None:  # inside on_assign: becomes the start offset
            self._assigning[key] = offset
            return
        self.consumer.seek(self.ck.TopicPartition(*split_partition_key(key), offset))

    def commit(self, offsets: Mapping[str, int]) -> None:
        if self._lost:
            log.warning(
                "partitions %s were lost to the group, not revoked: their offsets are not"
                " committed; the next owner resumes from the checkpoint",
                ", ".join(sorted(offsets)),
            )
            return
        todo = [
            self.ck.TopicPartition(*split_partition_key(key), off)
            for key, off in offsets_to_commit(self._committed, offsets).items()
        ]
        if not todo:
            return
        done = self.consumer.commit(offsets=todo, asynchronous=False)
        for tp in done or todo:
            if getattr(tp, "error", None) is None:
                self._committed[partition_key(tp.topic, tp.partition)] = tp.offset

    def forget(self, key: str) -> None:
        self._committed.pop(key, None)

    def lag(self) -> dict[tuple[str, int], int]:
        c = self._consumer
        if c is None:
            return {}
        out: dict[tuple[str, int], int] = {}
        try:
            parts = c.assignment()
            if not parts:
                return {}
            for tp in c.position(parts):
                _lo, hi = c.get_watermark_offsets(tp, cached=True)
                if hi is None or hi < 0:
                    continue
                pos = (
                    tp.offset
                    if tp.offset >= 0
                    else self._committed.get(partition_key(tp.topic, tp.partition))
                )
                if pos is not None and pos >= 0:
                    out[(tp.topic, tp.partition)] = max(0, hi - pos)
        except self.ck.KafkaException as exc:
            log.debug("lag: %s", exc)
        return out

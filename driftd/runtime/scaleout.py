"""Kafka as the distribution engine: the internal topics of scale-out (``scale_out``).

- **panes** (``<group>.panes``): partition stages publish panes here, keyed — and partitioned —
  by monitor (:func:`monitor_partition`); a second consumer group (``<group>.monitors``)
  reads it, so each monitor is decided by exactly one process at a time and moves with
  rebalances. Idempotent producer, ``acks=all``, lz4.
- **state** (``<group>.state``, compacted, partitioned like panes): per monitor, its whole
  state as one record (:func:`encode_bundle`): the checkpoint entries of the monitor and its
  versions, plus alerts raised but maybe not yet handed to an outbox. A process that is
  assigned a panes partition restores its monitors from the state partition of the same
  number, then reads panes from the group's committed offset.
- **members** (``<group>.members``, compacted, one partition): every few seconds each
  process writes which monitors it decides and where its API is, so any process can answer
  for, or point to, every monitor.

Why this is exact: the panes of a monitor are one ordered log. Its state is written before the
panes offsets that it covers are committed, so a process that takes over restores a state and
folds the panes after it — the same panes in the same order, hence the same windows,
verdicts and alert ids as the process before it would have reached. Panes published twice (a
crash between publishing and committing the source offsets) are recognised by their source
offsets, row by row (``VersionMonitor.merged``).
"""

from __future__ import annotations

import io
import logging
import struct
import threading
import time
import zlib
from collections.abc import Iterable
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from driftd.config import Config
from driftd.errors import ConfigError, SourceError
from driftd.ingest import wire
from driftd.ingest.panes import Pane
from driftd.state.checkpoint import Entry, decode_entry, encode_entry

log = logging.getLogger(__name__)

BUNDLE_MAGIC = b"DST1"
_LEN = struct.Struct("<I")


def topic_names(cfg: Config) -> tuple[str, str, str]:
    so, g = cfg.scale_out, cfg.kafka.group_id
    return (
        so.panes_topic or f"{g}.panes",
        so.state_topic or f"{g}.state",
        so.members_topic or f"{g}.members",
    )


def monitor_partition(monitor: str, partitions: int) -> int:
    """The internal partition of a monitor: a stable hash, the same in every process."""
    return zlib.crc32(monitor.encode()) % partitions


def _client_settings(cfg: Config) -> dict[str, Any]:
    from driftd.sources.kafka import consumer_settings

    s = consumer_settings(cfg.kafka)
    for k in (
        "group_id",
        "enable_auto_commit",
        "auto_offset_reset",
        "max_poll_records",
        "fetch_max_bytes",
        "max_partition_fetch_bytes",
        "session_timeout_ms",
        "check_crcs",
        "metrics_enabled",
    ):
        s.pop(k, None)
    return s


def ensure_topics(cfg: Config) -> None:
    """Create the internal topics when missing; refuse ones with another partition count
    (exit 2 naming ``scale_out.partitions``)."""
    from kafka.admin import KafkaAdminClient, NewTopic

    panes, state, members = topic_names(cfg)
    so = cfg.scale_out
    admin = KafkaAdminClient(**_client_settings(cfg))
    try:
        wanted = {
            # kept until every monitor consumed them (PanesPurger), as Kafka Streams
            # keeps its repartition topics: never lost to time
            panes: (so.partitions, {"retention.ms": "-1"}),
            state: (
                so.partitions,
                {
                    "cleanup.policy": "compact",
                    "max.message.bytes": str(so.max_state_bytes),
                    "min.compaction.lag.ms": "60000",
                },
            ),
            members: (1, {"cleanup.policy": "compact", "segment.ms": "600000"}),
        }
        existing = set(admin.list_topics())
        new = [
            NewTopic(t, n, so.replication_factor, topic_configs=c)
            for t, (n, c) in wanted.items()
            if t not in existing
        ]
        if new:
            try:
                admin.create_topics(new, timeout_ms=30_000)
                log.info("created internal topics %s", ", ".join(t.name for t in new))
            except Exception as exc:  # noqa: BLE001 - another process created them first
                if "TopicAlreadyExists" not in type(exc).__name__ + str(exc):
                    raise
        for t, (n, _) in wanted.items():
            deadline = time.monotonic() + 30
            while True:
                meta = admin.describe_topics([t])
                parts = meta[0].get("partitions") or []
                if parts or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            if len(parts) != n:
                raise ConfigError(
                    "scale_out.partitions",
                    f"internal topic {t} has {len(parts)} partitions, configured {n}",
                )
    finally:
        admin.close()


def check_copartitioned(cfg: Config) -> None:
    """Performance monitors in scale-out join labels where their predictions are read: the
    prediction and label topics need the same partition count (exit 2 naming the topics and
    their counts otherwise)."""
    from kafka.admin import KafkaAdminClient

    k = cfg.kafka
    if not k.label_topics:
        return
    admin = KafkaAdminClient(**_client_settings(cfg))
    try:
        counts: dict[str, int] = {}
        for t in [*k.topics, *k.label_topics]:
            meta = admin.describe_topics([t])
            counts[t] = len(meta[0].get("partitions") or []) if meta else 0
    finally:
        admin.close()
    problem = copartition_problem(counts)
    if problem is not None:
        raise problem


def copartition_problem(counts: dict[str, int]) -> ConfigError | None:
    """The error when prediction and label topics (``{topic: partitions}``, 0: missing) are
    not co-partitioned, else None."""
    if len(set(counts.values())) <= 1 and 0 not in counts.values():
        return None
    listed = ", ".join(
        f"{t}: {n} partitions" if n else f"{t}: does not exist" for t, n in counts.items()
    )
    return ConfigError(
        "kafka.label_topics",
        "performance monitors with scale_out need prediction and label topics keyed by"
        f" event_id with the same partition count (co-partitioned); found {listed}",
    )


# ---------------------------------------------------------------------------- panes


class PaneProducer:
    def __init__(self, cfg: Config) -> None:
        self.topic = topic_names(cfg)[0]
        self.partitions = cfg.scale_out.partitions
        self.producer = KafkaProducer(
            **_client_settings(cfg),
            acks="all",
            enable_idempotence=True,
            compression_type="lz4",
            linger_ms=5,
            batch_size=1 << 20,
            max_request_size=cfg.scale_out.max_state_bytes,
        )
        self.sent_bytes = 0
        self.sent = 0

    def send(self, panes: Iterable[Pane]) -> None:
        for p in panes:
            data = wire.encode(p)
            self.sent_bytes += len(data)
            self.sent += 1
            self.producer.send(
                self.topic,
                value=data,
                key=p.monitor.encode(),
                partition=monitor_partition(p.monitor, self.partitions),
            )

    def send_raw(self, monitor: str, data: bytes) -> None:
        """Another record for the monitor's panes partition (join outcomes)."""
        self.sent_bytes += len(data)
        self.sent += 1
        self.producer.send(
            self.topic,
            value=data,
            key=monitor.encode(),
            partition=monitor_partition(monitor, self.partitions),
        )

    def flush(self, timeout_s: float = 60.0) -> None:
        """Every pane sent so far acknowledged by the broker (acks=all), or SourceError."""
        try:
            self.producer.flush(timeout=timeout_s)
        except Exception as exc:  # noqa: BLE001 - kafka errors of many kinds
            raise SourceError(f"panes not acknowledged: {exc}") from exc

    def close(self) -> None:
        try:
            self.producer.close(timeout=10)
        except Exception as exc:  # noqa: BLE001 - best effort at shutdown
            log.warning("closing the panes producer: %s", exc)


# ---------------------------------------------------------------------------- state


def encode_bundle(entries: dict[str, Entry], alerts: list[dict[str, Any]]) -> bytes:
    """A monitor's checkpoint entries and staged alerts as one record."""
    blobs = [(key, encode_entry(key, meta, arrays)) for key, (meta, arrays) in entries.items()]
    head = orjson.dumps(
        {"format": 1, "entries": [[k, len(b)] for k, b in blobs], "alerts": alerts},
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
    buf = io.BytesIO()
    buf.write(BUNDLE_MAGIC)
    buf.write(_LEN.pack(len(head)))
    buf.write(head)
    for _, b in blobs:
        buf.write(b)
    return buf.getvalue()


def decode_bundle(data: bytes) -> tuple[dict[str, Entry], list[dict[str, Any]]]:
    if data[:4] != BUNDLE_MAGIC:
        raise ValueError("not a driftd state record")
    (hlen,) = _LEN.unpack_from(data, 4)
    head = orjson.loads(data[8 : 8 + hlen])
    at = 8 + hlen
    entries: dict[str, Entry] = {}
    for key, n in head["entries"]:
        entries[key] = decode_entry(key, data[at : at + n])
        at += n
    return entries, list(head.get("alerts", []))


class StateStore:
    """Monitor state in the compacted state topic."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.topic = topic_names(cfg)[1]
        self.partitions = cfg.scale_out.partitions
        self.producer = KafkaProducer(
            **_client_settings(cfg),
            acks="all",
            enable_idempotence=True,
            compression_type="lz4",
            max_request_size=cfg.scale_out.max_state_bytes,
        )
        self.written_bytes = 0

    def save(self, key: str, record: bytes, partition: int | None = None) -> None:
        """A monitor's state (key: its name, in its panes partition's number) or another
        record (``partition`` given)."""
        self.written_bytes += len(record)
        self.producer.send(
            self.topic,
            value=record,
            key=key.encode(),
            partition=monitor_partition(key, self.partitions) if partition is None else partition,
        )

    def flush(self, timeout_s: float = 60.0) -> None:
        try:
            self.producer.flush(timeout=timeout_s)
        except Exception as exc:  # noqa: BLE001
            raise SourceError(f"monitor state not acknowledged: {exc}") from exc

    def load(self, partition: int, timeout_s: float = 60.0) -> dict[str, bytes]:
        """The latest record of every monitor in a state partition (read to its end)."""
        tp = TopicPartition(self.topic, partition)
        c = KafkaConsumer(**_client_settings(self.cfg), enable_auto_commit=False)
        try:
            c.assign([tp])
            end = c.end_offsets([tp])[tp]
            c.seek_to_beginning(tp)
            latest: dict[str, bytes] = {}
            deadline = time.monotonic() + timeout_s
            while c.position(tp) < end:
                if time.monotonic() > deadline:
                    raise SourceError(f"state partition {self.topic}/{partition}: read timed out")
                for recs in c.poll(timeout_ms=500).values():
                    for r in recs:
                        if r.key is None:
                            continue
                        if r.value is None:
                            latest.pop(r.key.decode(), None)  # a tombstone
                        else:
                            latest[r.key.decode()] = r.value
            return latest
        finally:
            c.close()

    def close(self) -> None:
        try:
            self.producer.close(timeout=10)
        except Exception as exc:  # noqa: BLE001
            log.warning("closing the state producer: %s", exc)


class PanesPurger(threading.Thread):
    """Deletes panes every monitor has consumed: every ``scale_out.purge_interval_s`` the
    records below the monitors group's committed offsets (the state that covers them is in
    the state topic). The panes topic keeps no time limit, so panes wait for a monitor that is
    down however long, and this keeps it small (Kafka Streams purges its repartition topics
    the same way). Every process runs one; deleting what is already deleted does nothing."""

    def __init__(self, cfg: Config) -> None:
        super().__init__(name="driftd-panes-purge", daemon=True)
        self.topic = topic_names(cfg)[0]
        self.group = f"{cfg.kafka.group_id}.monitors"
        self.interval_s = cfg.scale_out.purge_interval_s
        self.settings = _client_settings(cfg)
        self.stopping = threading.Event()
        self.purged: dict[int, int] = {}  # partition -> first offset kept, as last purged
        self._admin: Any = None  # one admin client, kept between rounds

    def run(self) -> None:
        try:
            while not self.stopping.wait(self.interval_s):
                try:
                    self.purge_once()
                except Exception as exc:  # noqa: BLE001 - the next round retries
                    log.warning("purging consumed panes failed (retried): %s", exc)
                    self._close_admin()  # a fresh client next round
        finally:
            self._close_admin()

    def purge_once(self) -> dict[int, int]:
        if self._admin is None:
            from kafka.admin import KafkaAdminClient

            self._admin = KafkaAdminClient(**self.settings)
        admin = self._admin
        committed = admin.list_group_offsets({self.group: None}).get(self.group, {})
        todo = {
            tp: om.offset
            for tp, om in committed.items()
            if tp.topic == self.topic and om.offset > self.purged.get(tp.partition, 0)
        }
        if todo:
            admin.delete_records(todo, timeout_ms=30_000)
            for tp, off in todo.items():
                self.purged[tp.partition] = off
        return {tp.partition: off for tp, off in todo.items()}

    def _close_admin(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            try:
                admin.close()
            except Exception as exc:  # noqa: BLE001 - closing is best effort
                log.debug("closing the purge admin client: %s", exc)

    def stop(self) -> None:
        self.stopping.set()


# ---------------------------------------------------------------------------- members


class Membership:
    """Who decides which monitor: each process writes its own record (its API URL and the
    monitors it decides) every few seconds; everybody reads everybody's. Records older than
    ``stale_s`` are ignored (a process that died)."""

    def __init__(self, cfg: Config, me: str, stale_s: float = 30.0) -> None:
        self.cfg = cfg
        self.me = me
        self.topic = topic_names(cfg)[2]
        self.stale_s = stale_s
        self.producer = KafkaProducer(**_client_settings(cfg), acks=1)
        self.consumer = KafkaConsumer(**_client_settings(cfg), enable_auto_commit=False)
        self.tp = TopicPartition(self.topic, 0)
        self.consumer.assign([self.tp])
        self.consumer.seek_to_beginning(self.tp)
        self.members: dict[str, dict[str, Any]] = {}

    def announce(self, monitors: Iterable[str]) -> None:
        doc = {"api": self.me, "monitors": sorted(monitors), "at": time.time()}
        self.producer.send(self.topic, key=self.me.encode(), value=orjson.dumps(doc), partition=0)
        self.producer.flush(timeout=10)

    def refresh(self) -> None:
        for recs in self.consumer.poll(timeout_ms=0).values():
            for r in recs:
                if r.key is not None and r.value is not None:
                    try:
                        self.members[r.key.decode()] = orjson.loads(r.value)
                    except orjson.JSONDecodeError:
                        continue

    def decider(self, monitor: str) -> str | None:
        """The API URL of the process deciding ``monitor`` (None: unknown, or this one)."""
        now = time.time()
        best: tuple[float, str] | None = None
        for api, doc in self.members.items():
            if api == self.me or now - float(doc.get("at", 0)) > self.stale_s:
                continue
            if monitor in doc.get("monitors", []):
                at = float(doc["at"])
                if best is None or at > best[0]:
                    best = (at, api)
        return best[1] if best else None

    def close(self) -> None:
        for c in (self.producer, self.consumer):
            try:
                c.close()
            except Exception:  # noqa: BLE001
                pass

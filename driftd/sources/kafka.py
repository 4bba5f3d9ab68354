"""kafka-python consumer source: group membership, batch polling, explicit commits.

``enable_auto_commit`` is off. The runtime commits, per partition, the offset stored in the
checkpoint that covers it — never more. On a rebalance the runtime's callbacks run before the
partitions go or arrive: ``on_revoke`` (checkpoint and commit what is being given up) and
``on_assign`` (restore the partition's checkpoint and seek to its offset) before records of a
new partition are returned. CRC checks stay on (the ``crc32c`` package makes them cheap).

kafka-python 3 runs rebalance listeners on its IO thread, where a blocking call such as
``KafkaConsumer.commit`` raises ("Cannot block on net.run() from the IO thread"). The listener is
therefore asynchronous: while the runtime's ``on_revoke`` runs, commits are collected instead of
sent, and the listener then awaits the coordinator's commit coroutine on the IO loop itself,
before the partitions are given up. Lost partitions (evicted from the group) are checkpointed
but not committed: the group generation that owned them is gone, and the new owner resumes
from the checkpoint.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from operator import attrgetter
from typing import Any

import numpy as np
from kafka import AsyncConsumerRebalanceListener, KafkaConsumer
from kafka.structs import OffsetAndMetadata, TopicPartition

from driftd.config import KafkaConfig
from driftd.errors import SourceError
from driftd.sources.base import Source, offsets_to_commit, partition_key, split_partition_key
from driftd.sources.batch import RecordBatch

log = logging.getLogger(__name__)

_VALUE = attrgetter("value")
_OFFSET = attrgetter("offset")
_TIMESTAMP = attrgetter("timestamp")
PartitionCallback = Callable[[list[str]], None]
STALL_PROBE_S = 5.0  # quiet time before probing end offsets
STALL_RECYCLE_PROBES = 3  # probes that find us behind before the consumer is recycled
REVOKE_COMMIT_TIMEOUT_MS = 10_000  # a rebalance waits at most this long for the revoke commit


def split_key(key: str) -> TopicPartition:
    return TopicPartition(*split_partition_key(key))


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
        # kafka-python's own client metrics (sensors updated on every fetch and poll) are
        # never read: driftd exports lag from positions and high watermarks itself.
        "metrics_enabled": False,
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


class _Listener(AsyncConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, source: KafkaSource) -> None:
        self.source = source

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._revoke(revoked, commit=True)

    async def on_partitions_lost(self, lost: Any) -> None:
        await self._revoke(lost, commit=False)

    async def _revoke(self, revoked: Any, *, commit: bool) -> None:
        keys = sorted(partition_key(tp.topic, tp.partition) for tp in revoked)
        if not keys:
            return
        log.info("partitions %s: %s", "revoked" if commit else "lost", ", ".join(keys))
        src = self.source
        src._deferred = {}
        try:
            src.on_revoke(keys)
        except Exception:  # an error here must not break the consumer's group protocol
            log.exception("handling revoked partitions %s failed", keys)
        finally:
            todo, src._deferred = src._deferred, None
        if not todo:
            return
        if not commit:
            log.warning(
                "partitions %s were lost to the group, not revoked: their offsets are not"
                " committed; the next owner resumes from the checkpoint",
                ", ".join(keys),
            )
            return
        await src._commit_on_io_loop(todo)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        keys = sorted(partition_key(tp.topic, tp.partition) for tp in assigned)
        if keys:
            log.info("partitions assigned: %s", ", ".join(keys))
            try:
                self.source.on_assign(keys)
            except Exception:
                log.exception("handling assigned partitions %s failed", keys)


def _group_stable(c: KafkaConsumer) -> bool:
    """Whether the consumer is a settled member of its group (kafka-python internals; True
    when they cannot be read, so an API change never triggers recycling)."""
    try:
        coord = c._coordinator
        from kafka.structs import MemberState

        return bool(coord.state == MemberState.STABLE and not coord.coordinator_unknown())
    except Exception:  # noqa: BLE001
        return True


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
        # Commits collected while a rebalance listener runs on kafka-python's IO thread.
        self._deferred: dict[TopicPartition, OffsetAndMetadata] | None = None
        self._last_records = time.monotonic()
        self._last_probe = 0.0
        self._stalled_probes = 0
        self.recycles = 0
        self._paused = False
        # Scale-out with label topics: the range assignor, which gives a member the same
        # partition numbers of every topic (co-partitioning).
        self.co_partitioned = False

    def open(self) -> None:
        try:
            settings = consumer_settings(self.cfg)
            if self.co_partitioned:
                from kafka.coordinator.assignors.range import RangePartitionAssignor

                settings["partition_assignment_strategy"] = (RangePartitionAssignor,)
            consumer = self._factory(**settings)
        except Exception as exc:  # kafka-python raises many kinds (NoBrokersAvailable, …)
            raise SourceError(
                f"cannot connect to Kafka at {','.join(self.cfg.bootstrap_servers)}: {exc}"
            ) from exc
        # Label topics (performance monitoring) join the same subscription: their partitions
        # are checkpointed and committed exactly like the prediction topics'.
        topics = [*self.cfg.topics, *self.cfg.label_topics]
        consumer.subscribe(topics, listener=_Listener(self))
        self._consumer = consumer

    @property
    def consumer(self) -> KafkaConsumer:
        if self._consumer is None:
            raise SourceError("source is not open")
        return self._consumer

    def poll(self, max_records: int, timeout_ms: int) -> RecordBatch:
        batches = self.consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        # No object of ours per record: the values, offsets and timestamps are taken from
        # kafka-python's records column by column (C-level attribute reads).
        values: list[bytes | None] = []
        offsets: list[int] = []
        stamps: list[int | None] = []
        runs: list[tuple[str, str, int, int]] = []
        for tp, records in batches.items():  # a partition's records are one run, in order
            if records:
                start = len(values)
                values.extend(map(_VALUE, records))
                offsets.extend(map(_OFFSET, records))
                stamps.extend(map(_TIMESTAMP, records))
                runs.append((partition_key(tp.topic, tp.partition), tp.topic, start, len(values)))
        offs = np.array(offsets, dtype=np.int64)
        out = RecordBatch.of_values(values, offs, stamps, offs + 1, runs)
        now = time.monotonic()
        if out:
            self._last_records = now
            self._stalled_probes = 0
        elif self._paused:
            self._last_records = now  # nothing fetched on purpose: not a stall
        elif now - self._last_records >= STALL_PROBE_S and now - self._last_probe >= STALL_PROBE_S:
            self._last_probe = now
            self._check_stall()
        return out

    def _check_stall(self) -> None:
        """kafka-python 3.0 can stop fetching a partition after a broker restart (positions
        left awaiting leader-epoch validation; upstream issues #3106, #3131) while ``poll``
        keeps returning nothing. After a quiet spell, ask the broker for the true end offsets:
        if we are behind, force validation through ``position()``; if that does not help
        within a few probes, recycle the consumer. Recycling is safe: leaving the group revokes
        the partitions (checkpoint + commit) and rejoining restores them from the checkpoint.
        """
        c = self.consumer
        stable = _group_stable(c)
        parts = list(c.assignment())
        if not stable:
            # A join legitimately waits for departed members' sessions to expire; only a
            # membership that stays unsettled well beyond that is a stuck client.
            limit = max(
                STALL_RECYCLE_PROBES,
                math.ceil((self.cfg.session_timeout_ms / 1000 + 30) / STALL_PROBE_S),
            )
            self._stalled_probes += 1
            log.warning(
                "consumer group membership not (re-)established for %.0fs (probe %d of %d)",
                time.monotonic() - self._last_records,
                self._stalled_probes,
                limit,
            )
            if self._stalled_probes >= limit:
                self._recycle()
            return
        if not parts:
            self._stalled_probes = 0
            return
        try:
            ends = c.end_offsets(parts, timeout_ms=5000)
        except Exception as exc:  # noqa: BLE001 - broker unreachable: nothing to decide yet
            log.warning("stall probe: end offsets unavailable: %s", exc)
            return
        behind = 0
        for tp in parts:
            end = ends.get(tp)
            try:
                pos = c.position(tp, timeout_ms=2000)
            except Exception as exc:  # noqa: BLE001 - a position that cannot be validated
                log.warning("stall probe: position of %s unavailable: %s", tp, exc)
                pos = None
            if end is not None and (pos is None or pos < end):
                behind += end - (pos or 0) if pos is not None else 1
        if behind == 0:
            self._stalled_probes = 0
            return
        self._stalled_probes += 1
        log.warning(
            "consumer returned nothing for %.0fs while %d records are waiting (probe %d)",
            time.monotonic() - self._last_records,
            behind,
            self._stalled_probes,
        )
        if self._stalled_probes >= STALL_RECYCLE_PROBES:
            self._recycle()

    def _recycle(self) -> None:
        log.error("consumer stalled; recycling it (checkpoint, leave and rejoin the group)")
        self.recycles += 1
        self._stalled_probes = 0
        self._last_records = time.monotonic()
        self.close()
        self.open()

    def pause(self) -> None:
        c = self.consumer
        c.pause(*c.assignment())
        self._paused = True

    def resume(self) -> None:
        c = self.consumer
        c.resume(*c.paused())
        self._paused = False
        self._last_records = time.monotonic()  # a pause is not a stall

    def pause_keys(self, keys: list[str]) -> None:
        """Stop fetching these partitions (e.g. until their state is restored)."""
        self.consumer.pause(*(split_key(k) for k in keys))

    def resume_keys(self, keys: list[str]) -> None:
        if not self._paused:  # a pause of everything (back-pressure) still holds them
            self.consumer.resume(*(split_key(k) for k in keys))

    def seek(self, key: str, offset: int) -> None:
        self.consumer.seek(split_key(key), offset)

    def commit(self, offsets: Mapping[str, int]) -> None:
        todo = {
            split_key(key): OffsetAndMetadata(off, "", -1)
            for key, off in offsets_to_commit(self._committed, offsets).items()
        }
        if not todo:
            return
        if self._deferred is not None:  # inside a rebalance listener: sent by the listener
            self._deferred.update(todo)
            return
        self.consumer.commit(offsets=todo)
        self._note_committed(todo)

    def _note_committed(self, done: Mapping[TopicPartition, OffsetAndMetadata]) -> None:
        for tp, om in done.items():
            self._committed[partition_key(tp.topic, tp.partition)] = om.offset

    async def _commit_on_io_loop(self, todo: dict[TopicPartition, OffsetAndMetadata]) -> None:
        """Commit from inside a rebalance listener (kafka-python's IO loop), awaiting the
        coordinator's commit coroutine rather than blocking the loop that must run it."""
        coord = getattr(self.consumer, "_coordinator", None)
        commit = getattr(coord, "_commit_offsets_sync_async", None)
        keys = ", ".join(sorted(partition_key(tp.topic, tp.partition) for tp in todo))
        if commit is None:  # a kafka-python without the coroutine: fire and forget
            log.warning("committing revoked partitions %s asynchronously (not awaited)", keys)
            self.consumer.commit_async(offsets=todo)
            return
        try:
            await commit(todo, REVOKE_COMMIT_TIMEOUT_MS)
        except Exception as exc:  # noqa: BLE001 - the checkpoint still covers the partitions
            log.warning(
                "committing revoked partitions %s failed (%s); the next owner resumes from"
                " the checkpoint",
                keys,
                exc,
            )
            return
        # The partitions are being given up (the runtime already forgot them): their commit
        # marks are not kept, so a later reassignment starts from what its checkpoint says.

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

"""``driftd run`` in scale-out mode (``scale_out.enabled``, ``--workers N``): the two stages
joined through Kafka (see :mod:`driftd.runtime.scaleout`).

Every process runs both stages on one loop:

- **partition stage**: its share of the source partitions (consumer group ``<group>``) →
  panes → the panes topic. A checkpoint flushes the panes (``acks=all``) and only then commits
  the source offsets they cover.
- **monitor stage**: its share of the panes partitions (consumer group ``<group>.monitors``)
  → the monitors those partitions carry → evaluations, alerts. A checkpoint writes the state
  of every monitor that changed (with the alerts it raised) to the state topic, then hands the
  alerts to the outboxes, then commits the panes offsets. On assignment a partition is paused
  until its monitors are restored from the state topic; on revocation their state is dropped
  (the next owner restores it and folds the same panes after it).

Only the monitors this process decides appear in its metrics and API; asked about another
monitor, the API answers through the process that decides it (``Membership``).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition

from driftd.config import Config
from driftd.errors import ConfigError, SourceError
from driftd.ingest import wire
from driftd.ingest.panes import Pane
from driftd.runtime import monitor_state
from driftd.runtime.daemon import Daemon
from driftd.runtime.monitor_state import join_key, source_index
from driftd.runtime.scaleout import (
    Membership,
    PaneProducer,
    PanesPurger,
    StateStore,
    check_copartitioned,
    ensure_topics,
    monitor_partition,
    topic_names,
)
from driftd.sources.kafka import _group_stable

if TYPE_CHECKING:  # river is imported only when a monitor has a performance block
    from driftd.monitor.perf_split import Outcomes, PartitionJoins

log = logging.getLogger(__name__)

ANNOUNCE_S = 5.0  # each process says which monitors it decides this often (and on change)
REFRESH_S = 0.5  # and reads what the others said this often
JOIN_POLL_MS = 1000


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Runs on the client's IO thread: bookkeeping only (no blocking call)."""

    def __init__(self, owner: ScaledDaemon) -> None:
        self.owner = owner

    def on_partitions_revoked(self, revoked: Any) -> None:
        with self.owner._rebalance_lock:
            for tp in revoked:
                self.owner._to_drop.add(tp.partition)
                self.owner._to_restore.discard(tp.partition)

    def on_partitions_assigned(self, assigned: Any) -> None:
        with self.owner._rebalance_lock:
            # Paused before the main loop can see them: it resumes them once restored.
            try:
                if self.owner.monitors_in is not None:
                    self.owner.monitors_in.pause(*assigned)  # nothing folded before the restore
            except Exception:  # noqa: BLE001 - the main loop pauses again before reading
                log.exception("pausing assigned panes partitions failed")
            for tp in assigned:
                self.owner._to_restore.add(tp.partition)
                self.owner._to_drop.discard(tp.partition)


class ScaledDaemon(Daemon):
    def __init__(self, cfg: Config, *, worker: int | None = None, **kw: Any) -> None:
        super().__init__(cfg, worker=worker, **kw)
        self.pipeline.owned = set()
        self._rebalance_lock = threading.Lock()
        self._to_restore: set[int] = set()
        self._to_drop: set[int] = set()
        self._owned_partitions: set[int] = set()
        self.partitions = cfg.scale_out.partitions
        self._by_partition: dict[int, list[str]] = {}
        for m in cfg.monitors:
            self._by_partition.setdefault(monitor_partition(m.name, self.partitions), []).append(
                m.name
            )
        self.panes_topic = topic_names(cfg)[0]
        host, port = cfg.http.host_port
        self.me = cfg.scale_out.advertise or f"http://{_advertised_host(host)}:{self.http.port}"
        self.http.routes.elsewhere = self._elsewhere
        self.http.routes.configured = frozenset(m.name for m in cfg.monitors)
        self._announced = 0.0
        self._refreshed = 0.0
        self.panes_out: PaneProducer | None = None
        self.state_store: StateStore | None = None
        self.members: Membership | None = None
        self.monitors_in: KafkaConsumer | None = None
        self.purger: PanesPurger | None = None
        # Performance monitors: labels joined per source partition index, here (perf_split)
        self.joins: PartitionJoins | None = None
        self._split: Any = None  # driftd.monitor.perf_split, imported only when needed
        perf = self.pipeline.perf
        if perf is not None:
            from driftd.monitor import perf_split

            self._split = perf_split
            self.joins = perf.split = perf_split.PartitionJoins(perf.monitors)
            self.source.co_partitioned = True
        self._perf_touched: set[str] = set()

    # ------------------------------------------------------------------ set-up

    def _restore(self) -> None:
        """No local checkpoint: state lives in the state topic. The directory is still this
        process's own (outbox, audit log), so it is locked."""
        self.store.dir.mkdir(parents=True, exist_ok=True)
        self.store._lock()
        # one kept by the one-process mode would be stale if that mode came back
        self.store.retire("scale-out keeps monitor state in the state topic")
        self._publish()

    def _open_source(self) -> bool:
        if not super()._open_source():
            return False
        try:
            ensure_topics(self.cfg)
            if self.joins is not None:
                check_copartitioned(self.cfg)
            self.panes_out = PaneProducer(self.cfg)
            self.state_store = StateStore(self.cfg)
            self.members = Membership(self.cfg, self.me)
            from driftd.runtime.scaleout import _client_settings

            settings = _client_settings(self.cfg)
            settings["client_id"] = f"driftd-monitors {self.me}"
            self.monitors_in = KafkaConsumer(
                **settings,
                group_id=f"{self.cfg.kafka.group_id}.monitors",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                session_timeout_ms=self.cfg.kafka.session_timeout_ms,
                max_partition_fetch_bytes=self.cfg.scale_out.max_state_bytes,
                fetch_max_bytes=max(self.cfg.kafka.fetch_max_bytes, 1 << 20),
            )
            self.monitors_in.subscribe([self.panes_topic], listener=_Rebalance(self))
            self.purger = PanesPurger(self.cfg)
            self.purger.start()
        except (SourceError, ConfigError):
            raise
        except Exception as exc:  # noqa: BLE001 - kafka-python raises many kinds
            raise SourceError(f"scale-out internal topics unusable: {exc}") from exc
        log.info(
            "scale-out: panes topic %s (%d partitions), monitors decided by group %s.monitors;"
            " this process answers at %s",
            self.panes_topic,
            self.partitions,
            self.cfg.kafka.group_id,
            self.me,
        )
        return True

    def _close_sources(self) -> None:
        super()._close_sources()
        for closer in (
            self.purger.stop if self.purger is not None else None,
            self.monitors_in.close if self.monitors_in is not None else None,
            self.panes_out.close if self.panes_out is not None else None,
            self.state_store.close if self.state_store is not None else None,
            self.members.close if self.members is not None else None,
        ):
            if closer is not None:
                try:
                    closer()
                except Exception as exc:  # noqa: BLE001 - best effort at shutdown
                    log.warning("closing: %s", exc)

    # ------------------------------------------------------------------ the loop

    def _consume(self) -> None:
        k = self.cfg.kafka
        assert self.panes_out is not None and self.monitors_in is not None
        while not self.stop_event.is_set():
            self._apply_rebalance()
            self.polling(True)
            try:
                records = self.source.poll(k.max_poll_records, k.poll_timeout_ms)
            finally:
                self.polling(False)
            if records:
                panes = self.pipeline.route(records)
                self.panes_out.send(p for ps in panes.values() for p in ps)
                if self._split is not None:
                    for o in self.pipeline.take_outcomes():
                        self.panes_out.send_raw(o.monitor, self._split.encode(o))
            # kafka-python completes a join of the group only inside one poll: cut short (a
            # zero timeout while source records keep coming), it joins again and again, and
            # every other member with it. While the monitors group is not settled its poll
            # gets up to a second.
            if not _group_stable(self.monitors_in):
                wait = JOIN_POLL_MS
            else:
                wait = 0 if records else 50
            got = self.monitors_in.poll(timeout_ms=wait, max_records=2000)
            outputs = self._fold(got) if got else []
            if not got and self.pipeline.time_based:
                outputs += self.pipeline.tick()
            self.handle(records, outputs)
            self._announce()

    def _fold(self, got: dict[Any, list[Any]]) -> list[dict[str, Any]]:
        got = self._settled(got)
        panes, outcomes = self._decode(got)
        outputs = self.pipeline.fold(panes, time.time())
        perf = self.pipeline.perf
        if perf is not None:
            for name, outs in outcomes.items():
                position = self.pipeline.by_name[name].stream_position
                outputs += perf.fold_outcomes(outs, position)
                self._perf_touched.add(name)
        return outputs

    def _settled(self, got: dict[Any, list[Any]]) -> dict[Any, list[Any]]:
        """The records of panes partitions this process holds with their monitors restored.
        A poll that ran into a rebalance can return records of a partition just assigned (its
        monitors not restored yet: the partition is rewound to them, they come again after
        the restore) or just revoked (left to the next owner, which starts at the committed
        offset)."""
        assert self.monitors_in is not None
        with self._rebalance_lock:
            pending = self._to_restore | self._to_drop
            drop = set(self._to_drop)
        out: dict[Any, list[Any]] = {}
        for tp, recs in got.items():
            if tp.partition in self._owned_partitions and tp.partition not in pending:
                out[tp] = recs
            elif recs and tp.partition not in drop:
                try:
                    self.monitors_in.seek(tp, recs[0].offset)
                except Exception as exc:  # noqa: BLE001 - no longer assigned: not ours
                    log.debug("rewinding %s: %s", tp, exc)
        return out

    def _decode(
        self, got: dict[Any, list[Any]]
    ) -> tuple[dict[str, list[Pane]], dict[str, list[Outcomes]]]:
        """Decode panes and join outcomes of the monitors this process decides, in partition
        order; number the panes' rows in each monitor's stream."""
        out: dict[str, list[Pane]] = {}
        outcomes: dict[str, list[Outcomes]] = {}
        owned = self.pipeline.owned or set()
        split = self._split
        for recs in got.values():
            for r in recs:
                try:
                    if split is not None and split.is_outcomes(r.value):
                        o = split.decode(r.value)
                        if o.monitor in owned:
                            outcomes.setdefault(o.monitor, []).append(o)
                        continue
                    pane = wire.decode(r.value)
                except (ValueError, KeyError, TypeError) as exc:
                    log.error("panes %s/%d@%d: %s; skipped", r.topic, r.partition, r.offset, exc)
                    continue
                stage = self.pipeline.by_name.get(pane.monitor)
                if stage is None or pane.monitor not in owned:
                    continue
                n = len(pane.rows)
                pane.rows.pos = np.arange(
                    stage.stream_position + 1, stage.stream_position + n + 1, dtype=np.int64
                )
                stage.stream_position += n
                out.setdefault(pane.monitor, []).append(pane)
        return out, outcomes

    def _apply_rebalance(self) -> None:
        with self._rebalance_lock:
            drop, self._to_drop = self._to_drop, set()
            restore, self._to_restore = self._to_restore, set()
        owned = self.pipeline.owned
        assert owned is not None
        for k in sorted(drop):
            self._owned_partitions.discard(k)
            names = set(self._by_partition.get(k, []))
            for name in names:
                owned.discard(name)
                self.pipeline.reset_stage(name)
            with self._ckpt_lock:  # the next owner raises them again, under the same ids
                self._staged = [a for a in self._staged if a.get("monitor") not in names]
            log.info("panes partition %d revoked: its monitors are decided elsewhere now", k)
        for k in sorted(restore):
            self._restore_partition(k)
        if drop or restore:
            self._announce(force=True)
        assert self.monitors_in is not None
        with self._rebalance_lock:  # a partition held but paused, and no restore due: resume
            stuck = [
                tp
                for tp in self.monitors_in.paused()
                if tp.partition in self._owned_partitions and tp.partition not in self._to_restore
            ]
            if stuck:
                log.warning("panes partitions %s were left paused; resumed", stuck)
                self.monitors_in.resume(*stuck)

    def _restore_partition(self, k: int) -> None:
        assert self.state_store is not None and self.monitors_in is not None
        tp = TopicPartition(self.panes_topic, k)
        self.monitors_in.pause(tp)
        saved = self.state_store.load(k)
        owned = self.pipeline.owned
        assert owned is not None
        restored = 0
        for name in self._by_partition.get(k, []):
            stage = self.pipeline.reset_stage(name)
            record = saved.get(name)
            if record is not None:
                ok, alerts = monitor_state.restore_monitor(self.pipeline, stage, record)
                restored += ok
                known = {a.get("id") for a in self._staged}
                self._staged += [a for a in alerts if a.get("id") not in known]
            owned.add(name)
        # The restored state covers the panes up to the committed offset (it is written
        # before the offset is committed): fold from there, whatever position the client
        # kept for a partition it held before the rebalance.
        committed = self.monitors_in.committed(tp)
        if committed is None:
            self.monitors_in.seek_to_beginning(tp)
        else:
            self.monitors_in.seek(tp, committed)
        self._owned_partitions.add(k)
        self.monitors_in.resume(tp)
        log.info(
            "panes partition %d assigned: %d monitors (%d restored from %s)",
            k,
            len(self._by_partition.get(k, [])),
            restored,
            self.state_store.topic,
        )

    def _announce(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.members is None:
            return
        try:
            if force or now - self._announced >= ANNOUNCE_S:
                self._announced = now
                self.members.announce(self.pipeline.owned or ())
            if force or now - self._refreshed >= REFRESH_S:
                self._refreshed = now
                self.members.refresh()
        except Exception as exc:  # noqa: BLE001 - the API only loses its pointers
            log.warning("membership announce failed: %s", exc)

    def _elsewhere(self, monitor: str) -> str | None:
        return self.members.decider(monitor) if self.members is not None else None

    # ------------------------------------------------------------------ checkpoints

    def checkpoint(self, *, commit_offsets: bool = True) -> bool:
        """Source side: panes acknowledged, then source offsets committed. Monitor side: the
        state of every changed monitor (with its staged alerts) acknowledged, then the alerts
        handed to the outboxes, then the panes offsets committed."""
        with self._ckpt_lock:
            self._last_ckpt = time.monotonic()
            self._events_since_ckpt = 0
            try:
                if self.dead_letter is not None:
                    self.dead_letter.flush()
                self.audit.flush()
                if self.panes_out is not None:
                    self.panes_out.flush()
                sources = dict(self.pipeline.sources)
                self._save_monitors()
                self._full_checkpoint = False
            except Exception as exc:  # noqa: BLE001 - nothing is committed; retried
                return self._checkpoint_failed(exc)
            self._checkpoint_ok()
            self._hand_over()
        if commit_offsets:
            try:
                if sources:
                    self.source.commit(sources)
                if self.monitors_in is not None and self._owned_partitions:
                    self.monitors_in.commit()
            except Exception as exc:  # noqa: BLE001 - e.g. a rebalance in progress; retried
                log.warning("offset commit failed (%s); the next checkpoint retries", exc)
        return True

    def _save_monitors(self) -> None:
        """The state of every changed monitor this process decides (with its staged alerts),
        and of every changed label join, acknowledged by the broker."""
        store = self.state_store
        if store is None:
            return
        staged: dict[str, list[dict[str, Any]]] = {}
        for a in self._staged:
            staged.setdefault(str(a.get("monitor")), []).append(a)
        wrote = False
        for stage in self.pipeline.stages:
            name = stage.name
            if name not in (self.pipeline.owned or ()):
                continue
            touched = name in self._perf_touched
            if not (self._full_checkpoint or stage.dirty or name in staged or touched):
                continue
            store.save(name, monitor_state.encode_monitor(self.pipeline, stage, staged.get(name)))
            wrote = True
        self._perf_touched.clear()
        if self.joins is not None:
            sources = self.pipeline.sources
            for part in sorted(self.joins.dirty):
                offsets = {k: v for k, v in sources.items() if source_index(k) == part}
                record = monitor_state.encode_join(self.joins, part, offsets)
                store.save(join_key(part), record, partition=part % self.partitions)
                wrote = True
            self.joins.dirty.clear()
        if wrote:
            store.flush()

    # ------------------------------------------------------------------ source partitions

    def _on_assign(self, keys: list[str]) -> None:
        """Label joins of newly held partition indices are restored (with the source offsets
        they cover) before the base seeks the partitions there. Runs on the client's IO
        thread; the state topic is read by a consumer of its own."""
        joins = self.joins
        if joins is not None and self.state_store is not None:
            held = {source_index(k) for k in self._assigned}
            for part in sorted({source_index(k) for k in keys} - held - set(joins.parts)):
                self._restore_join(part)
        super()._on_assign(keys)

    def _restore_join(self, part: int) -> None:
        assert self.joins is not None and self.state_store is not None
        record = self.state_store.load(part % self.partitions).get(join_key(part))
        if record is None:
            self.joins.parts[part] = {}
            return
        offsets = monitor_state.restore_join(self.joins, part, record)
        for key, off in offsets.items():
            self.pipeline.sources[key] = off  # the base seeks there
        log.info("label join of partition %d restored (offsets %s)", part, offsets)

    def _on_revoke(self, keys: list[str]) -> None:
        super()._on_revoke(keys)  # checkpoints (the joins too) and commits
        if self.joins is not None:
            held = {source_index(k) for k in self._assigned}
            for part in {source_index(k) for k in keys} - held:
                self.joins.drop(part)


def _advertised_host(host: str) -> str:
    if host in ("", "0.0.0.0", "::"):
        return socket.gethostname()
    return host

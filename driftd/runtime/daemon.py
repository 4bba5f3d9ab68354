"""``driftd run``: the loop over Kafka with checkpoints, offsets, actions, metrics and HTTP.

Per batch the pipeline folds the events in; alerts are *staged*, the audit log and dead
letters written. A checkpoint is due by time (``state.checkpoint_interval_s``), by count
(``state.checkpoint_events``), right after an alert transition, on a rebalance and at
shutdown. It (1) flushes the dead letters and the audit log, (2) writes every changed monitor
and version state, the position counter, each source partition's next offset *and the staged
alerts* atomically (one manifest, :mod:`driftd.state.checkpoint`), (3) hands the staged alerts
to their actions' durable outboxes, and only then (4) commits the offsets the checkpoint
covers. An alert therefore becomes durable together with the state that raised it: after a
crash, either neither exists (the events are consumed again and decide afresh) or both do (the
restored state is already alerting and the alert is handed to the outbox again under the same
id, which the outbox and receivers de-duplicate). The same transition is never sent under two
ids, and no event is lost or counted twice in a window.

On (re)assignment a partition resumes at the offset stored in the checkpoint, else at the
group's committed offset. Signal handlers only set a flag; the loop finishes the batch in
hand, checkpoints, commits and exits within ``drain_timeout_s``; a second signal forces exit.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import random
import signal
import sys
import threading
import time
from dataclasses import replace
from types import FrameType
from typing import Any

from driftd.actions import build_actions
from driftd.actions.audit import AuditLog
from driftd.actions.deadletter import DeadLetterSink, open_dead_letter
from driftd.actions.payload import log_fields
from driftd.config import Config
from driftd.errors import ConfigError, SourceError, StateError, raise_all
from driftd.metrics import build_registry
from driftd.monitor.outputs import for_actions, webhook_payload
from driftd.monitor.view import Status
from driftd.runtime.checks import problems
from driftd.runtime.console import CalibrationDisplay
from driftd.runtime.http import HttpServer
from driftd.runtime.loop import drive
from driftd.runtime.pipeline import Pipeline, load_specs
from driftd.sources.confluent import ConfluentSource
from driftd.sources.kafka import KafkaSource
from driftd.state.checkpoint import CheckpointStore, check_state_dir
from driftd.types import RawRecord

log = logging.getLogger(__name__)

PUBLISH_S = 0.5  # the status readers see is at most this old while events flow


def warm_up_kernels() -> None:
    from driftd import kernels

    kernels.warm_up()


class Daemon:
    def __init__(
        self, cfg: Config, *, worker: int | None = None, drain_timeout_s: float = 10.0
    ) -> None:
        self.cfg = cfg
        self.drain_timeout_s = drain_timeout_s
        self.stop_event = threading.Event()
        self._signals = 0
        raise_all(problems(cfg))  # the checks `driftd check-config` makes, all at once
        # thresholds calibrated at start show progress (a bar on a terminal, else log lines)
        self.pipeline = Pipeline(cfg, load_specs(cfg, progress=CalibrationDisplay()))
        state_dir = cfg.state.dir
        check_state_dir(state_dir)
        suffix = f"worker-{worker}" if worker is not None else ""
        # Each process keeps its own state: the checkpoint is one consistent snapshot of it.
        ckpt_dir = state_dir / "checkpoints" / suffix if suffix else state_dir / "checkpoints"
        self.store = CheckpointStore(ckpt_dir)
        self.actions = build_actions(
            cfg.actions, state_dir / "outbox" / suffix if suffix else state_dir / "outbox"
        )
        self.dead_letter: DeadLetterSink | None = None
        self.audit = AuditLog(
            state_dir / (f"audit-worker-{worker}.jsonl" if worker is not None else "audit.jsonl"),
            every_evaluation=cfg.state.audit_evaluations,
            max_bytes=cfg.state.audit_max_bytes,
            backups=cfg.state.audit_backups,
        )
        self.source: KafkaSource | ConfluentSource
        if cfg.source.type == "confluent":
            self.source = ConfluentSource(
                cfg.kafka, on_assign=self._on_assign, on_revoke=self._on_revoke
            )
        else:
            self.source = KafkaSource(
                cfg.kafka, on_assign=self._on_assign, on_revoke=self._on_revoke
            )
        self._lag: dict[tuple[str, int], int] = {}
        self._ready = False
        self._ready_reason = "starting"
        self._state_error: str | None = None
        self._last_ckpt = time.monotonic()
        self._events_since_ckpt = 0
        self._staged: list[dict[str, Any]] = []  # alerts not yet handed to their outboxes
        self._blocked = False  # an outbox is full: consumption paused
        self._assigned: set[str] = set()  # partitions this process holds
        self._full_checkpoint = False  # after a failed write: rewrite every entry
        self._ckpt_lock = threading.RLock()  # the loop, rebalance callbacks and the watchdog
        self._poll_since: float | None = None  # monotonic time the current poll started
        self._status = Status()
        self._published = 0.0
        self._ckpt_failures = 0
        self._restore()
        self.registry = build_registry(lambda: self._status, self.actions, lambda: dict(self._lag))
        host, port = cfg.http.host_port
        h = cfg.http
        try:
            self.http = HttpServer(
                host,
                port,
                lambda: self._status,
                self.registry,
                self.readiness,
                token=h.token.resolve("http.token").decode() if h.token is not None else None,
                max_connections=h.max_connections,
                request_timeout_s=h.request_timeout_s,
            )
        except OSError as exc:
            raise ConfigError("http.listen", f"cannot listen on {h.listen}: {exc}") from None

    # ------------------------------------------------------------------ state

    def _restore(self) -> None:
        loaded = self.store.open()
        if loaded is None:
            log.info(
                "no checkpoint in %s: starting from the group's committed offsets", self.store.dir
            )
            self._status = self.pipeline.status()
            return
        self.pipeline.restore(loaded.meta, self.store.load_entry)
        # Alerts that were durable but maybe not yet handed over: again, under the same ids.
        self._staged = [a for a in loaded.meta.get("alerts", []) if isinstance(a, dict)]
        log.info(
            "restored checkpoint %d: position %d, %d partitions, %d alerts to hand over",
            loaded.generation,
            self.pipeline.position,
            len(self.pipeline.sources),
            len(self._staged),
        )
        self._publish()

    def checkpoint(self, *, commit_offsets: bool = True) -> bool:
        """Persist (atomically) → hand staged alerts to the outboxes → commit offsets.

        On a state-directory failure nothing is committed (the events stay uncommitted in
        Kafka, so nothing is lost), readiness turns false with the reason, and the next
        checkpoint retries with every entry; consumption goes on.
        """
        with self._ckpt_lock:
            self._last_ckpt = time.monotonic()
            self._events_since_ckpt = 0
            if self.pipeline.holding:  # steps still evaluating: their lines first
                self._absorb(self.pipeline.drain())
            try:
                if self.dead_letter is not None:
                    self.dead_letter.flush()
                self.audit.flush()
                meta, entries, removed = self.pipeline.checkpoint(everything=self._full_checkpoint)
                meta["alerts"] = list(self._staged)
                self.store.commit(meta, entries, removed)
                self._full_checkpoint = False
            except (StateError, OSError, TypeError, ValueError) as exc:
                return self._checkpoint_failed(exc)
            self._checkpoint_ok()
            self._hand_over()
            offsets = dict(meta["sources"])
        if commit_offsets and offsets:
            try:
                self.source.commit(offsets)
            except Exception as exc:  # noqa: BLE001 - e.g. a rebalance in progress; retried
                log.warning("offset commit failed (%s); the next checkpoint retries", exc)
        return True

    def _hand_over(self) -> None:
        """Durable alerts into their actions' outboxes (which de-duplicate by id), in order.
        An outbox that is full holds the rest back: they stay staged — in every checkpoint
        until handed over — and consumption pauses (back-pressure, never a dropped alert)."""
        done = 0
        for alert in self._staged:
            mon = self.cfg.monitor(alert["monitor"])
            payload = webhook_payload(alert)
            targets = [self.actions[name] for name in mon.actions]
            if not all(a.accepts(payload["id"]) for a in targets):
                break
            for a in targets:
                if not a.submit(payload):  # unwritable outbox: logged and counted there
                    log.error(
                        "action %s could not queue alert %s",
                        a.name,
                        payload["id"],
                        extra=log_fields(a.name, payload["id"], payload),
                    )
            done += 1
        self._staged = self._staged[done:]
        self._set_backpressure(bool(self._staged))

    def _set_backpressure(self, on: bool) -> None:
        if on == self._blocked:
            return
        self._blocked = on
        if on:
            log.error(
                "a webhook outbox is full: %d alerts wait (kept in the checkpoint); consumption"
                " pauses until the outbox has room",
                len(self._staged),
            )
            self.source.pause()
        else:
            log.warning("webhook outboxes have room again: consumption resumes")
            self.source.resume()

    # ------------------------------------------------------------------ lifecycle

    def readiness(self) -> tuple[bool, str]:
        if self._state_error is not None:
            return False, self._state_error
        if self._blocked:
            return False, f"webhook outbox full: {len(self._staged)} alerts waiting"
        if self._ready and not self._assigned:
            return False, "no partitions assigned (yet)"
        return self._ready, self._ready_reason

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1:
            log.error("second signal: exiting now without draining")
            os._exit(1)
        log.info("signal %d received: draining", signum)
        self.stop_event.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        # `kill -USR1 <pid>` prints every thread's stack to stderr (diagnosing a stuck loop).
        faulthandler.register(signal.SIGUSR1, all_threads=True)

    def _open_source(self) -> bool:
        self._ready_reason = "connecting to Kafka"
        delay = 0.5
        while not self.stop_event.is_set():
            try:
                self.source.open()
                return True
            except SourceError as exc:
                self._ready_reason = f"waiting for Kafka: {exc}"
                log.error("%s; retrying in %.1fs", exc, delay)
                self.stop_event.wait(delay * (0.5 + random.random() / 2))
                delay = min(delay * 2, 30.0)
        return False

    def run(self) -> int:
        self.http.start()
        log.info("listening on %s (metrics, health, API)", self.cfg.http.listen)
        for a in self.actions.values():
            a.start()
        if self._staged:
            self._hand_over()
        try:
            # Kernels load (from numba's cache) on a thread while the source connects and
            # joins its group; consuming starts once both are done.
            warm_errors: list[BaseException] = []

            def warm() -> None:
                try:
                    warm_up_kernels()
                    if self.pipeline.perf is not None:
                        from driftd import performance

                        performance.warm_up()
                except BaseException as exc:  # noqa: BLE001 - re-raised on the main thread
                    warm_errors.append(exc)

            warming = threading.Thread(target=warm, name="driftd-warm-up", daemon=True)
            warming.start()
            self.dead_letter = open_dead_letter(self.cfg.dead_letter, self.cfg.kafka)
            self.pipeline.collect_rejects = self.dead_letter is not None
            opened = self._open_source()
            self._ready_reason = "compiling kernels"
            warming.join()
            if warm_errors:
                raise warm_errors[0]
            if not opened:
                return 0
            self._ready = True
            self._ready_reason = "consuming"
            threading.Thread(target=self._watchdog, name="driftd-watchdog", daemon=True).start()
            log.info(
                "consuming %s from %s as group %s",
                ",".join(self.cfg.kafka.topics),
                ",".join(self.cfg.kafka.bootstrap_servers),
                self.cfg.kafka.group_id,
            )
            self._consume()
            self.checkpoint()
        finally:
            self._ready = False
            self._ready_reason = "stopping"
            self._close_sources()
            if self.dead_letter is not None:
                self.dead_letter.close()
            self.audit.close()
            deadline = time.monotonic() + self.drain_timeout_s
            for a in self.actions.values():
                a.flush(max(0.0, min(2.0, deadline - time.monotonic())))
                a.stop(max(0.1, deadline - time.monotonic()))
            self.http.stop()
        s = self.pipeline.summary()
        log.info(
            "stopped: %d events read, %d accepted, rejected %s",
            s["events"],
            s["accepted"],
            s["rejected"],
        )
        return 0

    # ------------------------------------------------------------------ the loop (sink)

    def _consume(self) -> None:
        """The loop, until stopped (one process: source → pipeline → this sink)."""
        k = self.cfg.kafka
        self.pipeline.defer_evaluations()  # steps evaluated while the next batch is read
        for _ in drive(
            self.source,
            self.pipeline,
            self,
            max_records=k.max_poll_records,
            poll_timeout_ms=k.poll_timeout_ms,
            should_stop=self.stop_event.is_set,
        ):
            pass

    def _close_sources(self) -> None:
        self.source.close()

    def _checkpoint_failed(self, exc: Exception) -> bool:
        """Nothing was committed; the next checkpoint writes everything and retries."""
        self._full_checkpoint = True
        self._ckpt_failures += 1
        if self._state_error is None:
            log.error("CHECKPOINT FAILED, offsets not committed: %s", exc)
        self._state_error = f"checkpoint failing: {exc}"
        return False

    def _checkpoint_ok(self) -> None:
        if self._state_error is not None:
            log.warning("checkpoints work again")
            self._state_error = None

    def polling(self, active: bool) -> None:
        self._poll_since = time.monotonic() if active else None

    def handle(
        self, records: list[RawRecord] | Any, outputs: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Act on a batch: audit, dead letters, stage alerts; checkpoint when due."""
        alerted = self._absorb(outputs)
        if self.dead_letter is not None:
            rejected = self.pipeline.take_rejects()
            if rejected:
                self.dead_letter.write(rejected)
        self._events_since_ckpt += len(records)
        if self._blocked:
            with self._ckpt_lock:
                self._hand_over()  # room again? (outboxes drain on their own threads)
        now = time.monotonic()
        st = self.cfg.state
        if (
            alerted
            or now - self._last_ckpt >= st.checkpoint_interval_s
            or self._events_since_ckpt >= st.checkpoint_events
        ):
            self.checkpoint()
        if outputs or now - self._published >= PUBLISH_S:
            self._published = now
            self._publish()
            self._lag = self.source.lag()
        return outputs

    def _absorb(self, outputs: list[dict[str, Any]]) -> bool:
        """Audit the lines and stage their alerts (warnings are audited and counted, never
        sent to rollback actions); True if an alert was staged."""
        if outputs:
            self.audit.write(outputs)
        alerted = False
        for out in outputs:
            if for_actions(out):
                self._staged.append(out)
                alerted = True
        return alerted

    def closing(self) -> list[dict[str, Any]]:
        return []

    def _publish(self) -> None:
        """A fresh status for readers (HTTP, metrics): the stages' plus the process's own."""
        self._status = replace(
            self.pipeline.status(),
            checkpoint_discarded=self.store.bad_entries,
            checkpoint_failures=self._ckpt_failures,
            http_refused=self.http.refused if hasattr(self, "http") else 0,
        )

    def _watchdog(self) -> None:
        """Detect a hung Kafka client (kafka-python 3.0 can block inside ``poll`` forever
        after a broker restart) and recover by re-executing the process.

        It is armed only while the loop is inside ``poll``: then the pipeline's state is
        between batches and consistent. It persists under the checkpoint lock (no other
        checkpoint can interleave) without committing offsets; the new process image
        restores the checkpoint and resumes at its offsets, so nothing is lost or counted
        twice. Webhook outboxes are durable already.
        """
        limit = self.cfg.kafka.stall_restart_s
        while not self.stop_event.wait(min(5.0, limit / 4)):
            since = self._poll_since
            if since is None or time.monotonic() - since < limit:
                continue
            with self._ckpt_lock:
                since = self._poll_since
                if since is None or time.monotonic() - since < limit:
                    continue
                log.error(
                    "the Kafka client has not returned from poll for %.0fs; persisting state"
                    " and restarting the process",
                    time.monotonic() - since,
                )
                faulthandler.dump_traceback(all_threads=True)
                if not self.checkpoint(commit_offsets=False):
                    log.error(
                        "could not persist state before restarting (the older checkpoint stands)"
                    )
                for a in self.actions.values():
                    a.stop(2.0)
                self.http.stop()
                sys.stderr.flush()
                os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])

    # ------------------------------------------------------------------ rebalances

    def _on_revoke(self, keys: list[str]) -> None:
        self._assigned.difference_update(keys)
        held = [k for k in keys if k in self.pipeline.sources]
        self.checkpoint()
        self.pipeline.revoke(keys)
        for k in held:
            self.source.forget(k)

    def _on_assign(self, keys: list[str]) -> None:
        self.pipeline.assign(keys)
        self._assigned.update(keys)
        if self._blocked:
            self.source.pause()  # newly assigned partitions wait too
        for key in keys:
            off = self.pipeline.sources.get(key)
            if off is None:
                log.info(
                    "%s: not in the checkpoint; starting from the group's committed offset",
                    key,
                    extra={"partition": key},
                )
                continue
            self.source.seek(key, off)
            log.info(
                "%s: resuming at offset %d (checkpoint)", key, off, extra={"partition": key}
            )

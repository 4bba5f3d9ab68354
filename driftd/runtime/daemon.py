"""`driftd run`: the loop wiring source → engine → actions, checkpoints, metrics and HTTP.

Per micro-batch: fold the events into state, then *act* (alerts into the durable outbox,
rejected events to the dead-letter destination). A checkpoint is due by time
(``state.checkpoint_interval_s``), by count (``state.checkpoint_events``), right after an alert
transition, on a rebalance and at shutdown; it *persists* every changed partition atomically and
only then *commits* the Kafka offsets those checkpoints cover. On (re)assignment a partition's
checkpoint is restored and the consumer seeks to the offset stored in it, so window state is
rebuilt exactly: no event is lost and none is counted twice, whatever the crash point.

Signal handlers only set a flag; the loop finishes the batch in hand, checkpoints, commits and
exits within ``drain_timeout_s``; a second signal forces exit.
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
from pathlib import Path
from types import FrameType
from typing import Any

from driftd.actions.audit import AuditLog
from driftd.actions.deadletter import DeadLetterSink, open_dead_letter
from driftd.actions.webhook import WebhookAction
from driftd.config import Config, WebhookActionConfig
from driftd.errors import ConfigError, SourceError, StateError
from driftd.metrics import build_registry
from driftd.runtime.engine import Engine
from driftd.runtime.http import HttpServer
from driftd.sources.confluent import ConfluentSource
from driftd.sources.kafka import KafkaSource
from driftd.state.checkpoint import PERFORMANCE_KEY, CheckpointStore

log = logging.getLogger(__name__)


def check_state_dir(path: Path) -> None:
    """Create the state directory and prove it is writable, or raise StateError."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-probe-{os.getpid()}"
        with open(probe, "wb") as fh:
            fh.write(b"ok")
            fh.flush()
            os.fsync(fh.fileno())
        probe.unlink()
    except OSError as exc:
        raise StateError(f"state.dir {path} is not writable: {exc.strerror or exc}") from exc


def build_actions(cfg: Config, outbox_root: Path) -> dict[str, WebhookAction]:
    actions: dict[str, WebhookAction] = {}
    for name, a in cfg.actions.items():
        assert isinstance(a, WebhookActionConfig)
        try:
            secret = a.secret.resolve() if a.secret is not None else None
        except ConfigError as exc:
            raise ConfigError(f"actions.{name}.{exc.key}", exc.problem) from None
        actions[name] = WebhookAction(
            name=name,
            url=a.url,
            secret=secret,
            format=a.format,
            outbox_dir=outbox_root / name,
            timeout_s=a.timeout_s,
            backoff_initial_s=a.backoff_initial_s,
            backoff_max_s=a.backoff_max_s,
            dry_run=a.dry_run,
        )
    return actions


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
        self.engine = Engine(cfg)
        state_dir = cfg.state.dir
        check_state_dir(state_dir)
        self.store = CheckpointStore(state_dir / "checkpoints")
        suffix = f"worker-{worker}" if worker is not None else ""
        # Performance state is per process (labels and predictions meet in it), so each
        # worker keeps its own entry beside the per-partition checkpoints.
        self.perf_key = PERFORMANCE_KEY + (f".{suffix}" if suffix else "")
        self._restore_perf()
        if self.engine.perf is not None and worker is not None:
            log.warning(
                "performance monitoring with --workers: a label is joined only by the worker "
                "that consumed its prediction; labels of predictions consumed elsewhere count "
                "as orphaned (run one worker for performance monitors)"
            )
        self.actions = build_actions(
            cfg, state_dir / "outbox" / suffix if suffix else state_dir / "outbox"
        )
        self.dead_letter: DeadLetterSink | None = None
        self.audit = AuditLog(
            state_dir / (f"audit-worker-{worker}.jsonl" if worker is not None else "audit.jsonl")
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
        self._heartbeat = time.monotonic()  # the loop's last sign of life
        self.registry = build_registry(self.engine, self.actions, lambda: dict(self._lag))
        host, port = cfg.http.host_port
        self.http = HttpServer(host, port, self.engine, self.registry, self.readiness)

    def _restore_perf(self) -> None:
        perf = self.engine.perf
        if perf is None:
            return
        saved = self.store.load(self.perf_key)
        if saved is not None:
            perf.restore(*saved)  # unusable parts are logged and started fresh, never fatal

    def _save_perf(self) -> None:
        """Persist the performance state (before any partition checkpoint: see
        driftd.monitor.performance for why that order keeps the join exact)."""
        perf = self.engine.perf
        if perf is None or not perf.dirty:
            return
        with self.engine.lock:
            meta, arrays = perf.snapshot()
            perf.dirty = False
        try:
            self.store.save(self.perf_key, meta, arrays)
        except BaseException:
            perf.dirty = True
            raise

    # ------------------------------------------------------------------ lifecycle

    def readiness(self) -> tuple[bool, str]:
        if self._state_error is not None:
            return False, self._state_error
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
        try:
            # Kernels load (from numba's cache) on a thread while the source connects and
            # joins its group; consuming starts once both are done.
            warm_errors: list[BaseException] = []

            def warm() -> None:
                try:
                    warm_up_kernels()
                    if self.engine.perf is not None:
                        from driftd import performance

                        performance.warm_up()
                except BaseException as exc:  # noqa: BLE001 - re-raised on the main thread
                    warm_errors.append(exc)

            warming = threading.Thread(target=warm, name="driftd-warm-up", daemon=True)
            warming.start()
            self.dead_letter = open_dead_letter(self.cfg.dead_letter, self.cfg.kafka)
            self.engine.collect_rejects = self.dead_letter is not None
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
            self._loop()
            self.checkpoint()
        finally:
            self._ready = False
            self._ready_reason = "stopping"
            self.source.close()
            if self.dead_letter is not None:
                self.dead_letter.close()
            self.audit.close()
            deadline = time.monotonic() + self.drain_timeout_s
            for a in self.actions.values():
                a.flush(max(0.0, min(2.0, deadline - time.monotonic())))
                a.stop(max(0.1, deadline - time.monotonic()))
            self.http.stop()
        s = self.engine.summary()
        log.info(
            "stopped: %d events read, %d accepted, rejected %s",
            s["events"],
            s["accepted"],
            s["rejected"],
        )
        return 0

    # ------------------------------------------------------------------ the loop

    def _loop(self) -> None:
        k = self.cfg.kafka
        st = self.cfg.state
        last_lag = 0.0
        while not self.stop_event.is_set():
            self._heartbeat = time.monotonic()
            records = self.source.poll(k.max_poll_records, k.poll_timeout_ms)
            alerted = False
            if records:
                outputs = self.engine.process(records)
                alerted = self._act(outputs)
                self._events_since_ckpt += len(records)
            now = time.monotonic()
            if (
                alerted
                or now - self._last_ckpt >= st.checkpoint_interval_s
                or self._events_since_ckpt >= st.checkpoint_events
            ):
                self.checkpoint()
            if now - last_lag >= 1.0:
                last_lag = now
                self._lag = self.source.lag()

    def _act(self, outputs: list[dict[str, Any]]) -> bool:
        """Hand alerts to their actions (durable outbox) and rejects to the dead-letter
        destination. Returns True when an alert transition happened."""
        alerted = False
        self.audit.write(outputs)
        for out in outputs:
            if out["type"] != "alert" or out["event"] == "drift.warning":
                continue  # warnings are audited and counted, never sent to rollback actions
            alerted = True
            mon = self.cfg.monitor(out["monitor"])
            payload = Engine.webhook_payload(out)
            for name in mon.actions:
                if not self.actions[name].submit(payload):
                    log.error("action %s could not queue alert %s", name, payload["id"])
        if self.dead_letter is not None:
            rejected = self.engine.take_rejects()
            if rejected:
                self.dead_letter.write(rejected)
        return alerted

    def _watchdog(self) -> None:
        """Detect a hung Kafka client (kafka-python 3.0 can block inside ``poll`` forever
        after a broker restart) and recover by re-executing the process.

        The loop only blocks in ``poll``, between micro-batches, so the engine's state is
        consistent: it is persisted first; the new process image restores every partition from
        its checkpoint and seeks to the stored offsets, so nothing is lost or counted twice.
        Webhook outboxes are durable already.
        """
        limit = self.cfg.kafka.stall_restart_s
        while not self.stop_event.wait(min(5.0, limit / 4)):
            stalled = time.monotonic() - self._heartbeat
            if stalled < limit:
                continue
            log.error(
                "the Kafka client has not returned from poll for %.0fs; persisting state and "
                "restarting the process",
                stalled,
            )
            faulthandler.dump_traceback(all_threads=True)
            self._persist_only()
            for a in self.actions.values():
                a.stop(2.0)
            self.http.stop()
            sys.stderr.flush()
            os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])

    def _persist_only(self) -> None:
        try:
            self._persist(None)
        except Exception:  # the restart goes ahead: the older checkpoint is still consistent
            log.exception("could not persist state before restarting")

    def _persist(self, keys: list[str] | None) -> None:
        """Write the dead letters, the audit log, the performance state and every changed
        partition (all, or ``keys``) to disk: the "persist" of act → persist → commit."""
        if self.dead_letter is not None:
            self.dead_letter.flush()
        self.audit.flush()
        self._save_perf()
        with self.engine.lock:
            snaps = [
                (ps, *self.engine.snapshot_partition(ps.key))
                for key, ps in self.engine.partitions.items()
                if (keys is None or key in keys) and ps.dirty
            ]
        for ps, meta, arrays in snaps:
            self.store.save(ps.key, meta, arrays)
            ps.dirty = False

    # ------------------------------------------------------------------ checkpoints

    def checkpoint(self, keys: list[str] | None = None) -> bool:
        """Persist changed partitions (all, or ``keys``), then commit their offsets.

        On a state-directory failure nothing is committed (the events stay uncommitted in
        Kafka, so nothing is lost), readiness turns false with the reason, and the next
        checkpoint retries; consumption goes on.
        """
        self._last_ckpt = time.monotonic()
        self._events_since_ckpt = 0
        self._heartbeat = time.monotonic()  # the loop's last sign of life
        try:
            offsets: dict[str, int] = {}
            self._persist(keys)
            # Every clean partition's checkpoint covers its next offset: commit them all, so a
            # commit that failed earlier (broker away, rebalance) is retried even when nothing
            # new arrived; the source skips offsets already committed.
            with self.engine.lock:
                for key, ps in self.engine.partitions.items():
                    if (
                        (keys is None or key in keys)
                        and not ps.dirty
                        and ps.next_offset is not None
                    ):
                        offsets[key] = ps.next_offset
        except (StateError, OSError, TypeError, ValueError) as exc:
            if self._state_error is None:
                log.error("CHECKPOINT FAILED, offsets not committed: %s", exc)
            self._state_error = f"checkpoint failing: {exc}"
            return False
        if self._state_error is not None:
            log.warning("checkpoints work again")
            self._state_error = None
        if offsets:
            try:
                self.source.commit(offsets)
            except Exception as exc:  # noqa: BLE001 - e.g. a rebalance in progress; retried
                log.warning("offset commit failed (%s); the next checkpoint retries", exc)
        return True

    def _on_revoke(self, keys: list[str]) -> None:
        held = [k for k in keys if k in self.engine.partitions]
        self.checkpoint(held)
        for k in held:
            self.engine.release(k)
            self.source.forget(k)

    def _on_assign(self, keys: list[str]) -> None:
        for key in keys:
            if key in self.engine.partitions:
                continue
            saved = self.store.load(key)
            if saved is None:
                log.info("%s: no checkpoint; starting from the group's committed offset", key)
                continue
            meta, arrays = saved
            ps = self.engine.restore_partition(key, meta, arrays)
            self.engine.adopt(ps)
            if ps.next_offset is not None:
                self.source.seek(key, ps.next_offset)
            log.info(
                "restored %s from checkpoint: %d events, %d monitor versions, resuming at %s",
                key,
                ps.events,
                len(ps.versions),
                ps.next_offset,
            )

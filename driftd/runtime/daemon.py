"""`driftd run`: the loop wiring source → engine → actions, metrics and HTTP.

Order per micro-batch (STYLE.md): fold events into state, act (alerts go to the durable
outbox), then commit Kafka offsets. Signal handlers only set a flag; the loop finishes the
batch in hand, commits and exits within ``drain_timeout_s``; a second signal forces exit.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from driftd.actions.webhook import WebhookAction
from driftd.config import Config, WebhookActionConfig
from driftd.errors import SourceError, StateError
from driftd.metrics import build_registry
from driftd.runtime.engine import Engine
from driftd.runtime.http import HttpServer
from driftd.sources.kafka import KafkaSource

log = logging.getLogger(__name__)


def check_state_dir(path: Path) -> None:
    """Create the state directory and prove it is writable, or raise StateError."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-probe"
        with open(probe, "wb") as fh:
            fh.write(b"ok")
            fh.flush()
            os.fsync(fh.fileno())
        probe.unlink()
    except OSError as exc:
        raise StateError(f"state.dir {path} is not writable: {exc.strerror or exc}") from exc


def build_actions(cfg: Config, state_dir: Path) -> dict[str, WebhookAction]:
    actions: dict[str, WebhookAction] = {}
    for name, a in cfg.actions.items():
        assert isinstance(a, WebhookActionConfig)
        actions[name] = WebhookAction(
            name=name,
            url=a.url,
            secret=a.secret.resolve() if a.secret is not None else None,
            format=a.format,
            outbox_dir=state_dir / "outbox" / name,
            timeout_s=a.timeout_s,
            backoff_initial_s=a.backoff_initial_s,
            backoff_max_s=a.backoff_max_s,
            dry_run=a.dry_run,
        )
    return actions


def warm_up_kernels() -> None:
    from driftd import kernels

    warm = getattr(kernels, "warm_up", None)
    if warm is not None:
        warm()


class Daemon:
    def __init__(self, cfg: Config, *, drain_timeout_s: float = 10.0) -> None:
        self.cfg = cfg
        self.drain_timeout_s = drain_timeout_s
        self.stop_event = threading.Event()
        self._signals = 0
        self.engine = Engine(cfg)
        self.state_dir = cfg.state.dir
        check_state_dir(self.state_dir)
        self.actions = build_actions(cfg, self.state_dir)
        self.source = KafkaSource(cfg.kafka)
        self._lag: dict[tuple[str, int], int] = {}
        self._ready = False
        self._ready_reason = "starting"
        self.registry = build_registry(self.engine, self.actions, lambda: dict(self._lag))
        host, port = cfg.http.host_port
        self.http = HttpServer(host, port, self.engine, self.registry, self.readiness)

    # ------------------------------------------------------------------ lifecycle

    def readiness(self) -> tuple[bool, str]:
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

    def _open_source(self) -> bool:
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
            self._ready_reason = "compiling kernels"
            warm_up_kernels()
            if not self._open_source():
                return 0
            self._ready = True
            self._ready_reason = "consuming"
            log.info(
                "consuming %s from %s as group %s",
                ",".join(self.cfg.kafka.topics),
                ",".join(self.cfg.kafka.bootstrap_servers),
                self.cfg.kafka.group_id,
            )
            self._loop()
        finally:
            self._ready = False
            self._ready_reason = "stopping"
            self.source.close()
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

    def _loop(self) -> None:
        k = self.cfg.kafka
        last_lag = 0.0
        while not self.stop_event.is_set():
            records = self.source.poll(k.max_poll_records, k.poll_timeout_ms)
            if records:
                outputs = self.engine.process(records)
                self._act(outputs)
                self.source.commit()
            now = time.monotonic()
            if now - last_lag >= 1.0:
                last_lag = now
                self._lag = self.source.lag()

    def _act(self, outputs: list[dict[str, Any]]) -> None:
        for out in outputs:
            if out["type"] != "alert":
                continue
            mon = self.cfg.monitor(out["monitor"])
            payload = Engine.webhook_payload(out)
            for name in mon.actions:
                action = self.actions[name]
                if not action.submit(payload):
                    log.error(
                        "action %s could not queue alert %s (outbox full)", name, payload["id"]
                    )

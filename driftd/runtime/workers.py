"""`driftd run --workers N`: N processes in one consumer group, in scale-out mode, supervised.

Each worker is a full `driftd run` process with ``scale_out.enabled`` (both stages; own HTTP
listener on the configured port + i, own webhook outbox and audit log under
``state.dir/…/worker-i``): partition stages publish panes to the internal topic and each
monitor is decided by one worker, its state in the internal state topic, so a monitor moves
between workers with rebalances (see driftd.runtime.scaled). The supervisor forwards
SIGTERM/SIGINT, waits for the workers to drain, and restarts a worker that dies unexpectedly
(with backoff); a worker whose supervisor is gone drains and exits.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from types import FrameType

from driftd.config import Config

log = logging.getLogger(__name__)


def _worker_cmd(args: argparse.Namespace, cfg: Config, i: int) -> list[str]:
    host, port = cfg.http.host_port
    listen = f"{host}:{port + i if port else 0}"
    cmd = [
        sys.executable,
        "-m",
        "driftd",
        "--log-level",
        args.log_level,
        "--log-format",
        args.log_format,
        "run",
        "-c",
        args.config,
        "--worker",
        str(i),
        "--listen",
        listen,
        "--state-dir",
        str(cfg.state.dir),
    ]
    if args.bootstrap_servers:
        cmd += ["--bootstrap-servers", args.bootstrap_servers]
    if args.group_id:
        cmd += ["--group-id", args.group_id]
    return cmd


def watch_supervisor(stop: threading.Event, interval_s: float = 1.0) -> None:
    """In a worker: drain and exit once the supervisor is gone (killed with SIGKILL, say).
    An orphaned worker would otherwise keep consuming, unsupervised, and hold its port, so a
    restarted supervisor's worker could not listen there."""
    parent = os.getppid()

    def watch() -> None:
        while not stop.wait(interval_s):
            if os.getppid() != parent:
                log.error("the supervisor (pid %d) is gone: draining and exiting", parent)
                stop.set()
                return

    threading.Thread(target=watch, name="driftd-supervisor-watch", daemon=True).start()


def supervise(args: argparse.Namespace, cfg: Config) -> int:
    stop = threading.Event()
    n = int(args.workers)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    env = {**os.environ, "DRIFTD_SCALE_OUT__ENABLED": "true"}
    procs: list[subprocess.Popen[bytes]] = [
        subprocess.Popen(_worker_cmd(args, cfg, i), env=env) for i in range(n)
    ]
    log.info("started %d workers: pids %s", n, ", ".join(str(p.pid) for p in procs))
    backoff = [1.0] * n
    while not stop.is_set():
        for i, p in enumerate(procs):
            rc = p.poll()
            if rc is None:
                continue
            log.error(
                "worker %d (pid %d) exited with %d; restarting in %.0fs", i, p.pid, rc, backoff[i]
            )
            if stop.wait(backoff[i]):
                break
            backoff[i] = min(backoff[i] * 2, 30.0)
            procs[i] = subprocess.Popen(_worker_cmd(args, cfg, i), env=env)
        stop.wait(0.2)
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    worst = 0
    for p in procs:
        try:
            rc = p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
        worst = max(worst, rc if rc >= 0 else 1)
    return worst

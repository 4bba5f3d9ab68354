"""Shared helpers for driftd's tests: configs, profiles and seeded streams on disk."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
import yaml

from driftd.cli import main
from driftd.demo.credit import generate

CREDIT_FEATURES: dict[str, dict[str, Any]] = {
    "income": {"kind": "numeric", "test": "ks", "threshold": 0.001},
    "age": {"kind": "numeric", "test": "ks", "threshold": 0.001},
    "debt_ratio": {"kind": "numeric", "test": "ks", "threshold": 0.001},
    "region": {"kind": "categorical", "test": "chi2", "threshold": 0.001},
    "employment": {"kind": "categorical", "test": "chi2", "threshold": 0.001},
}


def credit_config(
    tmp: Path,
    *,
    profile: Path,
    bootstrap: str = "127.0.0.1:9",
    topic: str = "predictions",
    group: str = "driftd-test",
    webhook_url: str | None = None,
    window: dict[str, Any] | None = None,
    policy: dict[str, Any] | None = None,
    prediction: dict[str, Any] | None = None,
    features: dict[str, dict[str, Any]] | None = None,
    listen: str = "127.0.0.1:0",
) -> Path:
    mon: dict[str, Any] = {
        "name": "credit",
        "model": "credit-scoring",
        "reference": {"type": "profile", "path": str(profile)},
        "window": window or {"type": "sliding", "events": 2000, "step": 500},
        "features": features or CREDIT_FEATURES,
        "prediction": prediction or {"kind": "numeric", "test": "psi", "threshold": 0.2},
        "policy": policy or {"min_events": 1000, "consecutive": 2, "cooldown_s": 0},
    }
    cfg: dict[str, Any] = {
        "kafka": {
            "stall_restart_s": 15,
            "session_timeout_ms": 10_000,
            "bootstrap_servers": [bootstrap],
            "topics": [topic],
            "group_id": group,
            "poll_timeout_ms": 100,
        },
        "monitors": [mon],
        "http": {"listen": listen},
        "state": {"dir": str(tmp / "state"), "checkpoint_interval_s": 1},
    }
    if webhook_url is not None:
        mon["actions"] = ["rollback"]
        cfg["actions"] = {
            "rollback": {
                "type": "webhook",
                "url": webhook_url,
                "secret": {"env": "DRIFTD_TEST_SECRET"},
                "backoff_initial_s": 0.05,
                "backoff_max_s": 0.5,
            }
        }
    p = tmp / "driftd.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def write_lines(path: Path, lines: Iterable[bytes]) -> Path:
    with open(path, "wb") as fh:
        for line in lines:
            fh.write(line + b"\n")
    return path


def build_credit_profile(tmp: Path, events: int = 20_000, seed: int = 1) -> Path:
    """Reference profile from seeded v1 traffic, built through the CLI."""
    ref = write_lines(tmp / "reference.jsonl", generate(events, version="v1", seed=seed))
    boot = tmp / "boot.yaml"
    credit_config(tmp, profile=tmp / "unused.json").rename(boot)
    out = tmp / "credit-profile.json"
    assert (
        main(
            [
                "profile",
                "build",
                "-c",
                str(boot),
                "--monitor",
                "credit",
                "--input",
                str(ref),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    return out


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


# ---------------------------------------------------------------- driving `driftd run`

SECRET = b"e2e-test-secret"


def free_port(consecutive: int = 1) -> int:
    """A port the OS says is free; with ``consecutive=n`` one whose next n-1 ports are free
    too (``driftd run --workers n`` listens on port + i)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if all(_bindable(port + i) for i in range(1, consecutive)):
            return port
    raise RuntimeError(f"no {consecutive} consecutive free ports found")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return int(r.status), bytes(r.read())
    except urllib.error.HTTPError as e:
        return int(e.code), e.read()
    except OSError:
        return 0, b""


def wait_until(pred: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def metric_value(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if not (line.startswith(name + "{") or (not labels and line.startswith(name + " "))):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


class Driftd:
    """A `driftd run` process with its log file and HTTP base URL."""

    def __init__(
        self,
        cfg: Path,
        port: int,
        log: Path,
        extra: Iterable[str] = (),
        options: Iterable[str] = (),
    ) -> None:
        """``extra``: arguments of ``run``; ``options``: driftd's own, before ``run``
        (``--log-format json``)."""
        env = {**os.environ, "DRIFTD_TEST_SECRET": SECRET.decode()}
        self.log = log
        self._fh = open(log, "ab")  # noqa: SIM115
        cmd = [sys.executable, "-m", "driftd", *options, "run", "-c", str(cfg)]
        cmd += ["--listen", f"127.0.0.1:{port}", *extra]
        self.proc = subprocess.Popen(cmd, stdout=self._fh, stderr=subprocess.STDOUT, env=env)
        self.base = f"http://127.0.0.1:{port}"

    def get_json(self, path: str) -> Any:
        code, body = http_get(self.base + path)
        assert code == 200, (code, body)
        return orjson.loads(body)

    def ready(self) -> bool:
        return http_get(self.base + "/readyz")[0] == 200

    def metrics(self) -> str:
        return http_get(self.base + "/metrics")[1].decode()

    def terminate(self, timeout_s: float = 20) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        finally:
            self._fh.close()

    def kill(self) -> None:
        """SIGKILL (no drain, no final checkpoint) — also the fixture's cleanup."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if not self._fh.closed:
            self._fh.close()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


class LogLines:
    """Collects records of the ``driftd`` loggers directly (independent of pytest's caplog and
    of whatever an earlier in-process run did to the root logger's level or handlers)."""

    def __init__(self) -> None:
        import logging

        self.records: list[str] = []
        outer = self

        class _H(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                outer.records.append(record.getMessage())

        self._handler = _H(level=logging.DEBUG)
        self._logger = logging.getLogger("driftd")

    @property
    def text(self) -> str:
        return "\n".join(self.records)

    def __enter__(self) -> LogLines:
        import logging

        self._saved = (self._logger.level, self._logger.disabled)
        self._logger.setLevel(logging.DEBUG)
        self._logger.disabled = False
        self._logger.addHandler(self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self._handler)
        self._logger.setLevel(self._saved[0])
        self._logger.disabled = self._saved[1]


# ---------------------------------------------------------------- pipelines in process


def roundtrip(first: Any, cfg: Any, directory: Path, prime: Any = ()) -> Any:
    """A new Pipeline restored from ``first``'s state written through the real checkpoint
    store (every entry; JSON and arrays as on disk). ``prime`` (records) is fed to the new
    pipeline before the restore, e.g. so that its category dictionaries number labels
    differently from the saved ones."""
    from driftd.runtime.pipeline import Pipeline
    from driftd.state.checkpoint import CheckpointStore

    store = CheckpointStore(directory)
    store.open()
    meta, entries, removed = first.checkpoint(everything=True)
    store.commit(meta, entries, removed)
    store.close()
    again = CheckpointStore(directory)
    loaded = again.open()
    assert loaded is not None
    second = Pipeline(cfg)
    if prime:
        second.process(list(prime))
    second.restore(loaded.meta, again.load_entry)
    again.close()
    return second


def registry_of(pipeline: Any) -> Any:
    """The metrics registry over a pipeline's current status (as the daemon publishes it)."""
    from driftd.metrics import build_registry

    return build_registry(pipeline.status)


def api_view(pipeline: Any, monitor: str, version: str | None = None) -> dict[str, Any]:
    """``GET /api/v1/monitors/{monitor}`` of a pipeline's current status."""
    from driftd.monitor.view import monitor_json

    m = pipeline.status().monitor(monitor)
    assert m is not None, monitor
    return monitor_json(m, version)

"""``python -m driftd.demo.sink`` end to end, in a subprocess, fed by a real WebhookAction."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from driftd.actions.webhook import WebhookAction
from driftd.demo.sink import describe

MakeAlert = Callable[..., dict[str, Any]]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def run_sink(secret: bytes) -> Iterator[Callable[..., tuple[subprocess.Popen[str], int]]]:
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str) -> tuple[subprocess.Popen[str], int]:
        env = dict(os.environ, DRIFTD_WEBHOOK_SECRET=secret.decode())
        proc = subprocess.Popen(
            [sys.executable, "-m", "driftd.demo.sink", "--port", "0", *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None
        first = proc.stdout.readline()
        match = re.search(r"127\.0\.0\.1:(\d+)/", first)
        assert match, first + proc.stderr.read() if proc.stderr else first
        return proc, int(match.group(1))

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def _action(tmp_path: Path, port: int, secret: bytes, **kw: Any) -> WebhookAction:
    return WebhookAction(
        name="rollback",
        url=f"http://127.0.0.1:{port}/rollback",
        secret=secret,
        outbox_dir=tmp_path / "outbox",
        backoff_initial_s=0.005,
        backoff_max_s=0.02,
        **kw,
    )


def test_sink_cli_receives_prints_and_exits_after_expect(
    run_sink: Callable[..., tuple[subprocess.Popen[str], int]],
    tmp_path: Path,
    secret: bytes,
    make_alert: MakeAlert,
) -> None:
    out = tmp_path / "got.jsonl"
    proc, port = run_sink("--expect", "2", "--out", str(out))
    action = _action(tmp_path, port, secret)
    action.start()
    try:
        action.submit(make_alert("c1"))
        action.submit(make_alert("c2", type="drift.resolved", rollback_to=None))
        assert action.flush(10.0)
    finally:
        action.stop(5.0)
    stdout, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0, stderr
    assert "drift.detected" in stdout and "monitor=credit" in stdout
    assert "v7 -> rollback to v6" in stdout and "v7 recovered" in stdout
    assert "income: ks statistic=0.12 threshold=0.01" in stdout
    assert "received 2 valid deliveries" in stdout
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [line["id"] for line in lines] == ["c1", "c2"]


def test_sink_cli_rejects_bad_signature_and_stops_on_sigterm(
    run_sink: Callable[..., tuple[subprocess.Popen[str], int]],
    tmp_path: Path,
    make_alert: MakeAlert,
) -> None:
    proc, port = run_sink()
    action = _action(tmp_path, port, b"wrong-secret")
    action.start()
    try:
        action.submit(make_alert())
        assert action.flush(10.0)
    finally:
        action.stop(5.0)
    assert action.outcomes["failed"] == 1  # 401 is a final 4xx
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "401" in stderr
    assert "received 0 valid deliveries" in stdout


def test_sink_cli_requires_the_secret() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DRIFTD_WEBHOOK_SECRET"}
    result = subprocess.run(
        [sys.executable, "-m", "driftd.demo.sink", "--port", "0"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "DRIFTD_WEBHOOK_SECRET" in result.stderr


def test_describe_unwraps_cloudevents(make_alert: MakeAlert) -> None:
    event = {"specversion": "1.0", "type": "io.driftd.drift.detected", "data": make_alert()}
    text = describe(event)
    assert "[cloudevents io.driftd.drift.detected]" in text
    assert "v7 -> rollback to v6" in text
    assert "window: positions 15001..20000 (5000 events)" in text

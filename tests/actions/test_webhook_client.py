"""WebhookAction's HTTP client behaviour against real local servers: a whole-attempt deadline
against a slow-drip receiver, attempts in parallel across versions and in order within one,
redirects never followed, and the configured proxy."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from driftd.actions.webhook import WebhookAction
from driftd.demo.sink import WebhookSink

MakeAlert = Callable[..., dict[str, Any]]
MakeAction = Callable[..., WebhookAction]


class DripServer:
    """Answers every request with a valid 200 whose bytes arrive one every ``gap_s`` seconds:
    each read finishes well within any per-read timeout, the whole answer takes seconds."""

    def __init__(self, gap_s: float = 0.05) -> None:
        self.gap_s = gap_s
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.closed_early = threading.Event()
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n" + b"x" * 200
        try:
            conn.recv(65536)
            for i in range(len(answer)):
                if self._stop.is_set():
                    return
                conn.sendall(answer[i : i + 1])
                time.sleep(self.gap_s)
        except OSError:
            self.closed_early.set()  # the client hung up mid-answer
        finally:
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._listener.close()


def test_deadline_is_per_attempt_not_per_read(
    make_action: MakeAction, make_alert: MakeAlert
) -> None:
    drip = DripServer(gap_s=0.05)  # ~12 s for the whole answer, 50 ms per byte
    try:
        action = make_action(url=f"http://127.0.0.1:{drip.port}/hook", timeout_s=0.5)
        action.start()
        started = time.monotonic()
        action.submit(make_alert("drip-1"))
        deadline = time.monotonic() + 5
        while action.outcomes["retry"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        elapsed = time.monotonic() - started
        assert action.outcomes["retry"] >= 1
        assert elapsed < 2.0, f"attempt took {elapsed:.2f}s; timeout_s=0.5 bounds the whole of it"
        assert action.outcomes["delivered"] == 0
    finally:
        drip.close()


def test_slow_version_does_not_hold_other_versions(
    sink: WebhookSink, make_action: MakeAction, make_alert: MakeAlert
) -> None:
    sink.respond(204, delay_s=3.0, times=1)
    action = make_action(timeout_s=5.0, concurrency=4)
    action.start()
    action.submit(make_alert("slow-v7", model_version="v7"))
    assert sink.wait_for(1)  # v7's attempt is now stuck on the receiver
    for i in range(3):
        action.submit(make_alert(f"fast-v{i}", model_version=f"v{i}"))
    deadline = time.monotonic() + 2.0  # well before the slow answer (3 s)
    while action.outcomes["delivered"] < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert action.outcomes["delivered"] == 3
    assert action.flush(10.0)
    assert action.outcomes["delivered"] == 4


def test_same_version_in_order_even_across_retries(
    sink: WebhookSink, make_action: MakeAction, make_alert: MakeAlert
) -> None:
    sink.respond(503, times=2)
    action = make_action(concurrency=8)
    action.submit(make_alert("v7-detected", type="drift.detected"))
    action.submit(make_alert("v7-resolved", type="drift.resolved"))
    action.submit(make_alert("v8-detected", model_version="v8"))
    action.start()
    assert action.flush(5.0)
    v7 = [r.headers["idempotency-key"] for r in sink.requests if b'"v7"' in r.body]
    # the 503s (shared with v8) delay v7's detected alert; its resolved one still comes last
    assert v7[-1] == "v7-resolved" and v7.count("v7-resolved") == 1
    assert set(v7[:-1]) == {"v7-detected"} and len(sink.requests) == 5
    assert action.outcomes["delivered"] == 3


class _Redirector(BaseHTTPRequestHandler):
    location = ""

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(307)
        self.send_header("Location", self.location)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def redirector(sink: WebhookSink) -> Iterator[ThreadingHTTPServer]:
    handler = type("Redirect", (_Redirector,), {"location": sink.url})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_redirect_never_followed(
    sink: WebhookSink,
    redirector: ThreadingHTTPServer,
    make_action: MakeAction,
    make_alert: MakeAlert,
) -> None:
    port = redirector.server_address[1]
    action = make_action(url=f"http://127.0.0.1:{port}/hook", max_attempts=2)
    action.start()
    action.submit(make_alert())
    assert action.flush(5.0)
    assert sink.requests == []  # the signed body never went to the Location
    assert action.outcomes["failed"] == 1 and action.outcomes["retry"] == 1


class _Proxy(BaseHTTPRequestHandler):
    seen: list[tuple[str, str | None]] = []

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.seen.append((self.path, self.headers.get("Proxy-Authorization")))
        self.send_response(204)
        self.end_headers()


def test_requests_go_through_the_proxy(make_action: MakeAction, make_alert: MakeAlert) -> None:
    handler = type("Proxy", (_Proxy,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        proxy = f"http://svc:pr0xy-pass@127.0.0.1:{server.server_address[1]}"
        action = make_action(url="http://deployer.internal:8080/rollback", proxy=proxy)
        assert "pr0xy-pass" not in repr(action)
        action.start()
        action.submit(make_alert())
        assert action.flush(5.0)
        ((path, auth),) = handler.seen
        assert path == "http://deployer.internal:8080/rollback"  # absolute-form: a proxy
        assert auth is not None and auth.startswith("Basic ")
    finally:
        server.shutdown()
        server.server_close()

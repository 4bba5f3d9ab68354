"""A tiny webhook receiver for trying driftd's rollback webhooks (and for tests).

Run it::

    DRIFTD_WEBHOOK_SECRET=s3cret python -m driftd.demo.sink --port 8787 --expect 1 --out got.jsonl

It listens on 127.0.0.1, checks ``Driftd-Signature`` (401 when it does not verify), prints each
rollback request readably, appends it to ``--out`` as one JSON line, and exits after
``--expect`` valid deliveries (distinct ``Idempotency-Key``) or on SIGTERM/SIGINT.

``WebhookSink`` is the same receiver as a class: ``start()`` on port 0 returns the port,
``requests`` records every request, and ``respond()`` / ``down()`` / ``up()`` switch its
behaviour (status, ``Retry-After``, delay, or not listening at all) to exercise retries. Given
an ``ssl_context`` it serves HTTPS (a context requiring client certificates makes it a mutual
TLS receiver), and given a ``bearer_token`` it answers 401 to requests without
``Authorization: Bearer <token>``, as a deployer behind an API gateway would.
"""

from __future__ import annotations

import argparse
import hmac
import os
import signal
import ssl
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import IO, Any, NamedTuple, cast

import orjson

from driftd.actions import signing

__all__ = ["ReceivedRequest", "Response", "WebhookSink", "describe", "main"]

MAX_BODY_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Response:
    """How the sink answers: ``status``, optional ``Retry-After`` value, delay before answering."""

    status: int = 204
    retry_after: str | None = None
    delay_s: float = 0.0


class ReceivedRequest(NamedTuple):
    """One request as received; header names are lower-cased."""

    headers: dict[str, str]
    body: bytes
    verified: bool


class _Server(ThreadingHTTPServer):
    # Non-daemon handler threads are joined by server_close(), so stop() leaves no thread
    # (or socket) behind; delays wait on an event that stop() sets, so the join is quick.
    daemon_threads = False
    sink: WebhookSink

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError | ssl.SSLError):
            # the client gave up (its timeout fired during a delay) or refused our
            # certificate (a TLS test's wrong CA): expected
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server_version = "driftd-demo-sink"
    timeout = 10  # an idle or stuck client cannot hold a handler thread forever

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the sink prints itself
        return

    def _reply(self, status: int, retry_after: str | None = None, text: str = "") -> None:
        payload = text.encode("utf-8")
        self.send_response(status)
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        if status != 204:
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if status != 204 and payload:
            self.wfile.write(payload)

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        sink = cast(_Server, self.server).sink
        length_header = self.headers.get("Content-Length")
        if length_header is None or not length_header.isdigit():
            self._reply(411, text="Content-Length required")
            return
        length = int(length_header)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._reply(413, text="body too large")
            return
        body = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        verified = sink.check(body, headers.get(signing.HEADER.lower()))
        request = ReceivedRequest(headers, body, verified)
        sink.record(request)
        if not sink.authorized(headers.get("authorization")):
            sink.on_invalid(request)
            self._reply(401, text="missing or wrong bearer token")
            return
        if sink.secret is not None and not verified:
            sink.on_invalid(request)
            self._reply(401, text="bad or missing Driftd-Signature")
            return
        response = sink.next_response()
        if response.delay_s > 0:
            sink.sleep(response.delay_s)
        if 200 <= response.status < 300:
            try:
                sink.on_valid(request)
            except ValueError as exc:
                self._reply(400, text=f"bad payload: {exc}")
                return
        self._reply(response.status, response.retry_after)


class WebhookSink:
    """A real HTTP webhook receiver on 127.0.0.1 with switchable behaviour.

    ``secret`` None accepts everything (``verified`` is then always False). ``on_valid`` is
    called for each accepted request answered with a 2xx; raising ``ValueError`` from it
    answers 400. ``requests`` holds every request (including rejected ones) and
    ``received_at`` the matching ``time.monotonic()`` arrival times.
    """

    def __init__(
        self,
        secret: bytes | Iterable[bytes] | None = None,
        *,
        host: str = "127.0.0.1",
        tolerance_s: float = 300.0,
        on_valid: Callable[[ReceivedRequest], None] | None = None,
        on_invalid: Callable[[ReceivedRequest], None] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        bearer_token: str | None = None,
    ) -> None:
        self.ssl_context = ssl_context
        self.bearer_token = bearer_token
        self.secret: list[bytes] | None
        if secret is None:
            self.secret = None
        elif isinstance(secret, bytes | bytearray):
            self.secret = [bytes(secret)]
        else:
            self.secret = [bytes(s) for s in secret]
        self.host = host
        self.tolerance_s = tolerance_s
        self.port: int | None = None
        self.requests: list[ReceivedRequest] = []
        self.received_at: list[float] = []
        self._on_valid = on_valid
        self._on_invalid = on_invalid
        self._default = Response()
        self._script: deque[Response] = deque()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- behaviour switches ----------------------------------------------------------------

    def respond(
        self,
        status: int = 204,
        *,
        retry_after: str | float | None = None,
        delay_s: float = 0.0,
        times: int | None = None,
    ) -> None:
        """Answer with ``status`` from now on, or only for the next ``times`` requests.

        One-shot responses queue up in call order and are used before the default.
        """
        response = Response(
            status, None if retry_after is None else _format_retry_after(retry_after), delay_s
        )
        with self._lock:
            if times is None:
                self._default = response
            else:
                self._script.extend([response] * times)

    def next_response(self) -> Response:
        with self._lock:
            return self._script.popleft() if self._script else self._default

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, port: int = 0) -> int:
        """Listen on ``port`` (0: any free port); returns the port actually bound."""
        if self._server is not None:
            raise RuntimeError("sink already started")
        self._stopping.clear()
        server = _Server((self.host, port), _Handler)
        server.sink = self
        if self.ssl_context is not None:
            # The handshake happens on the handler thread's first read, so a client stuck in
            # (or refusing) the handshake never holds up the accept loop.
            server.socket = self.ssl_context.wrap_socket(
                server.socket, server_side=True, do_handshake_on_connect=False
            )
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"webhook-sink-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self.port

    def stop(self) -> None:
        """Stop listening and close the socket; the port is remembered for ``up()``."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()  # cut short any configured delay
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()
        self._server = self._thread = None

    def down(self) -> None:
        """Stop listening: clients now get "connection refused"."""
        self.stop()

    def up(self) -> int:
        """Listen again on the same port as before."""
        if self.port is None:
            raise RuntimeError("sink was never started")
        return self.start(self.port)

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("sink was never started")
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self.host}:{self.port}/hook"

    def __enter__(self) -> WebhookSink:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- inspection ------------------------------------------------------------------------

    def wait_for(self, count: int, timeout_s: float = 5.0) -> bool:
        """Wait until at least ``count`` requests have arrived."""
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self.requests) >= count, timeout_s)

    @property
    def valid_requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return [r for r in self.requests if r.verified or self.secret is None]

    # -- used by the handler ---------------------------------------------------------------

    def check(self, body: bytes, header: str | None) -> bool:
        if self.secret is None:
            return False
        return signing.verify(self.secret, body, header, tolerance_s=self.tolerance_s)

    def authorized(self, header: str | None) -> bool:
        if self.bearer_token is None:
            return True
        expected = f"Bearer {self.bearer_token}".encode()
        return header is not None and hmac.compare_digest(header.encode(), expected)

    def record(self, request: ReceivedRequest) -> None:
        with self._arrived:
            self.requests.append(request)
            self.received_at.append(time.monotonic())
            self._arrived.notify_all()

    def sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    def on_valid(self, request: ReceivedRequest) -> None:
        if self._on_valid is not None:
            self._on_valid(request)

    def on_invalid(self, request: ReceivedRequest) -> None:
        if self._on_invalid is not None:
            self._on_invalid(request)


def _format_retry_after(value: str | float) -> str:
    if isinstance(value, str):
        return value
    return str(max(0, int(value))) if float(value).is_integer() else repr(float(value))


# -- command line --------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def describe(payload: Mapping[str, Any]) -> str:
    """Human-readable summary of a driftd alert (native or CloudEvents-wrapped)."""
    envelope = ""
    data = payload
    if "specversion" in payload and isinstance(payload.get("data"), Mapping):
        envelope = f" [cloudevents {payload.get('type')}]"
        data = cast(Mapping[str, Any], payload["data"])
    kind = data.get("type", "?")
    version = _fmt(data.get("model_version"))
    if kind == "drift.detected" and data.get("rollback_to") is not None:
        action = f"{version} -> rollback to {_fmt(data.get('rollback_to'))}"
    elif kind == "drift.resolved":
        action = f"{version} recovered"
    else:
        action = version
    lines = [
        f"{kind}{envelope}  monitor={_fmt(data.get('monitor'))}  model={_fmt(data.get('model'))}"
        f"  {action}",
        f"  severity={_fmt(data.get('severity'))}  drift_share={_fmt(data.get('drift_share'))}"
        f"  time={_fmt(data.get('time'))}  id={_fmt(data.get('id'))}",
    ]
    features = data.get("features") or []
    if isinstance(features, Mapping):  # evaluation-style {"name": {...}} also accepted
        features = [{"name": k, **v} for k, v in features.items() if isinstance(v, Mapping)]
    for feature in features if isinstance(features, list) else []:
        if not isinstance(feature, Mapping):
            continue
        p_value = feature.get("p_value")
        lines.append(
            f"  - {_fmt(feature.get('name'))}: {_fmt(feature.get('test'))}"
            f" statistic={_fmt(feature.get('statistic'))}"
            f" threshold={_fmt(feature.get('threshold'))}"
            + ("" if p_value is None else f" p_value={_fmt(p_value)}")
        )
    window = data.get("window")
    if isinstance(window, Mapping):
        lines.append(
            f"  window: positions {_fmt(window.get('start_position'))}"
            f"..{_fmt(window.get('end_position'))} ({_fmt(window.get('events'))} events)"
        )
    return "\n".join(lines)


class _Receiver:
    """CLI state: dedups by Idempotency-Key, prints, appends to --out, counts to --expect."""

    def __init__(self, expect: int, out: IO[bytes] | None, done: threading.Event) -> None:
        self.expect = expect
        self.out = out
        self.done = done
        self.seen: set[str] = set()
        self.lock = threading.Lock()

    def valid(self, request: ReceivedRequest) -> None:
        try:
            payload = orjson.loads(request.body)
        except orjson.JSONDecodeError as exc:
            raise ValueError("body is not JSON") from exc
        if not isinstance(payload, dict):
            raise ValueError("body is not a JSON object")
        key = request.headers.get("idempotency-key") or str(payload.get("id"))
        with self.lock:
            if key in self.seen:
                print(f"(duplicate delivery of {key}, already handled)", flush=True)
                return
            self.seen.add(key)
            print(f"[{len(self.seen)}] {describe(payload)}", flush=True)
            if self.out is not None:
                self.out.write(orjson.dumps(payload) + b"\n")
                self.out.flush()
            if self.expect and len(self.seen) >= self.expect:
                self.done.set()

    def invalid(self, request: ReceivedRequest) -> None:
        print(
            "rejected a request: bad or missing Driftd-Signature (401)",
            file=sys.stderr,
            flush=True,
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m driftd.demo.sink", description="Demo receiver for driftd webhooks."
    )
    parser.add_argument("--port", type=int, default=8787, help="0 picks a free port")
    parser.add_argument(
        "--secret-env",
        default="DRIFTD_WEBHOOK_SECRET",
        help="environment variable holding the shared signing secret",
    )
    parser.add_argument("--expect", type=int, default=0, help="exit after N valid deliveries")
    parser.add_argument("--out", type=Path, help="append each delivery as a JSON line")
    parser.add_argument("--tolerance-s", type=float, default=300.0)
    args = parser.parse_args(argv)

    secret = os.environ.get(args.secret_env)
    if not secret:
        print(f"error: environment variable {args.secret_env} is not set", file=sys.stderr)
        return 2

    done = threading.Event()
    out = open(args.out, "ab") if args.out else None  # noqa: SIM115 (closed below)
    receiver = _Receiver(args.expect, out, done)
    sink = WebhookSink(
        secret.encode("utf-8"),
        tolerance_s=args.tolerance_s,
        on_valid=receiver.valid,
        on_invalid=receiver.invalid,
    )

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()  # only a flag; the main thread does the shutdown

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            port = sink.start(args.port)
        except OSError as exc:
            print(f"error: cannot listen on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
            return 1
        print(f"listening on http://127.0.0.1:{port}/ (Ctrl-C to stop)", flush=True)
        while not done.wait(0.2):
            pass
    finally:
        sink.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if out is not None:
            out.close()
    print(f"received {len(receiver.seen)} valid deliveries", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

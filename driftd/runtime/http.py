"""HTTP listener: /metrics, /healthz, /readyz, /api/v1/monitors[/{name}].

The monitor endpoints always answer 200 for a known monitor (Argo Rollouts' web metric provider
reads ``drifted`` / ``drift_share`` with a jsonPath); ``?model_version=V`` selects a version,
otherwise the top-level verdict is the most recently seen version's.

``POST|GET /api/v1/gates/{name}/rollback`` is a Flagger ``rollback`` webhook: 200 ("roll
back") only while the monitor's version (``?model_version=V``, else the JSON body's
``metadata.model_version``, else the most recent version) has an open alert, 409 otherwise,
404 for an unknown monitor, 400 for a body that is not a JSON object.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CollectorRegistry

from driftd.monitor.view import Status, monitor_json, rollback_gate

log = logging.getLogger(__name__)

GATES_PREFIX = "/api/v1/gates/"
# Flagger's webhook payload is small; anything beyond this is not a gate request.
MAX_GATE_BODY_BYTES = 64 * 1024


class HttpServer:
    def __init__(
        self,
        host: str,
        port: int,
        status: Callable[[], Status],
        registry: CollectorRegistry,
        ready: Callable[[], tuple[bool, str]],
    ) -> None:
        self.status = status
        self.registry = registry
        self.ready = ready
        handler = self._handler_class()
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="driftd-http", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "driftd"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                log.debug("http %s", format % args)

            def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _json(self, code: int, obj: Any) -> None:
                self._send(code, orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY))

            def do_HEAD(self) -> None:  # noqa: N802
                self.do_GET()

            def do_GET(self) -> None:  # noqa: N802
                url = urlsplit(self.path)
                path = url.path.rstrip("/") or "/"
                query = parse_qs(url.query)
                try:
                    if path == "/metrics":
                        self._send(200, generate_latest(outer.registry), CONTENT_TYPE_LATEST)
                    elif path == "/healthz":
                        self._json(200, {"status": "ok"})
                    elif path == "/readyz":
                        ok, why = outer.ready()
                        self._json(200 if ok else 503, {"ready": ok, "reason": why})
                    elif path == "/api/v1/monitors":
                        mons = [monitor_json(m) for m in outer.status().monitors]
                        self._json(200, {"monitors": mons})
                    elif path.startswith("/api/v1/monitors/"):
                        name = path[len("/api/v1/monitors/") :]
                        version = query.get("model_version", [None])[0]
                        m = outer.status().monitor(name)
                        if m is None:
                            self._json(404, {"error": f"unknown monitor {name!r}"})
                        else:
                            self._json(200, monitor_json(m, version))
                    elif path.startswith(GATES_PREFIX):
                        self._gate(path, query.get("model_version", [None])[0])
                    else:
                        self._json(404, {"error": "not found"})
                except BrokenPipeError:
                    pass
                except Exception:  # a scrape must never take the daemon down
                    log.exception("error serving %s", self.path)
                    self._json(500, {"error": "internal error"})

            def do_POST(self) -> None:  # noqa: N802
                url = urlsplit(self.path)
                path = url.path.rstrip("/") or "/"
                try:
                    length_header = self.headers.get("Content-Length") or "0"
                    length = int(length_header) if length_header.isdigit() else -1
                    if not 0 <= length <= MAX_GATE_BODY_BYTES:
                        self.close_connection = True
                        self._json(413 if length > 0 else 400, {"error": "bad Content-Length"})
                        return
                    raw = self.rfile.read(length) if length else b""
                    if not path.startswith(GATES_PREFIX):
                        self._json(404, {"error": "not found"})
                        return
                    version = parse_qs(url.query).get("model_version", [None])[0]
                    if raw.strip():  # Flagger: {"name", "namespace", "phase", "metadata"}
                        try:
                            payload = orjson.loads(raw)
                        except orjson.JSONDecodeError:
                            payload = None
                        if not isinstance(payload, dict):
                            self._json(400, {"error": "body must be a JSON object"})
                            return
                        meta = payload.get("metadata")
                        if version is None and isinstance(meta, dict):
                            given = meta.get("model_version")
                            version = None if given is None else str(given)
                    self._gate(path, version)
                except BrokenPipeError:
                    pass
                except Exception:  # a gate call must never take the daemon down
                    log.exception("error serving POST %s", self.path)
                    self._json(500, {"error": "internal error"})

            def _gate(self, path: str, version: str | None) -> None:
                name, _, kind = path[len(GATES_PREFIX) :].rpartition("/")
                if kind != "rollback" or not name:
                    self._json(404, {"error": "not found (gates: /api/v1/gates/NAME/rollback)"})
                    return
                m = outer.status().monitor(name)
                gate = rollback_gate(m, version) if m is not None else None
                if gate is None:
                    self._json(404, {"error": f"unknown monitor {name!r}"})
                else:
                    self._json(*gate)

        return Handler

"""What each HTTP endpoint answers: ``/metrics``, ``/healthz``, ``/readyz``,
``/api/v1/monitors[/{name}]`` and Flagger's ``/api/v1/gates/{name}/rollback``.

Pure request → response functions over the published status (no I/O, no locks); the server
in :mod:`driftd.runtime.http` only moves bytes.

The monitor endpoints always answer 200 for a known monitor (Argo Rollouts' web metric provider
reads ``drifted`` / ``drift_share`` with a jsonPath); ``?model_version=V`` selects a version,
otherwise the top-level verdict is the most recent version that has served.

``POST|GET /api/v1/gates/{name}/rollback`` is a Flagger ``rollback`` webhook: 200 ("roll
back") only while the monitor's version (``?model_version=V``, else the JSON body's
``metadata.model_version``, else the current version) has an open alert, 409 otherwise, 404 for
an unknown monitor, 400 for a body that is not a JSON object.

With ``http.token`` set, ``/api/…`` requires ``Authorization: Bearer <token>`` (401
otherwise); ``/metrics`` and the health endpoints stay open for scrapers and probes.
"""

from __future__ import annotations

import gzip
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from driftd.monitor.view import Status, monitor_json, rollback_gate

GATES_PREFIX = "/api/v1/gates/"
MONITORS = "/api/v1/monitors"
# Flagger's webhook payload is small; anything beyond this is not a gate request.
MAX_BODY_BYTES = 64 * 1024
JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, obj: Any) -> Response:
    return Response(status, orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY))


class Routes:
    def __init__(
        self,
        status: Callable[[], Status],
        registry: CollectorRegistry,
        ready: Callable[[], tuple[bool, str]],
        token: str | None = None,
    ) -> None:
        self.status = status
        self.registry = registry
        self.ready = ready
        self._token = token.encode() if token else None

    def handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> Response:
        """``headers``: lower-case names."""
        url = urlsplit(target)
        path = url.path.rstrip("/") or "/"
        query = parse_qs(url.query)
        if method not in ("GET", "HEAD", "POST"):
            return Response(405, b'{"error":"method not allowed"}', headers={"Allow": "GET, POST"})
        if path.startswith("/api/") and not self._authorized(headers):
            return Response(
                401, b'{"error":"bearer token required"}', headers={"WWW-Authenticate": "Bearer"}
            )
        if method == "POST":
            if not path.startswith(GATES_PREFIX):
                return json_response(404, {"error": "not found"})
            return self._gate(path, query, body)
        if path == "/metrics":
            return self._metrics(headers)
        if path == "/healthz":
            return json_response(200, {"status": "ok"})
        if path == "/readyz":
            ok, why = self.ready()
            return json_response(200 if ok else 503, {"ready": ok, "reason": why})
        if path == MONITORS:
            return json_response(
                200, {"monitors": [monitor_json(m) for m in self.status().monitors]}
            )
        if path.startswith(MONITORS + "/"):
            name = path[len(MONITORS) + 1 :]
            m = self.status().monitor(name)
            if m is None:
                return json_response(404, {"error": f"unknown monitor {name!r}"})
            return json_response(200, monitor_json(m, query.get("model_version", [None])[0]))
        if path.startswith(GATES_PREFIX):
            return self._gate(path, query, b"")
        return json_response(404, {"error": "not found"})

    def _authorized(self, headers: Mapping[str, str]) -> bool:
        if self._token is None:
            return True
        given = headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            value.strip().encode(), self._token
        )

    def _metrics(self, headers: Mapping[str, str]) -> Response:
        """Text format 0.0.4, or OpenMetrics when the scraper asks for it; gzip when
        accepted (client_python's own negotiation)."""
        encoder, content_type = choose_encoder(headers.get("accept", ""))
        body = encoder(self.registry)
        extra: dict[str, str] = {}
        if "gzip" in headers.get("accept-encoding", ""):
            body = gzip.compress(body, compresslevel=5)
            extra["Content-Encoding"] = "gzip"
        return Response(200, body, content_type, extra)

    def _gate(self, path: str, query: dict[str, list[str]], body: bytes) -> Response:
        name, _, kind = path[len(GATES_PREFIX) :].rpartition("/")
        if kind != "rollback" or not name:
            return json_response(404, {"error": "not found (gates: /api/v1/gates/NAME/rollback)"})
        version = query.get("model_version", [None])[0]
        if body.strip():  # Flagger: {"name", "namespace", "phase", "metadata"}
            try:
                payload = orjson.loads(body)
            except orjson.JSONDecodeError:
                payload = None
            if not isinstance(payload, dict):
                return json_response(400, {"error": "body must be a JSON object"})
            meta = payload.get("metadata")
            if version is None and isinstance(meta, dict):
                given = meta.get("model_version")
                version = None if given is None else str(given)
        m = self.status().monitor(name)
        if m is None:
            return json_response(404, {"error": f"unknown monitor {name!r}"})
        return json_response(*rollback_gate(m, version))

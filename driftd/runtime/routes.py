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
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import orjson
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from driftd.monitor.view import Status, monitor_json, rollback_gate

CACHE_S = 0.5  # the loop publishes a new status at most this often while events flow
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


def proxy_get(url: str, token: bytes | None, timeout_s: float = 3.0) -> tuple[int, bytes, str]:
    """GET another driftd process's API, marked so that it is not passed on again."""
    import urllib.error
    import urllib.request

    headers = {"Driftd-Proxied": "1"}
    if token:
        headers["Authorization"] = "Bearer " + token.decode()
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as r:
            return int(r.status), bytes(r.read()), r.headers.get("Content-Type", JSON)
    except urllib.error.HTTPError as e:
        return int(e.code), e.read(), e.headers.get("Content-Type", JSON)
    except OSError as exc:
        return 503, orjson.dumps({"error": f"cannot reach {url}: {exc}"}), JSON


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
        self._cache: dict[tuple[Any, ...], tuple[float, Response]] = {}
        # Scale-out: a configured monitor decided by another process is answered through it.
        self.configured: frozenset[str] = frozenset()
        self.elsewhere: Callable[[str], str | None] | None = None

    def handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> Response:
        """``headers``: lower-case names. Read-only answers (``/metrics``, the status API) are
        rendered at most once per ``CACHE_S`` for the same request and representation: fifty
        clients polling cost one rendering, not fifty, so they do not slow consumption."""
        if method in ("GET", "HEAD") and not target.startswith(("/healthz", "/readyz")):
            key = (
                target,
                headers.get("accept", ""),
                "gzip" in headers.get("accept-encoding", ""),
                headers.get("authorization", ""),
                bool(headers.get("driftd-proxied")),
            )
            now = time.monotonic()
            hit = self._cache.get(key)
            if hit is not None and now - hit[0] < CACHE_S:
                return hit[1]
            response = self._handle(method, target, headers, body)
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[key] = (now, response)
            return response
        return self._handle(method, target, headers, body)

    def _handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> Response:
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
            st = self.status()
            listing: dict[str, Any] = {"monitors": [monitor_json(m) for m in st.monitors]}
            here = {m.name for m in st.monitors}
            others = sorted(self.configured - here)
            if others and self.elsewhere is not None:
                listing["elsewhere"] = {n: self.elsewhere(n) for n in others}
            return json_response(200, listing)
        if path.startswith(MONITORS + "/"):
            name = path[len(MONITORS) + 1 :]
            m = self.status().monitor(name)
            if m is None:
                return self._not_here(name, target, headers)
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
            return self._not_here(name, f"{GATES_PREFIX}{name}/rollback", {}, version)
        return json_response(*rollback_gate(m, version))

    def _not_here(
        self,
        name: str,
        target: str,
        headers: Mapping[str, str],
        version: str | None = None,
    ) -> Response:
        """A monitor this process does not decide: unknown (404), or — in scale-out —
        answered by the process that decides it, one hop at most."""
        if name not in self.configured or self.elsewhere is None:
            return json_response(404, {"error": f"unknown monitor {name!r}"})
        url = self.elsewhere(name)
        if url is None or headers.get("driftd-proxied"):
            return json_response(
                503,
                {"error": f"monitor {name!r} is decided by another process, not known yet",
                 "monitor": name, "decided_by": url},
            )  # fmt: skip
        if version is not None and "model_version=" not in target:
            target += ("&" if "?" in target else "?") + f"model_version={quote(version)}"
        code, body, ctype = proxy_get(url.rstrip("/") + target, self._token)
        return Response(code, body, ctype, {"Driftd-Decided-By": url})

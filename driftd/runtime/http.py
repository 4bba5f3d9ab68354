"""The HTTP listener: one asyncio loop on its own thread, HTTP/1.1 parsed by h11.

It serves :class:`~driftd.runtime.routes.Routes` and guards the process against its clients:

- at most ``max_connections`` connections at a time (and never more than a quarter of the
  process's file-descriptor limit, so checkpoints and Kafka keep theirs): when full, the
  oldest connection that has not sent a request yet makes room for the new one (when every
  slot is serving a request, the new one is closed at once); both counted in
  :attr:`HttpServer.refused`. Idle clients therefore cannot lock out a probe or a scraper that
  sends its request promptly, even in the instant after a thousand of them arrived;
- a request's head and body must arrive within ``request_timeout_s`` of the connection (or of
  the previous response on a kept-alive connection), bodies are capped at 64 KiB, and an idle
  kept-alive connection is closed after ``idle_timeout_s``;
- responses are built from the status the loop published (no lock shared with consumption),
  rendered on the listener's thread, never on the consuming one;
- the listen socket has a real backlog.

No thread per connection: a thousand idle clients cost a thousand sockets until their
deadline, not a thousand threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import h11
from prometheus_client.registry import CollectorRegistry

from driftd.monitor.view import Status
from driftd.runtime.routes import MAX_BODY_BYTES, Response, Routes, json_response

log = logging.getLogger(__name__)

READ_CHUNK = 65_536


class HttpServer:
    def __init__(
        self,
        host: str,
        port: int,
        status: Callable[[], Status],
        registry: CollectorRegistry,
        ready: Callable[[], tuple[bool, str]],
        *,
        token: str | None = None,
        max_connections: int = 64,
        request_timeout_s: float = 10.0,
        idle_timeout_s: float = 5.0,
        backlog: int = 256,
    ) -> None:
        self.routes = Routes(status, registry, ready, token)
        self.host = host
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY:
            max_connections = max(4, min(max_connections, soft // 4))
        self.max_connections = max_connections
        self.request_timeout_s = request_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.backlog = backlog
        self.open_connections = 0
        self.refused = 0  # connections closed for room: over max_connections
        # connections that have not sent a (complete) request yet, oldest first
        self._waiting: OrderedDict[int, tuple[asyncio.StreamWriter, float]] = OrderedDict()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        # Bind now, so that a port in use fails at start-up (and `port` is known at once).
        try:
            self._server = self._loop.run_until_complete(
                asyncio.start_server(
                    self._connection, host, port, backlog=backlog, reuse_address=True
                )
            )
        except BaseException:
            self._loop.close()
            raise
        self.port = int(self._server.sockets[0].getsockname()[1])

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="driftd-http", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def stop(self) -> None:
        def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            # a moment for the cancelled handlers to abort their transports and for those to
            # close their sockets (else they are left to the garbage collector)
            self._loop.call_later(0.1, self._loop.stop)

        if self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(shutdown)
            self._thread.join(timeout=5)
        elif self._server is not None:
            self._server.close()
        with contextlib.suppress(RuntimeError):
            self._loop.close()

    # ------------------------------------------------------------------ connections

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        now = time.monotonic()
        if self.open_connections >= self.max_connections:
            self.refused += 1
            oldest = next(iter(self._waiting.values()), None)
            if oldest is None:  # every slot is serving a request: the newcomer is refused
                writer.transport.abort()  # no goodbye: the descriptor is what matters
                return
            self._waiting.popitem(last=False)
            oldest[0].transport.abort()  # its handler sees the reset and ends
        self.open_connections += 1
        key = id(writer)
        self._waiting[key] = (writer, now)
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=16_384)
        clean = False
        try:
            first = True
            while True:
                deadline = self.request_timeout_s if first else self.idle_timeout_s
                first = False
                try:
                    async with asyncio.timeout(deadline):
                        request, body = await self._read_request(conn, reader)
                except TimeoutError:
                    break
                if request is None:
                    break
                self._waiting.pop(key, None)
                # rendered off the loop: a scrape or a proxied API call never holds up the
                # other connections
                response = await asyncio.get_running_loop().run_in_executor(
                    None, self._respond, request, body
                )
                await self._send(conn, writer, request, response)
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    break
                conn.start_next_cycle()
            clean = True
        except (
            h11.RemoteProtocolError,
            ConnectionError,
            asyncio.IncompleteReadError,
            TimeoutError,  # a response the client would not read in time
        ):
            pass
        except _BadRequest as exc:
            with contextlib.suppress(Exception):
                await self._send(conn, writer, None, json_response(exc.status, {"error": exc.msg}))
        except Exception:  # a request must never take the listener down
            log.exception("http: error serving a connection")
        finally:
            self.open_connections -= 1
            self._waiting.pop(key, None)
            if clean:
                writer.close()  # everything sent was drained: closes at once
            else:
                writer.transport.abort()

    async def _read_request(
        self, conn: h11.Connection, reader: asyncio.StreamReader
    ) -> tuple[h11.Request | None, bytes]:
        request: h11.Request | None = None
        body = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(READ_CHUNK)
                conn.receive_data(data)
                if not data and request is None and conn.their_state is h11.IDLE:
                    return None, b""
                continue
            if isinstance(event, h11.Request):
                request = event
                length = _content_length(event)
                if length > MAX_BODY_BYTES:
                    raise _BadRequest(413, "body too large")
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY_BYTES:
                    raise _BadRequest(413, "body too large")
            elif isinstance(event, h11.EndOfMessage):
                return request, body
            elif isinstance(event, h11.ConnectionClosed):
                return None, b""

    def _respond(self, request: h11.Request, body: bytes) -> Response:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers}
        method = request.method.decode("ascii", "replace")
        target = request.target.decode("latin-1")
        try:
            return self.routes.handle(method, target, headers, body)
        except Exception:  # a scrape must never take the daemon down
            log.exception("error serving %s %s", method, target)
            return json_response(500, {"error": "internal error"})

    async def _send(
        self,
        conn: h11.Connection,
        writer: asyncio.StreamWriter,
        request: h11.Request | None,
        response: Response,
    ) -> None:
        head_only = request is not None and request.method == b"HEAD"
        headers = [
            ("Content-Type", response.content_type),
            ("Content-Length", str(len(response.body))),
            ("Server", "driftd"),
            *response.headers.items(),
        ]
        if request is None:
            headers.append(("Connection", "close"))
        out = conn.send(h11.Response(status_code=response.status, headers=headers))
        if not head_only:
            out = (out or b"") + (conn.send(h11.Data(data=response.body)) or b"")
        out = (out or b"") + (conn.send(h11.EndOfMessage()) or b"")
        writer.write(out)
        async with asyncio.timeout(self.request_timeout_s):
            await writer.drain()


class _BadRequest(Exception):  # noqa: N818 - an HTTP answer, raised out of the reader
    def __init__(self, status: int, msg: str) -> None:
        self.status = status
        self.msg = msg


def _content_length(request: h11.Request) -> int:
    for k, v in request.headers:
        if k.lower() == b"content-length":
            try:
                return int(v)
            except ValueError:
                return 0
    return 0

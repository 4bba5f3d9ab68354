"""A headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
commands on fd 3, replies and events on fd 4, each a JSON text ended by a NUL byte).

No port, no websocket library, no browser download: Debian's ``chromium`` package (``make
chromium``, installed by ``.ci/run``). Used by the report tests and by
``scripts/report_screenshot.py``.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

# The flags the report tests must run Chromium with: headless, and nothing that talks to the
# network on its own (so a request seen is one the page made).
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
)
LOCAL_SCHEMES = ("file:", "data:", "about:", "blob:", "chrome:", "devtools:")


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeError(
        "chromium is not installed: `make chromium` (Debian package chromium) — the report"
        " tests need a real browser and are never skipped"
    )


class CDPError(RuntimeError):
    pass


class Chromium:
    """One browser, one page. ``events`` keeps every protocol event of the page session."""

    def __init__(self, timeout_s: float = 60.0) -> None:
        self.timeout_s = timeout_s
        self.profile = tempfile.mkdtemp(prefix="driftd-chromium-")
        # stderr to a file: a pipe nobody reads could fill up and stall the browser
        self._log = open(os.path.join(self.profile, "stderr.log"), "wb")  # noqa: SIM115
        cmd_r, self._cmd_w = os.pipe()
        self._out_r, out_w = os.pipe()

        def fds() -> None:  # in the child: fd 3 reads commands, fd 4 writes replies
            # via fds above 10 first: the pipe's own fds may be 3 or 4 themselves
            a = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(out_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)  # dup2 leaves the new fd inheritable; every other fd is close-on-exec
            os.dup2(b, 4)

        self.proc = subprocess.Popen(  # noqa: S603 - a fixed command line
            [find_chromium(), *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            preexec_fn=fds,  # noqa: PLW1509 - dup2 in the child, before exec
            close_fds=False,  # keep 3 and 4 (Python's own fds are close-on-exec anyway)
        )
        os.close(cmd_r)
        os.close(out_w)
        self._buf = b""
        self._next = 0
        self.events: list[dict[str, Any]] = []
        self.session: str | None = None
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send(
            "Target.attachToTarget", {"targetId": target, "flatten": True}, browser=True
        )["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")

    # ------------------------------------------------------------------ protocol

    def _read(self, deadline: float) -> dict[str, Any] | None:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self._out_r], [], [], left)
            if not ready:
                return None
            chunk = os.read(self._out_r, 1 << 20)
            if not chunk:
                raise CDPError(f"chromium exited ({self.proc.wait()}): {self.stderr()[-2000:]}")
            self._buf += chunk
        msg, _, self._buf = self._buf.partition(b"\0")
        return json.loads(msg)  # type: ignore[no-any-return]

    def send(self, method: str, params: dict[str, Any] | None = None, browser: bool = False) -> Any:
        self._next += 1
        msg: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if self.session is not None and not browser:
            msg["sessionId"] = self.session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout_s
        while True:
            reply = self._read(deadline)
            if reply is None:
                raise CDPError(f"no reply to {method} in {self.timeout_s} s")
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise CDPError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_event(
        self, method: str, timeout_s: float | None = None, since: int = 0
    ) -> dict[str, Any]:
        """The first ``method`` event from ``events[since]`` on (waiting for it)."""
        for e in self.events[since:]:
            if e["method"] == method:
                return e
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while True:
            msg = self._read(deadline)
            if msg is None:
                raise CDPError(f"no {method} event")
            if "method" in msg:
                self.events.append(msg)
                if msg["method"] == method:
                    return msg

    # ------------------------------------------------------------------ page

    def open(self, path: Path, width: int = 1400, height: int = 900) -> None:
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        since = len(self.events)
        self.send("Page.navigate", {"url": path.resolve().as_uri()})
        self.wait_event("Page.loadEventFired", since=since)

    def evaluate(self, expression: str) -> Any:
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in r:
            raise CDPError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise CDPError(f"{expression} still false after {timeout_s} s")

    def screenshot(self, out: Path, max_height: int | None = None) -> Path:
        size = self.send("Page.getLayoutMetrics")["cssContentSize"]
        height = int(size["height"]) if max_height is None else min(int(size["height"]), max_height)
        shot = self.send(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": int(size["width"]), "height": height, "scale": 1},
            },
        )
        out.write_bytes(base64.b64decode(shot["data"]))
        return out

    def stderr(self) -> str:
        self._log.flush()
        return Path(self._log.name).read_text(errors="replace")

    def console_errors(self) -> list[str]:
        """Console errors, uncaught exceptions and browser log errors seen so far."""
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(" ".join(str(a.get("value", a.get("description"))) for a in p["args"]))
            elif e["method"] == "Runtime.exceptionThrown":
                d = p["exceptionDetails"]
                out.append(str(d.get("exception", {}).get("description", d.get("text"))))
            elif e["method"] == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append(f"{p['entry'].get('source')}: {p['entry'].get('text')}")
        return out

    def requests(self) -> list[str]:
        return [
            e["params"]["request"]["url"]
            for e in self.events
            if e["method"] == "Network.requestWillBeSent"
        ]

    def remote_requests(self) -> list[str]:
        return [u for u in self.requests() if not u.startswith(LOCAL_SCHEMES)]

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                try:
                    self.send("Browser.close", browser=True)
                except (CDPError, OSError):
                    pass
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            for fd in (self._cmd_w, self._out_r):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._log.close()
            shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

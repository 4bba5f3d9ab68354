"""Signed webhook delivery of drift alerts from a durable outbox, over httpx.

``submit`` only writes the alert to the outbox and wakes the sender, so a slow or dead receiver
never blocks the evaluation loop. The sender is one thread per action running an asyncio loop
with up to ``concurrency`` attempts in flight; alerts of the same monitor and model version go
one at a time, oldest first, so a receiver never sees a version's ``drift.resolved`` overtake
its ``drift.detected``. Outcomes of an attempt:

- 2xx: delivered, entry removed
- 408, 429, 5xx, 3xx (redirects are never followed: a signed body goes to the configured host
  only), connection and TLS errors, timeouts: retried with exponential backoff and full jitter
  (``uniform(0, min(backoff_max_s, initial * 2**n))``); a ``Retry-After`` (seconds or HTTP-date)
  sets a floor under that delay
- any other 4xx: final, entry removed, counted ``failed`` and logged with the status
- ``max_attempts`` reached (when set): final, counted ``failed``

``timeout_s`` bounds a whole attempt (connect, TLS handshake, sending, the response), not each
read: a receiver that drips its answer byte by byte is cut off at the deadline, and since other
attempts run beside it, it delays only the alerts of its own monitor and version.

Each attempt is signed afresh (new timestamp) over the exact bytes sent, and carries the alert
id as ``Idempotency-Key`` so a receiver can drop the duplicates at-least-once implies. Neither
the secret, the signature, header values nor proxy credentials are ever logged.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import httpx

from driftd._version import __version__
from driftd.actions import signing
from driftd.actions.outbox import Outbox, OutboxEntry
from driftd.actions.payload import PayloadFormat, build_body, log_fields
from driftd.actions.request import parse_retry_after, post_once
from driftd.config import check_header, check_proxy_url, check_webhook_url
from driftd.errors import ActionDeliveryError, ConfigError

__all__ = ["OUTCOMES", "WebhookAction", "parse_retry_after"]

logger = logging.getLogger(__name__)

OUTCOMES: Final = ("delivered", "retry", "failed", "dropped", "dry_run")

def _order_key(entry: OutboxEntry) -> tuple[str, str]:
    """Alerts sharing this key are sent one at a time, in outbox order."""
    alert = entry.alert
    return str(alert.get("monitor", "")), str(alert.get("model_version", ""))


class WebhookAction:
    """Deliver alerts to one webhook endpoint; see the module docstring for semantics.

    Counters for a Prometheus collector (read at scrape time, never reset):
    ``outcomes`` (a snapshot dict over ``OUTCOMES``) and ``pending()``.
    """

    def __init__(
        self,
        *,
        name: str,
        url: str,
        secret: bytes | None,
        format: PayloadFormat = "driftd",
        outbox_dir: Path,
        timeout_s: float = 5.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 300.0,
        max_attempts: int | None = None,
        dry_run: bool = False,
        headers: Mapping[str, str] | None = None,
        max_pending: int = 10_000,
        concurrency: int = 4,
        proxy: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        key = f"actions.{name}"
        try:
            check_webhook_url(url)
        except ValueError as exc:
            raise ConfigError(f"{key}.url", str(exc)) from None
        if format not in ("driftd", "cloudevents"):
            raise ConfigError(f"{key}.format", "must be 'driftd' or 'cloudevents'")
        if not (timeout_s > 0 and math.isfinite(timeout_s)):
            raise ConfigError(f"{key}.timeout_s", "must be a positive number of seconds")
        if not (0 < backoff_initial_s <= backoff_max_s and math.isfinite(backoff_max_s)):
            raise ConfigError(f"{key}.backoff_initial_s", "need 0 < initial <= backoff_max_s")
        if max_attempts is not None and max_attempts < 1:
            raise ConfigError(f"{key}.max_attempts", "must be >= 1 (or null: retry forever)")
        if concurrency < 1:
            raise ConfigError(f"{key}.concurrency", "must be >= 1")
        if secret is not None and not secret:
            raise ConfigError(f"{key}.secret", "must not be empty (omit it to send unsigned)")
        extra: dict[str, str] = {}
        for header, value in (headers or {}).items():
            try:
                check_header(header, value)
            except ValueError as exc:
                raise ConfigError(f"{key}.headers", str(exc)) from None
            extra[header] = value
        if proxy is not None:
            try:
                check_proxy_url(proxy)
            except ValueError as exc:
                raise ConfigError(f"{key}.proxy", str(exc)) from None

        parts = urlsplit(url)
        self.name = name
        self.url = url
        self.format: PayloadFormat = format
        self.timeout_s = float(timeout_s)
        self.backoff_initial_s = float(backoff_initial_s)
        self.backoff_max_s = float(backoff_max_s)
        self.max_attempts = max_attempts
        self.concurrency = concurrency
        self.dry_run = dry_run
        self._secret = secret
        self._headers = extra
        self._proxy = proxy
        self._ssl_context = ssl_context
        # Query strings may carry tokens: logs show scheme://host[:port]/path only.
        netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port is not None else "")
        self._log_url = f"{parts.scheme}://{netloc}{parts.path or '/'}"
        # Strings that must never reach a log line, whatever an exception message contains.
        self._redact = [v for v in [*extra.values(), proxy or ""] if len(v) >= 4]
        if secret is not None:
            self._redact.append(secret.decode("utf-8", "replace"))
        self._user_agent = f"driftd/{__version__}"
        self._clock = clock
        self._jitter = jitter

        self._outbox = Outbox(outbox_dir, max_pending=max_pending, clock=clock)
        self._outbox.load()
        self._counts = dict.fromkeys(OUTCOMES, 0)
        self._counts_lock = threading.Lock()
        self._stopping = threading.Event()
        self._drained = threading.Condition()
        self._thread: threading.Thread | None = None
        # The sender's loop and its wake-up event, set while the thread runs; other threads
        # wake it through call_soon_threadsafe.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._loop_lock = threading.Lock()

    # -- public API ----------------------------------------------------------------------------

    @property
    def outcomes(self) -> dict[str, int]:
        """Snapshot of delivery outcome counts: delivered, retry, failed, dropped, dry_run."""
        with self._counts_lock:
            return dict(self._counts)

    def pending(self) -> int:
        """Alerts in the outbox not yet delivered (or finally failed)."""
        return self._outbox.pending()

    def submit(self, alert: Mapping[str, Any]) -> bool:
        """Durably enqueue ``alert`` and wake the sender; never touches the network.

        True once the alert is on disk (or was already queued: same id, no-op). False when it
        could not be queued (outbox full or unwritable), counted as ``dropped`` and logged.
        Raises ``ValueError`` for an alert without a string ``id``/``type`` or with values that
        cannot be serialised: better to fail here than to retry a poison entry forever.
        """
        build_body(alert, self.format)
        try:
            queued = self._outbox.put(alert)
        except OSError:
            logger.exception(
                "webhook %s: cannot write alert %s to the outbox; dropped",
                self.name,
                alert.get("id"),
                extra=log_fields(self.name, alert.get("id"), alert),
            )
            queued = False
        if not queued:
            self._count("dropped")
            return False
        self._notify()
        return True

    def accepts(self, alert_id: str) -> bool:
        """Whether :meth:`submit` would queue this alert now (the caller holds it back
        otherwise: back-pressure instead of a dropped alert)."""
        return self._outbox.accepts(alert_id)

    def start(self) -> None:
        """Start the background sender (a daemon thread); idempotent."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._thread_main, name=f"driftd-webhook-{self.name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Stop the sender; pending entries stay in the outbox for the next process.

        Attempts already in flight may finish (each bounded by ``timeout_s`` of the action).
        Returns True when the thread has ended.
        """
        thread = self._thread
        if thread is None:
            return True
        self._stopping.set()
        self._notify()
        thread.join(timeout_s)
        if thread.is_alive():
            logger.warning("webhook %s: sender did not stop within %.1fs", self.name, timeout_s)
            return False
        self._thread = None
        return True

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until the outbox is empty (delivered or finally failed); False on timeout.

        Entries waiting out a backoff are not hurried; the sender must be running.
        """
        self._notify()
        with self._drained:
            return self._drained.wait_for(lambda: self._outbox.pending() == 0, timeout_s)

    # -- sender --------------------------------------------------------------------------------

    def _notify(self) -> None:
        with self._loop_lock:
            if self._loop is not None and self._wake is not None:
                try:
                    self._loop.call_soon_threadsafe(self._wake.set)
                except RuntimeError:  # the loop closed meanwhile
                    pass

    def _thread_main(self) -> None:
        logger.debug("webhook %s: sender started (%s)", self.name, self._log_url)
        try:
            asyncio.run(self._main())
        except Exception:  # a bug here must not pass silently
            logger.exception("webhook %s: sender failed", self.name)
        logger.debug("webhook %s: sender stopped", self.name)

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            # A signed body goes to the configured host only: never follow a redirect.
            follow_redirects=False,
            # Exactly what the config says: no proxy or CA bundle from the environment.
            trust_env=False,
            verify=self._ssl_context if self._ssl_context is not None else True,
            proxy=self._proxy,
            # Per-phase timeouts as a backstop; the attempt's deadline is enforced around it.
            timeout=httpx.Timeout(self.timeout_s),
            limits=httpx.Limits(
                max_connections=self.concurrency, max_keepalive_connections=self.concurrency
            ),
            headers={"User-Agent": self._user_agent},
        )

    async def _main(self) -> None:
        wake = asyncio.Event()
        with self._loop_lock:
            self._loop = asyncio.get_running_loop()
            self._wake = wake
        in_flight: dict[str, asyncio.Task[None]] = {}

        def done(entry_id: str) -> Callable[[asyncio.Task[None]], None]:
            def callback(task: asyncio.Task[None]) -> None:
                in_flight.pop(entry_id, None)
                if not task.cancelled() and task.exception() is not None:
                    logger.error(
                        "webhook %s: delivery of %s failed unexpectedly",
                        self.name,
                        entry_id,
                        exc_info=task.exception(),
                        extra=log_fields(self.name, entry_id),
                    )
                wake.set()

            return callback

        try:
            async with self._client() as client:
                while not self._stopping.is_set():
                    # clear → scan → wait: a submit landing after the clear is either seen by
                    # this scan or sets the event again, so no wake-up is lost.
                    wake.clear()
                    now = self._clock()
                    next_at: float | None = None
                    for entry in self._heads():
                        if entry.id in in_flight:
                            continue
                        if entry.next_attempt > now:
                            next_at = min(next_at or math.inf, entry.next_attempt)
                            continue
                        if len(in_flight) >= self.concurrency or self._stopping.is_set():
                            break  # a running attempt's end wakes us (its callback)
                        task = asyncio.create_task(self._process(client, entry))
                        in_flight[entry.id] = task
                        task.add_done_callback(done(entry.id))
                    wait = None if next_at is None else max(0.0, next_at - self._clock())
                    try:
                        await asyncio.wait_for(wake.wait(), wait)
                    except TimeoutError:
                        pass
                if in_flight:
                    await asyncio.gather(*in_flight.values(), return_exceptions=True)
        finally:
            with self._loop_lock:
                self._loop = None
                self._wake = None

    def _heads(self) -> list[OutboxEntry]:
        """The oldest pending alert of each (monitor, model_version), soonest due first: only a
        head may be sent, so a version's alerts reach the receiver in the order raised even
        when the first one needs retries."""
        heads: dict[tuple[str, str], OutboxEntry] = {}
        for entry in self._outbox.entries():
            key = _order_key(entry)
            head = heads.get(key)
            if head is None or (entry.created, entry.id) < (head.created, head.id):
                heads[key] = entry
        return sorted(heads.values(), key=lambda e: (e.next_attempt, e.created, e.id))

    async def _process(self, client: httpx.AsyncClient, entry: OutboxEntry) -> None:
        alert_id = entry.id
        attempt = entry.attempts + 1
        try:
            body, content_type = build_body(entry.alert, self.format)
        except ValueError as exc:  # e.g. a hand-edited outbox file; retrying cannot help
            logger.error(
                "webhook %s: alert %s cannot be encoded: %s",
                self.name,
                alert_id,
                exc,
                extra=log_fields(self.name, alert_id, entry.alert),
            )
            await self._finish(alert_id, "failed")
            return
        if self.dry_run:
            logger.info(
                "webhook %s (dry run): would POST %s Content-Type=%s Idempotency-Key=%s "
                "signed=%s body=%s",
                self.name,
                self._log_url,
                content_type,
                alert_id,
                self._secret is not None,
                body.decode("utf-8", "replace"),
                extra=log_fields(self.name, alert_id, entry.alert),
            )
            await self._finish(alert_id, "dry_run")
            return
        try:
            try:
                async with asyncio.timeout(self.timeout_s):
                    status = await self._post(client, body, content_type, alert_id)
            except TimeoutError:
                raise ActionDeliveryError(
                    f"no complete answer within timeout_s={self.timeout_s:g}s"
                ) from None
        except ActionDeliveryError as exc:
            await self._failed_attempt(entry, attempt, exc)
            return
        logger.info(
            "webhook %s: delivered alert %s (status %d, attempt %d)",
            self.name,
            alert_id,
            status,
            attempt,
            extra=log_fields(self.name, alert_id, entry.alert),
        )
        await self._finish(alert_id, "delivered")

    async def _post(
        self, client: httpx.AsyncClient, body: bytes, content_type: str, alert_id: str
    ) -> int:
        """One attempt; returns the 2xx status or raises ``ActionDeliveryError``."""
        headers = dict(self._headers)
        headers["Content-Type"] = content_type
        headers["Idempotency-Key"] = alert_id
        if self._secret is not None:
            headers[signing.HEADER] = signing.sign(self._secret, body, int(self._clock()))
        return await post_once(client, self.url, body, headers, self._clock, self._scrub)

    def _scrub(self, text: str) -> str:
        for value in self._redact:
            text = text.replace(value, "***")
        return text

    async def _failed_attempt(
        self, entry: OutboxEntry, attempt: int, exc: ActionDeliveryError
    ) -> None:
        if exc.final:
            logger.error(
                "webhook %s: alert %s rejected, not retrying (attempt %d): %s",
                self.name,
                entry.id,
                attempt,
                exc,
                extra=log_fields(self.name, entry.id, entry.alert),
            )
            await self._finish(entry.id, "failed")
            return
        if self.max_attempts is not None and attempt >= self.max_attempts:
            logger.error(
                "webhook %s: alert %s failed after %d attempts, giving up: %s",
                self.name,
                entry.id,
                attempt,
                exc,
                extra=log_fields(self.name, entry.id, entry.alert),
            )
            await self._finish(entry.id, "failed")
            return
        delay = self._backoff(attempt)
        if exc.retry_after_s is not None:
            delay = max(delay, exc.retry_after_s)
        logger.warning(
            "webhook %s: alert %s attempt %d failed (%s); retrying in %.2fs",
            self.name,
            entry.id,
            attempt,
            exc,
            delay,
            extra=log_fields(self.name, entry.id, entry.alert),
        )
        self._count("retry")
        try:
            # fsync off the loop: a slow disk must not stall the other attempts' deadlines
            await asyncio.to_thread(
                self._outbox.reschedule, entry.id, self._clock() + delay, attempt
            )
        except OSError:
            # the in-memory schedule is already updated; only the persisted count lags
            logger.exception(
                "webhook %s: could not persist retry of %s",
                self.name,
                entry.id,
                extra=log_fields(self.name, entry.id, entry.alert),
            )

    def _backoff(self, attempt: int) -> float:
        # Full jitter: spreads retries of many alerts (and many driftd processes) apart.
        ceiling = min(self.backoff_max_s, self.backoff_initial_s * 2.0 ** min(attempt - 1, 60))
        return self._jitter() * ceiling

    async def _finish(self, alert_id: str, outcome: str) -> None:
        # Counted before the entry leaves the outbox: whoever sees the outbox empty
        # (flush) also sees the outcome.
        self._count(outcome)
        try:
            await asyncio.to_thread(self._outbox.remove, alert_id)
        except OSError:
            # it is gone from memory; a restart would resend it under the same id
            logger.exception("webhook %s: could not remove %s from outbox", self.name, alert_id)
        with self._drained:
            self._drained.notify_all()

    def _count(self, outcome: str) -> None:
        with self._counts_lock:
            self._counts[outcome] += 1

    def __repr__(self) -> str:
        # Never include the secret, header values or the proxy URL.
        return (
            f"WebhookAction(name={self.name!r}, url={self._log_url!r}, format={self.format!r}, "
            f"signed={self._secret is not None}, dry_run={self.dry_run})"
        )

"""Signed webhook delivery of drift alerts from a durable outbox.

``submit`` only writes the alert to the outbox and wakes the sender thread, so a slow or
dead receiver never blocks the evaluation loop. The sender POSTs due entries one at a time:

- 2xx: delivered, entry removed
- 408, 429, 5xx, 3xx (redirects are not followed), connection errors, timeouts: retried with
  exponential backoff and full jitter (``uniform(0, min(backoff_max_s, initial * 2**n))``);
  a ``Retry-After`` (seconds or HTTP-date) sets a floor under that delay
- any other 4xx: final, entry removed, counted ``failed`` and logged with the status
- ``max_attempts`` reached (when set): final, counted ``failed``

Each attempt is signed afresh (new timestamp) over the exact bytes sent, and carries the
alert id as ``Idempotency-Key`` so a receiver can drop the duplicates at-least-once implies.
Neither the secret, the signature nor custom header values are ever logged.
"""

from __future__ import annotations

import email.utils
import http.client
import logging
import math
import random
import re
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from driftd._version import __version__
from driftd.actions import signing
from driftd.actions.outbox import Outbox, OutboxEntry
from driftd.actions.payload import PayloadFormat, build_body
from driftd.errors import ActionDeliveryError, ConfigError

__all__ = ["OUTCOMES", "WebhookAction", "parse_retry_after"]

logger = logging.getLogger(__name__)

OUTCOMES: Final = ("delivered", "retry", "failed", "dropped", "dry_run")

# Headers driftd owns; letting config override them would break signing or idempotency.
_RESERVED_HEADERS: Final = frozenset(
    {
        "content-type",
        "content-length",
        "transfer-encoding",
        "host",
        "idempotency-key",
        signing.HEADER.lower(),
    }
)
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_RETRYABLE_4XX: Final = frozenset({408, 429})
# A receiver asking for more than this is treated as asking for this much.
_RETRY_AFTER_CEILING_S: Final = 24 * 3600.0
_MAX_RESPONSE_READ: Final = 64 * 1024


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date), or None."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        return min(float(value), _RETRY_AFTER_CEILING_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive parse means "-0000"
        return None
    return min(max(0.0, when.timestamp() - now), _RETRY_AFTER_CEILING_S)


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
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        key = f"actions.{name}"
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{key}.url", "must be an absolute http:// or https:// URL")
        if parts.username is not None or parts.password is not None:
            # credentials in the URL would end up in logs; use `headers` (Authorization)
            raise ConfigError(f"{key}.url", "must not contain credentials; use headers")
        try:
            port = parts.port
        except ValueError as exc:
            raise ConfigError(f"{key}.url", f"bad port: {exc}") from None
        if format not in ("driftd", "cloudevents"):
            raise ConfigError(f"{key}.format", "must be 'driftd' or 'cloudevents'")
        if not (timeout_s > 0 and math.isfinite(timeout_s)):
            raise ConfigError(f"{key}.timeout_s", "must be a positive number of seconds")
        if not (0 < backoff_initial_s <= backoff_max_s and math.isfinite(backoff_max_s)):
            raise ConfigError(f"{key}.backoff_initial_s", "need 0 < initial <= backoff_max_s")
        if max_attempts is not None and max_attempts < 1:
            raise ConfigError(f"{key}.max_attempts", "must be >= 1 (or null: retry forever)")
        if secret is not None and not secret:
            raise ConfigError(f"{key}.secret", "must not be empty (omit it to send unsigned)")
        extra: dict[str, str] = {}
        for header, value in (headers or {}).items():
            if not _HEADER_NAME.fullmatch(header) or header.lower() in _RESERVED_HEADERS:
                raise ConfigError(f"{key}.headers", f"header {header!r} is invalid or reserved")
            if "\r" in value or "\n" in value:
                raise ConfigError(f"{key}.headers", f"header {header!r} value has a newline")
            extra[header] = value

        self.name = name
        self.url = url
        self.format: PayloadFormat = format
        self.timeout_s = float(timeout_s)
        self.backoff_initial_s = float(backoff_initial_s)
        self.backoff_max_s = float(backoff_max_s)
        self.max_attempts = max_attempts
        self.dry_run = dry_run
        self._secret = secret
        self._headers = extra
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = port
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        # Query strings may carry tokens: logs show scheme://host[:port]/path only.
        netloc = parts.hostname + (f":{port}" if port is not None else "")
        self._log_url = f"{parts.scheme}://{netloc}{parts.path or '/'}"
        self._ssl_context = ssl_context
        self._user_agent = f"driftd/{__version__}"
        self._clock = clock
        self._jitter = jitter

        self._outbox = Outbox(outbox_dir, max_pending=max_pending, clock=clock)
        self._outbox.load()
        self._counts = dict.fromkeys(OUTCOMES, 0)
        self._counts_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._drained = threading.Condition()
        self._thread: threading.Thread | None = None

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
            )
            queued = False
        if not queued:
            self._count("dropped")
            return False
        self._wake.set()
        return True

    def start(self) -> None:
        """Start the background sender (a daemon thread); idempotent."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"driftd-webhook-{self.name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Stop the sender; pending entries stay in the outbox for the next process.

        An attempt already in flight is allowed to finish (bounded by ``timeout_s`` of the
        request). Returns True when the thread has ended.
        """
        thread = self._thread
        if thread is None:
            return True
        self._stopping.set()
        self._wake.set()
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
        self._wake.set()
        with self._drained:
            return self._drained.wait_for(lambda: self._outbox.pending() == 0, timeout_s)

    # -- sender thread -------------------------------------------------------------------------

    def _run(self) -> None:
        logger.debug("webhook %s: sender started (%s)", self.name, self._log_url)
        while not self._stopping.is_set():
            try:
                for entry in self._outbox.due(self._clock()):
                    if self._stopping.is_set():
                        break
                    self._process(entry)
            except Exception:  # a bug here must not kill delivery for the whole process
                logger.exception("webhook %s: sender loop error", self.name)
                self._stopping.wait(1.0)
            next_at = self._outbox.next_due()
            wait = None if next_at is None else max(0.0, next_at - self._clock())
            # wait → clear → re-check `due` above: a put that lands before the clear is seen
            # by the next due() call, one that lands after it sets the event again.
            self._wake.wait(wait)
            self._wake.clear()
        logger.debug("webhook %s: sender stopped", self.name)

    def _process(self, entry: OutboxEntry) -> None:
        alert_id = entry.id
        attempt = entry.attempts + 1
        try:
            body, content_type = build_body(entry.alert, self.format)
        except ValueError as exc:  # e.g. a hand-edited outbox file; retrying cannot help
            logger.error("webhook %s: alert %s cannot be encoded: %s", self.name, alert_id, exc)
            self._finish(alert_id, "failed")
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
            )
            self._finish(alert_id, "dry_run")
            return
        try:
            status = self._post(body, content_type, alert_id)
        except ActionDeliveryError as exc:
            self._failed_attempt(entry, attempt, exc)
            return
        logger.info(
            "webhook %s: delivered alert %s (status %d, attempt %d)",
            self.name,
            alert_id,
            status,
            attempt,
        )
        self._finish(alert_id, "delivered")

    def _post(self, body: bytes, content_type: str, alert_id: str) -> int:
        """One attempt; returns the 2xx status or raises ``ActionDeliveryError``."""
        headers = dict(self._headers)
        headers.update(
            {
                "Content-Type": content_type,
                "Content-Length": str(len(body)),
                "Idempotency-Key": alert_id,
                "User-Agent": self._user_agent,
            }
        )
        if self._secret is not None:
            headers[signing.HEADER] = signing.sign(self._secret, body, int(self._clock()))
        conn: http.client.HTTPConnection
        if self._https:
            context = self._ssl_context or ssl.create_default_context()
            conn = http.client.HTTPSConnection(
                self._host, self._port, timeout=self.timeout_s, context=context
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout_s)
        try:
            conn.request("POST", self._target, body=body, headers=headers)
            response = conn.getresponse()
            status = response.status
            retry_after = response.getheader("Retry-After")
            detail = response.read(_MAX_RESPONSE_READ)
        except TimeoutError as exc:
            raise ActionDeliveryError(f"timed out after {self.timeout_s:g}s") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise ActionDeliveryError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            conn.close()
        if 200 <= status < 300:
            return status
        snippet = detail[:200].decode("utf-8", "replace")
        wait = parse_retry_after(retry_after, self._clock())
        if 400 <= status < 500 and status not in _RETRYABLE_4XX:
            raise ActionDeliveryError(f"HTTP {status}: {snippet!r}", final=True)
        reason = f"HTTP {status}"
        if 300 <= status < 400:
            reason += " (redirects are not followed; check the url)"
        raise ActionDeliveryError(reason, retry_after_s=wait)

    def _failed_attempt(self, entry: OutboxEntry, attempt: int, exc: ActionDeliveryError) -> None:
        if exc.final:
            logger.error(
                "webhook %s: alert %s rejected, not retrying (attempt %d): %s",
                self.name,
                entry.id,
                attempt,
                exc,
            )
            self._finish(entry.id, "failed")
            return
        if self.max_attempts is not None and attempt >= self.max_attempts:
            logger.error(
                "webhook %s: alert %s failed after %d attempts, giving up: %s",
                self.name,
                entry.id,
                attempt,
                exc,
            )
            self._finish(entry.id, "failed")
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
        )
        self._count("retry")
        try:
            self._outbox.reschedule(entry.id, self._clock() + delay, attempt)
        except OSError:
            # the in-memory schedule is already updated; only the persisted count lags
            logger.exception("webhook %s: could not persist retry of %s", self.name, entry.id)

    def _backoff(self, attempt: int) -> float:
        # Full jitter: spreads retries of many alerts (and many driftd processes) apart.
        ceiling = min(self.backoff_max_s, self.backoff_initial_s * 2.0 ** min(attempt - 1, 60))
        return self._jitter() * ceiling

    def _finish(self, alert_id: str, outcome: str) -> None:
        try:
            self._outbox.remove(alert_id)
        except OSError:
            # it is gone from memory; a restart would resend it under the same id
            logger.exception("webhook %s: could not remove %s from outbox", self.name, alert_id)
        self._count(outcome)
        with self._drained:
            self._drained.notify_all()

    def _count(self, outcome: str) -> None:
        with self._counts_lock:
            self._counts[outcome] += 1

    def __repr__(self) -> str:
        # Never include the secret or custom header values.
        return (
            f"WebhookAction(name={self.name!r}, url={self._log_url!r}, format={self.format!r}, "
            f"signed={self._secret is not None}, dry_run={self.dry_run})"
        )

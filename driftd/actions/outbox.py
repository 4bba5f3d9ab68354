"""A durable, bounded, idempotent outbox: one JSON file per pending alert.

An alert is on disk (tmp file → flush → fsync → rename → fsync directory) before ``put``
returns, so once the caller has been told "queued" it survives a crash. The entry is keyed by
the alert id: a second ``put`` of the same id is a no-op, which is what guarantees the same
alert is never sent under two ids and never queued twice on purpose. Entries are removed only
after a 2xx or a final failure (at-least-once: a crash between the 2xx and the unlink resends
with the same ``Idempotency-Key``, which the receiver dedups).

File format (orjson, never pickle)::

    {"format_version": 1, "id": "...", "attempts": 0, "next_attempt": 1764158590.5,
     "created": 1764158590.5, "alert": {...}}

Times are wall-clock unix seconds because they must mean the same thing to the next process.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

__all__ = ["FORMAT_VERSION", "Outbox", "OutboxEntry", "entry_filename"]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
_SUFFIX = ".json"
_TMP_PREFIX = ".tmp-"
_DONE_LOG = "done.log"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def entry_filename(alert_id: str) -> str:
    """File name for an alert id: a readable prefix plus a digest of the full id.

    The digest keeps the mapping injective (ids that sanitise alike, ids differing only in
    case on a case-insensitive filesystem, very long ids) so two alerts never share a file.
    """
    readable = _UNSAFE.sub("_", alert_id).strip("_")[:64] or "alert"
    digest = hashlib.sha256(alert_id.encode("utf-8", "surrogatepass")).hexdigest()[:24]
    return f"{readable}.{digest}{_SUFFIX}"


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One pending alert. ``attempts`` counts delivery attempts already made."""

    id: str
    alert: dict[str, Any]
    attempts: int
    next_attempt: float
    created: float

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "format_version": FORMAT_VERSION,
                "id": self.id,
                "attempts": self.attempts,
                "next_attempt": self.next_attempt,
                "created": self.created,
                "alert": self.alert,
            }
        )

    @classmethod
    def from_json(cls, data: bytes) -> OutboxEntry:
        raw = orjson.loads(data)
        if not isinstance(raw, dict) or raw.get("format_version") != FORMAT_VERSION:
            raise ValueError("not a driftd outbox entry (format_version 1)")
        alert = raw.get("alert")
        entry_id = raw.get("id")
        if not isinstance(alert, dict) or not isinstance(entry_id, str) or not entry_id:
            raise ValueError("outbox entry lacks 'id' or 'alert'")
        if alert.get("id") != entry_id:
            raise ValueError("outbox entry id does not match its alert id")
        attempts = raw.get("attempts")
        next_attempt = raw.get("next_attempt")
        created = raw.get("created")
        if not isinstance(attempts, int) or attempts < 0:
            raise ValueError("outbox entry has a bad 'attempts'")
        if not isinstance(next_attempt, int | float) or not isinstance(created, int | float):
            raise ValueError("outbox entry has a bad 'next_attempt' or 'created'")
        return cls(entry_id, alert, attempts, float(next_attempt), float(created))


def _fsync_dir(path: Path) -> None:
    # Makes the rename/unlink itself durable; not every platform can open a directory.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class Outbox:
    """Pending alerts in ``directory``; thread-safe (one producer, one sender, any readers).

    Call ``load()`` once at start to pick up what a previous process left behind.
    ``put`` returns False (and bumps ``dropped_full``) when ``max_pending`` entries are pending.
    The last ``remember_done`` ids of delivered/failed alerts are remembered durably (an
    append-only ``done.log``, fsynced per id, compacted when it doubles), so a re-``put`` of an
    alert that was already finished — by this process or by one before a crash — stays a
    no-op: an alert re-derived while re-processing events after a restart is not sent again.
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        max_pending: int = 10_000,
        remember_done: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be >= 1")
        self.directory = Path(directory)
        self.max_pending = max_pending
        self.dropped_full = 0
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, OutboxEntry] = {}
        self._done: OrderedDict[str, None] = OrderedDict()
        self._remember_done = remember_done
        self.directory.mkdir(parents=True, exist_ok=True)
        self._done_log = self.directory / _DONE_LOG
        self._done_lines = 0

    # -- lifecycle -----------------------------------------------------------------------

    def load(self) -> int:
        """Restore entries left on disk; returns how many are pending afterwards.

        Leftover tmp files (a crash mid-write; the entry was never acknowledged) are deleted.
        Unreadable entries are renamed to ``*.corrupt`` and logged, never silently dropped.
        Entries beyond ``max_pending`` are still loaded: durable data is never discarded.
        """
        with self._lock:
            self._load_done()
            for path in sorted(self.directory.iterdir()):
                name = path.name
                if name.startswith(_TMP_PREFIX):
                    path.unlink(missing_ok=True)
                    continue
                if not name.endswith(_SUFFIX) or not path.is_file():
                    continue
                try:
                    entry = OutboxEntry.from_json(path.read_bytes())
                    if entry_filename(entry.id) != name:
                        raise ValueError("file name does not match the entry id")
                except (OSError, ValueError) as exc:
                    logger.error("outbox: unreadable entry %s (%s); moved aside", path, exc)
                    try:
                        path.rename(path.with_name(name + ".corrupt"))
                    except OSError:
                        logger.exception("outbox: could not move %s aside", path)
                    continue
                self._entries.setdefault(entry.id, entry)
            pending = len(self._entries)
        if pending > self.max_pending:
            logger.warning(
                "outbox %s holds %d entries, above max_pending=%d; new alerts are dropped "
                "until it drains",
                self.directory,
                pending,
                self.max_pending,
            )
        elif pending:
            logger.info("outbox %s: restored %d pending alerts", self.directory, pending)
        return pending

    # -- producer side ---------------------------------------------------------------------

    def put(self, alert: Mapping[str, Any]) -> bool:
        """Durably enqueue ``alert`` (keyed by ``alert["id"]``) before returning.

        True when the alert is queued (now or already, or already finished by this process);
        False when the outbox is full. Raises ``ValueError`` for an alert without a string id
        and ``OSError`` when the entry cannot be written.
        """
        alert_id = alert.get("id")
        if not isinstance(alert_id, str) or not alert_id:
            raise ValueError(f"alert needs a non-empty string 'id', got {alert_id!r}")
        with self._lock:
            if alert_id in self._entries or alert_id in self._done:
                return True
            path = self.directory / entry_filename(alert_id)
            if path.exists():  # put before load(): the previous process already queued it
                return True
            if len(self._entries) >= self.max_pending:
                self.dropped_full += 1
                logger.error(
                    "outbox %s full (%d pending); dropping alert %s",
                    self.directory,
                    len(self._entries),
                    alert_id,
                )
                return False
            now = self._clock()
            entry = OutboxEntry(alert_id, dict(alert), 0, now, now)
            self._write(entry)
            self._entries[alert_id] = entry
            return True

    def accepts(self, alert_id: str) -> bool:
        """Whether ``put`` of this id would succeed now (queued already, or room left)."""
        with self._lock:
            return (
                alert_id in self._entries
                or alert_id in self._done
                or len(self._entries) < self.max_pending
            )

    # -- sender side -------------------------------------------------------------------------

    def due(self, now: float | None = None) -> list[OutboxEntry]:
        """Entries whose ``next_attempt`` has come, oldest schedule first."""
        at = self._clock() if now is None else now
        with self._lock:
            ready = [e for e in self._entries.values() if e.next_attempt <= at]
        ready.sort(key=lambda e: (e.next_attempt, e.created, e.id))
        return ready

    def entries(self) -> list[OutboxEntry]:
        """A snapshot of every pending entry (no order)."""
        with self._lock:
            return list(self._entries.values())

    def next_due(self) -> float | None:
        """Earliest ``next_attempt`` among pending entries, or None when empty."""
        with self._lock:
            return min((e.next_attempt for e in self._entries.values()), default=None)

    def get(self, alert_id: str) -> OutboxEntry | None:
        with self._lock:
            return self._entries.get(alert_id)

    def reschedule(self, alert_id: str, next_at: float, attempts: int) -> None:
        """Persist a new schedule for a pending entry (no-op if it is gone).

        Memory is updated before the write so a failing disk cannot turn into a hot retry
        loop against the receiver; the write error is still raised to the caller.
        """
        with self._lock:
            entry = self._entries.get(alert_id)
            if entry is None:
                return
            updated = OutboxEntry(entry.id, entry.alert, attempts, next_at, entry.created)
            self._entries[alert_id] = updated
            self._write(updated)

    def remove(self, alert_id: str) -> bool:
        """Forget an entry after a 2xx or a final failure; True if it was pending."""
        with self._lock:
            entry = self._entries.pop(alert_id, None)
            if entry is None:
                return False
            self._remember(alert_id)
            self._append_done(alert_id)
            (self.directory / entry_filename(alert_id)).unlink(missing_ok=True)
            _fsync_dir(self.directory)
            return True

    def _remember(self, alert_id: str) -> None:
        self._done[alert_id] = None
        self._done.move_to_end(alert_id)
        while len(self._done) > self._remember_done:
            self._done.popitem(last=False)

    def _load_done(self) -> None:
        try:
            data = self._done_log.read_bytes()
        except FileNotFoundError:
            return
        lines = data.decode("utf-8", "replace").splitlines()
        if data and not data.endswith(b"\n"):
            lines = lines[:-1]  # a torn last line (crash mid-append): that id was not finished
        for line in lines:
            if line:
                self._remember(line)
        self._done_lines = len(lines)

    def _append_done(self, alert_id: str) -> None:
        if self._done_lines >= 2 * self._remember_done:
            tmp = self.directory / f"{_TMP_PREFIX}{_DONE_LOG}"
            with open(tmp, "wb") as fh:
                fh.write("".join(f"{i}\n" for i in self._done).encode())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self._done_log)
            self._done_lines = len(self._done)
            return
        with open(self._done_log, "ab") as fh:
            fh.write(alert_id.encode("utf-8", "surrogatepass") + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        self._done_lines += 1

    def pending(self) -> int:
        with self._lock:
            return len(self._entries)

    # -- internals ---------------------------------------------------------------------------

    def _write(self, entry: OutboxEntry) -> None:
        final = self.directory / entry_filename(entry.id)
        tmp = self.directory / f"{_TMP_PREFIX}{final.name}.{os.getpid()}.{threading.get_ident()}"
        data = entry.to_json()
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.directory)

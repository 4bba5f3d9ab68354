"""Webhook signatures: ``Driftd-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>``.

The MAC covers ``"<t>.<raw body>"``: binding the timestamp into the MAC is what lets a
receiver reject replays of an old (but authentic) request once it is older than the tolerance.

A header may carry several ``v1=`` entries (one per secret while a secret is being rotated);
a request is authentic when any of them matches any of the receiver's secrets.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Iterable

__all__ = ["HEADER", "SCHEME", "sign", "verify"]

HEADER = "Driftd-Signature"
SCHEME = "v1"

# ASCII digits only: int() alone would also accept "+5", " 5" and "5_0".
_TIMESTAMP = re.compile(r"[0-9]{1,20}")


def _mac(secret: bytes, timestamp: str, body: bytes) -> bytes:
    signed = timestamp.encode("ascii") + b"." + body
    return hmac.new(secret, signed, hashlib.sha256).hexdigest().encode("ascii")


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """Return the ``Driftd-Signature`` header value for ``body`` sent at ``timestamp``."""
    if timestamp < 0:
        raise ValueError("timestamp must be non-negative unix seconds")
    t = str(int(timestamp))
    return f"t={t},{SCHEME}={_mac(secret, t, body).decode('ascii')}"


def verify(
    secret: bytes | Iterable[bytes],
    body: bytes,
    header: str | None,
    tolerance_s: float = 300,
    now: float | None = None,
) -> bool:
    """Check a ``Driftd-Signature`` header against the exact raw ``body`` received.

    ``secret`` may be one secret or several (a receiver in the middle of a rotation).
    False for a missing or malformed header, a timestamp further than ``tolerance_s`` from
    ``now`` (either direction), or no matching ``v1`` entry. Never raises on bad input.
    """
    if not header:
        return False
    secrets: list[bytes] = (
        [bytes(secret)] if isinstance(secret, bytes | bytearray) else [bytes(s) for s in secret]
    )
    timestamp: str | None = None
    candidates: list[bytes] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "t":
            if timestamp is not None:  # ambiguous: which one did the MAC cover?
                return False
            timestamp = value
        elif key == SCHEME:
            candidates.append(value.encode("utf-8", "surrogateescape"))
        # unknown schemes are ignored so a future v2 can be added beside v1
    if timestamp is None or not candidates or not _TIMESTAMP.fullmatch(timestamp):
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance_s:
        return False
    matched = False
    # Check every pair without short-circuiting so timing does not reveal which entry matched.
    for key_bytes in secrets:
        expected = _mac(key_bytes, timestamp, body)
        for candidate in candidates:
            matched |= hmac.compare_digest(expected, candidate)
    return matched

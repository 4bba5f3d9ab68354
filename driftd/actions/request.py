"""One signed POST of an alert body with httpx, and what its answer means.

2xx is delivered; 408, 429, 5xx, 3xx (redirects are never followed), connection and TLS errors
and timeouts are retried, honouring ``Retry-After``; any other 4xx is final.
"""

from __future__ import annotations

import email.utils
import ssl
from collections.abc import Callable
from typing import Final

import httpx

from driftd.errors import ActionDeliveryError

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


async def post_once(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    headers: dict[str, str],
    clock: Callable[[], float],
    scrub: Callable[[str], str],
) -> int:
    """One attempt; returns the 2xx status or raises ``ActionDeliveryError`` (``final`` for
    a 4xx other than 408/429; ``retry_after_s`` when the receiver asked). ``scrub`` removes
    secrets from anything that ends up in an error message."""
    try:
        async with client.stream("POST", url, content=body, headers=headers) as response:
            status = response.status_code
            retry_after = response.headers.get("Retry-After")
            detail = b""
            async for chunk in response.aiter_raw():
                detail += chunk
                if len(detail) >= _MAX_RESPONSE_READ:
                    break
    except httpx.TimeoutException as exc:
        raise ActionDeliveryError(f"timed out ({type(exc).__name__})") from None
    except (httpx.HTTPError, OSError, ssl.SSLError) as exc:
        raise ActionDeliveryError(scrub(f"{type(exc).__name__}: {exc}")) from None
    if 200 <= status < 300:
        return status
    snippet = scrub(detail[:200].decode("utf-8", "replace"))
    wait = parse_retry_after(retry_after, clock())
    if 400 <= status < 500 and status not in _RETRYABLE_4XX:
        raise ActionDeliveryError(f"HTTP {status}: {snippet!r}", final=True)
    reason = f"HTTP {status}"
    if 300 <= status < 400:
        reason += " (redirects are not followed; check the url)"
    raise ActionDeliveryError(reason, retry_after_s=wait)

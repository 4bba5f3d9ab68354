"""TLS settings of a webhook action as an ``ssl.SSLContext``.

A configured ``ca_file`` replaces the default trust store (a private CA is trusted on its own,
not in addition to every public one); without it the certifi bundle is used, as httpx does.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import certifi

from driftd.errors import ConfigError

__all__ = ["ssl_context"]

logger = logging.getLogger(__name__)


def ssl_context(
    *,
    key: str,
    ca_file: Path | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    verify: bool = True,
) -> ssl.SSLContext:
    """A client context; ``ConfigError`` naming ``<key>.<field>`` for an unreadable file."""
    try:
        context = ssl.create_default_context(cafile=str(ca_file or certifi.where()))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{key}.ca_file", f"cannot load {ca_file}: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file is not None:
        try:
            context.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"{key}.cert_file", f"cannot load {cert_file} / {key_file}: {exc}"
            ) from None
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context

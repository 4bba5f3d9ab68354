"""Alert actions, looked up by the ``type`` used in config (``actions.<name>.type``).

Adding an action is one class plus one line in ``REGISTRY``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from pydantic import SecretStr

from driftd.actions.tls import ssl_context as make_ssl_context
from driftd.actions.webhook import WebhookAction
from driftd.config import SecretRef, WebhookActionConfig
from driftd.errors import ConfigError

__all__ = ["REGISTRY", "WebhookAction", "build_actions", "webhook_from_config"]

log = logging.getLogger(__name__)


def webhook_from_config(name: str, cfg: WebhookActionConfig, outbox_dir: Path) -> WebhookAction:
    """Build from ``actions.<name>``, resolving secrets; ``ConfigError`` names the key."""
    key = f"actions.{name}"

    def resolve(ref: SecretRef | SecretStr, where: str) -> str:
        if not isinstance(ref, SecretRef):
            return ref.get_secret_value()
        try:
            return ref.resolve(where).decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(where, "is not UTF-8 text") from None

    secret = cfg.secret.resolve(f"{key}.secret") if cfg.secret is not None else None
    headers = {h: resolve(v, f"{key}.headers.{h}") for h, v in cfg.headers.items()}
    proxy = resolve(cfg.proxy, f"{key}.proxy") if cfg.proxy is not None else None
    context = None
    if cfg.tls is not None:
        t = cfg.tls
        context = make_ssl_context(
            key=f"{key}.tls",
            ca_file=t.ca_file,
            cert_file=t.cert_file,
            key_file=t.key_file,
            verify=t.verify,
        )
        if not t.verify:
            log.warning(
                "webhook %s: tls.verify is false; the receiver is not authenticated",
                name,
                extra={"action": name},
            )
    return WebhookAction(
        name=name,
        url=cfg.url,
        secret=secret,
        format=cfg.format,
        outbox_dir=outbox_dir,
        timeout_s=cfg.timeout_s,
        backoff_initial_s=cfg.backoff_initial_s,
        backoff_max_s=cfg.backoff_max_s,
        max_attempts=cfg.max_attempts,
        dry_run=cfg.dry_run,
        headers=headers,
        max_pending=cfg.max_pending,
        concurrency=cfg.concurrency,
        proxy=proxy,
        ssl_context=context,
    )


REGISTRY: dict[str, Callable[[str, WebhookActionConfig, Path], WebhookAction]] = {
    "webhook": webhook_from_config
}


def build_actions(
    actions: Mapping[str, WebhookActionConfig], outbox_root: Path
) -> dict[str, WebhookAction]:
    """One action per ``actions.<name>`` (outbox in ``outbox_root/<name>``), secrets resolved
    and TLS files loaded; ``ConfigError`` names the offending key."""
    return {
        name: REGISTRY[cfg.type](name, cfg, outbox_root / name)
        for name, cfg in actions.items()
    }

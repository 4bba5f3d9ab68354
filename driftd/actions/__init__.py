"""Alert actions, looked up by the ``type`` used in config (``actions.<name>.type``).

Adding an action is one class plus one line in ``REGISTRY``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from driftd.actions.webhook import WebhookAction
from driftd.config import WebhookActionConfig

__all__ = ["REGISTRY", "WebhookAction", "build_actions"]

REGISTRY: dict[str, type[WebhookAction]] = {"webhook": WebhookAction}


def build_actions(
    actions: Mapping[str, WebhookActionConfig], outbox_root: Path
) -> dict[str, WebhookAction]:
    """One action per ``actions.<name>`` (outbox in ``outbox_root/<name>``), secrets resolved
    and TLS files loaded; ``ConfigError`` names the offending key."""
    return {
        name: REGISTRY[cfg.type].from_config(name, cfg, outbox_root / name)
        for name, cfg in actions.items()
    }

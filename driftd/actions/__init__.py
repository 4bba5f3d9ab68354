"""Alert actions, looked up by the ``type`` used in config (``actions.<name>.type``).

Adding an action is one class plus one line in ``REGISTRY``.
"""

from __future__ import annotations

from driftd.actions.webhook import WebhookAction

__all__ = ["REGISTRY", "WebhookAction"]

REGISTRY: dict[str, type[WebhookAction]] = {"webhook": WebhookAction}

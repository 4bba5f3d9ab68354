"""Fixtures for webhook tests: a real local receiver and actions with tiny backoffs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from driftd.actions.webhook import WebhookAction
from driftd.demo.sink import WebhookSink

SECRET = b"whsec-test-7f3a"


def _alert(alert_id: str = "credit:v7:detected:1", **overrides: Any) -> dict[str, Any]:
    alert: dict[str, Any] = {
        "id": alert_id,
        "type": "drift.detected",
        "time": "2026-11-26T12:03:10Z",
        "monitor": "credit",
        "model": "credit-scoring",
        "model_version": "v7",
        "rollback_to": "v6",
        "severity": "critical",
        "drift_share": 0.4,
        "features": [
            {"name": "income", "test": "ks", "statistic": 0.12, "p_value": 1e-9, "threshold": 0.01}
        ],
        "window": {"start_position": 15001, "end_position": 20000, "events": 5000},
    }
    alert.update(overrides)
    return alert


@pytest.fixture
def secret() -> bytes:
    return SECRET


@pytest.fixture
def make_alert() -> Callable[..., dict[str, Any]]:
    return _alert


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    receiver = WebhookSink(SECRET)
    receiver.start()
    yield receiver
    receiver.stop()


@pytest.fixture
def outbox_dir(tmp_path: Path) -> Path:
    return tmp_path / "outbox"


@pytest.fixture
def make_action(sink: WebhookSink, outbox_dir: Path) -> Iterator[Callable[..., WebhookAction]]:
    """Build (and later stop) WebhookActions pointed at ``sink`` with millisecond backoffs."""
    made: list[WebhookAction] = []

    def factory(**overrides: Any) -> WebhookAction:
        kwargs: dict[str, Any] = {
            "name": "rollback",
            "url": sink.url,
            "secret": SECRET,
            "outbox_dir": outbox_dir,
            "timeout_s": 2.0,
            "backoff_initial_s": 0.005,
            "backoff_max_s": 0.02,
        }
        kwargs.update(overrides)
        action = WebhookAction(**kwargs)
        made.append(action)
        return action

    yield factory
    for action in made:
        assert action.stop(5.0)

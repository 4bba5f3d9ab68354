"""WebhookAction against a real local HTTP receiver: headers, signing, retries, restarts."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

import driftd
from driftd.actions import REGISTRY
from driftd.actions.signing import verify
from driftd.actions.webhook import WebhookAction, parse_retry_after
from driftd.demo.sink import WebhookSink
from driftd.errors import ConfigError

MakeAlert = Callable[..., dict[str, Any]]
MakeAction = Callable[..., WebhookAction]


def _wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def test_registered_by_type() -> None:
    from driftd.actions import webhook_from_config

    assert REGISTRY["webhook"] is webhook_from_config


def test_delivers_signed_request_with_headers(
    sink: WebhookSink,
    make_action: MakeAction,
    make_alert: MakeAlert,
    secret: bytes,
    outbox_dir: Path,
) -> None:
    action = make_action(headers={"Authorization": "Bearer t0ken"})
    alert = make_alert()
    assert action.submit(alert)
    action.start()
    assert action.flush(5.0)

    assert len(sink.requests) == 1
    headers, body, verified = sink.requests[0]
    assert verified
    assert verify(secret, body, headers["driftd-signature"])
    assert orjson.loads(body) == alert
    assert headers["content-type"] == "application/json"
    assert headers["idempotency-key"] == alert["id"]
    assert headers["user-agent"] == f"driftd/{driftd.__version__}"
    assert headers["authorization"] == "Bearer t0ken"
    assert headers["content-length"] == str(len(body))
    assert action.outcomes == {"delivered": 1, "retry": 0, "failed": 0, "dropped": 0, "dry_run": 0}
    assert action.pending() == 0
    assert list(outbox_dir.glob("*.json")) == []


def test_cloudevents_delivery(
    sink: WebhookSink, make_action: MakeAction, make_alert: MakeAlert
) -> None:
    action = make_action(format="cloudevents")
    alert = make_alert()
    action.start()
    action.submit(alert)
    assert action.flush(5.0)
    headers, body, verified = sink.requests[0]
    assert verified
    assert headers["content-type"] == "application/cloudevents+json; charset=UTF-8"
    event = orjson.loads(body)
    assert event["specversion"] == "1.0" and event["id"] == alert["id"]
    assert event["type"] == "io.driftd.drift.detected" and event["source"] == "driftd/credit"
    assert event["data"] == alert


def test_unsigned_when_no_secret(
    sink: WebhookSink, make_action: MakeAction, make_alert: MakeAlert
) -> None:
    sink.secret = None  # accept unsigned requests
    action = make_action(secret=None)
    action.start()
    action.submit(make_alert())
    assert action.flush(5.0)
    assert "driftd-signature" not in sink.requests[0].headers


def test_retries_5xx_with_same_idempotency_key(
    sink: WebhookSink, make_action: MakeAction, make_alert: MakeAlert, secret: bytes
) -> None:
    sink.respond(500, times=1)
    sink.respond(503, times=1)
    action = make_action()
    action.start()
    action.submit(make_alert("a-500"))
    assert action.flush(5.0)
    assert len(sink.requests) == 3
    assert {r.headers["idempotency-key"] for r in sink.requests} == {"a-500"}
    assert all(r.verified for r in sink.requests)
    assert len({r.body for r in sink.requests}) == 1  # same bytes every attempt
    assert action.outcomes["retry"] == 2 and action.outcomes["delivered"] == 1


def test_429_and_408_retried(
    sink: WebhookSink, make_action: MakeAction, make_alert: MakeAlert
) -> None:
    sink.respond(429, times=1)
    sink.respond(408, times=1)
    action = make_action()
    action.start()
    action.submit(make_alert())
    assert action.flush(5.0)
    assert len(sink.requests) == 3
    assert action.outcomes["retry"] == 2 and action.outcomes["delivered"] == 1


def test_retry_after_seconds_honoured(
    sink: WebhookSink, make_action: MakeAction, make_alert: MakeAlert
) -> None:
    sink.respond(503, retry_after=1, times=1)
    action = make_action()
    action.start()
    action.submit(make_alert())
    assert action.flush(5.0)
    assert len(sink.requests) == 2
    gap = sink.received_at[1] - sink.received_at[0]
    assert gap >= 0.9  # backoff alone would be <= 0.02s


def test_parse_retry_after() -> None:
    now = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
    ts = now.timestamp()
    assert parse_retry_after("7", ts) == 7.0
    assert parse_retry_after(" 0 ", ts) == 0.0
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(later, ts) == pytest.approx(30.0)
    earlier = format_datetime(now - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(earlier, ts) == 0.0
    assert parse_retry_after("99999999", ts) == 24 * 3600.0
    for bad in (None, "", "soon", "-5", "1.5", "٣"):
        assert parse_retry_after(bad, ts) is None


def test_4xx_is_final_counted_and_logged(
    sink: WebhookSink,
    make_action: MakeAction,
    make_alert: MakeAlert,
    caplog: pytest.LogCaptureFixture,
    secret: bytes,
) -> None:
    sink.respond(400)
    action = make_action()
    action.start()
    with caplog.at_level(logging.DEBUG, logger="driftd.actions"):
        action.submit(make_alert("a-400"))
        assert action.flush(5.0)
    assert len(sink.requests) == 1
    assert action.outcomes["failed"] == 1 and action.outcomes["retry"] == 0
    assert action.pending() == 0
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("400" in m and "a-400" in m for m in errors)
    signature = sink.requests[0].headers["driftd-signature"]
    for record in caplog.records:
        text = record.getMessage()
        assert secret.decode() not in text
        assert signature not in text and signature.split("v1=")[1] not in text


def test_receiver_down_then_up(
    sink: WebhookSink, make_action: MakeAction, make_alert: MakeAlert
) -> None:
    sink.down()
    action = make_action()
    action.start()
    assert action.submit(make_alert())
    assert _wait_until(lambda: action.outcomes["retry"] >= 2)
    assert action.pending() == 1
    sink.up()
    assert action.flush(5.0)
    assert action.outcomes["delivered"] == 1
    assert len(sink.requests) == 1


def test_slow_receiver_never_blocks_submit(
    sink: WebhookSink, make_action: MakeAction, make_alert: MakeAlert
) -> None:
    sink.respond(204, delay_s=3.0, times=1)
    action = make_action(timeout_s=0.2)
    action.start()
    action.submit(make_alert("slow-1"))
    assert sink.wait_for(1)  # the sender is now stuck on the slow request
    started = time.monotonic()
    for i in range(20):
        assert action.submit(make_alert(f"fast-{i}"))
    assert time.monotonic() - started < 0.5
    assert action.flush(10.0)
    assert action.outcomes["delivered"] == 21
    assert action.outcomes["retry"] >= 1  # the timed-out attempt


def test_outbox_survives_restart(
    sink: WebhookSink, make_action: MakeAction, make_alert: MakeAlert, outbox_dir: Path
) -> None:
    sink.respond(503)
    first = make_action()
    first.start()
    first.submit(make_alert("r1"))
    first.submit(make_alert("r2"))
    assert _wait_until(lambda: first.outcomes["retry"] >= 2)
    assert first.stop(5.0)
    assert first.pending() == 2
    stored = [orjson.loads(p.read_bytes()) for p in outbox_dir.glob("*.json")]
    assert sum(e["attempts"] for e in stored) >= 2  # retry schedule was persisted

    sink.respond(204)
    second = make_action()  # a new process on the same directory
    assert second.pending() == 2
    second.start()
    assert second.flush(5.0)
    delivered = {r.headers["idempotency-key"] for r in sink.requests if True}
    assert delivered == {"r1", "r2"}
    assert second.outcomes["delivered"] == 2
    assert list(outbox_dir.glob("*.json")) == []


def test_submit_is_idempotent(
    sink: WebhookSink, make_action: MakeAction, make_alert: MakeAlert
) -> None:
    action = make_action()
    assert action.submit(make_alert("same"))
    assert action.submit(make_alert("same"))
    assert action.pending() == 1
    action.start()
    assert action.flush(5.0)
    assert action.submit(make_alert("same"))  # already delivered by this process: no-op
    assert action.flush(5.0)
    time.sleep(0.05)
    assert len(sink.requests) == 1
    assert action.outcomes["delivered"] == 1


def test_bounded_outbox_drops_and_counts(
    make_action: MakeAction, make_alert: MakeAlert, caplog: pytest.LogCaptureFixture
) -> None:
    action = make_action(max_pending=2)  # not started: nothing drains
    assert action.submit(make_alert("b1")) and action.submit(make_alert("b2"))
    with caplog.at_level(logging.ERROR):
        assert action.submit(make_alert("b3")) is False
    assert action.outcomes["dropped"] == 1
    assert action.pending() == 2
    assert any("full" in r.getMessage() for r in caplog.records)


def test_dry_run_sends_nothing(
    sink: WebhookSink,
    make_action: MakeAction,
    make_alert: MakeAlert,
    caplog: pytest.LogCaptureFixture,
    secret: bytes,
) -> None:
    action = make_action(dry_run=True)
    action.start()
    with caplog.at_level(logging.INFO, logger="driftd.actions"):
        action.submit(make_alert("dry-1"))
        assert action.flush(5.0)
    assert sink.requests == []
    assert action.outcomes["dry_run"] == 1 and action.outcomes["delivered"] == 0
    messages = [r.getMessage() for r in caplog.records]
    assert any("dry run" in m and "dry-1" in m and "rollback_to" in m for m in messages)
    assert not any(secret.decode() in m or "v1=" in m for m in messages)


def test_max_attempts_gives_up(
    sink: WebhookSink, make_action: MakeAction, make_alert: MakeAlert
) -> None:
    sink.respond(500)
    action = make_action(max_attempts=3)
    action.start()
    action.submit(make_alert())
    assert action.flush(5.0)
    assert len(sink.requests) == 3
    assert action.outcomes == {"delivered": 0, "retry": 2, "failed": 1, "dropped": 0, "dry_run": 0}


def test_stop_keeps_pending(
    sink: WebhookSink, make_action: MakeAction, make_alert: MakeAlert
) -> None:
    sink.respond(500)
    action = make_action()
    action.start()
    action.submit(make_alert())
    assert sink.wait_for(2)
    assert action.stop(5.0)
    assert action.pending() == 1
    assert not action.flush(0.05)


def test_rejects_bad_alerts_at_submit(make_action: MakeAction, make_alert: MakeAlert) -> None:
    action = make_action()
    with pytest.raises(ValueError):
        action.submit({"type": "drift.detected"})
    with pytest.raises(ValueError):
        action.submit(make_alert(extra=object()))
    assert action.pending() == 0


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"url": "ftp://x/hook"}, "url"),
        ({"url": "http://user:pw@localhost/hook"}, "url"),
        ({"url": "http://localhost:99999/hook"}, "url"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"backoff_initial_s": 5.0, "backoff_max_s": 1.0}, "backoff_initial_s"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"secret": b""}, "secret"),
        ({"format": "xml"}, "format"),
        ({"headers": {"Idempotency-Key": "x"}}, "headers"),
        ({"headers": {"X-Bad": "a\r\nInjected: 1"}}, "headers"),
    ],
)
def test_config_validation(make_action: MakeAction, overrides: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_action(**overrides)
    assert info.value.key == f"actions.rollback.{key}"


def test_repr_hides_secret_and_query(make_action: MakeAction, secret: bytes) -> None:
    action = make_action(url="http://127.0.0.1:9/hook?token=abc")
    text = repr(action)
    assert secret.decode() not in text and "token" not in text

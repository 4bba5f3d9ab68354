"""Webhook actions built from config against real local HTTPS receivers: a bearer token over
TLS with a private CA, mutual TLS, a wrong CA (retried, failed, nothing sent in clear)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from tls_testutil import Pki, WireTap, make_pki

from driftd.actions import build_actions
from driftd.actions.signing import verify
from driftd.actions.webhook import WebhookAction
from driftd.config import WebhookActionConfig
from driftd.demo.sink import WebhookSink
from driftd.errors import ConfigError

TOKEN = "tok-3c9e1f-deployer"
MakeAlert = Callable[..., dict[str, Any]]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def started() -> Iterator[list[WebhookAction]]:
    actions: list[WebhookAction] = []
    yield actions
    for action in actions:
        assert action.stop(5.0)


def _https_sink(pki: Pki, secret: bytes, *, mtls: bool = False) -> WebhookSink:
    sink = WebhookSink(
        secret, ssl_context=pki.server_context(require_client_cert=mtls), bearer_token=TOKEN
    )
    sink.start()
    return sink


def _action(
    raw: dict[str, Any], tmp_path: Path, started: list[WebhookAction], name: str = "rollback"
) -> WebhookAction:
    cfg = WebhookActionConfig.model_validate(
        {
            "type": "webhook",
            "backoff_initial_s": 0.01,
            "backoff_max_s": 0.02,
            "timeout_s": 3.0,
            **raw,
        }
    )
    action = build_actions({name: cfg}, tmp_path / "outbox")[name]
    started.append(action)
    action.start()
    return action


def test_bearer_token_over_https_with_private_ca(
    pki: Pki,
    tmp_path: Path,
    started: list[WebhookAction],
    make_alert: MakeAlert,
    secret: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEPLOYER_TOKEN", f"Bearer {TOKEN}")
    monkeypatch.setenv("WEBHOOK_SECRET", secret.decode())
    sink = _https_sink(pki, secret)
    try:
        action = _action(
            {
                "url": sink.url,
                "secret": {"env": "WEBHOOK_SECRET"},
                "headers": {"Authorization": {"env": "DEPLOYER_TOKEN"}, "X-Team": "ml"},
                "tls": {"ca_file": str(pki.ca)},
            },
            tmp_path,
            started,
        )
        alert = make_alert()
        assert action.submit(alert)
        assert action.flush(10.0)
        assert action.outcomes["delivered"] == 1
        (request,) = sink.requests
        assert request.verified and verify(
            secret, request.body, request.headers["driftd-signature"]
        )
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        assert request.headers["x-team"] == "ml"
        assert request.headers["idempotency-key"] == alert["id"]
        assert orjson.loads(request.body) == alert
    finally:
        sink.stop()


def test_wrong_token_is_final_401(
    pki: Pki, tmp_path: Path, started: list[WebhookAction], make_alert: MakeAlert, secret: bytes
) -> None:
    sink = _https_sink(pki, secret)
    try:
        action = _action(
            {
                "url": sink.url,
                "secret": {"value": secret.decode()},
                "headers": {"Authorization": "Bearer not-the-token"},
                "tls": {"ca_file": str(pki.ca)},
            },
            tmp_path,
            started,
        )
        action.submit(make_alert())
        assert action.flush(10.0)
        assert action.outcomes["failed"] == 1 and action.outcomes["delivered"] == 0
        assert len(sink.requests) == 1  # 401 is final: not retried
    finally:
        sink.stop()


def test_client_certificate_required(
    pki: Pki, tmp_path: Path, started: list[WebhookAction], make_alert: MakeAlert, secret: bytes
) -> None:
    sink = _https_sink(pki, secret, mtls=True)
    try:
        common = {
            "url": sink.url,
            "secret": {"value": secret.decode()},
            "headers": {"Authorization": f"Bearer {TOKEN}"},
            "max_attempts": 2,
        }
        without = _action(
            {**common, "tls": {"ca_file": str(pki.ca)}}, tmp_path / "a", started, "nocert"
        )
        without.submit(make_alert("no-cert"))
        assert without.flush(10.0)
        assert without.outcomes["failed"] == 1 and sink.requests == []

        with_cert = _action(
            {
                **common,
                "tls": {
                    "ca_file": str(pki.ca),
                    "cert_file": str(pki.client_cert),
                    "key_file": str(pki.client_key),
                },
            },
            tmp_path / "b",
            started,
        )
        with_cert.submit(make_alert("with-cert"))
        assert with_cert.flush(10.0)
        assert with_cert.outcomes["delivered"] == 1
        assert [r.headers["idempotency-key"] for r in sink.requests] == ["with-cert"]
    finally:
        sink.stop()


@pytest.mark.parametrize("ca", ["wrong", "system"])
def test_untrusted_server_is_retried_failed_and_never_sent_in_clear(
    ca: str,
    pki: Pki,
    tmp_path: Path,
    started: list[WebhookAction],
    make_alert: MakeAlert,
    secret: bytes,
) -> None:
    sink = _https_sink(pki, secret)
    tap = WireTap(sink.port or 0)
    try:
        tls = {"ca_file": str(pki.wrong_ca)} if ca == "wrong" else None  # certifi: no test CA
        action = _action(
            {
                "url": f"https://127.0.0.1:{tap.port}/hook",
                "secret": {"value": secret.decode()},
                "headers": {"Authorization": f"Bearer {TOKEN}"},
                "tls": tls,
                "max_attempts": 3,
            },
            tmp_path,
            started,
        )
        alert = make_alert("secret-alert-7f1b")
        action.submit(alert)
        assert action.flush(10.0)
        assert action.outcomes == {
            "delivered": 0,
            "retry": 2,
            "failed": 1,
            "dropped": 0,
            "dry_run": 0,
        }
        assert sink.requests == []
        assert tap.connections == 3
        wire = tap.sent
        assert wire  # a TLS handshake was attempted ...
        for clear in (b"secret-alert-7f1b", b"rollback_to", TOKEN.encode(), b"POST"):
            assert clear not in wire  # ... but no request line, header or body in clear
    finally:
        tap.close()
        sink.stop()


def test_https_request_is_encrypted_on_the_wire(
    pki: Pki, tmp_path: Path, started: list[WebhookAction], make_alert: MakeAlert, secret: bytes
) -> None:
    sink = _https_sink(pki, secret)
    tap = WireTap(sink.port or 0)
    try:
        action = _action(
            {
                "url": f"https://127.0.0.1:{tap.port}/hook",
                "secret": {"value": secret.decode()},
                "headers": {"Authorization": f"Bearer {TOKEN}"},
                "tls": {"ca_file": str(pki.ca)},
            },
            tmp_path,
            started,
        )
        action.submit(make_alert("clear-check-1"))
        assert action.flush(10.0)
        assert action.outcomes["delivered"] == 1 and len(sink.requests) == 1
        assert b"clear-check-1" not in tap.sent and TOKEN.encode() not in tap.sent
    finally:
        tap.close()
        sink.stop()


def test_secret_references_resolved_with_keys(tmp_path: Path, pki: Pki) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("Bearer from-file\n")
    cfg = WebhookActionConfig.model_validate(
        {
            "type": "webhook",
            "url": "https://127.0.0.1:9/hook",
            "headers": {"Authorization": {"file": str(token_file)}},
            "proxy": {"env": "DRIFTD_TEST_UNSET_PROXY"},
        }
    )
    with pytest.raises(ConfigError) as info:
        build_actions({"rollback": cfg}, tmp_path / "outbox")
    assert info.value.key == "actions.rollback.proxy.env"

    cfg = cfg.model_copy(update={"proxy": None})
    cfg_bad_ca = WebhookActionConfig.model_validate(
        {
            "type": "webhook",
            "url": "https://127.0.0.1:9/hook",
            "tls": {"ca_file": str(tmp_path / "missing.pem")},
        }
    )
    with pytest.raises(ConfigError) as info:
        build_actions({"rollback": cfg_bad_ca}, tmp_path / "outbox")
    assert info.value.key == "actions.rollback.tls.ca_file"
    action = build_actions({"rollback": cfg}, tmp_path / "outbox2")["rollback"]
    assert "from-file" not in repr(action)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"url": "http://:8080/hook"}, "url"),
        ({"url": "http://deployer:99999/hook"}, "url"),
        ({"url": "http://user:pw@deployer/hook"}, "url"),
        ({"headers": {"Driftd-Signature": "x"}}, "headers"),
        ({"headers": {"Bad Name": "x"}}, "headers"),
        ({"proxy": "ftp://proxy:21"}, "proxy"),
        ({"tls": {"ca_file": "/tmp/ca.pem"}}, "tls"),  # tls with an http:// url
        ({"tls": {"url": "x"}, "url": "https://d/h"}, "tls.url"),
        ({"tls": {"key_file": "k.pem"}, "url": "https://d/h"}, "tls.key_file"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_pending": 0}, "max_pending"),
        ({"concurrency": 0}, "concurrency"),
        ({"backoff_initial_s": 10, "backoff_max_s": 1}, "backoff_initial_s"),
    ],
)
def test_config_errors_name_the_key(raw: dict[str, Any], key: str) -> None:
    from driftd.config import validate_config

    data = {
        "monitors": [
            {
                "name": "m",
                "model": "x",
                "reference": {"type": "warmup"},
                "features": {"a": {"kind": "numeric"}},
            }
        ],
        "actions": {"rollback": {"type": "webhook", "url": "http://deployer/hook", **raw}},
    }
    with pytest.raises(ConfigError) as info:
        validate_config(data)
    assert info.value.key == f"actions.rollback.{key}"
    assert "pw@" not in str(info.value)  # userinfo is never echoed

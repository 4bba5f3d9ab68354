"""Rollback webhooks over HTTPS from `driftd run` on the real broker, through the CLI and HTTP
only: a deployer behind a gateway (bearer token, private CA), one that also requires a client
certificate, and a misconfigured action trusting the wrong CA (retried, counted as failed, and
not one byte of the alert in clear on the wire)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import yaml
from driftd_testutil import (
    SECRET,
    Driftd,
    build_credit_profile,
    credit_config,
    http_get,
    metric_value,
    wait_until,
)
from kafka_harness import produce
from tls_testutil import WireTap, make_pki

from driftd.demo.credit import generate
from driftd.demo.sink import WebhookSink

TOKEN = "gw-token-51d0e7"


@pytest.mark.kafka
def test_alerts_reach_https_receivers_with_token_and_client_cert(
    tmp_path: Path,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    driftd_proc: Callable[..., Driftd],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pki = make_pki(tmp_path / "pki")
    (tmp_path / "profile").mkdir()
    profile = build_credit_profile(tmp_path / "profile")
    topic = make_topic(partitions=1)
    gateway = WebhookSink(SECRET, ssl_context=pki.server_context(), bearer_token=TOKEN)
    mtls = WebhookSink(
        SECRET, ssl_context=pki.server_context(require_client_cert=True), bearer_token=TOKEN
    )
    with gateway, mtls:
        tap = WireTap(gateway.port or 0)
        try:
            cfg = credit_config(
                tmp_path,
                profile=profile,
                bootstrap=kafka_bootstrap,
                topic=topic,
                group=f"tls-{topic}",
                webhook_url=gateway.url,
            )
            doc = yaml.safe_load(cfg.read_text())
            base = doc["actions"]["rollback"]
            auth = {"Authorization": {"env": "DRIFTD_TEST_DEPLOYER_TOKEN"}}
            doc["actions"] = {
                "gateway": {**base, "headers": auth, "tls": {"ca_file": str(pki.ca)}},
                "mtls": {
                    **base,
                    "url": mtls.url,
                    "headers": auth,
                    "tls": {
                        "ca_file": str(pki.ca),
                        "cert_file": str(pki.client_cert),
                        "key_file": str(pki.client_key),
                    },
                },
                "wrong_ca": {
                    **base,
                    "url": f"https://127.0.0.1:{tap.port}/hook",
                    "headers": auth,
                    "tls": {"ca_file": str(pki.wrong_ca)},
                    "max_attempts": 3,
                },
            }
            doc["monitors"][0]["actions"] = ["gateway", "mtls", "wrong_ca"]
            cfg.write_text(yaml.safe_dump(doc))
            monkeypatch.setenv("DRIFTD_TEST_DEPLOYER_TOKEN", f"Bearer {TOKEN}")

            events = list(generate(6000, version="v1", seed=31)) + list(
                generate(6000, version="v2", seed=32, score_shift=1.0)
            )
            produce(kafka_bootstrap, topic, events)
            d = driftd_proc(cfg)
            wait_until(d.ready, 60, "/readyz")

            def outcome(action: str, what: str) -> float:
                text = http_get(d.base + "/metrics")[1].decode()
                value = metric_value(
                    text, "driftd_webhook_deliveries_total", action=action, outcome=what
                )
                return value or 0.0

            wait_until(
                lambda: outcome("gateway", "delivered") >= 1 and outcome("mtls", "delivered") >= 1,
                90,
                "rollback delivered to both HTTPS receivers",
            )
            wait_until(lambda: outcome("wrong_ca", "failed") >= 1, 60, "wrong-CA action failed")

            for sink in (gateway, mtls):
                accepted = [r for r in sink.requests if r.verified]
                assert accepted, "no signed request arrived"
                alert = orjson.loads(accepted[0].body)
                assert alert["type"] == "drift.detected" and alert["model_version"] == "v2"
                assert alert["rollback_to"] == "v1"
                assert accepted[0].headers["authorization"] == f"Bearer {TOKEN}"
                assert accepted[0].headers["idempotency-key"] == alert["id"]
            assert outcome("wrong_ca", "retry") >= 2 and outcome("wrong_ca", "delivered") == 0
            # The wrong-CA action's handshakes went through the tap to the gateway's port; the
            # gateway saw no request from it and the wire carried nothing readable.
            assert tap.connections >= 3
            wire = tap.sent
            for clear in (b"drift.detected", b"rollback_to", TOKEN.encode(), b"POST /hook"):
                assert clear not in wire
            log = d.log_text()
            assert TOKEN not in log and SECRET.decode() not in log
            assert "CERTIFICATE_VERIFY_FAILED" in log or "certificate verify failed" in log
        finally:
            tap.close()

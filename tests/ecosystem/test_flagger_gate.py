"""driftd as a Flagger ``rollback`` webhook, over real HTTP.

Flagger POSTs ``{"name", "namespace", "phase", "checksum", "metadata"}`` to each rollback hook
while a canary is Progressing or Waiting, and rolls back when a hook succeeds — Flagger's
webhook client counts a status up to 202 as success. driftd's gate must therefore answer 200
only while the canary's model version has an open drift alert, and non-2xx otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
import yaml
from ecosystem_support import Live, http

from driftd.metrics import build_registry
from driftd.runtime.http import HttpServer
from driftd.runtime.pipeline import Pipeline

CANARY = Path("config/flagger/canary.yaml")


def flagger_rolls_back(status: int) -> bool:
    # flagger pkg/controller/webhook.go: `if r.StatusCode > 202 { return error }`
    return status <= 202


def flagger_call(base: str, path: str, metadata: dict[str, str] | None) -> tuple[int, Any]:
    payload: dict[str, Any] = {
        "name": "credit-scoring",
        "namespace": "models",
        "phase": "Progressing",
        "checksum": "6d5d8c9f",
    }
    if metadata is not None:
        payload["metadata"] = metadata
    status, body = http(
        base + path,
        method="POST",
        body=orjson.dumps(payload),
        headers={"Content-Type": "application/json"},
    )
    return status, orjson.loads(body)


@pytest.fixture(scope="module")
def hook(repo: Path) -> dict[str, Any]:
    doc = yaml.safe_load((repo / CANARY).read_text())
    assert doc["apiVersion"] == "flagger.app/v1beta1" and doc["kind"] == "Canary"
    hooks = [h for h in doc["spec"]["analysis"]["webhooks"] if h["type"] == "rollback"]
    assert len(hooks) == 1
    return dict(hooks[0])


def test_canary_example_points_at_the_gate(hook: dict[str, Any]) -> None:
    url = urlsplit(hook["url"])
    assert url.path == "/api/v1/gates/credit/rollback"
    assert url.port == 9108
    assert set(hook["metadata"]) == {"model_version"}


def test_drifted_canary_is_rolled_back(live: Live, hook: dict[str, Any]) -> None:
    path = urlsplit(hook["url"]).path
    status, body = flagger_call(live.base, path, {"model_version": live.drifted_version})
    assert status == 200 and flagger_rolls_back(status)
    assert body["rollback"] is True and body["state"] == "alerting"
    assert body["model_version"] == "v2" and body["rollback_to"] == "v1"


def test_clean_canary_is_not_rolled_back(live: Live, hook: dict[str, Any]) -> None:
    path = urlsplit(hook["url"]).path
    status, body = flagger_call(live.base, path, {"model_version": live.clean_version})
    assert status == 409 and not flagger_rolls_back(status)
    assert body["rollback"] is False and body["model_version"] == "v1"


def test_version_without_data_is_not_rolled_back(live: Live) -> None:
    status, body = flagger_call(live.base, "/api/v1/gates/credit/rollback", {"model_version": "v9"})
    assert status == 409 and body["state"] == "no_data"


def test_version_selection(live: Live) -> None:
    gate = "/api/v1/gates/credit/rollback"
    # no metadata: the monitor's most recently seen version (v2, drifted)
    status, body = flagger_call(live.base, gate, None)
    assert (status, body["model_version"]) == (200, "v2")
    # the query string wins over metadata
    status, body = flagger_call(live.base, gate + "?model_version=v1", {"model_version": "v2"})
    assert (status, body["model_version"]) == (409, "v1")
    # GET works too (curl, probes)
    assert http(live.base + gate + "?model_version=v2")[0] == 200
    assert http(live.base + gate + "?model_version=v1")[0] == 409
    # empty POST body, as some tools send
    assert http(live.base + gate, method="POST", body=b"")[0] == 200


def test_gate_errors_are_never_2xx(live: Live) -> None:
    status, _ = flagger_call(live.base, "/api/v1/gates/nope/rollback", {"model_version": "v2"})
    assert status == 404
    status, _ = flagger_call(live.base, "/api/v1/gates/credit/promote", {"model_version": "v2"})
    assert status == 404
    status, _ = http(live.base + "/api/v1/gates/credit/rollback", method="POST", body=b"{nope")
    assert status == 400
    status, _ = http(live.base + "/api/v1/gates/credit/rollback", method="POST", body=b"[1]")
    assert status == 400
    assert http(live.base + "/api/v1/monitors/credit", method="POST", body=b"{}")[0] == 404


@pytest.fixture
def idle(live: Live) -> Iterator[str]:
    engine = Pipeline(live.engine.cfg)
    reg = build_registry(engine.status)
    srv = HttpServer("127.0.0.1", 0, engine.status, reg, lambda: (True, "consuming"))
    srv.start()
    try:
        yield f"http://127.0.0.1:{srv.port}"
    finally:
        srv.stop()


def test_monitor_without_any_data_is_not_rolled_back(idle: str) -> None:
    status, body = flagger_call(idle, "/api/v1/gates/credit/rollback", {"model_version": "v2"})
    assert status == 409 and body["rollback"] is False and body["state"] == "no_data"

"""Metrics read at scrape time from an injected registry, and the HTTP endpoints."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from driftd_testutil import build_credit_profile, credit_config

from driftd.config import load_config
from driftd.demo.credit import generate
from driftd.metrics import build_registry
from driftd.runtime.engine import Engine
from driftd.runtime.http import HttpServer
from driftd.types import RawRecord


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    tmp = tmp_path_factory.mktemp("http")
    profile = build_credit_profile(tmp)
    cfg = load_config(credit_config(tmp, profile=profile), environ={})
    e = Engine(cfg)
    lines = list(generate(3000, version="v1", seed=21)) + list(
        generate(3000, version="v2", seed=22, score_shift=1.5)
    )
    lines.insert(10, b"{broken")
    recs = [RawRecord(v, i + 1, None) for i, v in enumerate(lines)]
    for i in range(0, len(recs), 700):
        e.process(recs[i : i + 700])
    return e


@pytest.fixture(scope="module")
def server(engine: Engine) -> Iterator[HttpServer]:
    srv = HttpServer("127.0.0.1", 0, engine, build_registry(engine), lambda: (True, "consuming"))
    srv.start()
    yield srv
    srv.stop()


def get(srv: HttpServer, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}{path}", timeout=5) as r:
            return int(r.status), bytes(r.read())
    except urllib.error.HTTPError as e:
        return int(e.code), e.read()


def test_registry_samples(engine: Engine) -> None:
    reg = build_registry(engine)
    v = reg.get_sample_value
    assert v("driftd_events_total", {"monitor": "credit", "model_version": "v1"}) == 3000
    assert v("driftd_events_total", {"monitor": "credit", "model_version": "v2"}) == 3000
    assert v("driftd_events_rejected_total", {"reason": "invalid_json"}) == 1
    assert v("driftd_monitor_drifted", {"monitor": "credit", "model_version": "v2"}) == 1
    assert v("driftd_monitor_drifted", {"monitor": "credit", "model_version": "v1"}) == 0
    labels = {"monitor": "credit", "model_version": "v2", "feature": "prediction", "test": "psi"}
    assert v("driftd_drift_statistic", labels) > 0.2  # type: ignore[operator]
    assert v("driftd_drift_threshold", labels) == 0.2
    ks = {"monitor": "credit", "model_version": "v1", "feature": "income", "test": "ks"}
    assert 0 <= v("driftd_drift_p_value", ks) <= 1  # type: ignore[operator]
    assert v("driftd_feature_drifted", {"monitor": "credit", "model_version": "v2",
                                        "feature": "prediction"}) == 1
    assert v("driftd_window_events", {"monitor": "credit", "model_version": "v1"}) == 2000
    assert v("driftd_alerts_total", {"monitor": "credit", "severity": "critical"}) == 1
    assert v("driftd_evaluation_duration_seconds_count") == 10  # 5 + 5 steps of 500 after 1000
    assert v("driftd_build_info", {"version": "0.1.0"}) == 1
    # two registries, two independent readers: nothing global
    assert build_registry(engine) is not reg


def test_endpoints(server: HttpServer) -> None:
    assert get(server, "/healthz")[0] == 200
    code, body = get(server, "/readyz")
    assert code == 200 and orjson.loads(body)["ready"] is True
    code, body = get(server, "/metrics")
    assert code == 200 and b"driftd_drift_share" in body
    code, body = get(server, "/api/v1/monitors")
    assert code == 200 and [m["name"] for m in orjson.loads(body)["monitors"]] == ["credit"]


def test_monitor_view_for_argo(server: HttpServer) -> None:
    code, body = get(server, "/api/v1/monitors/credit")
    view = orjson.loads(body)
    assert code == 200
    assert view["model_version"] == "v2" and view["drifted"] is True
    assert view["rollback_to"] == "v1" and view["drift_share"] >= 0
    code, body = get(server, "/api/v1/monitors/credit?model_version=v1")
    assert code == 200 and orjson.loads(body)["drifted"] is False
    assert get(server, "/api/v1/monitors/nope")[0] == 404
    assert get(server, "/nope")[0] == 404


def test_not_ready_is_503(engine: Engine) -> None:
    srv = HttpServer("127.0.0.1", 0, engine, build_registry(engine), lambda: (False, "starting"))
    srv.start()
    try:
        code, body = get(srv, "/readyz")
        assert code == 503 and orjson.loads(body)["reason"] == "starting"
    finally:
        srv.stop()


def test_unknown_version_view_is_still_200(server: HttpServer, tmp_path: Path) -> None:
    code, body = get(server, "/api/v1/monitors/credit?model_version=v9")
    assert code == 200 and orjson.loads(body)["drifted"] is False

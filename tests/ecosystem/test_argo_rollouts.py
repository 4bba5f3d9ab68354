"""Argo Rollouts' web metric provider against driftd's status endpoint, done the way Argo does
it: render the AnalysisTemplate's URL, HTTP GET (a non-2xx answer is a measurement error),
parse the JSON, apply the template's ``jsonPath`` and evaluate its ``successCondition``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from ecosystem_support import Live, condition, http, jsonpath, render

from driftd.metrics import build_registry
from driftd.runtime.http import HttpServer
from driftd.runtime.pipeline import Pipeline

WEB = Path("config/argo/analysis-template-web.yaml")
PROMETHEUS = Path("config/argo/analysis-template-prometheus.yaml")


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def web_template(repo: Path) -> dict[str, Any]:
    doc = yaml.safe_load((repo / WEB).read_text())
    assert doc["apiVersion"] == "argoproj.io/v1alpha1" and doc["kind"] == "AnalysisTemplate"
    return dict(doc)


def measure(template: dict[str, Any], metric: str, base: str, version: str) -> tuple[Any, bool]:
    """One Argo measurement: (value read by jsonPath, successCondition)."""
    spec = template["spec"]
    m = next(x for x in spec["metrics"] if x["name"] == metric)
    args = {a["name"]: a.get("value", "") for a in spec["args"]}
    args.update({"driftd-url": base, "canary-version": version})
    web = m["provider"]["web"]
    url = render(web["url"], args)
    headers = {h["key"]: h["value"] for h in web.get("headers", [])}
    status, body = http(url, headers=headers)
    assert 200 <= status < 300, f"Argo would record an error: HTTP {status} from {url}"
    value = jsonpath(web["jsonPath"], orjson.loads(body))
    return value, condition(m["successCondition"], value)


@pytest.fixture
def idle(live: Live) -> Iterator[str]:
    """driftd with the same monitor configured but no event received yet."""
    engine = Pipeline(live.engine.cfg)
    reg = build_registry(engine.status)
    srv = HttpServer("127.0.0.1", 0, engine.status, reg, lambda: (True, "consuming"))
    srv.start()
    try:
        yield f"http://127.0.0.1:{srv.port}"
    finally:
        srv.stop()


# -- tests ------------------------------------------------------------------------------------


def test_template_reads_drifted_and_drift_share(web_template: dict[str, Any]) -> None:
    metrics = {m["name"]: m for m in web_template["spec"]["metrics"]}
    paths = {m["provider"]["web"]["jsonPath"] for m in metrics.values()}
    assert paths == {"{$.drifted}", "{$.drift_share}"}
    for m in metrics.values():
        url = m["provider"]["web"]["url"]
        assert "/api/v1/monitors/{{args.monitor}}?model_version={{args.canary-version}}" in url
        assert m["successCondition"]
    assert {a["name"] for a in web_template["spec"]["args"]} >= {"canary-version", "monitor"}


def test_drifted_version_fails_the_analysis(live: Live, web_template: dict[str, Any]) -> None:
    value, ok = measure(web_template, "driftd-drifted", live.base, live.drifted_version)
    assert value is True and ok is False
    share, ok = measure(web_template, "driftd-drift-share", live.base, live.drifted_version)
    assert isinstance(share, float) and 0.0 <= share <= 1.0
    assert ok is (share < 0.5)


def test_clean_version_passes(live: Live, web_template: dict[str, Any]) -> None:
    assert measure(web_template, "driftd-drifted", live.base, live.clean_version) == (False, True)
    share, ok = measure(web_template, "driftd-drift-share", live.base, live.clean_version)
    assert share < 0.5 and ok is True


def test_version_without_data_is_200_and_passes(live: Live, web_template: dict[str, Any]) -> None:
    # a canary whose events have not arrived yet must not fail (nor error) the analysis
    assert measure(web_template, "driftd-drifted", live.base, "v9") == (False, True)
    assert measure(web_template, "driftd-drift-share", live.base, "v9") == (0.0, True)


def test_known_monitor_with_no_data_yet_is_200(idle: str, web_template: dict[str, Any]) -> None:
    status, body = http(f"{idle}/api/v1/monitors/credit")
    view = orjson.loads(body)
    assert status == 200
    assert view["drifted"] is False and view["drift_share"] == 0.0
    assert view["state"] == "no_data" and view["versions"] == {}
    assert measure(web_template, "driftd-drifted", idle, "v2") == (False, True)
    assert measure(web_template, "driftd-drift-share", idle, "v2") == (0.0, True)


def test_unknown_monitor_is_an_error_for_argo(live: Live) -> None:
    # a typo in args.monitor must surface as a failing measurement, not as "no drift"
    assert http(f"{live.base}/api/v1/monitors/credti?model_version=v2")[0] == 404


def test_prometheus_template_shape(repo: Path) -> None:
    doc = yaml.safe_load((repo / PROMETHEUS).read_text())
    assert doc["kind"] == "AnalysisTemplate"
    queries = {m["name"]: m["provider"]["prometheus"]["query"] for m in doc["spec"]["metrics"]}
    assert "driftd_monitor_drifted" in queries["driftd-drifted"]
    assert "driftd_drift_share" in queries["driftd-drift-share"]
    for m in doc["spec"]["metrics"]:
        q = m["provider"]["prometheus"]["query"]
        assert 'model_version="{{args.canary-version}}"' in q and "or vector(0)" in q
        assert m["successCondition"].startswith("result[0]")


def test_condition_evaluator_follows_expr_typing() -> None:
    assert condition("result == false", False) is True
    assert condition("result == false", 0.0) is False  # Go: a float never equals a bool
    assert condition("result < 0.5", 0.25) is True
    assert condition("result[0] == 0", [0.0]) is True
    with pytest.raises(TypeError):
        condition("result < 0.5", True)
    with pytest.raises(LookupError):
        jsonpath("{$.nope}", {"drifted": True})

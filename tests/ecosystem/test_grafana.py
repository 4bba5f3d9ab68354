"""The Grafana dashboard and its provisioning files: structure Grafana needs to load them, and
the views the issue asks for. (That every query selects exported series: test_metric_names.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

DASHBOARD = Path("config/grafana/driftd-dashboard.json")
PROVISIONING = Path("config/grafana/provisioning")


@pytest.fixture(scope="module")
def dash(repo: Path) -> dict[str, Any]:
    return dict(json.loads((repo / DASHBOARD).read_text()))


def panels(dash: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for p in dash["panels"]:
        yield p
        yield from p.get("panels", [])


def exprs(p: dict[str, Any]) -> list[str]:
    return [str(t["expr"]) for t in p.get("targets", [])]


def test_dashboard_identity(dash: dict[str, Any]) -> None:
    assert dash["uid"] == "driftd-overview" and dash["title"] == "driftd"
    assert isinstance(dash["schemaVersion"], int)
    assert "id" not in dash or dash["id"] is None  # provisioned dashboards must not pin an id


def test_templating_variables(dash: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert {"datasource", "monitor", "model_version", "segment"} <= set(variables)
    # segments of the selected versions; All (.*) also matches the overall, unlabelled series
    segment = variables["segment"]
    assert "driftd_segment_events" in segment["query"]["query"]
    assert segment["includeAll"] and segment["allValue"] == ".*"
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("monitor", "model_version"):
        v = variables[name]
        assert v["type"] == "query" and v["multi"] and v["includeAll"]
        assert v["datasource"]["uid"] == "${datasource}"
    # model_version values follow the chosen monitor
    assert "$monitor" in variables["model_version"]["query"]["query"]


def test_panels_are_wellformed(dash: dict[str, Any]) -> None:
    ids = [p["id"] for p in panels(dash)]
    assert len(ids) == len(set(ids))
    for p in panels(dash):
        pos = p["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24 and pos["h"] > 0, p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}"


def test_required_views(dash: dict[str, Any]) -> None:
    by_title = {p["title"]: p for p in panels(dash)}

    def has(title: str, *fragments: str) -> None:
        text = " ".join(exprs(by_title[title]))
        for f in fragments:
            assert f in text, f"{title}: {f!r} missing"

    has("Drift statistic vs threshold (distance tests)", "driftd_drift_statistic",
        "driftd_drift_threshold")  # fmt: skip
    has("p-value vs threshold (hypothesis tests)", "driftd_drift_p_value", "driftd_drift_threshold")
    has("Drift share", "driftd_drift_share")
    has("Events accepted /s", "rate(driftd_events_total")
    has("Events rejected /s by reason", "sum by (reason)", "driftd_events_rejected_total")
    has("Consumer lag", "driftd_consumer_lag")
    has("Webhook deliveries by outcome", "outcome", "driftd_webhook_deliveries_total")
    has("Evaluation latency", "histogram_quantile(0.5,", "histogram_quantile(0.99,",
        "driftd_evaluation_duration_seconds_bucket")  # fmt: skip
    has("Model performance on labelled events", "driftd_performance{")
    has("Performance degraded", "driftd_performance_degraded")
    has("Labelled events /s", "rate(driftd_labelled_events_total")
    # drift views of a version can be narrowed to segments
    for title in ("Drift statistic vs threshold (distance tests)", "Drift share",
                  "Features drifted", "Open drift alerts"):  # fmt: skip
        assert 'segment=~"$segment"' in " ".join(exprs(by_title[title])), title
    # per-monitor views honour the monitor / model_version variables
    for title in ("Drift statistic vs threshold (distance tests)", "Drift share",
                  "Events accepted /s", "Features drifted"):  # fmt: skip
        text = " ".join(exprs(by_title[title]))
        assert '$monitor"' in text and '$model_version"' in text, title


def test_provisioning(repo: Path, dash: dict[str, Any]) -> None:
    ds_files = sorted((repo / PROVISIONING / "datasources").glob("*.yml"))
    db_files = sorted((repo / PROVISIONING / "dashboards").glob("*.yml"))
    assert ds_files and db_files
    for f in ds_files + db_files:
        assert yaml.safe_load(f.read_text())["apiVersion"] == 1, f
    datasources = [d for f in ds_files for d in yaml.safe_load(f.read_text())["datasources"]]
    assert [d["type"] for d in datasources] == ["prometheus"]
    providers = [p for f in db_files for p in yaml.safe_load(f.read_text())["providers"]]
    assert [p["type"] for p in providers] == ["file"]
    assert providers[0]["options"]["path"].startswith("/")
    default = next(v for v in dash["templating"]["list"] if v["name"] == "datasource")
    assert default["current"]["value"] == datasources[0]["uid"]

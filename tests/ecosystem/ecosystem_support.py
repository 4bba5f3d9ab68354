"""Helpers shared by the ecosystem tests (imported as ``ecosystem_support``).

- a real HTTP client (``http``) and ``promtool`` runner that fail, never skip, without promtool
- the two bits of Argo Rollouts the tests imitate: Kubernetes JSONPath ``{$.a.b}`` and
  expr-lang's ``result <op> literal`` conditions
- the PromQL we ship (dashboard, rules, Argo template), extracted and parsed
"""

from __future__ import annotations

import json
import operator
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from driftd.actions.webhook import WebhookAction
from driftd.runtime.http import HttpServer
from driftd.runtime.pipeline import Pipeline

REPO = Path(__file__).resolve().parents[2]

# Series Prometheus itself adds for every scrape target (not exported by driftd).
PROMETHEUS_SYNTHETIC = frozenset(
    {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added"}
)

# Series the dashboard selects that the live fixture (one monitor, no segments, no labels) does
# not produce: the performance row and the segment variable. The checks of live queries hold
# them to a weaker standard — the family is declared by driftd.metrics and the query parses
# and runs — until the fixture grows a segmented, labelled monitor.
NOT_IN_LIVE_SCRAPE = frozenset(
    {
        "driftd_performance",
        "driftd_performance_degraded",
        "driftd_labelled_events_total",
        "driftd_segment_events_total",
        "driftd_segment_events",
    }
)
# Labels only segmented monitors' series carry (`segment=~"$segment"` in the dashboard).
LABELS_NOT_IN_LIVE_SCRAPE = frozenset({"segment"})


def declared_by_driftd(name: str) -> bool:
    """The family behind a sample name is created in driftd/metrics.py."""
    family = name.removesuffix("_total")
    return f'"{family}"' in (REPO / "driftd" / "metrics.py").read_text()


# DESIGN.md "Metrics": the stable names (families; counters carry _total in samples).
DESIGN_FAMILIES = frozenset(
    {
        "driftd_events",
        "driftd_events_rejected",
        "driftd_drift_statistic",
        "driftd_drift_p_value",
        "driftd_drift_threshold",
        "driftd_feature_drifted",
        "driftd_monitor_drifted",
        "driftd_drift_share",
        "driftd_window_events",
        "driftd_alerts",
        "driftd_webhook_deliveries",
        "driftd_webhook_pending",
        "driftd_consumer_lag",
        "driftd_last_evaluation_timestamp_seconds",
        "driftd_evaluation_duration_seconds",
        "driftd_build_info",
    }
)


@dataclass(frozen=True)
class Live:
    """A running driftd HTTP listener and what it was fed."""

    engine: Pipeline
    server: HttpServer
    action: WebhookAction
    payloads: tuple[dict[str, Any], ...]  # webhook payloads of the alerts the engine raised
    drifted_version: str = "v2"
    clean_version: str = "v1"
    monitor: str = "credit"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


def http(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """One real HTTP request; returns (status, body) for 2xx and error statuses alike."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return int(r.status), bytes(r.read())
    except urllib.error.HTTPError as e:
        return int(e.code), e.read()


def find_promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool not found: install Debian's prometheus package "
            "(apt-get update && apt-get install -y prometheus); .ci/run does this in CI",
            pytrace=False,
        )
    return path


def run_promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [find_promtool(), *args],
        input=None if stdin is None else stdin.decode(),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "NO_COLOR": "1"},
    )


# -- Argo Rollouts: Kubernetes JSONPath `{$.a.b}` and expr-lang comparisons --------------


def jsonpath(template: str, doc: Any) -> Any:
    """Evaluate a Kubernetes JSONPath template of the form ``{$.field[.field…]}``."""
    m = re.fullmatch(r"\{\$?((?:\.[A-Za-z_][\w-]*)+)\}", template.strip())
    if m is None:
        raise ValueError(f"unsupported jsonPath {template!r}")
    for key in m[1].split(".")[1:]:
        if not isinstance(doc, dict) or key not in doc:
            # Argo: "result of query is empty" -> the measurement errors
            raise LookupError(f"{template} matches nothing")
        doc = doc[key]
    return doc


_OPS = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def condition(expr: str, result: Any) -> bool:
    """expr-lang's ``result[ [i] ] <op> <literal>``, with Go's typing: a bool equals only a
    bool, and ordering compares numbers only (anything else is an evaluation error)."""
    m = re.fullmatch(
        r"\s*result(?:\[(\d+)\])?\s*(==|!=|<=|>=|<|>)\s*(true|false|-?\d+(?:\.\d+)?)\s*", expr
    )
    if m is None:
        raise ValueError(f"unsupported condition {expr!r}")
    value = result[int(m[1])] if m[1] is not None else result
    literal: Any = {"true": True, "false": False}.get(m[3])
    if literal is None:
        literal = float(m[3])
    if isinstance(literal, bool) or isinstance(value, bool):
        if m[2] not in ("==", "!="):
            raise TypeError(f"{expr}: cannot order booleans")
        same = isinstance(value, bool) and isinstance(literal, bool) and value == literal
        return same if m[2] == "==" else not same
    if not isinstance(value, int | float):
        raise TypeError(f"{expr}: result {value!r} is not a number")
    return bool(_OPS[m[2]](float(value), literal))


def render(template: str, args: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*args\.([\w-]+)\s*\}\}", lambda m: args[m[1]], template)


# -- the PromQL we ship -----------------------------------------------------------------------

DASHBOARD = Path("config/grafana/driftd-dashboard.json")
RULES = Path("config/prometheus/driftd-rules.yml")
ARGO_PROMETHEUS = Path("config/argo/analysis-template-prometheus.yaml")

# Labels Prometheus attaches to every scraped series.
TARGET_LABELS = frozenset({"job", "instance"})

# Grafana's built-in interval variables become a duration so the query parses.
GRAFANA_DURATIONS = re.compile(r"\$\{?(__rate_interval|__interval|__range)\}?")
LABEL_VALUES = re.compile(r"^\s*label_values\((?P<selector>.+),\s*(?P<label>[A-Za-z_]\w*)\s*\)\s*$")


def dashboard_queries(repo: Path) -> Iterator[tuple[str, str]]:
    dash = json.loads((repo / DASHBOARD).read_text())

    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for p in items:
            yield p
            yield from panels(p.get("panels", []))

    for p in panels(dash["panels"]):
        for t in p.get("targets", []):
            yield f"panel {p['title']!r} {t['refId']}", t["expr"]
    for a in dash["annotations"]["list"]:
        if "expr" in a:
            yield f"annotation {a['name']!r}", a["expr"]
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            m = LABEL_VALUES.match(q)
            assert m, f"variable {v['name']}: only label_values(selector, label) is expected"
            yield f"variable ${v['name']}", m["selector"]


def rule_queries(repo: Path) -> Iterator[tuple[str, str]]:
    for group in yaml.safe_load((repo / RULES).read_text())["groups"]:
        for rule in group["rules"]:
            yield f"rule {rule.get('alert') or rule.get('record')}", rule["expr"]


def argo_queries(repo: Path) -> Iterator[tuple[str, str]]:
    doc = yaml.safe_load((repo / ARGO_PROMETHEUS).read_text())
    args = {a["name"]: a.get("value", "v2") for a in doc["spec"]["args"]}
    for metric in doc["spec"]["metrics"]:
        query = metric["provider"]["prometheus"]["query"]
        query = re.sub(r"\{\{\s*args\.([\w-]+)\s*\}\}", lambda m: str(args[m[1]]), query)
        yield f"argo metric {metric['name']}", query


def selectors(expr: str) -> list[tuple[str | None, set[str]]]:
    """(metric name, matcher label names) of every vector selector in ``expr``."""
    expr = GRAFANA_DURATIONS.sub("5m", expr)
    try:
        ast = promql_parser.parse(expr)
    except ValueError as exc:
        raise AssertionError(f"does not parse as PromQL: {expr!r}: {exc}") from None
    found: list[tuple[str | None, set[str]]] = []

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = node.matchers.matchers
            name = node.name or next((m.value for m in matchers if m.name == "__name__"), None)
            found.append((name, {m.name for m in matchers if m.name != "__name__"}))
        return True

    promql_parser.walk(ast, visit)
    return found

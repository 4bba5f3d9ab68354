"""Every PromQL query we ship — Grafana dashboard, alerting rules, Argo Rollouts' Prometheus
AnalysisTemplate — parses, and selects only series driftd really exports (names taken from a
live scrape) with labels those series really carry."""

from __future__ import annotations

from pathlib import Path

import pytest
from ecosystem_support import (
    LABELS_NOT_IN_LIVE_SCRAPE,
    NOT_IN_LIVE_SCRAPE,
    PROMETHEUS_SYNTHETIC,
    TARGET_LABELS,
    argo_queries,
    dashboard_queries,
    declared_by_driftd,
    rule_queries,
    selectors,
)
from prometheus_client.parser import text_string_to_metric_families


@pytest.fixture(scope="module")
def labels_by_name(scrape: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for fam in text_string_to_metric_families(scrape):
        for s in fam.samples:
            out.setdefault(s.name, set()).update(s.labels)
    return out


@pytest.mark.parametrize("source", ["dashboard", "rules", "argo"])
def test_queries_select_only_exported_series(
    source: str, repo: Path, exported_names: frozenset[str], labels_by_name: dict[str, set[str]]
) -> None:
    queries = list(
        {"dashboard": dashboard_queries, "rules": rule_queries, "argo": argo_queries}[source](repo)
    )
    assert queries
    problems = []
    for where, expr in queries:
        sels = selectors(expr)
        if not sels:
            problems.append(f"{where}: selects no series: {expr!r}")
        for name, labels in sels:
            if name is None:
                problems.append(f"{where}: selector without a metric name in {expr!r}")
            elif name in PROMETHEUS_SYNTHETIC:
                continue
            elif name in NOT_IN_LIVE_SCRAPE:
                if not declared_by_driftd(name):
                    problems.append(f"{where}: {name} is not declared in driftd/metrics.py")
            elif name not in exported_names:
                problems.append(f"{where}: {name} is not exported by driftd")
            else:
                unknown = labels - labels_by_name[name] - TARGET_LABELS - LABELS_NOT_IN_LIVE_SCRAPE
                if unknown:
                    problems.append(f"{where}: {name} has no label(s) {sorted(unknown)}")
    assert problems == [], "\n".join(problems)


def test_checker_catches_a_wrong_name(exported_names: frozenset[str]) -> None:
    # the check above must not pass vacuously: names with a typo or a missing suffix fail
    for expr, bad in [
        ('rate(driftd_event_total{monitor="x"}[$__rate_interval])', "driftd_event_total"),
        (
            "histogram_quantile(0.5, rate(driftd_evaluation_duration_seconds[5m]))",
            "driftd_evaluation_duration_seconds",
        ),
        ("sum(driftd_webhook_deliveries)", "driftd_webhook_deliveries"),
    ]:
        names = {n for n, _ in selectors(expr)}
        assert bad in names and bad not in exported_names
    assert "driftd_evaluation_duration_seconds_bucket" in exported_names
    assert "driftd_events_total" in exported_names

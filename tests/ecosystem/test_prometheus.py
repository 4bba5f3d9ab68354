"""Prometheus: the alerting rules pass promtool's checks and unit tests, the compose config is
valid, and ``promtool check metrics`` finds nothing to complain about in a live scrape."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from ecosystem_support import DESIGN_FAMILIES, Live, http, run_promtool
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

RULES = Path("config/prometheus/driftd-rules.yml")
RULE_TESTS = Path("config/prometheus/driftd-rules.test.yml")
PROM_CONFIG = Path("config/prometheus/prometheus.yml")


def _rules(repo: Path) -> list[dict[str, object]]:
    doc = yaml.safe_load((repo / RULES).read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def test_promtool_check_rules(repo: Path) -> None:
    res = run_promtool("check", "rules", "--lint=all", "--lint-fatal", str(RULES))
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"SUCCESS: {len(_rules(repo))} rules found" in res.stdout


def test_promtool_test_rules(repo: Path) -> None:
    res = run_promtool("test", "rules", str(RULE_TESTS))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout


def test_every_alert_is_unit_tested_firing_and_not_firing(repo: Path) -> None:
    tests = yaml.safe_load((repo / RULE_TESTS).read_text())["tests"]
    firing: set[str] = set()
    silent: set[str] = set()
    for t in tests:
        for case in t.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    alerts = {str(r["alert"]) for r in _rules(repo) if "alert" in r}
    assert alerts - firing == set(), "alerts never shown firing"
    assert alerts - silent == set(), "alerts never shown not firing"


def test_alerts_have_severity_and_runbook_anchor(repo: Path) -> None:
    runbook = (repo / "docs/runbook.md").read_text()
    anchors = {_anchor(h) for h in re.findall(r"^#+\s+(.+?)\s*$", runbook, flags=re.M)}
    for rule in _rules(repo):
        if "alert" not in rule:
            continue
        labels = rule["labels"]
        annotations = rule["annotations"]
        assert isinstance(labels, dict) and isinstance(annotations, dict)
        assert labels["severity"] in {"critical", "warning"}, rule["alert"]
        assert {"summary", "description", "runbook_url"} <= set(annotations), rule["alert"]
        # absolute (Alertmanager and Grafana cannot resolve a relative link), into the
        # documentation site's runbook page (mkdocs: docs/runbook.md → runbook/)
        path, _, anchor = str(annotations["runbook_url"]).partition("#")
        assert path == "https://driftd.example.com/runbook/", rule["alert"]
        assert anchor in anchors, f"{rule['alert']}: no heading for #{anchor} in the runbook"


def _anchor(heading: str) -> str:
    """GitHub's heading slug: lower-case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"`", "", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def test_promtool_check_compose_prometheus_config(repo: Path) -> None:
    res = run_promtool("check", "config", str(PROM_CONFIG))
    assert res.returncode == 0, res.stdout + res.stderr
    config = yaml.safe_load((repo / PROM_CONFIG).read_text())
    assert config["rule_files"] == [RULES.name]
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    # DriftdDown selects up{job="driftd"}
    assert jobs["driftd"]["static_configs"][0]["targets"] == ["driftd:9108"]


def test_live_scrape_has_every_family_with_samples(scrape: str) -> None:
    families = {f.name: f for f in text_string_to_metric_families(scrape)}
    assert DESIGN_FAMILIES <= set(families), DESIGN_FAMILIES - set(families)
    empty = sorted(name for name, f in families.items() if not f.samples)
    assert empty == [], f"families without samples (the fixture should populate them): {empty}"
    # the populated engine really exercised what the rules select
    outcomes = {s.labels["outcome"] for s in families["driftd_webhook_deliveries"].samples}
    assert {"failed", "dry_run", "delivered"} <= outcomes
    drifted = {
        s.labels["model_version"]: s.value for s in families["driftd_monitor_drifted"].samples
    }
    assert drifted == {"v1": 0.0, "v2": 1.0}


def test_promtool_check_metrics_on_live_scrape(live: Live) -> None:
    status, body = http(live.base + "/metrics")
    assert status == 200
    # what is checked includes the process collectors and the data-quality gauges
    names = {s.name for f in text_string_to_metric_families(body.decode()) for s in f.samples}
    assert {"process_resident_memory_bytes", "process_start_time_seconds"} <= names
    assert {"driftd_feature_quality", "python_gc_objects_collected_total"} <= names
    res = run_promtool("check", "metrics", stdin=body)
    assert res.returncode == 0 and res.stdout.strip() == "" and res.stderr.strip() == "", (
        f"promtool check metrics complained (exit {res.returncode}):\n{res.stdout}{res.stderr}"
    )


def test_openmetrics_scrape_parses(live: Live) -> None:
    status, body = http(live.base + "/metrics", headers={"Accept": "application/openmetrics-text"})
    assert status == 200
    text = body.decode()
    assert text.endswith("# EOF\n")
    # prometheus_client's OpenMetrics parser is strict: it raises on anything malformed
    families = {f.name: f for f in openmetrics_families(text)}
    assert families["process_resident_memory_bytes"].samples[0].value > 0
    quality = families["driftd_feature_quality"]
    assert quality.type == "gauge"
    checks = {(s.labels["feature"], s.labels["check"]) for s in quality.samples}
    assert {("income", "missing_rate"), ("income", "out_of_range_rate")} <= checks
    assert ("region", "unseen_rate") in checks and ("prediction", "missing_rate") in checks
    assert families["driftd_events"].type == "counter"


def test_promtool_check_metrics_is_not_a_rubber_stamp() -> None:
    bad = b"# TYPE driftd_oops counter\ndriftd_oops 1\n"
    res = run_promtool("check", "metrics", stdin=bad)
    assert res.returncode != 0
    assert "_total" in res.stdout + res.stderr

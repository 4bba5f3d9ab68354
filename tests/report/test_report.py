"""`driftd report` / driftd.report: one self-contained HTML file, opened in a real headless
Chromium (Debian's package; never skipped): drawn without console errors or network requests,
one distribution plot per feature, a screenshot taken."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest
from chromium import Chromium
from driftd_testutil import credit_config, read_jsonl, write_lines

import driftd
from driftd.cli import main
from driftd.demo.credit import generate

FEATURES = {
    "income": {"kind": "numeric", "test": "ks", "threshold": 0.001},
    "age": {"kind": "numeric", "test": "wasserstein_norm", "threshold": 0.1},
    "debt_ratio": {"kind": "numeric", "test": "psi", "threshold": 0.1},
    "region": {"kind": "categorical", "test": "chi2", "threshold": 0.001},
    "has_mortgage": {"kind": "categorical", "test": "js", "threshold": 0.1},
}
NAMES = ["prediction", *FEATURES]  # the report puts the prediction first


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small demo-like run: v1 as the reference, then v1 and a bad v2 replayed."""
    tmp = tmp_path_factory.mktemp("run")
    cfg = credit_config(
        tmp,
        profile=tmp / "profile.json",
        features=FEATURES,
        window={"type": "sliding", "events": 2000, "step": 500},
        policy={"min_events": 1000, "consecutive": 2, "cooldown_s": 0},
    )
    ref = write_lines(tmp / "reference.jsonl", generate(8000, version="v1", seed=1))
    args = ["profile", "build", "-c", str(cfg), "--monitor", "credit", "--input", str(ref)]
    assert main([*args, "--out", str(tmp / "profile.json")]) == 0
    v1 = list(generate(5000, version="v1", seed=2))
    v2 = list(generate(5000, version="v2", seed=3, score_shift=1.0, income_shift=0.2))
    fixed = list(generate(4000, version="v2", seed=4))  # v2 recovers: the alert resolves
    events = write_lines(tmp / "events.jsonl", v1 + v2 + fixed)
    out = tmp / "replay.jsonl"
    assert main(["replay", "-c", str(cfg), str(events), "--out", str(out)]) == 0
    kinds = [o["event"] for o in read_jsonl(out) if o["type"] == "alert"]
    assert kinds == ["drift.detected", "drift.resolved"]
    return {"cfg": cfg, "profile": tmp / "profile.json", "events": events, "replay": out}


def check_in_browser(page: Path, shot: Path, n_features: int) -> dict[str, Any]:
    with Chromium() as browser:
        browser.open(page)
        drawn = int(browser.wait_for("document.body && document.body.dataset.plotsDrawn"))
        counts = browser.evaluate(
            """({
              plots: document.querySelectorAll('div.plot').length,
              rendered: document.querySelectorAll('div.plot.js-plotly-plot .main-svg').length,
              features: document.querySelectorAll('section.feature').length,
              dist: Array.from(document.querySelectorAll('section.feature')).map(
                s => s.querySelectorAll('.dist-plot.js-plotly-plot').length),
              timeline: document.querySelectorAll('.timeline-plot.js-plotly-plot').length,
              alerts: document.querySelectorAll('details.alert').length,
              bars: document.querySelectorAll('.dist-plot .bars path').length,
              legend: Array.from(document.querySelectorAll('.timeline-plot .legendtext')).map(
                t => t.textContent),
              dist_legend: document.querySelectorAll('.dist-plot .legendtext').length
            })"""
        )
        browser.screenshot(shot)
        errors = browser.console_errors()
        remote = browser.remote_requests()
        requests = browser.requests()
    assert errors == [], errors
    assert remote == [], remote  # self-contained: nothing fetched at view time
    # the page itself, and inline data: URLs (plotly.js probes image support with one)
    assert [r for r in requests if not r.startswith("data:")] == [page.resolve().as_uri()]
    assert drawn == counts["plots"] and counts["rendered"] >= counts["plots"]
    assert counts["features"] == n_features
    assert counts["dist"] == [1] * n_features  # one distribution plot per feature
    assert counts["bars"] > 0
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000
    return counts  # type: ignore[no-any-return]


def test_replay_report_opens_in_chromium(run: dict[str, Path], tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    args = ["report", "--replay", str(run["replay"]), "-c", str(run["cfg"])]
    assert main([*args, "--events", str(run["events"]), "--out", str(page)]) == 0
    counts = check_in_browser(page, tmp_path / "report.png", len(NAMES))
    assert counts["timeline"] == len(NAMES)  # statistic vs threshold over time, per feature
    alerts = [o for o in read_jsonl(run["replay"]) if o["type"] == "alert"]
    assert counts["alerts"] == len(alerts)
    # alert and resolve markers on every feature's timeline
    assert counts["legend"].count("v2 detected") == len(NAMES)
    assert counts["legend"].count("v2 resolved") == len(NAMES)
    text = page.read_text()
    for a in alerts:  # the payloads, as written by replay
        assert a["id"] in text
    assert "v1" in text and "v2" in text and "rollback to" in text


def test_compare_report_opens_in_chromium(run: dict[str, Path], tmp_path: Path) -> None:
    evs = [orjson.loads(x) for x in generate(3000, version="v2", seed=9, income_shift=0.3)]
    current = pd.DataFrame([{**e["features"], "prediction": e["prediction"]} for e in evs])
    page = driftd.report(
        tmp_path / "compare.html",
        reference=driftd.Profile.load(run["profile"]),
        current=current,
        config=run["cfg"],
    )
    counts = check_in_browser(page, tmp_path / "compare.png", len(NAMES))
    assert counts["timeline"] == 0
    text = page.read_text()
    assert re.search(r'data-feature="income"><h3>income.*?badge drifted', text)
    assert 'id="versions"' not in text  # one current table, no version column


def test_compare_report_puts_versions_side_by_side(run: dict[str, Path], tmp_path: Path) -> None:
    v1 = [orjson.loads(x) for x in generate(2000, version="v1", seed=10)]
    v2 = [orjson.loads(x) for x in generate(2000, version="v2", seed=11, score_shift=1.0)]
    rows = [
        {**e["features"], "prediction": e["prediction"], "model_version": e["model_version"]}
        for e in v1 + v2
    ]
    current = write_lines(tmp_path / "current.jsonl", [orjson.dumps(e) for e in v1 + v2])
    for name, data in (("table", pd.DataFrame(rows)), ("file", current)):
        page = driftd.report(
            tmp_path / f"{name}.html", reference=driftd.Profile.load(run["profile"]), current=data
        )
        text = page.read_text()
        assert 'id="versions"' in text and text.count("by version") == len(NAMES)
        one = driftd.compare(driftd.Profile.load(run["profile"]), pd.DataFrame(rows[2000:]))
        assert one.prediction is not None and one.prediction.drifted
        assert re.search(r'data-feature="prediction"><h3>.*?badge drifted', text)
    counts = check_in_browser(page, tmp_path / "versions.png", len(NAMES))
    assert counts["dist_legend"] == 3 * len(NAMES)  # reference, v1, v2 in every plot


def test_replay_report_without_reference_has_timelines(
    run: dict[str, Path], tmp_path: Path
) -> None:
    page = driftd.report(tmp_path / "bare.html", replay=run["replay"])
    text = page.read_text()
    assert text.count('class="plot timeline-plot"') == len(NAMES)
    assert "dist-plot" not in text and "no reference profile given" in text


def test_page_is_self_contained(run: dict[str, Path], tmp_path: Path) -> None:
    page = driftd.report(tmp_path / "r.html", replay=run["replay"], profile=run["profile"])
    text = page.read_text()
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", text)
    assert text.count("<script") == 3  # plotly.js, the figures' data, the page's script
    assert "plotly.js v" in text[:2000] or "plotly.js v" in text


def test_report_cli_usage_errors(run: dict[str, Path], tmp_path: Path) -> None:
    out = str(tmp_path / "x.html")
    assert main(["report", "--out", out]) == 2
    assert main(["report", "--out", out, "--replay", str(run["replay"]), "--current", "a"]) == 2
    assert main(["report", "--out", out, "--current", str(run["events"])]) == 2  # no reference


def test_performance_lines_are_drawn(tmp_path: Path) -> None:
    """`performance` (measured on labels) and `performance_estimate` lines: one plot per
    compared metric, with the comparison's interval and the degradation alert."""

    def ev(version: str, pos: int) -> dict[str, Any]:
        feat = {"test": "ks", "statistic": 0.01, "p_value": 0.5, "threshold": 0.01}
        return {
            "type": "evaluation",
            "monitor": "credit",
            "model": "m",
            "model_version": version,
            "segment": None,
            "window": {"start_position": pos - 99, "end_position": pos, "events": 100},
            "features": {"x": {**feat, "drifted": False, "level": "ok", "quality": {}}},
            "prediction": None,
            "drift_share": 0.0,
            "drifted": False,
            "state": "ok",
        }

    def perf(version: str, pos: int, acc: float) -> dict[str, Any]:
        comp = {"metric": "accuracy", "current": acc, "baseline": 0.77, "difference": acc - 0.77}
        return {
            "type": "performance",
            "monitor": "credit",
            "model_version": version,
            "window": {"events": 100, "end_position": pos},
            "metrics": {"accuracy": acc, "precision": 0.7, "recall": 0.6},
            "comparisons": {"accuracy": {**comp, "ci": [-0.05, -0.01]}},
            "degraded": acc < 0.75,
        }

    lines = [ev("v1", 100), ev("v2", 200), perf("v2", 200, 0.76), perf("v2", 300, 0.72)]
    lines.append(
        {
            "type": "alert",
            "event": "performance.degraded",
            "monitor": "credit",
            "model_version": "v2",
            "window": {"end_position": 300, "events": 100},
            "id": "perf-alert-1",
        }
    )
    est = {"estimate": 0.74, "lower": 0.7, "upper": 0.78}
    lines.append(
        {
            "type": "performance_estimate",
            "monitor": "credit",
            "model_version": "v2",
            "window": {"end_position": 300},
            "metrics": {"accuracy": est},
        }
    )
    lines.append(
        {
            "type": "alert",
            "event": "performance.estimated_degraded",
            "monitor": "credit",
            "model_version": "v2",
            "window": {"end_position": 300, "events": 100},
            "id": "est-alert-1",
        }
    )
    page = driftd.report(tmp_path / "perf.html", replay=lines)
    text = page.read_text()
    assert text.count('class="plot performance-plot"') == 1  # compared metrics only
    assert "perf-alert-1" in text and "1 degradation alert" in text
    from driftd.report.replayed import from_replay

    (view,) = from_replay(lines).performance
    measured, estimated = view.tracks
    assert (measured.name, measured.x, measured.value) == ("v2", [200, 300], [0.76, 0.72])
    assert measured.low == [pytest.approx(0.72), pytest.approx(0.72)]
    assert measured.alerts == [(300, "performance.degraded")]
    assert (estimated.name, estimated.value, estimated.low) == ("v2 estimated", [0.74], [0.7])
    # an estimated-performance alert marks the estimate's track, not the measured one
    assert estimated.alerts == [(300, "performance.estimated_degraded")]

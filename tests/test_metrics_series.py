"""Metrics beyond the drift gauges: the process, platform and GC collectors in the injected
registry, the per-feature data-quality gauges, and the series budget docs/metrics.md states
(per version, per tested feature, per segment; ``segment_series: full | summary``).

Seeded stream: features ``x``, ``y`` (numeric), ``c`` (categorical), a numeric prediction and a
``region`` segment field. The "dirty" version has known quality problems at fixed positions —
``y`` missing in every 10th event, ``x`` = 1e6 (beyond the reference's range) in every 20th,
``c`` an unseen category in every 25th — so any window of 1,000 consecutive events has exactly
10 % / 5 % / 4 % of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import prometheus_client
import pytest
import yaml
from driftd_testutil import write_lines
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from driftd.cli import main
from driftd.config import load_config
from driftd.metrics import build_registry
from driftd.runtime.pipeline import Pipeline
from driftd.types import RawRecord

REGIONS = ("EU", "US", "APAC")
WINDOW = 1000


def events(n: int, seed: int, *, version: str = "v1", dirty: bool = False) -> list[bytes]:
    rng = np.random.default_rng(seed)
    region = rng.choice(len(REGIONS), size=n, p=[0.4, 0.4, 0.2])
    x, y, score = rng.normal(size=n), rng.normal(size=n), rng.random(n)
    c = rng.choice(3, size=n)
    out = []
    for i in range(n):
        feats: dict[str, Any] = {
            "x": float(x[i]),
            "y": float(y[i]),
            "c": "abc"[c[i]],
            "region": REGIONS[region[i]],
        }
        if dirty:
            if i % 10 == 0:
                del feats["y"]
            if i % 20 == 0:
                feats["x"] = 1e6
            if i % 25 == 0:
                feats["c"] = "never-seen"
        event = {
            "model": "m",
            "model_version": version,
            "ts": 1_700_000_000_000 + i * 100,
            "features": feats,
            "prediction": float(score[i]),
        }
        out.append(orjson.dumps(event))
    return out


def config(tmp: Path, profile: Path, **monitor: Any) -> Path:
    mon: dict[str, Any] = {
        "name": "q",
        "model": "m",
        "reference": {"type": "profile", "path": str(profile)},
        "window": {"type": "sliding", "events": WINDOW, "step": 500},
        "features": {
            "x": {"kind": "numeric", "test": "ks", "threshold": 0.001},  # has a p-value
            "y": {"kind": "numeric", "test": "psi", "threshold": 0.2},  # statistic only
            "c": {"kind": "categorical", "test": "chi2", "threshold": 0.001},
        },
        "prediction": {"kind": "numeric", "test": "psi", "threshold": 0.2},
        "policy": {"min_events": WINDOW, "consecutive": 2, "cooldown_s": 0},
        "calibration": {"false_alerts_per_million_events": None},
        "segment_min_reference_events": 500,
    }
    mon.update(monitor)
    path = tmp / f"driftd-{len(list(tmp.glob('driftd-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump({"monitors": [mon], "state": {"dir": str(tmp / "state")}}))
    return path


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("metrics-series")
    ref = write_lines(tmp / "reference.jsonl", events(20_000, seed=3))
    out = tmp / "profile.json"
    args = ["profile", "build", "-c", str(config(tmp, out, segment_by=["features.region"]))]
    assert main([*args, "--monitor", "q", "--input", str(ref), "--out", str(out)]) == 0
    return out


def run(cfg: Path, lines: list[bytes]) -> Pipeline:
    engine = Pipeline(load_config(cfg, environ={}))
    records = [RawRecord(v, i + 1, None) for i, v in enumerate(lines)]
    for i in range(0, len(records), 700):
        engine.process(records[i : i + 700])
    return engine


def samples(reg: prometheus_client.CollectorRegistry) -> list[Any]:
    return [s for fam in reg.collect() for s in fam.samples]


def test_process_platform_and_gc_collectors_in_the_injected_registry(
    profile: Path, tmp_path: Path
) -> None:
    before = set(prometheus_client.REGISTRY._collector_to_names)
    engine = run(config(tmp_path, profile), events(1500, seed=4))
    reg = build_registry(engine.status)
    v = reg.get_sample_value
    rss = v("process_resident_memory_bytes")
    assert rss is not None and rss > 10 * 2**20  # a Python with NumPy is well above 10 MiB
    start = v("process_start_time_seconds")
    assert start is not None and start > 1.7e9
    assert v("process_open_fds") is not None and v("process_cpu_seconds_total") is not None
    assert reg.get_sample_value("python_gc_objects_collected_total", {"generation": "0"}) >= 0  # type: ignore[operator]
    info = [s for s in samples(reg) if s.name == "python_info"]
    assert len(info) == 1 and info[0].labels["implementation"] == "CPython"
    # each registry has its own collectors; the global one gained nothing
    assert build_registry(engine.status).get_sample_value("process_resident_memory_bytes")
    assert set(prometheus_client.REGISTRY._collector_to_names) == before


def test_quality_gauges_per_feature_and_check(profile: Path, tmp_path: Path) -> None:
    engine = run(config(tmp_path, profile), events(3000, seed=5, dirty=True))
    reg = build_registry(engine.status)

    def q(feature: str, check: str) -> float | None:
        labels = {"monitor": "q", "model_version": "v1", "feature": feature, "check": check}
        return reg.get_sample_value("driftd_feature_quality", labels)

    assert q("y", "missing_rate") == pytest.approx(0.10)
    assert q("x", "missing_rate") == 0.0
    # x: 50 of the window's 1000 values are 1e6, beyond the reference's maximum
    assert q("x", "out_of_range_rate") == pytest.approx(0.05)
    assert q("y", "out_of_range_rate") is not None and q("y", "out_of_range_rate") < 0.01  # type: ignore[operator]
    assert q("c", "unseen_rate") == pytest.approx(0.04)
    assert q("c", "missing_rate") == 0.0
    assert q("prediction", "missing_rate") == 0.0
    assert q("prediction", "out_of_range_rate") is not None
    # a numeric feature has no unseen_rate, a categorical one no out_of_range_rate
    assert q("x", "unseen_rate") is None and q("c", "out_of_range_rate") is None
    # the gauges read the published evaluation: the same numbers as the API's
    ev = engine.status().monitors[0].versions[0].last_evaluation
    assert ev is not None and ev["features"]["y"]["quality"]["missing_rate"] == q(
        "y", "missing_rate"
    )
    # a clean version of the same monitor reads 0 where the dirty one does not
    clean = build_registry(run(config(tmp_path, profile), events(3000, seed=6)).status)
    clean_y = {"monitor": "q", "model_version": "v1", "feature": "y", "check": "missing_rate"}
    assert clean.get_sample_value("driftd_feature_quality", clean_y) == 0.0
    families = {f.name for f in text_string_to_metric_families(generate_latest(reg).decode())}
    assert "driftd_feature_quality" in families


# ------------------------------------------------------------------------- series budget

# docs/metrics.md, "Series budget": per version, per tested feature (statistic, threshold,
# drifted, two quality rates, and a p-value for tests that have one), per segment.
PER_VERSION = 4  # events_total, window_events, monitor_drifted, drift_share
PER_SEGMENTED_VERSION = 2  # segment_overflow_events_total, segments
PER_FEATURE = 5
PER_P_VALUE_FEATURE = 6
PER_SEGMENT_SUMMARY = 4  # segment_events_total, window_events, monitor_drifted, drift_share


def budget(p_value_features: int, other_features: int, segments: int, mode: str) -> int:
    features = PER_P_VALUE_FEATURE * p_value_features + PER_FEATURE * other_features
    per_segment = PER_SEGMENT_SUMMARY + (features if mode == "full" else 0)
    version = PER_VERSION + (PER_SEGMENTED_VERSION if segments else 0) + features
    return version + segments * per_segment


def version_series(reg: prometheus_client.CollectorRegistry, version: str) -> list[Any]:
    return [
        s
        for s in samples(reg)
        if s.labels.get("monitor") == "q" and s.labels.get("model_version") == version
    ]


@pytest.mark.parametrize("mode", ["full", "summary"])
def test_series_budget_matches_the_documented_counts(
    profile: Path, tmp_path: Path, mode: str
) -> None:
    segmented = config(tmp_path, profile, segment_by=["features.region"], segment_series=mode)
    # enough events that every segment (APAC: a fifth) has evaluated: the budget is reached
    lines = events(6000, seed=7) + events(6000, seed=8, version="v2", dirty=True)
    reg = build_registry(run(segmented, lines).status)
    # x (ks) and c (chi2) have p-values; y and the prediction (psi) do not
    for version in ("v1", "v2"):
        got = version_series(reg, version)
        assert len(got) == budget(2, 2, len(REGIONS), mode), sorted(
            (s.name, tuple(sorted(s.labels.items()))) for s in got
        )
    per_segment = {s.name for s in version_series(reg, "v1") if s.labels.get("segment")}
    if mode == "full":
        assert "driftd_drift_statistic" in per_segment and "driftd_feature_quality" in per_segment
    else:  # the segment's verdict only
        assert per_segment == {
            "driftd_segment_events_total",
            "driftd_window_events",
            "driftd_monitor_drifted",
            "driftd_drift_share",
        }
    # the overall series are the same in both modes
    overall = {
        (s.name, s.labels.get("feature"))
        for s in version_series(reg, "v1")
        if not s.labels.get("segment")
    }
    assert ("driftd_feature_quality", "x") in overall and ("driftd_drift_p_value", "c") in overall
    unsegmented = build_registry(run(config(tmp_path, profile), lines).status)
    assert len(version_series(unsegmented, "v1")) == budget(2, 2, 0, mode)

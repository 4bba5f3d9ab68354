"""Multivariate drift wired end to end (issue 18): ``multivariate:`` in the config, the model
fitted by ``driftd profile build`` and stored in the profile with its calibrated threshold,
evaluated on every window by ``driftd replay`` and the engine alike, in alerts and metrics,
restored exactly from a checkpoint, fitted on a warmup reference, and check-config naming the
key of every mistake.

The seeded stream keeps every marginal distribution and flips the correlation of two features
(tests/mv_workload.py): both methods catch it within two steps, through ``driftd replay``,
and no per-feature test ever flags anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import yaml
from driftd_testutil import registry_of, roundtrip
from mv_workload import (
    FLIP,
    STEP,
    WINDOW,
    build_profile,
    correlation_events,
    correlation_monitor,
    flip_stream,
    read_jsonl,
    write_config,
    write_lines,
)
from prometheus_client.parser import text_string_to_metric_families

from driftd.cli import main
from driftd.config import load_config
from driftd.monitor.outputs import webhook_payload
from driftd.reference.profile import Profile
from driftd.runtime.pipeline import Pipeline
from driftd.stats.calibrate import alert_budget
from driftd.types import RawRecord

METHODS = ("pca_reconstruction", "mmd")


@pytest.fixture(scope="module")
def flip(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Profiles of both methods on one reference, the flip stream, and its replay."""
    tmp = tmp_path_factory.mktemp("mv-flip")
    ref, stream = flip_stream()
    reference = write_lines(tmp / "reference.jsonl", ref)
    monitors = [correlation_monitor(m, tmp / f"{m}.json", m) for m in METHODS]
    cfg = write_config(tmp, monitors)
    for m in METHODS:
        build_profile(cfg, m, reference, tmp / f"{m}.json")
    src = write_lines(tmp / "stream.jsonl", stream)
    out = tmp / "out.jsonl"
    assert main(["replay", "-c", str(cfg), str(src), "--out", str(out), "--batch", "777"]) == 0
    return {"tmp": tmp, "cfg": cfg, "stream": stream, "out": read_jsonl(out), "reference": ref}


def evaluations(out: list[dict[str, Any]], monitor: str) -> list[dict[str, Any]]:
    return [o for o in out if o["type"] == "evaluation" and o["monitor"] == monitor]


@pytest.mark.parametrize("method", METHODS)
def test_correlation_flip_is_caught_within_two_steps_by_replay_and_by_no_feature(
    flip: dict[str, Any], method: str
) -> None:
    evs = evaluations(flip["out"], method)
    assert len(evs) == (FLIP + 4000 - 1000) // STEP + 1  # every step from min_events on
    for e in evs:
        mv = e["multivariate"]
        assert set(mv) == {"method", "statistic", "threshold", "drifted"}
        assert mv["method"] == method and mv["statistic"] > 0
        # the marginals never move: no per-feature test, no quality check ever flags
        assert not any(r["drifted"] for r in e["features"].values()), e["features"]
        assert not e["prediction"]["drifted"] and e["quality_breaches"] == []
        assert e["drift_share"] == 0.0
        assert e["drifted"] == mv["drifted"]
    drifted = [e["window"]["end_position"] for e in evs if e["multivariate"]["drifted"]]
    assert drifted, f"{method} never flagged the flip"
    assert FLIP < drifted[0] <= FLIP + 2 * STEP
    # pinned for this seed (as tests/multivariate/test_mv_detection.py): PCA sees a
    # quarter-flipped window, MMD a half-flipped one
    assert drifted[0] == {"pca_reconstruction": FLIP + STEP, "mmd": FLIP + 2 * STEP}[method]
    assert drifted == list(range(drifted[0], FLIP + 4000 + 1, STEP))  # and stays flagged
    alerts = [o for o in flip["out"] if o["type"] == "alert" and o["monitor"] == method]
    [a] = alerts  # consecutive: 1, one episode
    assert a["event"] == "drift.detected" and a["severity"] == "critical"
    assert a["window"]["end_position"] == drifted[0]
    [entry] = a["features"]
    assert entry["name"] == "multivariate" and entry["test"] == method
    assert entry["p_value"] is None and entry["statistic"] > entry["threshold"]
    assert webhook_payload(a)["features"] == [entry]


@pytest.mark.parametrize("method", METHODS)
def test_profile_stores_the_model_and_its_calibration(flip: dict[str, Any], method: str) -> None:
    path = flip["tmp"] / f"{method}.json"
    doc = orjson.loads(path.read_bytes())
    assert doc["multivariate"]["key"]["method"] == method
    assert set(doc["multivariate"]) == {"key", "meta", "arrays"}
    cal = doc["calibration"]
    # one more tested quantity in the union bound: 7 features, the prediction, multivariate
    alpha = alert_budget(1.0, STEP, 7 + 2).alpha
    assert cal["alpha"] == pytest.approx(alpha)
    assert cal["multivariate"]["alpha"] == pytest.approx(alpha)
    assert cal["multivariate"]["window_events"] == WINDOW
    assert cal["key"]["multivariate"]["method"] == method
    thr = cal["multivariate"]["threshold"]
    evs = evaluations(flip["out"], method)
    full = [e for e in evs if e["window"]["events"] == WINDOW]
    assert {e["multivariate"]["threshold"] for e in full} == {thr}
    # a partial window (the first evaluations) is held to a wider threshold — for MMD only
    # when it has fewer rows than the 1,000-row subsample every window is cut to
    assert evs[0]["window"]["events"] == 1000
    first = evs[0]["multivariate"]["threshold"]
    assert first > thr if method == "pca_reconstruction" else first == thr
    # the models are derived, like the calibration: not part of the profile id
    prof = Profile.load(path)
    assert prof.multivariate is not None
    bare = Profile.load(path)
    object.__setattr__(bare, "multivariate", None)
    object.__setattr__(bare, "calibration", None)
    assert bare.to_json()["id"] == prof.id == doc["id"]


def test_engine_restarted_from_a_checkpoint_evaluates_identically(
    flip: dict[str, Any], tmp_path: Path
) -> None:
    cfg = load_config(flip["cfg"], environ={})
    recs = [RawRecord(v, i + 1, None, 0, i, "t") for i, v in enumerate(flip["stream"])]

    def run(engine: Pipeline, part: list[RawRecord]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for i in range(0, len(part), 611):
            out.extend(engine.process(part[i : i + 611]))
        return out

    whole = run(Pipeline(cfg), recs)
    first = Pipeline(cfg)
    part1 = run(first, recs[:10_222])
    second = roundtrip(first, cfg, tmp_path / "ck")
    part2 = run(second, recs[10_222:])
    # the same MMD subsamples (seeded by the window's end position), statistics, alert ids
    assert part1 + part2 == whole
    # ... and the same lines as `driftd replay` printed (positions, not offsets, differ)
    mine = [o for o in whole if o["type"] == "evaluation"]
    replayed = [o for o in flip["out"] if o["type"] == "evaluation"]
    assert [o["multivariate"] for o in mine] == [o["multivariate"] for o in replayed]


def test_metrics_and_audit_name_the_statistic(flip: dict[str, Any], tmp_path: Path) -> None:
    cfg = load_config(flip["cfg"], environ={})
    engine = Pipeline(cfg)
    recs = [RawRecord(v, i + 1, None) for i, v in enumerate(flip["stream"][: FLIP + 1500])]
    engine.process(recs)
    from prometheus_client import generate_latest

    text = generate_latest(registry_of(engine)).decode()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    for method in METHODS:
        stat = [
            s
            for s in fams["driftd_drift_statistic"].samples
            if s.labels["monitor"] == method and s.labels["feature"] == "multivariate"
        ]
        assert [s.labels["test"] for s in stat] == [method]
        thr = [
            s
            for s in fams["driftd_drift_threshold"].samples
            if s.labels["monitor"] == method and s.labels["feature"] == "multivariate"
        ]
        assert len(thr) == 1 and thr[0].value < stat[0].value
        drifted = [
            s
            for s in fams["driftd_feature_drifted"].samples
            if s.labels["monitor"] == method and s.labels["feature"] == "multivariate"
        ]
        assert [s.value for s in drifted] == [1.0]
        assert not any(
            s.labels["test"] == method and s.labels.get("feature") != "multivariate"
            for s in fams["driftd_drift_p_value"].samples
        )
    from driftd.actions.audit import decisions

    out = flip["out"]
    held = next(d for d in decisions(out) if d["decision"] == "hold" and d["monitor"] == "mmd")
    assert held["breaches"][0]["name"] == "multivariate" and held["breaches"][0]["test"] == "mmd"


def test_warmup_reference_fits_the_statistic_and_keeps_it_across_a_checkpoint(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(5)
    stream = correlation_events(rng, 12_000, 0.8, 0) + correlation_events(rng, 3000, -0.8, 12_000)
    mon = correlation_monitor("warm", tmp_path / "unused.json", "pca_reconstruction")
    mon["reference"] = {"type": "warmup", "events": 8000}
    cfg = load_config(write_config(tmp_path, [mon]), environ={})
    recs = [RawRecord(v, i + 1, None) for i, v in enumerate(stream)]

    def run(engine: Pipeline, part: list[RawRecord]) -> list[dict[str, Any]]:
        return [o for i in range(0, len(part), 900) for o in engine.process(part[i : i + 900])]

    whole = run(Pipeline(cfg), recs)
    evs = [o for o in whole if o["type"] == "evaluation"]
    assert evs and evs[0]["window"]["start_position"] > 8000  # after the warmup
    assert all(e["multivariate"]["method"] == "pca_reconstruction" for e in evs)
    quiet = [e for e in evs if e["window"]["end_position"] <= 12_000]
    assert quiet and not any(e["multivariate"]["drifted"] for e in quiet)
    flagged = [e["window"]["end_position"] for e in evs if e["multivariate"]["drifted"]]
    assert flagged and 12_000 < flagged[0] <= 12_000 + 2 * STEP
    # restored mid-stream, after the warmup completed: the fitted statistic and its
    # calibrated threshold come back from the checkpoint, nothing is refitted
    first = Pipeline(cfg)
    part1 = run(first, recs[:10_500])
    second = roundtrip(first, cfg, tmp_path / "ck")
    assert part1 + run(second, recs[10_500:]) == whole
    # restored mid-warmup: the reservoir's whole rows (categorical codes included) come back,
    # and the statistic fitted when the warmup completes is the same
    first = Pipeline(cfg)
    part1 = run(first, recs[:5_100])
    second = roundtrip(first, cfg, tmp_path / "ck2")
    assert part1 + run(second, recs[5_100:]) == whole


def _check(tmp: Path, monitors: list[dict[str, Any]]) -> tuple[int, str]:
    import contextlib
    import io

    cfg = write_config(tmp, monitors)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["check-config", "-c", str(cfg)])
    return rc, err.getvalue()


def test_check_config_names_the_key(flip: dict[str, Any], tmp_path: Path) -> None:
    pca = flip["tmp"] / "pca_reconstruction.json"
    base = correlation_monitor("m1", pca, "pca_reconstruction")
    rc, err = _check(tmp_path, [base])
    assert rc == 0, err
    cases: list[tuple[dict[str, Any], str]] = [
        ({"multivariate": {"method": "pca_reconstruction", "features": ["nope"]}},
         "monitors.0.multivariate.features.0"),
        ({"multivariate": {"method": "mmd", "features": ["x0", "region"]}},
         "monitors.0.multivariate.features.1"),
        ({"multivariate": {"method": "pca_reconstruction", "variance": 1.5}},
         "monitors.0.multivariate.variance"),
        ({"window": {"type": "tumbling_time", "size_s": 60}}, "monitors.0.multivariate.threshold"),
        ({"calibration": {"false_alerts_per_million_events": None}},
         "monitors.0.multivariate.threshold"),
        ({"reference": {"type": "version", "version": "v0"}}, "monitors.0.multivariate"),
        ({"features": {**base["features"], "multivariate": {"kind": "numeric"}}},
         "monitors.0.features.multivariate"),
        # the profile's model was fitted for PCA: MMD needs the profile rebuilt
        ({"multivariate": {"method": "mmd"}}, "monitors.0.multivariate"),
        ({"multivariate": {"method": "pca_reconstruction", "variance": 0.9}},
         "monitors.0.multivariate"),
    ]  # fmt: skip
    for change, key in cases:
        rc, err = _check(tmp_path, [{**base, **change}])
        assert rc == 2 and f"{key}:" in err, (change, err)
    rc, err = _check(tmp_path, [{**base, "multivariate": {"method": "mmd"}}])
    assert "rebuild" in err and "method" in err
    # a profile built without `multivariate:` holds no model
    plain = {k: v for k, v in base.items() if k != "multivariate"}
    (tmp_path / "plain").mkdir()
    cfg = write_config(tmp_path / "plain", [{**plain, "name": "p"}])
    ref = write_lines(tmp_path / "ref.jsonl", flip["reference"][:3000])
    bare = build_profile(cfg, "p", ref, tmp_path / "plain.json")
    rc, err = _check(tmp_path, [{**base, "reference": {"type": "profile", "path": str(bare)}}])
    assert rc == 2 and "monitors.0.multivariate:" in err and "no multivariate model" in err


def test_explicit_threshold_is_used_as_it_is(flip: dict[str, Any], tmp_path: Path) -> None:
    pca = flip["tmp"] / "pca_reconstruction.json"
    mon = correlation_monitor(
        "m1",
        pca,
        "pca_reconstruction",
        multivariate={"method": "pca_reconstruction", "threshold": 99},
    )
    cfg = load_config(write_config(tmp_path, [mon]), environ={})
    out = Pipeline(cfg).process(
        [RawRecord(v, i + 1, None) for i, v in enumerate(flip["stream"][:3000])]
    )
    evs = [o for o in out if o["type"] == "evaluation"]
    assert evs and all(e["multivariate"]["threshold"] == 99 for e in evs)
    assert not any(e["multivariate"]["drifted"] for e in evs)


def test_config_schema_describes_the_new_keys() -> None:
    from driftd.config import json_schema

    defs = json_schema()["$defs"]
    mv = defs["MultivariateConfig"]["properties"]
    assert mv["method"]["enum"] == ["pca_reconstruction", "mmd"]
    assert all(p.get("description") for p in mv.values())
    perf = defs["PerformanceConfig"]["properties"]
    for key in ("estimate", "estimate_metrics", "estimate_severity", "labels"):
        assert perf[key].get("description"), key
    assert yaml.safe_dump(mv)  # plain data


def test_python_api_compare_reports_the_statistic(flip: dict[str, Any]) -> None:
    import driftd

    tmp = flip["tmp"]
    flipped = write_lines(tmp / "flipped.jsonl", flip["stream"][-WINDOW:])
    same = write_lines(tmp / "same.jsonl", flip["stream"][:WINDOW])
    ref = tmp / "reference.jsonl"
    for current, drifted in ((flipped, True), (same, False)):
        report = driftd.compare(
            str(ref), str(current), config=str(flip["cfg"]), monitor="pca_reconstruction"
        )
        assert report.multivariate is not None
        assert report.multivariate["method"] == "pca_reconstruction"
        assert report.multivariate["drifted"] is drifted and report.drifted is drifted
        assert report.drifted_features == []  # no per-feature test sees it
        assert report.to_dict()["multivariate"] == report.multivariate


def test_segments_get_a_statistic_of_their_own(flip: dict[str, Any], tmp_path: Path) -> None:
    num = {f"x{j}": {"kind": "numeric"} for j in range(6)}
    mon = correlation_monitor(
        "seg", tmp_path / "seg.json", "pca_reconstruction", features=num,
        segment_by=["features.region"], segment_min_reference_events=5000,
    )  # fmt: skip
    cfg_path = write_config(tmp_path, [mon])
    ref = write_lines(tmp_path / "ref.jsonl", flip["reference"])
    build_profile(cfg_path, "seg", ref, tmp_path / "seg.json")
    prof = Profile.load(tmp_path / "seg.json")
    # EU (50 %) and US (30 %) have 5,000 reference rows or more, APAC (20 %) does not
    assert sorted(k for (k,) in prof.segments) == ["EU", "US"]
    assert all(p.multivariate is not None for p in prof.segments.values())
    assert all("multivariate" in p.calibration for p in prof.segments.values())
    cfg = load_config(cfg_path, environ={})
    engine = Pipeline(cfg)
    spec = engine.stages[0].spec
    assert spec.multivariate is not None
    for key, seg in spec.segment_specs.items():
        assert (
            seg.multivariate is not None and seg.multivariate.model is not spec.multivariate.model
        )
        assert (
            seg.multivariate.threshold
            == prof.segments[key].calibration["multivariate"]["threshold"]
        )
    recs = [RawRecord(v, i + 1, None) for i, v in enumerate(flip["stream"])]
    out = [o for i in range(0, len(recs), 1000) for o in engine.process(recs[i : i + 1000])]
    segs = [o for o in out if o["type"] == "evaluation" and o["segment"] is not None]
    assert {o["segment"]["features.region"] for o in segs} == {"EU", "US", "APAC"}
    for region in ("EU", "US", "APAC"):
        mine = [o for o in segs if o["segment"]["features.region"] == region]
        assert all(o["multivariate"]["method"] == "pca_reconstruction" for o in mine)
    # the flip shows in the segments too, never before it
    eu = [o for o in segs if o["segment"]["features.region"] == "EU"]
    before = [o for o in eu if o["window"]["end_position"] <= FLIP]
    assert before and not any(o["multivariate"]["drifted"] for o in before)
    assert eu[-1]["multivariate"]["drifted"]

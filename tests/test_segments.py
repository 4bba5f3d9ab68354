"""Segments (``segment_by``): per-segment windows, references, alerts, checkpoints, metrics.

Seeded stream: three regions whose feature ``x`` differ naturally (EU ~ N(0, 1), US ~ N(2, 1),
APAC ~ N(0, 1)); from ``SHIFT_AT`` on, EU's ``x`` moves to N(0.8, 1) and nothing else changes.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import yaml
from driftd_testutil import (
    SECRET,
    Driftd,
    LogLines,
    api_view,
    http_get,
    metric_value,
    read_jsonl,
    registry_of,
    roundtrip,
    wait_until,
    write_lines,
)
from kafka_harness import committed_offsets, produce
from prometheus_client import generate_latest

from driftd.cli import main
from driftd.config import load_config, validate_config
from driftd.demo.sink import WebhookSink
from driftd.errors import ConfigError
from driftd.ingest.decode import EventDecoder, KeepingDecoder, Reject, segment_value
from driftd.reference.profile import Profile
from driftd.runtime.pipeline import Pipeline
from driftd.types import RawRecord

MEANS = {"EU": 0.0, "US": 2.0, "APAC": 0.0}
SHARES = {"EU": 0.4, "US": 0.4, "APAC": 0.2}
N = 12_000
SHIFT_AT = 6_000  # first shifted position (1-based)
EU = {"features.region": "EU"}


def events(
    n: int,
    seed: int,
    *,
    shift_at: int | None = None,
    version: str = "v1",
    regions: dict[str, float] | None = None,
) -> list[bytes]:
    rng = np.random.default_rng(seed)
    shares = regions or SHARES
    names = list(shares)
    picks = rng.choice(len(names), size=n, p=np.asarray(list(shares.values())))
    noise = rng.normal(size=(n, 2))
    out = []
    for i in range(n):
        region = names[picks[i]]
        x = MEANS.get(region, 0.0) + float(noise[i, 0])
        if shift_at is not None and i + 1 >= shift_at and region == "EU":
            x += 0.8
        out.append(
            orjson.dumps(
                {
                    "model": "m",
                    "model_version": version,
                    "ts": 1_700_000_000_000 + i * 100,
                    "features": {"x": x, "y": float(noise[i, 1]), "region": region},
                }
            )
        )
    return out


def config(
    tmp: Path, profile: Path | None = None, top: dict[str, Any] | None = None, **monitor: Any
) -> Path:
    mon: dict[str, Any] = {
        "name": "seg",
        "model": "m",
        "reference": {"type": "profile", "path": str(profile or tmp / "profile.json")},
        "window": {"type": "sliding", "events": 1000, "step": 500},
        "features": {
            "x": {"kind": "numeric", "test": "ks", "threshold": 0.001},
            "y": {"kind": "numeric", "test": "ks", "threshold": 0.001},
        },
        "policy": {"min_events": 1000, "consecutive": 2, "cooldown_s": 0},
        "calibration": {"false_alerts_per_million_events": None},
        "segment_by": ["features.region"],
        "segment_min_reference_events": 500,
    }
    mon.update(monitor)
    cfg = {"monitors": [mon], "state": {"dir": str(tmp / "state")}, **(top or {})}
    path = tmp / f"driftd-{len(list(tmp.glob('driftd-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def build_profile(tmp: Path, cfg: Path, out: Path | None = None) -> Path:
    ref = tmp / "reference.jsonl"
    if not ref.exists():
        write_lines(ref, events(20_000, seed=7))
    out = out or tmp / "profile.json"
    args = ["profile", "build", "-c", str(cfg), "--monitor", "seg", "--input", str(ref)]
    assert main([*args, "--out", str(out)]) == 0
    return out


def replay(tmp: Path, cfg: Path, lines: list[bytes], name: str = "out") -> list[dict[str, Any]]:
    src = write_lines(tmp / f"{name}.jsonl", lines)
    out = tmp / f"{name}-evals.jsonl"
    assert main(["replay", "-c", str(cfg), str(src), "--out", str(out)]) == 0
    return read_jsonl(out)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("segments")
    cfg = config(tmp)
    build_profile(tmp, cfg)
    return tmp, cfg


def alerts(out: list[dict[str, Any]], event: str = "drift.detected") -> list[dict[str, Any]]:
    return [o for o in out if o["type"] == "alert" and o["event"] == event]


def evals(out: list[dict[str, Any]], segment: dict[str, str] | None) -> list[dict[str, Any]]:
    return [o for o in out if o["type"] == "evaluation" and o["segment"] == segment]


# ---------------------------------------------------------------- config and decoding


@pytest.mark.parametrize(
    ("field", "value", "key"),
    [
        ("segment_by", ["features..region"], "monitors.0.segment_by"),
        ("segment_by", ["region", "region"], "monitors.0.segment_by"),
        ("segment_by", "region", "monitors.0.segment_by"),
        ("segment_by", [""], "monitors.0.segment_by"),
        ("max_segments", 0, "monitors.0.max_segments"),
        ("segment_min_reference_events", 1, "monitors.0.segment_min_reference_events"),
    ],
)
def test_bad_segment_config_names_the_key(field: str, value: Any, key: str) -> None:
    mon = {
        "name": "a",
        "model": "m",
        "reference": {"type": "profile", "path": "p.json"},
        "features": {"x": {"kind": "numeric"}},
        field: value,
    }
    with pytest.raises(ConfigError) as exc:
        validate_config({"monitors": [mon]})
    assert exc.value.key == key


def test_check_config_exits_2_on_bad_segment_by(tmp_path: Path) -> None:
    cfg = config(tmp_path, segment_by=["a..b"])
    assert main(["check-config", "-c", str(cfg)]) == 2


@pytest.mark.parametrize(
    "reference", [{"type": "warmup", "events": 1000}, {"type": "version", "version": "v1"}]
)
def test_segments_need_a_profile_reference(
    tmp_path: Path, reference: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = config(tmp_path, reference=reference)
    assert main(["check-config", "-c", str(cfg)]) == 2
    assert "monitors.0.segment_by" in capsys.readouterr().err


def test_segment_values_and_missing() -> None:
    assert segment_value("EU") == "EU"
    assert segment_value(True) == "true"
    assert segment_value(3) == "3" and segment_value(3.0) == "3" and segment_value(2.5) == "2.5"
    for v in (None, float("nan"), {"a": 1}, [1], float("inf")):
        assert segment_value(v) == "__missing__"
    assert len(segment_value("x" * 1000)) == 200


def test_keeping_decoder_decodes_exactly_like_the_plain_one() -> None:
    cfg = load_config(Path("config/demo.yaml"), environ={})
    plain = EventDecoder(cfg.schema_, 4096)
    keep = KeepingDecoder(cfg.schema_, 4096)
    corpus = [
        *events(50, seed=3),
        b"",
        b"{",
        b"[1]",
        b'{"model": 1}',
        b'{"model": "m"}',
        b'{"model": "m", "model_version": 7, "features": null}',
        b'{"model": "m", "model_version": "v", "features": 3}',
        b'{"model": "m", "model_version": "v", "ts": "yesterday"}',
        b'{"model": "m", "model_version": "v", "ts": "2026-11-26T12:00:00Z", "region": "EU"}',
        b"x" * 5000,
    ]
    for raw in corpus:
        got: list[Any] = []
        for d in (plain, keep):
            try:
                got.append(d.decode(raw, 123))
            except Reject as r:
                got.append((r.reason, r.detail))
        assert repr(got[0]) == repr(got[1]), raw
        if not isinstance(got[1][0], str) or len(got[1]) == 5:
            assert keep.last == orjson.loads(raw)


def test_unsegmented_engine_keeps_the_plain_decoder(setup: tuple[Path, Path]) -> None:
    tmp, _ = setup
    cfg = load_config(config(tmp, segment_by=[]), environ={})
    assert type(Pipeline(cfg).router.decoder) is EventDecoder
    cfg = load_config(config(tmp), environ={})
    assert type(Pipeline(cfg).router.decoder) is KeepingDecoder


# ---------------------------------------------------------------- profiles


def test_profile_stores_segment_references_over_global_categories(
    setup: tuple[Path, Path],
) -> None:
    tmp, _ = setup
    cfg = config(
        tmp,
        features={
            "x": {"kind": "numeric", "test": "ks", "threshold": 0.001},
            "region": {"kind": "categorical", "test": "chi2", "threshold": 0.001},
        },
        segment_min_reference_events=5000,
    )
    prof = Profile.load(build_profile(tmp, cfg, tmp / "cat-profile.json"))
    assert prof.segment_by == ("features.region",)
    # EU and US have ~8000 reference rows each, APAC ~4000 (< 5000): global reference for it.
    assert sorted(prof.segments) == [("EU",), ("US",)]
    eu = prof.segments[("EU",)]
    assert eu.segment == EU and eu.id == f"{prof.id}/features.region=EU"
    glob = prof.features["region"]
    seg = eu.features["region"]
    assert seg.categories == glob.categories  # type: ignore[union-attr]
    counts = dict(zip(seg.categories, seg.counts.tolist(), strict=True))  # type: ignore[union-attr]
    assert counts == {"EU": eu.events, "US": 0, "APAC": 0}
    xs = eu.features["x"]
    assert xs.count == eu.events and abs(xs.mean) < 0.05  # type: ignore[union-attr]
    assert abs(prof.segments[("US",)].features["x"].mean - 2.0) < 0.05  # type: ignore[union-attr]


def test_profile_without_segment_by_has_no_segments(setup: tuple[Path, Path]) -> None:
    tmp, _ = setup
    cfg = config(tmp, segment_by=[])
    out = build_profile(tmp, cfg, tmp / "plain-profile.json")
    data = orjson.loads(out.read_bytes())
    assert "segments" not in data
    assert Profile.load(out).segments == {}


# ---------------------------------------------------------------- replay behaviour


def test_only_the_drifted_segment_alerts(setup: tuple[Path, Path]) -> None:
    tmp, cfg = setup
    out = replay(tmp, cfg, events(N, seed=11, shift_at=SHIFT_AT))
    # Pinned on the seeded stream. The overall window (segment null) is evaluated as without
    # segments: EU is 40 % of the traffic, so its 0.8 sd shift is a 0.32 sd shift of the
    # mixture's x, which breaches at 7000 and alerts at 7500. EU's own window holds 1000 EU
    # events (~2500 positions): first breach at 7366, alert at 8584. US and APAC stay quiet.
    fired = [(a["segment"], a["window"]["end_position"], a["id"]) for a in alerts(out)]
    assert fired == [
        (None, 7500, "c2dbed85432148f20d97b1d14b07ba21"),
        (EU, 8584, "4cfb13c227f08534cd107b56e3dd649f"),
    ]
    assert alerts(out, "drift.resolved") == []
    a = alerts(out)[1]
    assert a["reference"].endswith("/features.region=EU")
    assert [f["name"] for f in a["features"]] == ["x"]
    assert a["window"] == {"start_position": 6159, "end_position": 8584, "events": 1000}
    eu = evals(out, EU)
    assert [e["window"]["end_position"] for e in eu if e["drifted"]] == [7366, 8584, 9764, 11009]
    for region in ("US", "APAC"):
        seg = evals(out, {"features.region": region})
        assert seg and not any(e["drifted"] for e in seg), region
    overall = evals(out, None)
    assert len(overall) == 23 and all(e["window"]["events"] == 1000 for e in overall)
    assert [e["window"]["end_position"] for e in overall if e["drifted"]][0] == 7000
    assert out[-1]["type"] == "summary" and out[-1]["accepted"] == N


def test_segment_alert_ids_are_stable_and_distinct(setup: tuple[Path, Path]) -> None:
    tmp, cfg = setup
    lines = events(N, seed=11, shift_at=SHIFT_AT)
    a = replay(tmp, cfg, lines, "ids-a")
    b = replay(tmp, cfg, lines, "ids-b")
    assert [x["id"] for x in alerts(a)] == [x["id"] for x in alerts(b)]
    # Same monitor, version, transition and count in two segments: different ids.
    from driftd.policy import alert_id

    eu = alert_id("seg", "v1", "drift.detected", 1000, "", "features.region=EU")
    us = alert_id("seg", "v1", "drift.detected", 1000, "", "features.region=US")
    assert len({eu, us, alert_id("seg", "v1", "drift.detected", 1000, "")}) == 3


def test_segment_without_own_reference_is_compared_with_the_global_one(
    setup: tuple[Path, Path],
) -> None:
    tmp, _ = setup
    # min reference rows above every segment's size: no segment references.
    cfg = config(tmp, segment_min_reference_events=50_000)
    prof = build_profile(tmp, cfg, tmp / "global-only.json")
    assert Profile.load(prof).segments == {}
    cfg = config(tmp, prof, segment_min_reference_events=50_000)
    out = replay(tmp, cfg, events(N, seed=11), "global-only")
    # No drift at all in the stream, but US (mean 2) and EU/APAC (mean 0) differ from the
    # mixture: every segment alerts against the global reference. This is why segment
    # references exist.
    fired = {a["segment"]["features.region"] for a in alerts(out) if a["segment"]}
    assert fired == {"EU", "US", "APAC"}
    assert not [a for a in alerts(out) if a["segment"] is None]
    with_refs = replay(tmp, setup[1], events(N, seed=11), "with-refs")
    assert alerts(with_refs) == []


def test_missing_segment_value_is_its_own_segment(setup: tuple[Path, Path]) -> None:
    tmp, cfg = setup
    lines = []
    for i, raw in enumerate(events(3000, seed=5)):
        obj = orjson.loads(raw)
        if i % 3 == 0:
            obj["features"]["region"] = None
        elif i % 3 == 1:
            del obj["features"]["region"]
        lines.append(orjson.dumps(obj))
    out = replay(tmp, cfg, lines, "missing")
    segs = {orjson.dumps(e["segment"]).decode() for e in out if e["type"] == "evaluation"}
    assert '{"features.region":"__missing__"}' in segs
    assert out[-1]["accepted"] == 3000


def test_overflow_segment_bound(setup: tuple[Path, Path]) -> None:
    tmp, _ = setup
    cfg = config(tmp, max_segments=2)
    regions = {f"r{i}": 0.1 for i in range(10)}
    lines = events(5000, seed=9, regions=regions)
    engine = Pipeline(load_config(cfg, environ={}))
    recs = [RawRecord(v, i + 1, None) for i, v in enumerate(lines)]
    for i in range(0, len(recs), 700):
        engine.process(recs[i : i + 700])
    (vs,) = engine.by_name["seg"].versions.values()
    keys = list(vs.segments)
    assert len(keys) == 3 and keys[2] == ("__other__",)
    first_two = {k[0] for k in keys[:2]}
    expected_other = sum(1 for v in lines if orjson.loads(v)["features"]["region"] not in first_two)
    assert engine.by_name["seg"].segment_overflow["v1"] == expected_other
    assert vs.segments[("__other__",)].accepted == expected_other
    assert sum(c.accepted for c in vs.segments.values()) == 5000 == vs.accepted
    reg = registry_of(engine)
    got = reg.get_sample_value(
        "driftd_segment_overflow_events_total", {"monitor": "seg", "model_version": "v1"}
    )
    assert got == expected_other
    assert reg.get_sample_value("driftd_segments", {"monitor": "seg", "model_version": "v1"}) == 3


# ---------------------------------------------------------------- checkpoints


def _records(lines: list[bytes]) -> list[RawRecord]:
    return [RawRecord(v, i + 1, None, 0, i, "t") for i, v in enumerate(lines)]


def _run(engine: Pipeline, recs: list[RawRecord], batch: int = 613) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(0, len(recs), batch):
        out.extend(engine.process(recs[i : i + batch]))
    return out


def _per_segment(out: list[dict[str, Any]]) -> dict[bytes, list[bytes]]:
    by: dict[bytes, list[bytes]] = {}
    for o in out:
        by.setdefault(orjson.dumps(o.get("segment")), []).append(orjson.dumps(o))
    return by


def test_checkpoint_round_trip_with_segments(setup: tuple[Path, Path]) -> None:
    tmp, cfg_path = setup
    cfg = load_config(cfg_path, environ={})
    recs = _records(events(N, seed=11, shift_at=SHIFT_AT))
    whole = _run(Pipeline(cfg), recs)
    first = Pipeline(cfg)
    head = _run(first, recs[:7000])
    second = roundtrip(first, cfg, tmp / "ckpt")
    (vm,) = second.by_name["seg"].versions.values()
    assert set(vm.segments) == {("EU",), ("US",), ("APAC",)}
    tail = _run(second, recs[7000:])
    assert head + tail == whole
    assert _per_segment(head + tail) == _per_segment(whole)
    assert [a["segment"] for a in alerts(tail)] == [None, EU]  # both after the restore


def test_changed_segment_by_discards_saved_segments(setup: tuple[Path, Path]) -> None:
    tmp, cfg_path = setup
    first = Pipeline(load_config(cfg_path, environ={}))
    _run(first, _records(events(3000, seed=14)))
    other = load_config(config(tmp, segment_by=["features.region", "model"]), environ={})
    # segment_by is part of the monitor's state layout: a change starts the monitor fresh
    second = roundtrip(first, other, tmp / "ckpt")
    assert second.by_name["seg"].versions == {}


# ---------------------------------------------------------------- time windows


def test_time_window_segments_close_with_their_version(setup: tuple[Path, Path]) -> None:
    tmp, _ = setup
    cfg = config(
        tmp,
        window={"type": "tumbling_time", "size_s": 100, "allowed_lateness_s": 0},
        policy={"min_events": 100, "consecutive": 1, "cooldown_s": 0},
    )
    out = replay(tmp, cfg, events(6000, seed=15), "time")
    overall = evals(out, None)
    assert len(overall) == 6  # 600 s of event time in 100 s windows (replay flushes the last)
    for region in ("EU", "US", "APAC"):
        seg = evals(out, {"features.region": region})
        assert len(seg) == 6, region
        ends = [e["window"]["window_end_ts"] for e in overall]
        assert [e["window"]["window_end_ts"] for e in seg] == ends
    total = sum(e["window"]["events"] for e in out if e["type"] == "evaluation" and e["segment"])
    assert total == sum(e["window"]["events"] for e in overall) == 6000


# ---------------------------------------------------------------- metrics and API


def test_metrics_and_monitor_api_show_segments(setup: tuple[Path, Path]) -> None:
    tmp, cfg_path = setup
    engine = Pipeline(load_config(cfg_path, environ={}))
    _run(engine, _records(events(N, seed=11, shift_at=SHIFT_AT)))
    reg = registry_of(engine)
    v = reg.get_sample_value
    base = {"monitor": "seg", "model_version": "v1"}
    # The overall series keep their label set (no segment label)…
    assert v("driftd_window_events", base) == 1000
    assert v("driftd_monitor_drifted", base) is not None
    # … and each segment adds series with one.
    eu = {**base, "segment": "features.region=EU"}
    us = {**base, "segment": "features.region=US"}
    assert v("driftd_monitor_drifted", eu) == 1.0
    assert v("driftd_monitor_drifted", us) == 0.0
    assert v("driftd_feature_drifted", {**eu, "feature": "x"}) == 1.0
    assert v("driftd_drift_statistic", {**us, "feature": "x", "test": "ks"}) is not None
    assert v("driftd_drift_share", eu) == 0.5
    counts = [
        v("driftd_segment_events_total", {**base, "segment": f"features.region={r}"}) for r in MEANS
    ]
    assert sum(c or 0 for c in counts) == N == v("driftd_events_total", base)
    assert v("driftd_segment_overflow_events_total", base) == 0
    assert v("driftd_segments", base) == 3
    # Series of one family with and without the segment label: promtool accepts the mix.
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found (Debian's prometheus package; .ci/run installs it)"
    body = generate_latest(reg)
    assert b'segment="features.region=EU"' in body
    res = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=60
    )
    assert res.returncode == 0 and not res.stdout.strip(), res.stdout + res.stderr
    view = api_view(engine, "seg")
    assert view["segment_by"] == ["features.region"]
    assert view["segments_drifted"] == ["features.region=EU"]
    segs = view["versions"]["v1"]["segments"]
    assert set(segs) == {f"features.region={r}" for r in MEANS}
    assert segs["features.region=EU"]["drifted"] is True
    assert segs["features.region=EU"]["reference"] == "segment"
    assert segs["features.region=US"]["state"] == "ok"
    assert segs["features.region=US"]["events"] + segs["features.region=EU"]["events"] > 0


# ---------------------------------------------------------------- the real broker


@pytest.mark.kafka
def test_segment_alert_through_kafka_and_restart(
    tmp_path: Path,
    setup: tuple[Path, Path],
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    driftd_proc: Callable[..., Driftd],
) -> None:
    """`driftd run` on the real broker: the EU segment alerts (webhook names the segment),
    US/APAC stay quiet, metrics and the monitor API show segments, offsets are committed, and
    after a restart the segment state comes back from the checkpoint (same open alert id, no
    second delivery)."""
    _, seeded = setup
    profile = seeded.parent / "profile.json"
    topic = make_topic(partitions=1)
    group = f"seg-{topic}"
    lines = events(N, seed=11, shift_at=SHIFT_AT)
    produce(kafka_bootstrap, topic, lines)
    with WebhookSink(SECRET) as sink:
        top = {
            "kafka": {
                "bootstrap_servers": [kafka_bootstrap],
                "topics": [topic],
                "group_id": group,
                "poll_timeout_ms": 100,
                "session_timeout_ms": 10_000,
                "stall_restart_s": 15,
            },
            "actions": {
                "rollback": {
                    "type": "webhook",
                    "url": sink.url,
                    "secret": {"env": "DRIFTD_TEST_SECRET"},
                    "backoff_initial_s": 0.05,
                    "backoff_max_s": 0.5,
                }
            },
            "http": {"listen": "127.0.0.1:0"},
            "state": {"dir": str(tmp_path / "state"), "checkpoint_interval_s": 1},
        }
        cfg = config(tmp_path, profile, top, actions=["rollback"])
        d = driftd_proc(cfg)
        wait_until(lambda: http_get(d.base + "/readyz")[0] == 200, 60, "/readyz")

        def all_in() -> bool:
            view = d.get_json("/api/v1/monitors/seg")
            v1 = view["versions"].get("v1")
            return (
                bool(v1)
                and v1["events"] == N
                and view["segments_drifted"] == ["features.region=EU"]
            )

        wait_until(all_in, 90, "every event folded in and the EU segment alerting")
        view = d.get_json("/api/v1/monitors/seg")
        segs = view["versions"]["v1"]["segments"]
        assert {k: v["state"] for k, v in segs.items()} == {
            "features.region=EU": "alerting",
            "features.region=US": "ok",
            "features.region=APAC": "ok",
        }
        eu_alert = segs["features.region=EU"]["open_alert_id"]
        overall_alert = view["versions"]["v1"]["open_alert_id"]
        assert eu_alert and overall_alert and eu_alert != overall_alert
        _, text = http_get(d.base + "/metrics")
        m = text.decode()
        assert metric_value(m, "driftd_monitor_drifted", segment="features.region=EU") == 1
        assert metric_value(m, "driftd_monitor_drifted", segment="features.region=US") == 0
        assert (
            sum(
                metric_value(m, "driftd_segment_events_total", segment=f"features.region={r}") or 0
                for r in MEANS
            )
            == N
        )

        assert sink.wait_for(2, timeout_s=30)
        time.sleep(1.0)
        payloads = [orjson.loads(r.body) for r in sink.requests]
        assert all(r.verified for r in sink.requests)
        assert sorted((orjson.dumps(p["segment"]).decode(), p["id"]) for p in payloads) == [
            ("null", overall_alert),
            ('{"features.region":"EU"}', eu_alert),
        ]
        assert d.terminate() == 0
        assert committed_offsets(kafka_bootstrap, group, topic) == {0: N}

        # Restart: the segment windows and policy state come back from the checkpoint.
        d2 = driftd_proc(cfg)
        wait_until(lambda: http_get(d2.base + "/readyz")[0] == 200, 60, "/readyz after restart")
        wait_until(
            lambda: "v1" in d2.get_json("/api/v1/monitors/seg")["versions"],
            60,
            "the partition's checkpoint restored",
        )
        view = d2.get_json("/api/v1/monitors/seg")
        segs = view["versions"]["v1"]["segments"]
        assert segs["features.region=EU"]["open_alert_id"] == eu_alert
        assert segs["features.region=US"]["window_events"] == 1000
        time.sleep(2.0)
        assert len(sink.requests) == 2
        assert d2.terminate() == 0


def test_segment_references_carry_their_own_calibrated_thresholds(
    setup: tuple[Path, Path],
) -> None:
    from driftd.runtime.pipeline import load_specs

    tmp, _ = setup
    calibrated = {"false_alerts_per_million_events": 1.0, "resamples": 200}
    feats = {"x": {"kind": "numeric"}, "y": {"kind": "numeric"}}
    cfg = config(tmp, calibration=calibrated, features=feats)
    path = build_profile(tmp, cfg, tmp / "calibrated.json")
    data = orjson.loads(path.read_bytes())
    refs = data["segments"]["references"]
    assert [r["segment"] for r in refs] == [{"features.region": r} for r in ("APAC", "EU", "US")]
    assert all(r["calibration"]["features"].keys() == {"x", "y"} for r in refs)
    (spec,) = load_specs(load_config(config(tmp, path, calibration=calibrated, features=feats)))
    eu = spec.for_segment(("EU",))
    assert eu is not spec and spec.for_segment(("nowhere",)) is spec
    for f_glob, f_eu, stored in zip(spec.features, eu.features, ("x", "y"), strict=True):
        assert f_eu.calibrated and f_glob.calibrated
        assert f_eu.threshold == refs[1]["calibration"]["features"][stored]["threshold"]
        assert f_eu.ref is not f_glob.ref and f_eu.ref.count == refs[1]["events"]  # type: ignore[union-attr]


def test_profile_segments_of_another_segment_by_are_not_used(setup: tuple[Path, Path]) -> None:
    from driftd.runtime.pipeline import load_specs

    tmp, cfg = setup
    path = tmp / "profile.json"
    assert Profile.load(path).segments  # built by segment_by [features.region]
    other = config(tmp, path, segment_by=["features.region", "model_version"])
    with LogLines() as logs:
        (spec,) = load_specs(load_config(other, environ={}))
    assert spec.segment_specs == {}
    assert "compared with the global reference" in logs.text
    (plain,) = load_specs(load_config(config(tmp, path, segment_by=[]), environ={}))
    assert plain.segment_specs == {} and plain.profile.segments == {}


def test_segment_labels_escape_separators() -> None:
    from driftd.reference.profile import segment_label

    by = ("a", "b")
    one = segment_label(by, ("x,b=y", "z"))
    two = segment_label(by, ("x", "y,b=z"))
    assert one != two  # unescaped, both read "a=x,b=y,b=z"
    assert segment_label(by, ("EU", "web")) == "a=EU,b=web"

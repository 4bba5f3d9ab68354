"""`driftd replay` end to end through the CLI: change points, exact KS, malformed input."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import orjson
import pytest
from driftd_testutil import build_credit_profile, credit_config, read_jsonl, write_lines
from scipy import stats

from driftd.cli import main
from driftd.demo.credit import generate
from driftd.reference.profile import Profile


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_credit_profile(tmp_path_factory.mktemp("profile"))


def replay(tmp: Path, cfg: Path, lines: list[bytes]) -> list[dict]:  # type: ignore[type-arg]
    src = write_lines(tmp / "stream.jsonl", lines)
    out = tmp / "out.jsonl"
    assert main(["replay", "-c", str(cfg), str(src), "--out", str(out)]) == 0
    return read_jsonl(out)


def test_input_shift_alerts_after_change_point_not_before(tmp_path: Path, profile: Path) -> None:
    cfg = credit_config(tmp_path, profile=profile)
    before = list(generate(10_000, version="v1", seed=2))
    after = list(generate(10_000, version="v1", seed=3, income_shift=0.25))
    out = replay(tmp_path, cfg, before + after)
    alerts = [o for o in out if o["type"] == "alert" and o["event"] == "drift.detected"]
    assert alerts, "the income shift was not detected"
    first = alerts[0]
    assert first["window"]["end_position"] > 10_000
    # Detected within one window length (2000 events) after the change.
    assert first["window"]["end_position"] <= 10_000 + 2000
    assert "income" in [f["name"] for f in first["features"]]
    assert len(alerts) == 1  # stays open, not re-raised every step
    evals = [o for o in out if o["type"] == "evaluation"]
    assert all(not e["drifted"] for e in evals if e["window"]["end_position"] <= 10_000)
    assert out[-1] == {"type": "summary", "events": 20_000, "accepted": 20_000, "rejected": {}}


def test_score_shift_of_new_version_names_rollback_to(tmp_path: Path, profile: Path) -> None:
    cfg = credit_config(tmp_path, profile=profile)
    v1 = list(generate(6000, version="v1", seed=4))
    v2 = list(generate(6000, version="v2", seed=5, score_shift=1.0))
    out = replay(tmp_path, cfg, v1 + v2)
    alerts = [o for o in out if o["type"] == "alert"]
    assert [a["model_version"] for a in alerts] == ["v2"]
    a = alerts[0]
    assert a["rollback_to"] == "v1" and a["event"] == "drift.detected"
    assert [f["name"] for f in a["features"]] == ["prediction"]
    assert a["id"] and a["monitor"] == "credit" and a["severity"] == "critical"


def test_ks_statistics_equal_scipy(tmp_path: Path, profile: Path) -> None:
    cfg = credit_config(tmp_path, profile=profile)
    lines = list(generate(4000, version="v1", seed=6)) + list(
        generate(4000, version="v1", seed=7, income_shift=0.1)
    )
    out = replay(tmp_path, cfg, lines)
    ref = Profile.load(profile)
    income_ref = ref.features["income"].sample  # type: ignore[union-attr]
    incomes = np.array([orjson.loads(x)["features"]["income"] for x in lines])
    evals = [o for o in out if o["type"] == "evaluation"]
    assert len(evals) >= 10
    for e in evals:
        w = e["window"]
        cur = incomes[w["start_position"] - 1 : w["end_position"]]
        assert cur.size == w["events"]
        want = stats.ks_2samp(income_ref, cur)
        got = e["features"]["income"]
        assert got["test"] == "ks"
        assert abs(got["statistic"] - want.statistic) <= 1e-9
        assert got["p_value"] == pytest.approx(want.pvalue, rel=1e-6, abs=1e-12)


def test_malformed_input_counted_by_reason(tmp_path: Path, profile: Path) -> None:
    good = list(generate(3000, version="v1", seed=8))
    ok = orjson.loads(good[0])
    bad = [
        b"{not json",
        b"[1,2,3]",
        b'"just a string"',
        b"\xff\xfe\xfd",
        orjson.dumps({k: v for k, v in ok.items() if k != "model"}),
        orjson.dumps({k: v for k, v in ok.items() if k != "model_version"}),
        orjson.dumps({**ok, "features": {**ok["features"], "income": "a lot"}}),
        orjson.dumps({**ok, "features": "income=5"}),
        orjson.dumps({**ok, "model": "someone-else"}),
        orjson.dumps({**ok, "ts": "last tuesday"}),
        b"{" + b'"pad": "' + b"x" * (2 * 1024 * 1024) + b'"}',
        b"",
    ]
    lines = (
        list(itertools.chain.from_iterable(zip(good[: len(bad)], bad, strict=True)))
        + good[len(bad) :]
    )
    cfg = credit_config(tmp_path, profile=profile)
    out = replay(tmp_path, cfg, lines)
    summary = out[-1]
    assert summary["type"] == "summary"
    assert summary["events"] == len(lines)
    assert summary["accepted"] + sum(summary["rejected"].values()) == len(lines)
    assert summary["accepted"] == len(good)
    assert summary["rejected"] == {
        "invalid_json": 2,
        "not_object": 2,
        "missing_model": 1,
        "missing_version": 1,
        "wrong_type": 1,
        "bad_features": 1,
        "unknown_model": 1,
        "bad_timestamp": 1,
        "too_large": 1,
        "empty": 1,
    }


def test_replay_from_stdin(
    tmp_path: Path,
    profile: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    import io
    import sys

    cfg = credit_config(tmp_path, profile=profile)
    data = b"\n".join(generate(1500, version="v1", seed=9)) + b"\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert main(["replay", "-c", str(cfg), "-"]) == 0
    lines = capsysbinary.readouterr().out.splitlines()
    assert orjson.loads(lines[-1])["accepted"] == 1500


def test_missing_rate_jump_alerts_with_its_own_test(tmp_path: Path, profile: Path) -> None:
    cfg = credit_config(tmp_path, profile=profile)
    before = list(generate(6000, version="v1", seed=61))
    after = []
    for i, line in enumerate(generate(6000, version="v1", seed=62)):
        ev = orjson.loads(line)
        if i % 10 < 3:  # the pipeline suddenly drops `age` for 30 % of events
            ev["features"]["age"] = None
        after.append(orjson.dumps(ev))
    out = replay(tmp_path, cfg, before + after)
    alerts = [o for o in out if o["type"] == "alert" and o["event"] == "drift.detected"]
    assert alerts and alerts[0]["window"]["end_position"] <= 6000 + 2000
    assert all(
        e["quality_breaches"] == []
        for e in out
        if e["type"] == "evaluation" and e["window"]["end_position"] <= 6000
    )
    entry = next(f for f in alerts[0]["features"] if f["test"] == "missing_rate")
    assert entry["name"] == "age" and entry["statistic"] > 0.1 and entry["threshold"] == 0.1
    evals = [o for o in out if o["type"] == "evaluation"]
    assert evals[-1]["features"]["age"]["quality"]["missing_rate"] == pytest.approx(0.3, abs=0.02)


def test_audit_log_records_holds_and_alerts_with_reasons(tmp_path: Path, profile: Path) -> None:
    cfg = credit_config(tmp_path, profile=profile)
    lines = list(generate(4000, version="v1", seed=63)) + list(
        generate(4000, version="v2", seed=64, score_shift=1.2)
    )
    src = write_lines(tmp_path / "s.jsonl", lines)
    audit = tmp_path / "audit.jsonl"
    assert (
        main(
            [
                "replay",
                "-c",
                str(cfg),
                str(src),
                "--out",
                str(tmp_path / "o.jsonl"),
                "--audit",
                str(audit),
            ]
        )
        == 0
    )
    recs = read_jsonl(audit)
    kinds = [(r["decision"], r.get("model_version")) for r in recs]
    first_alert = kinds.index(("drift.detected", "v2"))
    assert ("hold", "v2") in kinds[:first_alert]  # k-of-n: the first breach was held back
    hold = next(r for r in recs if r["decision"] == "hold")
    assert hold["reason"] == "breach 1 of 2 needed" and hold["state"] == "pending"
    assert hold["breaches"][0]["name"] == "prediction"
    alert = recs[first_alert]
    assert alert["id"] and alert["rollback_to"] == "v1" and alert["reference"]
    assert alert["features"][0]["threshold"] == 0.2 and alert["window"]["events"] >= 1000
    assert all(r["model_version"] == "v2" for r in recs)  # stationary v1 is never noise here


def test_replay_dead_letter_file(tmp_path: Path, profile: Path) -> None:
    import yaml

    cfg = credit_config(tmp_path, profile=profile)
    data = yaml.safe_load(cfg.read_text())
    data["dead_letter"] = {"type": "file", "path": str(tmp_path / "dlq.jsonl")}
    cfg.write_text(yaml.safe_dump(data))
    lines = list(generate(1200, version="v1", seed=65))
    lines[5] = b"{oops"
    lines[9] = b"\xff\xfe"
    out = replay(tmp_path, cfg, lines)
    assert out[-1]["rejected"] == {"invalid_json": 2}
    dead = read_jsonl(tmp_path / "dlq.jsonl")
    assert [(d["reason"], d["position"]) for d in dead] == [
        ("invalid_json", 6),
        ("invalid_json", 10),
    ]
    assert dead[0]["value"] == "{oops" and dead[1]["value"] is None
    assert dead[1]["value_base64"] == "//4="


def test_pinned_alert_and_resolve_positions(tmp_path: Path, profile: Path) -> None:
    """Seeded stream: income shifts at event 4001 and recovers at 8001. With a 2000-event
    window stepped by 500 and consecutive: 2, the alert fires at 5000 (breaches at 4500 and
    5000) and resolves at 10500 (the first two windows free of shifted events: 10000, 10500).
    Any change to windows, tests, thresholds or policy that moves these shows up here."""
    cfg = credit_config(tmp_path, profile=profile)
    lines = (
        list(generate(4000, version="v1", seed=111))
        + list(generate(4000, version="v1", seed=112, income_shift=0.3))
        + list(generate(6000, version="v1", seed=113))
    )
    out = replay(tmp_path, cfg, lines)
    alerts = [
        (o["event"], o["window"]["end_position"], o["id"]) for o in out if o["type"] == "alert"
    ]
    assert alerts == [
        ("drift.detected", 5000, "e8a8b900e1ee88d3e10fc6a603b7f0bd"),
        ("drift.resolved", 10500, "07a8f38800631ce5624762a8aa1595d7"),
    ]
    resolved = [o for o in out if o["type"] == "alert"][1]
    assert resolved["resolves"] == "e8a8b900e1ee88d3e10fc6a603b7f0bd"
    assert resolved["severity"] == "info"


def test_invented_versions_are_bounded_and_the_live_one_survives(
    tmp_path: Path, profile: Path
) -> None:
    """A producer inventing a version per event must not grow state without bound: beyond
    max_versions the least recently seen version states are dropped (counted), and the live
    version keeps its window and its alert."""
    import yaml

    from driftd.config import load_config
    from driftd.metrics import build_registry
    from driftd.runtime.engine import Engine
    from driftd.types import RawRecord

    cfg_path = credit_config(tmp_path, profile=profile)
    doc = yaml.safe_load(cfg_path.read_text())
    doc["monitors"][0]["max_versions"] = 5
    cfg_path.write_text(yaml.safe_dump(doc))
    engine = Engine(load_config(cfg_path))
    live = list(generate(3000, version="v1", seed=3))
    junk = [
        orjson.dumps({**orjson.loads(line), "model_version": f"junk-{i}"})
        for i, line in enumerate(generate(400, version="x", seed=4))
    ]
    stream = [x for pair in itertools.zip_longest(live, junk) for x in pair if x is not None]
    for start in range(0, len(stream), 100):
        engine.process(
            [RawRecord(v, start + i + 1, None) for i, v in enumerate(stream[start : start + 100])]
        )
    ps = engine.partitions[""]
    versions = [v for (_m, v) in ps.versions]
    assert len(versions) <= 5 and "v1" in versions
    # Junk versions of earlier batches were dropped; within a batch, once every kept version
    # has rows staged, further new versions are rejected (counted), never kept.
    s = engine.summary()
    evicted = engine.versions_evicted["credit"]
    too_many = s["rejected"].get("too_many_versions", 0)
    assert evicted > 0 and too_many > 0
    assert s["accepted"] + too_many == s["events"] == 3400
    vs = ps.versions[("credit", "v1")]
    assert vs.accepted == 3000 and vs.latest is not None
    text = "\n".join(
        f"{s.name} {s.value}" for f in build_registry(engine, {}).collect() for s in f.samples
    )
    assert 'driftd_versions_evicted_total' in text or "driftd_versions_evicted" in text

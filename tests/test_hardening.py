"""A hostile stream against the pipeline (issue 13): stray and invented versions, far-future
event times, and the files driftd writes about them."""

from __future__ import annotations

import itertools
import os
import stat
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from driftd_testutil import api_view, build_credit_profile, credit_config, registry_of

from driftd.actions.audit import AuditLog
from driftd.actions.deadletter import FileDeadLetter
from driftd.config import load_config
from driftd.demo.credit import generate
from driftd.runtime.pipeline import Pipeline
from driftd.types import RawRecord


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_credit_profile(tmp_path_factory.mktemp("hardening-profile"))


def feed(p: Pipeline, lines: list[bytes], batch: int = 500) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(0, len(lines), batch):
        recs = [RawRecord(v, 0, None) for v in lines[i : i + batch]]
        out.extend(p.process(recs))
    return out


def with_version(line: bytes, version: Any) -> bytes:
    return orjson.dumps({**orjson.loads(line), "model_version": version})


def test_stray_versions_are_rejected_and_never_named_in_rollback_to(
    tmp_path: Path, profile: Path
) -> None:
    p = Pipeline(load_config(credit_config(tmp_path, profile=profile), environ={}))
    v1 = list(generate(3000, version="v1", seed=1))
    strays = [
        with_version(v1[0], ""),
        with_version(v1[1], " v1"),
        with_version(v1[2], "x" * 500_000),
        with_version(v1[3], "v1\nINJECTED"),
        with_version(v1[4], "v1.5-typo"),  # valid, but serves nothing: never a rollback target
    ]
    v2 = list(generate(3000, version="v2", seed=2, score_shift=1.2))
    out = feed(p, v1 + strays + v2)
    alerts = [o for o in out if o["type"] == "alert"]
    assert [(a["model_version"], a["rollback_to"]) for a in alerts] == [("v2", "v1")]
    assert p.summary()["rejected"] == {"bad_version": 4}
    from prometheus_client import generate_latest

    assert b"INJECTED" not in generate_latest(registry_of(p))
    assert api_view(p, "credit")["model_version"] == "v2"


def test_invented_versions_keep_the_real_ones_their_alert_and_a_small_scrape(
    tmp_path: Path, profile: Path
) -> None:
    from prometheus_client import generate_latest

    cfg_path = credit_config(tmp_path, profile=profile)
    doc = yaml.safe_load(cfg_path.read_text())
    doc["monitors"][0]["max_versions"] = 10
    cfg_path.write_text(yaml.safe_dump(doc))
    p = Pipeline(load_config(cfg_path, environ={}))
    v1 = list(generate(3000, version="v1", seed=3))
    v2 = list(generate(3000, version="v2", seed=4, score_shift=1.2))
    feed(p, v1 + v2)  # v2 alerting
    template = orjson.loads(v1[0])
    junk = [
        orjson.dumps({**template, "model_version": f"j{i}", "event_id": f"j{i}"})
        for i in range(200_000)
    ]
    tail = list(generate(1000, version="v2", seed=5, score_shift=1.2))
    mixed = [x for pair in itertools.zip_longest(junk, tail) for x in pair if x is not None]
    feed(p, mixed, batch=5000)
    stage = p.by_name["credit"]
    assert len(stage.versions) <= 10
    assert "v2" in stage.versions and stage.versions["v2"].policy.state == "alerting"
    assert stage.rollback_to("v2") == "v1"
    view = api_view(p, "credit")
    assert view["model_version"] == "v2" and view["drifted"] is True
    scrape = generate_latest(registry_of(p))
    assert len(scrape) < 200_000, len(scrape)  # bounded by max_versions, not by the stream
    s = p.summary()
    assert s["accepted"] + sum(s["rejected"].values()) == s["events"]
    assert stage.evicted > 0


def test_an_event_dated_year_9000_does_not_stop_a_time_window(
    tmp_path: Path, profile: Path
) -> None:
    cfg_path = credit_config(
        tmp_path,
        profile=profile,
        window={"type": "tumbling_time", "size_s": 1, "allowed_lateness_s": 0},
        policy={"min_events": 100, "consecutive": 1, "cooldown_s": 0},
    )
    p = Pipeline(load_config(cfg_path, environ={}))
    lines = list(generate(6000, version="v1", seed=6))  # 1,000 events/s of event time
    bomb = orjson.dumps({**orjson.loads(lines[2500]), "ts": "9000-01-01T00:00:00Z"})
    out = feed(p, lines[:2500] + [bomb] + lines[2500:])
    out += p.finish()
    evals = [o for o in out if o["type"] == "evaluation"]
    assert len(evals) == 6  # every second of the stream, before and after the bomb
    assert p.summary()["rejected"] == {"bad_timestamp": 1}


def test_dead_letters_and_audit_log_are_private_and_rotated(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        dl = FileDeadLetter(tmp_path / "dead.jsonl", max_bytes=2000, backups=2)
        audit = AuditLog(tmp_path / "audit.jsonl", max_bytes=2000, backups=2)
    finally:
        os.umask(old)
    rec = RawRecord(b'{"secret": "raw event"}' * 5, 1, None)
    for _ in range(100):
        dl.write([(rec, "invalid_json", "")])
        audit.write([{"type": "alert", "event": "drift.detected", "id": "x" * 100}])
    dl.close()
    audit.close()
    for name in ("dead.jsonl", "audit.jsonl"):
        files = sorted(p.name for p in tmp_path.glob(name + "*"))
        assert files == [name, f"{name}.1", f"{name}.2"], files
        for f in tmp_path.glob(name + "*"):
            assert stat.S_IMODE(f.stat().st_mode) == 0o600
            assert f.stat().st_size <= 2000

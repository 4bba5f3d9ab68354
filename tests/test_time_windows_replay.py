"""Event-time windows through the whole pipeline: tumbling/sliding by time, late events
counted and dead-lettered, idle versions closed, restore mid-stream."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import yaml
from driftd_testutil import build_credit_profile, credit_config, read_jsonl, write_lines

from driftd.cli import main
from driftd.demo.credit import generate


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_credit_profile(tmp_path_factory.mktemp("tw-profile"))


T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def timed_config(tmp: Path, profile: Path, window: dict) -> Path:  # type: ignore[type-arg]
    cfg = credit_config(
        tmp,
        profile=profile,
        window=window,
        policy={"min_events": 500, "consecutive": 2, "cooldown_s": 0},
    )
    data = yaml.safe_load(cfg.read_text())
    data["dead_letter"] = {"type": "file", "path": str(tmp / "dlq.jsonl")}
    cfg.write_text(yaml.safe_dump(data))
    return cfg


def run(tmp: Path, cfg: Path, lines: list[bytes]) -> list[dict]:  # type: ignore[type-arg]
    src = write_lines(tmp / "s.jsonl", lines)
    assert main(["replay", "-c", str(cfg), str(src), "--out", str(tmp / "o.jsonl")]) == 0
    return read_jsonl(tmp / "o.jsonl")


def test_tumbling_time_windows_late_events_and_alert(tmp_path: Path, profile: Path) -> None:
    cfg = timed_config(
        tmp_path, profile, {"type": "tumbling_time", "size_s": 2, "allowed_lateness_s": 0.5}
    )
    # 1000 events/s: v1 for 10 s, then income shifts for 10 s
    lines = list(generate(10_000, version="v1", seed=91, start=T0)) + list(
        generate(10_000, version="v1", seed=92, income_shift=0.25, start=T0 + timedelta(seconds=10))
    )
    late = orjson.loads(lines[100])
    late["ts"] = (T0 + timedelta(seconds=3)).isoformat()  # 3 s behind: later than allowed
    lines.insert(9000, orjson.dumps(late))
    out = run(tmp_path, cfg, lines)
    evals = [o for o in out if o["type"] == "evaluation"]
    assert [e["window"]["events"] for e in evals] == [2000] * 10
    assert evals[0]["window"]["window_start_ts"] == "2026-11-26T12:00:00Z"
    assert evals[0]["window"]["window_end_ts"] == "2026-11-26T12:00:02Z"
    alerts = [o for o in out if o["type"] == "alert"]
    assert alerts and alerts[0]["window"]["end_position"] > 10_001  # after the change point
    assert all(not e["drifted"] for e in evals[:5])
    summary = out[-1]
    assert summary["rejected"] == {"late": 1} and summary["accepted"] == 20_000
    assert [d["reason"] for d in read_jsonl(tmp_path / "dlq.jsonl")] == ["late"]


def test_sliding_time_windows_and_idle_version_closed(tmp_path: Path, profile: Path) -> None:
    cfg = timed_config(
        tmp_path,
        profile,
        {"type": "sliding_time", "size_s": 4, "step_s": 2, "allowed_lateness_s": 0},
    )
    v1 = list(generate(6000, version="v1", seed=93, start=T0))
    v2 = list(
        generate(6000, version="v2", seed=94, score_shift=1.2, start=T0 + timedelta(seconds=6))
    )
    out = run(tmp_path, cfg, v1 + v2)
    evals = [o for o in out if o["type"] == "evaluation"]
    by_v = {
        v: [e["window"]["events"] for e in evals if e["model_version"] == v] for v in ("v1", "v2")
    }
    # v1: windows ending at 2 (partial, 2000), 4, 6 (4000 each), then the idle v1 is closed by
    # v2's clock: the window ending at 8 holds v1's last 2 s
    assert by_v["v1"] == [2000, 4000, 4000, 2000]
    assert by_v["v2"][:3] == [2000, 4000, 4000]
    assert [a["model_version"] for a in out if a["type"] == "alert"] == ["v2"]


def test_time_window_state_survives_checkpoint(tmp_path: Path, profile: Path) -> None:
    from driftd_testutil import roundtrip

    from driftd.config import load_config
    from driftd.runtime.pipeline import Pipeline
    from driftd.types import RawRecord

    cfg = load_config(
        timed_config(
            tmp_path,
            profile,
            {"type": "sliding_time", "size_s": 4, "step_s": 1, "allowed_lateness_s": 0.2},
        ),
        environ={},
    )
    lines = list(generate(9000, version="v1", seed=95, start=T0, income_shift=0.0))
    recs = [RawRecord(v, i + 1, None, 0, i, "t") for i, v in enumerate(lines)]

    def run_engine(e: Pipeline, rs: list[RawRecord]) -> list[dict]:  # type: ignore[type-arg]
        out = []
        for i in range(0, len(rs), 700):
            out.extend(e.process(rs[i : i + 700]))
        return out

    whole = run_engine(Pipeline(cfg), recs)
    first = Pipeline(cfg)
    a = run_engine(first, recs[:4567])
    second = roundtrip(first, cfg, tmp_path / "ck")
    b = run_engine(second, recs[4567:])
    assert a + b == whole and len(whole) >= 8

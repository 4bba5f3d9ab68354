"""Steps evaluated on the evaluation thread (issue 15): the same lines, in the same order, and
the same state as in-line evaluation — alerts, resolves, warmup references, segments, the
multivariate statistic, several monitors, several partitions — whatever the batch boundaries
and the memory budget."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from driftd_testutil import build_credit_profile, credit_config

from driftd.config import load_config
from driftd.demo.credit import generate
from driftd.monitor import deferred
from driftd.runtime.pipeline import Pipeline
from driftd.runtime.replay import replay_lines
from driftd.types import RawRecord


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_credit_profile(tmp_path_factory.mktemp("deferred-profile"))


@pytest.fixture(scope="module")
def cfg_path(tmp_path_factory: pytest.TempPathFactory, profile: Path) -> Path:
    tmp = tmp_path_factory.mktemp("deferred")
    path = credit_config(
        tmp, profile=profile, window={"type": "sliding", "events": 1000, "step": 250}
    )
    doc = yaml.safe_load(path.read_text())
    base = doc["monitors"][0]
    warm = {"name": "warm", "reference": {"type": "warmup", "events": 1500}}
    doc["monitors"].append({**base, **warm, "multivariate": {"method": "pca_reconstruction"}})
    path.write_text(yaml.safe_dump(doc))
    return path


def stream() -> list[RawRecord]:
    """v1, a drifting v2 (alerts), then v2 healed (resolves); 3 partitions, keyed by event."""
    lines = (
        list(generate(4000, version="v1", seed=61))
        + list(generate(3000, version="v2", seed=62, score_shift=1.2))
        + list(generate(4000, version="v2", seed=63))
    )
    return [RawRecord(v, i + 1, None, i % 3, i // 3, "t") for i, v in enumerate(lines)]


def run(cfg_path: Path, batch: int, defer: bool) -> tuple[list[dict[str, Any]], Pipeline]:
    pipe = Pipeline(load_config(cfg_path, environ={}))
    if defer:
        assert pipe.defer_evaluations()
    recs = stream()
    out: list[dict[str, Any]] = []
    for i in range(0, len(recs), batch):
        out.extend(pipe.process(recs[i : i + batch]))
    out.extend(pipe.finish())
    return out, pipe


def _untimed(x: Any) -> Any:
    """Without the durations a checkpoint records (how long a calibration took)."""
    if isinstance(x, dict):
        return {k: _untimed(v) for k, v in x.items() if k != "seconds"}
    if isinstance(x, list | tuple):
        return [_untimed(v) for v in x]
    return x


def state(pipe: Pipeline) -> tuple[bytes, dict[str, bytes]]:
    """A full checkpoint: its JSON parts and, per entry and array, the array's bytes."""
    meta, entries, removed = pipe.checkpoint(everything=True)
    arrays = {f"{k}/{n}": a.tobytes() for k, (_, arrs) in entries.items() for n, a in arrs.items()}
    doc = _untimed([meta, sorted((k, m) for k, (m, _) in entries.items()), removed])
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS), arrays


@pytest.mark.parametrize("batch", [97, 1000, 5000])
def test_same_lines_and_state_as_in_line(cfg_path: Path, batch: int) -> None:
    inline, a = run(cfg_path, batch, defer=False)
    off_line, b = run(cfg_path, batch, defer=True)
    events = {line.get("event") for line in inline if line["type"] == "alert"}
    assert {"drift.detected", "drift.resolved"} <= events  # the stream covers them
    assert any(str(line.get("reference", "")).startswith("warmup:") for line in inline)
    assert any(line.get("multivariate") for line in inline)
    assert off_line == inline
    assert state(b) == state(a)


def test_a_small_memory_budget_changes_nothing(
    cfg_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inline, _ = run(cfg_path, 5000, defer=False)
    monkeypatch.setattr(deferred, "BUDGET_BYTES", 1)  # every submit waits for the last one
    off_line, pipe = run(cfg_path, 5000, defer=True)
    assert off_line == inline
    assert pipe._evaluator is not None and pipe._evaluator._budget == 1


@pytest.mark.parametrize("budget", [1, 1 << 20])
def test_over_budget_a_submit_waits_for_the_oldest(
    budget: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deferred, "_timed", lambda spec, view: time.sleep(0.3) or ({}, 0.0))
    ev = deferred.Evaluator(budget_bytes=budget)
    first = ev.submit(None, None, 1)  # type: ignore[arg-type]
    ev.submit(None, None, 1)  # type: ignore[arg-type]
    assert first.done() is (budget == 1)


def test_lines_wait_for_the_next_batch_or_drain(cfg_path: Path) -> None:
    pipe = Pipeline(load_config(cfg_path, environ={}))
    pipe.defer_evaluations()
    recs = stream()
    assert pipe.process(recs[:2000]) == []  # held: its steps may still be evaluating
    assert pipe.holding
    with pytest.raises(RuntimeError, match="drain"):
        pipe.checkpoint()
    lines = pipe.drain()
    assert lines and lines[0]["type"] == "evaluation" and not pipe.holding
    pipe.checkpoint()


def test_replay_defers_and_gives_the_in_line_lines(cfg_path: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(r.value or b"" for r in stream()) + b"\n")
    cfg = load_config(cfg_path, environ={})
    off_line = list(replay_lines(cfg, [str(events)], batch=1000))
    in_line = list(replay_lines(cfg, [str(events)], batch=1000, pipeline=Pipeline(cfg)))
    assert off_line == in_line and len(off_line) > 10


def test_not_with_time_windows_or_performance(tmp_path: Path, profile: Path) -> None:
    path = credit_config(tmp_path, profile=profile, window={"type": "tumbling_time", "size_s": 60})
    assert not Pipeline(load_config(path, environ={})).defer_evaluations()


def test_segments_too(tmp_path: Path) -> None:
    from test_segments import build_profile, config, events

    cfg_path = config(tmp_path)
    build_profile(tmp_path, cfg_path)
    lines = events(6000, seed=9, shift_at=2000) + events(3000, seed=10)
    recs = [RawRecord(v, i + 1, None, i % 2, i // 2, "t") for i, v in enumerate(lines)]
    outs = []
    for defer in (False, True):
        pipe = Pipeline(load_config(cfg_path, environ={}))
        if defer:
            assert pipe.defer_evaluations()
        out = [x for i in range(0, len(recs), 700) for x in pipe.process(recs[i : i + 700])]
        outs.append(out + pipe.finish())
    assert any(o.get("segment") and o["type"] == "alert" for o in outs[0])
    assert outs[1] == outs[0]

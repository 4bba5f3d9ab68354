"""Reference modes `warmup` and `version` through `driftd replay`: pinned alert positions on
seeded streams, exact two-window statistics, batching independence, checkpoint round trips,
check-config."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from driftd_testutil import LogLines, api_view, read_jsonl, roundtrip, write_lines
from refmode_util import interleave, mode_config
from scipy import stats

from driftd.cli import main
from driftd.config import load_config
from driftd.demo.credit import generate
from driftd.runtime.pipeline import Pipeline
from driftd.types import RawRecord

WARMUP = {"type": "warmup", "events": 5000}
STABLE = {"type": "version", "version": "stable"}
PREVIOUS = {"type": "version", "version": "previous"}


def replay(
    tmp: Path, cfg: Path, lines: list[bytes], batch: int = 5000, name: str = "out"
) -> list[dict[str, Any]]:
    src = write_lines(tmp / "stream.jsonl", lines)
    out = tmp / f"{name}.jsonl"
    args = ["replay", "-c", str(cfg), str(src), "--out", str(out), "--batch", str(batch)]
    assert main(args) == 0
    return read_jsonl(out)


def of(out: list[dict[str, Any]], kind: str, version: str | None = None) -> list[dict[str, Any]]:
    return [
        o
        for o in out
        if o["type"] == kind and (version is None or o.get("model_version") == version)
    ]


def warmup_stream() -> list[bytes]:
    """v1: 13,000 stationary events (1–13,000); v2, whose scores sit far above v1's: 11,000
    stationary events (13,001–24,000), then 4,000 with incomes 25 % higher (24,001–28,000)."""
    return (
        list(generate(13_000, version="v1", seed=41))
        + list(generate(11_000, version="v2", seed=42, score_shift=1.0))
        + list(generate(4000, version="v2", seed=43, score_shift=1.0, income_shift=0.25))
    )


# ---------------------------------------------------------------------------- warmup


def test_warmup_each_version_its_own_reference_and_drift_after_it_alerts(tmp_path: Path) -> None:
    cfg = mode_config(tmp_path, WARMUP)
    with LogLines() as logs:
        out = replay(tmp_path, cfg, warmup_stream())
    v1, v2 = of(out, "evaluation", "v1"), of(out, "evaluation", "v2")
    # Evaluation starts after each version's own 5,000-event warmup, at min_events (1,000).
    assert (v1[0]["window"]["start_position"], v1[0]["window"]["end_position"]) == (5001, 6000)
    assert (v2[0]["window"]["start_position"], v2[0]["window"]["end_position"]) == (18001, 19000)
    assert len(v1) == 15 and len(v2) == 19
    ref1, ref2 = v1[0]["reference"], v2[0]["reference"]
    assert ref1.startswith("warmup:v1:") and ref2.startswith("warmup:v2:") and ref1 != ref2
    assert {e["reference"] for e in v1} == {ref1} and {e["reference"] for e in v2} == {ref2}
    # Tests chosen on the 5,000-event reference (> 1,000: distances), thresholds calibrated.
    feats = v1[0]["features"]
    assert {n: f["test"] for n, f in feats.items()} == {
        "income": "wasserstein_norm",
        "age": "wasserstein_norm",
        "debt_ratio": "wasserstein_norm",
        "region": "js",
        "employment": "js",
    }
    assert all(0.05 < f["threshold"] < 0.2 for f in feats.values())
    assert "calibrated 6 thresholds" in logs.text and "warmup reference" in logs.text
    # v1 is stationary: quiet. v2 is quiet too although its scores differ from v1's (its own
    # reference has them), until its incomes move at 24,001.
    assert not any(e["drifted"] for e in v1)
    assert not any(e["drifted"] for e in v2 if e["window"]["end_position"] <= 24_000)
    alerts = of(out, "alert")
    assert [(a["event"], a["model_version"], a["window"]["end_position"]) for a in alerts] == [
        ("drift.detected", "v2", 25_000)
    ]
    a = alerts[0]
    assert a["rollback_to"] == "v1" and a["reference"] == ref2
    assert [f["name"] for f in a["features"]] == ["income"]
    assert a["window"] == {"start_position": 23_001, "end_position": 25_000, "events": 2000}
    assert out[-1] == {"type": "summary", "events": 28_000, "accepted": 28_000, "rejected": {}}


def test_warmup_reference_equals_a_profile_of_the_same_events(tmp_path: Path) -> None:
    """The first N events of a version give the statistics a profile built from them gives."""
    cfg = mode_config(
        tmp_path,
        {"type": "warmup", "events": 3000},
        features={"income": {"kind": "numeric", "test": "ks"}},
    )
    lines = list(generate(6000, version="v1", seed=7, income_shift=0.05))
    out = replay(tmp_path, cfg, lines)
    incomes = np.array([orjson.loads(x)["features"]["income"] for x in lines])
    ref = incomes[:3000]
    evals = of(out, "evaluation")
    assert len(evals) == 5
    for e in evals:
        w = e["window"]
        cur = incomes[w["start_position"] - 1 : w["end_position"]]
        want = stats.ks_2samp(ref, cur)
        got = e["features"]["income"]
        assert abs(got["statistic"] - want.statistic) <= 1e-9
        assert got["p_value"] == pytest.approx(want.pvalue, rel=1e-6, abs=1e-12)


def test_warmup_categories_discovered_and_unseen_afterwards(tmp_path: Path) -> None:
    """Categories come from the warmup; a label first seen after it is the unseen bucket."""
    cfg = mode_config(
        tmp_path,
        {"type": "warmup", "events": 2000},
        features={"region": {"kind": "categorical", "test": "chi2", "threshold": 1e-6}},
    )
    base = list(generate(5000, version="v1", seed=9))
    lines = base[:4000]
    for x in base[4000:]:
        ev = orjson.loads(x)
        ev["features"]["region"] = "MARS"  # never seen in the warmup
        lines.append(orjson.dumps(ev))
    out = replay(tmp_path, cfg, lines)
    evals = of(out, "evaluation")
    quiet = [e for e in evals if e["window"]["end_position"] <= 4000]
    assert quiet and all(e["features"]["region"]["quality"]["unseen_rate"] == 0 for e in quiet)
    last = evals[-1]["features"]["region"]
    assert last["quality"]["unseen_rate"] == pytest.approx(1000 / 2000)
    alerts = of(out, "alert")
    assert alerts and alerts[0]["model_version"] == "v1"
    assert {"region"} <= {f["name"] for f in alerts[0]["features"]}


# ---------------------------------------------------------------------------- version


def canary_stream(shift: float) -> list[bytes]:
    """`stable` and `canary` alternate (stable first); the canary's last 6,000 events (from
    position 12,002) have scores shifted by ``shift``."""
    canary = itertools.chain(
        generate(6000, version="canary", seed=52),
        generate(6000, version="canary", seed=53, score_shift=shift),
    )
    return list(interleave(generate(12_000, version="stable", seed=51), canary))


def test_version_canary_shift_alerts_with_rollback_to_stable(tmp_path: Path) -> None:
    cfg = mode_config(tmp_path, STABLE)
    out = replay(tmp_path, cfg, canary_stream(0.5))
    assert of(out, "evaluation", "stable") == []  # the baseline is not compared with itself
    evals = of(out, "evaluation", "canary")
    first = evals[0]
    assert (first["window"]["start_position"], first["window"]["end_position"]) == (2, 2000)
    assert first["reference"] == "version:stable:1-1999"
    # Two-sample tests at the false-alert budget: 1e-6 x 500 events / 6 tested features.
    assert {f["test"] for f in first["features"].values()} == {"ks", "chi2"}
    assert first["prediction"]["test"] == "ks"
    assert first["prediction"]["threshold"] == pytest.approx(1e-6 * 500 / 6)
    assert not any(e["drifted"] for e in evals if e["window"]["end_position"] < 12_002)
    alerts = of(out, "alert")
    assert [(a["event"], a["model_version"], a["window"]["end_position"]) for a in alerts] == [
        ("drift.detected", "canary", 16_000)
    ]
    a = alerts[0]
    assert a["rollback_to"] == "stable"
    assert a["reference"] == "version:stable:12001-15999"
    assert [f["name"] for f in a["features"]] == ["prediction"]


def test_version_canary_equal_to_stable_stays_quiet(tmp_path: Path) -> None:
    cfg = mode_config(tmp_path, STABLE)
    lines = list(
        interleave(
            generate(20_000, version="stable", seed=54), generate(20_000, version="canary", seed=55)
        )
    )
    out = replay(tmp_path, cfg, lines)
    evals = of(out, "evaluation", "canary")
    assert len(evals) == 39
    assert not any(e["drifted"] for e in evals) and of(out, "alert") == []


def test_version_statistics_are_exact_two_window_tests_whatever_the_batching(
    tmp_path: Path,
) -> None:
    """Each canary evaluation compares its window with the stable window as it stood at the
    canary window's last event: scipy's ks_2samp on exactly those values, and the same
    output for any micro-batch size."""
    cfg = mode_config(tmp_path, STABLE)
    lines = canary_stream(0.5)
    out = replay(tmp_path, cfg, lines)
    assert replay(tmp_path, cfg, lines, batch=777, name="b777") == out
    assert replay(tmp_path, cfg, lines, batch=1, name="b1")[: len(out) // 4] == out[: len(out) // 4]
    events = [orjson.loads(x) for x in lines]
    income = np.array([e["features"]["income"] for e in events])
    version = np.array([e["model_version"] for e in events])
    pos = np.arange(1, len(events) + 1)
    evals = of(out, "evaluation", "canary")
    assert len(evals) == 23
    for e in evals:
        end = e["window"]["end_position"]
        cur_pos = pos[(version == "canary") & (pos <= end)][-2000:]
        base_pos = pos[(version == "stable") & (pos <= end)][-2000:]
        assert e["reference"] == f"version:stable:{base_pos[0]}-{base_pos[-1]}"
        want = stats.ks_2samp(income[base_pos - 1], income[cur_pos - 1])
        got = e["features"]["income"]
        assert abs(got["statistic"] - want.statistic) <= 1e-9
        assert got["p_value"] == pytest.approx(want.pvalue, rel=1e-6, abs=1e-12)


def test_version_previous_compares_with_the_version_before(tmp_path: Path) -> None:
    """`version: previous`: v2 (shifted) against v1, which served before it; v1 has no
    predecessor and is not evaluated."""
    cfg = mode_config(tmp_path, PREVIOUS)
    lines = list(generate(3000, version="v1", seed=61)) + list(
        interleave(
            generate(8000, version="v1", seed=62),
            generate(8000, version="v2", seed=63, score_shift=0.5),
        )
    )
    out = replay(tmp_path, cfg, lines)
    assert of(out, "evaluation", "v1") == []
    evals = of(out, "evaluation", "v2")
    assert evals[0]["reference"] == "version:v1:2001-4999"
    alerts = of(out, "alert")
    assert [
        (a["model_version"], a["rollback_to"], a["window"]["end_position"]) for a in alerts
    ] == [("v2", "v1", 6000)]
    assert alerts[0]["reference"] == "version:v1:2501-5999"


# ---------------------------------------------------------------------------- checkpoints


def records(lines: list[bytes]) -> list[RawRecord]:
    return [RawRecord(v, i + 1, None, 0, i, "t") for i, v in enumerate(lines)]


def run(engine: Pipeline, recs: list[RawRecord], batch: int = 777) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(0, len(recs), batch):
        out.extend(engine.process(recs[i : i + batch]))
    return out


def restart(cfg_path: Path, tmp: Path, first: Pipeline, prime: list[RawRecord] = ()) -> Pipeline:  # type: ignore[assignment]
    """A new pipeline restored from ``first``'s checkpoint, through the store. ``prime`` is
    fed to it first, so that its category dictionaries number the labels differently from
    the saved ones."""
    return roundtrip(first, load_config(cfg_path, environ={}), tmp / "ck", prime)  # type: ignore[no-any-return]


def relabelled(n: int) -> list[RawRecord]:
    """Events of model v9 on partition u/0 whose categories appear in an unusual order, with
    labels nobody else uses."""
    out = []
    for i, x in enumerate(generate(n, version="v9", seed=99)):
        e = orjson.loads(x)
        e["features"]["region"] = ["XX", "LATAM", "APAC", "YY"][i % 4]
        e["features"]["employment"] = ["zz", "student", "retired"][i % 3]
        out.append(RawRecord(orjson.dumps(e), i + 1, None, 0, i, "u"))
    return out


@pytest.mark.parametrize("cut", [3210, 21_777])  # mid-warmup of v1; after v1's, in v2's
def test_warmup_checkpoint_round_trip(tmp_path: Path, cut: int) -> None:
    cfg_path = mode_config(tmp_path, WARMUP)
    cfg = load_config(cfg_path, environ={})
    recs = records(warmup_stream())
    whole = run(Pipeline(cfg), recs)
    first = Pipeline(cfg)
    part1 = run(first, recs[:cut])
    with LogLines() as logs:
        second = restart(cfg_path, tmp_path, first, relabelled(500))
        part2 = run(second, recs[cut:])
    assert part1 + part2 == whole  # same statistics, thresholds, reference ids, alert ids
    if cut < 5000:  # v1's warmup went on from where it stood: completed (and calibrated) once
        assert logs.text.count("calibrated 6 thresholds") == 2  # v1, then v2
    else:  # both references came back from the checkpoint: no re-warming, no recalibration
        assert "calibrated" not in logs.text
        assert logs.text.count("restored from the checkpoint") == 2
    assert any(a.get("event") == "drift.detected" for a in part2)


def test_version_checkpoint_round_trip(tmp_path: Path) -> None:
    cfg_path = mode_config(tmp_path, STABLE)
    cfg = load_config(cfg_path, environ={})
    recs = records(canary_stream(0.5))
    whole = run(Pipeline(cfg), recs)
    first = Pipeline(cfg)
    part1 = run(first, recs[:13_333])
    second = restart(cfg_path, tmp_path, first, relabelled(300))
    assert part1 + run(second, recs[13_333:]) == whole


def test_changed_warmup_size_discards_saved_state(tmp_path: Path) -> None:
    cfg_path = mode_config(tmp_path, WARMUP)
    e = Pipeline(load_config(cfg_path, environ={}))
    run(e, records(warmup_stream()[:7000]))
    other = mode_config(tmp_path, {"type": "warmup", "events": 6000})
    with LogLines() as logs:
        second = roundtrip(e, load_config(other, environ={}), tmp_path / "ck")
    assert second.by_name["credit"].versions == {} and "discarding" in logs.text


# ---------------------------------------------------------------------------- config


def test_check_config_reports_the_modes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "-c", str(mode_config(tmp_path, WARMUP))]) == 0
    text = capsys.readouterr().out
    assert "warmup reference: the first 5000 accepted events of each model version" in text
    assert main(["check-config", "-c", str(mode_config(tmp_path, STABLE))]) == 0
    text = capsys.readouterr().out
    assert "window of version 'stable' (not evaluated itself)" in text
    assert "prediction=ks@8.333e-05" in text and "region=chi2@8.333e-05" in text
    assert main(["check-config", "-c", str(mode_config(tmp_path, PREVIOUS))]) == 0
    assert "the version that served before it" in capsys.readouterr().out


def test_version_mode_needs_a_count_window(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = mode_config(tmp_path, STABLE, window={"type": "tumbling_time", "size_s": 60})
    assert main(["check-config", "-c", str(cfg)]) == 2
    assert "monitors.0.window.type" in capsys.readouterr().err


def test_warmup_with_time_windows_replays(tmp_path: Path) -> None:
    cfg = mode_config(
        tmp_path,
        {"type": "warmup", "events": 2000},
        window={"type": "tumbling_time", "size_s": 2, "allowed_lateness_s": 0},
        policy={"min_events": 500, "consecutive": 1, "cooldown_s": 0},
    )
    out = replay(tmp_path, cfg, list(generate(8000, version="v1", seed=5)))  # 1,000 events/s
    evals = of(out, "evaluation")
    assert [e["window"]["start_position"] for e in evals] == [2001, 4001, 6001]
    assert all(e["reference"].startswith("warmup:v1:") for e in evals)


def test_status_api_shows_warmup_progress(tmp_path: Path) -> None:
    engine = Pipeline(load_config(mode_config(tmp_path, WARMUP), environ={}))
    recs = records(warmup_stream())
    run(engine, recs[:3000])
    view = api_view(engine, "credit")
    assert view["versions"]["v1"]["warmup"] == {"events": 3000, "needed": 5000}
    assert view["state"] == "ok" and view["drifted"] is False
    run(engine, recs[3000:6000])
    v1 = api_view(engine, "credit")["versions"]["v1"]
    assert "warmup" not in v1
    assert v1["last_evaluation"]["reference"].startswith("warmup:v1:")

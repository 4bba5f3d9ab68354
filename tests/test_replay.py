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
from driftd.windows.profile import Profile


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

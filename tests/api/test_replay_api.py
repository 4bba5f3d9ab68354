"""driftd.replay: the CLI's loop in Python — the same lines from a file, from CSV, from a table
and from an iterable of events."""

from __future__ import annotations

from pathlib import Path

import orjson
import pandas as pd
import pytest
from driftd_testutil import build_credit_profile, credit_config, read_jsonl, write_lines

import driftd
from driftd.cli import main
from driftd.demo.credit import generate


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[bytes]]:
    tmp = tmp_path_factory.mktemp("replay-api")
    profile = build_credit_profile(tmp)
    cfg = credit_config(tmp, profile=profile)
    lines = list(generate(3000, version="v1", seed=5)) + list(
        generate(3000, version="v2", seed=6, score_shift=1.0)
    )
    lines.insert(7, b"{not json")
    return cfg, write_lines(tmp / "events.jsonl", lines), lines


def test_replay_yields_the_cli_lines(setup: tuple[Path, Path, list[bytes]], tmp_path: Path) -> None:
    cfg, events, lines = setup
    assert main(["replay", "-c", str(cfg), str(events), "--out", str(tmp_path / "o.jsonl")]) == 0
    cli = read_jsonl(tmp_path / "o.jsonl")
    api = [orjson.loads(orjson.dumps(x)) for x in driftd.replay(events, config=cfg)]
    assert api == cli
    assert cli[-1]["type"] == "summary" and cli[-1]["rejected"] == {"invalid_json": 1}
    assert any(x["type"] == "alert" and x["model_version"] == "v2" for x in cli)
    # an iterable of events (bytes or dicts) gives the same lines
    assert [orjson.loads(orjson.dumps(x)) for x in driftd.replay(iter(lines), cfg)] == cli
    dicts = [orjson.loads(v) for v in lines if v.startswith(b"{\"")]  # positions shift by one
    got = list(driftd.replay(dicts, cfg))
    assert [x["id"] for x in got if x["type"] == "alert"] == [
        x["id"] for x in cli if x["type"] == "alert"
    ]


def test_replay_reads_csv_like_jsonl(setup: tuple[Path, Path, list[bytes]], tmp_path: Path) -> None:
    cfg, _, lines = setup
    rows = []
    for v in lines:
        if not v.startswith(b"{\""):
            continue
        e = orjson.loads(v)
        rows.append(
            {
                "event_id": e["event_id"],
                "model": e["model"],
                "model_version": e["model_version"],
                "ts": e["ts"],
                "prediction": e["prediction"],
                **{f"features.{k}": x for k, x in e["features"].items()},
            }
        )
    frame = pd.DataFrame(rows)
    frame.to_csv(tmp_path / "events.csv", index=False)
    clean = write_lines(tmp_path / "clean.jsonl", [v for v in lines if v.startswith(b"{\"")])
    want = [x for x in driftd.replay(clean, cfg) if x["type"] == "alert"]
    assert want
    assert [x for x in driftd.replay(tmp_path / "events.csv", cfg) if x["type"] == "alert"] == want
    assert [x for x in driftd.replay(frame, cfg) if x["type"] == "alert"] == want
    out = tmp_path / "csv-out.jsonl"
    assert main(["replay", "-c", str(cfg), str(tmp_path / "events.csv"), "--out", str(out)]) == 0
    assert [x for x in read_jsonl(out) if x["type"] == "alert"] == want

"""docs/performance-labels.md "Worked example: the credit story, with ground truth" is what
driftd prints: the same commands (demo generator CLI, profile build, replay with two label
files) over config/performance.yaml give the drift alert at position 5,500 and the performance
alert at 8,500 with the quoted values."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from driftd_testutil import read_jsonl

from driftd.cli import main

REPO = Path(__file__).resolve().parents[1]


def demo(tmp: Path, out: str, *args: str) -> None:
    with open(tmp / out, "wb") as fh:
        subprocess.run(
            [sys.executable, "-m", "driftd.demo.credit", *args], stdout=fh, check=True, cwd=tmp
        )


def test_readme_worked_example(tmp_path: Path) -> None:
    cfg = yaml.safe_load((REPO / "config" / "performance.yaml").read_text())
    cfg["monitors"][0]["reference"]["path"] = str(tmp_path / "credit-profile.json")
    cfg["state"]["dir"] = str(tmp_path / "state")
    conf = tmp_path / "performance.yaml"
    conf.write_text(yaml.safe_dump(cfg))
    demo(tmp_path, "reference.jsonl", "--events", "20000", "--version", "v1", "--seed", "1")
    assert main(["profile", "build", "-c", str(conf), "--monitor", "credit", "--input",
                 str(tmp_path / "reference.jsonl"), "--out",
                 str(tmp_path / "credit-profile.json")]) == 0  # fmt: skip
    demo(tmp_path, "v1.jsonl", "--events", "4000", "--version", "v1", "--seed", "2", "--rate",
         "50", "--labels", "v1-labels.jsonl")  # fmt: skip
    demo(tmp_path, "v2.jsonl", "--events", "6000", "--version", "v2", "--seed", "3", "--rate",
         "50", "--start-s", "80", "--score-shift", "1.0",
         "--labels", "v2-labels.jsonl")  # fmt: skip
    t = str(tmp_path)
    assert main(["replay", "-c", str(conf), f"{t}/v1.jsonl", f"{t}/v2.jsonl", "--labels",
                 f"{t}/v1-labels.jsonl", "--labels", f"{t}/v2-labels.jsonl", "--batch", "500",
                 "--out", f"{t}/out.jsonl"]) == 0  # fmt: skip
    out = read_jsonl(tmp_path / "out.jsonl")
    alerts = [o for o in out if o["type"] == "alert"]
    assert [(a["event"], a["model_version"], a["rollback_to"], a["window"]["end_position"])
            for a in alerts] == [("drift.detected", "v2", "v1", 5500),
                                 ("performance.degraded", "v2", "v1", 8500)]  # fmt: skip
    perf = alerts[1]
    assert (perf["metric"], perf["current"], perf["baseline"]) == ("accuracy", 0.728, 0.771)
    assert [round(x, 4) for x in perf["ci"]] == [-0.0715, -0.0175]
    m = {c["metric"]: c for c in perf["metrics"]}
    assert 1 - m["precision"]["current"] == pytest.approx(0.363, abs=5e-4)  # default rate
    assert 1 - m["precision"]["baseline"] == pytest.approx(0.253, abs=5e-4)
    assert m["positive_rate"]["current"] == pytest.approx(0.6545, abs=1e-12)  # approval rate
    assert alerts[0]["features"][0]["statistic"] == pytest.approx(0.235, abs=5e-4)
    first_v2 = next(o for o in out if o["type"] == "performance" and o["model_version"] == "v2")
    assert first_v2["window"]["end_position"] == 8000
    assert first_v2["metrics"]["accuracy"] == 0.731
    assert out[-1] == {"type": "summary", "events": 20000, "accepted": 10000, "rejected": {},
                       "labels": 10000}  # fmt: skip

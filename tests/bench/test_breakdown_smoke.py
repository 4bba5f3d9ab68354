"""Smoke test of ``python -m benchmarks.breakdown`` at a tiny size: every stage is timed, the
stages add up to the run, and the timers are removed afterwards (figures come from the
full-size run)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `benchmarks` is not installed; pytest may run from elsewhere
    sys.path.insert(0, str(ROOT))

from benchmarks import breakdown  # noqa: E402


def test_tiny_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from driftd.runtime.pipeline import Pipeline

    before = Pipeline.route
    result = breakdown.main(["--events", "20000", "--work", str(tmp_path), "--json"])
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line == result and line["events"] == 20000 and line["output_lines"] > 4
    per = line["us_per_event"]
    assert set(per) == {*breakdown.STAGES, "evaluate", "other"}
    assert per["decode"] > 0 and per["fold"] > 0 and per["evaluate"] > 0
    total = line["seconds"] / line["events"] * 1e6
    assert sum(per[k] for k in (*breakdown.STAGES, "other")) == pytest.approx(total, abs=0.1)
    assert Pipeline.route is before

"""Smoke test of ``python -m benchmarks.refmodes`` at a tiny size: it runs every reference
mode and its JSON line has the documented shape (figures come from the full-size run)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `benchmarks` is not installed; pytest may run from elsewhere
    sys.path.insert(0, str(ROOT))

from benchmarks import refmodes  # noqa: E402


def test_tiny_run(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--events", "8000", "--warmup-events", "2500", "--batch", "700"]
    argv += ["--resamples", "100", "--json"]
    result = refmodes.main(argv)
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line == result
    assert line["benchmark"] == "refmodes" and line["events"] == 8000
    assert set(line["modes"]) == {"profile", "warmup", "version"}
    for m in line["modes"].values():
        assert m["seconds"] > 0 and m["events_per_s"] > 0
    warm = line["modes"]["warmup"]
    assert 0 < warm["reference_s"] < warm["seconds"]
    assert warm["events_per_s_without_references"] > warm["events_per_s"]

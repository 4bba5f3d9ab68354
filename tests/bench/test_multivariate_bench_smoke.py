"""Smoke test of ``benchmarks.multivariate`` at tiny sizes: it runs and its JSON line has the
documented shape (the figures come from full-size runs, docs/multivariate.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `benchmarks` is not installed; pytest may run from elsewhere
    sys.path.insert(0, str(ROOT))

from benchmarks import multivariate  # noqa: E402


def test_multivariate_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    out = multivariate.main(
        [
            "--json",
            "--rows", "300",
            "--reference-rows", "1200",
            "--features", "4",
            "--repeat", "1",
            "--step", "150",
            "--stationary-events", "1500",
        ]
    )  # fmt: skip
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last == json.loads(json.dumps(out))
    assert last["benchmark"] == "multivariate" and last["cpu_count"] >= 1
    for key in ("pca_ms", "mmd_ms", "cbpe_ms", "mmd_numpy_ms"):
        assert last[key] > 0
    assert last["nannyml"] is not None  # installed with the test extra
    assert last["pca_abs_diff_vs_nannyml"] < 1e-6
    assert last["cbpe_max_abs_diff_vs_nannyml"] < 1e-6
    assert last["stationary_evaluations"] == 10
    assert set(last["stationary_breaches"]) == {"pca_reconstruction", "mmd"}

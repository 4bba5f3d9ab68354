"""Warn vs critical levels, and Bonferroni / Benjamini–Hochberg across p-value tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from driftd_testutil import build_credit_profile, credit_config, read_jsonl, write_lines

from driftd.cli import main
from driftd.demo.credit import generate
from driftd.monitor.evaluate import FeatureSpec, adjust_multiple_testing
from driftd.reference.features import build_numeric
from driftd.stats import get_test


def specs(thr: float, n: int) -> tuple[FeatureSpec, ...]:
    ref = build_numeric([1.0, 2.0, 3.0])
    return tuple(FeatureSpec(f"f{i}", "numeric", i, ref, get_test("ks"), thr) for i in range(n))


def results(ps: list[float], thr: float) -> dict[str, dict[str, Any]]:
    return {
        f"f{i}": {"p_value": p, "drifted": p < thr, "level": "critical" if p < thr else "ok",
                  "threshold": thr}
        for i, p in enumerate(ps)
    }


def test_bonferroni() -> None:
    r = results([0.001, 0.02, 0.2, 0.9], 0.05)
    adjust_multiple_testing("bonferroni", specs(0.05, 4), r)
    assert [r[f"f{i}"]["drifted"] for i in range(4)] == [True, False, False, False]
    assert r["f1"]["adjusted_threshold"] == pytest.approx(0.0125) and r["f1"]["level"] == "ok"


def test_benjamini_hochberg_step_up() -> None:
    # sorted p: .01 (≤ .0125), .02 (≤ .025), .03 (≤ .0375), .2 (> .05): k* = 3
    r = results([0.03, 0.01, 0.2, 0.02], 0.05)
    adjust_multiple_testing("bh", specs(0.05, 4), r)
    assert [r[f"f{i}"]["drifted"] for i in range(4)] == [True, True, False, True]
    # step-up: a p above its own rank's line is still rejected when a larger rank passes
    r = results([0.013, 0.02, 0.9], 0.05)  # .013 > 1/3·.05 but .02 ≤ 2/3·.05
    adjust_multiple_testing("bh", specs(0.05, 3), r)
    assert [r[f"f{i}"]["drifted"] for i in range(3)] == [True, True, False]


def test_none_or_single_test_untouched() -> None:
    r = results([0.01, 0.2], 0.05)
    adjust_multiple_testing("none", specs(0.05, 2), r)
    assert r["f0"]["drifted"] and "adjusted_threshold" not in r["f0"]


def test_warning_level_alerts_without_rollback(tmp_path: Path) -> None:
    profile = build_credit_profile(tmp_path)
    cfg = credit_config(
        tmp_path, profile=profile,
        prediction={"kind": "numeric", "test": "psi", "threshold": 5.0, "warn_threshold": 0.2},
        webhook_url="http://127.0.0.1:9/never",
    )
    lines = list(generate(3000, version="v1", seed=81)) + list(
        generate(4000, version="v2", seed=82, score_shift=1.2)
    )
    src = write_lines(tmp_path / "s.jsonl", lines)
    assert main(["replay", "-c", str(cfg), str(src), "--out", str(tmp_path / "o.jsonl")]) == 0
    out = read_jsonl(tmp_path / "o.jsonl")
    alerts = [o for o in out if o["type"] == "alert"]
    assert [(a["event"], a["severity"], a["model_version"]) for a in alerts] == [
        ("drift.warning", "warning", "v2")
    ]
    assert alerts[0]["features"][0]["name"] == "prediction"
    last = [o for o in out if o["type"] == "evaluation"][-1]
    assert last["prediction"]["level"] == "warning" and not last["drifted"]
    assert last["warnings"] == ["prediction"] and last["state"] == "ok"

"""Calibrated thresholds: computed by `profile build`, stored in the profile, reused when the
monitor's window and tests match, recalculated (logged) when they do not."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml
from driftd_testutil import credit_config, write_lines

from driftd.cli import main
from driftd.config import load_config
from driftd.demo.credit import generate
from driftd.evaluation import build_spec
from driftd.windows.profile import Profile

AUTO = {
    "income": {"kind": "numeric"},
    "debt_ratio": {"kind": "numeric", "threshold": 0.5},
    "region": {"kind": "categorical"},
}


def test_profile_build_calibrates_and_engine_reuses(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ref = write_lines(tmp_path / "ref.jsonl", generate(8000, version="v1", seed=71))
    cfg_path = credit_config(
        tmp_path, profile=tmp_path / "p.json", features=AUTO, prediction={"kind": "numeric"}
    )
    assert (
        main(
            [
                "profile",
                "build",
                "-c",
                str(cfg_path),
                "--monitor",
                "credit",
                "--input",
                str(ref),
                "--out",
                str(tmp_path / "p.json"),
            ]
        )
        == 0
    )
    prof = Profile.load(tmp_path / "p.json")
    assert prof.calibration is not None
    stored = prof.calibration["features"]
    assert set(stored) == {"income", "region", "prediction"}  # explicit thresholds stay
    assert prof.calibration["key"]["window_events"] == 2000
    # alpha: 1 false alert per 1e6 events, step 500, 4 tested features
    assert prof.calibration["alpha"] == pytest.approx(1 * 500 / 1e6 / 4)

    cfg = load_config(cfg_path, environ={})
    caplog.clear()
    with caplog.at_level(logging.INFO):
        spec = build_spec(cfg.monitors[0], Profile.load(tmp_path / "p.json"), 0)
    assert "calibrated" not in caplog.text  # reused, not recomputed
    by = {f.name: f for f in spec.features}
    assert by["income"].calibrated and by["income"].threshold == stored["income"]["threshold"]
    assert by["income"].test.name == "wasserstein_norm"
    assert not by["debt_ratio"].calibrated and by["debt_ratio"].threshold == 0.5
    assert spec.prediction is not None and spec.prediction.calibrated

    data = yaml.safe_load(cfg_path.read_text())
    data["monitors"][0]["window"] = {"type": "sliding", "events": 1000, "step": 500}
    cfg_path.write_text(yaml.safe_dump(data))
    caplog.clear()
    with caplog.at_level(logging.INFO):
        spec2 = build_spec(
            load_config(cfg_path, environ={}).monitors[0], Profile.load(tmp_path / "p.json"), 0
        )
    assert "recalibrating" in caplog.text
    w2 = {f.name: f.threshold for f in spec2.features}
    assert w2["income"] > by["income"].threshold  # smaller windows fluctuate more


def test_calibration_disabled_keeps_defaults(tmp_path: Path) -> None:
    ref = write_lines(tmp_path / "ref.jsonl", generate(3000, version="v1", seed=72))
    cfg_path = credit_config(tmp_path, profile=tmp_path / "p.json", features=AUTO)
    data = yaml.safe_load(cfg_path.read_text())
    data["monitors"][0]["calibration"] = {"false_alerts_per_million_events": None}
    cfg_path.write_text(yaml.safe_dump(data))
    assert (
        main(
            [
                "profile",
                "build",
                "-c",
                str(cfg_path),
                "--monitor",
                "credit",
                "--input",
                str(ref),
                "--out",
                str(tmp_path / "p.json"),
            ]
        )
        == 0
    )
    assert Profile.load(tmp_path / "p.json").calibration is None
    spec = build_spec(
        load_config(cfg_path, environ={}).monitors[0], Profile.load(tmp_path / "p.json"), 0
    )
    assert {f.name: f.threshold for f in spec.features}["income"] == 0.1

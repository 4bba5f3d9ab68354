"""Calibrated thresholds: computed by `profile build`, stored in the profile, reused when the
monitor's window and tests match, recalculated (logged) when they do not."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from driftd_testutil import LogLines, credit_config, write_lines

from driftd.cli import main
from driftd.config import load_config
from driftd.demo.credit import generate
from driftd.monitor.evaluate import build_spec
from driftd.reference.profile import Profile

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
    with LogLines() as logs:
        spec = build_spec(cfg.monitors[0], Profile.load(tmp_path / "p.json"), 0)
    assert "calibrated" not in logs.text  # reused, not recomputed
    by = {f.name: f for f in spec.features}
    assert by["income"].calibrated and by["income"].threshold == stored["income"]["threshold"]
    assert by["income"].test.name == "wasserstein_norm"
    assert not by["debt_ratio"].calibrated and by["debt_ratio"].threshold == 0.5
    assert spec.prediction is not None and spec.prediction.calibrated

    data = yaml.safe_load(cfg_path.read_text())
    data["monitors"][0]["window"] = {"type": "sliding", "events": 1000, "step": 500}
    cfg_path.write_text(yaml.safe_dump(data))
    with LogLines() as logs:
        spec2 = build_spec(
            load_config(cfg_path, environ={}).monitors[0], Profile.load(tmp_path / "p.json"), 0
        )
    assert "recalibrating" in logs.text
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


def test_partial_windows_get_proportionally_larger_thresholds() -> None:
    import numpy as np

    from driftd.monitor.evaluate import FeatureSpec, effective_threshold
    from driftd.reference.features import build_numeric
    from driftd.stats import get_test

    ref = build_numeric(np.random.default_rng(0).normal(size=100_000))
    js = FeatureSpec("x", "numeric", 0, ref, get_test("js"), 0.03, calibrated=True,
                     calibrated_window=5000)
    assert effective_threshold(js, 5000) == 0.03
    # distances shrink like n'^-1/2: a 1000-event window needs about sqrt(5) x the level
    assert effective_threshold(js, 1000) == pytest.approx(0.03 * (1 / (1 / 5000 + 1e-5) / (
        1 / (1 / 1000 + 1e-5))) ** 0.5)
    psi = FeatureSpec("x", "numeric", 0, ref, get_test("psi"), 0.02, calibrated=True,
                      calibrated_window=5000)
    ratio = (1 / (1 / 5000 + 1e-5)) / (1 / (1 / 2500 + 1e-5))  # n'(5000) / n'(2500)
    assert effective_threshold(psi, 2500) == pytest.approx(0.02 * ratio)  # ∝ n'^-1
    ks = FeatureSpec("x", "numeric", 0, ref, get_test("ks"), 1e-4, calibrated=True,
                     calibrated_window=5000)
    assert effective_threshold(ks, 1000) == 1e-4  # p-value levels do not depend on n
    fixed = FeatureSpec("x", "numeric", 0, ref, get_test("js"), 0.1)
    assert effective_threshold(fixed, 1000) == 0.1  # configured thresholds are used as given

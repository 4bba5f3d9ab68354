"""Progress of threshold calibration: the monitor layer reports through a callback (it never
imports the CLI); ``CalibrationDisplay`` turns the reports into periodic log lines when stderr
is not a terminal — in ``profile build`` and when ``driftd run`` calibrates at start. (The bar
on a terminal: tests/ecosystem/test_cli_progress.py.)

The display's intervals are set to zero here, so every report is shown.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from driftd_testutil import LogLines, build_credit_profile, credit_config

import driftd.runtime.console as console
from driftd.config import load_config
from driftd.monitor.spec import build_spec
from driftd.reference.profile import load_profile_for
from driftd.runtime.console import CalibrationDisplay
from driftd.stats.progress import CalibrationProgress

# thresholds left to calibration (the prediction keeps its explicit one)
FEATURES = {
    "income": {"kind": "numeric", "test": "wasserstein_norm"},
    "age": {"kind": "numeric", "test": "ks"},
    "debt_ratio": {"kind": "numeric", "test": "psi"},
    "region": {"kind": "categorical", "test": "chi2"},
    "employment": {"kind": "categorical", "test": "js"},
}
RESAMPLES = 200


def calibrating_config(tmp: Path, profile: Path, **kw: str) -> Path:
    path = credit_config(tmp, profile=profile, features=FEATURES, **kw)  # type: ignore[arg-type]
    doc = yaml.safe_load(path.read_text())
    doc["monitors"][0]["calibration"] = {"resamples": RESAMPLES, "seed": 3}
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_credit_profile(tmp_path_factory.mktemp("calibration-progress"), events=5000)


@pytest.fixture
def shown_at_once(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(console, "LOG_INTERVAL_S", 0.0)
    monkeypatch.setattr(console, "BAR_DELAY_S", 0.0)
    monkeypatch.setattr(console, "BAR_INTERVAL_S", 0.0)
    yield


def calibrate(tmp: Path, profile: Path, display: object) -> None:
    cfg = load_config(calibrating_config(tmp, profile), environ={})
    mon = cfg.monitors[0]
    prof = load_profile_for(mon, profile, "monitors.0.reference.path")
    spec = build_spec(mon, prof, 0, progress=display)  # type: ignore[arg-type]
    assert all(f.calibrated for f in spec.features)


def test_reports_count_up_to_every_resample_of_every_feature(profile: Path, tmp_path: Path) -> None:
    seen: list[CalibrationProgress] = []
    calibrate(tmp_path, profile, seen.append)
    first, last = seen[0], seen[-1]
    assert (first.features_done, first.resamples_done, first.finished) == (0, 0, False)
    assert last.finished and last.features_done == last.features == len(FEATURES)
    assert last.resamples == last.resamples_done == len(FEATURES) * RESAMPLES
    assert {p.what for p in seen} == {"monitor credit"}
    # reported one at a time from the pool's threads: counts never go back, time goes on
    for a, b in zip(seen, seen[1:], strict=False):
        assert b.features_done >= a.features_done and b.resamples_done >= a.resamples_done
        assert b.elapsed_s >= a.elapsed_s
    # more than one report per feature: resamples are reported as they are drawn
    assert len(seen) > 3 * last.features
    assert sum(1 for p in seen if p.finished) == 1


def test_log_lines_when_not_a_terminal(profile: Path, tmp_path: Path, shown_at_once: None) -> None:
    stream = io.StringIO()  # not a terminal
    with LogLines() as logs:
        calibrate(tmp_path, profile, CalibrationDisplay(stream))
    lines = [r for r in logs.records if r.startswith("calibrating monitor credit: ")]
    assert lines, logs.text
    for line in lines:
        m = re.fullmatch(r"calibrating monitor credit: (\d)/5 features, (\d+)%, \d+ s", line)
        assert m, line
    assert stream.getvalue() == ""  # no bar drawn
    # the summary line of the calibration follows the progress lines
    assert any(r.startswith("monitor credit: calibrated 5 thresholds") for r in logs.records)


def test_nothing_for_a_short_calibration(
    profile: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console, "LOG_INTERVAL_S", 60.0)  # longer than this calibration
    stream = io.StringIO()
    with LogLines() as logs:
        calibrate(tmp_path, profile, CalibrationDisplay(stream))
    assert not any(r.startswith("calibrating ") for r in logs.records)
    assert stream.getvalue() == ""


def test_driftd_run_logs_calibration_progress_at_start(
    profile: Path, tmp_path: Path, shown_at_once: None
) -> None:
    from driftd.runtime.daemon import Daemon

    cfg = load_config(calibrating_config(tmp_path, profile), environ={})
    with LogLines() as logs:
        daemon = Daemon(cfg)  # resolves every monitor's spec: calibrates (no Kafka needed)
    try:
        lines = [r for r in logs.records if r.startswith("calibrating monitor credit: ")]
        assert lines and lines[-1].startswith("calibrating monitor credit: 4/5 features")
    finally:
        daemon.http.stop()
        daemon.store.close()
        daemon.audit.close()

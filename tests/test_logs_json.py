"""``--log-format json``: one JSON object per stderr line, with the context fields a log shipper
filters on (``monitor``, ``model_version``, ``segment``, ``alert_id``, …) where they apply, and
the error that ends a command in the same format (exit codes unchanged: 2 config or usage, 1
runtime). In text format nothing changes.

Seeded stream: a segmented monitor (``region``: EU, US) whose EU ``x`` shifts from the middle
on, so the EU segment and the version alert, each under its own id.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import yaml
from driftd_testutil import read_jsonl, write_lines

from driftd.cli import main
from driftd.runtime.console import CONTEXT_FIELDS
from driftd.state.checkpoint import CheckpointStore

N = 8000


def events(n: int, seed: int, *, shift: bool) -> list[bytes]:
    rng = np.random.default_rng(seed)
    region = rng.choice(2, size=n)
    x, y = rng.normal(size=n), rng.normal(size=n)
    out = []
    for i in range(n):
        eu = region[i] == 0
        xi = float(x[i]) + (1.5 if shift and eu and i >= n // 2 else 0.0)
        event = {
            "model": "m",
            "model_version": "v1",
            "ts": 1_700_000_000_000 + i,
            "features": {"x": xi, "y": float(y[i]), "region": "EU" if eu else "US"},
            "prediction": 1.0 / (1.0 + math.exp(-xi)),
        }
        out.append(orjson.dumps(event))
    return out


def config(tmp: Path, profile: Path, **top: Any) -> Path:
    mon = {
        "name": "logs",
        "model": "m",
        "reference": {"type": "profile", "path": str(profile)},
        "window": {"type": "sliding", "events": 1000, "step": 500},
        "features": {
            "x": {"kind": "numeric", "test": "ks", "threshold": 0.001},
            "y": {"kind": "numeric", "test": "ks", "threshold": 0.001},
        },
        "policy": {"min_events": 1000, "consecutive": 2, "cooldown_s": 0},
        "calibration": {"false_alerts_per_million_events": None},
        "segment_by": ["features.region"],
        "segment_min_reference_events": 500,
        "prediction": {"kind": "numeric", "test": "psi", "threshold": 0.2},
        "detectors": [{"type": "adwin", "signal": "prediction"}],
    }
    path = tmp / "driftd.yaml"
    path.write_text(yaml.safe_dump({"monitors": [mon], "state": {"dir": str(tmp / "st")}, **top}))
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("logs-json")
    profile = tmp / "profile.json"
    ref = write_lines(tmp / "reference.jsonl", events(10_000, seed=1, shift=False))
    cfg = config(tmp, profile)
    args = ["profile", "build", "-c", str(cfg), "--monitor", "logs", "--input", str(ref)]
    assert main([*args, "--out", str(profile)]) == 0
    return cfg, write_lines(tmp / "events.jsonl", events(N, seed=2, shift=True))


def json_lines(err: str) -> list[dict[str, Any]]:
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, "nothing logged"
    return [orjson.loads(line) for line in lines]  # every line is one JSON object


def test_replay_json_lines_carry_monitor_version_segment_and_alert_id(
    setup: tuple[Path, Path], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    cfg, src = setup
    out = tmp_path / "out.jsonl"
    argv = ["--log-format", "json", "replay", "-c", str(cfg), str(src), "--out", str(out)]
    assert main(argv) == 0
    logs = json_lines(capfd.readouterr().err)
    alerts = [o for o in read_jsonl(out) if o["type"] == "alert" and o["event"] == "drift.detected"]
    assert alerts
    by_id = {d["alert_id"]: d for d in logs if d["msg"].startswith("drift.detected ")}
    assert set(by_id) == {a["id"] for a in alerts}  # one line per alert, under the alert's id
    for a in alerts:
        d = by_id[a["id"]]
        assert d["level"] == "warning" and d["logger"] == "driftd.monitor.version"
        assert d["monitor"] == "logs" and d["model_version"] == "v1"
        # the human-readable message is unchanged: the fields repeat what it says
        assert "monitor=logs model=m version=v1" in d["msg"] and f"id={a['id']}" in d["msg"]
        if a["segment"] is None:
            assert "segment" not in d
        else:
            assert d["segment"] == "features.region=" + a["segment"]["features.region"]
            assert f"segment={d['segment']}" in d["msg"]
    assert any(a["segment"] == {"features.region": "EU"} for a in alerts)
    detections = [d for d in logs if d["msg"].startswith("detector adwin:prediction flagged")]
    assert detections and all(
        (d["monitor"], d["model_version"]) == ("logs", "v1") for d in detections
    )
    # fields appear only where they apply, and only the documented ones
    for d in logs:
        assert set(d) <= {"ts", "level", "logger", "msg", "exc", *CONTEXT_FIELDS}
        assert d["ts"].endswith("Z")


def test_text_format_is_unchanged(
    setup: tuple[Path, Path], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    cfg, src = setup
    assert main(["replay", "-c", str(cfg), str(src), "--out", str(tmp_path / "o.jsonl")]) == 0
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if "drift.detected" in line]
    assert lines and not any(line.lstrip().startswith("{") for line in err.splitlines())
    assert all(" WARNING driftd.monitor.version: drift.detected monitor=logs" in x for x in lines)


# ------------------------------------------------------------------ the errors that end a run


def test_config_errors_at_start_are_json_lines_exit_2(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "kafka": {"bootstrap_servers": ["127.0.0.1:9"], "topics": ["t"]},
                "http": {"listen": "127.0.0.1:99999"},  # no such port
                "actions": {"hook": {"type": "webhook", "url": "http:///nohost"}},  # no host
                "monitors": [
                    {
                        "name": "m",
                        "model": "m",
                        "reference": {"type": "profile", "path": str(tmp_path / "nope.json")},
                        "features": {"x": {"kind": "numeric"}},
                        "actions": ["hook"],
                    }
                ],
            }
        )
    )
    assert main(["--log-format", "json", "run", "-c", str(bad)]) == 2
    logs = json_lines(capfd.readouterr().err)
    # every problem its own line, naming its key (the profile is checked once these are fixed)
    assert [d["msg"].split(":")[1].strip() for d in logs] == ["actions.hook.url", "http.listen"]
    for d in logs:
        assert d["level"] == "error" and d["msg"].startswith("config error: ")
        assert "ConfigError" in d["exc"]
    # the same errors as in text format
    assert main(["run", "-c", str(bad)]) == 2
    text = capfd.readouterr().err.splitlines()
    assert text == [f"driftd: {d['msg']}" for d in logs]


def test_usage_error_is_a_json_line_exit_2(capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["--log-format", "json", "run"]) == 2
    (d,) = json_lines(capfd.readouterr().err)
    assert d["level"] == "error" and "-c/--config" in d["msg"] and "ConfigError" in d["exc"]
    # text: usage, then the error line, as before
    assert main(["run"]) == 2
    err = capfd.readouterr().err
    assert err.startswith("usage: driftd run") and err.endswith(f"driftd: {d['msg']}\n")


def test_a_state_dir_in_use_is_a_json_line_exit_2(
    setup: tuple[Path, Path], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    cfg, _ = setup
    state = tmp_path / "state"
    holder = CheckpointStore(state / "checkpoints")  # another driftd holds the directory
    holder.open()
    try:
        argv = ["--log-format", "json", "run", "-c", str(cfg), "--state-dir", str(state)]
        assert main([*argv, "--listen", "127.0.0.1:0"]) == 2
    finally:
        holder.close()
    (d,) = json_lines(capfd.readouterr().err)
    assert d["level"] == "error" and "in use by another driftd process" in d["msg"]
    assert "StateError" in d["exc"]


def test_a_crash_is_a_json_line_exit_1(
    setup: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    cfg, _ = setup

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("driftd.runtime.daemon.Daemon.__init__", crash)
    assert main(["--log-format", "json", "run", "-c", str(cfg)]) == 1
    (d,) = json_lines(capfd.readouterr().err)
    assert d["level"] == "critical" and d["msg"] == "crashed: RuntimeError('boom')"
    assert "Traceback" in d["exc"] and "RuntimeError: boom" in d["exc"]
    # text format: Python's own traceback and exit 1, as before
    with pytest.raises(RuntimeError, match="boom"):
        main(["run", "-c", str(cfg)])


def test_the_entry_point_exits_2_with_a_json_line(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "driftd", "--log-format=json", "run", "-c", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2 and res.stdout == ""
    (d,) = json_lines(res.stderr)
    assert d["level"] == "error" and d["msg"].startswith("config error: ")

"""Progress display of `driftd profile build` and `driftd replay`: drawn on stderr only when
stderr is a terminal (a real pseudo-terminal here), never in pipes, files or CI logs; the
calibration of `profile build` draws a bar there, and logs a line every few seconds elsewhere.

The half-second delay before the first progress line (and the calibration's intervals) are set
to zero in these tests, so a silent stderr proves the terminal check, not a fast run.
"""

from __future__ import annotations

import io
import logging
import os
import pty
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from driftd_testutil import build_credit_profile, credit_config, write_lines

import driftd.cli
import driftd.runtime.console
from driftd.cli import main
from driftd.demo.credit import generate

PROGRESS_MARK = "events/s"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("progress")
    config = credit_config(tmp, profile=build_credit_profile(tmp))
    events = write_lines(tmp / "events.jsonl", generate(4000, version="v2", seed=5))
    return config, events


@pytest.fixture(autouse=True)
def no_delay(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(driftd.cli, "_PROGRESS_DELAY_S", 0.0)
    monkeypatch.setattr(driftd.cli, "_PROGRESS_INTERVAL_S", 0.0)
    monkeypatch.setattr(driftd.runtime.console, "BAR_DELAY_S", 0.0)
    monkeypatch.setattr(driftd.runtime.console, "BAR_INTERVAL_S", 0.0)
    monkeypatch.setattr(driftd.runtime.console, "LOG_INTERVAL_S", 0.0)
    # main() points the root logger at the (fake) stderr; put it back afterwards
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


class Terminal:
    """A pseudo-terminal; ``stream`` is a text stream on its slave side (isatty() is True).

    A thread keeps reading the master side, as a terminal emulator would, so writers never
    block on a full pty buffer.
    """

    def __init__(self) -> None:
        self.master, slave = pty.openpty()
        self.stream = io.TextIOWrapper(io.FileIO(slave, "w"), write_through=True)
        self.chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # slave closed (EIO) or master closed
                return
            if not data:
                return
            self.chunks.append(data)

    def drain(self) -> str:
        """Everything written so far (waits until the reader has caught up)."""
        deadline = time.monotonic() + 5
        seen = -1
        while time.monotonic() < deadline:
            time.sleep(0.1)
            size = sum(len(c) for c in self.chunks)
            if size == seen:
                break
            seen = size
        return b"".join(self.chunks).decode("utf-8", "replace")

    def close(self) -> None:
        self.stream.close()
        self._reader.join(5)
        os.close(self.master)


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    t = Terminal()
    try:
        yield t
    finally:
        t.close()


def profile_argv(config: Path, events: Path, out: Path) -> list[str]:
    return ["profile", "build", "-c", str(config), "--monitor", "credit",
            "--input", str(events), "--out", str(out)]  # fmt: skip


def test_nothing_printed_when_stderr_is_not_a_tty(
    inputs: tuple[Path, Path], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    config, events = inputs
    assert main(profile_argv(config, events, tmp_path / "p.json")) == 0
    assert main(["replay", "-c", str(config), str(events), "--out", str(tmp_path / "o.jsonl"),
                 "--batch", "500"]) == 0  # fmt: skip
    err = capfd.readouterr().err
    assert PROGRESS_MARK not in err and "\r" not in err and "\x1b[" not in err
    # the commands' own summary still goes to stderr
    assert "profile " in err and "4000 events" in err


def test_profile_build_progress_on_a_tty(
    inputs: tuple[Path, Path], tmp_path: Path, terminal: Terminal, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, events = inputs
    monkeypatch.setattr("sys.stderr", terminal.stream)
    assert main(profile_argv(config, events, tmp_path / "p.json")) == 0
    out = terminal.drain()
    assert "profile build:" in out and PROGRESS_MARK in out and "100.0%" in out
    # the line is erased before the summary, which stands alone
    last_erase = out.rindex("\r\x1b[K")
    assert "4000 events" in out[last_erase:] and PROGRESS_MARK not in out[last_erase:]


def test_replay_progress_on_a_tty(
    inputs: tuple[Path, Path], tmp_path: Path, terminal: Terminal, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, events = inputs
    monkeypatch.setattr("sys.stderr", terminal.stream)
    out_file = tmp_path / "o.jsonl"
    assert main(["replay", "-c", str(config), str(events), "--out", str(out_file),
                 "--batch", "500"]) == 0  # fmt: skip
    out = terminal.drain()
    assert "replay:" in out and PROGRESS_MARK in out and "4,000 events" in out
    assert out.endswith("\r\x1b[K")  # erased at the end
    # progress never leaks into the evaluations
    assert b"events/s" not in out_file.read_bytes()


def test_replay_to_the_same_terminal_shows_no_progress(
    inputs: tuple[Path, Path], terminal: Terminal, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, events = inputs
    other = Terminal()
    stdout = io.TextIOWrapper(io.FileIO(os.dup(other.stream.fileno()), "w"))
    try:
        monkeypatch.setattr("sys.stderr", terminal.stream)
        monkeypatch.setattr("sys.stdout", stdout)
        assert main(["replay", "-c", str(config), str(events), "--batch", "500"]) == 0
        stdout.flush()
        assert PROGRESS_MARK not in terminal.drain()
        assert '"type":"summary"' in other.drain()
    finally:
        stdout.close()
        other.close()


@pytest.fixture(scope="module")
def calibrating(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A config whose features leave their thresholds to calibration, and baseline data."""
    tmp = tmp_path_factory.mktemp("calibrating")
    features = {
        "income": {"kind": "numeric", "test": "wasserstein_norm"},
        "age": {"kind": "numeric", "test": "ks"},
        "region": {"kind": "categorical", "test": "chi2"},
    }
    config = credit_config(tmp, profile=tmp / "unused.json", features=features)
    doc = yaml.safe_load(config.read_text())
    doc["monitors"][0]["calibration"] = {"resamples": 300}
    config.write_text(yaml.safe_dump(doc))
    return config, write_lines(tmp / "baseline.jsonl", generate(5000, version="v1", seed=6))


def test_profile_build_calibration_bar_on_a_tty(
    calibrating: tuple[Path, Path],
    tmp_path: Path,
    terminal: Terminal,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config, events = calibrating
    monkeypatch.setattr("sys.stderr", terminal.stream)
    assert main(profile_argv(config, events, tmp_path / "p.json")) == 0
    out = terminal.drain()
    bars = re.findall(r"\rcalibrating monitor credit: \[([#-]{24})\] +(\d+)% (\d)/3 features", out)
    assert bars, out
    assert any(0 < int(pct) < 100 for _, pct, _ in bars)  # drawn while it ran
    # erased when done: the "calibrated" log line and the summary stand alone
    after = out[out.rindex("\r\x1b[K") :]
    assert "calibrated 3 thresholds" in after and "calibrating" not in after
    assert "income: wasserstein_norm threshold" in after and "(calibrated)" in after


def test_profile_build_calibration_log_lines_elsewhere(
    calibrating: tuple[Path, Path], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    config, events = calibrating
    assert main(profile_argv(config, events, tmp_path / "p.json")) == 0
    err = capfd.readouterr().err
    assert "\r" not in err and "\x1b[" not in err
    lines = re.findall(r"INFO driftd.calibration: calibrating monitor credit: (\d)/3 features", err)
    assert lines and lines == sorted(lines)

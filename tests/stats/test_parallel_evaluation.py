"""Evaluation with a second thread gives the same lines as in line, feature by feature."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from driftd_testutil import build_credit_profile, credit_config

from driftd.config import load_config
from driftd.demo.credit import generate
from driftd.monitor import evaluate
from driftd.runtime.replay import replay_lines


def _lines(cfg: Any, events: list[bytes]) -> list[bytes]:
    return [orjson.dumps(x, option=orjson.OPT_SERIALIZE_NUMPY) for x in replay_lines(cfg, events)]


def test_two_threads_equal_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    profile = build_credit_profile(tmp_path, events=3000)
    cfg = load_config(credit_config(tmp_path, profile=profile))
    events = [*generate(3000, version="v1", seed=2), *generate(3000, version="v2", seed=3)]
    monkeypatch.setattr(evaluate, "THREADS", 1)
    one = _lines(cfg, events)
    monkeypatch.setattr(evaluate, "THREADS", 2)
    two = _lines(cfg, events)
    assert one == two
    assert sum(b'"type":"evaluation"' in x for x in one) > 5

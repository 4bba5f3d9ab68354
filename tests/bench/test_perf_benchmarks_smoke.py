"""Smoke tests of the performance benchmarks (``benchmarks.e2e``, ``memory``, ``latency``,
``soak``) at tiny sizes — they run and their JSON line has the documented shape; the figures
themselves come from full-size runs (docs/benchmarks.md) — and of the decoder's fast path,
which must agree with the value-by-value path on every input."""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `benchmarks` is not installed; pytest may run from elsewhere
    sys.path.insert(0, str(ROOT))

from benchmarks import e2e, latency, memory, soak  # noqa: E402
from driftd.config import FeatureConfig  # noqa: E402
from driftd.ingest.decode import EventDecoder, Reject, RowMapper  # noqa: E402


def _last_json(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    out = json.loads(lines[-1])
    assert isinstance(out, dict)
    return out


# ---------------------------------------------------------------- decode fast path

VALUES: list[Any] = [
    0,
    1,
    -7,
    2**63,
    2**64 - 1,
    10**400,
    0.5,
    -1e308,
    1e308,
    math.inf,
    -math.inf,
    math.nan,
    True,
    False,
    None,
    "a",
    "b",
    "zzz",
    "1.5",
    "",
    [1],
    {"x": 1},
]


def _run(mapper: RowMapper, feats: dict[str, Any], pred: Any, fast: bool) -> Any:
    num: list[float] = [9.0]
    cat: list[int] = [9]
    try:
        if fast:
            mapper.map(feats, pred, num, cat)
        else:
            mapper._map_values(feats, pred, num, cat)
    except Reject as r:
        return ("reject", r.reason, r.detail, num, cat)
    # compare as the window stores them: float64 (NaN equal to NaN), int32 codes
    return ([repr(float(v)) for v in num], [int(c) for c in cat])


@pytest.mark.parametrize("prediction_kind", ["numeric", "categorical", None])
def test_decode_fast_path_agrees_with_value_path(prediction_kind: str | None) -> None:
    rng = random.Random(20261126)
    mapper = RowMapper(
        [(n, FeatureConfig(kind="numeric")) for n in ("x", "y", "z")],
        [(n, FeatureConfig(kind="categorical"), ("a", "b", "1")) for n in ("c", "d")],
        prediction_kind,
    )
    if prediction_kind == "categorical":
        mapper.set_prediction_categories(("a", "true", "1.5"))
    names = ("x", "y", "z", "c", "d")
    for _ in range(20_000):
        feats: dict[str, Any] = {}
        for n in names:
            if rng.random() < 0.9:  # sometimes absent
                typical = rng.gauss(0, 1) if n in "xyz" else rng.choice("ab1")
                feats[n] = typical if rng.random() < 0.8 else rng.choice(VALUES)
        pred = rng.random() if rng.random() < 0.8 else rng.choice(VALUES)
        assert _run(mapper, feats, pred, True) == _run(mapper, feats, pred, False), (feats, pred)


def test_decoder_fast_and_dotted_schema_agree() -> None:
    from driftd.config import SchemaConfig

    flat = EventDecoder(SchemaConfig(), 1 << 20)
    dotted = EventDecoder(SchemaConfig(model="meta.model", model_version="meta.version"), 1 << 20)
    assert flat._keys is not None and dotted._keys is None
    for extra in ({}, {"ts": 1_764_158_400_000}, {"ts": "2026-11-26T12:00:00+01:00"}):
        raw = orjson.dumps({"model": "m", "model_version": 3, "features": {"x": 1}, **extra})
        nested = orjson.dumps({"meta": {"model": "m", "version": 3}, "features": {"x": 1}, **extra})
        assert flat.decode(raw, 5000) == dotted.decode(nested, 5000)


# ---------------------------------------------------------------- benchmarks, tiny


def test_memory_benchmark_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    memory.main(
        [
            "--monitors",
            "3",
            "--features",
            "4",
            "--window-events",
            "300",
            "--step",
            "100",
            "--reference-events",
            "500",
            "--batch",
            "250",
            "--json",
        ]
    )
    out = _last_json(capsys)
    assert out["monitors"] == 3 and out["features"] == 4 and out["window_events"] == 300
    assert out["windows_full"] == 3 and out["accepted"] == out["events_fed"] == 900
    assert out["rss_mb"] > 0 and out["window_arrays_mb"] >= 0


@pytest.mark.kafka
def test_e2e_benchmark_tiny(kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]) -> None:
    e2e.main(
        ["--events", "16000", "--rounds", "1", "--bootstrap", kafka_bootstrap, "--confluent",
         "--json"]
    )  # fmt: skip
    out = _last_json(capsys)
    assert out["events"] == 16000 and out["problems"] == []
    ck = out["confluent"]
    assert ck["raw_events_per_s"] > 0 and ck["driftd_events_per_s"] > 0 and ck["ratio"] > 0
    for key in (
        "raw_events_per_s",
        "driftd_events_per_s",
        "by_model_events_per_s",
        "keyed_by_event_id_vs_model",
        "ratio",
        "peak_rss_mb",
        "startup_s",
    ):
        assert out[key] > 0, key


@pytest.mark.kafka
def test_latency_benchmark_tiny(kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]) -> None:
    latency.main(
        [
            "--rate",
            "3000",
            "--duration",
            "4",
            "--bootstrap",
            kafka_bootstrap,
            "--window-events",
            "400",
            "--step",
            "100",
            "--clean-events",
            "600",
            "--drifted-events",
            "600",
            "--producers",
            "1",
            "--json",
        ]
    )
    out = _last_json(capsys)
    assert out["alerts"] > 0 and out["unmatched_alerts"] == 0 and out["invalid_signatures"] == 0
    assert out["latency_p50_s"] > 0 and out["latency_p99_s"] >= out["latency_p50_s"]
    assert out["events"] == 12000 and out["driftd_exit_code"] == 0


@pytest.mark.kafka
def test_soak_benchmark_tiny(kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]) -> None:
    soak.main(
        [
            "--minutes",
            "0.1",
            "--rate",
            "2000",
            "--sample-s",
            "1",
            "--pool",
            "500",
            "--producers",
            "1",
            "--bootstrap",
            kafka_bootstrap,
            "--json",
        ]
    )
    out = _last_json(capsys)
    assert out["events"] == 12000 and out["driftd_exit_code"] == 0
    assert out["samples"] and out["peak_rss_mb"] > 0 and out["max_lag"] is not None

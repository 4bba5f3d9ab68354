from __future__ import annotations

import math

import orjson
import pytest

from driftd.config import FeatureConfig, SchemaConfig
from driftd.ingest.decode import MISSING_CODE, EventDecoder, Reject, RowMapper, parse_ts

DEC = EventDecoder(SchemaConfig(), max_event_bytes=4096)


def ev(**kw: object) -> bytes:
    base: dict[str, object] = {
        "model": "m",
        "model_version": "v1",
        "ts": "2026-11-26T12:00:00Z",
        "features": {"x": 1.5, "c": "a"},
        "prediction": 0.5,
    }
    base.update(kw)
    return orjson.dumps(base)


def reason(raw: bytes | None) -> str:
    with pytest.raises(Reject) as ei:
        DEC.decode(raw, None)
    return ei.value.reason


def test_decode_ok() -> None:
    model, version, ts, feats, pred = DEC.decode(ev(), None)
    assert (model, version, pred) == ("m", "v1", 0.5)
    assert ts == parse_ts("2026-11-26T12:00:00Z")
    assert feats == {"x": 1.5, "c": "a"}


def test_ts_forms() -> None:
    assert parse_ts(1_764_158_400_000) == 1_764_158_400.0
    assert DEC.decode(ev(ts=None), 5000)[2] == 5.0
    assert math.isnan(DEC.decode(ev(ts=None), None)[2])


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"", "empty"),
        (b"{not json", "invalid_json"),
        (b"\xff\xfe{}", "invalid_json"),
        (b"[1, 2]", "not_object"),
        (b"42", "not_object"),
        (orjson.dumps({"model_version": "v1"}), "missing_model"),
        (ev(model=3), "wrong_type"),
        (orjson.dumps({"model": "m"}), "missing_version"),
        (ev(model_version={"a": 1}), "wrong_type"),
        (ev(features=[1, 2]), "bad_features"),
        (ev(ts="yesterday"), "bad_timestamp"),
        (ev(ts="2026-11-26T12:00:00"), "bad_timestamp"),
        (b"x" * 5000, "too_large"),
    ],
)
def test_rejections(raw: bytes, why: str) -> None:
    assert reason(raw) == why


def test_row_mapper_types_and_missing() -> None:
    m = RowMapper(
        [("x", FeatureConfig(kind="numeric")), ("n", FeatureConfig(kind="numeric", path="deep.n"))],
        [("c", FeatureConfig(kind="categorical"), ("a", "b"))],
        "numeric",
    )
    num: list[float] = []
    cat: list[int] = []
    m.map({"x": True, "deep": {"n": 3}, "c": "b"}, 0.25, num, cat)
    m.map({"x": None, "c": "zzz"}, None, num, cat)
    m.map({"x": float("inf"), "c": None}, 1, num, cat)
    assert num[:3] == [1.0, 3.0, 0.25]
    assert math.isnan(num[3]) and math.isnan(num[4]) and math.isnan(num[5])
    assert math.isnan(num[6]) and math.isnan(num[7]) and num[8] == 1.0
    assert cat == [1, 2, MISSING_CODE]  # unseen → k, null → missing


def test_row_mapper_wrong_type_leaves_nothing() -> None:
    m = RowMapper(
        [("x", FeatureConfig(kind="numeric"))],
        [("c", FeatureConfig(kind="categorical"), ("a",))],
        None,
    )
    num: list[float] = [7.0]
    cat: list[int] = [0]
    with pytest.raises(Reject) as ei:
        m.map({"x": 1.0, "c": {"nested": 1}}, None, num, cat)
    assert ei.value.reason == "wrong_type"
    assert num == [7.0] and cat == [0]
    with pytest.raises(Reject):
        m.map({"x": "12abc"}, None, num, cat)

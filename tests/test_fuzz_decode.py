"""Hypothesis-generated garbage through the decoder and the whole engine: no crash, every
message accounted for (accepted + rejected = consumed), rejects carried to the dead letters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from driftd_testutil import build_credit_profile, credit_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftd.config import load_config
from driftd.runtime.pipeline import Pipeline
from driftd.types import RawRecord

ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
feature_values = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False),
    ints,
    st.text(max_size=10),
    st.lists(ints, max_size=2),
    st.dictionaries(st.text(max_size=3), ints, max_size=2),
)
near_miss = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["credit-scoring", "other"]) | json_values,
        "model_version": st.sampled_from(["v1", "v2"]) | json_values,
        "features": st.dictionaries(
            st.sampled_from(["income", "age", "debt_ratio", "region", "employment", "zzz"]),
            feature_values,
            max_size=6,
        )
        | json_values,
        "prediction": feature_values,
    },
    optional={
        "ts": st.one_of(
            st.text(max_size=30), ints, st.floats(allow_nan=False), st.just("2026-11-26T12:00:00Z")
        )
    },
).map(lambda d: orjson.dumps(d, option=orjson.OPT_NON_STR_KEYS))
huge_number = st.integers(min_value=10, max_value=400).map(
    lambda n: (
        b'{"model":"credit-scoring","model_version":"v1","features":{"income":1' + b"0" * n + b"}}"
    )
)
deep = st.integers(min_value=100, max_value=3000).map(lambda n: b"[" * n + b"]" * n)
messages = st.lists(
    st.one_of(
        st.binary(max_size=300),
        near_miss,
        huge_number,
        deep,
        json_values.map(lambda v: orjson.dumps(v)),
        st.binary(max_size=50).map(lambda b: b'{"model": "' + b + b'"}'),
    ),
    min_size=1,
    max_size=60,
)


@pytest.fixture(scope="module")
def engine_cfg(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("fuzz")
    return load_config(
        credit_config(tmp, profile=build_credit_profile(tmp, events=3000)), environ={}
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=messages)
def test_engine_accounts_for_every_message(engine_cfg: Any, batch: list[bytes]) -> None:
    engine = Pipeline(engine_cfg)
    engine.collect_rejects = True
    recs = [RawRecord(v, i + 1, None, 0, i, "t") for i, v in enumerate(batch)]
    engine.process(recs)
    s = engine.summary()
    assert s["events"] == len(batch)
    assert s["accepted"] + sum(s["rejected"].values()) == len(batch)
    dead = engine.take_rejects()
    assert len(dead) == sum(s["rejected"].values())
    assert all(reason in s["rejected"] for _, reason, _ in dead)


def test_two_megabyte_message_is_too_large(engine_cfg: Any, tmp_path: Path) -> None:
    engine = Pipeline(engine_cfg)
    engine.process([RawRecord(b'{"x":"' + b"a" * (2 * 1024 * 1024) + b'"}', 1, None)])
    assert engine.summary()["rejected"] == {"too_large": 1}

"""The batch decoder (one compiled scan, then columns) against the orjson path, value for
value and rejection reason for rejection reason.

Three routers read the same runs: the batch path (``Router``), the same router with every
event sent through the orjson path (``fast = False``) and the partition stage as it was
before the batch decoder (``legacy_route.LegacyRouter``, verbatim). Panes (every array, bit for
bit, NaN and signed zeros included), rejections with their details and positions, label lines
and performance predictions must be identical — on hypothesis-built events written with every
JSON form the scanner has to get right or hand over (number spellings, escapes, UTF-8,
whitespace, repeated keys, nesting, RFC 3339 variants), on the fuzz corpus of
``tests/test_fuzz_decode.py`` and on seeded traffic. Monitors cover reference categories,
open categories (warmup: codes assigned in order of appearance), a categorical prediction,
segments, dotted feature paths, two monitors on one model and performance monitoring.

The kernels underneath are checked against their twins: numbers against ``orjson.loads``,
RFC 3339 times against ``datetime.fromisoformat``, interning against a dict. The module also
runs with ``NUMBA_DISABLE_JIT=1`` (``make test-nojit``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from driftd_testutil import build_credit_profile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from legacy_route import LegacyRouter
from test_fuzz_decode import messages as fuzz_messages

from driftd.config import validate_config
from driftd.demo.credit import generate
from driftd.ingest.decode import parse_ts
from driftd.ingest.route import Routed, Router
from driftd.ingest.scan import ScanPlan
from driftd.kernels import jsonfields as jf
from driftd.kernels import jsonscan as js
from driftd.runtime.pipeline import Pipeline
from driftd.sources.batch import RecordBatch
from driftd.types import RawRecord

# --------------------------------------------------------------------------- configs


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_credit_profile(tmp_path_factory.mktemp("batch-decode"), events=3000)


def _cfg(profile: Path, tmp: Path) -> dict[str, Any]:
    credit = {
        "income": {"kind": "numeric", "test": "ks", "threshold": 0.001},
        "age": {"kind": "numeric", "test": "ks", "threshold": 0.001},
        "debt_ratio": {"kind": "numeric", "test": "ks", "threshold": 0.001},
        "region": {"kind": "categorical", "test": "chi2", "threshold": 0.001},
        "employment": {"kind": "categorical", "test": "chi2", "threshold": 0.001},
    }
    window = {"type": "sliding", "events": 200, "step": 50}
    policy = {"min_events": 100, "consecutive": 2, "cooldown_s": 0}
    return {
        "monitors": [
            {  # reference categories, segments over an event path and a feature path
                "name": "credit",
                "model": "credit-scoring",
                "reference": {"type": "profile", "path": str(profile)},
                "window": window,
                "features": credit,
                "prediction": {"kind": "numeric", "test": "psi", "threshold": 0.2},
                "policy": policy,
                "segment_by": ["features.region", "model_version"],
                "performance": {"task": "classification", "metrics": ["accuracy"]},
            },
            {  # open categories (warmup), a categorical prediction, a dotted path
                "name": "warm",
                "model": "credit-scoring",
                "reference": {"type": "warmup", "events": 20, "max_categories": 4},
                "window": window,
                "features": {
                    "income": {"kind": "numeric"},
                    "nested": {"kind": "numeric", "path": "meta.score"},
                    "region": {"kind": "categorical"},
                    "employment": {"kind": "categorical"},
                },
                "prediction": {"kind": "categorical"},
                "policy": policy,
            },
            {
                "name": "other",
                "model": "other",
                "reference": {"type": "warmup", "events": 20},
                "window": window,
                "features": {"age": {"kind": "numeric"}, "region": {"kind": "categorical"}},
                "policy": policy,
            },
        ],
        "state": {"dir": str(tmp / "state")},
    }


@pytest.fixture(scope="module")
def cfg(profile: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return validate_config(_cfg(profile, tmp_path_factory.mktemp("cfg")))


def routers(cfg: Any) -> tuple[Router, Router, LegacyRouter]:
    """Batch path, orjson path in the same router, and the old router — each with its own
    monitors (open category dictionaries grow as they map)."""
    fast = Pipeline(cfg).router
    slow = Pipeline(cfg).router
    slow.fast = False
    old = Pipeline(cfg).router
    s = cfg.schema_
    legacy = LegacyRouter(
        s,
        cfg.input.max_event_bytes,
        old.targets,
        perf_models=old.perf_models,
        version_pattern=cfg.input.model_version_pattern,
        max_version_chars=cfg.input.max_model_version_chars,
    )
    return fast, slow, legacy


# --------------------------------------------------------------------------- comparing


def _bits(a: np.ndarray) -> np.ndarray:
    return a.view(np.uint8) if a.dtype.kind == "f" else a


def same_routed(a: Routed, b: Routed) -> None:
    assert a.accepted == b.accepted
    assert a.rejected == b.rejected
    assert repr(a.predictions) == repr(b.predictions)
    assert repr(a.label_lines) == repr(b.label_lines)
    assert len(a.panes) == len(b.panes)
    for p, q in zip(a.panes, b.panes, strict=True):
        assert (p.monitor, p.version, p.partition) == (q.monitor, q.version, q.partition)
        assert p.seq == q.seq
        assert p.segment_keys == q.segment_keys
        for name in ("num", "cat", "pos", "ts", "off", "part", "seg"):
            x, y = getattr(p.rows, name), getattr(q.rows, name)
            if x is None or y is None:
                assert x is y, name
                continue
            assert x.shape == y.shape and x.dtype == y.dtype, name
            assert np.array_equal(_bits(np.ascontiguousarray(x)), _bits(np.ascontiguousarray(y))), (
                name,
                x,
                y,
            )


def check_all_paths(
    cfg: Any, values: list[bytes], stamps: list[int | None] | None = None
) -> Routed:
    """Route ``values`` as two runs (two partitions) through all three routers; identical."""
    fast, slow, legacy = routers(cfg)
    stamps = stamps or [None] * len(values)
    half = len(values) // 2
    out = Routed()
    for part, (lo, hi) in enumerate(((0, half), (half, len(values)))):
        recs = [RawRecord(values[i], i + 1, stamps[i], part, 100 + i, "t") for i in range(lo, hi)]
        batch = RecordBatch.of_records(recs)
        got = fast.route(batch, 1 + lo, f"t/{part}")
        same_routed(got, slow.route(batch, 1 + lo, f"t/{part}"))
        same_routed(got, legacy.route(recs, 1 + lo, f"t/{part}"))
        out.panes += got.panes
        out.rejected += got.rejected
    return out


# --------------------------------------------------------------------------- JSON, spelled


def _lit(s: str) -> tuple[str, str]:
    return ("lit", s)


number_literals = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.floats(-1e6, 1e6, allow_nan=False).map(lambda x: f"{x:.{abs(hash(x)) % 17 + 1}g}"),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda x: f"{x:e}"),
    st.builds(
        lambda m, f, e, s: f"{m}{f}{s}{e}",
        st.integers(-(10**17), 10**17).map(str),
        st.sampled_from(["", ".0", ".5", ".000001234", ".12345678901234567890"]),
        st.integers(0, 330).map(str),
        st.sampled_from(["e", "E", "e+", "e-", "E-"]),
    ),
    st.sampled_from(
        [
            "-0",
            "-0.0",
            "0",
            "0.0",
            "0e0",
            "-0e5",
            "1e23",
            "1E+2",
            "0.1e-5",
            "5e-324",
            "1e-400",
            "1.7976931348623157e308",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775809",
            "123456789012345678",
            "100000000000000000000",
            "1.0",
            "9007199254740993",
            "0.30000000000000004",
            "2.5",
            "3.0",
            "-1",
            "01",
            "1.",
            ".5",
            "1e",
            "--1",
            "1e+",
            "0x10",
            "NaN",
            "Infinity",
            "1" + "0" * 320,
        ]  # fmt: skip
    ),
)
string_literals = st.one_of(
    st.text(max_size=12).map(lambda t: orjson.dumps(t).decode()),
    st.sampled_from(
        [
            '"EU"',
            '"US"',
            '"APAC"',
            '"employed"',
            '"retired"',
            '"M\\u00fcnchen"',
            '"a\\"b"',
            '"tab\\there"',
            '"\\ud83d\\ude00"',
            '"\\ud800"',
            '"x\\/y"',
            '"é"',
            '"日本"',
            '""',
            '"' + "long" * 60 + '"',
            '"true"',
            '"5"',
            '"__missing__"',
            '"\x01"',
            '"\\q"',
        ]  # fmt: skip
    ),
)
scalar_literals = st.one_of(
    number_literals, string_literals, st.sampled_from(["true", "false", "null", "nul", "tru"])
)
ts_literals = st.one_of(
    st.sampled_from(
        [
            '"2026-11-26T12:00:00Z"',
            '"2026-11-26T12:00:00.123Z"',
            '"2026-11-26T12:00:00+01:00"',
            '"2026-11-26T12:00:00.1234567-05:30"',
            '"2026-11-26 12:00:00Z"',
            '"2026-11-26t12:00:00Z"',
            '"2026-11-26T12:00:00"',
            '"2026-02-29T00:00:00Z"',
            '"2024-02-29T23:59:59.999999Z"',
            '"2026-11-26T12:00Z"',
            '"1899-12-31T23:59:59Z"',
            '"yesterday"',
            "null",
            "true",
            "1795694400000",
            "1795694400000.5",
            "1795694400000000",
            "-1",
            '"2026-11-26T12:00:00+24:00"',
            '"2026-11-26T12:00:00.Z"',
            '"2026-11-26T12:00:00,5Z"',
        ]  # fmt: skip
    ),
    st.datetimes(timezones=st.timezones()).map(lambda d: orjson.dumps(d.isoformat()).decode()),
    number_literals,
)
values = st.recursive(
    scalar_literals.map(_lit),
    lambda kids: st.one_of(
        st.lists(kids, max_size=3).map(lambda xs: ("arr", xs)),
        st.lists(st.tuples(string_literals, kids), max_size=3).map(lambda kv: ("obj", kv)),
    ),
    max_leaves=6,
)
feature_keys = st.sampled_from(
    [
        '"income"',
        '"age"',
        '"debt_ratio"',
        '"region"',
        '"employment"',
        '"meta"',
        '"zzz"',
        '"inc\\u006fme"',
        '"region"',
    ]  # fmt: skip
)
feature_value = st.one_of(
    scalar_literals.map(_lit),
    st.tuples(st.just('"score"'), scalar_literals.map(_lit)).map(lambda kv: ("obj", [kv])),
    values,
)
features = st.one_of(
    st.lists(st.tuples(feature_keys, feature_value), max_size=7).map(lambda kv: ("obj", kv)),
    values,
)
event = st.fixed_dictionaries(
    {
        '"model"': st.sampled_from(['"credit-scoring"', '"other"', '"nobody"']).map(_lit) | values,
        '"model_version"': st.sampled_from(['"v1"', '"v2"', '"bad version"', "7", '""']).map(_lit)
        | values,
        '"features"': features,
        '"prediction"': feature_value,
    },
    optional={
        '"ts"': ts_literals.map(_lit),
        '"event_id"': st.sampled_from(['"e1"', '"e2"', "17", "null"]).map(_lit),
        '"label"': st.sampled_from(["1", "0", "true", "null", '"x"']).map(_lit),
        '"extra"': values,
        '"model_version "': values,
    },
)


def render(v: Any, ws: str) -> str:
    kind, body = v
    if kind == "lit":
        return body
    if kind == "arr":
        return "[" + ("," + ws).join(render(x, ws) for x in body) + "]"
    return "{" + ("," + ws).join(f"{k}{ws}:{ws}{render(x, ws)}" for k, x in body) + "}"


@st.composite
def spelled_events(draw: st.DrawFn) -> bytes:
    fields = list(draw(event).items())
    if draw(st.booleans()):
        fields = draw(st.permutations(fields))
    if fields and draw(st.integers(0, 9)) == 0:  # a repeated key
        fields.append(draw(st.sampled_from(fields)))
    ws = draw(st.sampled_from(["", "", " ", "\n  ", "\t"]))
    text = render(("obj", fields), ws)
    if draw(st.integers(0, 9)) == 0:
        text = draw(st.sampled_from([" ", "\n", "\ufeff", "x", " ,"])) + text
    return text.encode("utf-8", "surrogatepass")


stamps = st.one_of(st.none(), st.sampled_from([-1, 0, 1_795_694_400_000]))
batches = st.lists(st.tuples(spelled_events(), stamps), min_size=1, max_size=40)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=batches)
def test_spelled_events_decode_alike_on_every_path(cfg: Any, batch: list[Any]) -> None:
    check_all_paths(cfg, [v for v, _ in batch], [t for _, t in batch])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=fuzz_messages)
def test_fuzz_corpus_decodes_alike_on_every_path(cfg: Any, batch: list[bytes]) -> None:
    check_all_paths(cfg, batch)


def test_seeded_traffic_decodes_alike_and_fast(cfg: Any) -> None:
    lines = [*generate(600, version="v1", seed=3), *generate(600, version="v2", seed=4)]
    other = [line.replace(b'"credit-scoring"', b'"other"') for line in lines[:200]]
    got = check_all_paths(cfg, lines + other)
    assert got.rejected == [] and len(got.panes) >= 4
    fast = Pipeline(cfg).router
    cols = fast.columns.decode(RecordBatch.of_records([RawRecord(v, 1, None) for v in lines]))
    assert cols.sc.slow == 0  # the common events never leave the compiled path


def test_events_of_many_versions_and_odd_fields(cfg: Any) -> None:
    base = orjson.loads(next(iter(generate(1, version="v1", seed=5))))
    odd = []
    for k in range(120):
        e = dict(base)
        e["model_version"] = f"v{k % 7}"
        e["features"] = dict(base["features"], region=["EU", "US", "ZZ", None, 7, True][k % 6])
        e["features"]["age"] = [41, 41.5, None, True, "x", -0.0][k % 6]
        e["meta"] = {"score": [1, 2.5, None][k % 3]}
        odd.append(orjson.dumps(e))
    check_all_paths(cfg, odd)


# --------------------------------------------------------------------------- kernels vs twins


def _scan_number(text: str) -> tuple[int, float, int]:
    data = ('{"x":' + text + "}").encode()
    buf = np.frombuffer(data, dtype=np.uint8)
    kind = np.zeros((1, 1), dtype=np.int8)
    span = np.zeros((1, 1, 2), dtype=np.int64)
    num = np.zeros((1, 1))
    flag = np.zeros((1, 1), dtype=np.int8)
    status = np.zeros(1, dtype=np.int8)
    plan = ScanPlan()
    plan.slot(["x"])
    parent, ks, kl, keys, slot, inner, table = plan.arrays()
    js.scan_events(
        buf, np.array([0]), np.array([len(data)]), parent, ks, kl, keys, slot, inner, table,
        status, kind, span, num, flag, js.POW10,
    )  # fmt: skip
    return int(status[0]), float(num[0, 0]), int(flag[0, 0])


@settings(max_examples=3000, deadline=None)
@given(text=number_literals)
def test_numbers_read_exactly_or_left_to_orjson(text: str) -> None:
    status, value, flags = _scan_number(text)
    try:
        want = orjson.loads(text)
    except orjson.JSONDecodeError:
        assert status == js.SLOW  # never accepted when orjson refuses
        return
    if status == js.SLOW:  # refused only for numbers that could overflow
        return
    if flags & js.NUM_EXACT:
        assert bool(flags & js.NUM_INT) == isinstance(want, int)
        f = float(want)
        assert value == f and math.copysign(1, value) == math.copysign(1, f), (text, value, want)


def test_numbers_that_overflow_or_carry_many_digits() -> None:
    assert _scan_number("1e400")[0] == js.SLOW and _scan_number("-1" + "0" * 320)[0] == js.SLOW
    status, _, flags = _scan_number("0.30000000000000004")  # 17 digits: read by orjson
    assert status == js.OK and not flags & js.NUM_EXACT
    status, value, flags = _scan_number("-0")  # orjson: the int 0
    assert flags & js.NUM_INT and flags & js.NUM_EXACT and math.copysign(1, value) == 1
    assert math.copysign(1, _scan_number("-0.0")[1]) == -1


@settings(max_examples=2000, deadline=None)
@given(text=st.one_of(ts_literals, st.text(max_size=40).map(lambda t: orjson.dumps(t).decode())))
def test_rfc3339_times_equal_pythons(text: str) -> None:
    if not text.startswith('"'):
        return
    raw = orjson.loads(text)
    ok, value = jf.rfc3339(raw.encode())
    if ok:
        assert jf.rfc3339_np(raw.encode()) == (True, value)
        assert parse_ts(raw) == value


def test_rfc3339_forms() -> None:
    assert jf.rfc3339(b"2026-11-26T12:00:00.123456789+05:30") == (True, 1795674600.123456)
    assert jf.rfc3339(b"1969-12-31T23:59:59.999999Z") == (True, -1e-06)
    for text in (b"2026-02-29T12:00:00Z", b"2026-11-26 12:00:00Z", b"2026-11-26T12:00:00",
                 b"2026-11-26T12:00:00+24:00", b"2026-11-26T12:00:00.Z"):  # fmt: skip
        assert jf.rfc3339(text)[0] is False


@settings(max_examples=300, deadline=None)
@given(words=st.lists(st.sampled_from([b"a", b"b", b"", b"ab", b"\xc3\xa9", b"ba"]), max_size=30))
def test_interning_equals_its_twin(words: list[bytes]) -> None:
    data = b"".join(words)
    lens = np.array([len(w) for w in words], dtype=np.int64)
    ends = np.cumsum(lens)
    spans = np.stack([ends - lens, ends], axis=1).astype(np.int64).reshape(-1, 2)
    take = np.array([len(w) != 2 for w in words], dtype=np.int8)
    buf = np.frombuffer(data, dtype=np.uint8)
    codes = np.empty(len(words), dtype=np.int32)
    first = np.empty(len(words), dtype=np.int64)
    nu = jf.intern_spans(buf, spans, take, codes, first)
    want_codes, want_first = jf.intern_spans_np(buf, spans, take)
    assert codes.tolist() == want_codes.tolist()
    assert first[:nu].tolist() == want_first.tolist()

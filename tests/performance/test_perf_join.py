"""LabelJoiner: join semantics against a dict-based reference joiner (the "twin" of the numba
stores), targeted cases, snapshot/restore, memory, and the id hash vs its NumPy twin."""

from __future__ import annotations

import io
import json
import math
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftd.errors import StateError
from driftd.performance import table as T
from driftd.performance.join import JoinedPairs, LabelJoiner

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

Row = tuple[str, float, float, int, float, float]  # version, score, label, pred, pred ts, label ts


def rows(p: JoinedPairs) -> list[Row]:
    return [
        (p.version_names[int(v)], float(s), float(lab), int(pl), float(pt), float(lt))
        for v, s, lab, pl, pt, lt in zip(
            p.version, p.score, p.label, p.pred_label, p.pred_ts, p.label_ts, strict=True
        )
    ]


class ReferenceJoiner:
    """The join semantics in plain Python dicts, expiring eagerly at the start of each call.
    Equal to a LabelJoiner with ``sweep_interval_s=0`` and a resolved cache that never fills."""

    def __init__(self, horizon: float, max_pending: int, max_early: int) -> None:
        self.h = horizon
        self.max_pending = max_pending
        self.max_early = max_early
        self.pending: dict[str, tuple[float, float, str, int]] = {}
        self.early: dict[str, tuple[float, float]] = {}
        self.resolved: dict[str, tuple[int, float]] = {}
        self.clock = -math.inf
        self.c = dict.fromkeys(T.COUNTER_NAMES, 0)
        self.lags: list[float] = []

    def _start(self, ts: Sequence[float]) -> tuple[list[float], float, float]:
        finite = [t for t in ts if math.isfinite(t)]
        if finite:
            self.clock = max(self.clock, max(finite))
        fill = self.clock if math.isfinite(self.clock) else 0.0
        ts = [t if math.isfinite(t) else fill for t in ts]
        cutoff = self.clock - self.h
        oldest = cutoff - self.h
        if math.isfinite(cutoff):
            for k, (t, *_) in list(self.pending.items()):
                if t < cutoff:
                    del self.pending[k]
                    self.c["expired"] += 1
                    self.resolved[k] = (T.EXPIRED, t)
            for k, (lt, _) in list(self.early.items()):
                if lt < cutoff:
                    del self.early[k]
                    self.c["orphaned"] += 1
        return ts, cutoff, oldest

    def _remembered(self, k: str, oldest: float) -> int:
        r = self.resolved.get(k)
        return r[0] if r is not None and r[1] >= oldest else 0

    def predictions(
        self, ids: list[str], version: str, scores: list[float], ts: list[float], pred: list[int]
    ) -> list[Row]:
        ts, cutoff, oldest = self._start(ts)
        out: list[Row] = []
        for k, s, t, p in zip(ids, scores, ts, pred, strict=True):
            self.c["predictions"] += 1
            if k in self.pending or self._remembered(k, oldest):
                self.c["duplicate_predictions"] += 1
                continue
            if k in self.early:
                lt, lab = self.early.pop(k)
                if t >= cutoff:
                    out.append((version, s, lab, p, t, lt))
                    self.c["joined"] += 1
                    self.lags.append(lt - t)
                    self.resolved[k] = (T.JOINED, t)
                else:
                    self.c["expired"] += 1
                    self.c["late"] += 1
                    self.resolved[k] = (T.EXPIRED, t)
                continue
            if t < cutoff:
                self.c["expired"] += 1
                self.resolved[k] = (T.EXPIRED, t)
                continue
            if len(self.pending) >= self.max_pending:
                old = next(iter(self.pending))
                self.c["evicted"] += 1
                self.resolved[old] = (T.EVICTED, self.pending.pop(old)[0])
            self.pending[k] = (t, s, version, p)
        return out

    def labels(self, ids: list[str], labels: list[float], ts: list[float]) -> list[Row]:
        ts, cutoff, oldest = self._start(ts)
        out: list[Row] = []
        for k, lab, lt in zip(ids, labels, ts, strict=True):
            self.c["labels"] += 1
            if k in self.pending:
                t, s, v, p = self.pending.pop(k)
                out.append((v, s, lab, p, t, lt))
                self.c["joined"] += 1
                self.lags.append(lt - t)
                self.resolved[k] = (T.JOINED, t)
                continue
            status = self._remembered(k, oldest)
            if status:
                name = {T.JOINED: "duplicates", T.EXPIRED: "late", T.EVICTED: "orphaned"}[status]
                self.c[name] += 1
                continue
            if k in self.early:
                self.c["duplicates"] += 1
                continue
            if lt < cutoff or self.max_early == 0:
                self.c["orphaned"] += 1
                continue
            if len(self.early) >= self.max_early:
                del self.early[next(iter(self.early))]
                self.c["orphaned"] += 1
            self.early[k] = (lt, lab)
        return out

    def counters(self) -> dict[str, int]:
        return {**self.c, "pending": len(self.pending), "early": len(self.early)}


# ------------------------------------------------------------------ random streams


@st.composite
def streams(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """Interleaved micro-batches of predictions and labels over a small id space (so that
    duplicates, early labels, orphans and late labels all happen), times jittered and
    sometimes NaN."""
    n_ids = draw(st.integers(1, 40))
    ops: list[tuple[str, Any]] = []
    clock = 1000.0
    for _ in range(draw(st.integers(1, 25))):
        size = draw(st.integers(0, 12))
        ids = [f"e{draw(st.integers(0, n_ids - 1))}" for _ in range(size)]
        clock += draw(st.floats(0.0, 40.0))
        ts = [
            clock + draw(st.floats(-30.0, 5.0)) if draw(st.integers(0, 15)) else math.nan
            for _ in range(size)
        ]
        if draw(st.booleans()):
            version = draw(st.sampled_from(["v1", "v2"]))
            scores = [draw(st.floats(0.0, 1.0)) for _ in range(size)]
            pred = [draw(st.sampled_from([-1, 0, 1])) for _ in range(size)]
            ops.append(("p", (ids, version, scores, ts, pred)))
        else:
            labels = [float(draw(st.integers(0, 1))) for _ in range(size)]
            ops.append(("l", (ids, labels, ts)))
    return ops


def run(j: LabelJoiner, op: tuple[str, Any]) -> list[Row]:
    kind, args = op
    if kind == "p":
        ids, version, scores, ts, pred = args
        return rows(j.add_predictions(ids, version, scores, ts, pred_labels=pred))
    ids, labels, ts = args
    return rows(j.add_labels(ids, labels, ts))


def run_ref(r: ReferenceJoiner, op: tuple[str, Any]) -> list[Row]:
    kind, args = op
    return r.predictions(*args) if kind == "p" else r.labels(*args)


@SETTINGS
@given(streams(), st.integers(1, 12), st.integers(0, 6), st.sampled_from([20.0, 60.0]))
def test_joiner_equals_reference_joiner(
    ops: list[tuple[str, Any]], max_pending: int, max_early: int, horizon: float
) -> None:
    j = LabelJoiner(
        horizon, max_pending=max_pending, max_early=max_early, max_resolved=1 << 16,
        sweep_interval_s=0.0,
    )  # fmt: skip
    r = ReferenceJoiner(horizon, max_pending, max_early)
    for op in ops:
        assert run(j, op) == run_ref(r, op)
        assert j.counters() == r.counters()
    hist, total = j.lag_histogram()
    assert hist[-1][1] == len(r.lags) == j.joined
    assert math.isclose(total, math.fsum(r.lags), rel_tol=1e-9, abs_tol=1e-6)
    # every prediction and every label ends up in exactly one bucket
    c = j.counters()
    assert c["predictions"] == (
        c["joined"] + c["expired"] + c["evicted"] + c["duplicate_predictions"] + c["pending"]
    )
    assert c["labels"] == c["joined"] + c["late"] + c["orphaned"] + c["duplicates"] + c["early"]


@SETTINGS
@given(streams(), st.sampled_from([20.0, 60.0]))
def test_lazy_expiry_gives_the_same_joins_as_eager(
    ops: list[tuple[str, Any]], horizon: float
) -> None:
    """Sweeping only every horizon/8 (the default) changes when expiry is counted, never what
    joins: after a final advance the counters agree too."""
    lazy = LabelJoiner(horizon, max_resolved=1 << 16)
    eager = LabelJoiner(horizon, max_resolved=1 << 16, sweep_interval_s=0.0)
    for op in ops:
        assert run(lazy, op) == run(eager, op)
    end = max(lazy.watermark, 0.0) + 10 * horizon
    lazy.advance(end)
    eager.advance(end)
    assert lazy.counters() == eager.counters()
    assert lazy.pending == lazy.early == 0


# ------------------------------------------------------------------ targeted cases


def test_out_of_order_labels_join_and_report_lag() -> None:
    j = LabelJoiner(3600.0)
    assert len(j.add_predictions(["a", "b", "c"], "v1", [0.9, 0.2, 0.6], [100.0, 101.0, 102.0]))\
        == 0  # fmt: skip
    got = j.add_labels(["c", "a", "b"], [1.0, 0.0, 0.0], [160.0, 110.0, 105.0])
    assert rows(got) == [
        ("v1", 0.6, 1.0, -1, 102.0, 160.0),
        ("v1", 0.9, 0.0, -1, 100.0, 110.0),
        ("v1", 0.2, 0.0, -1, 101.0, 105.0),
    ]
    np.testing.assert_array_equal(got.lag_s, [58.0, 10.0, 4.0])
    assert j.joined == 3 and j.pending == 0
    hist, total = j.lag_histogram()
    assert total == 72.0
    assert dict(hist)[5.0] == 1 and dict(hist)[15.0] == 2 and dict(hist)[60.0] == 3
    assert hist[-1] == (math.inf, 3)


def test_horizon_expiry_late_and_orphaned() -> None:
    j = LabelJoiner(60.0, sweep_interval_s=0.0)
    j.add_predictions(["a", "b"], "v1", [0.9, 0.1], [0.0, 50.0])
    j.add_labels(["x"], [1.0], [70.0])  # watermark 70: "a" (ts 0) expires
    assert j.expired == 1 and j.pending == 1 and j.early == 1  # x waits as early
    j.add_labels(["a"], [1.0], [71.0])
    assert j.late == 1 and j.joined == 0
    j.add_labels(["b"], [0.0], [109.0])  # lag 59 s: within the horizon
    assert j.joined == 1
    j.advance(200.0)  # x's time is past the cutoff: orphaned
    assert j.orphaned == 1 and j.early == 0
    j.add_labels(["nope"], [1.0], [100.0])  # past the cutoff on arrival
    assert j.orphaned == 2 and j.early == 0
    j.add_predictions(["old"], "v1", [0.5], [10.0])  # past the cutoff on arrival
    assert j.expired == 2 and j.pending == 0


def test_an_unswept_expired_prediction_is_treated_as_expired() -> None:
    j = LabelJoiner(60.0, sweep_interval_s=1e9 - 1)  # (clamped to the retention: 60)
    assert j.sweep_interval_s == 60.0
    j = LabelJoiner(60.0, resolved_retention_s=1e6, sweep_interval_s=1e6)
    j.add_predictions(["late-ts", "a"], "v1", [0.1, 0.2], [100.0, 50.0])  # a: behind late-ts
    j.add_labels(["z"], [1.0], [115.0])  # cutoff 55 > 50, but a is not at the head
    assert j.pending == 2  # head expiry stopped at late-ts (100 ≥ 55); no sweep yet
    assert len(j.add_labels(["a"], [1.0], [115.0])) == 0
    assert j.late == 1 and j.expired == 1 and j.pending == 1


def test_duplicates_are_counted_and_ignored() -> None:
    j = LabelJoiner(3600.0)
    j.add_predictions(["a", "b", "a"], "v1", [0.9, 0.1, 0.5], [1.0, 2.0, 3.0])
    assert j.duplicate_predictions == 1 and j.pending == 2
    got = j.add_labels(["a", "a"], [1.0, 0.0], [10.0, 11.0])
    assert rows(got) == [("v1", 0.9, 1.0, -1, 1.0, 10.0)]
    assert j.duplicates == 1
    j.add_labels(["a"], [1.0], [12.0])  # redelivered later
    j.add_predictions(["a"], "v1", [0.9], [1.0])  # redelivered prediction of a joined id
    assert j.duplicates == 2 and j.duplicate_predictions == 2 and j.joined == 1
    j.add_labels(["q", "q"], [1.0, 1.0], [12.0, 12.0])  # early, then its duplicate
    assert j.early == 1 and j.duplicates == 3


def test_early_labels_join_when_their_prediction_arrives() -> None:
    j = LabelJoiner(3600.0, max_early=2)
    assert len(j.add_labels(["a", "b"], [1.0, 0.0], [5.0, 6.0])) == 0
    assert j.early == 2
    got = j.add_predictions(["b", "c", "a"], ["v2", "v1", "v1"], [0.3, 0.5, 0.8], [4.0, 4.0, 4.5],
                            pred_labels=[0, 1, 1])  # fmt: skip
    assert rows(got) == [("v2", 0.3, 0.0, 0, 4.0, 6.0), ("v1", 0.8, 1.0, 1, 4.5, 5.0)]
    assert j.early == 0 and j.pending == 1 and j.joined == 2
    # the early store is bounded: the oldest early label is orphaned
    j.add_labels(["x", "y", "z"], [1.0, 1.0, 1.0], [7.0, 8.0, 9.0])
    assert j.early == 2 and j.orphaned == 1
    assert len(j.add_predictions(["x"], "v1", [0.5], [6.0])) == 0  # x was pushed out
    assert len(j.add_predictions(["y"], "v1", [0.5], [6.0])) == 1
    no_early = LabelJoiner(3600.0, max_early=0)
    no_early.add_labels(["a"], [1.0], [1.0])
    assert no_early.orphaned == 1 and no_early.early == 0


def test_eviction_of_the_oldest_pending_prediction() -> None:
    j = LabelJoiner(1e6, max_pending=3)
    j.add_predictions(["a", "b", "c", "d"], "v1", [0.1, 0.2, 0.3, 0.4], [1.0, 2.0, 3.0, 4.0])
    assert j.evicted == 1 and j.pending == 3
    j.add_labels(["a"], [1.0], [5.0])  # its prediction was evicted
    assert j.orphaned == 1 and j.joined == 0
    assert len(j.add_labels(["b", "c", "d"], [1.0, 1.0, 1.0], [5.0, 5.0, 5.0])) == 3


def test_growth_compaction_and_many_versions() -> None:
    """Push tens of thousands through small rings: growth, compaction of holes, eviction."""
    rng = np.random.default_rng(1)
    j = LabelJoiner(1e9, max_pending=5000, max_early=300)
    ref = ReferenceJoiner(1e9, 5000, 300)
    ids = [f"id{k}" for k in range(31_000)]  # the last 1,000 are never predicted
    for b in range(30):
        batch = ids[b * 1000 : (b + 1) * 1000]
        ts = [float(b)] * 1000
        v = f"v{b % 7}"
        sc = rng.random(1000).tolist()
        assert rows(j.add_predictions(batch, v, sc, ts, [-1] * 1000)) == ref.predictions(
            batch, v, sc, ts, [-1] * 1000
        )
        lab_ids = [ids[k] for k in rng.integers(0, (b + 2) * 1000, 700)]
        lab = rng.integers(0, 2, 700).astype(float).tolist()
        assert rows(j.add_labels(lab_ids, lab, [float(b)] * 700)) == ref.labels(
            lab_ids, lab, [float(b)] * 700
        )
        assert j.counters() == ref.counters()
    assert j.evicted > 0 and j.duplicates > 0 and j.joined > 5000


def test_versions_as_codes_and_by_version() -> None:
    j = LabelJoiner(100.0)
    v1, v2 = j.version_code("v1"), j.version_code("v2")
    j.add_predictions(["a", "b", "c"], np.array([v1, v2, v2]), [0.1, 0.2, 0.3], [1.0, 1.0, 1.0])
    got = j.add_labels(["a", "b", "c"], [0.0, 1.0, 1.0], [2.0, 2.0, 2.0])
    split = got.by_version()
    assert set(split) == {"v1", "v2"} and len(split["v2"]) == 2
    np.testing.assert_array_equal(split["v2"].score, [0.2, 0.3])
    with pytest.raises(ValueError, match="version codes"):
        j.add_predictions(["d"], np.array([5]), [0.1], [1.0])
    with pytest.raises(ValueError, match="2 versions for 1 event ids"):
        j.add_predictions(["d"], ["v1", "v2"], [0.1], [1.0])
    with pytest.raises(ValueError, match="2 scores for 1 event ids"):
        j.add_predictions(["d"], "v1", [0.1, 0.2], [1.0])
    assert j.predictions == 3  # rejected calls changed nothing
    assert j.watermark == 2.0


def test_nan_times_read_as_the_watermark() -> None:
    j = LabelJoiner(10.0)
    j.add_predictions(["a", "b"], "v1", [0.1, 0.2], [100.0, math.nan], pred_labels=[1, math.nan])
    got = j.add_labels(["b", "a"], [1.0, 0.0], [math.nan, 101.0])
    # the watermark moves once per call, before its items: b's label reads as 101
    assert rows(got) == [("v1", 0.2, 1.0, -1, 100.0, 101.0), ("v1", 0.1, 0.0, 1, 100.0, 101.0)]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        LabelJoiner(0.0)
    with pytest.raises(ValueError):
        LabelJoiner(10.0, max_pending=0)
    with pytest.raises(ValueError):
        LabelJoiner(10.0, lag_buckets_s=[5.0, 1.0])
    with pytest.raises(TypeError):
        T.hash_ids(np.array([1.5, 2.5]))


# ------------------------------------------------------------------ snapshot / restore


def roundtrip(state: dict[str, Any]) -> dict[str, Any]:
    """Through an npz file (no pickle) and JSON, as a checkpoint would store it."""
    arrays = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
    rest = {k: v for k, v in state.items() if not isinstance(v, np.ndarray)}
    assert set(rest) == {"meta"}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as z:
        loaded: dict[str, Any] = {k: z[k] for k in z.files}
    loaded["meta"] = json.loads(json.dumps(state["meta"], allow_nan=False))
    return loaded


@SETTINGS
@given(streams(), st.integers(0, 25), st.integers(1, 12), st.integers(0, 6))
def test_snapshot_restore_continues_identically(
    ops: list[tuple[str, Any]], cut: int, max_pending: int, max_early: int
) -> None:
    j = LabelJoiner(30.0, max_pending=max_pending, max_early=max_early, max_resolved=64)
    for op in ops[:cut]:
        run(j, op)
    k = LabelJoiner.restore(roundtrip(j.snapshot()))
    assert k.counters() == j.counters() and k.version_names == j.version_names
    assert k.lag_histogram() == j.lag_histogram()
    for op in ops[cut:]:
        assert run(k, op) == run(j, op)
        assert k.counters() == j.counters()
    k.advance(1e7)
    j.advance(1e7)
    assert k.counters() == j.counters()


def test_restore_rejects_a_broken_snapshot() -> None:
    j = LabelJoiner(30.0)
    j.add_predictions(["a", "b"], "v1", [0.1, 0.2], [1.0, 2.0])
    good = j.snapshot()
    bad = dict(good, pending=np.concatenate([good["pending"], good["pending"]]))
    with pytest.raises(StateError, match="repeated"):
        LabelJoiner.restore(bad)
    with pytest.raises(StateError):
        LabelJoiner.restore({k: v for k, v in good.items() if k != "counters"})
    with pytest.raises(StateError, match="format"):
        LabelJoiner.restore(dict(good, meta=dict(good["meta"], format=99)))


# ------------------------------------------------------------------ memory


def test_memory_per_pending_prediction() -> None:
    j = LabelJoiner(1e9, max_pending=200_000)
    before = j.nbytes()
    ids = np.arange(200_000, dtype=np.int64)
    for b in range(0, 200_000, 20_000):
        j.add_predictions(ids[b : b + 20_000], "v1", np.zeros(20_000), np.zeros(20_000))
    assert j.pending == 200_000
    per = (j.nbytes() - before) / j.pending
    assert per <= 150, per


# ------------------------------------------------------------------ hashing


def test_hash_twins_and_encodings() -> None:
    ascii_ids = [uuid.UUID(int=k).hex for k in range(500)] + ["", "a", "ab"]
    keys = T.hash_ids(ascii_ids)
    buf = T.encode_ids(ascii_ids)
    assert buf.dtype == np.uint8
    np.testing.assert_array_equal(keys, T.hash_codepoints_np(buf, len(ascii_ids)))
    wide = ["héllo", "日本語", "a"]
    wbuf = T.encode_ids(wide)
    assert wbuf.dtype == np.uint32
    np.testing.assert_array_equal(T.hash_ids(wide), T.hash_codepoints_np(wbuf, 3))
    # an id hashes the same whatever encoding its batch needed, str or bytes
    assert T.hash_ids(["a"])[0] == T.hash_ids(wide)[2] == T.hash_ids(np.array([b"a"]))[0]
    assert T.hash_ids(["a", "b"])[0] == T.hash_ids(np.array(["a", "bb"]))[0]
    ints = np.array([0, 1, -1, 2**62, 12345], dtype=np.int64)
    np.testing.assert_array_equal(T.hash_ids(ints), T.hash_ints_np(ints))
    # ids with a NUL take the slow path, with the same keys as alone
    nul = ["a\0b", "c"]
    np.testing.assert_array_equal(T.hash_ids(nul), np.concatenate([T.hash_ids([s]) for s in nul]))
    assert np.all(keys != 0) and T.hash_ids([]).shape == (0,)


def test_hash_is_pinned_and_spreads() -> None:
    """Checkpoints hold hashes: changing the function silently breaks restored joins."""
    assert [int(k) for k in T.hash_ids(["b7c1", "event-42"])] == PINNED
    keys = T.hash_ids([str(uuid.UUID(int=k * 7919)) for k in range(50_000)])
    assert np.unique(keys).shape[0] == 50_000
    seq = T.hash_ids([f"evt-{k}" for k in range(50_000)])  # sequential ids
    assert np.unique(seq).shape[0] == 50_000
    # the home slot (high bits) and the cache set (low bits) are both evenly used
    for bits in (seq >> np.uint64(44), seq & np.uint64(1023)):
        counts = np.bincount((bits % np.uint64(1024)).astype(np.int64), minlength=1024)
        assert counts.max() < 2 * counts.mean()


PINNED = [9727581762167532238, 6403085966967126933]

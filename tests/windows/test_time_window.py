"""Event-time windows: exact contents, lateness, watermarks, sampling, batching, state."""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftd.ingest.panes import Rows
from driftd.windows.count import CountWindow
from driftd.windows.time import TimeWindow, TimeWindowView, WindowView

Batch = tuple[
    npt.NDArray[np.float64], npt.NDArray[np.int32], npt.NDArray[np.int64], npt.NDArray[np.float64]
]


def rows(pos: npt.ArrayLike, ts: npt.ArrayLike) -> Batch:
    p = np.asarray(pos, dtype=np.int64)
    t = np.asarray(ts, dtype=np.float64)
    num = np.stack([p * 0.5, np.where(p % 4 == 0, np.nan, p * 1.0)], axis=1)
    cat = np.stack(
        [(p % 3).astype(np.int32), np.where(p % 5 == 0, -1, p % 2).astype(np.int32)], axis=1
    )
    return num, cat, p, t


def key(v: TimeWindowView) -> tuple[float, float, list[int]]:
    return (v.window_start_ts, v.window_end_ts, sorted(v.pos.tolist()))


def full(v: TimeWindowView) -> tuple[Any, ...]:
    """Everything a view exposes, for exact comparisons (row order included)."""
    return (
        v.window_start_ts,
        v.window_end_ts,
        v.events_seen,
        v.pos.tolist(),
        v.ts.tolist(),
        v.num.tobytes(),
        v.cat.tobytes(),
        tuple(sorted(v.span().items())),
    )


# The stream of the hand-worked examples: (position, event time).
STREAM = [
    (1, 1.0),
    (2, 3.0),
    (3, 12.0),
    (4, 8.0),
    (5, 16.0),
    (6, 9.0),
    (7, 25.0),
    (8, math.nan),
    (9, 21.0),
]


def feed_stream(w: TimeWindow) -> tuple[list[TimeWindowView], list[int], list[int]]:
    out: list[TimeWindowView] = []
    late: list[int] = []
    invalid: list[int] = []
    for p, t in STREAM:
        b = rows([p], [t])
        r = w.append(*b)
        out += r.windows
        late += b[2][r.late].tolist()
        invalid += b[2][r.invalid_ts].tolist()
    return out, late, invalid


def test_tumbling_hand_worked() -> None:
    w = TimeWindow(size_s=10, step_s=10, allowed_lateness_s=5, n_num=2, n_cat=2)
    out, late, invalid = feed_stream(w)
    # ts 8 arrives after ts 12 but within lateness (watermark 7); ts 9 arrives at watermark 11.
    assert [key(v) for v in out] == [(0.0, 10.0, [1, 2, 4]), (10.0, 20.0, [3, 5])]
    assert late == [6] and invalid == [8]
    assert (w.n_late, w.n_invalid, w.watermark) == (1, 1, 20.0)
    assert [key(v) for v in w.advance(30.0)] == [(20.0, 30.0, [7, 9])]
    assert w.advance(1e12) == [] and w.pending_events == 0
    assert w.advance(1.7e308) == []  # no overflow on absurd watermarks
    tiny = TimeWindow(0.002, 0.001, 0, n_num=2, n_cat=2)
    tiny.append(*rows([1], [0.0105]))
    got = [(round(a, 12), round(b, 12), p) for a, b, p in map(key, tiny.advance(1.7e308))]
    assert got == [(0.009, 0.011, [1]), (0.01, 0.012, [1])]
    s = out[0].span()
    assert s == {
        "start_position": 1,
        "end_position": 4,
        "events": 3,
        "start_ts": 1.0,
        "end_ts": 8.0,
        "window_start_ts": 0.0,
        "window_end_ts": 10.0,
    }
    # Rows are pane order then arrival order; columns are copied intact.
    assert out[0].pos.tolist() == [1, 2, 4]
    assert out[0].num_column(0).tolist() == [0.5, 1.0, 2.0]
    assert np.isnan(out[0].num_column(1)[2])
    assert out[0].cat_column(0).tolist() == [1, 2, 1]


def test_sliding_hand_worked() -> None:
    w = TimeWindow(size_s=30, step_s=10, allowed_lateness_s=5, n_num=2, n_cat=2)
    out, late, invalid = feed_stream(w)
    assert [key(v) for v in out] == [(-20.0, 10.0, [1, 2, 4]), (-10.0, 20.0, [1, 2, 3, 4, 5])]
    assert late == [6] and invalid == [8]
    assert [key(v) for v in w.advance(30.0)] == [(0.0, 30.0, [1, 2, 3, 4, 5, 7, 9])]
    # Flushing emits the remaining windows that hold events, then nothing: empties are skipped.
    assert [key(v) for v in w.advance(math.inf)] == [
        (10.0, 40.0, [3, 5, 7, 9]),
        (20.0, 50.0, [7, 9]),
    ]
    assert w.pending_events == 0
    # After a flush every event is late.
    r = w.append(*rows([10], [1e9]))
    assert r.late.tolist() == [0] and r.accepted == 0


def test_empty_windows_are_skipped_across_gaps() -> None:
    w = TimeWindow(size_s=20, step_s=10, allowed_lateness_s=0, n_num=2, n_cat=2)
    r = w.append(*rows([1, 2, 3], [5.0, 1000.0, 1001.0]))
    # Pane 0 → windows ending at 10 and 20; nothing for the empty stretch up to pane 100.
    assert [key(v) for v in r.windows] == [(-10.0, 10.0, [1]), (0.0, 20.0, [1])]
    assert [key(v) for v in w.advance(math.inf)] == [
        (990.0, 1010.0, [2, 3]),
        (1000.0, 1020.0, [2, 3]),
    ]


def brute_force_windows(
    pos: npt.NDArray[np.int64], ts: npt.NDArray[np.float64], size: float, step: float
) -> list[tuple[float, float, list[int]]]:
    """Every non-empty window of the whole stream by definition: events with ts in [s, e)."""
    k = round(size / step)
    ends = sorted({int(math.floor(t / step)) + i for t in ts.tolist() for i in range(1, k + 1)})
    out = []
    for e in ends:
        lo, hi = (e - k) * step, e * step
        inside = sorted(pos[(ts >= lo) & (ts < hi)].tolist())
        out.append(((e - k) * step, e * step, inside))
    return out


@pytest.mark.parametrize(("size", "step"), [(60.0, 60.0), (60.0, 15.0), (2.5, 0.5)])
def test_seeded_out_of_order_stream_within_lateness(size: float, step: float) -> None:
    rng = np.random.default_rng(7)
    n = 5000
    lateness = 4.0
    base = np.cumsum(rng.exponential(0.2, n))
    ts = base - rng.uniform(0.0, lateness, n)  # at most `lateness` behind: never late
    pos = np.arange(1, n + 1, dtype=np.int64)
    assert not np.all(np.diff(ts) >= 0)  # really out of order
    w = TimeWindow(size, step, lateness, n_num=2, n_cat=2)
    got: list[TimeWindowView] = []
    for cut in np.array_split(np.arange(n), 37):
        r = w.append(*rows(pos[cut], ts[cut]))
        assert r.late.size == 0 and r.invalid_ts.size == 0 and r.accepted == cut.size
        got += r.windows
    n_before_flush = len(got)
    got += w.advance(math.inf)
    expected = brute_force_windows(pos, ts, size, step)
    assert [key(v) for v in got] == expected
    assert 0 < n_before_flush < len(got)
    for v in got:
        s = v.span()
        assert s["events"] == v.filled == v.events_seen == len(key(v)[2])
        assert s["start_position"] == v.pos.min() and s["end_position"] == v.pos.max()
        assert s["window_start_ts"] <= s["start_ts"] <= s["end_ts"] < s["window_end_ts"]


def oracle(
    events: list[tuple[int, float]], size: float, step: float, lateness: float
) -> tuple[list[tuple[float, float, list[int]]], list[int], list[int]]:
    """One event at a time, straight from the definitions in the module docstring."""
    k = round(size / step)
    wm = -math.inf
    max_ts = -math.inf
    accepted: list[tuple[int, float]] = []
    emitted: set[int] = set()
    out: list[tuple[float, float, list[int]]] = []
    late: list[int] = []
    invalid: list[int] = []

    def close() -> None:
        limit = math.floor(wm / step) if math.isfinite(wm) else wm
        ends = sorted(
            {math.floor(t / step) + i for _, t in accepted for i in range(1, k + 1)} - emitted
        )
        for e in ends:
            if e > limit:
                break
            emitted.add(e)
            inside = [p for p, t in accepted if e - k <= math.floor(t / step) < e]
            out.append(((e - k) * step, e * step, sorted(inside)))

    for p, t in events:
        if not math.isfinite(t):
            invalid.append(p)
            continue
        if t < wm:
            late.append(p)
            continue
        accepted.append((p, t))
        max_ts = max(max_ts, t)
        wm = max(wm, max_ts - lateness)
        close()
    wm = math.inf
    close()
    return out, late, invalid


def test_seeded_stream_with_late_events_matches_oracle() -> None:
    rng = np.random.default_rng(11)
    n = 3000
    ts = np.cumsum(rng.exponential(0.1, n)) - rng.exponential(1.0, n)  # some beyond lateness
    ts[rng.choice(n, 20, replace=False)] = np.nan
    pos = np.arange(1, n + 1, dtype=np.int64)
    w = TimeWindow(10.0, 2.0, 1.5, n_num=2, n_cat=2)
    got: list[TimeWindowView] = []
    late: list[int] = []
    invalid: list[int] = []
    for cut in np.array_split(np.arange(n), 13):
        b = rows(pos[cut], ts[cut])
        r = w.append(*b)
        got += r.windows
        late += b[2][r.late].tolist()
        invalid += b[2][r.invalid_ts].tolist()
    got += w.advance(math.inf)
    exp_windows, exp_late, exp_invalid = oracle(
        list(zip(pos.tolist(), ts.tolist(), strict=True)), 10.0, 2.0, 1.5
    )
    assert late == exp_late and invalid == exp_invalid
    assert len(late) > 100 and len(invalid) == 20
    assert [key(v) for v in got] == exp_windows
    assert w.n_late == len(late) and w.n_invalid == 20


def test_advance_closes_idle_windows_and_never_lowers_watermark() -> None:
    w = TimeWindow(60, 60, 30, n_num=2, n_cat=2)
    r = w.append(*rows([1, 2], [100.0, 110.0]))
    assert r.windows == [] and w.watermark == 80.0
    assert w.advance(50.0) == [] and w.watermark == 80.0  # never lowered
    assert w.advance(119.999) == []
    assert [key(v) for v in w.advance(120.0)] == [(60.0, 120.0, [1, 2])]
    r = w.append(*rows([3], [119.0]))  # below the pushed watermark: late
    assert r.late.tolist() == [0]
    with pytest.raises(ValueError, match="NaN"):
        w.advance(math.nan)


def test_invalid_timestamps_are_reported_not_raised() -> None:
    w = TimeWindow(1.0, 1.0, 0.0, n_num=2, n_cat=2)
    r = w.append(*rows([1, 2, 3, 4, 5], [math.inf, -math.inf, 1e300, math.nan, 3.5]))
    assert r.invalid_ts.tolist() == [0, 1, 2, 3] and r.late.size == 0 and r.accepted == 1
    assert w.watermark == 3.5


def test_empty_batch() -> None:
    w = TimeWindow(10, 5, 1, n_num=2, n_cat=2)
    r = w.append(*rows([], []))
    assert r.windows == [] and r.late.size == 0 and r.invalid_ts.size == 0 and r.accepted == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size_s": 0, "step_s": 1}, "size_s must be a positive"),
        ({"size_s": 10, "step_s": -1}, "step_s must be a positive"),
        ({"size_s": 10, "step_s": 3}, "whole multiple of step_s"),
        ({"size_s": 10, "step_s": 20}, "whole multiple of step_s"),
        ({"size_s": 10, "step_s": 5, "allowed_lateness_s": -1}, "allowed_lateness_s"),
        ({"size_s": 10, "step_s": 1, "max_events": 5}, "max_events"),
    ],
)
def test_invalid_parameters(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"allowed_lateness_s": 0, "n_num": 1, "n_cat": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        TimeWindow(**args)


def test_float_steps_are_consistent() -> None:
    # 0.1 is not representable; panes and closing use the same floor(x / step) rule.
    w = TimeWindow(0.3, 0.1, 0.0, n_num=2, n_cat=2)
    ts = np.round(np.arange(0, 3, 0.1), 10)
    out = []
    for i, t in enumerate(ts.tolist()):
        r = w.append(*rows([i + 1], [t]))
        assert r.accepted == 1
        out += r.windows
    out += w.advance(math.inf)
    assert sum(v.filled for v in out) == 3 * len(ts)


def test_max_events_bounds_windows_by_reservoir_sampling() -> None:
    n = 20_000
    rng = np.random.default_rng(3)
    ts = np.sort(rng.uniform(0, 100, n))
    pos = np.arange(1, n + 1, dtype=np.int64)
    w = TimeWindow(50, 25, 0, n_num=2, n_cat=2, max_events=1000, seed=5)
    got: list[TimeWindowView] = []
    for cut in np.array_split(np.arange(n), 7):
        got += w.append(*rows(pos[cut], ts[cut])).windows
    got += w.advance(math.inf)
    assert w.window.pane_cap == 500
    assert [v.filled for v in got] == [500, 1000, 1000, 1000, 500]
    seen = [v.events_seen for v in got]
    panes = [int(np.sum((ts >= lo) & (ts < lo + 25))) for lo in (0, 25, 50, 75)]
    assert seen == [
        panes[0],
        *(a + b for a, b in zip(panes[:-1], panes[1:], strict=True)),
        panes[3],
    ]
    assert w.n_subsampled == n - 4 * 500
    for v in got:
        inside = (ts >= v.window_start_ts) & (ts < v.window_end_ts)
        assert set(v.pos.tolist()) <= set(pos[inside].tolist())
        assert len(set(v.pos.tolist())) == v.filled  # no duplicates
        # the span covers every event seen, not only the sample
        assert v.span()["start_position"] == pos[inside].min()
        assert v.span()["end_position"] == pos[inside].max()
        # rows stay aligned across columns
        assert np.array_equal(v.num_column(0), v.pos * 0.5)
        assert np.array_equal(v.ts, ts[v.pos - 1])
    # Roughly uniform: the sample of the first pane is spread over the whole pane.
    first = np.sort(got[0].pos)
    assert first[0] < panes[0] * 0.05 and first[-1] > panes[0] * 0.95
    assert abs(float(np.median(first)) - panes[0] / 2) < panes[0] * 0.1


# ---------------------------------------------------------------- batching and restore


def run(
    w: TimeWindow, events: list[tuple[int, float]], cuts: list[int]
) -> tuple[list[tuple[Any, ...]], list[int], list[int]]:
    pos = np.array([p for p, _ in events], dtype=np.int64)
    ts = np.array([t for _, t in events], dtype=np.float64)
    out: list[tuple[Any, ...]] = []
    late: list[int] = []
    invalid: list[int] = []
    bounds = [0, *sorted(cuts), len(events)]
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        batch = rows(pos[a:b], ts[a:b])
        r = w.append(*batch)
        out += [full(v) for v in r.windows]
        late += batch[2][r.late].tolist()
        invalid += batch[2][r.invalid_ts].tolist()
    out += [full(v) for v in w.advance(math.inf)]
    return out, late, invalid


times = st.one_of(
    st.integers(0, 60).map(float),
    st.floats(0, 60, allow_nan=False),
    st.just(math.nan),
)
configs = st.sampled_from(
    [(10.0, 10.0, 0.0), (10.0, 10.0, 5.0), (12.0, 4.0, 3.0), (6.0, 2.0, 0.0), (9.0, 3.0, 20.0)]
)


@settings(max_examples=150, deadline=None)
@given(
    cfg=configs,
    ts=st.lists(times, min_size=0, max_size=80),
    cuts=st.lists(st.integers(0, 80), max_size=10),
    max_events=st.sampled_from([100_000, 6, 3]),
)
def test_batch_boundaries_do_not_matter(
    cfg: tuple[float, float, float], ts: list[float], cuts: list[int], max_events: int
) -> None:
    size, step, lateness = cfg
    max_events = max(max_events, round(size / step))
    events = list(enumerate(ts, start=1))
    cuts = [c for c in cuts if c <= len(events)]

    def make() -> TimeWindow:
        return TimeWindow(size, step, lateness, n_num=2, n_cat=2, max_events=max_events, seed=1)

    whole = run(make(), events, [])
    one_by_one = run(make(), events, list(range(1, len(events))))
    split = run(make(), events, cuts)
    assert whole == one_by_one == split
    if max_events == 100_000:
        exp_windows, exp_late, exp_invalid = oracle(events, size, step, lateness)
        assert (whole[1], whole[2]) == (exp_late, exp_invalid)
        assert [(w[0], w[1], sorted(w[3])) for w in whole[0]] == exp_windows


def roundtrip(w: TimeWindow) -> TimeWindow:
    """Snapshot through an .npz file: plain arrays only, no pickle."""
    buf = io.BytesIO()
    savez: Any = np.savez  # numpy's stub types the keyword `allow_pickle` against **arrays
    savez(buf, **w.snapshot())
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as z:
        return TimeWindow.restore({k: z[k] for k in z.files})


@settings(max_examples=100, deadline=None)
@given(
    cfg=configs,
    ts=st.lists(times, min_size=1, max_size=80),
    stop=st.integers(0, 80),
    cuts=st.lists(st.integers(0, 80), max_size=6),
    max_events=st.sampled_from([100_000, 4]),
    pushed=st.one_of(st.none(), st.floats(0, 70)),
)
def test_snapshot_restore_mid_stream(
    cfg: tuple[float, float, float],
    ts: list[float],
    stop: int,
    cuts: list[int],
    max_events: int,
    pushed: float | None,
) -> None:
    size, step, lateness = cfg
    max_events = max(max_events, round(size / step))
    events = list(enumerate(ts, start=1))
    stop = min(stop, len(events))
    cuts = [c for c in cuts if c <= len(events) - stop]

    def make() -> TimeWindow:
        return TimeWindow(size, step, lateness, n_num=2, n_cat=2, max_events=max_events, seed=9)

    a = make()
    head = run_no_flush(a, events[:stop])
    if pushed is not None:
        head += [full(v) for v in a.advance(pushed)]
    b = roundtrip(a)
    assert snap_equal(a.snapshot(), b.snapshot())
    rest_a = run(a, events[stop:], cuts)
    rest_b = run(b, events[stop:], cuts)
    assert rest_a == rest_b
    assert (a.n_late, a.n_invalid, a.n_subsampled) == (b.n_late, b.n_invalid, b.n_subsampled)
    if pushed is None:  # and equal to never having stopped at all
        assert head + rest_a[0] == run(make(), events, [stop] + [c + stop for c in cuts])[0]


def run_no_flush(w: TimeWindow, events: list[tuple[int, float]]) -> list[tuple[Any, ...]]:
    pos = np.array([p for p, _ in events], dtype=np.int64)
    ts = np.array([t for _, t in events], dtype=np.float64)
    return [full(v) for v in w.append(*rows(pos, ts)).windows]


def snap_equal(x: dict[str, npt.NDArray[Any]], y: dict[str, npt.NDArray[Any]]) -> bool:
    return x.keys() == y.keys() and all(
        x[k].dtype == y[k].dtype and np.array_equal(x[k], y[k], equal_nan=True) for k in x
    )


def test_snapshot_of_fresh_window_roundtrips() -> None:
    w = TimeWindow(30, 10, 5, n_num=3, n_cat=0, max_events=99, seed=4)
    b = roundtrip(w)
    assert snap_equal(w.snapshot(), b.snapshot())
    assert (
        b.window.size_s,
        b.window.step_s,
        b.clock.allowed_lateness_s,
        b.window.max_events,
        b.window.seed,
        b.window.k,
    ) == (
        30,
        10,
        5,
        99,
        4,
        3,
    )
    assert b.watermark == -math.inf


# ---------------------------------------------------------------- evaluation code unchanged


def test_views_and_count_windows_share_the_read_interface() -> None:
    w = TimeWindow(10, 10, 0, n_num=2, n_cat=2)
    w.append(*rows([1, 2, 3], [1.0, 2.0, 3.0]))
    (view,) = w.advance(math.inf)
    cw = CountWindow(size=3, step=3, n_num=2, n_cat=2)
    list(cw.append(Rows.of(*rows([1, 2, 3], [1.0, 2.0, 3.0]))))
    as_view: WindowView = cw  # CountWindow satisfies the Protocol statically too (mypy)
    assert isinstance(view, WindowView) and isinstance(as_view, WindowView)
    for j in range(2):
        assert np.array_equal(view.num_column(j), cw.num_column(j), equal_nan=True)
        assert np.array_equal(view.cat_column(j), cw.cat_column(j))
    cs, vs = cw.span(), view.span()
    assert {k: vs[k] for k in cs} == cs
    assert (vs["window_start_ts"], vs["window_end_ts"]) == (0.0, 10.0)


def test_evaluate_accepts_a_time_window_view() -> None:
    from driftd.config import MonitorConfig
    from driftd.monitor.evaluate import evaluate
    from driftd.monitor.spec import build_spec
    from driftd.reference.features import build_categorical, build_numeric
    from driftd.reference.profile import Profile

    rng = np.random.default_rng(0)
    cfg = MonitorConfig.model_validate(
        {
            "name": "m",
            "model": "m",
            "reference": {"type": "warmup", "events": 10},
            "features": {
                "x": {"kind": "numeric", "test": "ks"},
                "y": {"kind": "numeric", "test": "psi"},
                "c": {"kind": "categorical", "test": "chi2"},
                "d": {"kind": "categorical", "test": "js"},
            },
        }
    )
    profile = Profile(
        monitor="m",
        events=500,
        features={
            "x": build_numeric(rng.normal(size=500)),
            "y": build_numeric(rng.normal(size=500)),
            "c": build_categorical([str(v) for v in rng.integers(0, 3, 500)]),
            "d": build_categorical([str(v) for v in rng.integers(0, 2, 500)]),
        },
        prediction=None,
    )
    spec = build_spec(cfg, profile, 0)
    n = 400
    pos = np.arange(1, n + 1)
    w = TimeWindow(100, 100, 0, n_num=2, n_cat=2)
    w.append(*rows(pos, pos * 0.1))
    (view,) = w.advance(math.inf)
    cw = CountWindow(size=n, step=n, n_num=2, n_cat=2)
    list(cw.append(Rows.of(*rows(pos, pos * 0.1))))
    a, b = evaluate(spec, view), evaluate(spec, cw)  # type: ignore[arg-type]
    assert a["features"] == b["features"] and a["drift_share"] == b["drift_share"]
    assert a["window"]["events"] == n and a["window"]["window_end_ts"] == 100.0

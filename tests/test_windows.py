from __future__ import annotations

import numpy as np

from driftd.ingest.panes import Rows
from driftd.reference.features import bin_counts, build_categorical, build_numeric, quantile_edges
from driftd.windows.count import CountWindow


def batch(start: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    pos = np.arange(start, start + n, dtype=np.int64)
    num = pos.astype(np.float64).reshape(n, 1)
    cat = (pos % 3).astype(np.int32).reshape(n, 1)
    return num, cat, pos, pos.astype(np.float64)


def test_sliding_boundaries_and_content() -> None:
    w = CountWindow(size=10, step=4, n_num=1, n_cat=1)
    seen = []
    pos = 1
    for n in (3, 7, 1, 13):  # odd batch sizes cross boundaries in the middle
        num, cat, p, ts = batch(pos, n)
        for view in w.append(Rows.of(num, cat, p, ts)):
            seen.append((view.seq, sorted(view.num_column(0).tolist())))
        pos += n
    assert [t for t, _ in seen] == [4, 8, 12, 16, 20, 24]
    for total, content in seen:
        expect = list(range(max(1, total - 9), total + 1))
        assert content == [float(x) for x in expect]
    assert w.span()["end_position"] == 24 and w.span()["events"] == 10


def test_batch_larger_than_window() -> None:
    w = CountWindow(size=5, step=5, n_num=1, n_cat=1)
    num, cat, p, ts = batch(1, 23)
    totals = [v.seq for v in w.append(Rows.of(num, cat, p, ts))]
    assert totals == [5, 10, 15, 20]
    assert sorted(w.num_column(0).tolist()) == [19.0, 20.0, 21.0, 22.0, 23.0]


def test_snapshot_restore_roundtrip() -> None:
    w = CountWindow(size=7, step=3, n_num=1, n_cat=1)
    num, cat, p, ts = batch(1, 11)
    list(w.append(Rows.of(num, cat, p, ts)))
    w2 = CountWindow.restore(w.snapshot())
    num, cat, p, ts = batch(12, 5)
    a = [v.seq for v in w.append(Rows.of(num, cat, p, ts))]
    b = [v.seq for v in w2.append(Rows.of(num, cat, p, ts))]
    assert a == b
    assert np.array_equal(w.num, w2.num) and w.head == w2.head and w.total == w2.total


def test_reference_builders() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=5000)
    x[:10] = np.nan
    ref = build_numeric(x, n_bins=10)
    assert ref.missing == 10 and ref.count == 4990
    assert ref.edges[0] == -np.inf and ref.edges[-1] == np.inf
    assert abs(ref.probs.sum() - 1) < 1e-12 and np.all(np.abs(ref.probs - 0.1) < 0.01)
    assert np.all(np.diff(ref.sample) >= 0)
    c = build_categorical(["a", "b", None, "a"])
    assert c.categories == ("a", "b") and c.counts.tolist() == [2, 1] and c.missing == 1


def test_quantile_edges_point_mass() -> None:
    const = np.full(100, 3.0)
    e = quantile_edges(const)
    counts = bin_counts(np.array([2.0, 3.0, 3.5]), e)
    assert counts.sum() == 3 and counts[-1] >= 1  # above-max separable from the mass
    assert bin_counts(np.array([3.0]), e)[np.searchsorted(e[1:-1], 3.0, side="right")] == 1

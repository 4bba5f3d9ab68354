"""WarmupBuilder: exact moments and counts, a reservoir that does not depend on batching or
checkpoints, and the profile's rules (all values kept up to MAX_RAW)."""

from __future__ import annotations

import numpy as np
import pytest

from driftd.reference.features import build_numeric
from driftd.reference.warmup import WarmupBuilder


def data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    rng = np.random.default_rng(seed)
    num = np.column_stack([rng.lognormal(0, 1, n), rng.normal(5, 2, n)])
    num[rng.random(n) < 0.05, 1] = np.nan  # missing values
    cat = rng.integers(-1, 7, size=(n, 1)).astype(np.int32)  # -1 = missing
    return num, cat


def fold(b: WarmupBuilder, num: np.ndarray, cat: np.ndarray, sizes: list[int]) -> int:  # type: ignore[type-arg]
    i = taken = 0
    k = 0
    while i < num.shape[0]:
        s = sizes[k % len(sizes)]
        taken += b.fold(num[i : i + s], cat[i : i + s])
        i += s
        k += 1
    return taken


def test_takes_exactly_the_first_n_rows() -> None:
    num, cat = data(1000)
    b = WarmupBuilder(600, 2, 1)
    assert b.fold(num[:450], cat[:450]) == 450 and not b.done
    assert b.fold(num[450:], cat[450:]) == 150 and b.done
    assert b.fold(num, cat) == 0


def test_small_reference_equals_profile_build() -> None:
    num, cat = data(3000)
    b = WarmupBuilder(3000, 2, 1)
    fold(b, num, cat, [7, 500, 1])
    for j in range(2):
        got, want = b.numeric(j), build_numeric(num[:, j])
        assert np.array_equal(got.sample, want.sample)
        assert (got.count, got.missing, got.mean, got.std, got.min, got.max) == (
            want.count,
            want.missing,
            want.mean,
            want.std,
            want.min,
            want.max,
        )
        assert np.array_equal(got.edges, want.edges)
    labels = [f"c{i}" for i in range(7)]
    ref, overflow = b.categorical(0, labels)
    want_counts = np.bincount(cat[cat >= 0], minlength=7)
    assert overflow == 0 and ref.categories == tuple(labels)
    assert ref.counts.tolist() == want_counts.tolist() and ref.missing == int((cat < 0).sum())


def test_large_reference_reservoir_independent_of_batching_and_checkpoints() -> None:
    num, cat = data(20_000, seed=3)
    a = WarmupBuilder(20_000, 2, 1, max_raw=1000, seed=5)
    fold(a, num, cat, [20_000])
    b = WarmupBuilder(20_000, 2, 1, max_raw=1000, seed=5)
    fold(b, num[:7777], cat[:7777], [13, 999, 1])
    c = WarmupBuilder.restore(b.snapshot())  # through a checkpoint mid-way
    fold(c, num[7777:], cat[7777:], [3001, 2])
    for j in range(2):
        ra, rc = a.numeric(j), c.numeric(j)
        assert ra.sample.shape[0] <= 1000 and np.array_equal(ra.sample, rc.sample)
        finite = num[:, j][np.isfinite(num[:, j])]
        assert ra.count == finite.size and ra.missing == 20_000 - finite.size
        assert ra.mean == pytest.approx(finite.mean(), rel=1e-12)
        assert ra.std == pytest.approx(finite.std(), rel=1e-10)
        assert (ra.min, ra.max) == (finite.min(), finite.max())
        assert (rc.mean, rc.std) == pytest.approx((ra.mean, ra.std), rel=1e-12)
    # The reservoir is a uniform sample of all 20,000 rows, not of the first 1,000.
    held = a.sample[:, 1]
    held = held[np.isfinite(held)]
    assert abs(np.median(a.sample[:, 0]) - np.median(num[:, 0])) < 0.15
    assert abs(held.mean() - 5) < 0.2
    assert not np.array_equal(np.sort(a.sample[:, 0]), np.sort(num[:1000, 0]))
    other = WarmupBuilder(20_000, 2, 1, max_raw=1000, seed=6)
    fold(other, num, cat, [20_000])
    assert not np.array_equal(other.sample, a.sample)  # the seed matters


def test_categories_beyond_the_dictionary_bound_are_reported() -> None:
    b = WarmupBuilder(10, 0, 1)
    codes = np.array([[0], [1], [2], [2], [-1], [2], [0], [1], [2], [2]], dtype=np.int32)
    b.fold(np.zeros((10, 0)), codes)
    ref, overflow = b.categorical(0, ["b", "a"])  # a dictionary of two labels: code 2 = overflow
    assert ref.categories == ("a", "b") and ref.counts.tolist() == [2, 2]
    assert overflow == 5 and ref.missing == 1


def test_restore_recodes_category_counts() -> None:
    b = WarmupBuilder(10, 0, 1)
    b.fold(np.zeros((4, 0)), np.array([[0], [1], [1], [3]], dtype=np.int32))
    lut = np.array([2, 0, 3, 4, 4, -1])  # saved code -> current code (cap 4: overflow = 4)
    c = WarmupBuilder.restore(b.snapshot(), [lut])
    assert c.cat_counts[0].tolist() == [2, 0, 1, 0, 1]

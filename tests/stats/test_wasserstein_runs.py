"""``twosample.wasserstein`` walks runs of the reference and sums ties as zero-width terms; it
must give ``cdf_distances(a, b)[0]`` bit for bit (the number every statistics test and the
detection benchmark saw before), whatever the ties, signed zeros, NaN tails or sizes."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from driftd.kernels import twosample

values = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=True),
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 5e-324, -5e-324, 2.5]),
    st.integers(-3, 3).map(float),
)
samples = st.lists(values, min_size=1, max_size=80)


def _same(x: float, y: float) -> bool:
    if np.isnan(x) or np.isnan(y):
        return bool(np.isnan(x) and np.isnan(y))
    return x == y and np.signbit(x) == np.signbit(y)


@settings(max_examples=3000, deadline=None)
@given(a=samples, b=samples, nan_a=st.integers(0, 2), nan_b=st.integers(0, 2))
def test_runs_equal_the_merge_bit_for_bit(
    a: list[float], b: list[float], nan_a: int, nan_b: int
) -> None:
    x = np.sort(np.array(a + [np.nan] * nan_a))
    y = np.sort(np.array(b + [np.nan] * nan_b))
    assert _same(twosample.wasserstein(x, y), twosample.cdf_distances(x, y)[0])
    assert _same(twosample.wasserstein(y, x), twosample.cdf_distances(y, x)[0])


def test_runs_equal_the_merge_on_window_sized_samples() -> None:
    rng = np.random.default_rng(15)
    for ref, cur in [
        (rng.normal(50, 10, 20_000).round(3), rng.normal(51, 10, 5_000).round(3)),
        (rng.uniform(0, 100, 20_000).round(2), rng.uniform(0, 100, 5_000).round(2)),
        (rng.poisson(4, 20_000).astype(float), rng.poisson(5, 5_000).astype(float)),
        (rng.lognormal(8, 0.6, 5_000), rng.lognormal(8.1, 0.6, 5_000)),
    ]:
        a, b = np.sort(ref), np.sort(cur)
        assert _same(twosample.wasserstein(a, b), twosample.cdf_distances(a, b)[0])


def test_infinite_values_end() -> None:
    a = np.array([0.0, 1.0, np.inf])
    b = np.array([0.5, 2.0])
    assert _same(twosample.wasserstein(a, b), twosample.cdf_distances(a, b)[0])
    assert _same(twosample.cdf_distances(b, a)[0], twosample.wasserstein(b, a))

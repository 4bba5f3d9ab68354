"""Count windows keep decimal columns as integers: every value must come back bit for bit
(missing values, signed zeros, more decimals later, values beyond the range, other floats),
and a window's content must equal what a float64 ring would hold."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from driftd.ingest.panes import Rows
from driftd.windows.compact import CompactColumns
from driftd.windows.count import CountWindow

decimals = st.builds(lambda n, k: n / 10.0**k, st.integers(-(10**9), 10**9), st.integers(0, 9))
values = st.one_of(
    decimals,
    st.floats(allow_nan=False, allow_infinity=True),
    st.sampled_from([np.nan, -0.0, 0.0, 1e300, 0.1 + 0.2, 127.0, -127.0, 128.0, 2**31]),
    # NaNs of other bits than the one a missing value decodes to: kept as they are
    st.sampled_from([-np.nan, float(np.array(0x7FF0000000000001).view(np.float64))]),
)
blocks = st.lists(st.lists(values, min_size=2, max_size=2), min_size=1, max_size=12)


def _bits(a: np.ndarray) -> list[int]:
    return np.ascontiguousarray(a, dtype=np.float64).view(np.int64).tolist()


@settings(max_examples=500, deadline=None)
@given(writes=st.lists(st.tuples(st.integers(0, 7), blocks), min_size=1, max_size=6))
def test_columns_give_back_every_value_bit_for_bit(
    writes: list[tuple[int, list[list[float]]]],
) -> None:
    size = 20
    cols = CompactColumns(size, 2)
    plain = np.full((size, 2), np.nan)
    for at, block in writes:
        arr = np.asarray(block, dtype=np.float64)[: size - at]
        cols.write(at, arr)
        plain[at : at + arr.shape[0]] = arr
    for j in range(2):
        assert _bits(cols.column(j, size)) == _bits(plain[:, j])
    assert _bits(cols.block()) == _bits(plain)


def test_decimal_columns_take_fewer_bytes() -> None:
    rng = np.random.default_rng(0)
    block = np.column_stack(
        [
            rng.normal(50, 10, 1000).round(3),  # int32
            rng.poisson(4, 1000).astype(float),  # int8
            rng.uniform(0, 100, 1000).round(2),  # int16
            rng.normal(size=1000),  # float64
        ]
    )
    cols = CompactColumns(1000, 4)
    cols.write(0, block)
    assert [d.dtype.itemsize for d in cols.data] == [4, 1, 2, 8]
    assert _bits(cols.block()) == _bits(block)


def test_window_content_and_snapshot_equal_a_float64_ring() -> None:
    rng = np.random.default_rng(1)
    w = CountWindow(size=50, step=7, n_num=3, n_cat=1)
    ring = np.full((50, 3), np.nan)
    head = 0
    for k in range(12):
        n = int(rng.integers(1, 30))
        num = np.column_stack(
            [rng.normal(size=n).round(2), rng.integers(0, 9, n).astype(float), rng.normal(size=n)]
        )
        num[rng.random(n) < 0.1, 0] = np.nan
        if k == 6:
            num[:, 0] = rng.normal(size=n)  # column 0 loses its decimal form
        rows = Rows.of(num, np.zeros((n, 1), dtype=np.int32), np.arange(n) + 1, np.zeros(n))
        for _ in w.append(rows):
            pass
        for r in num[-50:]:
            ring[head] = r
            head = (head + 1) % 50
        for j in range(3):
            assert _bits(w.num_column(j)) == _bits(ring[: w.filled, j])
    snap = w.snapshot()
    assert _bits(snap["num"]) == _bits(ring)
    back = CountWindow.restore(snap)
    assert _bits(back.num) == _bits(ring)

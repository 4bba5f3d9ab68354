"""Numeric window columns kept exactly in fewer bytes: decimal numbers as integers.

Values read from JSON are mostly decimals with a few digits (prices, counts, rates, scores
rounded for display). A column whose every value ``x`` satisfies ``x == n / 10**k`` bit for bit,
for integers ``n`` and one ``k`` (0–9), is stored as those ``n`` in the smallest integer type
that holds them (int8, int16 or int32; the type's minimum marks a missing value). Reading the
column divides by ``10**k`` again: one correctly rounded division of two exact doubles, the
very operation the writer checked, so every value comes back bit for bit and the statistics
see exactly the numbers that were appended. A column that stops fitting (a value with more
decimals, or beyond the range) is re-encoded, or kept as float64 from then on.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from driftd.kernels._jit import kernel

F64 = npt.NDArray[np.float64]
MAX_DECIMALS = 9
_NAN_BITS = np.float64(np.nan).view(np.int64)  # the NaN a missing value is (decode gives it)
_INTS = (np.int8, np.int16, np.int32)
_BOUNDS = {np.dtype(t): (int(np.iinfo(t).min), int(np.iinfo(t).max)) for t in _INTS}


def _plain(values: F64, nan: npt.NDArray[np.bool_]) -> bool:
    """No value an integer cannot give back: -0.0, infinities, a NaN of other bits."""
    if (values[nan].view(np.int64) != _NAN_BITS).any():
        return False
    finite = values[~nan]
    return bool(np.isfinite(finite).all() and not ((finite == 0) & np.signbit(finite)).any())


def _fit(values: F64) -> tuple[npt.NDArray[np.generic], float] | None:
    """(integers, scale) that give back ``values`` exactly (NaN as the type's minimum) in
    the smallest integer type, or None."""
    nan = np.isnan(values)
    if not _plain(values, nan):
        return None
    finite = values[~nan]
    if finite.size and float(np.abs(finite).max()) > _BOUNDS[np.dtype(np.int32)][1]:
        return None
    bits = finite.view(np.int64)
    for k in range(MAX_DECIMALS + 1):
        scale = 10.0**k
        with np.errstate(over="ignore", invalid="ignore"):
            ints = np.rint(finite * scale)
        if not np.array_equal((ints / scale).view(np.int64), bits):
            continue
        lo = float(ints.min()) if ints.size else 0.0
        hi = float(ints.max()) if ints.size else 0.0
        for t in _INTS:
            low, high = _BOUNDS[np.dtype(t)]
            if low < lo and hi <= high:
                out = np.full(values.shape[0], low, dtype=t)
                out[~nan] = ints.astype(t)
                return out, scale
        return None  # finer scales only make the integers larger
    return None


@kernel
def _encode_into(
    block: F64,
    bits: npt.NDArray[np.int64],
    j: int,
    scale: float,
    low: int,
    high: int,
    out: npt.NDArray[np.generic],
    at: int,
) -> bool:
    """Column ``j`` of ``block`` as integers of ``scale`` into ``out[at:]``, in one pass over
    the rows — if every value gives itself back exactly (the checks of :func:`_plain` and
    :func:`_fit`: the missing value's NaN bits, no -0.0 or infinity, ``n / scale`` equal to
    the value, ``n`` within the type's range); else nothing is written and False."""
    m = block.shape[0]
    for i in range(m):
        x = block[i, j]
        if math.isnan(x):
            if bits[i, j] != _NAN_BITS:
                return False
            continue
        if math.isinf(x) or (x == 0.0 and math.copysign(1.0, x) < 0.0):
            return False
        n = np.rint(x * scale)
        if not (n / scale == x and low < n and n <= high):
            return False
    for i in range(m):
        x = block[i, j]
        out[at + i] = low if math.isnan(x) else np.rint(x * scale)
    return True


class CompactColumns:
    """``n`` numeric columns of ``size`` rows (all NaN at first), each stored as integers of a
    decimal scale when its values allow it, else as float64."""

    __slots__ = ("size", "data", "scale")

    def __init__(self, size: int, n: int) -> None:
        self.size = size
        # per column: its store and scale (0.0: float64 store)
        self.data: list[npt.NDArray[np.generic]] = [
            np.full(size, _BOUNDS[np.dtype(np.int8)][0], dtype=np.int8) for _ in range(n)
        ]
        self.scale = [1.0] * n

    @property
    def nbytes(self) -> int:
        return sum(int(d.nbytes) for d in self.data)

    def column(self, j: int, n: int) -> F64:
        """Rows ``0 … n-1`` of column ``j`` as float64 (a fresh array)."""
        d = self.data[j][:n]
        scale = self.scale[j]
        if scale == 0.0:
            return np.array(d, dtype=np.float64)
        out = d.astype(np.float64)
        out /= scale
        out[d == _BOUNDS[d.dtype][0]] = np.nan
        return out

    def copy(self, n: int) -> CompactColumns:
        """Rows ``0 … n-1`` of every column, stored as they are (a frozen copy)."""
        out = CompactColumns.__new__(CompactColumns)
        out.size = n
        out.data = [d[:n].copy() for d in self.data]
        out.scale = list(self.scale)
        return out

    def block(self, n: int | None = None) -> F64:
        """Rows ``0 … n-1`` (all rows by default) of every column, float64 ``(n, columns)``."""
        n = self.size if n is None else n
        out = np.empty((n, len(self.data)), dtype=np.float64)
        for j in range(len(self.data)):
            out[:, j] = self.column(j, n)
        return out

    def write(self, at: int, block: F64) -> None:
        """Rows ``at … at + len(block) - 1`` of every column from ``block`` (rows, columns)."""
        m = block.shape[0]
        block = np.ascontiguousarray(block, dtype=np.float64)
        bits = block.view(np.int64)
        for j in range(len(self.data)):
            v = block[:, j]
            d = self.data[j]
            scale = self.scale[j]
            if scale == 0.0:
                d[at : at + m] = v
                continue
            low, high = _BOUNDS[d.dtype]
            if _encode_into(block, bits, j, scale, low, high, d, at):
                continue
            whole = self.column(j, self.size)  # another scale or type: re-encode the column
            whole[at : at + m] = v
            fit = _fit(whole)
            if fit is None:
                self.data[j], self.scale[j] = whole, 0.0
            else:
                self.data[j], self.scale[j] = fit

"""Count windows on NumPy ring buffers, one per (monitor, model_version[, segment]).

The buffer keeps the raw values of the last ``size`` accepted events (numeric columns exactly
as appended, NaN for missing — decimal values as small integers, :mod:`driftd.windows.compact`;
categorical columns as int32 codes with -1 for missing), their
source positions, event times, source offsets and partition codes (the window's provenance).
Appends are whole chunks copied with slicing; :meth:`CountWindow.append` yields the window
itself each time the number of rows ever appended reaches a multiple of ``step``. Order inside
the ring does not matter to the distribution tests, so nothing is ever shifted.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from driftd.ingest.panes import Rows
from driftd.windows.base import provenance
from driftd.windows.compact import CompactColumns


class CountWindow:
    __slots__ = (
        "size",
        "step",
        "_num",
        "cat",
        "pos",
        "ts",
        "off",
        "part",
        "total",
        "head",
        "filled",
        "last_position",
    )
    time_based = False

    def __init__(self, size: int, step: int, n_num: int, n_cat: int) -> None:
        self.size = size
        self.step = step
        self._num = CompactColumns(size, n_num)  # decimals as integers, exactly
        self.cat = np.full((size, n_cat), -1, dtype=np.int32)
        self.pos = np.zeros(size, dtype=np.int64)
        self.ts = np.full(size, np.nan, dtype=np.float64)
        self.off = np.full(size, -1, dtype=np.int64)
        self.part = np.zeros(size, dtype=np.int32)
        self.total = 0  # accepted events ever appended
        self.head = 0  # next row to write
        self.filled = 0  # rows holding data (≤ size)
        self.last_position = 0  # position of the newest row (the trigger of a step)

    @property
    def num(self) -> npt.NDArray[np.float64]:
        """The numeric block ``(size, n_num)`` as float64 (a fresh array)."""
        return self._num.block()

    @property
    def nbytes(self) -> int:
        """Bytes the window's arrays take."""
        rest = (self.cat, self.pos, self.ts, self.off, self.part)
        return self._num.nbytes + sum(int(a.nbytes) for a in rest)

    @property
    def seq(self) -> int:
        return self.total

    @property
    def trigger(self) -> int:
        return self.last_position

    @property
    def held(self) -> int:
        return self.filled

    def until_step(self) -> int:
        """Rows still to append before the next step."""
        return self.step - self.total % self.step

    def append(self, rows: Rows) -> Iterator[CountWindow]:
        """Copy rows in; yield the window each time ``total`` reaches a multiple of ``step``.
        The window's content is exactly the last ``min(total, size)`` rows at each yield."""
        n = len(rows)
        i = 0
        while i < n:
            take = min(n - i, self.until_step())
            self._write(rows.take(slice(i, i + take)))
            i += take
            self.total += take
            if self.total % self.step == 0:
                yield self

    def advance(self, watermark_ts: float) -> Iterator[CountWindow]:
        return iter(())

    def _write(self, rows: Rows) -> None:
        n = len(rows)
        if n == 0:
            return
        self.last_position = int(rows.pos[-1])
        if n > self.size:  # only the last `size` rows can survive
            rows = rows.take(slice(n - self.size, n))
            n = self.size
        first = min(n, self.size - self.head)
        h = self.head
        self._num.write(h, rows.num[:first])
        if n > first:
            self._num.write(0, rows.num[first:])
        cols = (
            (self.cat, rows.cat),
            (self.pos, rows.pos),
            (self.ts, rows.ts),
            (self.off, rows.off),
            (self.part, rows.part),
        )
        for dst, src in cols:
            dst[h : h + first] = src[:first]
            if n > first:
                dst[: n - first] = src[first:]
        self.head = (h + n) % self.size
        self.filled = min(self.size, self.filled + n)

    # ------------------------------------------------------------------ views

    def num_column(self, j: int) -> npt.NDArray[np.float64]:
        return self._num.column(j, self.filled)

    def cat_column(self, j: int) -> npt.NDArray[np.int32]:
        return self.cat[: self.filled, j]

    def span(self) -> dict[str, Any]:
        """Source positions, event times and per-partition offsets of the window's content."""
        f = self.filled
        if f == 0:
            return {"start_position": None, "end_position": None, "events": 0}
        pos = self.pos[:f]
        ts = self.ts[:f]
        finite = ts[np.isfinite(ts)]
        out: dict[str, Any] = {
            "start_position": int(pos.min()),
            "end_position": int(pos.max()),
            "events": int(f),
            "start_ts": float(finite.min()) if finite.size else None,
            "end_ts": float(finite.max()) if finite.size else None,
        }
        prov = provenance(self.part[:f], self.off[:f])
        if prov:  # sources with offsets (Kafka): per partition code, [first, last] offset
            out["partitions"] = prov
        return out

    def frozen(self) -> CountWindow:
        """A copy holding exactly the window's current rows, for evaluating on another thread
        while appends go on (see :mod:`driftd.monitor.deferred`)."""
        f = self.filled
        w = CountWindow.__new__(CountWindow)
        w.size, w.step, w.total, w.head, w.filled = f, self.step, self.total, 0, f
        w.last_position = self.last_position
        w._num = self._num.copy(f)
        w.cat, w.pos, w.ts = self.cat[:f].copy(), self.pos[:f].copy(), self.ts[:f].copy()
        w.off, w.part = self.off[:f].copy(), self.part[:f].copy()
        return w

    # ------------------------------------------------------------------ state

    def snapshot(self) -> dict[str, npt.NDArray[Any]]:
        meta = np.array(
            [self.size, self.step, self.total, self.head, self.filled, self.last_position],
            dtype=np.int64,
        )
        return {
            "meta": meta,
            "num": self.num,
            "cat": self.cat,
            "pos": self.pos,
            "ts": self.ts,
            "off": self.off,
            "part": self.part,
        }

    @classmethod
    def restore(cls, arrays: dict[str, npt.NDArray[Any]]) -> CountWindow:
        size, step, total, head, filled, last = (int(x) for x in arrays["meta"])
        w = cls(size, step, arrays["num"].shape[1], arrays["cat"].shape[1])
        w._num.write(0, np.asarray(arrays["num"], dtype=np.float64))
        for name in ("cat", "pos", "ts", "off", "part"):
            getattr(w, name)[:] = arrays[name]
        w.total, w.head, w.filled, w.last_position = total, head, filled, last
        return w

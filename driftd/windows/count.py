"""Count windows on NumPy ring buffers, one per (monitor, model_version).

The buffer keeps the raw values of the last ``size`` accepted events (numeric columns as
float64 with NaN for missing, categorical columns as int32 codes with -1 for missing), their
source positions and event times. Appends are whole micro-batches copied with slicing; the
caller evaluates at every step boundary, which :meth:`CountWindow.append` reports by yielding.
Order inside the ring does not matter to the distribution tests, so nothing is ever shifted.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt


class CountWindow:
    __slots__ = ("size", "step", "num", "cat", "pos", "ts", "total", "head", "filled")

    def __init__(self, size: int, step: int, n_num: int, n_cat: int) -> None:
        self.size = size
        self.step = step
        self.num = np.full((size, n_num), np.nan, dtype=np.float64)
        self.cat = np.full((size, n_cat), -1, dtype=np.int32)
        self.pos = np.zeros(size, dtype=np.int64)
        self.ts = np.full(size, np.nan, dtype=np.float64)
        self.total = 0  # accepted events ever appended
        self.head = 0  # next row to write
        self.filled = 0  # rows holding data (≤ size)

    def append(
        self,
        num: npt.NDArray[np.float64],
        cat: npt.NDArray[np.int32],
        pos: npt.NDArray[np.int64],
        ts: npt.NDArray[np.float64],
    ) -> Iterator[int]:
        """Copy a micro-batch in; yield ``total`` each time it reaches a multiple of ``step``.

        The window's content is exactly the last ``min(total, size)`` events at each yield.
        """
        n = pos.shape[0]
        i = 0
        while i < n:
            take = min(n - i, self.step - self.total % self.step)
            self._write(num[i : i + take], cat[i : i + take], pos[i : i + take], ts[i : i + take])
            i += take
            self.total += take
            if self.total % self.step == 0:
                yield self.total

    def _write(
        self,
        num: npt.NDArray[np.float64],
        cat: npt.NDArray[np.int32],
        pos: npt.NDArray[np.int64],
        ts: npt.NDArray[np.float64],
    ) -> None:
        n = pos.shape[0]
        if n > self.size:  # only the last `size` rows can survive
            num, cat, pos, ts = (
                num[-self.size :],
                cat[-self.size :],
                pos[-self.size :],
                ts[-self.size :],
            )
            n = self.size
        first = min(n, self.size - self.head)
        h = self.head
        self.num[h : h + first] = num[:first]
        self.cat[h : h + first] = cat[:first]
        self.pos[h : h + first] = pos[:first]
        self.ts[h : h + first] = ts[:first]
        rest = n - first
        if rest:
            self.num[:rest] = num[first:]
            self.cat[:rest] = cat[first:]
            self.pos[:rest] = pos[first:]
            self.ts[:rest] = ts[first:]
        self.head = (h + n) % self.size
        self.filled = min(self.size, self.filled + n)

    # ------------------------------------------------------------------ views

    def rows(self) -> slice:
        return slice(0, self.filled)

    def num_column(self, j: int) -> npt.NDArray[np.float64]:
        return self.num[: self.filled, j]

    def cat_column(self, j: int) -> npt.NDArray[np.int32]:
        return self.cat[: self.filled, j]

    def span(self) -> dict[str, Any]:
        """Source positions and event times covered by the window's current content."""
        f = self.filled
        if f == 0:
            return {"start_position": None, "end_position": None, "events": 0}
        pos = self.pos[:f]
        ts = self.ts[:f]
        finite = ts[np.isfinite(ts)]
        return {
            "start_position": int(pos.min()),
            "end_position": int(pos.max()),
            "events": int(f),
            "start_ts": float(finite.min()) if finite.size else None,
            "end_ts": float(finite.max()) if finite.size else None,
        }

    # ------------------------------------------------------------------ state

    def snapshot(self) -> dict[str, npt.NDArray[Any]]:
        meta = np.array([self.size, self.step, self.total, self.head, self.filled], dtype=np.int64)
        return {"meta": meta, "num": self.num, "cat": self.cat, "pos": self.pos, "ts": self.ts}

    @classmethod
    def restore(cls, arrays: dict[str, npt.NDArray[Any]]) -> CountWindow:
        size, step, total, head, filled = (int(x) for x in arrays["meta"])
        w = cls(size, step, arrays["num"].shape[1], arrays["cat"].shape[1])
        w.num[:] = arrays["num"]
        w.cat[:] = arrays["cat"]
        w.pos[:] = arrays["pos"]
        w.ts[:] = arrays["ts"]
        w.total, w.head, w.filled = total, head, filled
        return w

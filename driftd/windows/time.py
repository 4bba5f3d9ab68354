"""Event-time windows (tumbling and sliding): panes of rows, closed by a watermark.

Model
-----
Time is cut into *panes* of ``step_s`` seconds aligned to the epoch: an event with time ``ts``
(epoch seconds) belongs to pane ``p = floor(ts / step_s)``, which covers
``[p * step_s, (p + 1) * step_s)``. The window that *ends* at pane boundary ``e`` covers the
``k = size_s / step_s`` panes ``e - k … e - 1``, i.e. ``[e * step_s - size_s, e * step_s)``.
``step_s == size_s`` gives tumbling windows; ``step_s < size_s`` sliding windows in which
every event lies in exactly ``k`` windows.

:class:`EventTimeWindow` stores rows and emits a window once the watermark it is advanced to
reaches the window's end (measured in panes: ``e <= floor(watermark / step_s)``, monotone in
the watermark even under floating-point rounding). The watermark and the lateness of rows
belong to the monitor's merged stream (:class:`driftd.windows.clock.EventClock`): rows given
to :meth:`EventTimeWindow.append` have already been found on time, so an accepted row is part
of *every* window that contains it (none of them can have been emitted yet), and emissions do
not depend on how the stream is cut into batches. :class:`TimeWindow` is the two together for
one stream (one clock, one window).

Empty windows are skipped: a window is emitted only if at least one accepted event falls in
it, so a version that went quiet produces no stream of empty evaluations, and
``advance(math.inf)`` (flush at end of input) emits finitely many windows.

Memory bound
------------
A window holds at most ``max_events`` rows: each pane keeps at most
``pane_cap = max_events // k`` rows. Beyond that the pane is a uniform reservoir sample
(Algorithm R) of its events, where the slot drawn for the pane's ``t``-th event is a
SplitMix64 hash of ``(seed, pane, t)`` — stateless, so the sample depends neither on the
micro-batch cuts nor on checkpoint/restore. Every event not retained is counted in
``n_subsampled``; a view reports ``events_seen`` (all accepted events in the window) beside
``filled`` (rows kept). Below the bound nothing is sampled and contents are exact.
Open panes are bounded by the time span ``allowed_lateness_s + size_s`` behind the newest
event, so memory is ``O(max_events * (1 + allowed_lateness_s / size_s))`` per window object.

Emitted views own copies of their rows (a :class:`TimeWindowView`) and expose the read
interface of :class:`~driftd.windows.count.CountWindow` (:class:`WindowView`), so evaluation
code works on both unchanged. Row order inside a view is pane order, then arrival order.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from driftd.ingest.panes import Rows
from driftd.windows.base import WindowView, provenance
from driftd.windows.clock import EventClock
from driftd.windows.reservoir import COLS, Pane, pane_key

__all__ = ["AppendResult", "EventTimeWindow", "TimeWindow", "TimeWindowView", "WindowView"]



class TimeWindowView:
    """One emitted event-time window: a copy of its rows plus its boundaries."""

    __slots__ = (
        "num",
        "cat",
        "pos",
        "ts",
        "off",
        "part",
        "filled",
        "events_seen",
        "window_start_ts",
        "window_end_ts",
        "_pos_range",
        "_ts_range",
    )

    def __init__(
        self,
        rows: Rows,
        events_seen: int,
        window_start_ts: float,
        window_end_ts: float,
        pos_range: tuple[int, int],
        ts_range: tuple[float, float],
    ) -> None:
        self.num = rows.num
        self.cat = rows.cat
        self.pos = rows.pos
        self.ts = rows.ts
        self.off = rows.off
        self.part = rows.part
        self.filled = int(rows.pos.shape[0])
        self.events_seen = events_seen
        self.window_start_ts = window_start_ts
        self.window_end_ts = window_end_ts
        self._pos_range = pos_range
        self._ts_range = ts_range

    @property
    def seq(self) -> int:
        return int(self.window_end_ts)

    def num_column(self, j: int) -> npt.NDArray[np.float64]:
        return self.num[:, j]

    def cat_column(self, j: int) -> npt.NDArray[np.int32]:
        return self.cat[:, j]

    def span(self) -> dict[str, Any]:
        """Positions and event times covered (over all events seen, sampled or not).

        ``events`` is the number of rows evaluated (``filled``), as for count windows; it is
        smaller than ``events_seen`` only when the window was subsampled.
        """
        out: dict[str, Any] = {
            "start_position": self._pos_range[0],
            "end_position": self._pos_range[1],
            "events": self.filled,
            "start_ts": self._ts_range[0],
            "end_ts": self._ts_range[1],
            "window_start_ts": self.window_start_ts,
            "window_end_ts": self.window_end_ts,
        }
        prov = provenance(self.part, self.off)
        if prov:
            out["partitions"] = prov
        return out


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What one :meth:`TimeWindow.append` did.

    ``windows``: windows closed by this batch, in end-time order. ``late`` / ``invalid_ts``:
    row indices (into the batch) of events not added because they were late, or had a
    non-finite / out-of-range time. Every other row was accepted.
    """

    windows: list[TimeWindowView]
    late: npt.NDArray[np.intp]
    invalid_ts: npt.NDArray[np.intp]
    accepted: int


class EventTimeWindow:
    """Tumbling / sliding event-time windows of one (monitor, version[, segment]).

    ``append`` stores rows already found on time by the monitor's clock (it emits nothing);
    ``advance`` raises the window's watermark (never lowers it) and yields the windows closed.
    """

    __slots__ = (
        "size_s",
        "step_s",
        "n_num",
        "n_cat",
        "max_events",
        "seed",
        "k",
        "pane_cap",
        "watermark",
        "n_subsampled",
        "_panes",
        "_heap",
        "_next_end",
    )
    time_based = True

    def __init__(
        self,
        size_s: float,
        step_s: float,
        n_num: int,
        n_cat: int,
        max_events: int = 100_000,
        seed: int = 0,
    ) -> None:
        for name, v in (("size_s", size_s), ("step_s", step_s)):
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive finite number of seconds, got {v!r}")
        k = round(size_s / step_s)
        if k < 1 or not math.isclose(k * step_s, size_s, rel_tol=1e-9, abs_tol=0.0):
            raise ValueError(f"size_s ({size_s!r}) must be a whole multiple of step_s ({step_s!r})")
        if max_events < k:
            raise ValueError(
                f"max_events ({max_events}) must be at least size_s / step_s ({k}) "
                "so that every pane can hold an event"
            )
        self.size_s = float(size_s)
        self.step_s = float(step_s)
        self.n_num = n_num
        self.n_cat = n_cat
        self.max_events = int(max_events)
        self.seed = int(seed)
        self.k = int(k)
        self.pane_cap = self.max_events // self.k
        self.watermark = -math.inf
        self.n_subsampled = 0  # accepted events not retained by a pane reservoir, ever
        self._panes: dict[int, Pane] = {}
        self._heap: list[int] = []  # open pane indices; evictions always take the smallest
        self._next_end: int | None = None  # smallest window end (pane index) not yet closed

    @property
    def held(self) -> int:
        """Accepted events held in panes not yet fully emitted (counted once per pane)."""
        return sum(q.seen for q in self._panes.values())

    pending_events = held

    def append(self, rows: Rows) -> Iterator[TimeWindowView]:
        if len(rows):
            self._add(rows)
        return iter(())

    def advance(self, watermark_ts: float) -> Iterator[TimeWindowView]:
        """Raise the watermark to ``watermark_ts`` (never lowers it); yield closed windows."""
        if math.isnan(watermark_ts):
            raise ValueError("watermark_ts must not be NaN")
        self.watermark = max(self.watermark, float(watermark_ts))
        return iter(self._close())

    def _add(self, rows: Rows) -> None:
        panes = np.floor(rows.ts / self.step_s).astype(np.int64)
        order = np.argsort(panes, kind="stable")  # stable: arrival order inside a pane
        sorted_panes = panes[order]
        starts = np.flatnonzero(np.r_[True, sorted_panes[1:] != sorted_panes[:-1]])
        ends = np.r_[starts[1:], order.size]
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            p = int(sorted_panes[a])
            pane = self._panes.get(p)
            if pane is None:
                pane = Pane(self.n_num, self.n_cat, min(self.pane_cap, max(16, b - a)))
                self._panes[p] = pane
                heapq.heappush(self._heap, p)
            self.n_subsampled += pane.add(
                rows.take(order[a:b]), self.pane_cap, pane_key(self.seed, p)
            )

    def _close(self) -> list[TimeWindowView]:
        # Windows ending at pane boundary e <= floor(watermark / step) are complete.
        q = self.watermark / self.step_s  # ±inf when flushed (or overflowing): compare as is
        limit: float | int = math.floor(q) if math.isfinite(q) else q
        out: list[TimeWindowView] = []
        while self._panes:
            first = self._heap[0] + 1  # first window holding the oldest open pane
            e = first if self._next_end is None else max(self._next_end, first)
            if e > limit:
                break
            out.append(self._view(e))
            self._next_end = e + 1
            while self._heap and self._heap[0] <= e - self.k:
                del self._panes[heapq.heappop(self._heap)]
        return out

    def _view(self, e: int) -> TimeWindowView:
        panes = [self._panes[p] for p in range(e - self.k, e) if p in self._panes]
        return TimeWindowView(
            Rows.concat([q.rows() for q in panes]).take(slice(None)),
            events_seen=sum(q.seen for q in panes),
            window_start_ts=(e - self.k) * self.step_s,
            window_end_ts=e * self.step_s,
            pos_range=(min(q.pos_min for q in panes), max(q.pos_max for q in panes)),
            ts_range=(min(q.ts_min for q in panes), max(q.ts_max for q in panes)),
        )

    # ------------------------------------------------------------------ state

    def snapshot(self) -> dict[str, npt.NDArray[Any]]:
        """Plain arrays (no pickle). Pane rows are concatenated in ascending pane order."""
        keys = sorted(self._panes)
        panes = [self._panes[p] for p in keys]
        meta_f = np.array([self.size_s, self.step_s, self.watermark], dtype=np.float64)
        meta_i = np.array(
            [
                self.n_num,
                self.n_cat,
                self.max_events,
                self.seed,
                0 if self._next_end is None else 1,
                0 if self._next_end is None else self._next_end,
                self.n_subsampled,
            ],
            dtype=np.int64,
        )
        rows = (
            Rows.concat([q.rows() for q in panes]) if panes else Rows.empty(self.n_num, self.n_cat)
        )
        return {
            "meta_f": meta_f,
            "meta_i": meta_i,
            "pane_index": np.array(keys, dtype=np.int64),
            "pane_rows": np.array([q.n for q in panes], dtype=np.int64),
            "pane_seen": np.array([q.seen for q in panes], dtype=np.int64),
            "pane_pos": np.array([(q.pos_min, q.pos_max) for q in panes], dtype=np.int64).reshape(
                -1, 2
            ),
            "pane_ts": np.array([(q.ts_min, q.ts_max) for q in panes], dtype=np.float64).reshape(
                -1, 2
            ),
            **{name: np.ascontiguousarray(getattr(rows, name)) for name in COLS},
        }

    @classmethod
    def restore(cls, arrays: dict[str, npt.NDArray[Any]]) -> EventTimeWindow:
        size_s, step_s, watermark = (float(x) for x in arrays["meta_f"])
        n_num, n_cat, max_events, seed, has_next, next_end, n_sub = (
            int(x) for x in arrays["meta_i"]
        )
        w = cls(size_s, step_s, n_num, n_cat, max_events=max_events, seed=seed)
        w.watermark = watermark
        w._next_end = next_end if has_next else None
        w.n_subsampled = n_sub
        start = 0
        for i, p in enumerate(arrays["pane_index"].tolist()):
            n = int(arrays["pane_rows"][i])
            q = Pane(n_num, n_cat, max(n, 1))
            s = slice(start, start + n)
            for name in COLS:
                getattr(q, name)[:n] = arrays[name][s]
            q.n, q.seen = n, int(arrays["pane_seen"][i])
            q.pos_min, q.pos_max = (int(x) for x in arrays["pane_pos"][i])
            q.ts_min, q.ts_max = (float(x) for x in arrays["pane_ts"][i])
            w._panes[int(p)] = q
            w._heap.append(int(p))  # ascending order is a valid heap
            start += n
        return w


class TimeWindow:
    """One stream's clock and window together (a single source partition): ``append`` finds
    late and invalid rows, stores the rest and returns the windows the batch closed."""

    def __init__(
        self,
        size_s: float,
        step_s: float,
        allowed_lateness_s: float,
        n_num: int,
        n_cat: int,
        max_events: int = 100_000,
        seed: int = 0,
    ) -> None:
        if not (math.isfinite(allowed_lateness_s) and allowed_lateness_s >= 0):
            raise ValueError(
                f"allowed_lateness_s must be a finite number ≥ 0, got {allowed_lateness_s!r}"
            )
        self.window = EventTimeWindow(size_s, step_s, n_num, n_cat, max_events, seed)
        self.clock = EventClock(allowed_lateness_s, idle_s=math.inf)
        self.n_late = 0
        self.n_invalid = 0

    @property
    def watermark(self) -> float:
        return self.clock.watermark

    @property
    def pending_events(self) -> int:
        return self.window.held

    @property
    def n_subsampled(self) -> int:
        return self.window.n_subsampled

    def append(
        self,
        num: npt.NDArray[np.float64],
        cat: npt.NDArray[np.int32],
        pos: npt.NDArray[np.int64],
        ts: npt.NDArray[np.float64],
    ) -> AppendResult:
        ts = np.asarray(ts, dtype=np.float64)
        n = ts.shape[0]
        rows = Rows(num, cat, pos, ts, np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=np.int32))
        seen = self.clock.observe(ts, rows.part, 0.0)
        late = np.flatnonzero(seen.late)
        invalid = np.flatnonzero(seen.invalid)
        acc = np.flatnonzero(~(seen.late | seen.invalid))
        self.n_late += int(late.size)
        self.n_invalid += int(invalid.size)
        self.window.append(rows.take(acc))
        return AppendResult(
            list(self.window.advance(self.clock.watermark)), late, invalid, int(acc.size)
        )

    def advance(self, watermark_ts: float) -> list[TimeWindowView]:
        self.clock.raise_to(watermark_ts)
        return list(self.window.advance(self.clock.watermark))

    def snapshot(self) -> dict[str, npt.NDArray[Any]]:
        clock = np.array(
            [
                self.clock.allowed_lateness_s,
                self.clock.watermark,
                self.clock.max_ts.get(0, -math.inf),
                self.n_late,
                self.n_invalid,
            ],
            dtype=np.float64,
        )
        return {**self.window.snapshot(), "clock": clock}

    @classmethod
    def restore(cls, arrays: dict[str, npt.NDArray[Any]]) -> TimeWindow:
        lateness, wm, max_ts, n_late, n_inv = (float(x) for x in arrays["clock"])
        inner = EventTimeWindow.restore(arrays)
        w = cls(inner.size_s, inner.step_s, lateness, inner.n_num, inner.n_cat)
        w.window = inner
        w.clock.watermark = wm
        if max_ts > -math.inf:
            w.clock.max_ts[0] = max_ts
        w.n_late, w.n_invalid = int(n_late), int(n_inv)
        return w

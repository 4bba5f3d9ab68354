"""Event-time windows (tumbling and sliding) with a watermark and allowed lateness.

Model
-----
Time is cut into *panes* of ``step_s`` seconds aligned to the epoch: an event with time ``ts``
(epoch seconds) belongs to pane ``p = floor(ts / step_s)``, which covers
``[p * step_s, (p + 1) * step_s)``. The window that *ends* at pane boundary ``e`` covers the
``k = size_s / step_s`` panes ``e - k … e - 1``, i.e. ``[e * step_s - size_s, e * step_s)``.
``step_s == size_s`` gives tumbling windows; ``step_s < size_s`` sliding windows in which
every event lies in exactly ``k`` windows.

The *watermark* is ``max(max event time seen − allowed_lateness_s, largest value given to
advance())``; it never goes down. A window is emitted once the watermark reaches its end
(measured in panes: ``e <= floor(watermark / step_s)``, which is monotone in the watermark
even under floating-point rounding).

Late events: an event is *late* iff its time is below the watermark at its arrival, where
events inside one micro-batch arrive in row order (the watermark moves between rows exactly as
if they had been appended one at a time). Late events are not added; :meth:`TimeWindow.append`
returns their row indices so the caller counts them as rejected (``late``) and dead-letters
them. Consequently an accepted event is part of *every* window that contains it (none of them
can have been emitted yet), and emissions do not depend on how the stream is cut into
micro-batches. (This is slightly stricter than "its pane has closed": an event below the
watermark but inside a still-open pane is late too, so lateness depends on
``allowed_lateness_s`` only, not on ``step_s``.)

Events with a non-finite time (or one so large that its pane index would not fit in int64)
are not added either and are returned separately (``invalid_ts``); the caller decides.

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
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

_INT64_PANES = float(2**62)  # |ts / step_s| must stay below this for the pane index to fit
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@runtime_checkable
class WindowView(Protocol):
    """What evaluation code reads from a window (a CountWindow or an emitted time window)."""

    @property
    def filled(self) -> int: ...

    def num_column(self, j: int) -> npt.NDArray[np.float64]: ...

    def cat_column(self, j: int) -> npt.NDArray[np.int32]: ...

    def span(self) -> dict[str, Any]: ...


class TimeWindowView:
    """One emitted event-time window: a copy of its rows plus its boundaries."""

    __slots__ = (
        "num",
        "cat",
        "pos",
        "ts",
        "filled",
        "events_seen",
        "window_start_ts",
        "window_end_ts",
        "_pos_range",
        "_ts_range",
    )

    def __init__(
        self,
        num: npt.NDArray[np.float64],
        cat: npt.NDArray[np.int32],
        pos: npt.NDArray[np.int64],
        ts: npt.NDArray[np.float64],
        events_seen: int,
        window_start_ts: float,
        window_end_ts: float,
        pos_range: tuple[int, int],
        ts_range: tuple[float, float],
    ) -> None:
        self.num = num
        self.cat = cat
        self.pos = pos
        self.ts = ts
        self.filled = int(pos.shape[0])
        self.events_seen = events_seen
        self.window_start_ts = window_start_ts
        self.window_end_ts = window_end_ts
        self._pos_range = pos_range
        self._ts_range = ts_range

    def num_column(self, j: int) -> npt.NDArray[np.float64]:
        return self.num[:, j]

    def cat_column(self, j: int) -> npt.NDArray[np.int32]:
        return self.cat[:, j]

    def span(self) -> dict[str, Any]:
        """Positions and event times covered (over all events seen, sampled or not).

        ``events`` is the number of rows evaluated (``filled``), as for count windows; it is
        smaller than ``events_seen`` only when the window was subsampled.
        """
        return {
            "start_position": self._pos_range[0],
            "end_position": self._pos_range[1],
            "events": self.filled,
            "start_ts": self._ts_range[0],
            "end_ts": self._ts_range[1],
            "window_start_ts": self.window_start_ts,
            "window_end_ts": self.window_end_ts,
        }


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


class _Pane:
    """Rows of one pane in arrays that grow by doubling up to the pane cap."""

    __slots__ = ("num", "cat", "pos", "ts", "n", "seen", "pos_min", "pos_max", "ts_min", "ts_max")

    def __init__(self, n_num: int, n_cat: int, capacity: int) -> None:
        self.num = np.empty((capacity, n_num), dtype=np.float64)
        self.cat = np.empty((capacity, n_cat), dtype=np.int32)
        self.pos = np.empty(capacity, dtype=np.int64)
        self.ts = np.empty(capacity, dtype=np.float64)
        self.n = 0  # rows held
        self.seen = 0  # events accepted into the pane (≥ n once sampling starts)
        self.pos_min = 0
        self.pos_max = 0
        self.ts_min = math.inf
        self.ts_max = -math.inf

    def _grow(self, need: int, cap: int) -> None:
        size = self.pos.shape[0]
        if need <= size:
            return
        new = min(cap, max(need, 2 * size))
        for name in ("num", "cat", "pos", "ts"):
            old = getattr(self, name)
            arr = np.empty((new, *old.shape[1:]), dtype=old.dtype)
            arr[: self.n] = old[: self.n]
            setattr(self, name, arr)

    def add(
        self,
        num: npt.NDArray[np.float64],
        cat: npt.NDArray[np.int32],
        pos: npt.NDArray[np.int64],
        ts: npt.NDArray[np.float64],
        cap: int,
        key: np.uint64,
    ) -> int:
        """Add rows in arrival order; return how many events were not retained."""
        m = pos.shape[0]
        if self.seen == 0:
            self.pos_min, self.pos_max = int(pos.min()), int(pos.max())
        else:
            self.pos_min = min(self.pos_min, int(pos.min()))
            self.pos_max = max(self.pos_max, int(pos.max()))
        self.ts_min = min(self.ts_min, float(ts.min()))
        self.ts_max = max(self.ts_max, float(ts.max()))
        take = min(m, cap - self.n)  # while n < cap no event was ever dropped (seen == n)
        if take > 0:
            self._grow(self.n + take, cap)
            s = slice(self.n, self.n + take)
            self.num[s], self.cat[s], self.pos[s], self.ts[s] = (
                num[:take],
                cat[:take],
                pos[:take],
                ts[:take],
            )
            self.n += take
        rest = m - take
        if rest > 0:
            # Algorithm R: the pane's t-th event (1-based, t > cap) replaces slot j ~ U[0, t)
            # if j < cap. j is a hash of (seed, pane, t), so it is independent of batching.
            t = np.arange(self.seen + take + 1, self.seen + m + 1, dtype=np.uint64)
            j = _mix(t ^ key) % t
            hit = np.flatnonzero(j < np.uint64(cap))
            if hit.size:
                slots = j[hit].astype(np.int64)
                rows = take + hit
                # Sequential semantics: the last event aimed at a slot wins.
                u, first_rev = np.unique(slots[::-1], return_index=True)
                rows = rows[::-1][first_rev]
                self.num[u], self.cat[u], self.pos[u], self.ts[u] = (
                    num[rows],
                    cat[rows],
                    pos[rows],
                    ts[rows],
                )
        self.seen += m
        return int(rest)


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """SplitMix64 finaliser (wrapping uint64 array arithmetic)."""
    x = x + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * _MIX1
    x = (x ^ (x >> np.uint64(27))) * _MIX2
    return x ^ (x >> np.uint64(31))


def _pane_key(seed: int, pane: int) -> np.uint64:
    a = np.array([seed, pane], dtype=np.int64).view(np.uint64)
    return np.uint64(_mix(_mix(a[:1]) ^ a[1:])[0])


class TimeWindow:
    """Tumbling / sliding event-time windows for one (monitor, model_version).

    ``append`` takes a micro-batch (same arrays as :meth:`CountWindow.append`) and returns an
    :class:`AppendResult`; ``advance`` pushes the watermark (e.g. wall clock minus a grace
    period for a version that stopped receiving events; ``advance(math.inf)`` flushes).
    """

    __slots__ = (
        "size_s",
        "step_s",
        "allowed_lateness_s",
        "n_num",
        "n_cat",
        "max_events",
        "seed",
        "k",
        "pane_cap",
        "watermark",
        "max_ts",
        "n_late",
        "n_invalid",
        "n_subsampled",
        "_panes",
        "_heap",
        "_next_end",
    )

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
        for name, v in (("size_s", size_s), ("step_s", step_s)):
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive finite number of seconds, got {v!r}")
        if not (math.isfinite(allowed_lateness_s) and allowed_lateness_s >= 0):
            raise ValueError(
                f"allowed_lateness_s must be a finite number ≥ 0, got {allowed_lateness_s!r}"
            )
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
        self.allowed_lateness_s = float(allowed_lateness_s)
        self.n_num = n_num
        self.n_cat = n_cat
        self.max_events = int(max_events)
        self.seed = int(seed)
        self.k = int(k)
        self.pane_cap = self.max_events // self.k
        self.watermark = -math.inf
        self.max_ts = -math.inf
        self.n_late = 0  # events reported late, ever
        self.n_invalid = 0  # events reported with an invalid time, ever
        self.n_subsampled = 0  # accepted events not retained by a pane reservoir, ever
        self._panes: dict[int, _Pane] = {}
        self._heap: list[int] = []  # open pane indices; evictions always take the smallest
        self._next_end: int | None = None  # smallest window end (pane index) not yet closed

    # ------------------------------------------------------------------ input

    def append(
        self,
        num: npt.NDArray[np.float64],
        cat: npt.NDArray[np.int32],
        pos: npt.NDArray[np.int64],
        ts: npt.NDArray[np.float64],
    ) -> AppendResult:
        """Add a micro-batch; return the windows it closed and the rows it did not accept."""
        ts = np.asarray(ts, dtype=np.float64)
        n = ts.shape[0]
        if n == 0:
            empty = np.empty(0, dtype=np.intp)
            return AppendResult([], empty, empty.copy(), 0)
        valid = np.isfinite(ts)
        valid[valid] = np.abs(ts[valid]) < _INT64_PANES * self.step_s
        # Watermark before each row, as if rows arrived one at a time.
        seen_max = np.maximum.accumulate(np.where(valid, ts, -np.inf))
        prev_max = np.empty(n, dtype=np.float64)
        prev_max[0] = self.max_ts
        np.maximum(seen_max[:-1], self.max_ts, out=prev_max[1:])
        wm_before = np.maximum(prev_max - self.allowed_lateness_s, self.watermark)
        late_mask = valid & (ts < wm_before)
        acc = np.flatnonzero(valid & ~late_mask)
        late = np.flatnonzero(late_mask)
        invalid = np.flatnonzero(~valid)
        self.n_late += int(late.size)
        self.n_invalid += int(invalid.size)
        if seen_max[-1] > self.max_ts:
            self.max_ts = float(seen_max[-1])
        self.watermark = max(self.watermark, self.max_ts - self.allowed_lateness_s)
        if acc.size:
            self._add(num, cat, pos, ts, acc)
        return AppendResult(self._close(), late, invalid, int(acc.size))

    def advance(self, watermark_ts: float) -> list[TimeWindowView]:
        """Raise the watermark to ``watermark_ts`` (never lowers it); return closed windows."""
        if math.isnan(watermark_ts):
            raise ValueError("watermark_ts must not be NaN")
        self.watermark = max(self.watermark, float(watermark_ts))
        return self._close()

    def _add(
        self,
        num: npt.NDArray[np.float64],
        cat: npt.NDArray[np.int32],
        pos: npt.NDArray[np.int64],
        ts: npt.NDArray[np.float64],
        acc: npt.NDArray[np.intp],
    ) -> None:
        panes = np.floor(ts[acc] / self.step_s).astype(np.int64)
        order = np.argsort(panes, kind="stable")  # stable: arrival order inside a pane
        rows = acc[order]
        sorted_panes = panes[order]
        starts = np.flatnonzero(np.r_[True, sorted_panes[1:] != sorted_panes[:-1]])
        ends = np.r_[starts[1:], rows.size]
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            p = int(sorted_panes[a])
            r = rows[a:b]
            pane = self._panes.get(p)
            if pane is None:
                pane = _Pane(self.n_num, self.n_cat, min(self.pane_cap, max(16, b - a)))
                self._panes[p] = pane
                heapq.heappush(self._heap, p)
            self.n_subsampled += pane.add(
                num[r], cat[r], pos[r], ts[r], self.pane_cap, _pane_key(self.seed, p)
            )

    # ------------------------------------------------------------------ output

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
            np.concatenate([q.num[: q.n] for q in panes]),
            np.concatenate([q.cat[: q.n] for q in panes]),
            np.concatenate([q.pos[: q.n] for q in panes]),
            np.concatenate([q.ts[: q.n] for q in panes]),
            events_seen=sum(q.seen for q in panes),
            window_start_ts=(e - self.k) * self.step_s,
            window_end_ts=e * self.step_s,
            pos_range=(min(q.pos_min for q in panes), max(q.pos_max for q in panes)),
            ts_range=(min(q.ts_min for q in panes), max(q.ts_max for q in panes)),
        )

    @property
    def pending_events(self) -> int:
        """Accepted events held in panes not yet fully emitted (counted once per pane)."""
        return sum(q.seen for q in self._panes.values())

    # ------------------------------------------------------------------ state

    def snapshot(self) -> dict[str, npt.NDArray[Any]]:
        """Plain arrays (no pickle). Pane rows are concatenated in ascending pane order."""
        keys = sorted(self._panes)
        panes = [self._panes[p] for p in keys]
        meta_f = np.array(
            [self.size_s, self.step_s, self.allowed_lateness_s, self.watermark, self.max_ts],
            dtype=np.float64,
        )
        meta_i = np.array(
            [
                self.n_num,
                self.n_cat,
                self.max_events,
                self.seed,
                0 if self._next_end is None else 1,
                0 if self._next_end is None else self._next_end,
                self.n_late,
                self.n_invalid,
                self.n_subsampled,
            ],
            dtype=np.int64,
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
            "num": _cat_rows([q.num[: q.n] for q in panes], (0, self.n_num), np.float64),
            "cat": _cat_rows([q.cat[: q.n] for q in panes], (0, self.n_cat), np.int32),
            "pos": _cat_rows([q.pos[: q.n] for q in panes], (0,), np.int64),
            "ts": _cat_rows([q.ts[: q.n] for q in panes], (0,), np.float64),
        }

    @classmethod
    def restore(cls, arrays: dict[str, npt.NDArray[Any]]) -> TimeWindow:
        size_s, step_s, lateness, watermark, max_ts = (float(x) for x in arrays["meta_f"])
        n_num, n_cat, max_events, seed, has_next, next_end, n_late, n_inv, n_sub = (
            int(x) for x in arrays["meta_i"]
        )
        w = cls(size_s, step_s, lateness, n_num, n_cat, max_events=max_events, seed=seed)
        w.watermark, w.max_ts = watermark, max_ts
        w._next_end = next_end if has_next else None
        w.n_late, w.n_invalid, w.n_subsampled = n_late, n_inv, n_sub
        start = 0
        for i, p in enumerate(arrays["pane_index"].tolist()):
            rows = int(arrays["pane_rows"][i])
            q = _Pane(n_num, n_cat, max(rows, 1))
            s = slice(start, start + rows)
            q.num[:rows], q.cat[:rows] = arrays["num"][s], arrays["cat"][s]
            q.pos[:rows], q.ts[:rows] = arrays["pos"][s], arrays["ts"][s]
            q.n, q.seen = rows, int(arrays["pane_seen"][i])
            q.pos_min, q.pos_max = (int(x) for x in arrays["pane_pos"][i])
            q.ts_min, q.ts_max = (float(x) for x in arrays["pane_ts"][i])
            w._panes[int(p)] = q
            w._heap.append(int(p))  # ascending order is a valid heap
            start += rows
        return w


def _cat_rows(
    parts: list[npt.NDArray[Any]], empty: tuple[int, ...], dtype: type
) -> npt.NDArray[Any]:
    return np.concatenate(parts) if parts else np.empty(empty, dtype=dtype)

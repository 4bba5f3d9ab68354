"""Event time of one monitor's merged stream: the watermark, and which rows are late.

Events reach a monitor from several source partitions, each roughly in event-time order but
at its own pace (a consumer catching up reads one partition ahead of another). The watermark
is therefore the *minimum* over the partitions that feed the monitor of the newest event time
each has delivered, minus ``allowed_lateness_s``, and it never goes down. A row is *late* iff
its time is below the watermark at its arrival, where rows arrive in position order and the
watermark moves between rows exactly as if they were observed one at a time — so lateness
does not depend on how the stream is cut into batches. With one partition this is the newest
event time seen minus the allowed lateness.

A partition that has delivered nothing to the monitor for ``idle_s`` seconds of wall time is
*idle* and stops holding the watermark back (it rejoins with its next row): a topic keyed by
model leaves most partitions without a given model's events, and a quiet partition must not
stop every verdict. Partitions the runtime :meth:`registers <EventClock.register>` (assigned
to the process) hold the watermark from their registration until they deliver or go idle,
which keeps a partition whose backlog has not been fetched yet from having its rows called
late.

Rows with a non-finite time (or one too large for a pane index) are *invalid*; the caller
rejects them. Rows more than ``max_future_s`` ahead of the wall clock are invalid too: one
event dated year 9000 would otherwise move the watermark past every later event for good.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

TS_LIMIT = 2.0**52  # |ts| beyond this cannot be a pane index of any window (see time.py)


@dataclass(frozen=True, slots=True)
class Observed:
    """One batch through the clock: ``late`` / ``invalid`` row masks, and the watermark after
    each row (monotone; a window ending at ``e`` closed at the first row where it is ≥ e)."""

    late: npt.NDArray[np.bool_]
    invalid: npt.NDArray[np.bool_]
    watermark_after: npt.NDArray[np.float64]


class EventClock:
    __slots__ = ("allowed_lateness_s", "idle_s", "max_future_s", "max_ts", "last_seen", "watermark")

    def __init__(
        self, allowed_lateness_s: float, idle_s: float, max_future_s: float | None = None
    ) -> None:
        self.allowed_lateness_s = float(allowed_lateness_s)
        self.idle_s = float(idle_s)
        self.max_future_s = max_future_s
        self.max_ts: dict[int, float] = {}  # partition code → newest event time delivered
        self.last_seen: dict[int, float] = {}  # partition code → wall time of its last row
        self.watermark = -math.inf

    def register(self, code: int, now: float) -> None:
        """A partition that will feed the monitor (assigned to this process)."""
        self.max_ts.setdefault(code, -math.inf)
        self.last_seen[code] = now

    def forget(self, code: int) -> None:
        self.max_ts.pop(code, None)
        self.last_seen.pop(code, None)

    def _active(self, now: float, extra: set[int]) -> list[int]:
        return sorted(
            c for c in self.max_ts if c in extra or now - self.last_seen.get(c, now) <= self.idle_s
        )

    def observe(
        self, ts: npt.NDArray[np.float64], part: npt.NDArray[np.int32], now: float
    ) -> Observed:
        """Classify a batch of rows (in position order) and move the clock past them."""
        n = int(ts.shape[0])
        valid = np.isfinite(ts)
        valid[valid] = np.abs(ts[valid]) < TS_LIMIT
        if self.max_future_s is not None:
            valid &= ~(ts > now + self.max_future_s)
        if n == 0:
            e = np.zeros(0, dtype=np.bool_)
            return Observed(e, e.copy(), np.zeros(0, dtype=np.float64))
        tv = np.where(valid, ts, -np.inf)
        here = {int(c) for c in np.unique(part).tolist()}
        for c in here:
            self.max_ts.setdefault(c, -math.inf)
        active = self._active(now, here)
        prev = np.array([self.max_ts[c] for c in active], dtype=np.float64)
        after = np.empty((n, len(active)), dtype=np.float64)
        for j, c in enumerate(active):
            col = np.where(part == c, tv, -np.inf)
            col[0] = max(col[0], prev[j])
            np.maximum.accumulate(col, out=after[:, j])
        min_after = after.min(axis=1)
        min_before = np.empty(n, dtype=np.float64)
        min_before[0] = prev.min()
        min_before[1:] = min_after[:-1]
        lateness = self.allowed_lateness_s
        wm_before = np.maximum.accumulate(np.maximum(min_before - lateness, self.watermark))
        wm_after = np.maximum.accumulate(np.maximum(min_after - lateness, self.watermark))
        late = valid & (ts < wm_before)
        for j, c in enumerate(active):
            self.max_ts[c] = float(after[-1, j])
        for c in here:
            self.last_seen[c] = now
        self.watermark = float(wm_after[-1])
        return Observed(late, ~valid, wm_after)

    def tick(self, now: float) -> float:
        """Let partitions that went idle stop holding the watermark back; the watermark."""
        active = self._active(now, set())
        if active:
            low = min(self.max_ts[c] for c in active) - self.allowed_lateness_s
            self.watermark = max(self.watermark, low)
        return self.watermark

    def raise_to(self, watermark_ts: float) -> None:
        """Move the watermark to at least ``watermark_ts`` (``inf``: end of a finite stream)."""
        if math.isnan(watermark_ts):
            raise ValueError("watermark_ts must not be NaN")
        self.watermark = max(self.watermark, float(watermark_ts))

    # ------------------------------------------------------------------ state

    def snapshot(self) -> dict[str, Any]:
        """JSON (partition codes as strings); wall times are not kept: after a restart every
        known partition counts as just seen."""
        return {
            "watermark": _num(self.watermark),
            "max_ts": {str(c): _num(v) for c, v in self.max_ts.items()},
        }

    def restore(self, d: dict[str, Any], now: float) -> None:
        self.watermark = _from_num(d.get("watermark"))
        self.max_ts = {int(c): _from_num(v) for c, v in d.get("max_ts", {}).items()}
        self.last_seen = dict.fromkeys(self.max_ts, now)


def _num(x: float) -> float | str:
    return x if math.isfinite(x) else ("inf" if x > 0 else "-inf")


def _from_num(x: Any) -> float:
    if x is None:
        return -math.inf
    return float(x)

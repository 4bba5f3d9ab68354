"""The pane of an event-time window: its rows, bounded by a stateless reservoir.

A pane keeps at most ``cap`` rows. Beyond that it is a uniform reservoir sample (Algorithm R)
of its events, where the slot drawn for the pane's ``t``-th event is a SplitMix64 hash of
``(seed, pane, t)`` — so the sample depends neither on how rows were batched nor on a
checkpoint and restore in between.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from driftd.ingest.panes import Rows

COLS = ("num", "cat", "pos", "ts", "off", "part")
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


class Pane:
    """Rows of one pane in arrays that grow by doubling up to the pane cap."""

    __slots__ = (*COLS, "n", "seen", "pos_min", "pos_max", "ts_min", "ts_max")

    def __init__(self, n_num: int, n_cat: int, capacity: int) -> None:
        self.num = np.empty((capacity, n_num), dtype=np.float64)
        self.cat = np.empty((capacity, n_cat), dtype=np.int32)
        self.pos = np.empty(capacity, dtype=np.int64)
        self.ts = np.empty(capacity, dtype=np.float64)
        self.off = np.empty(capacity, dtype=np.int64)
        self.part = np.empty(capacity, dtype=np.int32)
        self.n = 0  # rows held
        self.seen = 0  # events accepted into the pane (≥ n once sampling starts)
        self.pos_min = 0
        self.pos_max = 0
        self.ts_min = math.inf
        self.ts_max = -math.inf

    def rows(self) -> Rows:
        n = self.n
        return Rows(
            self.num[:n], self.cat[:n], self.pos[:n], self.ts[:n], self.off[:n], self.part[:n]
        )

    def _grow(self, need: int, cap: int) -> None:
        size = self.pos.shape[0]
        if need <= size:
            return
        new = min(cap, max(need, 2 * size))
        for name in COLS:
            old = getattr(self, name)
            arr = np.empty((new, *old.shape[1:]), dtype=old.dtype)
            arr[: self.n] = old[: self.n]
            setattr(self, name, arr)

    def add(self, rows: Rows, cap: int, key: np.uint64) -> int:
        """Add rows in arrival order; return how many events were not retained."""
        m = len(rows)
        pmin, pmax = int(rows.pos.min()), int(rows.pos.max())
        if self.seen == 0:
            self.pos_min, self.pos_max = pmin, pmax
        else:
            self.pos_min = min(self.pos_min, pmin)
            self.pos_max = max(self.pos_max, pmax)
        self.ts_min = min(self.ts_min, float(rows.ts.min()))
        self.ts_max = max(self.ts_max, float(rows.ts.max()))
        take = min(m, cap - self.n)  # while n < cap no event was ever dropped (seen == n)
        src: tuple[npt.NDArray[Any], ...] = (
            rows.num,
            rows.cat,
            rows.pos,
            rows.ts,
            rows.off,
            rows.part,
        )
        if take > 0:
            self._grow(self.n + take, cap)
            s = slice(self.n, self.n + take)
            for name, col in zip(COLS, src, strict=True):
                getattr(self, name)[s] = col[:take]
            self.n += take
        rest = m - take
        if rest > 0:
            # Algorithm R: the pane's t-th event (1-based, t > cap) replaces slot j ~ U[0, t)
            # if j < cap. j is a hash of (seed, pane, t), so it is independent of batching.
            t = np.arange(self.seen + take + 1, self.seen + m + 1, dtype=np.uint64)
            j = mix(t ^ key) % t
            hit = np.flatnonzero(j < np.uint64(cap))
            if hit.size:
                slots = j[hit].astype(np.int64)
                chosen = take + hit
                # Sequential semantics: the last event aimed at a slot wins.
                u, first_rev = np.unique(slots[::-1], return_index=True)
                chosen = chosen[::-1][first_rev]
                for name, col in zip(COLS, src, strict=True):
                    getattr(self, name)[u] = col[chosen]
        self.seen += m
        return int(rest)


def mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """SplitMix64 finaliser (wrapping uint64 array arithmetic)."""
    x = x + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * _MIX1
    x = (x ^ (x >> np.uint64(27))) * _MIX2
    return x ^ (x >> np.uint64(31))


def pane_key(seed: int, pane: int) -> np.uint64:
    a = np.array([seed, pane], dtype=np.int64).view(np.uint64)
    return np.uint64(mix(mix(a[:1]) ^ a[1:])[0])

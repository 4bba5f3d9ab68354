"""A warmup reference in the making: the first N accepted events of one (monitor, version).

Numeric columns keep a uniform reservoir of raw rows (all of them while N ≤ ``MAX_RAW``, the
profile's rule) beside exact running moments (count, missing, mean, M2, min, max, merged per
micro-batch with Chan's formula); categorical columns keep exact counts per code (codes of the
monitor's growing category dictionary, see :class:`driftd.ingest.decode.OpenCodes`) and the missing
count. The reservoir's replacement decisions come from a hash of (seed, row index), not from
a random generator's state, so the result is the same however the rows are batched and
whether or not the builder went through a checkpoint on the way. The reservoir keeps whole
rows — the categorical codes of a sampled row beside its numeric values — so statistics of
several features at once (``multivariate:``) can be fitted on it (:meth:`rows`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from driftd.reference.features import (
    MAX_RAW,
    CategoricalReference,
    NumericReference,
    build_numeric,
    numeric_from_sample,
)

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


class WarmupBuilder:
    __slots__ = (
        "need",
        "seen",
        "cap",
        "seed",
        "sample",
        "cat_sample",
        "count",
        "missing",
        "mean",
        "m2",
        "lo",
        "hi",
        "cat_counts",
        "cat_missing",
    )

    def __init__(
        self, need: int, n_num: int, n_cat: int, *, max_raw: int = MAX_RAW, seed: int = 0
    ) -> None:
        self.need = need
        self.seen = 0  # rows folded in
        self.cap = min(need, max_raw)
        self.seed = seed
        self.sample = np.full((self.cap, n_num), np.nan, dtype=np.float64)
        self.cat_sample = np.full((self.cap, n_cat), -1, dtype=np.int32)
        self.count = np.zeros(n_num, dtype=np.int64)
        self.missing = np.zeros(n_num, dtype=np.int64)
        self.mean = np.zeros(n_num, dtype=np.float64)
        self.m2 = np.zeros(n_num, dtype=np.float64)
        self.lo = np.full(n_num, np.inf, dtype=np.float64)
        self.hi = np.full(n_num, -np.inf, dtype=np.float64)
        self.cat_counts = [np.zeros(0, dtype=np.int64) for _ in range(n_cat)]
        self.cat_missing = np.zeros(n_cat, dtype=np.int64)

    @property
    def done(self) -> bool:
        return self.seen >= self.need

    def fold(self, num: npt.NDArray[np.float64], cat: npt.NDArray[np.int32]) -> int:
        """Fold in up to the rows still needed; return how many were taken."""
        take = min(int(num.shape[0]), self.need - self.seen)
        if take <= 0:
            return 0
        num, cat = num[:take], cat[:take]
        self._reservoir(num, cat)
        for j in range(num.shape[1]):
            self._moments(j, num[:, j])
        for j in range(cat.shape[1]):
            codes = cat[:, j]
            present = codes[codes >= 0]
            self.cat_missing[j] += codes.shape[0] - present.shape[0]
            if present.size:
                c = np.bincount(present)
                old = self.cat_counts[j]
                if c.shape[0] > old.shape[0]:
                    c[: old.shape[0]] += old
                    self.cat_counts[j] = c.astype(np.int64)
                else:
                    old[: c.shape[0]] += c
        self.seen += take
        return take

    def _reservoir(self, rows: npt.NDArray[np.float64], cats: npt.NDArray[np.int32]) -> None:
        n, t0, cap = rows.shape[0], self.seen, self.cap
        direct = max(0, min(n, cap - t0))  # rows that fill the reservoir
        if direct:
            self.sample[t0 : t0 + direct] = rows[:direct]
            self.cat_sample[t0 : t0 + direct] = cats[:direct]
        if direct == n:
            return
        # Algorithm R: row t (0-based) replaces slot j = U·(t+1) when j < cap.
        t = np.arange(t0 + direct, t0 + n, dtype=np.uint64)
        u = _splitmix64(t ^ np.uint64(self.seed * 0x100000001B3 & 0xFFFFFFFFFFFFFFFF))
        j = (u >> np.uint64(11)).astype(np.float64) * 2.0**-53 * (t + 1).astype(np.float64)
        j = j.astype(np.int64)
        keep = j < cap
        # Fancy assignment with repeated slots keeps the last row: the sequential outcome.
        self.sample[j[keep]] = rows[direct:][keep]
        self.cat_sample[j[keep]] = cats[direct:][keep]

    def _moments(self, j: int, col: npt.NDArray[np.float64]) -> None:
        x = col[np.isfinite(col)]
        self.missing[j] += col.shape[0] - x.shape[0]
        nb = x.shape[0]
        if not nb:
            return
        mb = float(x.mean())
        m2b = float(((x - mb) ** 2).sum())
        na = int(self.count[j])
        n = na + nb
        delta = mb - self.mean[j]
        self.mean[j] += delta * nb / n
        self.m2[j] += m2b + delta * delta * na * nb / n
        self.count[j] = n
        self.lo[j] = min(self.lo[j], float(x.min()))
        self.hi[j] = max(self.hi[j], float(x.max()))

    # ------------------------------------------------------------------ results

    def rows(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int32]]:
        """The sampled rows (all of them while N ≤ the reservoir): numeric values and
        category codes (the monitor dictionary's), in the window's column layout."""
        held = min(self.seen, self.cap)
        return self.sample[:held], self.cat_sample[:held]

    def numeric(self, j: int) -> NumericReference:
        held = min(self.seen, self.cap)
        col = self.sample[:held, j]
        if self.seen <= self.cap:  # every value held: exactly what a profile build computes
            return build_numeric(col)
        finite = col[np.isfinite(col)]
        n = int(self.count[j])
        return numeric_from_sample(
            finite,
            count=n,
            missing=int(self.missing[j]),
            mean=float(self.mean[j]) if n else 0.0,
            std=float(np.sqrt(self.m2[j] / n)) if n else 0.0,
            lo=float(self.lo[j]) if n else 0.0,
            hi=float(self.hi[j]) if n else 0.0,
        )

    def categorical(self, j: int, labels: list[str]) -> tuple[CategoricalReference, int]:
        """The reference of categorical column ``j`` (categories in label order, ``labels``
        naming the codes) and how many values were beyond the dictionary's bound."""
        counts = self.cat_counts[j]
        known = counts[: len(labels)]
        # categories in label order: the reference does not depend on how codes were numbered
        idx = np.array(
            sorted(np.flatnonzero(known > 0).tolist(), key=labels.__getitem__), dtype=np.int64
        )
        overflow = int(counts[len(labels) :].sum())
        ref = CategoricalReference(
            count=int(known.sum()),
            missing=int(self.cat_missing[j]),
            categories=tuple(labels[i] for i in idx),
            counts=known[idx].astype(np.int64),
        )
        return ref, overflow

    # ------------------------------------------------------------------ state

    def snapshot(self) -> dict[str, npt.NDArray[Any]]:
        held = min(self.seen, self.cap)
        out: dict[str, npt.NDArray[Any]] = {
            "meta": np.array([self.need, self.seen, self.cap, self.seed], dtype=np.int64),
            "sample": self.sample[:held].copy(),
            "cat_sample": self.cat_sample[:held].copy(),
            "count": self.count,
            "missing": self.missing,
            "mean": self.mean,
            "m2": self.m2,
            "lo": self.lo,
            "hi": self.hi,
            "cat_missing": self.cat_missing,
        }
        for j, c in enumerate(self.cat_counts):
            out[f"cat{j}"] = c
        return out

    @classmethod
    def restore(
        cls,
        arrays: dict[str, npt.NDArray[Any]],
        recode: list[npt.NDArray[np.int64]] | None = None,
    ) -> WarmupBuilder:
        """Rebuild from :meth:`snapshot`; ``recode[j]`` maps saved category codes of column
        ``j`` to the current dictionary's (the dictionary may differ after a rebalance)."""
        need, seen, cap, seed = (int(x) for x in arrays["meta"])
        n_num = int(arrays["count"].shape[0])
        n_cat = int(arrays["cat_missing"].shape[0])
        b = cls(need, n_num, n_cat, max_raw=cap, seed=seed)
        b.cap = cap
        held = arrays["sample"].shape[0]
        b.sample[:held] = arrays["sample"]
        if "cat_sample" in arrays:  # not in checkpoints of driftd before multivariate drift
            codes = np.asarray(arrays["cat_sample"], dtype=np.int64)
            if recode is not None:
                for j in range(n_cat):  # recode[j][-1] keeps the missing code -1
                    codes[:, j] = recode[j][codes[:, j]]
            b.cat_sample[:held] = codes
        b.seen = seen
        for k in ("count", "missing", "mean", "m2", "lo", "hi", "cat_missing"):
            getattr(b, k)[:] = arrays[k]
        for j in range(n_cat):
            c = np.asarray(arrays[f"cat{j}"], dtype=np.int64)
            if recode is not None and c.size:
                lut = recode[j]
                target = lut[np.arange(c.shape[0])]
                out = np.zeros(int(target.max()) + 1, dtype=np.int64)
                np.add.at(out, target, c)
                c = out
            b.cat_counts[j] = c
        return b

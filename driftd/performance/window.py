"""Count windows of labelled predictions, one per (monitor, model version).

A ring of the last ``size`` joined pairs (score or prediction, label or target, predicted
label, prediction time, label time). Order inside the ring does not matter to the metrics, so
appends are slice copies and nothing is shifted. ``total`` counts every pair ever appended,
which is what ``driftd_labelled_events_total`` exports.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from driftd.performance.compare import Sample
from driftd.performance.join import JoinedPairs

FloatArray = npt.NDArray[np.float64]
I8Array = npt.NDArray[np.int8]

_FLOAT_COLUMNS = ("score", "label", "pred_ts", "label_ts")


class LabelledWindow:
    __slots__ = ("size", "score", "label", "pred_label", "pred_ts", "label_ts", "head", "filled",
                 "total")  # fmt: skip

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("window size must be at least 1")
        self.size = size
        self.score = np.full(size, np.nan)
        self.label = np.full(size, np.nan)
        self.pred_label = np.full(size, -1, dtype=np.int8)
        self.pred_ts = np.full(size, np.nan)
        self.label_ts = np.full(size, np.nan)
        self.head = 0  # next row to write
        self.filled = 0  # rows holding data (≤ size)
        self.total = 0  # pairs ever appended

    def __len__(self) -> int:
        return self.filled

    def append(self, pairs: JoinedPairs) -> None:
        """Append joined pairs (already selected for this window's version)."""
        n = len(pairs)
        self.total += n
        cols: list[tuple[npt.NDArray[Any], npt.NDArray[Any]]] = [
            (self.score, pairs.score),
            (self.label, pairs.label),
            (self.pred_label, pairs.pred_label),
            (self.pred_ts, pairs.pred_ts),
            (self.label_ts, pairs.label_ts),
        ]
        if n > self.size:  # only the last `size` rows can survive
            cols = [(dst, src[-self.size :]) for dst, src in cols]
            n = self.size
        first = min(n, self.size - self.head)
        h = self.head
        for dst, src in cols:
            dst[h : h + first] = src[:first]
            dst[: n - first] = src[first:n]
        self.head = (h + n) % self.size
        self.filled = min(self.size, self.filled + n)

    def sample(self) -> Sample:
        """The window's pairs for :mod:`~driftd.performance.metrics` /
        :func:`~driftd.performance.compare.compare` (views, not copies)."""
        f = self.filled
        pl = self.pred_label[:f]
        return Sample(self.score[:f], self.label[:f], pl if bool(np.any(pl >= 0)) else None)

    def span(self) -> dict[str, Any]:
        """Times covered: oldest/newest prediction time and the pair count."""
        f = self.filled
        ts = self.pred_ts[:f]
        ok = ts[np.isfinite(ts)]
        return {
            "events": int(f),
            "start_ts": float(ok.min()) if ok.size else None,
            "end_ts": float(ok.max()) if ok.size else None,
        }

    def snapshot(self) -> dict[str, npt.NDArray[Any]]:
        meta = np.array([self.size, self.head, self.filled, self.total], dtype=np.int64)
        return {
            "meta": meta,
            "score": self.score.copy(),
            "label": self.label.copy(),
            "pred_label": self.pred_label.copy(),
            "pred_ts": self.pred_ts.copy(),
            "label_ts": self.label_ts.copy(),
        }

    @classmethod
    def restore(cls, arrays: dict[str, npt.NDArray[Any]]) -> LabelledWindow:
        size, head, filled, total = (int(x) for x in arrays["meta"])
        w = cls(size)
        for name in _FLOAT_COLUMNS:
            getattr(w, name)[:] = arrays[name]
        w.pred_label[:] = arrays["pred_label"]
        w.head, w.filled, w.total = head, filled, total
        return w

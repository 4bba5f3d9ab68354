"""The two aggregate signals the monitor stage feeds to detectors, as ``(values, positions)`` pairs.

Detectors never see raw feature values (KSWIN costs ~150 µs per value): they see either the
prediction score stream thinned per micro-batch, or one drift statistic per evaluated window.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Signal = tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]

_EMPTY_F = np.empty(0, dtype=np.float64)
_EMPTY_I = np.empty(0, dtype=np.int64)


def _empty() -> Signal:
    return _EMPTY_F.copy(), _EMPTY_I.copy()


class ScoreSignal:
    """Prediction scores of one micro-batch (of one monitor and version) → detector input.

    ``mode="sample"``: the finite scores, thinned to at most ``max_per_batch`` chosen
    uniformly without replacement, kept in stream order with their own positions. The draw
    is seeded by ``(seed, first position of the batch)`` and nothing else, so it holds no
    state to checkpoint and a batch replayed with the same cut yields the same sample (a
    batch cut differently after a restart yields a different, equally uniform sample).
    Batches with at most ``max_per_batch`` finite scores pass through whole.

    ``mode="mean"``: one value per batch, the mean of its finite scores, at the batch's last
    (largest) position. Fewer, smoother values: detections lag more but false alarms from
    score noise drop; a batch without finite scores yields nothing.

    Non-finite scores (missing predictions) never reach a detector.
    """

    __slots__ = ("mode", "max_per_batch", "seed")

    def __init__(
        self, mode: Literal["sample", "mean"] = "sample", max_per_batch: int = 64, seed: int = 0
    ) -> None:
        if mode not in ("sample", "mean"):
            raise ValueError(f"score signal mode must be 'sample' or 'mean', got {mode!r}")
        if (
            isinstance(max_per_batch, bool)
            or not isinstance(max_per_batch, int)
            or max_per_batch < 1
        ):
            raise ValueError(f"max_per_batch must be an integer ≥ 1, got {max_per_batch!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an integer ≥ 0, got {seed!r}")
        self.mode = mode
        self.max_per_batch = max_per_batch
        self.seed = seed

    def __call__(self, scores: npt.NDArray[np.float64], positions: npt.NDArray[np.int64]) -> Signal:
        scores = np.asarray(scores, dtype=np.float64)
        positions = np.asarray(positions, dtype=np.int64)
        if scores.shape != positions.shape or scores.ndim != 1:
            raise ValueError(
                f"scores and positions must be 1-d arrays of one length, got shapes "
                f"{scores.shape} and {positions.shape}"
            )
        if scores.size == 0:
            return _empty()
        finite = np.isfinite(scores)
        if self.mode == "mean":
            if not finite.any():
                return _empty()
            return (
                np.array([scores[finite].mean()], dtype=np.float64),
                np.array([positions.max()], dtype=np.int64),
            )
        first = int(positions[0])
        vals, pos = scores[finite], positions[finite]
        if vals.size <= self.max_per_batch:
            return vals.copy(), pos.copy()
        rng = np.random.default_rng([self.seed, abs(first)])
        keep = np.sort(rng.choice(vals.size, size=self.max_per_batch, replace=False))
        return vals[keep], pos[keep]


class StatisticSignal:
    """One value per evaluation, read from an evaluation dict
    (``driftd.monitor.evaluate.evaluate``).

    ``source`` is ``"drift_share"``, ``"prediction"`` (the prediction test's statistic) or
    ``"feature:<name>"`` (that feature's test statistic). The value is placed at the window's
    ``end_position``. An undefined statistic (None, NaN: empty or too small window) yields
    nothing. The monitor stage should check :attr:`feature` against the monitor's features when it
    builds the monitor; an evaluation without that feature raises ``KeyError``.
    """

    __slots__ = ("source", "feature")

    def __init__(self, source: str = "drift_share") -> None:
        self.feature: str | None = None
        if source.startswith("feature:") and len(source) > len("feature:"):
            self.feature = source[len("feature:") :]
        elif source not in ("drift_share", "prediction"):
            raise ValueError(
                "statistic signal source must be 'drift_share', 'prediction' or "
                f"'feature:<name>', got {source!r}"
            )
        self.source = source

    def value(self, evaluation: Mapping[str, Any]) -> float | None:
        if self.source == "drift_share":
            v = evaluation.get("drift_share")
        elif self.source == "prediction":
            pred = evaluation.get("prediction")
            v = pred.get("statistic") if pred else None
        else:
            feats = evaluation["features"]
            if self.feature not in feats:
                raise KeyError(
                    f"evaluation has no feature {self.feature!r} for signal {self.source!r}"
                )
            v = feats[self.feature].get("statistic")
        if v is None:
            return None
        f = float(v)
        return f if np.isfinite(f) else None

    def __call__(self, evaluation: Mapping[str, Any]) -> Signal:
        v = self.value(evaluation)
        end = evaluation.get("window", {}).get("end_position")
        if v is None or end is None:
            return _empty()
        return np.array([v], dtype=np.float64), np.array([int(end)], dtype=np.int64)

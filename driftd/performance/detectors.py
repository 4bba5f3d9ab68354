"""Fast change detectors on the per-event error stream (river's ADWIN and DDM).

The windowed comparison (:mod:`driftd.performance.compare`) is the alerting signal; these
detectors are an optional early signal: they watch each labelled event's error as it is
joined and fire as soon as the error rate moves, without waiting for a window to fill.

* ``adwin`` — :class:`river.drift.ADWIN` on the error: 0/1 misclassification for classifiers,
  absolute error for regressors.
* ``ddm`` — :class:`river.drift.binary.DDM` on the 0/1 misclassification (classifiers only).

Both are fed per micro-batch from NumPy arrays (one Python call per event: river's detectors
are pure Python, a few microseconds each).

State without pickle. Both river detectors reset completely on the first update after a
detection, so their state is a pure function of the errors seen since the last detection.
:class:`ErrorStreamDetector` keeps those errors in a bounded ring (``max_replay``, the newest
kept) and :meth:`~ErrorStreamDetector.restore` rebuilds the detector by replaying them. The
rebuilt detector is *exactly* the original when no more than ``max_replay`` errors were seen
since the last detection; otherwise it has seen only the newest ``max_replay`` of them
(``snapshot()["meta"]["exact"]`` says which), which for a drift detector means a shorter
memory of the stable period, not a wrong answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from river.drift import ADWIN
from river.drift.binary import DDM

from driftd.performance.metrics import FloatArray, Task

DetectorName = Literal["adwin", "ddm"]

_FACTORIES: dict[str, Callable[..., Any]] = {"adwin": ADWIN, "ddm": DDM}
BINARY_ONLY: frozenset[str] = frozenset({"ddm"})


def error_stream(
    task: Task,
    pred: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    threshold: float = 0.5,
    pred_labels: npt.ArrayLike | None = None,
) -> FloatArray:
    """Per-event errors in arrival order: for classification 1.0 where the predicted class
    (``pred >= threshold`` or ``pred_labels``) differs from the label (``> 0`` is positive),
    for regression ``|pred - y|``. NaN pairs give NaN (skipped by the detector)."""
    p = np.asarray(pred, dtype=np.float64).reshape(-1)
    t = np.asarray(y, dtype=np.float64).reshape(-1)
    bad = np.isnan(p) | np.isnan(t)
    if task == "regression":
        err = np.abs(p - t)
    else:
        predicted = p >= threshold
        if pred_labels is not None:
            pl = np.asarray(pred_labels).reshape(-1)
            predicted = np.where(pl >= 0, pl > 0, predicted)
        err = (predicted != (t > 0)).astype(np.float64)
    err[bad] = np.nan
    return err


@dataclass(frozen=True, slots=True)
class DetectorUpdate:
    """What one micro-batch did: indices (into the batch) of the events at which drift was
    detected, and whether the detector ends the batch in its warning zone (DDM only)."""

    detections: list[int]
    warning: bool

    @property
    def drift(self) -> bool:
        return bool(self.detections)


class ErrorStreamDetector:
    """A river drift detector on a per-event error stream, with a replayable state."""

    def __init__(
        self,
        name: DetectorName = "adwin",
        params: Mapping[str, float | int] | None = None,
        *,
        max_replay: int = 50_000,
    ) -> None:
        if name not in _FACTORIES:
            raise ValueError(f"unknown detector {name!r}; known: {', '.join(_FACTORIES)}")
        if max_replay < 1:
            raise ValueError("max_replay must be at least 1")
        self.name: DetectorName = name
        self.params: dict[str, float | int] = dict(params or {})
        self.max_replay = max_replay
        self._det: Any = _FACTORIES[name](**self.params)
        self._buf = np.zeros(max_replay, dtype=np.float64)
        self._head = 0  # next write position
        self._since = 0  # errors fed since the last detection (or creation)
        self.n_seen = 0
        self.n_detections = 0
        self.warning = False

    def update(self, errors: npt.ArrayLike) -> DetectorUpdate:
        """Feed a micro-batch of per-event errors (NaN skipped)."""
        err = np.asarray(errors, dtype=np.float64).reshape(-1)
        if self.name in BINARY_ONLY:
            finite = err[~np.isnan(err)]
            if finite.size and not np.all((finite == 0.0) | (finite == 1.0)):
                raise ValueError(f"{self.name} needs 0/1 errors (a classifier's stream)")
        det = self._det
        hits: list[int] = []
        binary = self.name in BINARY_ONLY
        for i, x in enumerate(err.tolist()):
            if x != x:  # NaN
                continue
            det.update(bool(x) if binary else x)
            self.n_seen += 1
            if det.drift_detected:
                hits.append(i)
                self.n_detections += 1
                self._since = 0  # the detector resets on its next update
            else:
                self._remember(x)
        self.warning = bool(getattr(det, "warning_detected", False))
        return DetectorUpdate(hits, self.warning)

    def _remember(self, x: float) -> None:
        self._buf[self._head] = x
        self._head = (self._head + 1) % self.max_replay
        self._since += 1

    def _replay_values(self) -> FloatArray:
        k = min(self._since, self.max_replay)
        idx = (self._head - k + np.arange(k)) % self.max_replay
        return self._buf[idx]

    # ------------------------------------------------------------------ state

    def snapshot(self) -> dict[str, Any]:
        """``{"errors": float64 array, "meta": JSON-able dict}``; no pickle."""
        return {
            "errors": self._replay_values().copy(),
            "meta": {
                "name": self.name,
                "params": self.params,
                "max_replay": self.max_replay,
                "since_detection": self._since,
                "exact": self._since <= self.max_replay,
                "n_seen": self.n_seen,
                "n_detections": self.n_detections,
            },
        }

    @classmethod
    def restore(cls, state: Mapping[str, Any]) -> ErrorStreamDetector:
        """Rebuild from :meth:`snapshot` by replaying the kept errors into a fresh detector."""
        meta = state["meta"]
        d = cls(meta["name"], meta["params"], max_replay=int(meta["max_replay"]))
        errors = np.asarray(state["errors"], dtype=np.float64)
        # Right after a detection the buffer is empty and a fresh detector is what the
        # original becomes on its next update (river resets then), so nothing else to carry.
        binary = d.name in BINARY_ONLY
        for x in errors.tolist():
            d._det.update(bool(x) if binary else x)
            d._remember(x)
        d._since = int(meta["since_detection"])
        d.n_seen = int(meta["n_seen"])
        d.n_detections = int(meta["n_detections"])
        d.warning = bool(getattr(d._det, "warning_detected", False))
        return d

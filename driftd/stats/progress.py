"""How far a threshold calibration is, reported to a callback while it runs.

Calibration resamples every feature of a monitor (``resamples`` windows each) on a pool of
threads; it can take minutes for wide monitors or large references. Whoever starts it may pass
an :data:`OnProgress` callback — the CLI draws a bar, the daemon logs a line every few seconds
— and receives a :class:`CalibrationProgress` as resamples are drawn and features finish. The
callback lives above this layer and is only ever handed in: nothing here knows how progress
is shown.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType


@dataclass(frozen=True, slots=True)
class CalibrationProgress:
    what: str  # "monitor credit", "monitor credit, segment features.region=EU"
    features_done: int
    features: int
    resamples_done: int  # over every feature
    resamples: int  # features × resamples per feature
    elapsed_s: float

    @property
    def finished(self) -> bool:
        return self.features_done >= self.features

    @property
    def fraction(self) -> float:
        return min(1.0, self.resamples_done / self.resamples) if self.resamples else 1.0


OnProgress = Callable[[CalibrationProgress], None]


class ProgressTracker:
    """Counts the resamples drawn and features finished of one calibration whose features run
    on several threads, and reports every step to ``on_progress``.

    Reports are made under a lock, so they arrive one at a time and in order (the counts never
    go back) and the callback needs no locking of its own. The first report (nothing done) is
    made on construction, the last one has ``finished`` set.
    """

    def __init__(
        self, what: str, features: int, resamples: int, on_progress: OnProgress | None
    ) -> None:
        self.what = what
        self.features = features
        self.per_feature = resamples
        self.on_progress = on_progress
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._features_done = 0
        self._drawn = 0
        self._report()

    def feature(self) -> FeatureProgress:
        """A context for one feature: call it with each batch of resamples drawn; leaving it
        marks the feature finished (however many resamples it drew)."""
        return FeatureProgress(self)

    def _add(self, drawn: int, finished: int) -> None:
        if self.on_progress is None:
            return
        with self._lock:
            self._drawn += drawn
            self._features_done += finished
            self._report()

    def _report(self) -> None:
        if self.on_progress is None:
            return
        self.on_progress(
            CalibrationProgress(
                what=self.what,
                features_done=self._features_done,
                features=self.features,
                resamples_done=self._drawn,
                resamples=self.features * self.per_feature,
                elapsed_s=time.monotonic() - self._started,
            )
        )


class FeatureProgress:
    """The resamples of one feature (see :meth:`ProgressTracker.feature`); never counts more
    than the feature's share."""

    def __init__(self, tracker: ProgressTracker) -> None:
        self.tracker = tracker
        self.drawn = 0

    def __call__(self, n: int) -> None:
        n = max(0, min(n, self.tracker.per_feature - self.drawn))
        self.drawn += n
        if n:
            self.tracker._add(n, 0)

    def __enter__(self) -> FeatureProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # a feature that resampled less (an empty reference keeps the default) finishes whole
        rest = self.tracker.per_feature - self.drawn
        self.drawn = self.tracker.per_feature
        self.tracker._add(rest, 1)

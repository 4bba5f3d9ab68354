"""river drift detectors on aggregate signals, looked up by the name used in config.

Detectors
---------

| type           | river class   | parameters (defaults)                                          |
|----------------|---------------|----------------------------------------------------------------|
| `adwin`        | `ADWIN`       | delta 0.002, clock 32, max_buckets 5, min_window_length 5,     |
|                |               | grace_period 10, replay_limit 20000                            |
| `page_hinkley` | `PageHinkley` | min_instances 30, delta 0.005, threshold 50, alpha 0.9999,     |
|                |               | mode both, replay_limit 20000                                  |
| `kswin`        | `KSWIN`       | alpha 0.005, window_size 100, stat_size 30 (≤ window_size / 2),|
|                |               | seed 42                                                        |

Config: ``{type: adwin, delta: 0.002}`` → :func:`build_detector`. An unknown ``type`` raises
``KeyError`` naming the known detectors; an unknown, mistyped or out-of-range parameter
raises ``ValueError`` naming ``<type>.<parameter>``.

Feed them aggregate signals only (:class:`ScoreSignal`, :class:`StatisticSignal`), never raw
feature values. ``update_many(values, positions)`` returns the positions where river flagged
drift; ``n_seen``, ``drift_count`` and ``last_drift_position`` are exact counters.

State: :meth:`SignalDetector.snapshot` / :meth:`SignalDetector.restore` (no pickle; JSON-able
values plus NumPy arrays). After restore the detector behaves exactly as if never
interrupted when at most ``replay_limit`` values arrived since its last detection (ADWIN,
Page-Hinkley: the history is replayed), and always for KSWIN (its window and random state are
restored); the class docstrings say what is approximate beyond.

Adding a detector: subclass :class:`SignalDetector` in :mod:`driftd.detectors.river_adapters`
(``name``, ``params``, ``_new``) and decorate it with ``@register``.
"""

from __future__ import annotations

from driftd.detectors import river_adapters  # noqa: F401  (registers the detectors)
from driftd.detectors.base import (
    DEFAULT_REPLAY_LIMIT,
    Param,
    SignalDetector,
    build_detector,
    detector_names,
    get_detector,
    register,
)
from driftd.detectors.signals import ScoreSignal, Signal, StatisticSignal

__all__ = [
    "DEFAULT_REPLAY_LIMIT",
    "Param",
    "ScoreSignal",
    "Signal",
    "SignalDetector",
    "StatisticSignal",
    "build_detector",
    "detector_names",
    "get_detector",
    "register",
]

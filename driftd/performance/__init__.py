"""Model performance with delayed labels.

Labels (ground truth) arrive long after predictions. This package joins them back by
``event_id`` and measures each model version on labelled windows:

=======================  =====================================================================
module                   what it holds
=======================  =====================================================================
``performance.join``     :class:`LabelJoiner` — bounded, checkpointable join of late labels to
                         pending predictions within ``label_horizon_s``; :class:`JoinedPairs`
``performance.window``   :class:`LabelledWindow` — count window of joined pairs per version
``performance.metrics``  :func:`classification_metrics`, :func:`regression_metrics` (equal to
                         scikit-learn's to 1e-9; NaN when undefined, never raising)
``performance.compare``  :func:`compare` — difference to a baseline version or value with a
                         bootstrap or DeLong interval; :func:`degraded`, the alert rule
``performance.detectors``  :class:`ErrorStreamDetector` — river ADWIN / DDM on per-event errors
``performance.kernels``  numba kernels for metrics, the bootstrap and DeLong (NumPy twins
                         ``*_np``)
``performance.table``    id hashing and the numba hash-indexed stores behind the joiner
=======================  =====================================================================

Call :func:`warm_up` at start-up beside :func:`driftd.kernels.warm_up`.
"""

from __future__ import annotations

import time

import numpy as np

from driftd.performance.compare import (
    DEFAULT_MIN_EFFECT,
    DIRECTION,
    Comparison,
    Sample,
    bootstrap_ci,
    compare,
    compare_all,
    degraded,
    delong_ci,
)
from driftd.performance.detectors import DetectorUpdate, ErrorStreamDetector, error_stream
from driftd.performance.join import JoinedPairs, LabelJoiner
from driftd.performance.metrics import (
    CLASSIFICATION_METRICS,
    METRICS,
    REGRESSION_METRICS,
    classification_metrics,
    metric_value,
    regression_metrics,
    task_of,
)
from driftd.performance.window import LabelledWindow


def warm_up() -> float:
    """Compile (or load from the on-disk cache) every kernel of this package by running the
    public entry points once on tiny inputs. Returns the seconds it took."""
    t0 = time.perf_counter()
    s = [0.1, 0.4, 0.35, 0.8, 0.8]
    y = [0.0, 0.0, 1.0, 1.0, 0.0]
    classification_metrics(s, y)
    regression_metrics(s, y)
    for m in METRICS:
        compare(m, (s, y), (s[::-1], y), n_resamples=2, method="bootstrap")
    compare("roc_auc", (s, y), 0.5)
    j = LabelJoiner(60.0, max_pending=4, max_early=2, max_resolved=2)
    j.add_labels(["e"], [1.0], [0.0])
    j.add_predictions(["a", "b", "c", "d", "e", "f"], "v", s + [0.5], [0.0] * 6)
    j.add_labels(["a", "b", "zz"], [1.0, 0.0, 1.0], [1.0, 2.0, 3.0])
    j.add_predictions(np.array([1, 2]), "v", [0.1, 0.2], [0.0, 0.0], pred_labels=[0, 1])
    j.add_labels(["é"], [1.0], [0.0])  # non-ASCII ids hash from UTF-32
    j.advance(1000.0)
    j._pending.make_room()  # compaction and index rebuild
    return time.perf_counter() - t0


__all__ = [
    "CLASSIFICATION_METRICS",
    "DEFAULT_MIN_EFFECT",
    "DIRECTION",
    "METRICS",
    "REGRESSION_METRICS",
    "Comparison",
    "DetectorUpdate",
    "ErrorStreamDetector",
    "JoinedPairs",
    "LabelJoiner",
    "LabelledWindow",
    "Sample",
    "bootstrap_ci",
    "classification_metrics",
    "compare",
    "compare_all",
    "degraded",
    "delong_ci",
    "error_stream",
    "metric_value",
    "regression_metrics",
    "task_of",
    "warm_up",
]

"""river detectors attached to a (monitor, version): fed aggregate signals, never raw values.

Score signals are fed once per micro-batch from the staged prediction column; statistic
signals once per evaluation. Each detection becomes a ``{"type": "detector", …}`` output and
shows in the next evaluation under ``detectors``; counts are exported as
``driftd_detector_drifts_total``. Detectors inform, they do not trigger rollbacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from driftd.config import DetectorConfig, MonitorConfig
from driftd.detectors import ScoreSignal, SignalDetector, StatisticSignal, build_detector
from driftd.errors import ConfigError

SCORE_SIGNALS: dict[str, Literal["sample", "mean"]] = {
    "prediction": "sample",
    "prediction_mean": "mean",
}


def _statistic_source(signal: str) -> str:
    return "prediction" if signal == "prediction_statistic" else signal


def validate(cfg: MonitorConfig, index: int) -> None:
    """Fail at start, naming the key, for unknown detectors, parameters or signals."""
    for j, d in enumerate(cfg.detectors):
        key = f"monitors.{index}.detectors.{j}"
        try:
            build_detector({"type": d.type, **d.params})
        except KeyError as exc:
            raise ConfigError(f"{key}.type", str(exc.args[0])) from None
        except ValueError as exc:
            raise ConfigError(f"{key}.params", str(exc)) from None
        if d.signal in SCORE_SIGNALS:
            if cfg.prediction is None or cfg.prediction.kind != "numeric":
                raise ConfigError(f"{key}.signal", "needs a numeric prediction")
            continue
        if d.signal.startswith("feature:") and d.signal[8:] not in cfg.features:
            raise ConfigError(f"{key}.signal", f"no feature {d.signal[8:]!r} in the monitor")
        try:
            StatisticSignal(_statistic_source(d.signal))
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"{key}.signal", str(exc)) from None


@dataclass(slots=True)
class Attached:
    name: str  # "<type>:<signal>"
    cfg: DetectorConfig
    detector: SignalDetector
    score: ScoreSignal | None
    statistic: StatisticSignal | None
    new_drifts: int = 0  # since the last evaluation

    def snapshot(self) -> dict[str, Any]:
        return self.detector.snapshot()


def attach(cfg: MonitorConfig, saved: list[dict[str, Any]] | None = None) -> list[Attached]:
    out = []
    for j, d in enumerate(cfg.detectors):
        if saved is not None and j < len(saved):
            det = SignalDetector.restore(saved[j])
        else:
            det = build_detector({"type": d.type, **d.params})
        mode = SCORE_SIGNALS.get(d.signal)
        out.append(
            Attached(
                f"{d.type}:{d.signal}",
                d,
                det,
                ScoreSignal(mode, max_per_batch=d.max_per_batch, seed=j) if mode else None,
                StatisticSignal(_statistic_source(d.signal)) if mode is None else None,
            )
        )
    return out


def feed_scores(
    dets: list[Attached], scores: npt.NDArray[np.float64], positions: npt.NDArray[np.int64]
) -> list[tuple[Attached, int]]:
    hits: list[tuple[Attached, int]] = []
    for a in dets:
        if a.score is None:
            continue
        ok = np.isfinite(scores)
        values, pos = a.score(scores[ok], positions[ok])
        for p in a.detector.update_many(values, pos):
            a.new_drifts += 1
            hits.append((a, int(p)))
    return hits


def feed_evaluation(dets: list[Attached], evaluation: dict[str, Any]) -> list[tuple[Attached, int]]:
    hits: list[tuple[Attached, int]] = []
    for a in dets:
        if a.statistic is None:
            continue
        values, pos = a.statistic(evaluation)
        for p in a.detector.update_many(values, pos):
            a.new_drifts += 1
            hits.append((a, int(p)))
    return hits


def report(dets: list[Attached]) -> dict[str, Any]:
    """The ``detectors`` block of an evaluation; resets the per-evaluation counts."""
    out = {}
    for a in dets:
        out[a.name] = {
            "drifted": a.new_drifts > 0,
            "drifts": a.detector.drift_count,
            "last_drift_position": a.detector.last_drift_position,
            "seen": a.detector.n_seen,
        }
        a.new_drifts = 0
    return out

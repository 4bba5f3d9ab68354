"""What a report shows, as plain data (:class:`ReportModel`), and the distributions it
draws; :mod:`driftd.report.compared` and :mod:`driftd.report.replayed` fill it in from a
comparison or a replay output, :mod:`driftd.report.page` draws it. No plotting here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from driftd._version import __version__
from driftd.api import _engine
from driftd.reference.features import CategoricalReference, NumericReference

NUM_BINS = 40
MAX_CATEGORIES = 30
TAIL = 0.005  # histogram range: the 0.5 % … 99.5 % quantiles of reference and current
QUALITY = ("missing_rate", "out_of_range_rate", "unseen_rate")


@dataclass
class Series:
    name: str
    shares: list[float]
    events: int


@dataclass
class Distribution:
    kind: str  # numeric | categorical
    x: list[Any]  # bin centres, or category labels
    width: list[float]  # bin widths (numeric)
    series: list[Series]
    note: str = ""


@dataclass
class Track:
    """One version's (or segment's) values over its evaluations."""

    name: str
    x: list[int]  # window end positions (events read)
    ts: list[str | None]  # window end times
    statistic: list[float | None]
    threshold: list[float | None]
    quality: dict[str, list[float | None]]
    alerts: list[tuple[int, str, bool]]  # (position, event, this feature among the reasons)


@dataclass
class FeatureView:
    name: str
    kind: str
    test: str
    verdict: str  # drifted | warning | ok | undefined
    result: dict[str, Any] | None  # the last (or only) evaluation of the feature
    distribution: Distribution | None
    tracks: list[Track] = field(default_factory=list)
    per_version: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (a), split


@dataclass
class MetricTrack:
    """One version's values of one performance metric over its evaluations: measured on
    labels (with the interval the comparison with the baseline implies), or estimated."""

    name: str
    x: list[int]
    value: list[float | None]
    low: list[float | None]
    high: list[float | None]
    baseline: list[float | None]
    alerts: list[tuple[int, str]]


@dataclass
class MetricView:
    metric: str
    tracks: list[MetricTrack]


@dataclass
class ReportModel:
    mode: str  # compare | replay
    monitor: str
    summary: list[tuple[str, str]]
    features: list[FeatureView]
    versions: list[dict[str, Any]] = field(default_factory=list)
    shares: list[Track] = field(default_factory=list)  # drift share over time per version
    alerts: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    performance: list[MetricView] = field(default_factory=list)
    generated: str = field(
        default_factory=lambda: (
            datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        )
    )
    version: str = __version__


# ---------------------------------------------------------------- distributions


def _numeric_distribution(
    ref: NumericReference, currents: Sequence[tuple[str, npt.NDArray[np.float64]]]
) -> Distribution:
    parts = [ref.sample] + [c[np.isfinite(c)] for _, c in currents]
    parts = [p for p in parts if p.size]
    if not parts:
        return Distribution("numeric", [], [], [], "no values")
    lo = min(float(np.quantile(p, TAIL)) for p in parts)
    hi = max(float(np.quantile(p, 1 - TAIL)) for p in parts)
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, NUM_BINS + 1)
    centres = ((edges[:-1] + edges[1:]) / 2).tolist()
    width = np.diff(edges).tolist()

    def shares(values: npt.NDArray[np.float64]) -> list[float]:
        if values.size == 0:
            return [0.0] * NUM_BINS
        idx = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, NUM_BINS - 1)
        return [float(x) for x in np.bincount(idx, minlength=NUM_BINS) / values.size]

    series = [Series("reference", shares(ref.sample), ref.count)]
    for name, cur in currents:
        finite = cur[np.isfinite(cur)]
        series.append(Series(name, shares(finite), int(finite.size)))
    note = (
        f"reference: {ref.sample.size:,} of {ref.count:,} values (the profile's sample);"
        " values beyond the 0.5–99.5 % quantiles are drawn in the edge bins"
    )
    return Distribution("numeric", centres, width, series, note)


def _categorical_distribution(
    ref: CategoricalReference, currents: Sequence[tuple[str, npt.NDArray[np.int32]]]
) -> Distribution:
    k = len(ref.categories)
    order = sorted(range(k), key=lambda i: -int(ref.counts[i]))[:MAX_CATEGORIES]
    labels = [ref.categories[i] for i in order] + ["(unseen)"]
    total = max(int(ref.counts.sum()), 1)
    series = [Series("reference", [int(ref.counts[i]) / total for i in order] + [0.0], ref.count)]
    for name, codes in currents:
        present = codes[codes >= 0]
        counts = np.bincount(present, minlength=k + 1)
        n = max(int(present.size), 1)
        series.append(
            Series(
                name, [int(counts[i]) / n for i in order] + [int(counts[k]) / n], int(present.size)
            )
        )
    note = "" if k <= MAX_CATEGORIES else f"the {MAX_CATEGORIES} most frequent of {k} categories"
    return Distribution("categorical", labels, [], series, note)


def _distribution(
    spec_feature: _engine.FeatureSpec, currents: Sequence[tuple[str, _engine.TableWindow]]
) -> Distribution:
    ref = spec_feature.ref
    if isinstance(ref, NumericReference):
        return _numeric_distribution(
            ref, [(n, w.num_column(spec_feature.column)) for n, w in currents]
        )
    return _categorical_distribution(
        ref, [(n, w.cat_column(spec_feature.column)) for n, w in currents]
    )


def _spec_features(spec: _engine.MonitorSpec) -> list[_engine.FeatureSpec]:
    """The prediction first (the model's output is what a rollback is about), then the
    features in config order."""
    return [*([spec.prediction] if spec.prediction is not None else []), *spec.features]


def _verdict(r: Mapping[str, Any] | None) -> str:
    if r is None:
        return "undefined"
    if r.get("drifted"):
        return "drifted"
    if r.get("level") == "warning":
        return "warning"
    if r.get("statistic") is None:
        return "undefined"
    return "ok"


def _dig(obj: Any, path: Sequence[str]) -> Any:
    for part in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj

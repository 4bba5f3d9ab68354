"""Small value types shared by every layer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

# The names config accepts for `features.<name>.test` and `detectors[i].type`. The registries
# in driftd.stats and driftd.detectors map each name to its class and refuse to register a
# name missing here, and a contract test checks every name here is registered: the config
# schema's enums (`driftd config-schema`) and the registries cannot disagree. They live here,
# not in the registries, so that loading a config never imports the numba kernels.
DriftTestName = Literal[
    "ks", "cvm", "ad", "t_test", "mean_diff", "wasserstein", "wasserstein_norm", "energy",
    "psi", "kl", "js", "hellinger", "tv", "chi2", "z",
]  # fmt: skip
DetectorName = Literal["adwin", "page_hinkley", "kswin"]
DRIFT_TEST_NAMES: Final[frozenset[str]] = frozenset(get_args(DriftTestName))
DETECTOR_NAMES: Final[frozenset[str]] = frozenset(get_args(DetectorName))


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One message as read from a source, before decoding."""

    value: bytes | None
    position: int  # 1-based count of events read from the source (rejected ones included)
    timestamp_ms: int | None  # broker/record timestamp, if the source has one
    partition: int = 0
    offset: int = -1
    topic: str = ""


_RAW_SLOTS = ("value", "position", "timestamp_ms", "partition", "offset", "topic")
Setter = Callable[[RawRecord, Any], None]


def raw_record_setters() -> tuple[Setter, Setter, Setter, Setter, Setter, Setter] | None:
    """The slot setters of RawRecord (value, position, timestamp_ms, partition, offset,
    topic), for sources' hot loops: the frozen dataclass's generated ``__init__`` costs twice
    as much as ``object.__new__`` plus these. None if RawRecord's slots are no longer exactly
    those six — callers then use the constructor rather than leave a slot unset."""
    if getattr(RawRecord, "__slots__", ()) != _RAW_SLOTS:
        return None
    slots = vars(RawRecord)
    v, p, t, pa, o, to = (slots[name].__set__ for name in _RAW_SLOTS)
    return v, p, t, pa, o, to


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str
    position: int
    detail: str = ""


# Stable label values of driftd_events_rejected_total{reason} (metric API: do not rename).
REJECT_REASONS: tuple[str, ...] = (
    "empty",
    "too_large",
    "invalid_json",
    "not_object",
    "missing_model",
    "unknown_model",
    "missing_version",
    "bad_features",
    "wrong_type",
    "bad_timestamp",
    "bad_version",  # model_version empty, too long or not matching input.model_version_pattern
    "late",  # below a time-window monitor's watermark
    "too_many_versions",  # a monitor's max_versions reached, none of them evictable
    "bad_label",  # label events (performance monitoring) without a usable event_id or label
)

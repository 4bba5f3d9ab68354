"""Small value types shared by every layer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

# Array aliases shared from the kernels up (lowest layer: kernels must not import higher ones).
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


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
    "bad_label",  # label events (performance monitoring) without a usable event_id or label
)

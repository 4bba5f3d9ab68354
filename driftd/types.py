"""Small value types shared by every layer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One message as read from a source, before decoding."""

    value: bytes | None
    position: int  # 1-based count of events read from the source (rejected ones included)
    timestamp_ms: int | None  # broker/record timestamp, if the source has one
    partition: int = 0
    offset: int = -1
    topic: str = ""


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

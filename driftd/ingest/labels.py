"""Label events (delayed ground truth) → (model, event id, label, event time), or a rejection.

Labels arrive from label topics, from ``driftd replay --labels`` files, or as lines without a
model in the prediction stream. Each is read here the way predictions are read in
:mod:`driftd.ingest.decode`: per event, nothing kept, a :class:`Reject` with a reason for
anything unusable (counted and dead-lettered by the caller).
"""

from __future__ import annotations

import math
import time
from typing import Any

import orjson

from driftd.config import SchemaConfig
from driftd.ingest.decode import Reject, _getter, parse_ts
from driftd.types import RawRecord

# Event times further ahead of this machine's clock are not given to the label join: its clock
# only moves forward, so one far-future time (ns read as ms, year 9999) would expire every
# later prediction. Such predictions count as unjoinable (future_ts), such labels as bad_label.
MAX_FUTURE_S = 86_400.0

Label = tuple[str | None, str, float, float]  # (model or None, event id, label, event time)


def as_id(v: Any) -> str | None:
    """An event id: a non-empty string, or an integer as its decimal string."""
    if type(v) is str:
        return v if v else None
    if type(v) is int:
        return str(v)
    return None


def as_number(v: Any) -> float:
    """A label or score as a float (bool → 1/0); NaN for anything else."""
    if type(v) is float or type(v) is int:
        return float(v)
    if type(v) is bool:
        return 1.0 if v else 0.0
    return math.nan


class LabelReader:
    def __init__(self, schema: SchemaConfig) -> None:
        self._id = _getter(schema.event_id)
        self._label = _getter(schema.label)
        self._ts = _getter(schema.timestamp)
        self._model = _getter(schema.model)

    def read(self, rec: RawRecord) -> Label:
        """One label event (a label topic's or a label file's record). Raises Reject."""
        if not rec.value:
            raise Reject("empty")
        try:
            obj = orjson.loads(rec.value)
        except orjson.JSONDecodeError:
            raise Reject("invalid_json") from None
        if type(obj) is not dict:
            raise Reject("not_object")
        model = self._model(obj)
        return label_of(
            model if type(model) is str else None,
            self._id(obj),
            self._label(obj),
            self._ts(obj),
            rec,
        )


def label_of(model: str | None, eid_raw: Any, label_raw: Any, ts_raw: Any, rec: RawRecord) -> Label:
    """Validate one label's fields (raw JSON values). Raises Reject (``bad_label``, …)."""
    eid = as_id(eid_raw)
    if eid is None:
        raise Reject("bad_label", "label event without a usable event_id")
    label = as_number(label_raw)
    if not math.isfinite(label):
        raise Reject("bad_label", "label must be a number or boolean")
    if ts_raw is None:
        ts = rec.timestamp_ms / 1000.0 if rec.timestamp_ms and rec.timestamp_ms > 0 else math.nan
    else:
        ts = parse_ts(ts_raw)
    if ts > time.time() + MAX_FUTURE_S:
        raise Reject("bad_label", "label time more than a day ahead of this machine's clock")
    return model, eid, label, ts

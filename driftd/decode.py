"""bytes → decoded event fields, or a rejection reason. Pure: no I/O, no state.

Each message is parsed once with orjson; the resulting dict is read and dropped immediately.
Feature values are mapped per monitor by :class:`RowMapper` into plain lists of floats / ints
that the runtime appends to NumPy staging buffers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from driftd.config import FeatureConfig, SchemaConfig

NAN = float("nan")
MISSING_CODE = -1  # categorical code for null / missing


class Reject(Exception):  # noqa: N818 - used as a cheap control-flow signal, never escapes
    __slots__ = ("reason", "detail")

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail


def _getter(path: str) -> Any:
    parts = path.split(".")
    if len(parts) == 1:
        key = parts[0]

        def get1(obj: dict[str, Any]) -> Any:
            return obj.get(key)

        return get1

    def getn(obj: dict[str, Any]) -> Any:
        cur: Any = obj
        for p in parts:
            if not isinstance(cur, dict):
                return None
            cur = cur.get(p)
        return cur

    return getn


def parse_ts(value: Any) -> float:
    """RFC 3339 string or epoch milliseconds → epoch seconds. Raises Reject."""
    if isinstance(value, bool):
        raise Reject("bad_timestamp", "boolean timestamp")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise Reject("bad_timestamp", "non-finite timestamp")
        return float(value) / 1000.0
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            raise Reject("bad_timestamp", "not RFC 3339") from None
        if dt.tzinfo is None:
            raise Reject("bad_timestamp", "timestamp without offset")
        return dt.timestamp()
    raise Reject("bad_timestamp", f"timestamp of type {type(value).__name__}")


class EventDecoder:
    """Parses an event and extracts the routing fields per the configured schema."""

    def __init__(self, schema: SchemaConfig, max_event_bytes: int) -> None:
        self.max_event_bytes = max_event_bytes
        self._model = _getter(schema.model)
        self._version = _getter(schema.model_version)
        self._ts = _getter(schema.timestamp)
        self._features = _getter(schema.features)
        self._prediction = _getter(schema.prediction)
        self._event_id = _getter(schema.event_id)

    def decode(
        self, raw: bytes | None, record_ts_ms: int | None
    ) -> tuple[str, str, float, dict[str, Any], Any]:
        """Return (model, version, ts_seconds, features_obj, prediction). Raises Reject."""
        if not raw:
            raise Reject("empty")
        if len(raw) > self.max_event_bytes:
            raise Reject("too_large", f"{len(raw)} bytes")
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise Reject("invalid_json", str(exc)[:200]) from None
        if not isinstance(obj, dict):
            raise Reject("not_object", type(obj).__name__)
        model = self._model(obj)
        if model is None:
            raise Reject("missing_model")
        if not isinstance(model, str):
            raise Reject("wrong_type", "model must be a string")
        version = self._version(obj)
        if version is None:
            raise Reject("missing_version")
        if isinstance(version, bool) or not isinstance(version, str | int):
            raise Reject("wrong_type", "model_version must be a string")
        ts_val = self._ts(obj)
        if ts_val is None:
            ts = record_ts_ms / 1000.0 if record_ts_ms is not None and record_ts_ms >= 0 else NAN
        else:
            ts = parse_ts(ts_val)
        feats = self._features(obj)
        if feats is None:
            feats = {}
        elif not isinstance(feats, dict):
            raise Reject("bad_features", "features must be an object")
        return model, str(version), ts, feats, self._prediction(obj)


def to_float(value: Any, name: str) -> float:
    """A numeric feature value: numbers and bools as floats; null / non-finite → NaN."""
    if value is None:
        return NAN
    if isinstance(value, float):
        return value if math.isfinite(value) else NAN
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int):
        f = float(value)
        return f if math.isfinite(f) else NAN
    raise Reject("wrong_type", f"{name}: expected a number, got {type(value).__name__}")


def to_category(value: Any, name: str) -> str | None:
    """A categorical value as its label; null → None. Objects and lists are wrong types."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    raise Reject("wrong_type", f"{name}: expected a category, got {type(value).__name__}")


class RowMapper:
    """Maps one event's features into a monitor's column layout.

    Numeric columns (features then, if numeric, the prediction) become floats with NaN for
    missing; categorical columns become codes into the reference categories, with
    ``len(categories)`` for an unseen value and ``MISSING_CODE`` for null.
    """

    def __init__(
        self,
        numeric: Sequence[tuple[str, FeatureConfig]],
        categorical: Sequence[tuple[str, FeatureConfig, Sequence[str]]],
        prediction_kind: str | None,
    ) -> None:
        self._num = [(n, _getter(f.path or n)) for n, f in numeric]
        self._cat = [
            (n, _getter(f.path or n), {c: i for i, c in enumerate(cats)}, len(cats))
            for n, f, cats in categorical
        ]
        self.prediction_kind = prediction_kind
        self._pred_codes: dict[str, int] = {}
        self._pred_unseen = 0

    def set_prediction_categories(self, cats: Sequence[str]) -> None:
        self._pred_codes = {c: i for i, c in enumerate(cats)}
        self._pred_unseen = len(cats)

    def map(
        self, feats: dict[str, Any], prediction: Any, num_out: list[float], cat_out: list[int]
    ) -> None:
        """Append this event's values to ``num_out`` / ``cat_out``. Raises Reject, in which
        case nothing was appended."""
        n0, c0 = len(num_out), len(cat_out)
        try:
            for name, get in self._num:
                num_out.append(to_float(get(feats), name))
            for name, get, codes, unseen in self._cat:
                label = to_category(get(feats), name)
                cat_out.append(MISSING_CODE if label is None else codes.get(label, unseen))
            if self.prediction_kind == "numeric":
                num_out.append(to_float(prediction, "prediction"))
            elif self.prediction_kind == "categorical":
                label = to_category(prediction, "prediction")
                cat_out.append(
                    MISSING_CODE
                    if label is None
                    else self._pred_codes.get(label, self._pred_unseen)
                )
        except Reject:
            del num_out[n0:]
            del cat_out[c0:]
            raise

"""bytes → decoded event fields, or a rejection reason. Pure: no I/O, no state.

Each message is parsed once with orjson; the resulting dict is read and dropped immediately.
Feature values are mapped per monitor by :class:`RowMapper` into plain lists of numbers / ints
that the runtime appends to NumPy staging buffers.

This is the per-event hot path (``driftd run`` spends most of its own time here), so the common
case — every field where the schema says, numbers where numbers belong — is handled with a few
C-level calls per event (one ``itemgetter`` for all numeric columns, one type scan, one ``sum``
as the finiteness check); anything unusual falls back to the value-by-value path, which decides
every rejection and every conversion. Both paths give the same result for every input.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any

import orjson

from driftd.config import FeatureConfig, SchemaConfig

NAN = float("nan")
MISSING_CODE = -1  # categorical code for null / missing

# Value types the fast paths accept as they are (bool is handled by the slow path: → 1.0/0.0
# or "true"/"false"). orjson never yields a non-finite float, but other callers may.
_NUMBER_TYPES = frozenset({float, int})
_STR_TYPES = frozenset({str})
_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError
_fromisoformat = datetime.fromisoformat


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


def _tuple_getter(keys: Sequence[str]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """``d -> (d[k0], d[k1], …)`` in C (``itemgetter``); raises KeyError for a missing key."""
    if not keys:
        return lambda d: ()
    if len(keys) == 1:
        only = keys[0]
        return lambda d: (d[only],)
    return itemgetter(*keys)


def _simple(path: str) -> bool:
    return "." not in path


def parse_ts(value: Any) -> float:
    """RFC 3339 string or epoch milliseconds → epoch seconds. Raises Reject."""
    if type(value) is str:  # the common case first
        try:
            dt = _fromisoformat(value)
        except ValueError:
            raise Reject("bad_timestamp", "not RFC 3339") from None
        if dt.tzinfo is None:
            raise Reject("bad_timestamp", "timestamp without offset")
        return dt.timestamp()
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
        self._label = _getter(schema.label)
        # Performance monitoring reads (event_id, label, raw ts) of every parsed object; off
        # by default so the drift-only hot path does not pay for it.
        self.want_extra = False
        self.last_extra: tuple[Any, Any, Any] = (None, None, None)
        # The default schema (top-level keys) is read with dict.get directly.
        paths = (schema.model, schema.model_version, schema.timestamp, schema.features)
        self._keys: tuple[str, str, str, str, str] | None = None
        if all(_simple(p) for p in (*paths, schema.prediction)):
            self._keys = (*paths, schema.prediction)

    def decode(
        self, raw: bytes | None, record_ts_ms: int | None
    ) -> tuple[str, str, float, dict[str, Any], Any]:
        """Return (model, version, ts_seconds, features_obj, prediction). Raises Reject."""
        if not raw:
            raise Reject("empty")
        if len(raw) > self.max_event_bytes:
            raise Reject("too_large", f"{len(raw)} bytes")
        try:
            obj = _loads(raw)
        except _JSONDecodeError as exc:
            raise Reject("invalid_json", str(exc)[:200]) from None
        if type(obj) is not dict:  # orjson builds exact dicts
            raise Reject("not_object", type(obj).__name__)
        keys = self._keys
        if keys is not None:
            get = obj.get
            model = get(keys[0])
            version = get(keys[1])
            ts_val = get(keys[2])
            feats = get(keys[3])
            pred = get(keys[4])
        else:
            model = self._model(obj)
            version = self._version(obj)
            ts_val = self._ts(obj)
            feats = self._features(obj)
            pred = self._prediction(obj)
        if self.want_extra:
            self.last_extra = (self._event_id(obj), self._label(obj), ts_val)
        if type(model) is not str:
            if model is None:
                raise Reject("missing_model")
            raise Reject("wrong_type", "model must be a string")
        if type(version) is not str:
            if version is None:
                raise Reject("missing_version")
            if type(version) is not int:  # bool, float, object, list
                raise Reject("wrong_type", "model_version must be a string")
            version = str(version)
        if ts_val is None:
            ts = record_ts_ms / 1000.0 if record_ts_ms is not None and record_ts_ms >= 0 else NAN
        else:
            ts = parse_ts(ts_val)
        if type(feats) is not dict:
            if feats is not None:
                raise Reject("bad_features", "features must be an object")
            feats = {}
        return model, version, ts, feats, pred


def to_float(value: Any, name: str) -> float:
    """A numeric feature value: numbers and bools as floats; null / non-finite → NaN."""
    if value is None:
        return NAN
    if isinstance(value, float):
        return value if math.isfinite(value) else NAN
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int):
        try:
            return float(value)  # finite whenever it converts
        except OverflowError:  # beyond the float range: as non-finite, missing
            return NAN
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
        # Fast path (every feature path a top-level key): all numeric values in one C call.
        num_keys = [f.path or n for n, f in numeric]
        cat_keys = [f.path or n for n, f, _ in categorical]
        self._fast = all(_simple(k) for k in (*num_keys, *cat_keys))
        self._num_get = _tuple_getter(num_keys)
        self._cat_get = _tuple_getter(cat_keys)
        self._cat_codes = tuple(codes for _, _, codes, _ in self._cat)
        self._cat_unseen = tuple(unseen for _, _, _, unseen in self._cat)
        self._pred_numeric = prediction_kind == "numeric"

    def set_prediction_categories(self, cats: Sequence[str]) -> None:
        self._pred_codes = {c: i for i, c in enumerate(cats)}
        self._pred_unseen = len(cats)

    def map(
        self, feats: dict[str, Any], prediction: Any, num_out: list[float], cat_out: list[int]
    ) -> None:
        """Append this event's values to ``num_out`` / ``cat_out``. Raises Reject, in which
        case nothing was appended."""
        if self._fast:
            try:
                nums = self._num_get(feats)
                labels = self._cat_get(feats)
            except (KeyError, TypeError):  # a feature is absent (missing): value by value
                pass
            else:
                if self._pred_numeric:
                    nums += (prediction,)
                # Numbers only (no None / bool / str …), all finite floats (an inf or nan
                # makes the float sum non-finite, an int beyond the float range raises; either,
                # or a sum that merely overflows, sends us down the slow path), and labels only
                # strings: then the values go in as they are.
                if _NUMBER_TYPES.issuperset(map(type, nums)) and _STR_TYPES.issuperset(
                    map(type, labels)
                ):
                    try:
                        total = sum(nums, 0.0)
                    except OverflowError:
                        total = NAN
                    if total - total == 0:
                        if self.prediction_kind == "categorical":
                            label = to_category(prediction, "prediction")
                            pcode = (
                                MISSING_CODE
                                if label is None
                                else self._pred_codes.get(label, self._pred_unseen)
                            )
                        num_out.extend(nums)
                        if labels:
                            cat_out.extend(map(dict.get, self._cat_codes, labels, self._cat_unseen))
                        if self.prediction_kind == "categorical":
                            cat_out.append(pcode)
                        return
        self._map_values(feats, prediction, num_out, cat_out)

    def _map_values(
        self, feats: dict[str, Any], prediction: Any, num_out: list[float], cat_out: list[int]
    ) -> None:
        """The value-by-value path: every conversion and rejection rule lives here."""
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

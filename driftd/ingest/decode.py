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
import re
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


MAX_KNOWN_VERSIONS = 10_000  # versions remembered as valid (the check is then a dict lookup)


class EventDecoder:
    """Parses an event and extracts the routing fields per the configured schema."""

    def __init__(
        self,
        schema: SchemaConfig,
        max_event_bytes: int,
        version_pattern: str = r"[A-Za-z0-9][A-Za-z0-9._:+@/=-]*",
        max_version_chars: int = 128,
    ) -> None:
        self.max_event_bytes = max_event_bytes
        self._version_ok = re.compile(version_pattern).fullmatch
        self._max_version = max_version_chars
        self._known_versions: set[str] = set()
        self._parse: Callable[[bytes], Any] = _loads
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
            obj = self._parse(raw)
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
        if version not in self._known_versions:
            self._check_version(version)
        if ts_val is None:
            ts = record_ts_ms / 1000.0 if record_ts_ms is not None and record_ts_ms >= 0 else NAN
        else:
            ts = parse_ts(ts_val)
        if type(feats) is not dict:
            if feats is not None:
                raise Reject("bad_features", "features must be an object")
            feats = {}
        return model, version, ts, feats, pred

    def _check_version(self, version: str) -> None:
        if len(version) > self._max_version:
            raise Reject("bad_version", f"{len(version)} characters")
        if self._version_ok(version) is None:
            raise Reject("bad_version", repr(version[:100]))
        if len(self._known_versions) < MAX_KNOWN_VERSIONS:
            self._known_versions.add(version)


class KeepingDecoder(EventDecoder):
    """An :class:`EventDecoder` that also keeps the last parsed event (``last``) so that the
    runtime can read segment fields from it. Used only when a monitor has ``segment_by``; its
    parser is a wrapper around orjson's, so the plain decoder's path is untouched."""

    def __init__(
        self,
        schema: SchemaConfig,
        max_event_bytes: int,
        version_pattern: str = r"[A-Za-z0-9][A-Za-z0-9._:+@/=-]*",
        max_version_chars: int = 128,
    ) -> None:
        super().__init__(schema, max_event_bytes, version_pattern, max_version_chars)
        self.last: dict[str, Any] = {}
        self._parse = self._parse_keep

    def _parse_keep(self, raw: bytes) -> Any:
        obj = _loads(raw)
        self.last = obj  # read only after decode() returned, i.e. for an accepted event
        return obj


MISSING_SEGMENT = "__missing__"
OTHER_SEGMENT = "__other__"
MAX_SEGMENT_VALUE_CHARS = 200


def segment_value(value: Any) -> str:
    """A segment field's value as a label: strings as they are (cut at 200 characters),
    booleans ``true``/``false``, integral numbers without a decimal point; null, absent,
    non-finite and non-scalar values are ``__missing__``. Never rejects the event."""
    if type(value) is str:
        return value[:MAX_SEGMENT_VALUE_CHARS]
    if value is None or isinstance(value, dict | list):
        return MISSING_SEGMENT
    try:
        label = to_category(value, "segment")
    except Reject:
        return MISSING_SEGMENT
    return MISSING_SEGMENT if label is None else label[:MAX_SEGMENT_VALUE_CHARS]


def segment_key_fn(paths: Sequence[str]) -> Callable[[dict[str, Any]], tuple[str, ...]]:
    """``event -> (value of path 0, value of path 1, …)`` as segment labels."""
    getters = [_getter(p) for p in paths]
    if len(getters) == 1:
        only = getters[0]
        return lambda obj: (segment_value(only(obj)),)
    return lambda obj: tuple(segment_value(g(obj)) for g in getters)


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


class OpenCodes(dict[str, int]):
    """A category dictionary that grows: a new label gets the next code, up to ``cap`` labels;
    beyond that every new label gets the overflow code ``cap`` (used when no profile says
    which categories exist: warmup and version references)."""

    __slots__ = ("cap",)

    def __init__(self, cap: int, labels: Sequence[str] = ()) -> None:
        super().__init__()
        self.cap = cap
        for label in labels:
            self.lookup(label, cap)

    def lookup(self, label: str, unseen: int) -> int:
        code = self.get(label)
        if code is None:
            if len(self) >= self.cap:
                return self.cap
            code = self[label] = len(self)
        return code

    def labels(self) -> list[str]:
        return list(self)  # insertion order is code order


class RowMapper:
    """Maps one event's features into a monitor's column layout.

    Numeric columns (features then, if numeric, the prediction) become floats with NaN for
    missing; categorical columns become codes into the reference categories, with
    ``len(categories)`` for an unseen value and ``MISSING_CODE`` for null. With
    ``open_categories=cap`` there are no reference categories: each categorical column gets an
    :class:`OpenCodes` dictionary (codes assigned as labels appear, ``cap`` for overflow).
    """

    def __init__(
        self,
        numeric: Sequence[tuple[str, FeatureConfig]],
        categorical: Sequence[tuple[str, FeatureConfig, Sequence[str]]],
        prediction_kind: str | None,
        open_categories: int = 0,
    ) -> None:
        self._num = [(n, _getter(f.path or n)) for n, f in numeric]
        self.open_categories = open_categories
        self._cat: list[tuple[str, Callable[[Any], Any], dict[str, int], int]] = [
            (n, _getter(f.path or n), self._codes(cats), self._unseen(cats))
            for n, f, cats in categorical
        ]
        self.prediction_kind = prediction_kind
        self._pred_codes: dict[str, int] = self._codes(())
        self._pred_unseen = self._unseen(())
        # dict.get (C) for reference categories; OpenCodes.lookup assigns codes as they appear.
        self._lookup: Callable[[dict[str, int], str, int], int] = (
            OpenCodes.lookup if open_categories else dict.get  # type: ignore[assignment]
        )
        # Fast path (every feature path a top-level key): all numeric values in one C call.
        num_keys = [f.path or n for n, f in numeric]
        cat_keys = [f.path or n for n, f, _ in categorical]
        self._fast = all(_simple(k) for k in (*num_keys, *cat_keys))
        self._num_get = _tuple_getter(num_keys)
        self._cat_get = _tuple_getter(cat_keys)
        self._cat_codes = tuple(codes for _, _, codes, _ in self._cat)
        self._cat_unseen = tuple(unseen for _, _, _, unseen in self._cat)
        self._pred_numeric = prediction_kind == "numeric"
        self.num_paths = tuple(num_keys)  # feature paths (under the features object)
        self.cat_paths = tuple(cat_keys)

    def lookups(self) -> list[Callable[[str], int]]:
        """``label -> code`` of every categorical column as :meth:`map` looks labels up (the
        prediction last when categorical); with open categories a new label takes a code."""
        cols = [(codes, unseen) for _, _, codes, unseen in self._cat]
        if self.prediction_kind == "categorical":
            cols.append((self._pred_codes, self._pred_unseen))
        look = self._lookup
        return [
            (lambda label, c=codes, u=unseen: look(c, label, u))  # type: ignore[misc]
            for codes, unseen in cols
        ]

    def _codes(self, cats: Sequence[str]) -> dict[str, int]:
        if self.open_categories:
            return OpenCodes(self.open_categories, cats)
        return {c: i for i, c in enumerate(cats)}

    def _unseen(self, cats: Sequence[str]) -> int:
        return self.open_categories or len(cats)

    def set_prediction_categories(self, cats: Sequence[str]) -> None:
        self._pred_codes = self._codes(cats)
        self._pred_unseen = self._unseen(cats)

    def code_tables(self) -> list[dict[str, int]]:
        """The label → code dictionary of every categorical column, in column order (the
        prediction last when categorical)."""
        tables = [codes for _, _, codes, _ in self._cat]
        if self.prediction_kind == "categorical":
            tables.append(self._pred_codes)
        return tables

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
                                else self._lookup(self._pred_codes, label, self._pred_unseen)
                            )
                        num_out.extend(nums)
                        if labels:
                            cat_out.extend(
                                map(self._lookup, self._cat_codes, labels, self._cat_unseen)
                            )
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
                cat_out.append(
                    MISSING_CODE if label is None else self._lookup(codes, label, unseen)
                )
            if self.prediction_kind == "numeric":
                num_out.append(to_float(prediction, "prediction"))
            elif self.prediction_kind == "categorical":
                label = to_category(prediction, "prediction")
                cat_out.append(
                    MISSING_CODE
                    if label is None
                    else self._lookup(self._pred_codes, label, self._pred_unseen)
                )
        except Reject:
            del num_out[n0:]
            del cat_out[c0:]
            raise

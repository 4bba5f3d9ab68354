"""A batch of raw events → the fields the partition stage routes on, as columns, from one
compiled scan (:mod:`driftd.ingest.scan`).

Each event comes out in one of three states:

* ``FAST``: the scan read the routing fields and each is provably what the orjson path
  (:class:`~driftd.ingest.decode.EventDecoder`) decodes: model and version strings, a time
  read exactly (RFC 3339 in the common form, epoch milliseconds, or the record's timestamp),
  a features object or none;
* ``REJECTED`` with the orjson path's reason and detail, where that is certain: ``empty``,
  ``too_large``, ``bad_version`` (the same check, once per distinct version);
* ``SLOW``: anything else. The router hands it to the orjson path, event by event, which
  decides its fate (and every reason it can be rejected for).

Feature, prediction and segment values are turned into columns per path, on demand:
:meth:`Columns.numeric` (floats with NaN for missing, as ``to_float``), :meth:`Columns.labels`
(per-batch label codes, as ``to_category``), :meth:`Columns.segments` (as ``segment_value``).
Each also says which events hold a value the orjson path would reject (a string where a number
belongs, an object where a category belongs): those go to the orjson path too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from driftd.config import SchemaConfig
from driftd.ingest.decode import Reject, parse_ts, segment_value, to_category, to_float
from driftd.ingest.scan import Scanned, ScanPlan, path_parts, scan
from driftd.kernels import jsonfields as jf
from driftd.kernels import jsonscan as js
from driftd.sources.batch import RecordBatch

FAST, SLOW, REJECTED = 0, 1, 2
MISSING_SEGMENT = "__missing__"

Bool = npt.NDArray[np.bool_]
I8 = npt.NDArray[np.int8]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


class BatchDecoder:
    """The scan plan of one router and the routing fields' slots in it."""

    def __init__(
        self,
        schema: SchemaConfig,
        max_event_bytes: int,
        check_version: Callable[[str], None],
        known_versions: set[str],
        *,
        extras: bool = False,
    ) -> None:
        self.max_event_bytes = max_event_bytes
        self._check_version = check_version
        self._known = known_versions
        self.plan = ScanPlan()
        p = self.plan
        self.s_model = p.slot(path_parts(schema.model))
        self.s_version = p.slot(path_parts(schema.model_version))
        self.s_ts = p.slot(path_parts(schema.timestamp))
        self._features = path_parts(schema.features)
        self.s_features = p.slot(self._features)
        self.s_prediction = p.slot(path_parts(schema.prediction))
        self.s_event_id = p.slot(path_parts(schema.event_id)) if extras else -1
        self.s_label = p.slot(path_parts(schema.label)) if extras else -1

    def feature_slot(self, path: str) -> int:
        """The slot of a feature path (relative to the features object)."""
        return self.plan.slot(self._features + path_parts(path))

    def event_slot(self, path: str) -> int:
        """The slot of a path from the event's top level (segment fields)."""
        return self.plan.slot(path_parts(path))

    def decode(self, batch: RecordBatch) -> Columns:
        lens = batch.ends - batch.starts
        large = lens > self.max_event_bytes
        ends = np.where(large, batch.starts, batch.ends)  # not scanned: rejected below
        sc = scan(self.plan, batch.buf, batch.starts, ends)
        cols = Columns(batch, sc)
        state = sc.status.copy()  # OK → FAST, SLOW → SLOW
        k = sc.kind
        state[k[:, self.s_model] != js.STRING] = SLOW
        state[k[:, self.s_version] != js.STRING] = SLOW
        fk = k[:, self.s_features]
        state[(fk != js.ABSENT) & (fk != js.NULL) & (fk != js.OBJECT)] = SLOW
        cols.ts = self._times(cols, state)
        for i in np.flatnonzero(lens == 0).tolist():
            cols.reject(i, "empty", "")
        for i in np.flatnonzero(large).tolist():
            cols.reject(i, "too_large", f"{int(lens[i])} bytes")
        state[list(cols.rejected)] = REJECTED
        cols.state = state
        fast = state == FAST
        cols.model, cols.models = cols.intern(self.s_model, fast)
        cols.version, cols.versions = cols.intern(self.s_version, fast)
        for code, version in enumerate(cols.versions):
            if version in self._known:
                continue
            try:
                self._check_version(version)
            except Reject as r:
                for i in np.flatnonzero(fast & (cols.version == code)).tolist():
                    cols.reject(i, r.reason, r.detail)
                    state[i] = REJECTED
        return cols

    def _times(self, cols: Columns, state: I8) -> F64:
        """Event times (epoch seconds) of the FAST events; marks the ones read elsewhere."""
        sc, batch = cols.sc, cols.batch
        s = self.s_ts
        k = sc.kind[:, s]
        fast = state == js.OK
        rts = batch.timestamps
        ts = np.where(rts >= 0, rts / 1000.0, np.nan)
        strings = np.flatnonzero(fast & (k == js.STRING))
        if strings.size:
            ok = np.zeros(len(batch), dtype=np.int8)
            spans = np.ascontiguousarray(sc.span[:, s])  # (one kernel signature: C order)
            jf.times(batch.buf, spans, strings.astype(np.int64), jf._DAYS, ts, ok)
            state[strings[ok[strings] == 0]] = SLOW
        nums = fast & (k == js.NUMBER)
        exact = nums & ((sc.nflag[:, s] & js.NUM_EXACT) != 0)
        ts[exact] = sc.num[exact, s] / 1000.0
        for i in np.flatnonzero(nums & ~exact).tolist():  # beyond 15 digits (µs, ns …)
            ts[i] = parse_ts(cols.raw(i, s))
        other = (k != js.ABSENT) & (k != js.NULL) & (k != js.STRING) & (k != js.NUMBER)
        state[other] = SLOW
        return ts


@dataclass(slots=True)
class Columns:
    """The decoded batch (see the module doc). ``model``/``version``: per event an index into
    ``models``/``versions`` (-1 unless FAST); ``ts`` epoch seconds (NaN when unknown)."""

    batch: RecordBatch
    sc: Scanned
    state: I8 = field(default_factory=lambda: np.empty(0, dtype=np.int8))
    rejected: dict[int, tuple[str, str]] = field(default_factory=dict)
    ts: F64 = field(default_factory=lambda: np.empty(0))
    model: I32 = field(default_factory=lambda: np.empty(0, dtype=np.int32))
    models: list[str] = field(default_factory=list)
    version: I32 = field(default_factory=lambda: np.empty(0, dtype=np.int32))
    versions: list[str] = field(default_factory=list)

    def reject(self, i: int, reason: str, detail: str) -> None:
        self.rejected[i] = (reason, detail)

    def text(self, i: int, slot: int) -> str:
        """A scanned string or literal value (no escapes: the bytes are the text)."""
        a, b = self.sc.span[i, slot]
        return self.batch.data[a:b].decode("utf-8")

    def raw(self, i: int, slot: int) -> Any:
        """The value orjson gives for one event's slot (None when absent)."""
        k = self.sc.kind[i, slot]
        if k == js.ABSENT or k == js.NULL:
            return None
        if k == js.STRING:
            return self.text(i, slot)
        a, b = self.sc.span[i, slot]
        return orjson.loads(self.batch.data[a:b])

    def intern(self, slot: int, take: Bool) -> tuple[I32, list[str]]:
        """Per-batch codes of the distinct string values of ``slot`` among ``take``."""
        codes = np.empty(len(self.batch), dtype=np.int32)
        first = np.empty(len(self.batch), dtype=np.int64)
        spans = np.ascontiguousarray(self.sc.span[:, slot])
        nu = jf.intern_spans(self.batch.buf, spans, take.astype(np.int8), codes, first)
        return codes, [self.text(int(r), slot) for r in first[:nu]]

    def numeric(self, slot: int, rows: Bool) -> tuple[F64, Bool]:
        """(values as ``to_float`` gives them, events whose value it would reject), for the
        events in ``rows``."""
        sc = self.sc
        n = len(self.batch)
        vals = np.empty(n, dtype=np.float64)
        bad = np.empty(n, dtype=np.int8)
        slow = np.empty(n, dtype=np.int64)
        m = jf.numbers(sc.kind, sc.nflag, sc.num, slot, vals, bad, slow)
        for i in slow[:m].tolist():
            if rows[i]:
                vals[i] = to_float(self.raw(i, slot), "")
        return vals, bad.view(np.bool_)

    def _labelable(self, slot: int) -> tuple[Bool, Bool]:
        """(values whose scanned text is their label, other numbers)."""
        sc = self.sc
        k = sc.kind[:, slot]
        fl = sc.nflag[:, slot]
        isnum = k == js.NUMBER
        literal = isnum & ((fl & js.NUM_INT) != 0) & ((fl & js.NUM_EXACT) != 0)
        literal &= ~(((fl & js.NUM_MINUS) != 0) & (sc.num[:, slot] == 0.0))  # "-0" → "0"
        text = (k == js.STRING) | (k == js.TRUE) | (k == js.FALSE) | literal
        return text, isnum & ~literal

    def labels(self, slot: int, rows: Bool) -> tuple[I32, list[str], Bool]:
        """(per event a code into the label list, -1 for missing; labels as ``to_category``
        gives them; events whose value it would reject), for the events in ``rows``."""
        text, other = self._labelable(slot)
        codes, labels = self.intern(slot, text & rows)
        k = self.sc.kind[:, slot]
        codes[(k == js.NULL) | (k == js.ABSENT)] = -1
        extra = np.flatnonzero(rows & other)
        if extra.size:
            index = {lab: c for c, lab in enumerate(labels)}
            for i in extra.tolist():
                lab = to_category(self.raw(i, slot), "")
                assert lab is not None  # numbers are finite
                codes[i] = index.setdefault(lab, len(index))
            labels = list(index)
        bad = (k == js.OBJECT) | (k == js.ARRAY)
        return codes, labels, bad

    def segments(self, slot: int, rows: Bool) -> tuple[I32, list[str]]:
        """Per event a code into the label list, labels as ``segment_value`` gives them."""
        text, other = self._labelable(slot)
        codes, labels = self.intern(slot, text & rows)
        index: dict[str, int] = {}
        lut = np.array(
            [index.setdefault(lab[:200], len(index)) for lab in labels] or [0], dtype=np.int32
        )
        out = np.where(codes >= 0, lut[np.maximum(codes, 0)], -1).astype(np.int32)
        for i in np.flatnonzero(rows & other).tolist():
            out[i] = index.setdefault(segment_value(self.raw(i, slot)), len(index))
        missing = rows & ~text & ~other
        if missing.any():
            out[missing] = index.setdefault(MISSING_SEGMENT, len(index))
        return out, list(index)

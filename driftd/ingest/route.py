"""The partition stage: one source partition's run of records → panes of accepted rows, or
rejections with a reason.

A run is decoded as a batch (:mod:`driftd.ingest.columns`: one compiled scan, then columns):
routing fields, then, per monitor of the event's model, its feature values in the monitor's
column layout. Events the scan cannot prove it reads exactly — and events with a value some
monitor would refuse — go through the orjson path (:class:`~driftd.ingest.decode.EventDecoder`
and :meth:`~driftd.ingest.decode.RowMapper.map`) one by one, *in their place in the run*: a
category dictionary that grows as labels appear (warmup and version references) sees the
labels in the same order either way, so both paths give the same panes, rejections, codes and
order. Per (monitor, version): one pane with the rows as arrays, their positions, event times,
offsets and segment keys. Nothing here decides anything: windows, verdicts and alerts belong to
the monitor stage, which merges the panes of every partition.

Events of models that a performance monitor watches are also handed back (event id, score,
time, label) for the delayed-label join; lines without a model in the prediction stream may
be label events.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from driftd.config import SchemaConfig
from driftd.ingest.columns import FAST, REJECTED, SLOW, BatchDecoder, Columns
from driftd.ingest.decode import MISSING_CODE, EventDecoder, KeepingDecoder, Reject, RowMapper
from driftd.ingest.panes import Pane, Rows
from driftd.sources.batch import RecordBatch, as_batch
from driftd.types import RawRecord

SegmentKey = Callable[[dict[str, Any]], tuple[str, ...]]
Bool = npt.NDArray[np.bool_]
I8 = npt.NDArray[np.int8]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Nums = dict[int, tuple[F64, Bool]]  # slot → (values, refused)
Labs = dict[int, tuple[I32, list[str], Bool]]  # slot → (label codes, labels, refused)
Luts = dict[tuple[int, int], I32]  # (target, categorical column) → label code → code
Segs = dict[int, tuple[I32, list[str]]]  # slot → (segment label ids, labels)
Values = tuple[Nums, Labs, Luts, Segs]


@dataclass(frozen=True, slots=True)
class RouteTarget:
    """What the partition stage needs of one monitor: its model, row layout and segments
    (``segment_key`` reads a parsed event's segment fields, at ``segment_by``)."""

    name: str
    model: str
    mapper: RowMapper
    n_num: int
    n_cat: int
    segment_key: SegmentKey | None = None
    segment_by: tuple[str, ...] = ()


@dataclass(slots=True)
class Routed:
    """One partition run through the stage. ``rejected``: (index in the run, reason,
    detail). ``predictions``: (model, version, (event_id, label, raw ts), prediction, ts,
    index in the run) of accepted events of models in ``perf_models``. ``label_lines``:
    indices of lines without a model that carry an event id and a label (the caller decides
    whether they are labels)."""

    panes: list[Pane] = field(default_factory=list)
    rejected: list[tuple[int, str, str]] = field(default_factory=list)
    predictions: list[tuple[str, str, Any, Any, float, int]] = field(default_factory=list)
    label_lines: list[tuple[int, tuple[Any, Any, Any]]] = field(default_factory=list)
    accepted: int = 0


@dataclass(slots=True)
class _Slow:
    """An event the orjson path accepted: its fields and, per target, its row."""

    model: str
    version: str
    ts: float
    rows: list[tuple[list[float], list[int]]]
    seg: list[tuple[str, ...] | None]
    perf: tuple[Any, Any] | None  # (extra, prediction)


class _Layout:
    """A target's slots in the batch scan: numeric columns, categorical columns, segments."""

    def __init__(self, t: RouteTarget, dec: BatchDecoder) -> None:
        m = t.mapper
        self.num = [dec.feature_slot(p) for p in m.num_paths]
        self.cat = [dec.feature_slot(p) for p in m.cat_paths]
        if m.prediction_kind == "numeric":
            self.num.append(dec.s_prediction)
        elif m.prediction_kind == "categorical":
            self.cat.append(dec.s_prediction)
        self.seg = [dec.event_slot(p) for p in t.segment_by] if t.segment_key else []


class Router:
    def __init__(
        self,
        schema: SchemaConfig,
        max_event_bytes: int,
        targets: Sequence[RouteTarget],
        *,
        perf_models: frozenset[str] = frozenset(),
        version_pattern: str = r"[A-Za-z0-9][A-Za-z0-9._:+@/=-]*",
        max_version_chars: int = 128,
    ) -> None:
        self.targets = list(targets)
        self.by_model: dict[str, list[int]] = {}
        for j, t in enumerate(self.targets):
            self.by_model.setdefault(t.model, []).append(j)
        # The orjson path. Segment fields are read from the parsed event, which only the
        # keeping decoder holds on to.
        self._keeper: KeepingDecoder | None = None
        self.decoder = EventDecoder(schema, max_event_bytes, version_pattern, max_version_chars)
        if any(t.segment_key is not None for t in self.targets):
            self.decoder = self._keeper = KeepingDecoder(
                schema, max_event_bytes, version_pattern, max_version_chars
            )
        self.perf_models = perf_models
        if perf_models:
            self.decoder.want_extra = True
        d = self.decoder
        self.columns = BatchDecoder(
            schema, max_event_bytes, d._check_version, d._known_versions, extras=bool(perf_models)
        )
        self._layout = [_Layout(t, self.columns) for t in self.targets]
        self.fast = True  # False: every event through the orjson path (tests compare both)
        self._seq: dict[str, int] = {}  # partition → next pane sequence number

    # ------------------------------------------------------------------ the orjson path

    def _slow(self, i: int, rec: RawRecord, out: Routed) -> _Slow | None:
        """One event through the orjson path: its fields and rows, or None (rejected or a
        label line, recorded in ``out``)."""
        perf = self.perf_models
        try:
            model, version, ts, feats, pred = self.decoder.decode(rec.value, rec.timestamp_ms)
            tj = self.by_model.get(model)
            if tj is None:
                raise Reject("unknown_model", model[:100])
            rows: list[tuple[list[float], list[int]]] = []
            for j in tj:  # map() appends nothing when it rejects
                num: list[float] = []
                cat: list[int] = []
                self.targets[j].mapper.map(feats, pred, num, cat)
                rows.append((num, cat))
        except Reject as r:
            if perf and r.reason == "missing_model":
                extra = self.decoder.last_extra
                if extra[0] is not None and extra[1] is not None:
                    out.label_lines.append((i, extra))
                    return None
            out.rejected.append((i, r.reason, r.detail))
            return None
        seg: list[tuple[str, ...] | None] = [None] * len(tj)
        if self._keeper is not None:
            obj = self._keeper.last
            for k, j in enumerate(tj):
                key = self.targets[j].segment_key
                if key is not None:
                    seg[k] = key(obj)
        kept = (self.decoder.last_extra, pred) if model in perf else None
        return _Slow(model, version, ts, rows, seg, kept)

    # ------------------------------------------------------------------ the run

    def route(
        self, records: Sequence[RawRecord] | RecordBatch, first_position: int, partition: str
    ) -> Routed:
        """Decode and map one partition's run of records (positions ``first_position`` …)."""
        batch = as_batch(records)
        n = len(batch)
        out = Routed()
        if n == 0:
            return out
        lay = self._layout
        cols = self.columns.decode(batch) if self.fast else None
        if cols is None:
            state = np.full(n, SLOW, dtype=np.int8)
            mine = [np.zeros(n, dtype=np.bool_) for _ in lay]
        else:
            state = cols.state
            mine = self._fast_rows(cols)
            out.rejected.extend((i, r, d) for i, (r, d) in cols.rejected.items())
        nums: Nums = {}
        labs: Labs = {}
        segs: Segs = {}
        if cols is not None:
            fast = state == FAST
            bad = np.zeros(n, dtype=np.bool_)
            for j, lj in enumerate(lay):
                if not mine[j].any():
                    continue
                for s in lj.num:
                    if s not in nums:
                        nums[s] = cols.numeric(s, fast)
                    bad |= mine[j] & nums[s][1]
                for s in lj.cat:
                    if s not in labs:
                        labs[s] = cols.labels(s, fast)
                    bad |= mine[j] & labs[s][2]
            if bad.any():  # a value some monitor would refuse: the orjson path decides
                state[bad] = SLOW
                for rows in mine:
                    rows &= ~bad
            fast = state == FAST
            for j, lj in enumerate(lay):
                if mine[j].any():
                    for s in lj.seg:
                        if s not in segs:
                            segs[s] = cols.segments(s, fast)
        slow: dict[int, _Slow] = {}
        luts = self._in_order(batch, state, mine, labs, out, slow)
        out.rejected.sort(key=lambda r: r[0])
        return self._panes(
            batch, cols, state, mine, (nums, labs, luts, segs), slow, out, first_position, partition
        )

    def _fast_rows(self, cols: Columns) -> list[Bool]:
        """Per target, the FAST events of its model; FAST events of a model no monitor
        watches are rejected (``unknown_model``)."""
        state = cols.state
        fast = state == FAST
        code = {m: c for c, m in enumerate(cols.models)}
        unknown = [c for c, m in enumerate(cols.models) if m not in self.by_model]
        if unknown:
            for i in np.flatnonzero(fast & np.isin(cols.model, unknown)).tolist():
                cols.reject(i, "unknown_model", cols.models[int(cols.model[i])][:100])
                state[i] = REJECTED
            fast = state == FAST
        out = []
        for t in self.targets:
            c = code.get(t.model)
            out.append(fast & (cols.model == c) if c is not None else np.zeros_like(fast))
        return out

    def _in_order(
        self,
        batch: RecordBatch,
        state: I8,
        mine: list[Bool],
        labs: Labs,
        out: Routed,
        slow: dict[int, _Slow],
    ) -> Luts:
        """Category codes of the fast events' labels, and the slow events through the orjson
        path, in the order the events come: a dictionary that grows as labels appear gets
        them in the same order as if every event went through the orjson path. Returns per
        (target, categorical column) the batch label → code table."""
        todo: list[tuple[int, int, int, int]] = []  # (first event, target, column, label)
        luts: Luts = {}
        looks: dict[int, list[Callable[[str], int]]] = {}
        for j, lj in enumerate(self._layout):
            if not mine[j].any():
                continue
            looks[j] = self.targets[j].mapper.lookups()
            for c, s in enumerate(lj.cat):
                codes, labels, _ = labs[s]
                luts[(j, c)] = np.full(len(labels) + 1, MISSING_CODE, dtype=np.int32)
                sel = np.flatnonzero(mine[j] & (codes >= 0))
                if sel.size:
                    u, first = np.unique(codes[sel], return_index=True)
                    rows = sel[first].tolist()
                    todo.extend((r, j, c, int(x)) for r, x in zip(rows, u.tolist(), strict=True))
        todo.sort()
        k = 0
        for i in np.flatnonzero(state == SLOW).tolist():
            while k < len(todo) and todo[k][0] < i:
                self._look(todo[k], labs, luts, looks)
                k += 1
            got = self._slow(i, batch.record(i), out)
            if got is not None:
                slow[i] = got
        for item in todo[k:]:
            self._look(item, labs, luts, looks)
        return luts

    def _look(
        self,
        item: tuple[int, int, int, int],
        labs: Labs,
        luts: Luts,
        looks: dict[int, list[Callable[[str], int]]],
    ) -> None:
        _, j, c, u = item
        s = self._layout[j].cat[c]
        luts[(j, c)][u] = looks[j][c](labs[s][1][u])

    # ------------------------------------------------------------------ panes

    def _panes(
        self,
        batch: RecordBatch,
        cols: Columns | None,
        state: I8,
        mine: list[Bool],
        values: Values,
        slow: dict[int, _Slow],
        out: Routed,
        first_position: int,
        partition: str,
    ) -> Routed:
        """Accepted events grouped by (model, version) in order of their first event; per
        group and target of the model, one pane."""
        n = len(batch)
        fast = np.zeros(n, dtype=np.bool_)
        for rows in mine:
            fast |= rows
        group = np.full(n, -1, dtype=np.int64)
        keys: dict[tuple[str, str], int] = {}
        if cols is not None and fast.any():
            fi = np.flatnonzero(fast)
            nv = max(len(cols.versions), 1)
            pair = cols.model[fi].astype(np.int64) * nv + cols.version[fi]
            u, inv = np.unique(pair, return_inverse=True)
            gid = [keys.setdefault((cols.models[p // nv], cols.versions[p % nv]), len(keys))
                   for p in u.tolist()]  # fmt: skip
            group[fi] = np.asarray(gid, dtype=np.int64)[inv]
        for i, sl in slow.items():
            group[i] = keys.setdefault((sl.model, sl.version), len(keys))
        if not keys:
            return out
        acc = np.flatnonzero(group >= 0)
        out.accepted = int(acc.size)
        g_acc = group[acc]
        first = np.full(len(keys), n, dtype=np.int64)
        np.minimum.at(first, g_acc, acc)
        names = list(keys)
        ts = cols.ts.copy() if cols is not None else np.full(n, np.nan)
        for i, sl in slow.items():
            ts[i] = sl.ts
        blocks: dict[int, tuple[F64, I32, I32 | None, list[list[str]]]] = {}
        seq = self._seq.get(partition, 0)
        for g in np.argsort(first, kind="stable").tolist():
            model, version = names[g]
            idx = acc[g_acc == g]
            for j in self.by_model[model]:
                if j not in blocks:
                    blocks[j] = self._block(j, n, values, slow)
                num, cat, seg_ids, seg_labels = blocks[j]
                seg = None
                seg_keys: list[tuple[str, ...]] = []
                if seg_ids is not None:
                    seg, seg_keys = _segment_codes(seg_ids[idx], seg_labels)
                block = Rows(
                    num[idx],
                    cat[idx],
                    idx + first_position,
                    ts[idx],
                    batch.offsets[idx],
                    np.zeros(idx.size, dtype=np.int32),
                    seg,
                )
                t = self.targets[j]
                out.panes.append(Pane(t.name, version, partition, seq, block, seg_keys))
                seq += 1
        self._seq[partition] = seq
        if self.perf_models:
            self._predictions(cols, acc, names, g_acc, ts, slow, out)
        return out

    def _block(
        self, j: int, n: int, values: Values, slow: dict[int, _Slow]
    ) -> tuple[F64, I32, I32 | None, list[list[str]]]:
        """Target ``j``'s numeric and categorical blocks (and segment label ids per segment
        field) for every event of the run: the fast path's columns, slow events' rows."""
        nums, labs, luts, segs = values
        lj = self._layout[j]
        num = np.full((n, len(lj.num)), np.nan)
        for c, s in enumerate(lj.num):
            if s in nums:
                num[:, c] = nums[s][0]
        cat = np.full((n, len(lj.cat)), MISSING_CODE, dtype=np.int32)
        for c, s in enumerate(lj.cat):
            lut = luts.get((j, c))
            if lut is not None:
                cat[:, c] = lut[labs[s][0]]
        t = self.targets[j]
        seg_ids: I32 | None = None
        seg_labels: list[list[str]] = []
        if lj.seg:
            seg_ids = np.full((n, len(lj.seg)), -1, dtype=np.int32)
            index: list[dict[str, int]] = []
            for c, s in enumerate(lj.seg):
                ids, labels = segs.get(s, (None, []))
                if ids is not None:
                    seg_ids[:, c] = ids
                seg_labels.append(list(labels))
                index.append({lab: k for k, lab in enumerate(labels)})
        for i, sl in slow.items():
            tj = self.by_model.get(sl.model)
            if tj is None or j not in tj:
                continue
            k = tj.index(j)
            row_num, row_cat = sl.rows[k]
            num[i] = row_num
            cat[i] = row_cat
            key = sl.seg[k]
            if seg_ids is not None and key is not None:
                for c, lab in enumerate(key):
                    seg_ids[i, c] = index[c].setdefault(lab, len(index[c]))
                    if seg_ids[i, c] == len(seg_labels[c]):
                        seg_labels[c].append(lab)
        assert t.n_num == num.shape[1] and t.n_cat == cat.shape[1]
        return num, cat, seg_ids, seg_labels

    def _predictions(
        self,
        cols: Columns | None,
        acc: I64,
        names: list[tuple[str, str]],
        g_acc: I64,
        ts: F64,
        slow: dict[int, _Slow],
        out: Routed,
    ) -> None:
        """(model, version, (event id, label, raw ts), prediction, ts) of the accepted events
        of performance-monitored models, in order."""
        d = self.columns
        for i, g in zip(acc.tolist(), g_acc.tolist(), strict=True):
            model, version = names[g]
            if model not in self.perf_models:
                continue
            sl = slow.get(i)
            if sl is not None:
                assert sl.perf is not None
                out.predictions.append((model, version, sl.perf[0], sl.perf[1], sl.ts, i))
                continue
            assert cols is not None
            extra = (cols.raw(i, d.s_event_id), cols.raw(i, d.s_label), cols.raw(i, d.s_ts))
            pred = cols.raw(i, d.s_prediction)
            out.predictions.append((model, version, extra, pred, float(ts[i]), i))


def _segment_codes(
    ids: I32, labels: list[list[str]]
) -> tuple[I32, list[tuple[str, ...]]]:
    """A pane's segment codes: its distinct keys in order of first row."""
    uniq, first, inv = np.unique(ids, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty(order.size, dtype=np.int32)
    rank[order] = np.arange(order.size, dtype=np.int32)
    keys = [tuple(labels[c][int(v)] for c, v in enumerate(uniq[o])) for o in order.tolist()]
    return rank[inv.reshape(-1)], keys

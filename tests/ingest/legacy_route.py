"""The partition stage as it was before the batch decoder (driftd 0.2, ``ingest/route.py``):
every event parsed with orjson and mapped value by value. Kept verbatim as the oracle the
batch path is compared with (tests/ingest/test_batch_decode.py)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from driftd.config import SchemaConfig
from driftd.ingest.decode import EventDecoder, KeepingDecoder, Reject
from driftd.ingest.panes import Pane, Rows
from driftd.ingest.route import Routed, RouteTarget
from driftd.types import RawRecord


class _Staging:
    """The rows of one (model, version) in one run, per target monitor."""

    __slots__ = ("version", "targets", "num", "cat", "seg", "idx", "ts")

    def __init__(self, version: str, targets: Sequence[RouteTarget]) -> None:
        self.version = version
        self.targets = targets
        self.num: list[list[float]] = [[] for _ in targets]
        self.cat: list[list[int]] = [[] for _ in targets]
        self.seg: list[list[tuple[str, ...]]] = [[] for _ in targets]
        self.idx: list[int] = []
        self.ts: list[float] = []


class LegacyRouter:
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
        self.by_model: dict[str, list[RouteTarget]] = {}
        for t in self.targets:
            self.by_model.setdefault(t.model, []).append(t)
        # Segment fields are read from the parsed event, which only the keeping decoder holds
        # on to: without segmented monitors the plain decoder's per-event path is unchanged.
        self._keeper: KeepingDecoder | None = None
        self.decoder = EventDecoder(schema, max_event_bytes, version_pattern, max_version_chars)
        if any(t.segment_key is not None for t in self.targets):
            self.decoder = self._keeper = KeepingDecoder(
                schema, max_event_bytes, version_pattern, max_version_chars
            )
        self.perf_models = perf_models
        if perf_models:
            self.decoder.want_extra = True
        self._seq: dict[str, int] = {}  # partition → next pane sequence number

    def route(self, records: Sequence[RawRecord], first_position: int, partition: str) -> Routed:
        """Decode and map one partition's run of records (positions ``first_position`` …)."""
        out = Routed()
        decode = self.decoder.decode
        keeper = self._keeper
        perf = self.perf_models
        staging: dict[tuple[str, str], _Staging] = {}
        order: list[_Staging] = []  # by first accepted event
        for i, rec in enumerate(records):
            try:
                model, version, ts, feats, pred = decode(rec.value, rec.timestamp_ms)
                st = staging.get((model, version))
                if st is None:
                    targets = self.by_model.get(model)
                    if targets is None:
                        raise Reject("unknown_model", model[:100])
                    st = staging[(model, version)] = _Staging(version, targets)
                if len(st.targets) == 1:  # map() appends nothing when it rejects
                    st.targets[0].mapper.map(feats, pred, st.num[0], st.cat[0])
                else:
                    done: list[tuple[int, int, int]] = []
                    try:
                        for j, t in enumerate(st.targets):
                            done.append((j, len(st.num[j]), len(st.cat[j])))
                            t.mapper.map(feats, pred, st.num[j], st.cat[j])
                    except Reject:
                        for j, n0, c0 in done:
                            del st.num[j][n0:]
                            del st.cat[j][c0:]
                        raise
            except Reject as r:
                if perf and r.reason == "missing_model":
                    extra = self.decoder.last_extra
                    if extra[0] is not None and extra[1] is not None:
                        out.label_lines.append((i, extra))
                        continue
                out.rejected.append((i, r.reason, r.detail))
                continue
            if not st.idx:
                order.append(st)
            st.idx.append(i)
            st.ts.append(ts)
            if model in perf:
                out.predictions.append((model, version, self.decoder.last_extra, pred, ts, i))
            if keeper is not None:
                obj = keeper.last
                for j, t in enumerate(st.targets):
                    if t.segment_key is not None:
                        st.seg[j].append(t.segment_key(obj))
        if not order:
            return out
        first, last = records[0].offset, records[-1].offset
        if last - first == len(records) - 1:  # the usual case: no gaps (compaction, markers)
            offsets = np.arange(first, last + 1, dtype=np.int64)
        else:
            offsets = np.fromiter((r.offset for r in records), np.int64, count=len(records))
        seq = self._seq.get(partition, 0)
        for st in order:
            idx = np.asarray(st.idx, dtype=np.int64)
            n = idx.size
            out.accepted += n
            pos = idx + first_position
            ts_arr = np.asarray(st.ts, dtype=np.float64)
            off = offsets[idx]
            for j, t in enumerate(st.targets):
                seg = None
                keys: list[tuple[str, ...]] = []
                if t.segment_key is not None:
                    table: dict[tuple[str, ...], int] = {}
                    codes = [table.setdefault(k, len(table)) for k in st.seg[j]]
                    seg = np.asarray(codes, dtype=np.int32)
                    keys = list(table)
                rows = Rows(
                    np.asarray(st.num[j], dtype=np.float64).reshape(n, t.n_num),
                    np.asarray(st.cat[j], dtype=np.int32).reshape(n, t.n_cat),
                    pos,
                    ts_arr,
                    off,
                    np.zeros(n, dtype=np.int32),
                    seg,
                )
                out.panes.append(Pane(t.name, st.version, partition, seq, rows, keys))
                seq += 1
        self._seq[partition] = seq
        return out

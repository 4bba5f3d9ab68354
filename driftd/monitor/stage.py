"""The monitor stage of one monitor: panes from every source partition → one verdict per
model version.

Per batch, :meth:`MonitorStage.fold` merges the panes of each version into one stream in
position order, admits new versions (within ``max_versions``), runs the event-time clock for
time windows (late and invalid rows are handed back as rejections), folds each version's rows
into its :class:`~driftd.monitor.version.VersionMonitor`, closes the time windows the
watermark passed, and returns the output lines ordered by the position of the row that
triggered them — so the output of a stream does not depend on how it was batched.

Versions in ``reference: {type: version}`` mode are folded together, interleaved at every
window step, so that each evaluation sees the baseline's window exactly as it stood at the
evaluated window's last row.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import orjson

from driftd.config import SlidingTimeWindow, TumblingTimeWindow
from driftd.ingest.panes import Pane, Rows, merge
from driftd.monitor import refmodes
from driftd.monitor.deferred import Evaluator, resolve
from driftd.monitor.spec import MonitorSpec
from driftd.monitor.version import Histogram, Output, VersionMonitor
from driftd.policy import Policy
from driftd.reference.profile import segment_label
from driftd.windows.clock import EventClock
from driftd.windows.count import CountWindow

log = logging.getLogger(__name__)

# Evaluation latency histogram buckets (seconds).
EVAL_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
MAX_ORDER = 1000  # versions remembered for rollback_to (names only)

Rejected = tuple[int, str, str]  # (position, reason, detail)


def monitor_fingerprint(spec: MonitorSpec) -> str:
    """What saved windows depend on: window shape, feature layout and kinds, and the
    reference profile (categorical codes index its categories). Tests, thresholds and policy
    may change without invalidating saved windows."""
    c = spec.cfg
    key = {
        "window": c.window.model_dump(mode="json"),
        "features": {n: [f.kind, f.path] for n, f in c.features.items()},
        "prediction": c.prediction.kind if c.prediction else None,
        "profile": spec.profile.id,
        "segment_by": list(c.segment_by),
    }
    return hashlib.sha256(orjson.dumps(key, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


@dataclass(slots=True)
class Folded:
    outputs: list[Output] = field(default_factory=list)  # (trigger position, line)
    rejected: list[Rejected] = field(default_factory=list)


class MonitorStage:
    def __init__(
        self,
        spec: MonitorSpec,
        index: int,
        code_tables: Callable[[], list[dict[str, int]]],
        eval_hist: Histogram | None = None,
    ) -> None:
        self.spec = spec
        self.cfg = spec.cfg
        self.name = spec.cfg.name
        self.model = spec.cfg.model
        self.index = index
        self.policy = Policy(spec.cfg.policy)
        self.fingerprint = monitor_fingerprint(spec)
        self.segment_by = tuple(spec.cfg.segment_by)
        self._code_tables = code_tables
        self.eval_hist = eval_hist if eval_hist is not None else Histogram(EVAL_BUCKETS)
        self.versions: dict[str, VersionMonitor] = {}
        self.order: list[str] = []  # versions by first appearance (rollback_to)
        self.served: set[str] = set()  # versions that reached policy.min_events (ever)
        self.partition_keys: list[str] = []  # partition code → "topic/partition"
        self._part_code: dict[str, int] = {}
        self._seg_keys: list[tuple[str, ...]] = []
        self._seg_code: dict[tuple[str, ...], int] | None = {} if self.segment_by else None
        w = spec.cfg.window
        self.clock: EventClock | None = None
        if isinstance(w, TumblingTimeWindow | SlidingTimeWindow):
            self.clock = EventClock(w.allowed_lateness_s, w.idle_partition_s, w.max_future_s)
        # process-lifetime counters (Prometheus), not checkpointed
        self.accepted: Counter[str] = Counter()  # version → rows folded in
        self.alerts: Counter[str] = Counter()  # severity → alerts raised
        self.detector_drifts: Counter[tuple[str, str]] = Counter()  # (version, detector)
        self.segment_events: Counter[tuple[str, str]] = Counter()  # (version, segment label)
        self.segment_overflow: Counter[str] = Counter()  # version → rows sent to __other__
        self.evicted = 0
        self.last_evaluation_wall: float | None = None
        self.deferred: Evaluator | None = None  # set by a pipeline evaluating steps off-line
        self.meta_dirty = True
        self.removed: set[str] = set()  # versions evicted since the last snapshot
        self._merged_next: dict[tuple[str, str], int] = {}  # this batch's last offsets
        # scale-out: rows merged from the panes topic, numbered (their positions)
        self.stream_position = 0

    # ------------------------------------------------------------------ context for versions

    def segment_key(self, code: int) -> tuple[str, ...]:
        return self._seg_keys[code]

    def segment_label(self, key: tuple[str, ...]) -> str:
        return segment_label(self.segment_by, key)

    def segment_dict(self, key: tuple[str, ...]) -> dict[str, str]:
        return dict(zip(self.segment_by, key, strict=True))

    def code_tables(self) -> list[dict[str, int]]:
        return self._code_tables()

    def rollback_to(self, version: str) -> str | None:
        """The version that served before ``version``: the latest earlier one (by first
        appearance in the merged stream) that reached ``policy.min_events`` events, so a
        stray or invented version is never named; else the configured fallback; else None.
        In version reference mode: the baseline."""
        if self.spec.mode == "version":
            base = refmodes.baseline_of(self.cfg, version, self.order, set(self.versions))
            if base is not None:
                return base
        if version in self.order:
            for earlier in reversed(self.order[: self.order.index(version)]):
                if earlier in self.served:
                    return earlier
        fb = self.cfg.fallback_version
        return fb if fb != version else None

    def baseline(self, version: str) -> tuple[str, CountWindow] | None:
        base = refmodes.baseline_of(self.cfg, version, self.order, set(self.versions))
        vm = self.versions.get(base) if base is not None else None
        if vm is None or not isinstance(vm.window, CountWindow):
            return None
        if vm.window.filled < self.cfg.policy.min_events:
            return None
        return base, vm.window  # type: ignore[return-value]

    # ------------------------------------------------------------------ partitions

    def partition_code(self, key: str) -> int:
        code = self._part_code.get(key)
        if code is None:
            code = self._part_code[key] = len(self.partition_keys)
            self.partition_keys.append(key)
            self.meta_dirty = True
        return code

    def register(self, keys: Sequence[str], now: float) -> None:
        """Partitions assigned to this process: they hold the event-time watermark until
        they deliver or go idle (time windows)."""
        if self.clock is not None:
            for k in keys:
                self.clock.register(self.partition_code(k), now)

    def forget(self, keys: Sequence[str]) -> None:
        if self.clock is not None:
            for k in keys:
                if k in self._part_code:
                    self.clock.forget(self._part_code[k])

    # ------------------------------------------------------------------ folding

    def fold(self, panes: Sequence[Pane], now: float) -> Folded:
        """Merge a batch's panes (every partition) and fold them into the versions."""
        res = Folded()
        grouped: dict[str, list[Pane]] = {}
        for p in self._fresh(panes):
            if len(p.rows):
                grouped.setdefault(p.version, []).append(p)
        if not grouped:
            return res
        for p in panes:
            self.partition_code(p.partition)
        n_seg = len(self._seg_code) if self._seg_code is not None else 0
        batch = {v: merge(ps, self._part_code, self._seg_code) for v, ps in grouped.items()}
        if self._seg_code is not None and len(self._seg_code) != n_seg:
            self._seg_keys = list(self._seg_code)
            self.meta_dirty = True
        ordered = sorted(batch, key=lambda v: int(batch[v].pos[0]))
        in_batch = set(ordered)
        full = False  # once nothing can be evicted, later new versions of the batch cannot be
        for v in ordered:
            if v in self.versions:
                continue
            if full or not self._admit(v, in_batch):
                full = True
                rows = batch.pop(v)
                detail = f"monitor {self.name}: {v[:100]}"
                res.rejected.extend((int(p), "too_many_versions", detail) for p in rows.pos)
        trigger_of: Callable[[float], int] | None = None
        if self.clock is not None:
            trigger_of = self._run_clock(batch, now, res.rejected)
        for v in ordered:
            if v in batch and len(batch[v]) and v not in self.order:
                self.order.append(v)
                self.meta_dirty = True
        if len(self.order) > MAX_ORDER:
            self._trim_order()
        out: list[Output] = []
        live = [(v, batch[v]) for v in ordered if v in batch and len(batch[v])]
        for v, rows in live:
            self.accepted[v] += len(rows)
            vm = self.versions[v]
            if v not in self.served and vm.accepted + len(rows) >= self.cfg.policy.min_events:
                self.served.add(v)  # before the fold: its alerts may name it already
                self.meta_dirty = True
        if self.spec.mode == "version":
            out.extend(self._fold_versus(live))
        else:
            for v, rows in live:
                out.extend(self.versions[v].fold(rows, self))
        if trigger_of is not None:
            out.extend(self._advance(trigger_of))
        for (version, partition), last in self._merged_next.items():
            kept = self.versions.get(version)
            if kept is not None and last > kept.merged.get(partition, -1):
                kept.merged[partition] = last
        self._merged_next.clear()
        out.sort(key=lambda o: o[0])  # stable: a trigger's evaluation before its alerts
        res.outputs = out
        return res

    def _trim_order(self) -> None:
        """Keep at most MAX_ORDER names: the oldest versions that never served and have no
        state go first (a stream inventing versions must not push the real ones out of
        ``rollback_to``'s memory), then, if still too many, the oldest."""
        drop = len(self.order) - MAX_ORDER
        important = self.served | set(self.versions)
        kept: list[str] = []
        for v in self.order:
            if drop > 0 and v not in important:
                drop -= 1
                continue
            kept.append(v)
        self.order = kept[drop:] if drop > 0 else kept
        self.served &= set(self.order)

    def _fresh(self, panes: Sequence[Pane]) -> list[Pane]:
        """The panes' rows not merged before: a version remembers, per source partition, the
        last offset it merged (a pane published twice — a crash between publishing and
        committing the source offsets — is recognised row by row)."""
        out: list[Pane] = []
        seen: dict[tuple[str, str], int] = {}
        for p in panes:
            r = p.rows
            if not len(r) or int(r.off[-1]) < 0:  # files: no offsets, nothing is replayed
                out.append(p)
                continue
            key = (p.version, p.partition)
            vm = self.versions.get(p.version)
            floor = seen.get(key, vm.merged.get(p.partition, -1) if vm is not None else -1)
            if int(r.off[0]) > floor:
                out.append(p)
            elif int(r.off[-1]) > floor:
                keep = np.flatnonzero(r.off > floor)
                out.append(replace(p, rows=r.take(keep), segment_keys=p.segment_keys))
            seen[key] = max(floor, int(r.off[-1]))
        for (version, partition), last in seen.items():
            self._merged_next[(version, partition)] = last
        return out

    def tick(self, now: float, position: int) -> list[dict[str, Any]]:
        """Time windows: let idle partitions stop holding the watermark; close windows."""
        if self.clock is None:
            return []
        before = self.clock.watermark
        if self.clock.tick(now) == before:
            return []
        out = self._advance(lambda _e: position)
        return resolve(line for _, line in sorted(out, key=lambda o: o[0]))

    def finish(self, position: int) -> list[dict[str, Any]]:
        """End of a finite stream: close every open time window."""
        if self.clock is None:
            return []
        self.clock.raise_to(math.inf)
        out = self._advance(lambda _e: position)
        return resolve(line for _, line in sorted(out, key=lambda o: o[0]))

    def _advance(self, trigger_of: Callable[[float], int]) -> list[Output]:
        assert self.clock is not None
        wm = self.clock.watermark
        out: list[Output] = []
        for vm in self.versions.values():
            out.extend(vm.advance(wm, trigger_of, self))
        return out

    def _run_clock(
        self, batch: dict[str, Rows], now: float, rejected: list[Rejected]
    ) -> Callable[[float], int]:
        """Find late and invalid rows of the whole monitor's stream (all versions, position
        order), drop them from ``batch`` and report them; return the trigger function of the
        windows the moved watermark closes."""
        assert self.clock is not None
        names = list(batch)
        allrows = Rows.concat([batch[v] for v in names])
        order = np.argsort(allrows.pos, kind="stable")
        pos = allrows.pos[order]
        seen = self.clock.observe(allrows.ts[order], allrows.part[order], now)
        bad = seen.late | seen.invalid
        if bad.any():
            detail = f"monitor {self.name}"
            for i in np.flatnonzero(bad).tolist():
                reason = "bad_timestamp" if seen.invalid[i] else "late"
                rejected.append((int(pos[i]), reason, detail))
            keep = np.empty(order.size, dtype=np.bool_)
            keep[order] = ~bad
            start = 0
            for v in names:
                n = len(batch[v])
                batch[v] = batch[v].take(np.flatnonzero(keep[start : start + n]))
                start += n
        wm_after = seen.watermark_after

        def trigger_of(end_ts: float) -> int:
            i = int(np.searchsorted(wm_after, end_ts, side="left"))
            return int(pos[min(i, pos.size - 1)])

        return trigger_of

    def _admit(self, version: str, batch: set[str]) -> bool:
        """Create the state of a version seen for the first time, keeping at most
        ``max_versions``: the least recently seen version is dropped, unless it has an open
        alert, is another version's baseline or has rows in this batch. False when none can
        go: the new version's rows are rejected (``too_many_versions``)."""
        cap = self.cfg.max_versions
        if len(self.versions) >= cap:
            baselines: set[str] = set()
            if self.spec.mode == "version":
                live = set(self.versions)
                for v in self.versions:
                    base = refmodes.baseline_of(self.cfg, v, self.order, live)
                    if base is not None:
                        baselines.add(base)
            idle = sorted(
                (vm.last_position, v)
                for v, vm in self.versions.items()
                if v not in batch and v not in baselines and not vm.alerting
            )
            if not idle:
                return False
            _, gone = idle[0]
            del self.versions[gone]
            self._forget_series(gone)
            self.removed.add(gone)
            self.evicted += 1
            if self.evicted <= 10 or self.evicted % 1000 == 0:
                log.warning(
                    "monitor %s: more than %d versions; dropped the state of version %s, the"
                    " least recently seen (%d dropped so far)",
                    self.name,
                    cap,
                    gone,
                    self.evicted,
                    extra={"monitor": self.name, "model_version": gone},
                )
        self.versions[version] = VersionMonitor(self, version)
        self.removed.discard(version)
        return True

    def _forget_series(self, version: str) -> None:
        """An evicted version's metric series go with its state."""
        self.accepted.pop(version, None)
        self.segment_overflow.pop(version, None)
        for k in [k for k in self.detector_drifts if k[0] == version]:
            del self.detector_drifts[k]
        for k in [k for k in self.segment_events if k[0] == version]:
            del self.segment_events[k]

    def _fold_versus(self, items: list[tuple[str, Rows]]) -> list[Output]:
        """Fold a batch's rows of a version-mode monitor's versions in position order, up to
        each window step, so every evaluation sees the baseline's window exactly as it stood
        at the evaluated window's last row, however the stream was batched."""
        out: list[Output] = []
        cursor = [0] * len(items)
        points: list[tuple[int, int, int]] = []
        for i, (v, rows) in enumerate(items):
            w = self.versions[v].window
            assert isinstance(w, CountWindow)
            for r in range(w.until_step() - 1, len(rows), w.step):
                points.append((int(rows.pos[r]), i, r + 1))
        points.sort()

        def advance(i: int, end: int) -> None:
            v, rows = items[i]
            a = cursor[i]
            if end > a:
                cursor[i] = end
                out.extend(self.versions[v].fold(rows.take(slice(a, end)), self))

        for p, i, end in points:
            for k, (_v, rows) in enumerate(items):
                if k != i:
                    advance(k, int(np.searchsorted(rows.pos, p, side="right")))
            advance(i, end)
        for k, (_v, rows) in enumerate(items):
            advance(k, len(rows))
        return out

    # ------------------------------------------------------------------ state

    @property
    def dirty(self) -> bool:
        return (
            self.meta_dirty or bool(self.removed) or any(vm.dirty for vm in self.versions.values())
        )

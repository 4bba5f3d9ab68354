"""The stages wired together: records → partition stage → panes → monitor stage → outputs.

:class:`Pipeline` is what ``driftd run``, ``driftd replay`` and the Python API drive: per
batch it assigns positions (1-based count of events read, rejected ones included), runs each
source partition's records through the partition stage (:class:`~driftd.ingest.route.Router`),
hands every monitor the panes of all partitions (:class:`~driftd.monitor.stage.MonitorStage`),
joins delayed labels (:class:`~driftd.monitor.performance.PerformanceStage`) and returns the
output lines — evaluations, alerts, detector hits — ordered by the position that triggered
them. It does no I/O: the loop decides what to do with outputs, rejections and checkpoints.

State for checkpoints comes out as entries (:meth:`Pipeline.checkpoint`): one per monitor,
one per (monitor, version), one for performance state, plus the pipeline's own meta (the
position counter and each source partition's next offset), all of which a checkpoint writes
atomically together.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from driftd.config import Config, ProfileReference
from driftd.ingest.panes import Pane
from driftd.ingest.route import Router, RouteTarget
from driftd.monitor import detect, persist, refmodes
from driftd.monitor.deferred import Evaluator, Pending, resolve
from driftd.monitor.spec import MonitorSpec, build_spec
from driftd.monitor.stage import EVAL_BUCKETS, MonitorStage
from driftd.monitor.version import Histogram
from driftd.monitor.view import Status, monitor_status
from driftd.reference.profile import load_profile_for
from driftd.sources.batch import RecordBatch, as_batch
from driftd.state.checkpoint import PERFORMANCE_KEY
from driftd.stats.progress import OnProgress
from driftd.types import RawRecord

if TYPE_CHECKING:  # river is imported only when a monitor has a performance block
    from driftd.monitor.perf_split import Outcomes
    from driftd.monitor.performance import PerformanceStage

log = logging.getLogger(__name__)

Entry = tuple[dict[str, Any], dict[str, Any]]  # (JSON meta, NumPy arrays)
Loader = Callable[[str], Entry | None]


def load_specs(cfg: Config, progress: OnProgress | None = None) -> list[MonitorSpec]:
    """Every monitor's spec: profile references loaded (and calibrated when the profile has
    no matching calibration, telling ``progress``); warmup / version monitors get their layout
    spec."""
    specs = []
    for i, m in enumerate(cfg.monitors):
        if m.detectors:
            detect.validate(m, i)
        ref = m.reference
        if not isinstance(ref, ProfileReference):
            specs.append(refmodes.layout_spec(m, i))  # references built at run time
            continue
        profile = load_profile_for(m, ref.path, f"monitors.{i}.reference.path")
        specs.append(build_spec(m, profile, i, progress=progress))
    return specs


def monitor_key(name: str) -> str:
    return f"monitor/{name}"


def version_key(name: str, version: str) -> str:
    return f"version/{name}/{version}"


class Pipeline:
    def __init__(self, cfg: Config, specs: Sequence[MonitorSpec] | None = None) -> None:
        self.cfg = cfg
        specs = list(specs) if specs is not None else load_specs(cfg)
        self.eval_hist = Histogram(EVAL_BUCKETS)
        self.stages: list[MonitorStage] = []
        targets: list[RouteTarget] = []
        for i, spec in enumerate(specs):
            mapper = spec.mapper()
            index = next((j for j, m in enumerate(cfg.monitors) if m.name == spec.cfg.name), i)
            self.stages.append(MonitorStage(spec, index, mapper.code_tables, self.eval_hist))
            seg = None
            if spec.cfg.segment_by:
                from driftd.ingest.decode import segment_key_fn

                seg = segment_key_fn(spec.cfg.segment_by)
            targets.append(
                RouteTarget(
                    spec.cfg.name,
                    spec.cfg.model,
                    mapper,
                    spec.n_num,
                    spec.n_cat,
                    seg,
                    tuple(spec.cfg.segment_by),
                )
            )
        self.by_name = {s.name: s for s in self.stages}
        perf_monitors = [  # the delayed-label join (an estimate alone needs no labels)
            (s, s.cfg.performance)
            for s in self.stages
            if s.cfg.performance is not None and s.cfg.performance.labels
        ]
        self.perf: PerformanceStage | None = None
        if perf_monitors:
            from driftd.monitor.performance import PerformanceStage

            self.perf = PerformanceStage(cfg, perf_monitors)
        perf_models = frozenset(s.model for s, _ in perf_monitors)
        self.router = Router(
            cfg.schema_,
            cfg.input.max_event_bytes,
            targets,
            perf_models=perf_models,
            version_pattern=cfg.input.model_version_pattern,
            max_version_chars=cfg.input.max_model_version_chars,
        )
        self.position = 0  # events read so far, over restarts (checkpointed)
        self.sources: dict[str, int] = {}  # partition key → next offset (checkpointed)
        # process-lifetime counters (Prometheus counters: monotonic, not checkpointed)
        self.events_read = 0
        self.accepted = 0
        self.rejected: Counter[str] = Counter()
        # rejected records kept for a dead-letter destination (only when one is configured)
        self.collect_rejects = False
        self._rejects: list[tuple[RawRecord, str, str]] = []
        self.dirty = False  # changed since the last checkpoint
        # Scale-out: the monitors this process decides (their internal partitions are
        # assigned to it); None: every monitor (one process, the embedded mode).
        self.owned: set[str] | None = None
        self._evaluator: Evaluator | None = None
        self._held: list[dict[str, Any] | Pending] = []  # the last batch's lines, not yet out

    def defer_evaluations(self) -> bool:
        """Evaluate count-window steps on a thread while the next batch is read (see
        :mod:`driftd.monitor.deferred`): :meth:`process` then hands each batch's lines out
        with the next batch, :meth:`drain` at once. Not with time windows or performance
        monitors (their lines also come between batches); False then."""
        if self.time_based or self.perf is not None:
            return False
        if self._evaluator is None:
            self._evaluator = Evaluator()
            for s in self.stages:
                s.deferred = self._evaluator
        return True

    @property
    def holding(self) -> bool:
        """Lines of the last batch wait for :meth:`drain` (or the next batch)."""
        return bool(self._held)

    def drain(self) -> list[dict[str, Any]]:
        """The held lines, every deferred step concluded (in trigger order)."""
        held, self._held = self._held, []
        return resolve(held)

    # ------------------------------------------------------------------ processing

    def process(
        self,
        records: Sequence[RawRecord] | RecordBatch,
        now: float | None = None,
        runs: Sequence[tuple[str, str, int, int]] | None = None,
    ) -> list[dict[str, Any]]:
        """Fold a batch in; return the output lines in trigger order. A source's
        :class:`~driftd.sources.batch.RecordBatch` carries its partition runs (partition
        key, topic, start, end); ``runs`` overrides them."""
        now = time.time() if now is None else now
        batch = as_batch(records)
        base = self.position
        panes = self.route(batch, runs)
        lines = self._fold(panes, now, lambda pos: batch.record(pos - base - 1))
        perf = self.perf
        if perf is not None:
            self._take_perf_rejects(perf)
            if len(batch):
                lines.extend(perf.flush(self.position))
        if self._evaluator is None:
            return resolve(lines)
        out = self.drain()
        self._held = lines
        return out

    def route(
        self,
        records: Sequence[RawRecord] | RecordBatch,
        runs: Sequence[tuple[str, str, int, int]] | None = None,
    ) -> dict[str, list[Pane]]:
        """The partition stage: a batch's records → panes per monitor (rejections counted and
        kept for the dead-letter destination; label events staged for the join)."""
        batch = as_batch(records)
        base = self.position
        n = len(batch)
        self.position += n
        self.events_read += n
        if n:
            self.dirty = True
        panes: dict[str, list[Pane]] = {}
        perf = self.perf
        for key, topic, a, b in runs if runs is not None else batch.runs:
            recs = batch[a:b]
            if perf is not None and perf.is_label_topic(topic):
                perf.stage_label_records(list(recs))
            else:
                routed = self.router.route(recs, base + a + 1, key)
                self.accepted += routed.accepted
                for i, reason, detail in routed.rejected:
                    self._reject_at(recs, i, reason, detail)
                for p in routed.panes:
                    panes.setdefault(p.monitor, []).append(p)
                if perf is not None:
                    split = perf.split is not None
                    for model, version, extra, pred, ts, i in routed.predictions:
                        origin = (key, int(recs.offsets[i])) if split else ("", -1)
                        perf.stage_prediction(model, version, extra, pred, ts, origin)
                    self._labels_in_stream(perf, recs, routed.label_lines)
            last = recs.last_offset
            if last >= 0:
                self.sources[key] = last + 1
        return panes

    def fold(
        self,
        panes: Mapping[str, list[Pane]],
        now: float,
        record_of: Callable[[int], RawRecord | None] = lambda pos: None,
    ) -> list[dict[str, Any]]:
        """The monitor stage: every (owned) monitor folds its panes; the output lines in
        trigger order. ``record_of(position)`` finds the raw record of a row a monitor
        refuses (late, too many versions), for the dead-letter destination."""
        return resolve(self._fold(panes, now, record_of))

    def _fold(
        self,
        panes: Mapping[str, list[Pane]],
        now: float,
        record_of: Callable[[int], RawRecord | None],
    ) -> list[dict[str, Any] | Pending]:
        out: list[tuple[int, int, dict[str, Any] | Pending]] = []
        for k, stage in enumerate(self.stages):
            if self.owned is not None and stage.name not in self.owned:
                continue
            mine = panes.get(stage.name)
            if mine:
                folded = stage.fold(mine, now)
                if folded.outputs or folded.rejected:
                    self.dirty = True
                for pos, reason, detail in folded.rejected:
                    rec = record_of(pos) or RawRecord(None, pos, None)
                    self._unaccept(rec, reason, detail)
                out.extend((t, k, line) for t, line in folded.outputs)
            elif stage.clock is not None:
                out.extend((self.position, k, line) for line in stage.tick(now, self.position))
        out.sort(key=lambda x: (x[0], x[1]))
        return [line for _, _, line in out]

    def take_outcomes(self) -> list[Outcomes]:
        """Scale-out: the batch's label joins (see :mod:`driftd.monitor.perf_split`)."""
        if self.perf is None:
            return []
        self._take_perf_rejects(self.perf)
        return self.perf.take_outcomes()

    def _labels_in_stream(
        self,
        perf: PerformanceStage,
        recs: RecordBatch,
        label_lines: list[tuple[int, tuple[Any, Any, Any]]],
    ) -> None:
        from driftd.ingest.decode import Reject

        for i, extra in label_lines:
            try:
                taken = perf.stage_label_line(extra, recs.record(i))
            except Reject as r:
                self._reject_at(recs, i, r.reason, r.detail)
                continue
            if not taken:
                self._reject_at(recs, i, "missing_model", "")

    def process_labels(self, records: Sequence[RawRecord], position: int) -> list[dict[str, Any]]:
        """Fold in label events from outside the source (``replay --labels``); ``position`` is
        the source position they are taken to arrive at (the replay's current one)."""
        if self.perf is None:
            return []
        self.events_read += len(records)
        self.perf.stage_label_records(records)
        self._take_perf_rejects(self.perf)
        self.dirty = True
        return self.perf.flush(position)

    def tick(self, now: float | None = None) -> list[dict[str, Any]]:
        """Between batches (no records): time windows close as idle partitions stop holding
        the watermark back."""
        now = time.time() if now is None else now
        out: list[dict[str, Any]] = []
        for stage in self.stages:
            if stage.clock is not None:
                out.extend(stage.tick(now, self.position))
        if out:
            self.dirty = True
        return out

    def finish(self) -> list[dict[str, Any]]:
        """End of a finite stream (replay): the held lines; close every open time window."""
        out = self.drain()
        for stage in self.stages:
            out.extend(stage.finish(self.position))
        return out

    def _reject(self, rec: RawRecord, reason: str, detail: str) -> None:
        self.rejected[reason] += 1
        if self.collect_rejects:
            self._rejects.append((rec, reason, detail))

    def _reject_at(self, batch: RecordBatch, i: int, reason: str, detail: str) -> None:
        """Record ``i`` of ``batch`` rejected (its RawRecord is built only to be kept)."""
        self.rejected[reason] += 1
        if self.collect_rejects:
            self._rejects.append((batch.record(i), reason, detail))

    def _unaccept(self, rec: RawRecord, reason: str, detail: str) -> None:
        """A row a monitor refused after the partition stage accepted it (late, bad time,
        too many versions). With several monitors on one model, an event refused by several
        is counted once per such monitor, so that accepted + Σ rejected stays the count."""
        self.accepted -= 1
        self._reject(rec, reason, detail)

    def _take_perf_rejects(self, perf: PerformanceStage) -> None:
        for rec, reason, detail in perf.rejected:
            self._reject(rec, reason, detail)
        perf.rejected.clear()

    def take_rejects(self) -> list[tuple[RawRecord, str, str]]:
        out, self._rejects = self._rejects, []
        return out

    def reset_stage(self, name: str) -> MonitorStage:
        """A fresh stage for monitor ``name`` (scale-out: its state moved to another process,
        or is about to be restored)."""
        k = next(i for i, s in enumerate(self.stages) if s.name == name)
        old = self.stages[k]
        fresh = MonitorStage(old.spec, old.index, old._code_tables, self.eval_hist)
        self.stages[k] = fresh
        self.by_name[name] = fresh
        if self.perf is not None and name in self.perf.monitors:
            self.perf.reset(name, fresh)
        return fresh

    # ------------------------------------------------------------------ partitions

    def assign(self, keys: Sequence[str], now: float | None = None) -> None:
        now = time.time() if now is None else now
        topics = set(self.cfg.kafka.label_topics)
        pred = [k for k in keys if k.rpartition("/")[0] not in topics]
        for stage in self.stages:
            stage.register(pred, now)

    def revoke(self, keys: Sequence[str]) -> None:
        for k in keys:
            self.sources.pop(k, None)
        for stage in self.stages:
            stage.forget(keys)

    # ------------------------------------------------------------------ read side

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "summary",
            "events": self.events_read,
            "accepted": self.accepted,
            "rejected": dict(sorted(self.rejected.items())),
        }
        if self.perf is not None:  # events = accepted + labels + Σ rejected
            out["labels"] = self.perf.labels_read
        return out

    def status(self) -> Status:
        """A frozen snapshot for HTTP and metrics (call between batches)."""
        perf = self.perf
        monitors = []
        for s in self.stages:
            if self.owned is not None and s.name not in self.owned:
                continue
            mp = perf.monitors.get(s.name) if perf is not None else None
            unjoin = dets = None
            if perf is not None and mp is not None:
                unjoin = {r: n for (m, r), n in perf.unjoinable.items() if m == s.name}
                dets = {(v, d): n for (m, v, d), n in perf.detector_drifts.items() if m == s.name}
            monitors.append(monitor_status(s, mp, unjoin, dets))
        h = self.eval_hist
        return Status(
            monitors=tuple(monitors),
            events_read=self.events_read,
            accepted=self.accepted,
            rejected=dict(self.rejected),
            labels_read=perf.labels_read if perf is not None else 0,
            eval_buckets=h.buckets,
            eval_counts=tuple(h.counts),
            eval_sum=h.sum,
        )

    # ------------------------------------------------------------------ state

    def checkpoint(
        self, everything: bool = False
    ) -> tuple[dict[str, Any], dict[str, Entry], list[str]]:
        """(meta, changed entries, removed entry keys) since the last call (or all of them)."""
        if self._held:
            raise RuntimeError("checkpoint with lines held: drain() first")
        entries: dict[str, Entry] = {}
        removed: list[str] = []
        for s in self.stages:
            if everything or s.dirty:
                entries[monitor_key(s.name)] = (persist.stage_meta(s), {})
            for v, vm in s.versions.items():
                if everything or vm.changed:
                    entries[version_key(s.name, v)] = persist.snapshot_version(s, v)
                    vm.dirty = False
                    for c in vm.segments.values():
                        c.dirty = False
            removed.extend(version_key(s.name, v) for v in s.removed)
            s.removed.clear()
            s.meta_dirty = False
        if self.perf is not None and (everything or self.perf.dirty):
            entries[PERFORMANCE_KEY] = self.perf.snapshot()
            self.perf.dirty = False
        meta = {"position": self.position, "sources": dict(self.sources)}
        self.dirty = False
        return meta, entries, removed

    def restore(self, meta: dict[str, Any], load: Loader, now: float | None = None) -> None:
        """Install a checkpoint (see :meth:`checkpoint`); unusable parts are logged and
        started fresh, never fatal."""
        now = time.time() if now is None else now
        self.position = int(meta.get("position", 0))
        self.sources = {str(k): int(v) for k, v in meta.get("sources", {}).items()}
        for s in self.stages:
            saved = load(monitor_key(s.name))
            if saved is None:
                continue
            name = s.name

            def load_version(v: str, name: str = name) -> Entry | None:
                return load(version_key(name, v))

            n = persist.restore_stage(s, saved[0], load_version, now)
            log.info("restored monitor %s: %d versions", s.name, n, extra={"monitor": s.name})
        if self.perf is not None:
            saved = load(PERFORMANCE_KEY)
            if saved is not None:
                self.perf.restore(*saved)
        self.dirty = False

    @property
    def time_based(self) -> bool:
        return any(s.clock is not None for s in self.stages)

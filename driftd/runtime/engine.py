"""The pipeline core shared by `driftd run` and `driftd replay`.

``Engine.process(records)`` decodes a micro-batch, appends each (monitor, version)'s rows to
its window in one NumPy copy, evaluates at every window step, runs the policy and returns the
evaluation and alert objects (plain dicts, the replay output / webhook payload format). It does
no I/O; the daemon loop and the replay command decide what to do with the outputs.

Thread safety: the HTTP thread reads counters and latest verdicts under ``lock``; ``process``
holds it while it mutates them.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import orjson

from driftd.config import Config, ProfileReference
from driftd.ingest.decode import (
    OTHER_SEGMENT,
    EventDecoder,
    KeepingDecoder,
    Reject,
    RowMapper,
    segment_key_fn,
)
from driftd.monitor import refmodes
from driftd.monitor.evaluate import MonitorSpec, build_spec, evaluate
from driftd.policy import Policy, PolicyState, alert_id
from driftd.reference.profile import load_profile_for, segment_label
from driftd.reference.warmup import WarmupBuilder
from driftd.state.checkpoint import join_arrays, split_arrays
from driftd.types import RawRecord
from driftd.windows.count import CountWindow
from driftd.windows.time import TimeWindow, WindowView

if TYPE_CHECKING:
    from driftd.monitor.performance import PerfRuntime

log = logging.getLogger(__name__)

# Evaluation latency histogram buckets (seconds).
EVAL_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def iso(ts: float | None) -> str | None:
    if ts is None or not math.isfinite(ts):
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@dataclass(slots=True)
class VersionState:
    """Everything driftd keeps for one (monitor, model_version) in one source partition."""

    window: CountWindow | TimeWindow
    policy: PolicyState = field(default_factory=PolicyState)
    warn: PolicyState = field(default_factory=PolicyState)  # warning-level episodes
    accepted: int = 0
    latest: dict[str, Any] | None = None  # last evaluation output
    # staging for the current micro-batch
    num: list[float] = field(default_factory=list)
    cat: list[int] = field(default_factory=list)
    pos: list[int] = field(default_factory=list)
    ts: list[float] = field(default_factory=list)
    recs: list[RawRecord] = field(default_factory=list)  # time windows: to reject late rows
    dets: list[Any] = field(default_factory=list)  # river detectors (runtime.detect.Attached)
    last_position: int = 0  # position of the newest event routed here (evicts idle versions)
    # Segments (monitors with segment_by): a version's state owns one child state per segment
    # beside its overall window; a child has ``segment`` (its key) and the spec it is evaluated
    # with (its own reference, else the global one). ``seg_keys`` stages one key per row.
    segment: tuple[str, ...] | None = None
    spec: MonitorSpec | None = None
    segments: dict[tuple[str, ...], VersionState] = field(default_factory=dict)
    seg_keys: list[tuple[str, ...]] = field(default_factory=list)
    # warmup reference mode: the reference being built, then the version's own spec on it
    warmup: WarmupBuilder | None = None
    ref_spec: MonitorSpec | None = None
    luts: tuple[int, list[Any]] | None = None  # (dictionary sizes, code lookup tables)


@dataclass(slots=True)
class _Route:
    """Where one micro-batch's events of a (model, version) go, and how many were accepted."""

    version: str
    targets: list[tuple[MonitorRuntime, VersionState]]
    time_based: bool
    n: int = 0
    # (version state, event -> segment key) of the targets whose monitor has segment_by
    seg: list[tuple[VersionState, Callable[[dict[str, Any]], tuple[str, ...]]]] = field(
        default_factory=list
    )


@dataclass(slots=True)
class PartitionState:
    """The state of one source partition: the unit that is checkpointed, handed over on a
    rebalance and restored. Producers key events by model, so a model's versions live in one
    partition; a version seen in several partitions gets a window in each."""

    key: str  # "topic/partition", or "" for file replay
    versions: dict[tuple[str, str], VersionState] = field(default_factory=dict)
    model_versions: dict[str, list[str]] = field(default_factory=dict)  # first-appearance order
    next_offset: int | None = None  # Kafka: offset after the last record folded in
    events: int = 0  # records folded in (accepted + rejected)
    dirty: bool = False  # changed since the last checkpoint


class MonitorRuntime:
    def __init__(self, spec: MonitorSpec) -> None:
        self.spec = spec
        self.name = spec.cfg.name
        self.model = spec.cfg.model
        self.mapper: RowMapper = spec.mapper()
        self.policy = Policy(spec.cfg.policy)
        self.fingerprint = monitor_fingerprint(spec)
        self.last_evaluation_wall: float | None = None
        self.segment_by = tuple(spec.cfg.segment_by)
        self.segment_key = segment_key_fn(self.segment_by) if self.segment_by else None
        self.other_key = (OTHER_SEGMENT,) * len(self.segment_by)
        self.index = 0  # position in cfg.monitors (config keys in errors)

    def segment_dict(self, key: tuple[str, ...]) -> dict[str, str]:
        return dict(zip(self.segment_by, key, strict=True))

    def segment_label(self, key: tuple[str, ...]) -> str:
        return segment_label(self.segment_by, key)


def monitor_fingerprint(spec: MonitorSpec) -> str:
    """What a checkpointed window depends on: window shape, feature layout and kinds, and the
    reference profile (categorical codes index its categories). Tests, thresholds and policy
    may change without invalidating saved windows."""
    c = spec.cfg
    key = {
        "window": c.window.model_dump(mode="json"),
        "features": {n: [f.kind, f.path] for n, f in c.features.items()},
        "prediction": c.prediction.kind if c.prediction else None,
        "profile": spec.profile.id,
    }
    return hashlib.sha256(orjson.dumps(key, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


class Histogram:
    """Cumulative histogram read by the metrics collector at scrape time."""

    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)
        self.sum = 0.0

    def observe(self, v: float) -> None:
        i = 0
        while i < len(self.buckets) and v > self.buckets[i]:
            i += 1
        self.counts[i] += 1
        self.sum += v


def load_specs(cfg: Config) -> list[MonitorSpec]:
    specs = []
    for i, m in enumerate(cfg.monitors):
        ref = m.reference
        if m.detectors:
            from driftd.monitor import detect

            detect.validate(m, i)
        if not isinstance(ref, ProfileReference):
            specs.append(refmodes.layout_spec(m, i))  # warmup / version: built at run time
            continue
        profile = load_profile_for(m, ref.path, f"monitors.{i}.reference.path")
        specs.append(build_spec(m, profile, i))
    return specs


class Engine:
    def __init__(self, cfg: Config, specs: Sequence[MonitorSpec] | None = None) -> None:
        self.cfg = cfg
        self.monitors = [
            MonitorRuntime(s) for s in (specs if specs is not None else load_specs(cfg))
        ]
        # Segment fields are read from the parsed event, which only the keeping decoder holds
        # on to: without segmented monitors the plain decoder's per-event path is unchanged.
        self._keeper: KeepingDecoder | None = None
        self.decoder = EventDecoder(cfg.schema_, cfg.input.max_event_bytes)
        if any(m.segment_key is not None for m in self.monitors):
            self.decoder = self._keeper = KeepingDecoder(cfg.schema_, cfg.input.max_event_bytes)
        self.by_name = {m.name: m for m in self.monitors}
        for i, mc in enumerate(cfg.monitors):
            if mc.name in self.by_name:
                self.by_name[mc.name].index = i
        self.by_model: dict[str, list[MonitorRuntime]] = {}
        for m in self.monitors:
            self.by_model.setdefault(m.model, []).append(m)
        self.partitions: dict[str, PartitionState] = {}
        # Process-lifetime counters (Prometheus counters: monotonic, not checkpointed).
        self.events_read = 0
        self.accepted = 0
        self.rejected: Counter[str] = Counter()
        self.accepted_by: Counter[tuple[str, str]] = Counter()  # (monitor, version)
        self.alerts: Counter[tuple[str, str]] = Counter()  # (monitor, severity)
        self.detector_drifts: Counter[tuple[str, str, str]] = Counter()
        self.versions_evicted: Counter[str] = Counter()  # monitor → idle version states dropped
        self.segment_events: Counter[tuple[str, str, str]] = Counter()  # (monitor, ver, label)
        self.segment_overflow: Counter[tuple[str, str]] = Counter()  # (monitor, version)
        self.eval_hist = Histogram(EVAL_BUCKETS)
        self.lock = threading.Lock()
        # Rejected records kept for a dead-letter destination (only when one is configured).
        self.collect_rejects = False
        self._rejects: list[tuple[RawRecord, str, str]] = []
        # Delayed-label performance monitoring (driftd.monitor.performance), when configured.
        self.perf: PerfRuntime | None = None
        if any(m.spec.cfg.performance is not None for m in self.monitors):
            from driftd.monitor.performance import PerfRuntime

            self.perf = PerfRuntime(cfg, self)
            self.decoder.want_extra = True

    def take_rejects(self) -> list[tuple[RawRecord, str, str]]:
        out, self._rejects = self._rejects, []
        return out

    # ------------------------------------------------------------------ partitions

    def partition(self, key: str) -> PartitionState:
        ps = self.partitions.get(key)
        if ps is None:
            ps = self.partitions[key] = PartitionState(key)
        return ps

    def adopt(self, ps: PartitionState) -> None:
        """Install a restored partition state (on start or after a rebalance)."""
        with self.lock:
            self.partitions[ps.key] = ps

    def release(self, key: str) -> PartitionState | None:
        """Forget a partition (revoked): its state now belongs to its next owner."""
        with self.lock:
            return self.partitions.pop(key, None)

    def snapshot_partition(self, key: str) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
        """(meta, arrays) of one partition, between micro-batches (caller holds ``lock``)."""
        ps = self.partitions[key]
        versions: list[dict[str, Any]] = []
        arrays: dict[str, npt.NDArray[Any]] = {}
        for i, (mon, ver, vs) in enumerate(_states(ps)):
            versions.append(
                {
                    "monitor": mon,
                    "version": ver,
                    "fingerprint": self.by_name[mon].fingerprint,
                    "accepted": vs.accepted,
                    "last_position": vs.last_position,
                    "policy": vs.policy.to_json(),
                    "warn": vs.warn.to_json(),
                    "detectors": [
                        split_arrays(a.snapshot(), arrays, f"v{i}.d{j}.")
                        for j, a in enumerate(vs.dets)
                    ],
                    "latest": vs.latest,
                }
            )
            if vs.segment is not None:  # a segment's state follows its version's
                versions[-1]["segment"] = list(vs.segment)
                versions[-1]["segment_by"] = list(self.by_name[mon].segment_by)
            for name, arr in vs.window.snapshot().items():
                arrays[f"v{i}.{name}"] = arr
            _snapshot_reference(vs, versions[-1], arrays, f"v{i}.")
        meta: dict[str, Any] = {
            "next_offset": ps.next_offset,
            "events": ps.events,
            "model_versions": ps.model_versions,
            "versions": versions,
        }
        codes = self._snapshot_codes(ps)
        if codes:
            meta["codes"] = codes
        return meta, arrays

    def _snapshot_codes(self, ps: PartitionState) -> dict[str, list[list[str]]]:
        """The category dictionaries (label per code) of the warmup / version monitors that
        have state in ``ps``: the codes in its windows and warmup counts index them."""
        names = {k[0] for k in ps.versions}
        return {
            m.name: [list(t) for t in m.mapper.code_tables()]
            for m in self.monitors
            if m.spec.open_categories and m.name in names
        }

    def restore_partition(
        self, key: str, meta: dict[str, Any], arrays: dict[str, npt.NDArray[Any]]
    ) -> PartitionState:
        """Rebuild a partition from a checkpoint. State of a monitor whose window, features or
        profile changed since is discarded whole (logged), never half-used."""
        ps = PartitionState(
            key,
            next_offset=meta.get("next_offset"),
            events=int(meta.get("events", 0)),
            model_versions={k: list(v) for k, v in meta.get("model_versions", {}).items()},
        )
        for i, v in enumerate(meta.get("versions", [])):
            m = self.by_name.get(v["monitor"])
            if m is None:
                log.warning(
                    "checkpoint %s: monitor %s is no longer configured; dropping its state",
                    key or "replay",
                    v["monitor"],
                )
                continue
            if v["fingerprint"] != m.fingerprint:
                log.warning(
                    "checkpoint %s: monitor %s changed (window, features or reference profile);"
                    " discarding its saved state for version %s and starting it fresh",
                    key or "replay",
                    m.name,
                    v["version"],
                )
                continue
            seg = v.get("segment")  # absent in checkpoints written before segments
            parent = ps.versions.get((m.name, v["version"])) if seg is not None else None
            if seg is not None and (parent is None or v.get("segment_by") != list(m.segment_by)):
                log.warning(
                    "checkpoint %s: monitor %s segments changed (segment_by) or its version %s"
                    " was discarded; dropping saved segment %s",
                    key or "replay",
                    m.name,
                    v["version"],
                    seg,
                )
                continue
            prefix = f"v{i}."
            recode = None
            if m.spec.open_categories:
                saved = meta.get("codes", {}).get(m.name)
                if saved is not None:
                    recode = refmodes.recode_luts(
                        saved, m.mapper.code_tables(), m.spec.open_categories
                    )
            window = m.spec.restore_window(
                _recode_window(
                    {k[len(prefix) :]: a for k, a in arrays.items() if k.startswith(prefix)},
                    recode,
                )
            )
            vs = VersionState(
                window,
                PolicyState.from_json(v["policy"]),
                PolicyState.from_json(v["warn"]) if "warn" in v else PolicyState(),
                int(v["accepted"]),
                v.get("latest"),
            )
            vs.last_position = int(v.get("last_position", 0))
            if parent is not None:
                vs.segment = tuple(str(x) for x in seg)
                vs.spec = m.spec.for_segment(vs.segment)
                parent.segments[vs.segment] = vs
                continue
            if not self._restore_reference(m, v, vs, arrays, prefix, recode):
                continue
            if m.spec.cfg.detectors:
                from driftd.monitor import detect

                saved = [join_arrays(d, arrays) for d in v.get("detectors", [])]
                vs.dets = detect.attach(
                    m.spec.cfg, saved if len(saved) == len(m.spec.cfg.detectors) else None
                )
            ps.versions[(m.name, v["version"])] = vs
        return ps

    # ------------------------------------------------------------------ processing

    def process(self, records: Sequence[RawRecord]) -> list[dict[str, Any]]:
        """Fold a micro-batch in; return evaluation and alert outputs in order."""
        with self.lock:
            out: list[dict[str, Any]] = []
            groups: dict[str, list[RawRecord]] = {}
            for r in records:
                key = f"{r.topic}/{r.partition}" if r.topic else ""
                groups.setdefault(key, []).append(r)
            for key, recs in groups.items():
                ps = self.partition(key)
                if self.perf is not None and self.perf.is_label_topic(recs[0].topic):
                    self.events_read += len(recs)
                    self.perf.stage_label_records(recs)
                else:
                    touched = self._stage(ps, recs)
                    out.extend(self._flush(ps, touched))
                last = recs[-1]
                if last.offset >= 0:
                    ps.next_offset = last.offset + 1
                ps.events += len(recs)
                ps.dirty = True
            if self.perf is not None and records:
                out.extend(self.perf.flush(records[-1].position))
            return out

    def process_labels(self, records: Sequence[RawRecord], position: int) -> list[dict[str, Any]]:
        """Fold in label events from outside the source (``replay --labels``); ``position`` is
        the source position they are taken to arrive at (the replay's current one)."""
        if self.perf is None:
            return []
        with self.lock:
            self.events_read += len(records)
            self.perf.stage_label_records(records)
            return self.perf.flush(position)

    def _stage(
        self, ps: PartitionState, records: Sequence[RawRecord]
    ) -> list[tuple[MonitorRuntime, str, VersionState]]:
        # Per event: decode, map, two appends per monitor. Routing, version bookkeeping and
        # counters happen once per (model, version) and batch, not once per event.
        decode = self.decoder.decode
        keeper = self._keeper
        perf = self.perf
        routes: dict[tuple[str, str], _Route] = {}
        accepted: list[_Route] = []  # in order of first accepted event (outputs follow it)
        self.events_read += len(records)
        for rec in records:
            try:
                model, version, ts, feats, pred = decode(rec.value, rec.timestamp_ms)
                route = routes.get((model, version))
                if route is None:
                    route = routes[(model, version)] = self._route(ps, model, version)
                targets = route.targets
                if len(targets) == 1:  # map() appends nothing when it rejects
                    vs = targets[0][1]
                    targets[0][0].mapper.map(feats, pred, vs.num, vs.cat)
                else:
                    staged: list[tuple[VersionState, int, int]] = []
                    try:
                        for m, vs in targets:
                            staged.append((vs, len(vs.num), len(vs.cat)))
                            m.mapper.map(feats, pred, vs.num, vs.cat)
                    except Reject:
                        for vs, n0, c0 in staged:
                            del vs.num[n0:]
                            del vs.cat[c0:]
                        raise
            except Reject as r:
                if perf is not None and r.reason == "missing_model":
                    # a label event in the prediction stream (the decoder read its fields)
                    try:
                        if perf.stage_label_line(self.decoder.last_extra, rec):
                            continue
                    except Reject as bad:
                        r = bad
                self.rejected[r.reason] += 1
                if self.collect_rejects:
                    self._rejects.append((rec, r.reason, r.detail))
                continue
            if not route.n:
                accepted.append(route)
                seen = ps.model_versions.setdefault(model, [])
                if version not in seen:
                    seen.append(version)
            route.n += 1
            if perf is not None:
                perf.stage_prediction(model, version, self.decoder.last_extra, pred, ts)
            for _m, vs in targets:
                vs.pos.append(rec.position)
                vs.ts.append(ts)
            if route.seg:
                assert keeper is not None
                obj = keeper.last
                for vs, seg_key in route.seg:
                    vs.seg_keys.append(seg_key(obj))
            if route.time_based:
                for m, vs in targets:
                    if m.spec.time_based:
                        vs.recs.append(rec)
        touched: list[tuple[MonitorRuntime, str, VersionState]] = []
        for route in accepted:
            self.accepted += route.n
            for m, vs in route.targets:
                vs.accepted += route.n
                if vs.pos:
                    vs.last_position = vs.pos[-1]
                self.accepted_by[(m.name, route.version)] += route.n
                touched.append((m, route.version, vs))
        return touched

    def _route(self, ps: PartitionState, model: str, version: str) -> _Route:
        """The monitors (and their version states, created on first sight) an event of
        ``model`` / ``version`` goes to. Raises Reject for a model no monitor watches."""
        mons = self.by_model.get(model)
        if mons is None:
            raise Reject("unknown_model", model[:100])
        targets = []
        for m in mons:
            vs = ps.versions.get((m.name, version))
            if vs is None:
                if not self._make_room(ps, m):
                    raise Reject("too_many_versions", f"monitor {m.name}: {version[:100]}")
                vs = ps.versions[(m.name, version)] = self._new_version(m)
            targets.append((m, vs))
        route = _Route(version, targets, any(m.spec.time_based for m in mons))
        route.seg = [(vs, m.segment_key) for m, vs in targets if m.segment_key is not None]
        return route

    def _make_room(self, ps: PartitionState, m: MonitorRuntime) -> bool:
        """Keep at most ``max_versions`` version states of a monitor in a partition: before a
        new one is created, the least recently seen version without rows staged in this
        batch is dropped (a stream inventing versions must not grow memory without bound).
        False when every version has rows in this batch: the new version's event is then
        rejected (``too_many_versions``)."""
        mine = [(vs.last_position, k) for k, vs in ps.versions.items() if k[0] == m.name]
        cap = m.spec.cfg.max_versions
        if len(mine) < cap:
            return True
        idle = sorted(x for x in mine if not ps.versions[x[1]].pos)
        if len(idle) < len(mine) - cap + 1:
            return False
        for _, key in idle[: len(mine) - cap + 1]:
            del ps.versions[key]
            seen = ps.model_versions.get(m.model, [])
            if key[1] in seen and not any(k[1] == key[1] for k in ps.versions):
                seen.remove(key[1])
            n = self.versions_evicted[m.name] = self.versions_evicted[m.name] + 1
            if n <= 10 or n % 1000 == 0:
                log.warning(
                    "monitor %s: more than %d versions in partition %s; dropped the state of"
                    " version %s, the least recently seen (%d dropped so far)",
                    m.name,
                    cap,
                    ps.key or "replay",
                    key[1],
                    n,
                )
        return True

    @staticmethod
    def _new_version(m: MonitorRuntime, saved: list[dict[str, Any]] | None = None) -> VersionState:
        vs = VersionState(m.spec.new_window())
        if m.spec.mode == "warmup":
            vs.warmup = refmodes.new_warmup(m.spec)
        if m.spec.cfg.detectors:
            from driftd.monitor import detect

            vs.dets = detect.attach(m.spec.cfg, saved)
        return vs

    # ------------------------------------------------------------------ reference modes

    def _warm(
        self,
        m: MonitorRuntime,
        version: str,
        vs: VersionState,
        num: npt.NDArray[np.float64],
        cat: npt.NDArray[np.int32],
        pos: npt.NDArray[np.int64],
        ts: npt.NDArray[np.float64],
    ) -> tuple[Any, Any, Any, Any]:
        """Fold the first rows still needed into the version's warmup reference; return the
        rest, which go to the window. Completing the reference resolves the version's tests
        and calibrates its thresholds on it, once (logged with its duration)."""
        b = vs.warmup
        assert b is not None
        take = b.fold(num, cat)
        del vs.recs[:take]  # time windows: the reference's rows are not windowed
        if b.done:
            log.info(
                "monitor %s version %s: warmup reference complete at position %d",
                m.name,
                version,
                int(pos[take - 1]) if take else -1,
            )
            vs.ref_spec = refmodes.warmup_spec(m.spec, b, m.mapper.code_tables(), m.index, version)
            vs.warmup = None
            vs.luts = None
        return num[take:], cat[take:], pos[take:], ts[take:]

    def _baseline(self, ps: PartitionState, m: MonitorRuntime, version: str) -> str | None:
        live = {k[1] for k in ps.versions if k[0] == m.name}  # k: (monitor, version, …)
        order = ps.model_versions.get(m.model, [])
        return refmodes.baseline_of(m.spec.cfg, version, order, live)

    def _evaluate_on_reference(
        self,
        ps: PartitionState,
        m: MonitorRuntime,
        version: str,
        vs: VersionState,
        window: WindowView,
    ) -> dict[str, Any] | None:
        """``evaluate`` against the monitor's reference: the profile, the version's warmup
        reference, or the baseline version's current window (None: no baseline yet)."""
        if m.spec.mode == "profile":
            return evaluate(vs.spec or m.spec, window)
        tables = m.mapper.code_tables()
        cap = m.spec.open_categories
        if m.spec.mode == "warmup":
            spec = vs.ref_spec
            assert spec is not None
            size = sum(len(t) for t in tables)  # dictionaries only grow
            if vs.luts is None or vs.luts[0] != size:
                vs.luts = (size, refmodes.luts_for(spec, tables, cap))
            ev = evaluate(spec, refmodes.RemappedView(window, vs.luts[1]))
            ev["reference"] = f"warmup:{version}:{spec.profile.id}"
            return ev
        base = self._baseline(ps, m, version)
        bvs = ps.versions.get((m.name, base)) if base is not None else None
        if bvs is None or not isinstance(bvs.window, CountWindow):
            return None
        if bvs.window.filled < m.spec.cfg.policy.min_events:
            return None
        spec, luts = refmodes.versus_spec(m.spec, bvs.window, tables)
        ev = evaluate(spec, refmodes.RemappedView(window, luts))
        span = bvs.window.span()
        ev["reference"] = f"version:{base}:{span['start_position']}-{span['end_position']}"
        return ev

    def _flush_versus(
        self, ps: PartitionState, m: MonitorRuntime, items: list[Any]
    ) -> list[dict[str, Any]]:
        """Append a micro-batch's rows of a version-mode monitor's versions in source order,
        up to each window step, so that every evaluation sees the baseline's window exactly as
        it stood at the evaluated window's last event, however the stream was batched."""
        out: list[dict[str, Any]] = []
        min_events = m.spec.cfg.policy.min_events
        cursor = [0] * len(items)
        points: list[tuple[int, int, int]] = []
        for i, (_v, vs, _n, _c, pos, _t) in enumerate(items):
            w = vs.window
            first = w.step - w.total % w.step  # rows until the window's next step
            for r in range(first - 1, pos.shape[0], w.step):
                points.append((int(pos[r]), i, r + 1))
        points.sort()

        def advance(i: int, end: int) -> None:
            version, vs, num, cat, pos, ts = items[i]
            a = cursor[i]
            if end <= a:
                return
            cursor[i] = end
            w = vs.window
            for total in w.append(num[a:end], cat[a:end], pos[a:end], ts[a:end]):
                if w.filled >= min_events:
                    out.extend(self._evaluate(ps, m, version, vs, w, total))

        for p, i, end in points:
            for k, item in enumerate(items):
                if k != i:
                    advance(k, int(np.searchsorted(item[4], p, side="right")))
            advance(i, end)
        for k, item in enumerate(items):
            advance(k, item[4].shape[0])
        return out

    def _restore_reference(
        self,
        m: MonitorRuntime,
        v: dict[str, Any],
        vs: VersionState,
        arrays: dict[str, npt.NDArray[Any]],
        prefix: str,
        recode: list[npt.NDArray[np.int64]] | None,
    ) -> bool:
        """Bring back a version's warmup builder or warmup reference (and its calibration:
        restarting never re-warms nor, unless the calibration settings changed,
        recalibrates). False when the saved state cannot be used (logged)."""
        if m.spec.mode != "warmup":
            return True
        if v.get("warmup"):
            wp = prefix + "w."
            vs.warmup = WarmupBuilder.restore(
                {k[len(wp) :]: a for k, a in arrays.items() if k.startswith(wp)}, recode
            )
            return True
        ref = v.get("reference")
        if ref is None:
            log.warning(
                "checkpoint: monitor %s version %s has no warmup reference; starting it fresh",
                m.name,
                v["version"],
            )
            return False
        prof = refmodes.profile_from_state(ref, arrays, prefix + "r.")
        vs.ref_spec = refmodes.spec_on(m.spec, prof, m.index, v["version"], restored=True)
        return True

    def _detector_outputs(
        self, m: MonitorRuntime, version: str, hits: list[tuple[Any, int]]
    ) -> list[dict[str, Any]]:
        out = []
        for a, position in hits:
            self.detector_drifts[(m.name, version, a.name)] += 1
            log.info(
                "detector %s flagged monitor=%s version=%s at position %d",
                a.name,
                m.name,
                version,
                position,
            )
            out.append(
                {
                    "type": "detector",
                    "monitor": m.name,
                    "model": m.model,
                    "model_version": version,
                    "detector": a.name,
                    "position": position,
                }
            )
        return out

    def _flush(
        self, ps: PartitionState, touched: list[tuple[MonitorRuntime, str, VersionState]]
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        versus: dict[MonitorRuntime, list[Any]] = {}
        for m, version, vs in touched:
            n = len(vs.pos)
            if n == 0:
                continue
            num = np.asarray(vs.num, dtype=np.float64).reshape(n, m.spec.n_num)
            cat = np.asarray(vs.cat, dtype=np.int32).reshape(n, m.spec.n_cat)
            pos = np.asarray(vs.pos, dtype=np.int64)
            ts = np.asarray(vs.ts, dtype=np.float64)
            vs.num.clear()
            vs.cat.clear()
            vs.pos.clear()
            vs.ts.clear()
            keys, vs.seg_keys = vs.seg_keys, []
            if vs.dets and m.spec.prediction is not None and m.spec.prediction.kind == "numeric":
                from driftd.monitor import detect

                hits = detect.feed_scores(vs.dets, num[:, m.spec.prediction.column], pos)
                out.extend(self._detector_outputs(m, version, hits))
            if vs.warmup is not None:
                num, cat, pos, ts = self._warm(m, version, vs, num, cat, pos, ts)
                if not pos.shape[0]:
                    continue
            if m.spec.mode == "version":  # all versions of the monitor together, below
                versus.setdefault(m, []).append((version, vs, num, cat, pos, ts))
                continue
            w = vs.window
            if isinstance(w, CountWindow):
                for total in w.append(num, cat, pos, ts):
                    if w.filled >= m.spec.cfg.policy.min_events:
                        out.extend(self._evaluate(ps, m, version, vs, w, total))
                if keys:
                    out.extend(self._flush_segments(ps, m, version, vs, keys, num, cat, pos, ts))
                continue
            recs, vs.recs = vs.recs, []
            r = w.append(num, cat, pos, ts)
            self._reject_rows(m, version, vs, [recs[i] for i in r.late], "late")
            self._reject_rows(m, version, vs, [recs[i] for i in r.invalid_ts], "bad_timestamp")
            out.extend(self._evaluate_views(ps, m, version, vs, r.windows))
            if keys:
                dropped = set(r.late.tolist()) | set(r.invalid_ts.tolist())
                out.extend(
                    self._flush_segments(ps, m, version, vs, keys, num, cat, pos, ts, dropped)
                )
        for m, items in versus.items():
            out.extend(self._flush_versus(ps, m, items))
        out.extend(self._advance_idle(ps, {m for m, _, _ in touched}))
        return out

    def _evaluate_views(
        self,
        ps: PartitionState,
        m: MonitorRuntime,
        version: str,
        vs: VersionState,
        views: list[Any],
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for view in views:
            if view.filled >= m.spec.cfg.policy.min_events:
                out.extend(self._evaluate(ps, m, version, vs, view, int(view.window_end_ts)))
        return out

    def _reject_rows(
        self, m: MonitorRuntime, version: str, vs: VersionState, recs: list[RawRecord], reason: str
    ) -> None:
        """Rows a time window refused after they were staged as accepted: counted (and
        dead-lettered) as rejected instead. With several monitors on one model, an event late
        for one of them is counted once per such monitor."""
        n = len(recs)
        if not n:
            return
        vs.accepted -= n
        self.accepted -= n
        self.accepted_by[(m.name, version)] -= n
        self.rejected[reason] += n
        if self.collect_rejects:
            self._rejects.extend((r, reason, f"monitor {m.name}") for r in recs)

    def _advance_idle(
        self, ps: PartitionState, monitors: set[MonitorRuntime]
    ) -> list[dict[str, Any]]:
        """Close the time windows of versions that stopped receiving events, using the
        monitor's newest watermark in this partition (event time moves for the monitor, not
        per version)."""
        out: list[dict[str, Any]] = []
        for m in monitors:
            if not m.spec.time_based:
                continue
            states = [(v, vs) for (name, v), vs in ps.versions.items() if name == m.name]
            marks = [vs.window.watermark for _, vs in states if isinstance(vs.window, TimeWindow)]
            if not marks:
                continue
            wm = max(marks)
            for v, vs in states:
                w = vs.window
                if isinstance(w, TimeWindow) and w.watermark < wm:
                    out.extend(self._evaluate_views(ps, m, v, vs, w.advance(wm)))
                if vs.segments:
                    out.extend(self._advance_segments(ps, m, v, vs))
        return out

    # ------------------------------------------------------------------ segments

    def _segment_state(
        self, m: MonitorRuntime, vs: VersionState, key: tuple[str, ...]
    ) -> VersionState:
        child = vs.segments.get(key)
        if child is None:
            child = vs.segments[key] = VersionState(
                m.spec.new_window(), segment=key, spec=m.spec.for_segment(key)
            )
        return child

    def _flush_segments(
        self,
        ps: PartitionState,
        m: MonitorRuntime,
        version: str,
        vs: VersionState,
        keys: list[tuple[str, ...]],
        num: npt.NDArray[np.float64],
        cat: npt.NDArray[np.int32],
        pos: npt.NDArray[np.int64],
        ts: npt.NDArray[np.float64],
        dropped: set[int] | None = None,
    ) -> list[dict[str, Any]]:
        """Route a flushed batch's rows (one segment key each) to the version's segment
        windows and evaluate those that stepped. Rows the overall time window refused
        (``dropped``) were rejected and go nowhere. Beyond ``max_segments`` tracked segments,
        rows of new segments go to the ``__other__`` segment and are counted."""
        rows: dict[tuple[str, ...], list[int]] = {}
        for i, k in enumerate(keys):
            rows.setdefault(k, []).append(i)
        other = m.other_key
        cap = m.spec.cfg.max_segments
        routed: dict[tuple[str, ...], list[int]] = {}
        tracked = len(vs.segments) - (other in vs.segments)
        for k, idx in rows.items():
            if dropped:
                idx = [i for i in idx if i not in dropped]
                if not idx:
                    continue
            if k not in vs.segments and k != other:
                if tracked >= cap:
                    self.segment_overflow[(m.name, version)] += len(idx)
                    k = other
                else:
                    tracked += 1
            routed.setdefault(k, []).extend(idx)
        out: list[dict[str, Any]] = []
        min_events = m.spec.cfg.policy.min_events
        for k, idx in routed.items():
            child = self._segment_state(m, vs, k)
            sel = np.asarray(sorted(idx), dtype=np.intp)
            child.accepted += int(sel.size)
            self.segment_events[(m.name, version, m.segment_label(k))] += int(sel.size)
            w = child.window
            if isinstance(w, CountWindow):
                for total in w.append(num[sel], cat[sel], pos[sel], ts[sel]):
                    if w.filled >= min_events:
                        out.extend(self._evaluate(ps, m, version, child, w, total))
                continue
            r = w.append(num[sel], cat[sel], pos[sel], ts[sel])
            if r.late.size or r.invalid_ts.size:
                # Cannot happen: a segment's watermark never passes its version's, and the
                # version's window already refused late and untimed rows.
                log.warning(
                    "monitor %s version %s segment %s refused %d rows the version accepted",
                    m.name,
                    version,
                    m.segment_label(k),
                    r.late.size + r.invalid_ts.size,
                )
            out.extend(self._evaluate_views(ps, m, version, child, r.windows))
        if isinstance(vs.window, TimeWindow):
            out.extend(self._advance_segments(ps, m, version, vs))
        return out

    def _advance_segments(
        self, ps: PartitionState, m: MonitorRuntime, version: str, vs: VersionState
    ) -> list[dict[str, Any]]:
        """Close the time windows of a version's segments up to the version's watermark (a
        segment that stopped receiving events is closed by its version's event time)."""
        out: list[dict[str, Any]] = []
        if not isinstance(vs.window, TimeWindow):
            return out
        wm = vs.window.watermark
        for child in vs.segments.values():
            w = child.window
            if isinstance(w, TimeWindow) and w.watermark < wm:
                out.extend(self._evaluate_views(ps, m, version, child, w.advance(wm)))
        return out

    def finish(self) -> list[dict[str, Any]]:
        """End of a finite stream (replay): close every open time window."""
        out: list[dict[str, Any]] = []
        with self.lock:
            for ps in self.partitions.values():
                for (name, v), vs in ps.versions.items():
                    if isinstance(vs.window, TimeWindow):
                        m = self.by_name[name]
                        out.extend(
                            self._evaluate_views(ps, m, v, vs, vs.window.advance(float("inf")))
                        )
                        if vs.segments:
                            out.extend(self._advance_segments(ps, m, v, vs))
        return out

    def _evaluate(
        self,
        ps: PartitionState,
        m: MonitorRuntime,
        version: str,
        vs: VersionState,
        window: WindowView,
        seq: int,
    ) -> list[dict[str, Any]]:
        """Evaluate one window; ``seq`` (events counted, or the window's end time for time
        windows) makes alert ids stable under re-processing."""
        t0 = time.perf_counter()
        ev = self._evaluate_on_reference(ps, m, version, vs, window)
        if ev is None:  # version mode: no baseline window to compare with yet
            return []
        self.eval_hist.observe(time.perf_counter() - t0)
        end_ts = ev["window"].get("end_ts")
        ts = end_ts if end_ts is not None else float("nan")
        transition, reason = m.policy.decide(vs.policy, ev["drifted"], ts)
        warn_transition, warn_reason = m.policy.decide(
            vs.warn, bool(ev["warnings"]) and not ev["drifted"], ts
        )
        span = dict(ev["window"])
        for k in ("start_ts", "end_ts", "window_start_ts", "window_end_ts"):
            if k in span:
                span[k] = iso(span[k])
        evaluation = {
            "type": "evaluation",
            "monitor": m.name,
            "model": m.model,
            "model_version": version,
            "segment": m.segment_dict(vs.segment) if vs.segment is not None else None,
            "window": span,
            "features": ev["features"],
            "prediction": ev["prediction"],
            "quality_breaches": ev["quality_breaches"],
            "warnings": ev["warnings"],
            "drift_share": ev["drift_share"],
            "drifted": ev["drifted"],
            "state": vs.policy.state,
            "reason": reason,
        }
        if "reference" in ev:  # warmup / version references change per version or window
            evaluation["reference"] = ev["reference"]
        out = [evaluation]
        if vs.dets:
            from driftd.monitor import detect

            out.extend(
                self._detector_outputs(m, version, detect.feed_evaluation(vs.dets, evaluation))
            )
            evaluation["detectors"] = detect.report(vs.dets)
        vs.latest = evaluation
        m.last_evaluation_wall = time.time()
        if transition is not None:
            out.append(self._transition(ps, m, version, vs, ev, transition, reason, ts, seq))
        if warn_transition == "alert":
            out.append(self._transition(ps, m, version, vs, ev, "warning", warn_reason, ts, seq))
        return out

    def _transition(
        self,
        ps: PartitionState,
        m: MonitorRuntime,
        version: str,
        vs: VersionState,
        ev: dict[str, Any],
        transition: str,
        reason: str,
        ts: float,
        seq: int,
    ) -> dict[str, Any]:
        kind = {"alert": "drift.detected", "resolve": "drift.resolved"}.get(
            transition, "drift.warning"
        )
        seg = m.segment_label(vs.segment) if vs.segment is not None else ""
        aid = alert_id(m.name, version, kind, seq, ps.key, seg)
        if transition == "alert":
            vs.policy.open_alert_id = aid
            severity = "critical"
            self.alerts[(m.name, severity)] += 1
        elif transition == "warning":
            severity = "warning"
            self.alerts[(m.name, severity)] += 1
        else:
            severity = "info"
        drifted = [
            {
                "name": name,
                "test": r["test"],
                "statistic": r["statistic"],
                "p_value": r["p_value"],
                "threshold": r["threshold"],
            }
            for name, r in list(ev["features"].items()) + [("prediction", ev["prediction"])]
            if r is not None
            and (r["drifted"] or (transition == "warning" and r["level"] == "warning"))
        ] + list(ev["quality_breaches"])
        w = ev["window"]
        payload: dict[str, Any] = {
            "id": aid,
            "time": iso(ts) or iso(time.time()),
            "monitor": m.name,
            "model": m.model,
            "model_version": version,
            "segment": m.segment_dict(vs.segment) if vs.segment is not None else None,
            "rollback_to": self.rollback_to(m, version, ps),
            "severity": severity,
            "drift_share": ev["drift_share"],
            "features": drifted,
            "window": {
                "start_position": w["start_position"],
                "end_position": w["end_position"],
                "events": w["events"],
            },
            "reference": ev.get("reference", (vs.spec or m.spec).profile.id),
            "reason": reason,
        }
        if ps.key:
            payload["partition"] = ps.key
        if transition == "resolve":
            payload["resolves"] = vs.policy.open_alert_id
            vs.policy.open_alert_id = None
        log.warning(
            "%s monitor=%s model=%s version=%s%s rollback_to=%s id=%s (%s)",
            kind,
            m.name,
            m.model,
            version,
            f" segment={seg}" if seg else "",
            payload["rollback_to"],
            aid,
            reason,
        )
        return {"type": "alert", "event": kind, **payload}

    @staticmethod
    def webhook_payload(alert: dict[str, Any]) -> dict[str, Any]:
        """The webhook body (DESIGN.md) for an ``{"type": "alert", "event": …}`` output line."""
        body = {k: v for k, v in alert.items() if k not in ("type", "event")}
        return {"id": body.pop("id"), "type": alert["event"], **body}

    def rollback_to(
        self, m: MonitorRuntime, version: str, ps: PartitionState | None = None
    ) -> str | None:
        """The version that served before ``version`` (first-appearance order in the stream),
        else the monitor's configured fallback. In version reference mode: the baseline."""
        parts = [ps] if ps is not None else list(self.partitions.values())
        if m.spec.mode == "version":
            for p in parts:
                base = self._baseline(p, m, version)
                if base is not None:
                    return base
        for p in parts:
            seen = p.model_versions.get(m.model, [])
            if version in seen:
                i = seen.index(version)
                if i > 0:
                    return seen[i - 1]
        return m.spec.cfg.fallback_version

    # ------------------------------------------------------------------ read side

    def version_states(self, m: MonitorRuntime) -> dict[str, VersionState]:
        """One state per version of a monitor (caller holds ``lock``). Should a version live in
        several partitions, the one evaluated most recently speaks for it."""
        out: dict[str, VersionState] = {}
        for ps in self.partitions.values():
            for (name, version), vs in ps.versions.items():
                if name != m.name:
                    continue
                cur = out.get(version)
                if cur is None or _newer(vs, cur):
                    out[version] = vs
        return out

    def version_totals(self, m: MonitorRuntime) -> dict[str, tuple[int, int]]:
        """(events accepted, events in windows) per version, summed over partitions."""
        out: dict[str, tuple[int, int]] = {}
        for ps in self.partitions.values():
            for (name, version), vs in ps.versions.items():
                if name == m.name:
                    a, w = out.get(version, (0, 0))
                    out[version] = (a + vs.accepted, w + window_events(vs.window))
        return out

    def segment_states(self, m: MonitorRuntime) -> dict[tuple[str, tuple[str, ...]], VersionState]:
        """One state per (version, segment) of a monitor (caller holds ``lock``); the one
        evaluated most recently speaks for a segment seen in several partitions."""
        out: dict[tuple[str, tuple[str, ...]], VersionState] = {}
        for ps in self.partitions.values():
            for (name, version), vs in ps.versions.items():
                if name != m.name:
                    continue
                for key, child in vs.segments.items():
                    cur = out.get((version, key))
                    if cur is None or _newer(child, cur):
                        out[(version, key)] = child
        return out

    def segment_totals(
        self, m: MonitorRuntime
    ) -> dict[tuple[str, tuple[str, ...]], tuple[int, int]]:
        """(events accepted, events in windows) per (version, segment), summed over partitions."""
        out: dict[tuple[str, tuple[str, ...]], tuple[int, int]] = {}
        for ps in self.partitions.values():
            for (name, version), vs in ps.versions.items():
                if name != m.name:
                    continue
                for key, child in vs.segments.items():
                    a, w = out.get((version, key), (0, 0))
                    out[(version, key)] = (a + child.accepted, w + window_events(child.window))
        return out

    def version_order(self, model: str) -> list[str]:
        order: list[str] = []
        for ps in self.partitions.values():
            for v in ps.model_versions.get(model, []):
                if v not in order:
                    order.append(v)
        return order

    def summary(self) -> dict[str, Any]:
        with self.lock:
            out: dict[str, Any] = {
                "type": "summary",
                "events": self.events_read,
                "accepted": self.accepted,
                "rejected": dict(sorted(self.rejected.items())),
            }
            if self.perf is not None:  # events = accepted + labels + Σ rejected
                out["labels"] = self.perf.labels_read
            return out


def _states(ps: PartitionState) -> list[tuple[str, str, VersionState]]:
    """Every state of a partition for a checkpoint: versions first, then their segments (so a
    restore meets a segment's version before the segment)."""
    out = [(mon, ver, vs) for (mon, ver), vs in ps.versions.items()]
    for mon, ver, vs in list(out):
        out.extend((mon, ver, child) for child in vs.segments.values())
    return out


def _snapshot_reference(
    vs: VersionState, entry: dict[str, Any], arrays: dict[str, Any], prefix: str
) -> None:
    if vs.warmup is not None:
        entry["warmup"] = True
        for name, arr in vs.warmup.snapshot().items():
            arrays[f"{prefix}w.{name}"] = arr
    elif vs.ref_spec is not None:
        entry["reference"] = refmodes.profile_state(vs.ref_spec.profile, arrays, prefix + "r.")


def _recode_window(
    arrays: dict[str, npt.NDArray[Any]], recode: list[npt.NDArray[np.int64]] | None
) -> dict[str, npt.NDArray[Any]]:
    """Saved window arrays with their category codes translated to the current dictionary."""
    if recode is None or "cat" not in arrays:
        return arrays
    cat = np.array(arrays["cat"], dtype=np.int32, copy=True)
    for j, lut in enumerate(recode):
        cat[:, j] = lut[cat[:, j]]
    return {**arrays, "cat": cat}


def window_events(w: CountWindow | TimeWindow) -> int:
    """Events held by a window: the ring's content, or a time window's open panes."""
    return w.filled if isinstance(w, CountWindow) else int(w.pending_events)


def _newer(a: VersionState, b: VersionState) -> bool:
    ea = (a.latest or {}).get("window", {}).get("end_position") or 0
    eb = (b.latest or {}).get("window", {}).get("end_position") or 0
    return (a.latest is not None, a.accepted, ea) > (b.latest is not None, b.accepted, eb)

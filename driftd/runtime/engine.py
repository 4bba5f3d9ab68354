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
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import orjson

from driftd.config import Config, ProfileReference
from driftd.decode import EventDecoder, Reject, RowMapper
from driftd.errors import ConfigError
from driftd.evaluation import MonitorSpec, build_spec, evaluate
from driftd.policy import Policy, PolicyState, alert_id
from driftd.types import RawRecord
from driftd.windows.count import CountWindow
from driftd.windows.profile import load_profile_for
from driftd.windows.time import TimeWindow, WindowView

if TYPE_CHECKING:
    from driftd.runtime.perf import PerfRuntime

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


@dataclass(slots=True)
class _Route:
    """Where one micro-batch's events of a (model, version) go, and how many were accepted."""

    version: str
    targets: list[tuple[MonitorRuntime, VersionState]]
    time_based: bool
    n: int = 0


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
        if not isinstance(ref, ProfileReference):
            raise ConfigError(
                f"monitors.{i}.reference.type",
                f"reference type {ref.type!r} is not supported yet; use type: profile",
            )
        profile = load_profile_for(m, ref.path, f"monitors.{i}.reference.path")
        if m.detectors:
            from driftd.runtime import detect

            detect.validate(m, i)
        specs.append(build_spec(m, profile, i))
    return specs


class Engine:
    def __init__(self, cfg: Config, specs: Sequence[MonitorSpec] | None = None) -> None:
        self.cfg = cfg
        self.decoder = EventDecoder(cfg.schema_, cfg.input.max_event_bytes)
        self.monitors = [
            MonitorRuntime(s) for s in (specs if specs is not None else load_specs(cfg))
        ]
        self.by_name = {m.name: m for m in self.monitors}
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
        self.eval_hist = Histogram(EVAL_BUCKETS)
        self.lock = threading.Lock()
        # Rejected records kept for a dead-letter destination (only when one is configured).
        self.collect_rejects = False
        self._rejects: list[tuple[RawRecord, str, str]] = []
        # Delayed-label performance monitoring (driftd.runtime.perf), when configured.
        self.perf: PerfRuntime | None = None
        if any(m.spec.cfg.performance is not None for m in self.monitors):
            from driftd.runtime.perf import PerfRuntime

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
        for i, ((mon, ver), vs) in enumerate(ps.versions.items()):
            versions.append(
                {
                    "monitor": mon,
                    "version": ver,
                    "fingerprint": self.by_name[mon].fingerprint,
                    "accepted": vs.accepted,
                    "policy": vs.policy.to_json(),
                    "warn": vs.warn.to_json(),
                    "detectors": [
                        _split(a.snapshot(), arrays, f"v{i}.d{j}.") for j, a in enumerate(vs.dets)
                    ],
                    "latest": vs.latest,
                }
            )
            for name, arr in vs.window.snapshot().items():
                arrays[f"v{i}.{name}"] = arr
        meta = {
            "next_offset": ps.next_offset,
            "events": ps.events,
            "model_versions": ps.model_versions,
            "versions": versions,
        }
        return meta, arrays

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
            prefix = f"v{i}."
            window = m.spec.restore_window(
                {k[len(prefix) :]: a for k, a in arrays.items() if k.startswith(prefix)}
            )
            vs = VersionState(
                window,
                PolicyState.from_json(v["policy"]),
                PolicyState.from_json(v["warn"]) if "warn" in v else PolicyState(),
                int(v["accepted"]),
                v.get("latest"),
            )
            if m.spec.cfg.detectors:
                from driftd.runtime import detect

                saved = [
                    _join(d, arrays, f"v{i}.d{j}.") for j, d in enumerate(v.get("detectors", []))
                ]
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
            if route.time_based:
                for m, vs in targets:
                    if m.spec.time_based:
                        vs.recs.append(rec)
        touched: list[tuple[MonitorRuntime, str, VersionState]] = []
        for route in accepted:
            self.accepted += route.n
            for m, vs in route.targets:
                vs.accepted += route.n
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
                vs = ps.versions[(m.name, version)] = self._new_version(m)
            targets.append((m, vs))
        return _Route(version, targets, any(m.spec.time_based for m in mons))

    @staticmethod
    def _new_version(m: MonitorRuntime, saved: list[dict[str, Any]] | None = None) -> VersionState:
        vs = VersionState(m.spec.new_window())
        if m.spec.cfg.detectors:
            from driftd.runtime import detect

            vs.dets = detect.attach(m.spec.cfg, saved)
        return vs

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
            if vs.dets and m.spec.prediction is not None and m.spec.prediction.kind == "numeric":
                from driftd.runtime import detect

                hits = detect.feed_scores(vs.dets, num[:, m.spec.prediction.column], pos)
                out.extend(self._detector_outputs(m, version, hits))
            w = vs.window
            if isinstance(w, CountWindow):
                for total in w.append(num, cat, pos, ts):
                    if w.filled >= m.spec.cfg.policy.min_events:
                        out.extend(self._evaluate(ps, m, version, vs, w, total))
                continue
            recs, vs.recs = vs.recs, []
            r = w.append(num, cat, pos, ts)
            self._reject_rows(m, version, vs, [recs[i] for i in r.late], "late")
            self._reject_rows(m, version, vs, [recs[i] for i in r.invalid_ts], "bad_timestamp")
            out.extend(self._evaluate_views(ps, m, version, vs, r.windows))
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
        ev = evaluate(m.spec, window)
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
            "segment": None,
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
        out = [evaluation]
        if vs.dets:
            from driftd.runtime import detect

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
        aid = alert_id(m.name, version, kind, seq, ps.key)
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
            "rollback_to": self.rollback_to(m, version, ps),
            "severity": severity,
            "drift_share": ev["drift_share"],
            "features": drifted,
            "window": {
                "start_position": w["start_position"],
                "end_position": w["end_position"],
                "events": w["events"],
            },
            "reference": m.spec.profile.id,
            "reason": reason,
        }
        if ps.key:
            payload["partition"] = ps.key
        if transition == "resolve":
            payload["resolves"] = vs.policy.open_alert_id
            vs.policy.open_alert_id = None
        log.warning(
            "%s monitor=%s model=%s version=%s rollback_to=%s id=%s (%s)",
            kind,
            m.name,
            m.model,
            version,
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
        else the monitor's configured fallback."""
        parts = [ps] if ps is not None else list(self.partitions.values())
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


def _split(state: dict[str, Any], arrays: dict[str, Any], prefix: str) -> dict[str, Any]:
    """JSON part of a snapshot; its NumPy arrays go to ``arrays`` under ``prefix``."""
    meta: dict[str, Any] = {}
    for k, v in state.items():
        if isinstance(v, np.ndarray):
            arrays[prefix + k] = v
            meta[k] = {"__array__": prefix + k}
        else:
            meta[k] = v
    return meta


def _join(meta: dict[str, Any], arrays: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {
        k: arrays[v["__array__"]] if isinstance(v, dict) and "__array__" in v else v
        for k, v in meta.items()
    }


def window_events(w: CountWindow | TimeWindow) -> int:
    """Events held by a window: the ring's content, or a time window's open panes."""
    return w.filled if isinstance(w, CountWindow) else int(w.pending_events)


def _newer(a: VersionState, b: VersionState) -> bool:
    ea = (a.latest or {}).get("window", {}).get("end_position") or 0
    eb = (b.latest or {}).get("window", {}).get("end_position") or 0
    return (a.latest is not None, a.accepted, ea) > (b.latest is not None, b.accepted, eb)

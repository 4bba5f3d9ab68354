"""Read-only status of the monitor stage, for the HTTP API and the metrics collector.

The loop builds a :class:`Status` between batches (:func:`monitor_status`) and publishes it;
readers (``/metrics``, ``/api/v1/monitors``, Flagger gates) only ever see such an immutable
snapshot, so a scrape never holds up consumption and never sees a half-folded batch. Every
figure is per (monitor, model_version[, segment]) over the events of every partition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from driftd.monitor.stage import MonitorStage
from driftd.monitor.version import VersionMonitor

if TYPE_CHECKING:  # river is imported only when a monitor has a performance block
    from driftd.monitor.perf_state import MonitorPerf


@dataclass(frozen=True, slots=True)
class VersionStatus:
    version: str
    state: str
    drift_share: float
    events: int  # accepted events folded in (this process's lifetime and restored state)
    window_events: int
    open_alert_id: str | None
    rollback_to: str | None
    last_evaluation: dict[str, Any] | None
    warmup: dict[str, int] | None = None
    detectors: tuple[str, ...] = ()
    segment: dict[str, str] | None = None  # a segment's status: its key
    segment_label: str = ""
    own_reference: bool = False  # a segment evaluated against its own reference
    segments: tuple[VersionStatus, ...] = ()
    estimate: dict[str, Any] | None = None  # the last performance_estimate line
    estimate_state: str = "ok"
    estimate_alert_id: str | None = None

    @property
    def drifted(self) -> bool:
        return self.state == "alerting"


@dataclass(frozen=True, slots=True)
class PerfVersionStatus:
    version: str
    state: str
    labelled_events: int
    open_alert_id: str | None
    last_evaluation: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class PerfStatus:
    counters: dict[str, int]
    unjoinable: dict[str, int]
    versions: tuple[PerfVersionStatus, ...]
    lag_buckets: tuple[tuple[float, int], ...]
    lag_sum: float


@dataclass(frozen=True, slots=True)
class MonitorStatus:
    name: str
    model: str
    segment_by: tuple[str, ...]
    versions: tuple[VersionStatus, ...]  # in order of first appearance
    current: str | None  # the most recently introduced version still kept
    accepted: dict[str, int]  # version → events (Prometheus counter)
    alerts: dict[str, int]  # severity → alerts raised
    detector_drifts: dict[tuple[str, str], int]  # (version, detector) → drifts
    segment_events: dict[tuple[str, str], int]
    segment_overflow: dict[str, int]
    evicted: int
    last_evaluation_wall: float | None
    performance: PerfStatus | None = None
    segment_series: str = "full"  # monitors[].segment_series: "full" | "summary"

    def version(self, name: str | None) -> VersionStatus | None:
        name = self.current if name is None else name
        return next((v for v in self.versions if v.version == name), None)


@dataclass(frozen=True, slots=True)
class Status:
    monitors: tuple[MonitorStatus, ...] = ()
    events_read: int = 0
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    labels_read: int = 0
    eval_buckets: tuple[float, ...] = ()
    eval_counts: tuple[int, ...] = ()
    eval_sum: float = 0.0
    # the process around the stages (set by the daemon)
    checkpoint_discarded: int = 0  # checkpoint entries unusable at restore, set aside
    checkpoint_failures: int = 0  # checkpoint writes that failed
    http_refused: int = 0  # HTTP connections closed to make room

    def monitor(self, name: str) -> MonitorStatus | None:
        return next((m for m in self.monitors if m.name == name), None)


def _version_status(stage: MonitorStage, vm: VersionMonitor) -> VersionStatus:
    ev = vm.latest
    seg = vm.segment
    status = VersionStatus(
        version=vm.version,
        state=vm.policy.state,
        drift_share=float(ev["drift_share"]) if ev else 0.0,
        events=vm.accepted,
        window_events=vm.window.held,
        open_alert_id=vm.policy.open_alert_id,
        rollback_to=stage.rollback_to(vm.version) if seg is None else None,
        last_evaluation=ev,
        warmup={"events": vm.warmup.seen, "needed": vm.warmup.need} if vm.warmup else None,
        detectors=tuple(a.name for a in vm.dets),
        segment=stage.segment_dict(seg) if seg is not None else None,
        segment_label=stage.segment_label(seg) if seg is not None else "",
        own_reference=seg is not None and seg in stage.spec.segment_specs,
        segments=tuple(
            _version_status(stage, c)
            for _, c in sorted(vm.segments.items(), key=lambda kv: stage.segment_label(kv[0]))
        ),
        estimate=vm.est_latest,
        estimate_state=vm.est.state,
        estimate_alert_id=vm.est.open_alert_id,
    )
    return status


def _perf_status(mp: MonitorPerf) -> PerfStatus:
    j = mp.joiner
    cum, total = j.lag_histogram()
    counters = dict(j.counters())
    for pending, early in mp.part_gauges.values():  # scale-out: joins in partition stages
        counters["pending"] += pending
        counters["early"] += early
    return PerfStatus(
        counters=counters,
        unjoinable={},
        versions=tuple(
            PerfVersionStatus(
                v, vp.policy.state, vp.window.total, vp.policy.open_alert_id, vp.latest
            )
            for v, vp in sorted(mp.versions.items())
        ),
        lag_buckets=tuple((float(b), int(n)) for b, n in cum),
        lag_sum=float(total),
    )


def monitor_status(
    stage: MonitorStage,
    perf: MonitorPerf | None,
    unjoinable: dict[str, int] | None = None,
    perf_detector_drifts: dict[tuple[str, str], int] | None = None,
) -> MonitorStatus:
    """A frozen copy of what readers need of one monitor (caller: the loop, between batches)."""
    order = {v: i for i, v in enumerate(stage.order)}
    kept = sorted(stage.versions.values(), key=lambda vm: order.get(vm.version, len(order)))
    ps = _perf_status(perf) if perf is not None else None
    if ps is not None and unjoinable is not None:
        object.__setattr__(ps, "unjoinable", dict(unjoinable))
    return MonitorStatus(
        name=stage.name,
        model=stage.model,
        segment_by=stage.segment_by,
        versions=tuple(_version_status(stage, vm) for vm in kept),
        current=_current(stage, kept),
        accepted=dict(stage.accepted),
        alerts=dict(stage.alerts),
        detector_drifts={**stage.detector_drifts, **(perf_detector_drifts or {})},
        segment_events=dict(stage.segment_events),
        segment_overflow=dict(stage.segment_overflow),
        evicted=stage.evicted,
        last_evaluation_wall=stage.last_evaluation_wall,
        performance=ps,
        segment_series=stage.spec.cfg.segment_series,
    )


def _current(stage: MonitorStage, kept: list[VersionMonitor]) -> str | None:
    """The version the API speaks for by default: the most recently introduced one that has
    served (reached ``policy.min_events``), else the most recent one."""
    for vm in reversed(kept):
        if vm.version in stage.served:
            return vm.version
    return kept[-1].version if kept else None


# ---------------------------------------------------------------------------- JSON views


def _version_json(v: VersionStatus) -> dict[str, Any]:
    out: dict[str, Any] = {
        "state": v.state,
        "drifted": v.drifted,
        "drift_share": v.drift_share,
        "events": v.events,
        "window_events": v.window_events,
        "open_alert_id": v.open_alert_id,
        "rollback_to": v.rollback_to,
        "last_evaluation": v.last_evaluation,
    }
    if v.warmup is not None:  # reference: {type: warmup} still collecting
        out["warmup"] = v.warmup
    return out


def monitor_json(m: MonitorStatus, version: str | None = None) -> dict[str, Any]:
    """``GET /api/v1/monitors/{name}``: per version, and at the top level the verdict of the
    requested version (``?model_version=``) or of the most recently introduced one."""
    versions: dict[str, Any] = {}
    for v in m.versions:
        versions[v.version] = _version_json(v)
        if m.segment_by:
            versions[v.version]["segments"] = {
                s.segment_label: {
                    "segment": s.segment,
                    "reference": "segment" if s.own_reference else "global",
                    **{k: val for k, val in _version_json(s).items() if k != "rollback_to"},
                }
                for s in v.segments
            }
            versions[v.version]["segments_drifted"] = [
                s.segment_label for s in v.segments if s.drifted
            ]
    current = version if version is not None else m.current
    top = versions.get(current) if current is not None else None
    out: dict[str, Any] = {
        "name": m.name,
        "model": m.model,
        "model_version": current,
        "drifted": bool(top and top["drifted"]),
        "drift_share": top["drift_share"] if top else 0.0,
        "state": top["state"] if top else "no_data",
        "rollback_to": top["rollback_to"] if top else None,
        "versions": versions,
    }
    if m.segment_by:
        out["segment_by"] = list(m.segment_by)
        out["segments_drifted"] = top["segments_drifted"] if top else []
    estimates = {v.version: v for v in m.versions if v.estimate is not None}
    if estimates:  # performance estimated before the labels, beside the realised values
        perf = m.performance
        realised = {p.version: p.last_evaluation for p in perf.versions} if perf else {}
        out["performance_estimate"] = {
            name: _estimate_json(v, realised.get(name)) for name, v in estimates.items()
        }
    if m.performance is not None:  # delayed-label performance, per version
        out["performance"] = {
            p.version: {
                "degraded": p.state == "alerting",
                "state": p.state,
                "labelled_events": p.labelled_events,
                "open_alert_id": p.open_alert_id,
                "last_evaluation": p.last_evaluation,
            }
            for p in m.performance.versions
        }
    return out


def _estimate_json(v: VersionStatus, realised: dict[str, Any] | None) -> dict[str, Any]:
    """A version's last estimate, each metric with the reference's realised value and, once
    labels have arrived, the realised value of the version's latest labelled window (which
    trails the estimated window: labels come later)."""
    est = v.estimate
    assert est is not None
    real = (realised or {}).get("metrics") or {}
    return {
        "degraded": v.estimate_state == "alerting",
        "state": v.estimate_state,
        "open_alert_id": v.estimate_alert_id,
        "window": est["window"],
        "metrics": {
            metric: {**e, "reference": est["reference"].get(metric), "realised": real.get(metric)}
            for metric, e in est["metrics"].items()
        },
        "realised_window": realised["window"] if realised else None,
    }


def rollback_gate(m: MonitorStatus, version: str | None = None) -> tuple[int, dict[str, Any]]:
    """Flagger rollback gate: (200, …) while an alert is open for the version, else (409, …).

    Flagger treats any 2xx from a ``rollback`` webhook as "roll back now" and anything else
    as "carry on", so a version with no data or no open alert must answer non-2xx.
    """
    view = monitor_json(m, version)
    rollback = bool(view["drifted"])
    body = {
        "monitor": view["name"],
        "model": view["model"],
        "model_version": view["model_version"],
        "rollback": rollback,
        "state": view["state"],
        "drift_share": view["drift_share"],
        "rollback_to": view["rollback_to"],
    }
    return (200 if rollback else 409), body

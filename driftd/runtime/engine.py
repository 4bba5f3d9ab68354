"""The pipeline core shared by `driftd run` and `driftd replay`.

``Engine.process(records)`` decodes a micro-batch, appends each (monitor, version)'s rows to
its window in one NumPy copy, evaluates at every window step, runs the policy and returns the
evaluation and alert objects (plain dicts, the replay output / webhook payload format). It does
no I/O; the daemon loop and the replay command decide what to do with the outputs.

Thread safety: the HTTP thread reads counters and latest verdicts under ``lock``; ``process``
holds it while it mutates them.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from driftd.config import Config, ProfileReference
from driftd.decode import EventDecoder, Reject, RowMapper
from driftd.errors import ConfigError
from driftd.evaluation import MonitorSpec, build_spec, evaluate
from driftd.policy import Policy, PolicyState, alert_id
from driftd.types import RawRecord
from driftd.windows.count import CountWindow
from driftd.windows.profile import load_profile_for

log = logging.getLogger(__name__)

# Evaluation latency histogram buckets (seconds).
EVAL_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def iso(ts: float | None) -> str | None:
    if ts is None or not math.isfinite(ts):
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@dataclass(slots=True)
class VersionState:
    """Everything driftd keeps for one (monitor, model_version)."""

    window: CountWindow
    policy: PolicyState = field(default_factory=PolicyState)
    accepted: int = 0
    latest: dict[str, Any] | None = None  # last evaluation output
    # staging for the current micro-batch
    num: list[float] = field(default_factory=list)
    cat: list[int] = field(default_factory=list)
    pos: list[int] = field(default_factory=list)
    ts: list[float] = field(default_factory=list)


class MonitorRuntime:
    def __init__(self, spec: MonitorSpec) -> None:
        self.spec = spec
        self.name = spec.cfg.name
        self.model = spec.cfg.model
        self.mapper: RowMapper = spec.mapper()
        self.policy = Policy(spec.cfg.policy)
        self.versions: dict[str, VersionState] = {}
        self.last_evaluation_wall: float | None = None

    def version(self, v: str) -> VersionState:
        st = self.versions.get(v)
        if st is None:
            st = self.versions[v] = VersionState(self.spec.new_window())
        return st


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
        specs.append(build_spec(m, profile, i))
    return specs


class Engine:
    def __init__(self, cfg: Config, specs: Sequence[MonitorSpec] | None = None) -> None:
        self.cfg = cfg
        self.decoder = EventDecoder(cfg.schema_, cfg.input.max_event_bytes)
        self.monitors = [
            MonitorRuntime(s) for s in (specs if specs is not None else load_specs(cfg))
        ]
        self.by_model: dict[str, list[MonitorRuntime]] = {}
        for m in self.monitors:
            self.by_model.setdefault(m.model, []).append(m)
        self.model_versions: dict[str, list[str]] = {}  # versions in order of first appearance
        self.events_read = 0
        self.accepted = 0
        self.rejected: Counter[str] = Counter()
        self.alerts: Counter[tuple[str, str]] = Counter()  # (monitor, severity)
        self.eval_hist = Histogram(EVAL_BUCKETS)
        self.lock = threading.Lock()

    # ------------------------------------------------------------------ processing

    def process(self, records: Sequence[RawRecord]) -> list[dict[str, Any]]:
        with self.lock:
            touched = self._stage(records)
            return self._flush(touched)

    def _stage(
        self, records: Sequence[RawRecord]
    ) -> list[tuple[MonitorRuntime, str, VersionState]]:
        touched: dict[tuple[int, str], tuple[MonitorRuntime, str, VersionState]] = {}
        decode = self.decoder.decode
        by_model = self.by_model
        for rec in records:
            self.events_read = max(self.events_read, rec.position)
            try:
                model, version, ts, feats, pred = decode(rec.value, rec.timestamp_ms)
                mons = by_model.get(model)
                if mons is None:
                    raise Reject("unknown_model", model[:100])
                staged: list[tuple[VersionState, int, int]] = []
                try:
                    for m in mons:
                        vs = m.version(version)
                        staged.append((vs, len(vs.num), len(vs.cat)))
                        m.mapper.map(feats, pred, vs.num, vs.cat)
                except Reject:
                    for vs, n0, c0 in staged:
                        del vs.num[n0:]
                        del vs.cat[c0:]
                    raise
            except Reject as r:
                self.rejected[r.reason] += 1
                continue
            self.accepted += 1
            versions = self.model_versions.setdefault(model, [])
            if version not in versions:
                versions.append(version)
            for m in mons:
                vs = m.versions[version]
                vs.pos.append(rec.position)
                vs.ts.append(ts)
                vs.accepted += 1
                touched[(id(m), version)] = (m, version, vs)
        return list(touched.values())

    def _flush(
        self, touched: list[tuple[MonitorRuntime, str, VersionState]]
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
            for _total in vs.window.append(num, cat, pos, ts):
                if vs.window.filled >= m.spec.cfg.policy.min_events:
                    out.extend(self._evaluate(m, version, vs))
        return out

    def _evaluate(self, m: MonitorRuntime, version: str, vs: VersionState) -> list[dict[str, Any]]:
        t0 = time.perf_counter()
        ev = evaluate(m.spec, vs.window)
        self.eval_hist.observe(time.perf_counter() - t0)
        end_ts = ev["window"].get("end_ts")
        ts = end_ts if end_ts is not None else float("nan")
        transition, reason = m.policy.decide(vs.policy, ev["drifted"], ts)
        window = dict(ev["window"])
        window["start_ts"] = iso(window.get("start_ts"))
        window["end_ts"] = iso(window.get("end_ts"))
        evaluation = {
            "type": "evaluation",
            "monitor": m.name,
            "model": m.model,
            "model_version": version,
            "segment": None,
            "window": window,
            "features": ev["features"],
            "prediction": ev["prediction"],
            "drift_share": ev["drift_share"],
            "drifted": ev["drifted"],
            "state": vs.policy.state,
            "reason": reason,
        }
        vs.latest = evaluation
        m.last_evaluation_wall = time.time()
        out = [evaluation]
        if transition is not None:
            out.append(self._transition(m, version, vs, ev, transition, reason, ts))
        return out

    def _transition(
        self,
        m: MonitorRuntime,
        version: str,
        vs: VersionState,
        ev: dict[str, Any],
        transition: str,
        reason: str,
        ts: float,
    ) -> dict[str, Any]:
        kind = "drift.detected" if transition == "alert" else "drift.resolved"
        aid = alert_id(m.name, version, kind, vs.window.total)
        if transition == "alert":
            vs.policy.open_alert_id = aid
            severity = "critical"
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
            if r is not None and r["drifted"]
        ]
        w = ev["window"]
        payload: dict[str, Any] = {
            "id": aid,
            "type": kind,
            "time": iso(ts) or iso(time.time()),
            "monitor": m.name,
            "model": m.model,
            "model_version": version,
            "rollback_to": self.rollback_to(m, version),
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
        return {"type": "alert", "event": kind, **{k: v for k, v in payload.items() if k != "type"}}

    @staticmethod
    def webhook_payload(alert: dict[str, Any]) -> dict[str, Any]:
        """The webhook body (DESIGN.md) for an ``{"type": "alert", "event": …}`` output line."""
        body = {k: v for k, v in alert.items() if k not in ("type", "event")}
        return {"id": body.pop("id"), "type": alert["event"], **body}

    def rollback_to(self, m: MonitorRuntime, version: str) -> str | None:
        """The version that served before ``version`` (first-appearance order), else the
        monitor's configured fallback."""
        seen = self.model_versions.get(m.model, [])
        if version in seen:
            i = seen.index(version)
            if i > 0:
                return seen[i - 1]
        return m.spec.cfg.fallback_version

    # ------------------------------------------------------------------ read side

    def summary(self) -> dict[str, Any]:
        with self.lock:
            return {
                "type": "summary",
                "events": self.events_read,
                "accepted": self.accepted,
                "rejected": dict(sorted(self.rejected.items())),
            }

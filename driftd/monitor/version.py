"""The state of one (monitor, model_version[, segment]) and its one entry point, ``fold``.

A :class:`VersionMonitor` owns the version's window, its policy states (critical and warning
episodes), river detectors, reference-mode state (a warmup reference being built, then the
spec on it) and, for monitors with ``segment_by``, one child per segment. Rows arrive merged
from every source partition in position order; ``fold`` appends them, evaluates the window at
every step, runs the policy and returns the output lines, each with the position of the row
that triggered it (the monitor stage orders outputs by it). Time windows are closed by
``advance`` when the monitor's clock moves.

What it needs from its monitor (name, layout, policy, partition and segment tables, the
version order behind ``rollback_to``, baseline windows) it reads through :class:`Context`.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import numpy as np

from driftd.ingest.decode import OTHER_SEGMENT
from driftd.ingest.panes import Rows
from driftd.monitor import detect, estimate, outputs, refmodes
from driftd.monitor.deferred import Evaluator, Pending
from driftd.monitor.evaluate import evaluate
from driftd.monitor.spec import MonitorSpec
from driftd.policy import Policy, PolicyState
from driftd.reference.warmup import WarmupBuilder
from driftd.windows.base import WindowView
from driftd.windows.count import CountWindow
from driftd.windows.time import EventTimeWindow

log = logging.getLogger(__name__)

Output = tuple[int, "dict[str, Any] | Pending"]  # (trigger position, line or pending step)


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


class Context(Protocol):
    """What a version reads from its monitor stage."""

    name: str
    model: str
    index: int
    spec: MonitorSpec
    policy: Policy
    partition_keys: list[str]
    eval_hist: Histogram
    alerts: Counter[str]
    detector_drifts: Counter[tuple[str, str]]
    segment_events: Counter[tuple[str, str]]
    segment_overflow: Counter[str]
    last_evaluation_wall: float | None
    deferred: Evaluator | None  # the evaluation thread, when steps are evaluated off-line

    def segment_key(self, code: int) -> tuple[str, ...]: ...

    def segment_label(self, key: tuple[str, ...]) -> str: ...

    def segment_dict(self, key: tuple[str, ...]) -> dict[str, str]: ...

    def code_tables(self) -> list[dict[str, int]]: ...

    def rollback_to(self, version: str) -> str | None: ...

    def baseline(self, version: str) -> tuple[str, CountWindow] | None: ...


class VersionMonitor:
    __slots__ = (
        "version",
        "segment",
        "spec",
        "window",
        "policy",
        "warn",
        "accepted",
        "latest",
        "last_position",
        "dets",
        "warmup",
        "ref_spec",
        "luts",
        "segments",
        "merged",
        "dirty",
        "est",
        "est_latest",
    )

    def __init__(self, ctx: Context, version: str, segment: tuple[str, ...] | None = None) -> None:
        layout = ctx.spec
        self.version = version
        self.segment = segment
        self.spec = layout.for_segment(segment) if segment is not None else layout
        self.window: CountWindow | EventTimeWindow = layout.new_window()
        self.policy = PolicyState()
        self.warn = PolicyState()  # warning-level episodes
        self.accepted = 0
        self.latest: dict[str, Any] | None = None  # last evaluation line
        self.last_position = 0  # newest row folded in (evictions pick the least recent)
        top = segment is None
        self.dets = detect.attach(layout.cfg) if top and layout.cfg.detectors else []
        self.warmup: WarmupBuilder | None = (
            refmodes.new_warmup(layout) if top and layout.mode == "warmup" else None
        )
        self.ref_spec: MonitorSpec | None = None  # warmup: the spec on the version's reference
        self.luts: tuple[int, list[Any]] | None = None  # (dictionary sizes, code lookup tables)
        self.segments: dict[tuple[str, ...], VersionMonitor] = {}
        self.merged: dict[str, int] = {}  # source partition → last offset merged
        self.dirty = True
        self.est = PolicyState()  # estimated-performance episodes (performance.estimate)
        self.est_latest: dict[str, Any] | None = None  # last performance_estimate line

    @property
    def changed(self) -> bool:
        """Changed since the last checkpoint (itself or one of its segments)."""
        return self.dirty or any(c.dirty for c in self.segments.values())

    @property
    def alerting(self) -> bool:
        return self.policy.state == "alerting" or any(
            c.policy.state == "alerting" for c in self.segments.values()
        )

    # ------------------------------------------------------------------ input

    def fold(self, rows: Rows, ctx: Context) -> list[Output]:
        """Append merged rows (position order); evaluate at each window step."""
        n = len(rows)
        if n == 0:
            return []
        out: list[Output] = []
        self.accepted += n
        self.last_position = int(rows.pos[-1])
        self.dirty = True
        pred = self.spec.prediction
        if self.dets and pred is not None and pred.kind == "numeric":
            hits = detect.feed_scores(self.dets, rows.num[:, pred.column], rows.pos)
            out.extend(self._detector_lines(ctx, hits))
        if self.warmup is not None:
            rows = self._warm(rows, ctx)
            if not len(rows):
                return out
        min_events = ctx.spec.cfg.policy.min_events
        for view in self.window.append(rows):
            if view.filled >= min_events:
                assert isinstance(view, CountWindow)
                out.extend(self.evaluate(view, view.seq, view.trigger, ctx))
        if rows.seg is not None and self.segment is None:
            out.extend(self._fold_segments(rows, ctx))
        return out

    def advance(
        self, watermark: float, trigger_of: Callable[[float], int], ctx: Context
    ) -> list[Output]:
        """Close the time windows the monitor's watermark has passed (and the segments')."""
        out: list[Output] = []
        if not isinstance(self.window, EventTimeWindow):
            return out
        min_events = ctx.spec.cfg.policy.min_events
        for view in self.window.advance(watermark):
            self.dirty = True
            if view.filled >= min_events:
                out.extend(self.evaluate(view, view.seq, trigger_of(view.window_end_ts), ctx))
        for child in self.segments.values():
            out.extend(child.advance(watermark, trigger_of, ctx))
        return out

    def _warm(self, rows: Rows, ctx: Context) -> Rows:
        """Fold the first rows still needed into the version's warmup reference; return the
        rest, which go to the window. Completing the reference resolves the version's tests
        and calibrates its thresholds on it, once (logged with its duration)."""
        b = self.warmup
        assert b is not None
        take = b.fold(rows.num, rows.cat)
        if b.done:
            log.info(
                "monitor %s version %s: warmup reference complete at position %d",
                ctx.name,
                self.version,
                int(rows.pos[take - 1]) if take else -1,
                extra={"monitor": ctx.name, "model_version": self.version},
            )
            self.ref_spec = refmodes.warmup_spec(
                ctx.spec, b, ctx.code_tables(), ctx.index, self.version
            )
            self.warmup = None
            self.luts = None
        return rows.take(slice(take, len(rows)))

    def _fold_segments(self, rows: Rows, ctx: Context) -> list[Output]:
        """Route the rows to the version's segment windows (one per segment key); beyond
        ``max_segments`` tracked segments, rows of new segments go to ``__other__``."""
        assert rows.seg is not None
        codes, first, inverse = np.unique(rows.seg, return_index=True, return_inverse=True)
        other = (OTHER_SEGMENT,) * len(ctx.spec.cfg.segment_by)
        cap = ctx.spec.cfg.max_segments
        tracked = len(self.segments) - (other in self.segments)
        target: dict[int, tuple[str, ...]] = {}
        for i in np.argsort(first, kind="stable").tolist():  # in order of first row
            key = ctx.segment_key(int(codes[i]))
            if key not in self.segments and key != other:
                if tracked >= cap:
                    ctx.segment_overflow[self.version] += int(np.count_nonzero(inverse == i))
                    key = other
                else:
                    tracked += 1
            target[i] = key
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, key in target.items():
            groups.setdefault(key, []).append(i)
        out: list[Output] = []
        for key, idx in groups.items():
            sel = np.flatnonzero(np.isin(inverse, idx))
            child = self.segments.get(key)
            if child is None:
                child = self.segments[key] = VersionMonitor(ctx, self.version, key)
            ctx.segment_events[(self.version, ctx.segment_label(key))] += int(sel.size)
            out.extend(child.fold(rows.take(sel), ctx))
        return out

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, view: WindowView, seq: int, trigger: int, ctx: Context) -> list[Output]:
        """Evaluate one window; ``seq`` (events merged, or the window's end time for time
        windows) makes alert ids stable under re-processing. With an evaluation thread
        (``ctx.deferred``) a count window's tests run there on a frozen copy, and the step
        comes back as a :class:`~driftd.monitor.deferred.Pending` the pipeline concludes in
        order; detectors and estimators, which read the step in line, keep it in line."""
        t0 = time.perf_counter()
        job = self._reference_for(view, ctx)
        if job is None:  # version mode: no baseline window to compare with yet
            return []
        spec, target, reference = job
        rollback_to = ctx.rollback_to(self.version)  # as it is now, in stream order
        pool = ctx.deferred
        window = self.window
        if (
            pool is not None
            and isinstance(window, CountWindow)
            and not self.dets
            and self.spec.estimator is None
        ):
            frozen = window.frozen()
            copy: WindowView = frozen
            if isinstance(target, refmodes.RemappedView):
                copy = refmodes.RemappedView(frozen, target.luts)
            fut = pool.submit(spec, copy, frozen.nbytes)
            return [(trigger, Pending(self, ctx, fut, reference, seq, trigger, rollback_to))]
        ev = evaluate(spec, target)
        result = (ev, time.perf_counter() - t0)
        return self.conclude(result, reference, view, seq, trigger, ctx, rollback_to)

    def conclude(
        self,
        result: tuple[dict[str, Any], float],
        reference: str | None,
        view: WindowView | None,
        seq: int,
        trigger: int,
        ctx: Context,
        rollback_to: str | None,
    ) -> list[Output]:
        """The in-order end of a step, from its (evaluation, seconds): policy, evaluation line,
        alerts, detectors, estimate (``view``: the window, for the estimator; None for a
        deferred step)."""
        ev, seconds = result
        ctx.eval_hist.observe(seconds)
        if reference is not None:
            ev["reference"] = reference
        end_ts = ev["window"].get("end_ts")
        ts = end_ts if end_ts is not None else math.nan
        transition, reason = ctx.policy.decide(self.policy, ev["drifted"], ts)
        warn_transition, warn_reason = ctx.policy.decide(
            self.warn, bool(ev["warnings"]) and not ev["drifted"], ts
        )
        line: dict[str, Any] = {
            "type": "evaluation",
            "monitor": ctx.name,
            "model": ctx.model,
            "model_version": self.version,
            "segment": ctx.segment_dict(self.segment) if self.segment is not None else None,
            "window": outputs.span_json(ev["window"], ctx.partition_keys),
            "features": ev["features"],
            "prediction": ev["prediction"],
            **({"multivariate": ev["multivariate"]} if ev.get("multivariate") else {}),
            "quality_breaches": ev["quality_breaches"],
            "warnings": ev["warnings"],
            "drift_share": ev["drift_share"],
            "drifted": ev["drifted"],
            "state": self.policy.state,
            "reason": reason,
        }
        if "reference" in ev:  # warmup / version references change per version or window
            line["reference"] = ev["reference"]
        out: list[Output] = [(trigger, line)]
        if self.dets:
            hits = detect.feed_evaluation(self.dets, line)
            out.extend(self._detector_lines(ctx, hits))
            line["detectors"] = detect.report(self.dets)
        self.latest = line
        self.dirty = True
        ctx.last_evaluation_wall = time.time()
        if transition is not None:
            alert = self._transition(ctx, ev, line, transition, reason, ts, seq, rollback_to)
            out.append((trigger, alert))
        if warn_transition == "alert":
            alert = self._transition(ctx, ev, line, "warning", warn_reason, ts, seq, rollback_to)
            out.append((trigger, alert))
        est = self.spec.estimator
        if est is not None and self.segment is None and view is not None:
            eline, ealert = estimate.run(est, view, line, self.est, ctx, self.version, seq, ts)
            self.est_latest = eline
            out.append((trigger, eline))
            if ealert is not None:
                out.append((trigger, ealert))
        return out

    def _reference_for(
        self, view: WindowView, ctx: Context
    ) -> tuple[MonitorSpec, WindowView, str | None] | None:
        """(spec, view to test, reference label) against the monitor's reference: the
        profile, the version's warmup reference, or the baseline version's current window
        (None: no baseline yet)."""
        mode = ctx.spec.mode
        if mode == "profile":
            return self.spec, view, None
        tables = ctx.code_tables()
        cap = ctx.spec.open_categories
        if mode == "warmup":
            spec = self.ref_spec
            assert spec is not None
            size = sum(len(t) for t in tables)  # dictionaries only grow
            if self.luts is None or self.luts[0] != size:
                self.luts = (size, refmodes.luts_for(spec, tables, cap))
            label = f"warmup:{self.version}:{spec.profile.id}"
            return spec, refmodes.RemappedView(view, self.luts[1]), label
        found = ctx.baseline(self.version)
        if found is None:
            return None
        base, bw = found
        spec, luts = refmodes.versus_spec(ctx.spec, bw, tables)
        span = bw.span()
        label = f"version:{base}:{span['start_position']}-{span['end_position']}"
        return spec, refmodes.RemappedView(view, luts), label

    def _transition(
        self,
        ctx: Context,
        ev: dict[str, Any],
        line: dict[str, Any],
        transition: str,
        reason: str,
        ts: float,
        seq: int,
        rollback_to: str | None,
    ) -> dict[str, Any]:
        kind = outputs.ALERT_KINDS[transition]
        seg = ctx.segment_label(self.segment) if self.segment is not None else ""
        aid = outputs.alert_id(ctx.name, self.version, kind, seq, seg)
        resolves: dict[str, Any] | None = None
        if transition == "alert":
            self.policy.open_alert_id = aid
            severity = "critical"
        elif transition == "warning":
            severity = "warning"
        else:
            severity = "info"
            resolves = {"resolves": self.policy.open_alert_id}
            self.policy.open_alert_id = None
        if severity != "info":
            ctx.alerts[severity] += 1
        w = line["window"]
        window = {k: w[k] for k in ("start_position", "end_position", "events")}
        if "partitions" in w:
            window["partitions"] = w["partitions"]
        if rollback_to is None and transition == "alert":
            log.warning(
                "monitor %s version %s: no rollback_to in the alert: no earlier version reached"
                " policy.min_events and no fallback_version is configured",
                ctx.name,
                self.version,
                extra={"monitor": ctx.name, "model_version": self.version, "alert_id": aid},
            )
        alert = outputs.alert_line(
            kind,
            aid,
            ts,
            monitor=ctx.name,
            model=ctx.model,
            version=self.version,
            segment=ctx.segment_dict(self.segment) if self.segment is not None else None,
            rollback_to=rollback_to,
            severity=severity,
            reason=reason,
            tail=resolves,
            body={
                "drift_share": ev["drift_share"],
                "features": outputs.drifted_features(ev, transition == "warning"),
                "window": window,
                "reference": ev.get("reference", self.spec.profile.id),
            },
        )
        log.warning(
            "%s monitor=%s model=%s version=%s%s rollback_to=%s id=%s (%s)",
            kind,
            ctx.name,
            ctx.model,
            self.version,
            f" segment={seg}" if seg else "",
            rollback_to,
            aid,
            reason,
            extra={
                "monitor": ctx.name,
                "model_version": self.version,
                "segment": seg or None,
                "alert_id": aid,
            },
        )
        return alert

    def _detector_lines(
        self, ctx: Context, hits: Iterable[tuple[detect.Attached, int]]
    ) -> list[Output]:
        out: list[Output] = []
        for a, position in hits:
            ctx.detector_drifts[(self.version, a.name)] += 1
            log.info(
                "detector %s flagged monitor=%s version=%s at position %d",
                a.name,
                ctx.name,
                self.version,
                position,
                extra={"monitor": ctx.name, "model_version": self.version},
            )
            out.append(
                (
                    position,
                    outputs.detector_line(ctx.name, ctx.model, self.version, a.name, position),
                )
            )
        return out

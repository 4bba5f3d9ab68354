"""Prometheus metrics, read at scrape time from the status the loop published.

Nothing here is a global: :func:`build_registry` returns a fresh ``CollectorRegistry`` holding
one :class:`DriftdCollector` that reads the latest :class:`~driftd.monitor.view.Status` (an
immutable snapshot, so a scrape never waits for or blocks consumption), the actions and the
source's lag when Prometheus scrapes — plus prometheus_client's process, platform and GC
collectors (``process_resident_memory_bytes``, ``process_start_time_seconds``, ``python_info``,
``python_gc_*``), registered into that same registry. Metric names are stable API. Every
per-version series covers the version's events from every partition.

Series budget (docs/metrics.md): per (monitor, version) four gauges and one counter, per tested
feature (the prediction included) three to four drift gauges and two quality gauges; a segment
repeats all of it with a ``segment`` label, or only the version-level gauges under
``monitors[].segment_series: summary``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from prometheus_client import GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from driftd._version import __version__
from driftd.monitor.view import MonitorStatus, Status, VersionStatus


class ActionStats(Protocol):
    @property
    def outcomes(self) -> dict[str, int]: ...

    def pending(self) -> int: ...


class DriftdCollector(Collector):
    def __init__(
        self,
        status: Callable[[], Status],
        actions: Mapping[str, ActionStats] | None = None,
        lag: Callable[[], dict[tuple[str, int], int]] | None = None,
    ) -> None:
        self.status = status
        self.actions = actions or {}
        self.lag = lag

    def collect(self) -> Iterable[Metric]:
        st = self.status()
        events = CounterMetricFamily(
            "driftd_events", "Events accepted", labels=["monitor", "model_version"]
        )
        rejected = CounterMetricFamily(
            "driftd_events_rejected", "Events rejected, by reason", labels=["reason"]
        )
        stat = GaugeMetricFamily(
            "driftd_drift_statistic",
            "Latest drift statistic",
            labels=["monitor", "model_version", "feature", "test"],
        )
        pval = GaugeMetricFamily(
            "driftd_drift_p_value",
            "Latest p-value (tests that have one)",
            labels=["monitor", "model_version", "feature", "test"],
        )
        thr = GaugeMetricFamily(
            "driftd_drift_threshold",
            "Threshold the statistic or p-value is compared with",
            labels=["monitor", "model_version", "feature", "test"],
        )
        fdrift = GaugeMetricFamily(
            "driftd_feature_drifted",
            "1 when the feature breached its threshold",
            labels=["monitor", "model_version", "feature"],
        )
        mdrift = GaugeMetricFamily(
            "driftd_monitor_drifted",
            "1 while an alert is open for the monitor and version",
            labels=["monitor", "model_version"],
        )
        share = GaugeMetricFamily(
            "driftd_drift_share",
            "Share of drifted features in the latest window",
            labels=["monitor", "model_version"],
        )
        wev = GaugeMetricFamily(
            "driftd_window_events",
            "Events in the current window",
            labels=["monitor", "model_version"],
        )
        alerts = CounterMetricFamily(
            "driftd_alerts", "Alerts raised", labels=["monitor", "severity"]
        )
        last_eval = GaugeMetricFamily(
            "driftd_last_evaluation_timestamp_seconds",
            "Wall time of the last evaluation",
            labels=["monitor"],
        )
        seg_events = CounterMetricFamily(
            "driftd_segment_events",
            "Events accepted, by segment (monitors with segment_by)",
            labels=["monitor", "model_version", "segment"],
        )
        overflow = CounterMetricFamily(
            "driftd_segment_overflow_events",
            "Events of segments beyond max_segments, evaluated in the __other__ segment",
            labels=["monitor", "model_version"],
        )
        segs = GaugeMetricFamily(
            "driftd_segments",
            "Segments with a window (the __other__ segment included)",
            labels=["monitor", "model_version"],
        )
        dets = CounterMetricFamily(
            "driftd_detector_drifts",
            "Drifts flagged by river detectors on aggregate signals",
            labels=["monitor", "model_version", "detector"],
        )
        quality = GaugeMetricFamily(
            "driftd_feature_quality",
            "Data-quality rate of the feature in the latest window, by check (missing_rate,"
            " out_of_range_rate for numeric features, unseen_rate for categorical ones)",
            labels=["monitor", "model_version", "feature", "check"],
        )
        evicted = CounterMetricFamily(
            "driftd_versions_evicted",
            "Idle version states dropped to stay within monitors[].max_versions",
            labels=["monitor"],
        )
        for m in st.monitors:
            for version, n in sorted(m.accepted.items()):
                events.add_metric([m.name, version], n)
            for (version, seg), n in sorted(m.segment_events.items()):
                seg_events.add_metric([m.name, version, seg], n)
            if m.segment_by:  # exported from 0 for every version of a segmented monitor
                for v in m.versions:
                    overflow.add_metric([m.name, v.version], m.segment_overflow.get(v.version, 0))
                    segs.add_metric([m.name, v.version], len(v.segments))
            # The version's overall series keep their labels (no segment label, which PromQL
            # matches as segment=""); a segmented monitor adds one series per segment: all of
            # them, or (segment_series: summary) only the version-level verdict gauges.
            fams = (stat, pval, thr, fdrift, mdrift, share, wev, quality)
            per_feature = m.segment_series != "summary"
            for v in m.versions:
                _version_series(m, v, "", fams)
                for s in v.segments:
                    _version_series(m, s, s.segment_label, fams, per_feature=per_feature)
            if m.last_evaluation_wall is not None:
                last_eval.add_metric([m.name], m.last_evaluation_wall)
            for sev, n in sorted(m.alerts.items()):
                alerts.add_metric([m.name, sev], n)
            det_counts = dict(m.detector_drifts)
            for v in m.versions:  # attached detectors are exported from 0
                for name in v.detectors:
                    det_counts.setdefault((v.version, name), 0)
            for (ver, det), n in sorted(det_counts.items()):
                dets.add_metric([m.name, ver, det], n)
            evicted.add_metric([m.name], m.evicted)
        for reason, n in sorted(st.rejected.items()):
            rejected.add_metric([reason], n)
        buckets = []
        acc = 0
        for bound, c in zip(st.eval_buckets, st.eval_counts, strict=False):
            acc += c
            buckets.append((_fmt(bound), acc))
        acc += st.eval_counts[-1] if st.eval_counts else 0
        buckets.append(("+Inf", acc))
        hist = HistogramMetricFamily(
            "driftd_evaluation_duration_seconds",
            "Time to evaluate one window",
            buckets=buckets,
            sum_value=st.eval_sum,
        )
        yield from (events, rejected, stat, pval, thr, fdrift, mdrift, share, wev, quality, alerts)
        yield last_eval
        if any(m.segment_by for m in st.monitors):  # unsegmented deployments: as before
            yield from (seg_events, overflow, segs)
        yield hist
        yield dets
        yield evicted
        if any(m.performance is not None for m in st.monitors):
            yield from _performance(st)
        if any(v.estimate is not None for m in st.monitors for v in m.versions):
            yield from _estimates(st)
        deliveries = CounterMetricFamily(
            "driftd_webhook_deliveries", "Webhook delivery outcomes", labels=["action", "outcome"]
        )
        pending = GaugeMetricFamily(
            "driftd_webhook_pending", "Webhook deliveries waiting in the outbox", labels=["action"]
        )
        for name, a in sorted(self.actions.items()):
            for outcome, n in sorted(dict(a.outcomes).items()):
                deliveries.add_metric([name, outcome], n)
            pending.add_metric([name], a.pending())
        yield deliveries
        yield pending
        lag = GaugeMetricFamily(
            "driftd_consumer_lag",
            "Records behind the partition's high watermark",
            labels=["topic", "partition"],
        )
        if self.lag is not None:
            for (topic, part), n in sorted(self.lag().items()):
                lag.add_metric([topic, str(part)], n)
        yield lag
        for name, doc, value in (
            (
                "driftd_checkpoint_entries_discarded",
                "Checkpoint entries found unusable at restore and set aside (their monitor or"
                " version started fresh)",
                st.checkpoint_discarded,
            ),
            ("driftd_checkpoint_failures", "Checkpoint writes that failed", st.checkpoint_failures),
            (
                "driftd_http_connections_refused",
                "HTTP connections closed to make room (over http.max_connections)",
                st.http_refused,
            ),
        ):
            fam = CounterMetricFamily(name, doc)
            fam.add_metric([], value)
            yield fam
        info = GaugeMetricFamily("driftd_build_info", "driftd build", labels=["version"])
        info.add_metric([__version__], 1.0)
        yield info


def _version_series(
    m: MonitorStatus,
    v: VersionStatus,
    seg: str,
    fams: tuple[GaugeMetricFamily, ...],
    *,
    per_feature: bool = True,
) -> None:
    stat, pval, thr, fdrift, mdrift, share, wev, quality = fams
    _add(wev, [m.name, v.version], seg, v.window_events)
    _add(mdrift, [m.name, v.version], seg, v.drifted)
    ev = v.last_evaluation
    if ev is None:
        return
    _add(share, [m.name, v.version], seg, ev["drift_share"])
    if not per_feature:
        return
    items: list[tuple[str, Any]] = list(ev["features"].items())
    if ev["prediction"] is not None:
        items.append(("prediction", ev["prediction"]))
    mv = ev.get("multivariate")
    if mv is not None:  # one more feature: feature="multivariate", test="<method>"
        items.append(("multivariate", {**mv, "test": mv["method"], "p_value": None}))
    for fname, r in items:
        labels = [m.name, v.version, fname, r["test"]]
        if r["statistic"] is not None:
            _add(stat, labels, seg, r["statistic"])
        if r["p_value"] is not None:
            _add(pval, labels, seg, r["p_value"])
        _add(thr, labels, seg, r["threshold"])
        _add(fdrift, [m.name, v.version, fname], seg, r["drifted"])
        for check, rate in sorted((r.get("quality") or {}).items()):
            _add(quality, [m.name, v.version, fname, check], seg, rate)


def _add(fam: GaugeMetricFamily, values: list[str], segment: str, value: float) -> None:
    """One gauge sample; a segment's sample carries the extra ``segment`` label."""
    if not segment:
        fam.add_metric(values, float(value))
        return
    labels = dict(zip(FAMILY_LABELS[fam.name], values, strict=True))
    labels["segment"] = segment
    fam.add_sample(fam.name, labels, float(value))


FAMILY_LABELS = {
    "driftd_drift_statistic": ("monitor", "model_version", "feature", "test"),
    "driftd_drift_p_value": ("monitor", "model_version", "feature", "test"),
    "driftd_drift_threshold": ("monitor", "model_version", "feature", "test"),
    "driftd_feature_drifted": ("monitor", "model_version", "feature"),
    "driftd_monitor_drifted": ("monitor", "model_version"),
    "driftd_drift_share": ("monitor", "model_version"),
    "driftd_window_events": ("monitor", "model_version"),
    "driftd_feature_quality": ("monitor", "model_version", "feature", "check"),
}


def _performance(st: Status) -> list[Metric]:
    """Delayed-label performance families."""
    value = GaugeMetricFamily(
        "driftd_performance",
        "Latest model-performance metric on the version's labelled window",
        labels=["monitor", "model_version", "metric"],
    )
    degraded = GaugeMetricFamily(
        "driftd_performance_degraded",
        "1 while a performance.degraded alert is open for the monitor and version",
        labels=["monitor", "model_version"],
    )
    labelled = CounterMetricFamily(
        "driftd_labelled_events",
        "Predictions joined to their label (labelled events), by version",
        labels=["monitor", "model_version"],
    )
    labels = CounterMetricFamily(
        "driftd_labels",
        "Label events by outcome: joined, late (after the horizon), orphaned (no prediction), "
        "duplicate",
        labels=["monitor", "outcome"],
    )
    unlabelled = CounterMetricFamily(
        "driftd_predictions_unlabelled",
        "Predictions dropped without a label: expired (horizon passed) or evicted (max_pending)",
        labels=["monitor", "reason"],
    )
    pending = GaugeMetricFamily(
        "driftd_label_pending_predictions",
        "Predictions waiting for their label",
        labels=["monitor"],
    )
    early = GaugeMetricFamily(
        "driftd_label_early_labels", "Labels waiting for their prediction", labels=["monitor"]
    )
    no_id = CounterMetricFamily(
        "driftd_predictions_unjoinable",
        "Accepted predictions the label join cannot take: no_event_id, too_many_versions, "
        "future_ts (more than a day ahead of this clock)",
        labels=["monitor", "reason"],
    )
    lag = HistogramMetricFamily(
        "driftd_label_lag_seconds",
        "Label lag (label time minus prediction time) of joined predictions",
        labels=["monitor"],
    )
    out: list[Metric] = [value, degraded, labelled, labels, unlabelled, pending, early, no_id, lag]
    for m in st.monitors:
        p = m.performance
        if p is None:
            continue
        c = p.counters
        for key, outcome in (("joined", "joined"), ("late", "late"), ("orphaned", "orphaned"),
                             ("duplicates", "duplicate")):  # fmt: skip
            labels.add_metric([m.name, outcome], c[key])
        unlabelled.add_metric([m.name, "expired"], c["expired"])
        unlabelled.add_metric([m.name, "evicted"], c["evicted"])
        pending.add_metric([m.name], c["pending"])
        early.add_metric([m.name], c["early"])
        for reason in ("no_event_id", "too_many_versions", "future_ts"):
            no_id.add_metric([m.name, reason], p.unjoinable.get(reason, 0))
        for v in p.versions:
            labelled.add_metric([m.name, v.version], v.labelled_events)
            degraded.add_metric([m.name, v.version], 1.0 if v.state == "alerting" else 0.0)
            if v.last_evaluation is not None:
                for metric, x in v.last_evaluation["metrics"].items():
                    if x is not None:
                        value.add_metric([m.name, v.version, metric], x)
        lag.add_metric(
            [m.name],
            [("+Inf" if b == float("inf") else _fmt(b), n) for b, n in p.lag_buckets],
            sum_value=p.lag_sum,
        )
    return out


def _estimates(st: Status) -> list[Metric]:
    """Performance estimated before the labels (``performance: {estimate: cbpe}``); the
    realised values, once labels arrive, are ``driftd_performance`` with the same labels."""
    labels = ["monitor", "model_version", "metric"]
    value = GaugeMetricFamily(
        "driftd_performance_estimated",
        "Latest estimated model-performance metric of the version's window (CBPE)",
        labels=labels,
    )
    lower = GaugeMetricFamily(
        "driftd_performance_estimated_lower", "Lower end of the estimate's band", labels=labels
    )
    upper = GaugeMetricFamily(
        "driftd_performance_estimated_upper", "Upper end of the estimate's band", labels=labels
    )
    degraded = GaugeMetricFamily(
        "driftd_performance_estimated_degraded",
        "1 while a performance.estimated_degraded alert is open for the monitor and version",
        labels=["monitor", "model_version"],
    )
    for m in st.monitors:
        for v in m.versions:
            if v.estimate is None:
                continue
            degraded.add_metric([m.name, v.version], v.estimate_state == "alerting")
            for metric, e in v.estimate["metrics"].items():
                for fam, key in ((value, "estimate"), (lower, "lower"), (upper, "upper")):
                    if e[key] is not None:
                        fam.add_metric([m.name, v.version, metric], e[key])
    return [value, lower, upper, degraded]


def _fmt(b: float) -> str:
    return repr(float(b))


def build_registry(
    status: Callable[[], Status],
    actions: Mapping[str, ActionStats] | None = None,
    lag: Callable[[], dict[tuple[str, int], int]] | None = None,
) -> CollectorRegistry:
    """A fresh registry: driftd's collector and the process, platform and GC collectors (each
    registry gets its own instances; the global ``REGISTRY`` is never touched)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(DriftdCollector(status, actions, lag))
    ProcessCollector(registry=reg)
    PlatformCollector(registry=reg)
    GCCollector(registry=reg)
    return reg

"""Prometheus metrics, read from live state at scrape time through an injected registry.

Nothing here is a global: :func:`build_registry` returns a fresh ``CollectorRegistry`` holding
one :class:`DriftdCollector` that reads the engine (under its lock), the actions and the
source when Prometheus scrapes. Metric names are stable API (DESIGN.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from driftd._version import __version__
from driftd.runtime.engine import Engine


class ActionStats(Protocol):
    @property
    def outcomes(self) -> dict[str, int]: ...

    def pending(self) -> int: ...


class DriftdCollector(Collector):
    def __init__(
        self,
        engine: Engine,
        actions: Mapping[str, ActionStats] | None = None,
        lag: Callable[[], dict[tuple[str, int], int]] | None = None,
    ) -> None:
        self.engine = engine
        self.actions = actions or {}
        self.lag = lag

    def collect(self) -> Iterable[Metric]:
        e = self.engine
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
        seg_count: dict[str, int] = {}
        with e.lock:
            for (mon, version), n in sorted(e.accepted_by.items()):
                events.add_metric([mon, version], n)
            for (mon, version, seg), n in sorted(e.segment_events.items()):
                seg_events.add_metric([mon, version, seg], n)
            ov = dict(e.segment_overflow)
            for m in e.monitors:
                if m.segment_by:  # exported from 0 for every version of a segmented monitor
                    for version in e.version_states(m):
                        ov.setdefault((m.name, version), 0)
            for (mon, version), n in sorted(ov.items()):
                overflow.add_metric([mon, version], n)
            for m in e.monitors:
                totals = e.version_totals(m)
                # The version's overall series keep their labels (no segment label, which
                # PromQL matches as segment=""); a segmented monitor adds one series per
                # segment with a `segment` label.
                rows: list[tuple[str, str, Any, int]] = [
                    (version, "", vs, totals[version][1])
                    for version, vs in sorted(e.version_states(m).items())
                ]
                if m.segment_by:
                    seg_totals = e.segment_totals(m)
                    for (version, key), vs in sorted(e.segment_states(m).items()):
                        label = m.segment_label(key)
                        rows.append((version, label, vs, seg_totals[(version, key)][1]))
                        seg_count[version] = seg_count.get(version, 0) + 1
                for version, seg, vs, n_window in rows:
                    _add(wev, [m.name, version], seg, n_window)
                    _add(mdrift, [m.name, version], seg, vs.policy.state == "alerting")
                    ev = vs.latest
                    if ev is None:
                        continue
                    _add(share, [m.name, version], seg, ev["drift_share"])
                    items: list[tuple[str, Any]] = list(ev["features"].items())
                    if ev["prediction"] is not None:
                        items.append(("prediction", ev["prediction"]))
                    for fname, r in items:
                        labels = [m.name, version, fname, r["test"]]
                        if r["statistic"] is not None:
                            _add(stat, labels, seg, r["statistic"])
                        if r["p_value"] is not None:
                            _add(pval, labels, seg, r["p_value"])
                        _add(thr, labels, seg, r["threshold"])
                        _add(fdrift, [m.name, version, fname], seg, r["drifted"])
                for version in sorted(seg_count):
                    segs.add_metric([m.name, version], seg_count.pop(version))
                if m.last_evaluation_wall is not None:
                    last_eval.add_metric([m.name], m.last_evaluation_wall)
            for reason, n in sorted(e.rejected.items()):
                rejected.add_metric([reason], n)
            for (mon, sev), n in sorted(e.alerts.items()):
                alerts.add_metric([mon, sev], n)
            dets = CounterMetricFamily(
                "driftd_detector_drifts",
                "Drifts flagged by river detectors on aggregate signals",
                labels=["monitor", "model_version", "detector"],
            )
            det_counts = dict(e.detector_drifts)
            if e.perf is not None:  # river detectors on the labelled error stream
                det_counts.update(e.perf.detector_drifts)
            for m in e.monitors:  # attached detectors are exported from 0
                for version, vs in e.version_states(m).items():
                    for a in vs.dets:
                        det_counts.setdefault((m.name, version, a.name), 0)
            for (mon, ver, det), n in sorted(det_counts.items()):
                dets.add_metric([mon, ver, det], n)
            evicted = CounterMetricFamily(
                "driftd_versions_evicted",
                "Idle version states dropped to stay within monitors[].max_versions per partition",
                labels=["monitor"],
            )
            for m in e.monitors:
                evicted.add_metric([m.name], e.versions_evicted.get(m.name, 0))
            h = e.eval_hist
            buckets = []
            acc = 0
            for bound, c in zip(h.buckets, h.counts, strict=False):
                acc += c
                buckets.append((_fmt(bound), acc))
            acc += h.counts[-1]
            buckets.append(("+Inf", acc))
            hist = HistogramMetricFamily(
                "driftd_evaluation_duration_seconds",
                "Time to evaluate one window",
                buckets=buckets,
                sum_value=h.sum,
            )
            perf = _performance(e) if e.perf is not None else []
        yield from (events, rejected, stat, pval, thr, fdrift, mdrift, share, wev, alerts)
        yield last_eval
        if any(m.segment_by for m in e.monitors):  # unsegmented deployments: as before
            yield from (seg_events, overflow, segs)
        yield hist
        yield dets
        yield evicted
        yield from perf
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
        info = GaugeMetricFamily("driftd_build_info", "driftd build", labels=["version"])
        info.add_metric([__version__], 1.0)
        yield info


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
}


def _performance(e: Engine) -> list[Metric]:
    """Delayed-label performance families (caller holds the engine lock)."""
    assert e.perf is not None
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
    for mp in e.perf.monitors.values():
        j = mp.joiner
        c = j.counters()
        for key, outcome in (("joined", "joined"), ("late", "late"), ("orphaned", "orphaned"),
                             ("duplicates", "duplicate")):  # fmt: skip
            labels.add_metric([mp.name, outcome], c[key])
        unlabelled.add_metric([mp.name, "expired"], c["expired"])
        unlabelled.add_metric([mp.name, "evicted"], c["evicted"])
        pending.add_metric([mp.name], c["pending"])
        early.add_metric([mp.name], c["early"])
        for reason in ("no_event_id", "too_many_versions", "future_ts"):
            no_id.add_metric([mp.name, reason], e.perf.unjoinable.get((mp.name, reason), 0))
        for version, vp in sorted(mp.versions.items()):
            labelled.add_metric([mp.name, version], vp.window.total)
            degraded.add_metric([mp.name, version], 1.0 if vp.policy.state == "alerting" else 0.0)
            if vp.latest is not None:
                for metric, v in vp.latest["metrics"].items():
                    if v is not None:
                        value.add_metric([mp.name, version, metric], v)
        cum, total = j.lag_histogram()
        lag.add_metric(
            [mp.name],
            [("+Inf" if b == float("inf") else _fmt(b), n) for b, n in cum],
            sum_value=total,
        )
    return out


def _fmt(b: float) -> str:
    return repr(float(b))


def build_registry(
    engine: Engine,
    actions: Mapping[str, ActionStats] | None = None,
    lag: Callable[[], dict[tuple[str, int], int]] | None = None,
) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(DriftdCollector(engine, actions, lag))
    return reg

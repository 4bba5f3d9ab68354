"""Model performance on delayed labels: the monitor stage's label join and labelled windows.

Per batch the pipeline hands this stage the accepted predictions of models that a monitor with
a ``performance`` block watches (event id, score, version, time, and the label when the event
already carries one) and the label events (from ``kafka.label_topics``, from ``driftd replay
--labels FILE``, or label-only lines in the prediction stream). Per monitor, a
:class:`~driftd.performance.LabelJoiner` joins them by ``event_id`` within
``label_horizon_s``; joined pairs fill a :class:`~driftd.performance.LabelledWindow` per model
version; every ``step`` new labelled events of a version its metrics are computed and, when
the baseline (the version it replaced, a named version, or fixed reference values) has a
window too, compared with it with a confidence interval. The monitor's policy turns
"degraded" verdicts into ``performance.degraded`` / ``performance.resolved`` alerts, shaped by
the same alert builder as drift alerts and sent through the same outbox and webhooks.

Like drift state, performance state is per monitor and version over every partition, not per
source partition (labels come from another topic than their predictions). It is one
checkpoint entry (:data:`CHECKPOINT_KEY`) written atomically with the rest of the state, so a
crash replays predictions and labels into a joiner that has not seen them.

Late, orphaned, duplicate and malformed labels are counted, never errors.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from driftd.config import Config, PerformanceConfig
from driftd.ingest.decode import Reject
from driftd.ingest.labels import LabelReader, label_of
from driftd.monitor import perf_join, perf_state
from driftd.monitor.outputs import alert_id, alert_line, detector_line, iso
from driftd.monitor.perf_split import Outcomes, PartitionJoins, fold_counts
from driftd.monitor.perf_state import MonitorPerf, MonitorRef, VersionPerf
from driftd.performance import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    Comparison,
    JoinedPairs,
    classification_metrics,
    compare,
    error_stream,
    regression_metrics,
)
from driftd.performance.metrics import json_metrics
from driftd.sources.base import partition_key
from driftd.state.checkpoint import PERFORMANCE_KEY
from driftd.types import RawRecord

log = logging.getLogger(__name__)

CHECKPOINT_KEY = PERFORMANCE_KEY
SNAPSHOT_FORMAT = 1
# Label outcomes exported as driftd_labels_total{outcome}: joiner counter → outcome label.
LABEL_OUTCOMES = {"joined": "joined", "late": "late", "orphaned": "orphaned",
                  "duplicates": "duplicate"}  # fmt: skip
PREDICTION_OUTCOMES = ("expired", "evicted")
Origin = tuple[str, int]  # (source partition key, offset)


def _slice(p: JoinedPairs, a: int, b: int) -> JoinedPairs:
    return JoinedPairs(
        p.version[a:b], p.score[a:b], p.label[a:b], p.pred_label[a:b], p.pred_ts[a:b],
        p.label_ts[a:b], p.version_names,
    )  # fmt: skip


class PerformanceStage:
    """Every monitor's performance state plus the per-batch staging (see module docstring)."""

    def __init__(
        self, cfg: Config, monitors: Sequence[tuple[MonitorRef, PerformanceConfig]]
    ) -> None:
        self.label_topics = frozenset(cfg.kafka.label_topics)
        self.monitors: dict[str, MonitorPerf] = {}
        self.by_model: dict[str, list[MonitorPerf]] = {}
        for m, pc in monitors:
            mp = self.monitors[m.name] = MonitorPerf(m, pc)
            self.by_model.setdefault(m.model, []).append(mp)
        # label events refused (taken by the pipeline: counted and dead-lettered there)
        self.rejected: list[tuple[RawRecord, str, str]] = []
        s = cfg.schema_
        self._reader = LabelReader(s)
        # staging for the current micro-batch
        self._preds: list[tuple[str, str, Any, Any, float]] = []
        self._labels: list[tuple[str | None, str, float, float]] = []
        # Scale-out (monitor.perf_split): joins per source partition index, in the partition
        # stage; the staged rows' origins tell the decider which pairs it folded already.
        self.split: PartitionJoins | None = None
        self._pred_origin: list[Origin] = []
        self._label_origin: list[Origin] = []
        # process-lifetime counters (Prometheus)
        self.labels_read = 0  # label events taken (label topics, label files, label lines)
        # (monitor, reason) → accepted predictions the join cannot take
        self.unjoinable: Counter[tuple[str, str]] = Counter()
        self.detector_drifts: Counter[tuple[str, str, str]] = Counter()
        self.dirty = False

    # ------------------------------------------------------------------ staging

    def watermark(self) -> float:
        """The newest event time any joiner has seen (``-inf`` before the first)."""
        return max((mp.joiner.watermark for mp in self.monitors.values()), default=-math.inf)

    def is_label_topic(self, topic: str) -> bool:
        return topic in self.label_topics

    def stage_prediction(
        self, model: str, version: str, extra: Any, pred: Any, ts: float, origin: Origin = ("", -1)
    ) -> None:
        """One accepted prediction (``extra`` = the decoder's (event_id, label, raw ts))."""
        if model in self.by_model:
            self._preds.append((model, version, extra, pred, ts))
            if self.split is not None:
                self._pred_origin.append(origin)

    def stage_label_line(self, extra: tuple[Any, Any, Any], rec: RawRecord) -> bool:
        """A line without ``model`` in the prediction stream: a label event if it has an
        event id and a label (True: taken), else False (the caller rejects it). Raises
        Reject for a label line with unusable fields."""
        eid, label, ts_raw = extra
        if eid is None or label is None:
            return False
        self._labels.append(label_of(None, eid, label, ts_raw, rec))
        self.labels_read += 1
        if self.split is not None:
            self._label_origin.append((partition_key(rec.topic, rec.partition), rec.offset))
        return True

    def stage_label_records(self, records: Sequence[RawRecord]) -> None:
        """Label events from a label topic or label file."""
        for rec in records:
            try:
                self._labels.append(self._reader.read(rec))
                self.labels_read += 1
                if self.split is not None:
                    self._label_origin.append((partition_key(rec.topic, rec.partition), rec.offset))
            except Reject as r:
                self.rejected.append((rec, r.reason, r.detail))

    # ------------------------------------------------------------------ flushing

    def flush(self, position: int) -> list[dict[str, Any]]:
        """Join the staged batch, evaluate versions whose step came, decide alerts."""
        preds, self._preds = self._preds, []
        labels, self._labels = self._labels, []
        if not preds and not labels:
            return []
        self.dirty = True
        joined = perf_join.join_batch(
            list(self.monitors.values()), preds, labels, lambda mp: mp.joiner, self.unjoinable
        )
        out: list[dict[str, Any]] = []
        for name, chunks in joined.items():
            mp = self.monitors[name]
            for pairs, _ in chunks:
                out.extend(self._fold(mp, pairs, position))
        return out

    def take_outcomes(self) -> list[Outcomes]:
        """Scale-out, partition stage: join the staged batch per source partition index;
        the outcomes go to the processes that decide the monitors."""
        assert self.split is not None
        preds, self._preds = self._preds, []
        labels, self._labels = self._labels, []
        p_origin, self._pred_origin = self._pred_origin, []
        l_origin, self._label_origin = self._label_origin, []
        return self.split.take(preds, labels, p_origin, l_origin)

    def fold_outcomes(self, outcomes: Sequence[Outcomes], position: int) -> list[dict[str, Any]]:
        """Scale-out, monitor stage: fold the pairs a partition stage joined (each once)."""
        out: list[dict[str, Any]] = []
        for o in outcomes:
            mp = self.monitors.get(o.monitor)
            if mp is None:
                continue
            self.dirty = True
            fold_counts(mp, o)
            for reason, n in o.unjoinable.items():
                self.unjoinable[(mp.name, reason)] += n
            pairs = o.fresh(mp.folded)
            if len(pairs):
                out.extend(self._fold(mp, pairs, position))
        return out

    def reset(self, name: str, ref: MonitorRef) -> None:
        """A fresh performance state for monitor ``name`` (scale-out: it moved)."""
        old = self.monitors[name]
        mp = self.monitors[name] = MonitorPerf(ref, old.cfg)
        self.by_model[mp.model] = [mp if m.name == name else m for m in self.by_model[mp.model]]

    def _fold(self, mp: MonitorPerf, pairs: JoinedPairs, position: int) -> list[dict[str, Any]]:
        """Append joined pairs to their versions' windows, evaluating at every step
        boundary (so evaluation points do not depend on how events were batched)."""
        out: list[dict[str, Any]] = []
        every = mp.cfg.every
        if mp.detector is not None:
            upd = mp.detector.update(
                error_stream(mp.cfg.task, pairs.score, pairs.label, threshold=mp.cfg.threshold)
            )
            for i in upd.detections:
                out.append(self._detector_output(mp, pairs, i, position))
        for version, p in pairs.by_version().items():
            vp = mp.version(version)
            i, n = 0, len(p)
            while i < n:
                take = min(n - i, max(1, vp.next_eval - vp.window.total))
                vp.window.append(_slice(p, i, i + take))
                i += take
                if vp.window.total >= vp.next_eval:
                    vp.next_eval = vp.window.total + every
                    if len(vp.window) >= mp.cfg.min_labelled:
                        out.extend(self._evaluate(mp, version, vp, position))
        return out

    def _detector_output(
        self, mp: MonitorPerf, pairs: JoinedPairs, i: int, pos: int
    ) -> dict[str, Any]:
        """A detection at joined pair ``i`` of the batch: named after that pair's version."""
        assert mp.detector is not None
        name = f"performance_{mp.detector.name}"
        version = pairs.version_names[int(pairs.version[i])]
        self.detector_drifts[(mp.name, version, name)] += 1
        log.info(
            "detector %s flagged monitor=%s version=%s",
            name,
            mp.name,
            version,
            extra={"monitor": mp.name, "model_version": version},
        )
        return detector_line(mp.name, mp.model, version, name, pos, errors_seen=mp.detector.n_seen)

    # ------------------------------------------------------------------ evaluation

    def _baseline(self, mp: MonitorPerf, version: str) -> tuple[str | None, VersionPerf | None]:
        cfg = mp.cfg
        if cfg.baseline == "reference":
            return None, None
        name = cfg.baseline_version
        if name is None:
            name = mp.ref.rollback_to(version)
        if name is None or name == version:
            return name, None
        return name, mp.versions.get(name)

    def _evaluate(
        self, mp: MonitorPerf, version: str, vp: VersionPerf, position: int
    ) -> list[dict[str, Any]]:
        cfg = mp.cfg
        sample = vp.window.sample()
        if cfg.task == "classification":
            values = classification_metrics(
                sample.pred, sample.y, cfg.threshold, pred_labels=sample.pred_labels
            )
        else:
            values = regression_metrics(sample.pred, sample.y)
        base_name, base = self._baseline(mp, version)
        comparisons: dict[str, Comparison] = {}
        if cfg.baseline == "reference":
            for metric in cfg.compared:
                comparisons[metric] = self._compare(mp, metric, sample, cfg.reference[metric])
        elif base is not None and len(base.window) >= cfg.min_labelled:
            bs = base.window.sample()
            for metric in cfg.compared:
                comparisons[metric] = self._compare(mp, metric, sample, bs)
        degraded = [c for c in comparisons.values() if c.degraded]
        span = vp.window.span()
        lts = vp.window.label_ts[: len(vp.window)]
        lts = lts[np.isfinite(lts)]
        ts = float(lts.max()) if lts.size else math.nan
        transition, reason = mp.policy.decide(vp.policy, bool(degraded), ts)
        if not comparisons:
            reason = "no baseline window yet"
        evaluation: dict[str, Any] = {
            "type": "performance",
            "monitor": mp.name,
            "model": mp.model,
            "model_version": version,
            "segment": None,
            "task": cfg.task,
            "baseline": {
                "type": "reference" if cfg.baseline == "reference" else "version",
                "version": base_name,
                "events": len(base.window) if base is not None else None,
            },
            "window": {
                "events": span["events"],
                "labelled_events": vp.window.total,
                "end_position": position,
                "start_ts": iso(span["start_ts"]),
                "end_ts": iso(span["end_ts"]),
            },
            "metrics": json_metrics(values),
            "comparisons": {k: c.to_dict() for k, c in comparisons.items()},
            "degraded": bool(degraded),
            "state": vp.policy.state,
            "reason": reason,
        }
        vp.latest = evaluation
        out = [evaluation]
        if transition is not None:
            out.append(self._transition(mp, version, vp, evaluation, degraded, transition, ts))
        return out

    def _compare(self, mp: MonitorPerf, metric: str, sample: Any, baseline: Any) -> Comparison:
        cfg = mp.cfg
        return compare(
            metric,
            sample,
            baseline,
            threshold=cfg.threshold,
            level=cfg.level,
            min_effect=cfg.min_effect.get(metric),
            n_resamples=cfg.n_resamples,
            seed=cfg.seed,
        )

    def _transition(
        self,
        mp: MonitorPerf,
        version: str,
        vp: VersionPerf,
        ev: dict[str, Any],
        degraded: list[Comparison],
        transition: str,
        ts: float,
    ) -> dict[str, Any]:
        kind = "performance.degraded" if transition == "alert" else "performance.resolved"
        seq = vp.window.total
        scope = CHECKPOINT_KEY if not mp.epoch else f"{CHECKPOINT_KEY}#{mp.epoch}"
        aid = alert_id(mp.name, version, kind, seq, scope=scope)
        severity = "critical" if transition == "alert" else "info"
        tail = None
        if transition == "alert":
            vp.policy.open_alert_id = aid
            mp.ref.alerts[severity] += 1
        else:
            tail = {"resolves": vp.policy.open_alert_id}
            vp.policy.open_alert_id = None
        # degraded: the first degraded metric; resolved: the first compared metric now
        entries = [c.to_dict() for c in degraded] or list(ev["comparisons"].values())
        main = entries[0] if entries else {}
        rollback_to = mp.ref.rollback_to(version)
        alert = alert_line(
            kind,
            aid,
            ts,
            monitor=mp.name,
            model=mp.model,
            version=version,
            rollback_to=rollback_to,
            severity=severity,
            reason=ev["reason"],
            tail=tail,
            with_segment=False,
            body={
                "baseline_version": ev["baseline"]["version"],
                "metric": main.get("metric"),
                "current": main.get("current"),
                "baseline": main.get("baseline"),
                "difference": main.get("difference"),
                "ci": main.get("ci"),
                "level": mp.cfg.level,
                "metrics": entries,
                "window": {
                    "events": ev["window"]["events"],
                    "labelled_events": seq,
                    "end_position": ev["window"]["end_position"],
                },
            },
        )
        log.warning(
            "%s monitor=%s model=%s version=%s metric=%s rollback_to=%s id=%s (%s)",
            kind,
            mp.name,
            mp.model,
            version,
            main.get("metric"),
            rollback_to,
            aid,
            ev["reason"],
            extra={"monitor": mp.name, "model_version": version, "alert_id": aid},
        )
        return alert

    # ------------------------------------------------------------------ state

    def snapshot(self) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
        """(meta, arrays) of every monitor's performance state."""
        return perf_state.snapshot(self.monitors)

    def restore(self, meta: dict[str, Any], arrays: dict[str, npt.NDArray[Any]]) -> None:
        """Install saved state; a monitor whose performance config changed starts fresh."""
        perf_state.restore(self.monitors, meta, arrays)

    # ------------------------------------------------------------------ read side

    def metric_names(self, mp: MonitorPerf) -> tuple[str, ...]:
        return CLASSIFICATION_METRICS if mp.cfg.task == "classification" else REGRESSION_METRICS

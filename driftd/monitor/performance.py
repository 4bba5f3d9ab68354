"""Model performance on delayed labels, wired into the engine (issue 8).

The engine hands this module, per micro-batch, the accepted predictions of models that a
monitor with a ``performance`` block watches (event id, score, version, time, and the label
when the event already carries one) and the label events (from ``kafka.label_topics``, from
``driftd replay --labels FILE``, or label-only lines in the prediction stream). Per monitor, a
:class:`~driftd.performance.LabelJoiner` joins them by ``event_id`` within
``label_horizon_s``; joined pairs fill a :class:`~driftd.performance.LabelledWindow` per model
version; every ``step`` new labelled events of a version its metrics are computed and, when
the baseline (the version it replaced, a named version, or fixed reference values) has a
window too, compared with it with a confidence interval. The monitor's policy turns
"degraded" verdicts into ``performance.degraded`` / ``performance.resolved`` alerts, returned
as engine outputs: the daemon sends them through the same outbox, webhook and audit path as
drift alerts.

State is process-level, not per source partition: labels come from other partitions (another
topic) than their predictions, so the join cannot live in one partition's state. It is saved
as its own checkpoint entry (key :data:`CHECKPOINT_KEY`) by the daemon *before* the partition
checkpoints and offset commits, so a crash between the two replays some predictions and labels
into a joiner that has seen them: the joiner ignores them as duplicates. Consequence for
``--workers N`` (and several driftd processes in one group): a label is joined only by the
process that consumed its prediction, so performance monitoring needs all predictions and
labels of a model in one process (run one worker, or one process per model group).

Late, orphaned, duplicate and malformed labels are counted, never errors.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import orjson

from driftd.config import Config, PerformanceConfig
from driftd.errors import StateError
from driftd.ingest.decode import Reject, _getter, parse_ts
from driftd.performance import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    Comparison,
    ErrorStreamDetector,
    JoinedPairs,
    LabelJoiner,
    LabelledWindow,
    classification_metrics,
    compare,
    error_stream,
    regression_metrics,
)
from driftd.performance.join import MAX_VERSIONS
from driftd.performance.metrics import json_metrics
from driftd.policy import Policy, PolicyState, alert_id
from driftd.state.checkpoint import PERFORMANCE_KEY, join_arrays, split_arrays
from driftd.types import RawRecord

if TYPE_CHECKING:
    from driftd.runtime.engine import Engine, MonitorRuntime

log = logging.getLogger(__name__)

CHECKPOINT_KEY = PERFORMANCE_KEY
SNAPSHOT_FORMAT = 1
# Event times further ahead of this machine's clock are not given to the label join: its clock
# only moves forward, so one far-future time (ns read as ms, year 9999) would expire every
# later prediction. Such predictions count as unjoinable (future_ts), such labels as bad_label.
MAX_FUTURE_S = 86_400.0
# Label outcomes exported as driftd_labels_total{outcome}: joiner counter → outcome label.
LABEL_OUTCOMES = {"joined": "joined", "late": "late", "orphaned": "orphaned",
                  "duplicates": "duplicate"}  # fmt: skip
PREDICTION_OUTCOMES = ("expired", "evicted")


def _iso(ts: float | None) -> str | None:
    from driftd.runtime.engine import iso

    return iso(ts)


@dataclass(slots=True)
class VersionPerf:
    """One model version of one monitor: its labelled window and alert state."""

    window: LabelledWindow
    policy: PolicyState = field(default_factory=PolicyState)
    next_eval: int = 0  # window.total at which the next evaluation is due
    latest: dict[str, Any] | None = None  # last performance evaluation output


class MonitorPerf:
    """The join and the per-version windows of one monitor with a ``performance`` block."""

    def __init__(self, m: MonitorRuntime, cfg: PerformanceConfig) -> None:
        self.name = m.name
        self.model = m.model
        self.cfg = cfg
        self.policy: Policy = m.policy
        # Bumped whenever saved state is discarded, so the alert ids of the new windows
        # (keyed by labelled-event counts that restart at 0) never repeat delivered ones.
        self.epoch = 0
        self.joiner = LabelJoiner(
            cfg.label_horizon_s,
            max_pending=cfg.max_pending,
            max_early=cfg.max_early,
            max_resolved=max(2 * cfg.max_early, 200_000),
        )
        self.versions: dict[str, VersionPerf] = {}
        self.fingerprint = perf_fingerprint(cfg)
        # One detector on the monitor's error stream in join order (across versions), so a
        # rollout that raises the error rate is a change point in it.
        self.detector = ErrorStreamDetector(cfg.detector) if cfg.detector is not None else None
        self._full_logged = False

    def has_room_for(self, version: str) -> bool:
        j = self.joiner
        if version in j.version_names or len(j.version_names) < MAX_VERSIONS:
            return True
        if not self._full_logged:
            self._full_logged = True
            log.error(
                "monitor %s: more than %d model versions; predictions of new versions are "
                "not joined (counted in driftd_predictions_unjoinable_total)",
                self.name,
                MAX_VERSIONS,
            )
        return False

    def version(self, name: str) -> VersionPerf:
        vp = self.versions.get(name)
        if vp is None:
            vp = self.versions[name] = VersionPerf(
                LabelledWindow(self.cfg.window), next_eval=self.cfg.every
            )
        return vp


def perf_fingerprint(cfg: PerformanceConfig) -> str:
    """What saved performance state depends on (window size, join bounds, task)."""
    key = [cfg.task, cfg.window, cfg.label_horizon_s, cfg.max_pending, cfg.max_early]
    return hashlib.sha256(orjson.dumps(key)).hexdigest()[:16]


def _as_id(v: Any) -> str | None:
    if type(v) is str:
        return v if v else None
    if type(v) is int:
        return str(v)
    return None


def _as_number(v: Any) -> float:
    if type(v) is float or type(v) is int:
        return float(v)
    if type(v) is bool:
        return 1.0 if v else 0.0
    return math.nan


def _slice(p: JoinedPairs, a: int, b: int) -> JoinedPairs:
    return JoinedPairs(
        p.version[a:b], p.score[a:b], p.label[a:b], p.pred_label[a:b], p.pred_ts[a:b],
        p.label_ts[a:b], p.version_names,
    )  # fmt: skip


class PerfRuntime:
    """Every monitor's performance state plus the per-batch staging (see module docstring)."""

    def __init__(self, cfg: Config, engine: Engine) -> None:
        self.engine = engine
        self.label_topics = frozenset(cfg.kafka.label_topics)
        self.monitors: dict[str, MonitorPerf] = {}
        self.by_model: dict[str, list[MonitorPerf]] = {}
        for m in engine.monitors:
            pc = m.spec.cfg.performance
            if pc is None:
                continue
            mp = self.monitors[m.name] = MonitorPerf(m, pc)
            self.by_model.setdefault(m.model, []).append(mp)
        s = cfg.schema_
        self._id = _getter(s.event_id)
        self._label = _getter(s.label)
        self._ts = _getter(s.timestamp)
        self._model = _getter(s.model)
        # staging for the current micro-batch
        self._preds: list[tuple[str, str, Any, Any, float]] = []
        self._labels: list[tuple[str | None, str, float, float]] = []
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

    def stage_prediction(self, model: str, version: str, extra: Any, pred: Any, ts: float) -> None:
        """One accepted prediction (``extra`` = the decoder's (event_id, label, raw ts))."""
        if model in self.by_model:
            self._preds.append((model, version, extra, pred, ts))

    def stage_label_line(self, extra: tuple[Any, Any, Any], rec: RawRecord) -> bool:
        """A line without ``model`` in the prediction stream: a label event if it has an
        event id and a label (True: taken), else False (the caller rejects it)."""
        eid, label, ts_raw = extra
        if eid is None or label is None:
            return False
        self._take_label(None, eid, label, ts_raw, rec)
        return True

    def stage_label_records(self, records: Sequence[RawRecord]) -> None:
        """Label events from a label topic or label file."""
        for rec in records:
            try:
                if not rec.value:
                    raise Reject("empty")
                try:
                    obj = orjson.loads(rec.value)
                except orjson.JSONDecodeError:
                    raise Reject("invalid_json") from None
                if type(obj) is not dict:
                    raise Reject("not_object")
                model = self._model(obj)
                self._take_label(
                    model if type(model) is str else None,
                    self._id(obj),
                    self._label(obj),
                    self._ts(obj),
                    rec,
                )
            except Reject as r:
                self._reject(rec, r)

    def _reject(self, rec: RawRecord, r: Reject) -> None:
        e = self.engine
        e.rejected[r.reason] += 1
        if e.collect_rejects:
            e._rejects.append((rec, r.reason, r.detail))

    def _take_label(
        self,
        model: str | None,
        eid_raw: Any,
        label_raw: Any,
        ts_raw: Any,
        rec: RawRecord,
    ) -> None:
        eid = _as_id(eid_raw)
        if eid is None:
            raise Reject("bad_label", "label event without a usable event_id")
        label = _as_number(label_raw)
        if not math.isfinite(label):
            raise Reject("bad_label", "label must be a number or boolean")
        if ts_raw is None:
            ts = (
                rec.timestamp_ms / 1000.0 if rec.timestamp_ms and rec.timestamp_ms > 0 else math.nan
            )
        else:
            ts = parse_ts(ts_raw)
        if ts > time.time() + MAX_FUTURE_S:
            raise Reject("bad_label", "label time more than a day ahead of this machine's clock")
        self._labels.append((model, eid, label, ts))
        self.labels_read += 1

    # ------------------------------------------------------------------ flushing

    def flush(self, position: int) -> list[dict[str, Any]]:
        """Join the staged batch, evaluate versions whose step came, decide alerts."""
        preds, self._preds = self._preds, []
        labels, self._labels = self._labels, []
        if not preds and not labels:
            return []
        self.dirty = True
        out: list[dict[str, Any]] = []
        joined: dict[str, list[JoinedPairs]] = {}
        if preds:
            self._add_predictions(preds, joined)
        if labels:
            for mp in self.monitors.values():
                mine = [x for x in labels if x[0] is None or x[0] == mp.model]
                if not mine:
                    continue
                pairs = mp.joiner.add_labels(
                    [x[1] for x in mine],
                    np.fromiter((x[2] for x in mine), np.float64, len(mine)),
                    np.fromiter((x[3] for x in mine), np.float64, len(mine)),
                )
                if len(pairs):
                    joined.setdefault(mp.name, []).append(pairs)
        for name, chunks in joined.items():
            mp = self.monitors[name]
            for pairs in chunks:
                out.extend(self._fold(mp, pairs, position))
        return out

    def _add_predictions(
        self, preds: list[tuple[str, str, Any, Any, float]], joined: dict[str, list[JoinedPairs]]
    ) -> None:
        # Group by (model, version) once; ids, scores and times go to the joiner as arrays.
        groups: dict[tuple[str, str], list[tuple[Any, Any, float]]] = {}
        for model, version, extra, pred, ts in preds:
            groups.setdefault((model, version), []).append((extra, pred, ts))
        for (model, version), rows in groups.items():
            ids: list[str] = []
            scores: list[float] = []
            times: list[float] = []
            lab_ids: list[str] = []
            lab_vals: list[float] = []
            lab_ts: list[float] = []
            missing = 0
            future = 0
            limit = time.time() + MAX_FUTURE_S
            for (eid_raw, label_raw, _), pred, ts in rows:
                eid = _as_id(eid_raw)
                if eid is None:
                    missing += 1
                    continue
                if ts > limit:  # would move the join's clock ahead for good: not joined
                    future += 1
                    continue
                ids.append(eid)
                scores.append(_as_number(pred))
                times.append(ts)
                if label_raw is not None:
                    lv = _as_number(label_raw)
                    if math.isfinite(lv):
                        lab_ids.append(eid)
                        lab_vals.append(lv)
                        lab_ts.append(ts)
            for mp in self.by_model[model]:
                if missing:
                    self.unjoinable[(mp.name, "no_event_id")] += missing
                if future:
                    self.unjoinable[(mp.name, "future_ts")] += future
                if not ids:
                    continue
                if not mp.has_room_for(version):
                    # the joiner codes versions in 15 bits: a stream inventing versions
                    # without end is counted, not a crash
                    self.unjoinable[(mp.name, "too_many_versions")] += len(ids)
                    continue
                pairs = mp.joiner.add_predictions(ids, version, scores, times)
                if len(pairs):
                    joined.setdefault(mp.name, []).append(pairs)
                if lab_ids:  # labels carried by the prediction events themselves
                    pairs = mp.joiner.add_labels(lab_ids, lab_vals, lab_ts)
                    if len(pairs):
                        joined.setdefault(mp.name, []).append(pairs)

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
        log.info("detector %s flagged monitor=%s version=%s", name, mp.name, version)
        return {
            "type": "detector",
            "monitor": mp.name,
            "model": mp.model,
            "model_version": version,
            "detector": name,
            "position": pos,
            "errors_seen": mp.detector.n_seen,
        }

    # ------------------------------------------------------------------ evaluation

    def _baseline(self, mp: MonitorPerf, version: str) -> tuple[str | None, VersionPerf | None]:
        cfg = mp.cfg
        if cfg.baseline == "reference":
            return None, None
        name = cfg.baseline_version
        if name is None:
            m = self.engine.by_name[mp.name]
            name = self.engine.rollback_to(m, version)
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
                "start_ts": _iso(span["start_ts"]),
                "end_ts": _iso(span["end_ts"]),
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
        aid = alert_id(mp.name, version, kind, seq, scope)
        m = self.engine.by_name[mp.name]
        severity = "critical" if transition == "alert" else "info"
        if transition == "alert":
            vp.policy.open_alert_id = aid
            self.engine.alerts[(mp.name, severity)] += 1
        # degraded: the first degraded metric; resolved: the first compared metric now
        entries = [c.to_dict() for c in degraded] or list(ev["comparisons"].values())
        main = entries[0] if entries else {}
        payload: dict[str, Any] = {
            "id": aid,
            "time": _iso(ts) or _iso(time.time()),
            "monitor": mp.name,
            "model": mp.model,
            "model_version": version,
            "rollback_to": self.engine.rollback_to(m, version),
            "severity": severity,
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
            "reason": ev["reason"],
        }
        if transition == "resolve":
            payload["resolves"] = vp.policy.open_alert_id
            vp.policy.open_alert_id = None
        log.warning(
            "%s monitor=%s model=%s version=%s metric=%s rollback_to=%s id=%s (%s)",
            kind,
            mp.name,
            mp.model,
            version,
            payload["metric"],
            payload["rollback_to"],
            aid,
            ev["reason"],
        )
        return {"type": "alert", "event": kind, **payload}

    # ------------------------------------------------------------------ state

    def snapshot(self) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
        """(meta, arrays) of every monitor's performance state (caller holds the lock)."""
        arrays: dict[str, npt.NDArray[Any]] = {}
        monitors = []
        for i, mp in enumerate(self.monitors.values()):
            jmeta = split_arrays(mp.joiner.snapshot(), arrays, f"p{i}.j.")
            versions = []
            for k, (name, vp) in enumerate(mp.versions.items()):
                for col, arr in vp.window.snapshot().items():
                    arrays[f"p{i}.v{k}.{col}"] = arr
                versions.append(
                    {
                        "version": name,
                        "policy": vp.policy.to_json(),
                        "next_eval": vp.next_eval,
                        "latest": vp.latest,
                    }
                )
            monitors.append(
                {
                    "monitor": mp.name,
                    "fingerprint": mp.fingerprint,
                    "epoch": mp.epoch,
                    "joiner": jmeta,
                    "versions": versions,
                    "detector": split_arrays(mp.detector.snapshot(), arrays, f"p{i}.d.")
                    if mp.detector is not None
                    else None,
                }
            )
        return {"format": SNAPSHOT_FORMAT, "monitors": monitors}, arrays

    def restore(self, meta: dict[str, Any], arrays: dict[str, npt.NDArray[Any]]) -> None:
        """Install saved state; a monitor whose performance config changed starts fresh."""
        if meta.get("format") != SNAPSHOT_FORMAT:
            log.warning(
                "performance checkpoint format %r unknown; starting fresh", meta.get("format")
            )
            return
        for i, saved in enumerate(meta.get("monitors", [])):
            mp = self.monitors.get(saved["monitor"])
            if mp is not None:
                mp.epoch = int(saved.get("epoch", 0))
            if mp is None or saved["fingerprint"] != mp.fingerprint:
                if mp is not None:
                    mp.epoch += 1
                log.warning(
                    "performance checkpoint: monitor %s no longer configured or its "
                    "performance block changed; its saved join and windows are discarded",
                    saved["monitor"],
                )
                continue
            try:
                joiner, versions, detector = self._restore_one(mp, i, saved, arrays)
            except (StateError, KeyError, TypeError, ValueError, IndexError) as exc:
                log.error(
                    "performance checkpoint: state of monitor %s is unusable (%r); starting "
                    "its join and windows fresh",
                    mp.name,
                    exc,
                )
                mp.epoch += 1
                continue
            mp.joiner, mp.versions = joiner, versions
            if detector is not None:
                mp.detector = detector
            log.info(
                "restored performance state of %s: %d pending predictions, %d versions",
                mp.name,
                mp.joiner.pending,
                len(mp.versions),
            )

    @staticmethod
    def _restore_one(
        mp: MonitorPerf, i: int, saved: dict[str, Any], arrays: dict[str, npt.NDArray[Any]]
    ) -> tuple[LabelJoiner, dict[str, VersionPerf], ErrorStreamDetector | None]:
        joiner = LabelJoiner.restore(join_arrays(saved["joiner"], arrays))
        versions: dict[str, VersionPerf] = {}
        for k, v in enumerate(saved["versions"]):
            prefix = f"p{i}.v{k}."
            cols = {key[len(prefix) :]: a for key, a in arrays.items() if key.startswith(prefix)}
            window = LabelledWindow.restore(cols)
            if window.size != mp.cfg.window:
                raise StateError(f"window of {window.size} events, configured {mp.cfg.window}")
            versions[str(v["version"])] = VersionPerf(
                window, PolicyState.from_json(v["policy"]), int(v["next_eval"]), v.get("latest")
            )
        det = saved.get("detector")
        detector = None
        if det is not None and mp.cfg.detector == det["meta"]["name"]:
            detector = ErrorStreamDetector.restore(join_arrays(det, arrays))
        return joiner, versions, detector

    # ------------------------------------------------------------------ read side

    def metric_names(self, mp: MonitorPerf) -> tuple[str, ...]:
        return CLASSIFICATION_METRICS if mp.cfg.task == "classification" else REGRESSION_METRICS

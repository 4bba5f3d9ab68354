"""Performance estimated before the labels (``performance: {estimate: cbpe}``), per evaluation.

The estimator is :mod:`driftd.performance.cbpe` (confidence-based performance estimation,
NannyML's CBPE): fitted by ``driftd profile build`` on the reference's scores and labels
(``schema.label``) and stored in the profile, it turns the scores of every drift window of a
model version — the window the drift tests just read, so the estimate runs in replay and
daemon alike and is checkpointed with it — into the window's estimated accuracy, precision,
recall, F1, ROC AUC and positive rate, each with a band. An estimate whose whole band lies on
the bad side of the reference's realised value by at least the metric's minimum effect is a
breach; the monitor's policy (consecutive, cooldown, resolve) turns breaches into
``performance.estimated_degraded`` / ``performance.estimated_resolved`` alerts, built by
:func:`driftd.monitor.outputs.alert_line` like every other alert.

Severity is ``performance.estimate_severity``: ``warning`` (the default) alerts are audited
and counted but not sent to actions — their resolutions are warnings too — while
``critical`` ones go to the monitor's actions like drift alerts (resolutions ``info``).

The estimate is per model version, over the version's whole window (not per segment), like
the delayed-label performance it anticipates. :mod:`driftd.performance` (and river with it) is
imported only by monitors that estimate.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from driftd.config import CBPE_METRICS, MonitorConfig
from driftd.errors import ConfigError
from driftd.monitor.outputs import alert_id, alert_line
from driftd.policy import Policy, PolicyState
from driftd.reference.profile import Fitted, Profile, ReferenceRows
from driftd.windows.base import WindowView

if TYPE_CHECKING:
    from driftd.performance.cbpe import CBPE, MetricEstimate

log = logging.getLogger(__name__)

LINE_TYPE = "performance_estimate"
DEGRADED = "performance.estimated_degraded"
RESOLVED = "performance.estimated_resolved"
SCOPE = "performance_estimate"  # alert-id scope: apart from drift and delayed-label alerts


class Context(Protocol):
    """What the estimate reads from its monitor stage."""

    name: str
    model: str
    policy: Policy
    alerts: Counter[str]

    def rollback_to(self, version: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class EstimatorSpec:
    model: CBPE
    column: int  # the prediction's column in the window's numeric block
    metrics: tuple[str, ...]  # the estimated metrics that can breach
    min_effect: dict[str, float]
    severity: str
    reference_id: str = ""  # the profile it was fitted on (alerts name it, as drift alerts)


def fitted_key(cfg: MonitorConfig) -> dict[str, Any]:
    perf = cfg.performance
    assert perf is not None and perf.estimate is not None
    return {"method": perf.estimate, "threshold": perf.threshold}


def fit(cfg: MonitorConfig, rows: ReferenceRows) -> Fitted:
    """CBPE on the reference's scores and labels; ``ConfigError`` when it has no labels."""
    perf = cfg.performance
    assert perf is not None
    scores, labels = rows.prediction, rows.labels
    usable = 0
    if scores is not None and labels is not None:
        usable = int(np.count_nonzero(np.isfinite(scores) & np.isfinite(labels)))
    if scores is None or labels is None or usable == 0:
        raise ConfigError(
            "schema.label",
            "performance.estimate: cbpe is fitted on the reference's scores and labels, but no"
            " reference event has both (the label is read at schema.label)",
        )
    from driftd.performance.cbpe import fit_cbpe

    model = fit_cbpe(scores, labels, threshold=perf.threshold)
    log.info(
        "monitor %s: cbpe fitted on %d labelled reference events (accuracy %.4f)",
        cfg.name,
        model.reference_events,
        model.reference.get("accuracy", math.nan),
    )
    meta, arrays = model.to_state()
    return Fitted(fitted_key(cfg), meta, arrays)


def spec_of(cfg: MonitorConfig, profile: Profile, column: int, key: str) -> EstimatorSpec:
    """The estimator of ``profile`` for the monitor; ``ConfigError`` naming ``key`` when the
    profile has none (built without labels) or one for another decision threshold."""
    perf = cfg.performance
    assert perf is not None
    fitted = profile.estimator
    if fitted is None:
        raise ConfigError(
            key,
            f"profile {profile.id or '(new)'} holds no performance estimator: rebuild it with"
            " `driftd profile build` from reference data with labels (schema.label)",
        )
    if fitted.key != fitted_key(cfg):
        raise ConfigError(
            key,
            f"the profile's estimator was fitted for {fitted.key}, the monitor asks for"
            f" {fitted_key(cfg)}: rebuild the profile with `driftd profile build`",
        )
    from driftd.performance.cbpe import CBPE

    try:
        model = CBPE.from_state(fitted.meta, fitted.arrays)
    except (KeyError, ValueError, TypeError) as exc:
        raise ConfigError(key, f"the profile's estimator is unreadable: {exc}") from None
    return EstimatorSpec(
        model=model,
        column=column,
        metrics=tuple(perf.estimated),
        min_effect=dict(perf.estimate_min_effect),
        severity=perf.estimate_severity,
        reference_id=profile.id,
    )


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _entry(metric: str, e: MetricEstimate, reference: float | None) -> dict[str, Any]:
    return {
        "metric": metric,
        "estimate": e["estimate"],
        "lower": e["lower"],
        "upper": e["upper"],
        "reference": reference,
    }


def run(
    est: EstimatorSpec,
    view: WindowView,
    evaluation: dict[str, Any],
    state: PolicyState,
    ctx: Context,
    version: str,
    seq: int,
    ts: float,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The ``performance_estimate`` line of one evaluated window and, on a policy transition,
    its alert."""
    from driftd.performance.cbpe import degraded

    model = est.model
    metrics = model.estimate(view.num_column(est.column))
    watched = {m: metrics[m] for m in est.metrics}
    flagged = degraded(watched, model.reference, est.min_effect)
    transition, reason = ctx.policy.decide(state, bool(flagged), ts)
    line: dict[str, Any] = {
        "type": LINE_TYPE,
        "monitor": ctx.name,
        "model": ctx.model,
        "model_version": version,
        "method": "cbpe",
        "window": evaluation["window"],
        "metrics": metrics,
        "reference": {m: _finite(model.reference.get(m, math.nan)) for m in CBPE_METRICS},
        "degraded": bool(flagged),
        "degraded_metrics": flagged,
        "state": state.state,
        "reason": reason,
    }
    if transition is None:
        return line, None
    return line, _alert(est, line, state, ctx, version, seq, ts, transition, flagged)


def _alert(
    est: EstimatorSpec,
    line: dict[str, Any],
    state: PolicyState,
    ctx: Context,
    version: str,
    seq: int,
    ts: float,
    transition: str,
    flagged: list[str],
) -> dict[str, Any]:
    kind = DEGRADED if transition == "alert" else RESOLVED
    aid = alert_id(ctx.name, version, kind, seq, scope=SCOPE)
    tail = None
    if transition == "alert":
        severity = est.severity
        state.open_alert_id = aid
        ctx.alerts[severity] += 1
    else:
        severity = "info" if est.severity == "critical" else "warning"
        tail = {"resolves": state.open_alert_id}
        state.open_alert_id = None
    reference = line["reference"]
    names = flagged or list(est.metrics)
    entries = [_entry(m, line["metrics"][m], reference.get(m)) for m in names]
    main = entries[0]
    w = line["window"]
    window = {k: w[k] for k in ("start_position", "end_position", "events")}
    if "partitions" in w:
        window["partitions"] = w["partitions"]
    rollback_to = ctx.rollback_to(version)
    alert = alert_line(
        kind,
        aid,
        ts,
        monitor=ctx.name,
        model=ctx.model,
        version=version,
        rollback_to=rollback_to,
        severity=severity,
        reason=line["reason"],
        tail=tail,
        with_segment=False,
        body={
            "method": "cbpe",
            "metric": main["metric"],
            "estimate": main["estimate"],
            "lower": main["lower"],
            "upper": main["upper"],
            "reference_value": main["reference"],
            "metrics": entries,
            "window": window,
            "reference": est.reference_id,
        },
    )
    log.warning(
        "%s monitor=%s model=%s version=%s metric=%s estimate=%s rollback_to=%s id=%s (%s)",
        kind,
        ctx.name,
        ctx.model,
        version,
        main["metric"],
        main["estimate"],
        rollback_to,
        aid,
        line["reason"],
    )
    return alert


def describe(est: EstimatorSpec) -> str:
    """One line for ``profile build`` and ``check-config``."""
    ref = est.model.reference
    return (
        f"performance estimate cbpe (fitted on {est.model.reference_events} labelled events;"
        f" reference {', '.join(f'{m} {ref.get(m, math.nan):.4f}' for m in est.metrics)};"
        f" alerts {est.severity})"
    )

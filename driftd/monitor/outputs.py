"""The lines the monitor stage emits (evaluations, alerts, detector hits) and the webhook body.

Every alert — drift, warning, delayed-label performance, estimated performance — is shaped by
:func:`alert_line`, the one place that decides the fields receivers depend on (DESIGN's webhook
contract); :func:`webhook_payload` turns such a line into the request body.
"""

from __future__ import annotations

import hashlib
import math
import time
from datetime import UTC, datetime
from typing import Any

from driftd.config import MULTIVARIATE

ALERT_KINDS = {"alert": "drift.detected", "resolve": "drift.resolved", "warning": "drift.warning"}


def iso(ts: float | None) -> str | None:
    """Epoch seconds → RFC 3339 UTC (``Z``); None for unknown or non-finite times."""
    if ts is None or not math.isfinite(ts):
        return None
    try:
        return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, ValueError, OSError):  # beyond datetime's range
        return None


def alert_id(
    monitor: str, version: str, kind: str, seq: int, segment: str = "", scope: str = ""
) -> str:
    """A stable id for one alert transition: derived from (monitor, version, kind, the
    version's sequence at the evaluation — events merged, or the window's end time, or
    labelled events —, the segment label for a segment's alert, and a ``scope`` naming the
    alert family's state epoch). No partition, process or wall time enters it, so re-processing
    the same state gives the same id. (Drift alerts have an empty scope, where earlier releases
    put the source partition: the ids of file replays stay what they were.)"""
    key = f"{monitor}\x00{version}\x00{kind}\x00{seq}\x00{scope}"
    if segment:
        key += f"\x00{segment}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def span_json(span: dict[str, Any], partitions: list[str]) -> dict[str, Any]:
    """A window span for output: times as RFC 3339, partition codes as ``"topic/partition"``."""
    out = dict(span)
    for k in ("start_ts", "end_ts", "window_start_ts", "window_end_ts"):
        if k in out:
            out[k] = iso(out[k])
    prov = out.pop("partitions", None)
    if prov:
        named = {partitions[c]: v for c, v in prov.items() if c < len(partitions)}
        out["partitions"] = {k: named[k] for k in sorted(named) if k}
        if not out["partitions"]:
            del out["partitions"]
    return out


def alert_line(
    kind: str,
    aid: str,
    ts: float,
    *,
    monitor: str,
    model: str,
    version: str,
    rollback_to: str | None,
    severity: str,
    reason: str,
    body: dict[str, Any],
    segment: dict[str, str] | None = None,
    tail: dict[str, Any] | None = None,
    with_segment: bool = True,
) -> dict[str, Any]:
    """An ``{"type": "alert", "event": kind, …}`` output line; ``body`` holds the fields of
    the alert type (drift: ``drift_share``, ``features``, ``window``, ``reference``;
    performance: ``metric``, ``current``, ``baseline``, …); ``tail`` goes after ``reason``."""
    out: dict[str, Any] = {
        "type": "alert",
        "event": kind,
        "id": aid,
        "time": iso(ts) or iso(time.time()),
        "monitor": monitor,
        "model": model,
        "model_version": version,
    }
    if with_segment:
        out["segment"] = segment
    out["rollback_to"] = rollback_to
    out["severity"] = severity
    out.update(body)
    out["reason"] = reason
    if tail:  # e.g. {"resolves": <the alert id a resolution closes>}
        out.update(tail)
    return out


def webhook_payload(alert: dict[str, Any]) -> dict[str, Any]:
    """The webhook body (DESIGN's contract) of an ``{"type": "alert", "event": …}`` line."""
    body = {k: v for k, v in alert.items() if k not in ("type", "event")}
    return {"id": body.pop("id"), "type": alert["event"], **body}


def drifted_features(ev: dict[str, Any], warning: bool) -> list[dict[str, Any]]:
    """The ``features`` of a drift alert: what breached (or, for a warning, what reached its
    warning level), the multivariate statistic when it breached (``{"name": "multivariate",
    "test": "<method>", …}``), then the breached data-quality checks."""
    items = [*ev["features"].items(), ("prediction", ev["prediction"])]
    out = [
        {
            "name": name,
            "test": r["test"],
            "statistic": r["statistic"],
            "p_value": r["p_value"],
            "threshold": r["threshold"],
        }
        for name, r in items
        if r is not None and (r["drifted"] or (warning and r["level"] == "warning"))
    ]
    mv = ev.get("multivariate")
    if mv is not None and mv["drifted"] and not warning:
        out.append(
            {
                "name": MULTIVARIATE,
                "test": mv["method"],
                "statistic": mv["statistic"],
                "p_value": None,
                "threshold": mv["threshold"],
            }
        )
    return out + list(ev["quality_breaches"])


def for_actions(alert: dict[str, Any]) -> bool:
    """Whether an alert line goes to the monitor's actions (webhooks): warnings — drift
    warnings, and estimated-performance alerts of severity ``warning`` with their
    resolutions — are audited and counted, never sent."""
    return alert.get("type") == "alert" and alert.get("severity") != "warning"


def detector_line(
    monitor: str, model: str, version: str, detector: str, position: int, **extra: Any
) -> dict[str, Any]:
    return {
        "type": "detector",
        "monitor": monitor,
        "model": model,
        "model_version": version,
        "detector": detector,
        "position": position,
        **extra,
    }

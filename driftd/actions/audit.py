"""Append-only JSONL audit log of alert decisions.

One line per alert transition (the full payload: evidence, thresholds, window, reference id,
stable id) and one per evaluation where the policy *decided something*: a breach held back
(pending k-of-n, cooldown, alert already open) or a clean window counted toward resolving.
Quiet, clean evaluations are not logged, unless every evaluation is asked for
(``state.audit_evaluations``: then each evaluation line is also written whole, with
``"decision": "evaluation"`` — the same lines ``driftd replay`` prints). Each line carries
``decision`` and ``reason``::

    {"ts": "...", "decision": "hold", "reason": "breach 1 of 2 needed", "monitor": "credit",
     "model_version": "v7", "state": "pending", "window": {...}, "breaches": [...]}

The daemon flushes and fsyncs it with every checkpoint (before offsets are committed).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from driftd.actions.jsonl import DEFAULT_BACKUPS, DEFAULT_MAX_BYTES, PrivateJsonl


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def decisions(
    outputs: Iterable[dict[str, Any]], every_evaluation: bool = False
) -> list[dict[str, Any]]:
    """The audit records for a batch of pipeline outputs."""
    out: list[dict[str, Any]] = []
    for o in outputs:
        if every_evaluation and o["type"] == "evaluation":
            out.append({"ts": _now(), "decision": "evaluation", **o})
        if o["type"] == "alert":
            out.append({"ts": _now(), "decision": o["event"], **o})
            continue
        if o["type"] == "performance_estimate":
            if o["degraded"] or o["state"] != "ok":
                out.append(
                    {
                        "ts": _now(),
                        "decision": "hold" if o["degraded"] else "count_clean",
                        "reason": o["reason"],
                        "monitor": o["monitor"],
                        "model_version": o["model_version"],
                        "state": o["state"],
                        "kind": "performance_estimate",
                        "window": o["window"],
                        "breaches": [
                            {"metric": m, **o["metrics"][m], "reference": o["reference"].get(m)}
                            for m in o["degraded_metrics"]
                        ],
                    }
                )
            continue
        if o["type"] == "performance":
            if o["degraded"] or o["state"] != "ok":
                out.append(
                    {
                        "ts": _now(),
                        "decision": "hold" if o["degraded"] else "count_clean",
                        "reason": o["reason"],
                        "monitor": o["monitor"],
                        "model_version": o["model_version"],
                        "state": o["state"],
                        "kind": "performance",
                        "window": o["window"],
                        "breaches": [c for c in o["comparisons"].values() if c["degraded"]],
                    }
                )
            continue
        if o["type"] != "evaluation":
            continue
        state, reason = o["state"], o.get("reason", "")
        if not o["drifted"] and state == "ok":
            continue
        breaches = [
            {
                "name": n,
                "test": r["test"],
                "statistic": r["statistic"],
                "p_value": r["p_value"],
                "threshold": r["threshold"],
            }
            for n, r in [*o["features"].items(), ("prediction", o["prediction"])]
            if r is not None and r["drifted"]
        ]
        mv = o.get("multivariate")
        if mv is not None and mv["drifted"]:
            breaches.append(
                {
                    "name": "multivariate",
                    "test": mv["method"],
                    "statistic": mv["statistic"],
                    "p_value": None,
                    "threshold": mv["threshold"],
                }
            )
        breaches += list(o.get("quality_breaches", []))
        out.append(
            {
                "ts": _now(),
                "decision": "hold" if o["drifted"] else "count_clean",
                "reason": reason,
                "monitor": o["monitor"],
                "model_version": o["model_version"],
                "state": state,
                "drift_share": o["drift_share"],
                "window": o["window"],
                "breaches": breaches,
            }
        )
        if o.get("segment") is not None:  # a segment's window (monitors with segment_by)
            out[-1]["segment"] = o["segment"]
    return out


class AuditLog:
    """The audit file: private (0600) and rotated by size (see :mod:`driftd.actions.jsonl`)."""

    def __init__(
        self,
        path: Path,
        every_evaluation: bool = False,
        max_bytes: int = DEFAULT_MAX_BYTES,
        backups: int = DEFAULT_BACKUPS,
    ) -> None:
        self.path = path
        self.every_evaluation = every_evaluation
        self._fh = PrivateJsonl(path, max_bytes, backups)

    def write(self, outputs: Iterable[dict[str, Any]]) -> int:
        recs = decisions(outputs, self.every_evaluation)
        if recs:
            opt = orjson.OPT_SERIALIZE_NUMPY
            self._fh.write(b"".join(orjson.dumps(r, option=opt) + b"\n" for r in recs))
        return len(recs)

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()

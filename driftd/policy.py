"""Verdicts → alert transitions: min samples, k consecutive breaches, resolve, cooldown.

Per (monitor, model_version) the policy is a small state machine:

* ``ok`` — no open alert. A breaching evaluation moves to ``pending``.
* ``pending`` — breaching, but fewer than ``consecutive`` evaluations in a row so far.
* ``alerting`` — an alert was raised; ``resolve_consecutive`` clean evaluations in a row
  (default: ``consecutive``) raise ``drift.resolved`` and return to ``ok``.
* ``cooldown`` — would alert, but the last alert for this version was raised less than
  ``cooldown_s`` ago (event time); held back and logged, re-checked at the next evaluation.

Alert ids are stable: derived from (monitor, version, transition, accepted-event count at the
evaluation, and the segment for a segment's alert), so re-processing the same events after a
crash yields the same id, which the outbox and receivers use to de-duplicate.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from driftd.config import PolicyConfig

Transition = Literal["alert", "resolve"]


@dataclass(slots=True)
class PolicyState:
    state: str = "ok"
    breaches: int = 0  # consecutive breaching evaluations
    clean: int = 0  # consecutive clean evaluations
    alerts: int = 0  # alerts raised so far (episodes)
    last_alert_ts: float | None = None
    open_alert_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(d: dict[str, Any]) -> PolicyState:
        return PolicyState(**d)


def alert_id(
    monitor: str,
    version: str,
    transition: str,
    count: int,
    partition: str = "",
    segment: str = "",
) -> str:
    """``segment`` (the segment label, "" for a version's overall window) keeps the ids of
    unsegmented alerts what they were before segments existed."""
    key = f"{monitor}\x00{version}\x00{transition}\x00{count}\x00{partition}"
    if segment:
        key += f"\x00{segment}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


class Policy:
    def __init__(self, cfg: PolicyConfig) -> None:
        self.cfg = cfg
        self.resolve_after = cfg.resolve_consecutive or cfg.consecutive

    def decide(self, st: PolicyState, breach: bool, ts: float) -> tuple[Transition | None, str]:
        """Update ``st`` with one evaluation; return (transition, reason)."""
        if breach:
            st.breaches += 1
            st.clean = 0
            if st.state == "alerting":
                return None, "still drifted; alert already open"
            if st.breaches < self.cfg.consecutive:
                st.state = "pending"
                return None, f"breach {st.breaches} of {self.cfg.consecutive} needed"
            if (
                st.last_alert_ts is not None
                and math.isfinite(ts)
                and ts - st.last_alert_ts < self.cfg.cooldown_s
            ):
                st.state = "cooldown"
                return None, f"in cooldown ({self.cfg.cooldown_s:g}s since last alert)"
            st.state = "alerting"
            st.alerts += 1
            st.last_alert_ts = ts if math.isfinite(ts) else st.last_alert_ts
            return "alert", f"{st.breaches} consecutive breaching evaluations"
        st.breaches = 0
        st.clean += 1
        if st.state == "alerting":
            if st.clean >= self.resolve_after:
                st.state = "ok"
                return "resolve", f"{st.clean} consecutive clean evaluations"
            return None, f"clean {st.clean} of {self.resolve_after} needed to resolve"
        st.state = "ok"
        return None, "no breach"

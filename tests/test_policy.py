from __future__ import annotations

from driftd.config import PolicyConfig
from driftd.policy import Policy, PolicyState, alert_id


def run(policy: Policy, seq: str, ts_step: float = 1.0) -> list[str | None]:
    st = PolicyState()
    out: list[str | None] = []
    for i, c in enumerate(seq):
        t, _ = policy.decide(st, c == "x", i * ts_step)
        out.append(t)
    return out


def test_consecutive_then_resolve() -> None:
    p = Policy(PolicyConfig(consecutive=2, cooldown_s=0))
    assert run(p, "x.xx x..") == [None, None, None, "alert", None, None, None, "resolve"]


def test_single_breach_never_alerts_with_k2() -> None:
    p = Policy(PolicyConfig(consecutive=2, cooldown_s=0))
    assert "alert" not in run(p, "x.x.x.x.")


def test_resolve_consecutive_separate() -> None:
    p = Policy(PolicyConfig(consecutive=1, resolve_consecutive=3, cooldown_s=0))
    assert run(p, "x..x...") == ["alert", None, None, None, None, None, "resolve"]


def test_cooldown_holds_back_realert() -> None:
    p = Policy(PolicyConfig(consecutive=1, resolve_consecutive=1, cooldown_s=5))
    st = PolicyState()
    assert p.decide(st, True, 0.0)[0] == "alert"
    assert p.decide(st, False, 1.0)[0] == "resolve"
    t, why = p.decide(st, True, 2.0)
    assert t is None and st.state == "cooldown" and "cooldown" in why
    assert p.decide(st, True, 6.0)[0] == "alert"
    assert st.alerts == 2


def test_state_roundtrip() -> None:
    st = PolicyState(state="alerting", breaches=3, alerts=1, last_alert_ts=5.0, open_alert_id="a")
    assert PolicyState.from_json(st.to_json()) == st


def test_alert_id_stable_and_distinct() -> None:
    a = alert_id("credit", "v2", "drift.detected", 12000)
    assert a == alert_id("credit", "v2", "drift.detected", 12000)
    assert a != alert_id("credit", "v2", "drift.detected", 13000)
    assert a != alert_id("credit", "v1", "drift.detected", 12000)
    assert len(a) == 32

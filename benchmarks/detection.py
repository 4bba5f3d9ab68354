"""Detection-quality benchmark: false alerts on stationary streams, detection delay on drifted
streams, for the config a user gets out of the box.

    python -m benchmarks.detection [--json] [--stationary-events 1000000] [--seed S]
        [--config-overrides JSON] [--reference-events 100000] [--pre-change-events 20000]
        [--post-change-events 15000] [--trials 3] [--scenarios NAME,…] [--events-per-s 100]

Workload (seeded, generated here, no network; only temporary files). One monitor, model
``bench-model``, with 14 features of seven shapes and a prediction score:

==============  ===========================================================================
feature         distribution
==============  ===========================================================================
normal_a/b      N(50, 10²), N(0, 1)
lognormal_a/b   LogN(3, 0.8²), LogN(10.8, 0.45²)
bimodal_a/b     0.3·N(−2, 0.5²) + 0.7·N(1, 1); 0.5·N(0, 1) + 0.5·N(6, 1)
poisson_a/b     Poisson(4), Poisson(0.7) (mostly 0 and 1: heavy ties)
t3_a/b          Student t, 3 degrees of freedom (heavy tails): t, 100 + 5·t
cat3_a/b        3 levels, shares 60/30/10 % and 34/33/33 %
cat50_a/b       50 levels, Zipf-like (share ∝ 1/rank^1.1) and uniform
prediction      logistic score of lognormal_b, poisson_a and bimodal_a plus noise
==============  ===========================================================================

The score depends only on features no scenario touches, so each drifted stream exercises the
one test it is about. The config is driftd's default: window ``{type: sliding, events: 5000,
step: 1000}``, every feature and the prediction without ``test:`` (automatic selection) and
without ``threshold:``, default policy. ``--config-overrides`` deep-merges a JSON object into
the monitor config (``null`` deletes a key), e.g. ``'{"policy": {"consecutive": 3}}'``; the
same monitor config is used to build the reference profile (through ``driftd profile build``)
and to run the engine, so whatever profile build derives from it (calibration) is included.

Streams (each through a fresh in-process :class:`~driftd.runtime.pipeline.Pipeline`, micro-batches
of ``--batch`` events, positions 1-based, event times ``--events-per-s`` apart):

* ``stationary``: ``--stationary-events`` events drawn from the reference distributions.
* drifted streams, ``--trials`` seeded repetitions each: ``--pre-change-events`` reference-like
  events, then ``--post-change-events`` changed ones (change point c = pre-change events):

  - ``mean_shift_0.25sigma`` / ``mean_shift_0.5sigma``: normal_a's mean + 0.25σ / 0.5σ
    (reported, not targeted / targeted);
  - ``variance_x1.5``: normal_a's variance × 1.5 around its mean;
  - ``categorical_shift``: cat3_a 60/30/10 % → 50/30/20 % (10 points move from the most to the
    least frequent level; Cohen's w = 0.34);
  - ``missing_rate_jump``: normal_b suddenly 30 % null (reference 0 %);
  - ``score_shift_new_version``: from c on, model version v2 serves instead of v1; v2's score
    logit is +0.5 (approval rate at 0.5: 43 % → 56 %). The alert must name ``rollback_to: v1``.

Measured per stream: false alerts (``drift.detected`` whose window ends at or before c, or any
in the stationary stream; ``drift.warning`` episodes are counted apart, as ``warnings``),
breaching evaluations in the undrifted part (what the policy had to absorb; per test, with the
worst statistic or p-value seen, and how many were on windows not yet full), and for drifted
streams the detection delay: the first ``drift.detected`` whose window ends after c, delay =
its ``window.end_position`` − c (so at least one step). A detection counts for the targets only
when the alert names the drifted feature (``prediction`` for the score). Over trials,
``delay_events`` is the worst (largest) delay, ``null`` if any trial missed;
``first_breach_delays`` (first breaching evaluation naming the feature) and
``evaluations_held_by_cooldown`` (post-change evaluations the policy held back because an
earlier alert was less than ``cooldown_s`` ago in event time) say why a detection came late.

Targets: 0 false alerts in at least 1,000,000 stationary events (stationary stream and the
pre-change parts together); 0.5σ mean shift, variance × 1.5, categorical shift, missing-rate
jump and score shift detected within one window length (``window.events``) of the change, the
score-shift alert naming ``rollback_to: v1``. The 0.25σ shift is reported only.

Reference modes (``--mode-events``, default 200,000 per stream; 0 skips them; reported, not
targets): the same monitor with ``reference: {type: warmup, events: --warmup-events}`` on a
stationary stream (false alerts after each version's own warmup), and with
``reference: {type: version, version: stable}`` on versions ``stable`` and ``canary``
alternating in blocks of 100 events — both stationary (false alerts), and the canary's
normal_a mean +0.5σ from the middle of the stream on (delay in stream positions; the canary's
5,000-event window spans 10,000 of them).

Multivariate drift (``--multivariate pca_reconstruction,mmd``, the default; ``""`` skips it):
two more monitors on the same events, ``mv_pca_reconstruction`` and ``mv_mmd``, each with
``multivariate: {method: …}`` (threshold calibrated) over ``MV_FEATURES`` — five of the shapes
above plus ``corr_a`` / ``corr_b``, a standard-normal pair correlated 0.8 that the events also
carry (drawn from their own generator, so the other features' values are the same with or
without them) — and, for PCA, two categoricals. They read the stationary stream (their false
alerts and breaching evaluations, and how close the statistic came to its threshold) and
``--trials`` ``correlation_flip`` streams: ``--pre-change-events``, then
``--mv-post-change-events`` whose ``corr_a``/``corr_b`` correlation is −0.8 — no marginal
moves. How close a stationary window came to breaching is ``headroom_used``, the largest
``(statistic − centre) / (threshold − centre)`` with the centre of the calibrated null (1 is
a breach; as ``benchmarks.multivariate``). Per method: the first breaching evaluation and
the first ``drift.detected`` after the change, whether that alert names only
``multivariate``, and the per-feature breaches of the multivariate monitors in the flip
streams (a univariate test flagging the flip would be a false alarm of its own). Targets: no
multivariate false alert in ≥ 1,000,000 stationary events; the flip's first breaching
evaluation within two steps and an alert naming only ``multivariate`` within one window
(``window.events``); no per-feature breach.

With ``--json`` the last line printed is one JSON object: ``false_alerts`` (all streams),
``stationary_events`` (undrifted events judged: stationary stream + pre-change parts),
``streams`` (per stream: ``detected``, ``delay_events``, ``false_alerts``, ``seconds``, …),
``multivariate`` (per method: ``stationary`` and ``correlation_flip`` results), ``targets``
(each check with its value) and ``targets_met``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import yaml

from driftd.cli import main as driftd_cli
from driftd.config import load_config
from driftd.kernels import warm_up
from driftd.runtime.pipeline import Pipeline
from driftd.types import RawRecord

F64 = npt.NDArray[np.float64]

MODEL = "bench-model"
MONITOR = "bench"
T0_MS = int(datetime(2026, 11, 26, tzinfo=UTC).timestamp() * 1000)
TARGET_STATIONARY_EVENTS = 1_000_000
DEFAULT_WINDOW = {"type": "sliding", "events": 5000, "step": 1000}
CHUNK = 50_000  # events generated and encoded at a time

NUMERIC = (
    "normal_a",
    "normal_b",
    "lognormal_a",
    "lognormal_b",
    "bimodal_a",
    "bimodal_b",
    "poisson_a",
    "poisson_b",
    "t3_a",
    "t3_b",
)
_ZIPF = 1.0 / np.arange(1, 51) ** 1.1
CATEGORICAL: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "cat3_a": (("a", "b", "c"), (0.6, 0.3, 0.1)),
    "cat3_b": (("x", "y", "z"), (0.34, 0.33, 0.33)),
    "cat50_a": (tuple(f"k{i:02d}" for i in range(50)), tuple((_ZIPF / _ZIPF.sum()).tolist())),
    "cat50_b": (tuple(f"u{i:02d}" for i in range(50)), (1.0 / 50,) * 50),
}
FEATURES = NUMERIC + tuple(CATEGORICAL)
CORRELATED = ("corr_a", "corr_b")  # carried by every event; read by the multivariate monitors
NORMAL_A_MEAN, NORMAL_A_SD = 50.0, 10.0
MV_FEATURES = ("normal_a", "lognormal_a", "bimodal_a", "poisson_a", "t3_a", *CORRELATED)
MV_CATEGORICAL = ("cat3_a", "cat50_a")  # pca_reconstruction only
MV_METHODS = ("pca_reconstruction", "mmd")


@dataclass(frozen=True, slots=True)
class Drift:
    """How events differ from the reference (the neutral value changes nothing)."""

    mean_shift_sigma: float = 0.0  # normal_a += k·σ
    variance_factor: float = 1.0  # normal_a's variance × factor around its mean
    cat3_a_probs: tuple[float, ...] | None = None  # cat3_a level shares
    missing_rate: float = 0.0  # normal_b null share
    score_logit_shift: float = 0.0
    version: str = "v1"
    corr_rho: float = 0.8  # correlation of corr_a and corr_b (marginals N(0, 1) either way)


NEUTRAL = Drift()


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    target: str  # feature the alert must name ("prediction" for the score)
    drift: Drift
    targeted: bool  # has a detection-delay target
    description: str


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "mean_shift_0.25sigma",
        "normal_a",
        Drift(mean_shift_sigma=0.25),
        False,
        "normal_a mean +0.25 sd",
    ),
    Scenario(
        "mean_shift_0.5sigma",
        "normal_a",
        Drift(mean_shift_sigma=0.5),
        True,
        "normal_a mean +0.5 sd",
    ),
    Scenario(
        "variance_x1.5", "normal_a", Drift(variance_factor=1.5), True, "normal_a variance x1.5"
    ),
    Scenario(
        "categorical_shift",
        "cat3_a",
        Drift(cat3_a_probs=(0.5, 0.3, 0.2)),
        True,
        "cat3_a shares 60/30/10% -> 50/30/20%",
    ),
    Scenario(
        "missing_rate_jump", "normal_b", Drift(missing_rate=0.3), True, "normal_b 0% -> 30% null"
    ),
    Scenario(
        "score_shift_new_version",
        "prediction",
        Drift(score_logit_shift=0.5, version="v2"),
        True,
        "v1 -> v2, v2 score logit +0.5",
    ),
)


# ---------------------------------------------------------------- stream generation


def generate(rng: np.random.Generator, n: int, drift: Drift) -> tuple[list[list[Any]], F64]:
    """``n`` events as feature columns (Python values, None = null) and the scores."""
    normal_a = rng.normal(NORMAL_A_MEAN, NORMAL_A_SD, n)
    normal_a = (
        NORMAL_A_MEAN
        + (normal_a - NORMAL_A_MEAN) * math.sqrt(drift.variance_factor)
        + drift.mean_shift_sigma * NORMAL_A_SD
    )
    normal_b = rng.normal(0.0, 1.0, n)
    lognormal_a = rng.lognormal(3.0, 0.8, n)
    lognormal_b = rng.lognormal(10.8, 0.45, n)
    bimodal_a = np.where(rng.random(n) < 0.3, rng.normal(-2.0, 0.5, n), rng.normal(1.0, 1.0, n))
    bimodal_b = np.where(rng.random(n) < 0.5, rng.normal(0.0, 1.0, n), rng.normal(6.0, 1.0, n))
    poisson_a = rng.poisson(4.0, n)
    poisson_b = rng.poisson(0.7, n)
    t3_a = rng.standard_t(3, n)
    t3_b = 100.0 + 5.0 * rng.standard_t(3, n)
    logit = (
        0.9 * (np.log(lognormal_b) - 10.8) / 0.45
        - 0.25 * (poisson_a - 4.0)
        + 0.4 * bimodal_a
        + rng.normal(0.0, 0.8, n)
        - 0.3
        + drift.score_logit_shift
    )
    score = 1.0 / (1.0 + np.exp(-logit))
    cols: list[list[Any]] = [
        normal_a.tolist(),
        normal_b.tolist(),
        lognormal_a.tolist(),
        lognormal_b.tolist(),
        bimodal_a.tolist(),
        bimodal_b.tolist(),
        poisson_a.tolist(),
        poisson_b.tolist(),
        t3_a.tolist(),
        t3_b.tolist(),
    ]
    for name, (levels, probs) in CATEGORICAL.items():
        p = drift.cat3_a_probs if name == "cat3_a" and drift.cat3_a_probs else probs
        codes = rng.choice(len(levels), n, p=np.asarray(p) / np.sum(p))
        cols.append([levels[c] for c in codes.tolist()])
    if drift.missing_rate > 0:
        null = (rng.random(n) < drift.missing_rate).tolist()
        j = NUMERIC.index("normal_b")
        cols[j] = [None if m else v for v, m in zip(cols[j], null, strict=True)]
    return cols, score


def correlated(rng: np.random.Generator, n: int, rho: float) -> list[list[float]]:
    """``corr_a``, ``corr_b``: standard normal, correlation ``rho``."""
    a = rng.normal(0.0, 1.0, n)
    b = rho * a + math.sqrt(1.0 - rho * rho) * rng.normal(0.0, 1.0, n)
    return [a.tolist(), b.tolist()]


def encode(
    cols: list[list[Any]], score: F64, version: str, first: int, events_per_s: float
) -> list[bytes]:
    """JSON events in driftd's default schema; ``first`` is the 0-based index in the stream.
    ``cols`` holds the FEATURES, then optionally the CORRELATED pair."""
    ts = (T0_MS + (np.arange(first, first + score.size) * (1000.0 / events_per_s))).astype(np.int64)
    dumps = orjson.dumps
    names = FEATURES + CORRELATED if len(cols) > len(FEATURES) else FEATURES
    return [
        dumps(
            {
                "model": MODEL,
                "model_version": version,
                "ts": t,
                "features": dict(zip(names, row, strict=True)),
                "prediction": s,
            }
        )
        for t, row, s in zip(ts.tolist(), zip(*cols, strict=True), score.tolist(), strict=True)
    ]


def stream(
    segments: Sequence[tuple[int, Drift]],
    seed: Sequence[int],
    events_per_s: float,
    with_correlated: bool = False,
) -> Iterator[list[bytes]]:
    """Encoded events of consecutive segments, in chunks of at most CHUNK; with the
    CORRELATED pair from a generator of its own (the other features' values do not change)."""
    rng = np.random.default_rng(np.random.SeedSequence(list(seed)))
    rng_c = np.random.default_rng(np.random.SeedSequence([*seed, 0xC0]))
    first = 0
    for n, drift in segments:
        done = 0
        while done < n:
            k = min(CHUNK, n - done)
            cols, score = generate(rng, k, drift)
            if with_correlated:
                cols += correlated(rng_c, k, drift.corr_rho)
            yield encode(cols, score, drift.version, first, events_per_s)
            done += k
            first += k


# ---------------------------------------------------------------- config and profile


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` merged into a copy of ``base``: mappings recursively, ``None`` deletes."""
    out = dict(base)
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def monitor_config(profile: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    features: dict[str, Any] = {n: {"kind": "numeric"} for n in NUMERIC}
    features.update({n: {"kind": "categorical"} for n in CATEGORICAL})
    mon = {
        "name": MONITOR,
        "model": MODEL,
        "reference": {"type": "profile", "path": str(profile)},
        "window": dict(DEFAULT_WINDOW),
        "features": features,
        "prediction": {"kind": "numeric"},
    }
    return deep_merge(mon, overrides)


def mv_monitor(tmp: Path, method: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """A monitor of the multivariate statistic ``method`` over MV_FEATURES (and, for PCA,
    MV_CATEGORICAL); window, policy and calibration as the main monitor's."""
    base = monitor_config(tmp / f"profile-mv-{method}.json", overrides)
    names = MV_FEATURES + (MV_CATEGORICAL if method == "pca_reconstruction" else ())
    feats = {n: {"kind": "categorical" if n in CATEGORICAL else "numeric"} for n in names}
    out = {k: v for k, v in base.items() if k not in ("features", "prediction")}
    return {**out, "name": f"mv_{method}", "features": feats, "multivariate": {"method": method}}


def write_config(
    tmp: Path,
    overrides: dict[str, Any],
    name: str = "driftd",
    mv: Sequence[str] = (),
    main: bool = True,
) -> Path:
    """The benchmark's config: the main monitor (unless not ``main``) and the multivariate
    monitors of the methods ``mv``."""
    mons = [monitor_config(tmp / "profile.json", overrides)] if main else []
    cfg = {
        "monitors": mons + [mv_monitor(tmp, m, overrides) for m in mv],
        "http": {"listen": "127.0.0.1:0"},
        "state": {"dir": str(tmp / "state")},
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def build_reference(
    tmp: Path, cfg_path: Path, events: int, seed: int, rate: float, mv: Sequence[str] = ()
) -> None:
    """Reference events → ``tmp/profile.json`` (and one profile per multivariate monitor)
    through ``driftd profile build``."""
    ref = tmp / "reference.jsonl"
    with open(ref, "wb") as fh:
        for chunk in stream([(events, NEUTRAL)], (seed, 0), rate, with_correlated=bool(mv)):
            fh.write(b"\n".join(chunk) + b"\n")
    targets = [(MONITOR, tmp / "profile.json")]
    targets += [(f"mv_{m}", tmp / f"profile-mv-{m}.json") for m in mv]
    for monitor, out in targets:
        argv = ["--log-level", "warning", "profile", "build", "-c", str(cfg_path)]
        argv += ["--monitor", monitor, "--input", str(ref), "--out", str(out)]
        argv += ["--seed", str(seed)]
        rc = driftd_cli(argv)
        if rc != 0:
            raise SystemExit(f"driftd profile build failed (exit {rc})")
    ref.unlink()


# ---------------------------------------------------------------- scoring one run


def _target_result(ev: dict[str, Any], target: str) -> dict[str, Any] | None:
    r = ev["prediction"] if target == "prediction" else ev["features"].get(target)
    return dict(r) if r is not None else None


def _worse(test_result: dict[str, Any], worst: float | None) -> float | None:
    """Track the value nearest to drift: smallest p-value for p-value tests, else the
    largest statistic."""
    p, s = test_result.get("p_value"), test_result.get("statistic")
    v = p if p is not None else s
    if v is None:
        return worst
    if worst is None:
        return float(v)
    return float(min(worst, v) if p is not None else max(worst, v))


@dataclass
class Run:
    """What one stream produced, scored against its change point (None: stationary)."""

    change: int | None
    target: str | None
    window_events: int
    events: int = 0
    evaluations: int = 0
    undrifted_evaluations: int = 0
    breaches: int = 0  # breaching evaluations in the undrifted part
    breaches_partial: int = 0  # … of them on windows not yet full (min_events ≤ n < events)
    features: dict[str, dict[str, Any]] = field(default_factory=dict)
    false_alerts: list[dict[str, Any]] = field(default_factory=list)
    detection: dict[str, Any] | None = None
    first_breach_delay: int | None = None  # first breaching evaluation naming the target
    full_window: dict[str, Any] | None = None  # target's result on the first all-changed window
    open_at_change: bool = False
    held_by_cooldown: int = 0  # post-change evaluations the policy held back in cooldown
    warnings: int = 0  # drift.warning episodes (never rollbacks), all of the stream
    resolves: int = 0
    _open: bool = False
    monitor: str = MONITOR  # lines of other monitors (the multivariate ones) are not scored

    def feed(self, outputs: list[dict[str, Any]]) -> None:
        for o in outputs:
            if o.get("monitor", self.monitor) != self.monitor:
                continue
            if o.get("type") == "evaluation":
                self._evaluation(o)
            elif o.get("type") == "alert":
                self._alert(o)

    def _undrifted(self, end: int) -> bool:
        return self.change is None or end <= self.change

    def _evaluation(self, ev: dict[str, Any]) -> None:
        self.evaluations += 1
        w = ev["window"]
        end = int(w["end_position"])
        if self._undrifted(end):
            self.undrifted_evaluations += 1
            if ev["drifted"]:
                self.breaches += 1
                if int(w["events"]) < self.window_events:
                    self.breaches_partial += 1
            tests = list(ev["features"].items())
            if ev.get("prediction") is not None:
                tests.append(("prediction", ev["prediction"]))
            for name, r in tests:
                f = self.features.setdefault(
                    name,
                    {"test": r["test"], "threshold": r["threshold"], "breaches": 0, "worst": None},
                )
                f["breaches"] += int(bool(r["drifted"]))
                f["worst"] = _worse(r, f["worst"])
            # data-quality breaches (missing / out-of-range / unseen rate), where the engine
            # reports them
            for q in ev.get("quality_breaches") or ():
                f = self.features.setdefault(
                    f"{q['name']}.{q['test']}",
                    {"test": q["test"], "threshold": q["threshold"], "breaches": 0, "worst": None},
                )
                f["breaches"] += 1
                f["worst"] = _worse(q, f["worst"])
            return
        assert self.change is not None and self.target is not None
        if ev.get("state") == "cooldown":
            self.held_by_cooldown += 1
        tr = _target_result(ev, self.target)
        hit = bool(tr and tr.get("drifted")) or any(
            q.get("name") == self.target for q in ev.get("quality_breaches") or ()
        )
        if self.first_breach_delay is None and ev["drifted"] and hit:
            self.first_breach_delay = end - self.change
        if self.full_window is None and int(w["start_position"]) > self.change:
            if int(w["events"]) >= self.window_events and tr is not None:
                self.full_window = {"end_position": end, **tr}

    def _alert(self, a: dict[str, Any]) -> None:
        end = int(a["window"]["end_position"])
        if a.get("event") == "drift.resolved":
            self.resolves += 1
            self._open = False
            return
        if a.get("event") == "drift.warning":
            self.warnings += 1
            return
        if a.get("event") != "drift.detected":
            return
        info = {
            "end_position": end,
            "window_events": a["window"]["events"],
            "model_version": a.get("model_version"),
            "severity": a.get("severity"),
            "features": [f"{f['name']}:{f['test']}" for f in a.get("features", [])],
        }
        if self._undrifted(end):
            self.false_alerts.append(info)
            self._open = True
            return
        if self.detection is None:
            assert self.change is not None
            self.open_at_change = self._open
            names = {f["name"] for f in a.get("features", [])}
            self.detection = {
                **info,
                "delay_events": end - self.change,
                "names_target": self.target in names,
                "rollback_to": a.get("rollback_to"),
            }


def run_stream(
    cfg_path: Path,
    segments: Sequence[tuple[int, Drift]],
    seed: Sequence[int],
    run: Run,
    batch: int,
    events_per_s: float,
    observers: Sequence[MvRun] = (),
) -> Run:
    """``segments`` through a fresh engine, outputs scored by ``run`` and ``observers`` (the
    multivariate monitors' runs; with them the events carry the CORRELATED pair)."""
    engine = Pipeline(load_config(cfg_path, environ={}))
    position = 0
    for chunk in stream(segments, seed, events_per_s, with_correlated=bool(observers)):
        recs = [RawRecord(v, position + i + 1, None) for i, v in enumerate(chunk)]
        position += len(recs)
        for i in range(0, len(recs), batch):
            outputs = engine.process(recs[i : i + batch])
            run.feed(outputs)
            for o in observers:
                o.feed(outputs)
    run.events = position
    for o in observers:
        o.events = position
    return run


@dataclass
class MvRun:
    """A multivariate monitor's outputs of one stream, scored against its change point."""

    method: str
    change: int | None
    window_events: int
    events: int = 0
    evaluations: int = 0
    breaches: int = 0  # undrifted evaluations whose multivariate statistic breached
    max_statistic: float | None = None  # undrifted, full windows
    threshold: float | None = None  # calibrated, full window
    centre: float = 0.0  # of the calibrated null (set from the profile)
    headroom_used: float | None = None  # undrifted: max (statistic - centre) / (thr - centre)
    feature_breaches: int = 0  # evaluations with a per-feature or quality breach (any part)
    false_alerts: list[dict[str, Any]] = field(default_factory=list)
    first_breach_delay: int | None = None
    detection: dict[str, Any] | None = None

    @property
    def monitor(self) -> str:
        return f"mv_{self.method}"

    def feed(self, outputs: list[dict[str, Any]]) -> None:
        for o in outputs:
            if o.get("monitor") != self.monitor:
                continue
            if o["type"] == "evaluation":
                self._evaluation(o)
            elif o["type"] == "alert" and o.get("event") == "drift.detected":
                self._alert(o)

    def _evaluation(self, ev: dict[str, Any]) -> None:
        self.evaluations += 1
        end = int(ev["window"]["end_position"])
        mv = ev["multivariate"]
        if any(r["drifted"] for r in ev["features"].values()) or ev["quality_breaches"]:
            self.feature_breaches += 1
        if self.change is None or end <= self.change:
            self.breaches += int(mv["drifted"])
            if mv["statistic"] is not None and mv["threshold"] > self.centre:
                used = (mv["statistic"] - self.centre) / (mv["threshold"] - self.centre)
                self.headroom_used = max(self.headroom_used or -math.inf, used)
            full = int(ev["window"]["events"]) >= self.window_events
            if full and mv["statistic"] is not None:
                self.threshold = mv["threshold"]
                self.max_statistic = max(self.max_statistic or -math.inf, mv["statistic"])
        elif self.first_breach_delay is None and mv["drifted"]:
            self.first_breach_delay = end - self.change

    def _alert(self, a: dict[str, Any]) -> None:
        end = int(a["window"]["end_position"])
        names = [f["name"] for f in a.get("features", [])]
        if self.change is None or end <= self.change:
            self.false_alerts.append({"end_position": end, "features": names})
        elif self.detection is None:
            self.detection = {"delay_events": end - self.change, "features": names}


# ---------------------------------------------------------------- the benchmark


def stationary_result(run: Run, seconds: float) -> dict[str, Any]:
    return {
        "kind": "stationary",
        "detected": False,
        "delay_events": None,
        "false_alerts": len(run.false_alerts),
        "events": run.events,
        "evaluations": run.evaluations,
        "breaching_evaluations": run.breaches,
        "breaching_evaluations_partial_window": run.breaches_partial,
        "warnings": run.warnings,
        "false_alert_list": run.false_alerts[:20],
        "features": run.features,
        "seconds": round(seconds, 2),
    }


def drift_result(sc: Scenario, runs: list[Run], seconds: float, window: int) -> dict[str, Any]:
    delays: list[int | None] = []
    for r in runs:
        d = r.detection
        ok = d is not None and d["names_target"]
        if ok and sc.name == "score_shift_new_version":
            ok = d is not None and d["rollback_to"] == "v1"
        delays.append(int(d["delay_events"]) if ok and d is not None else None)
    detected = all(d is not None for d in delays)
    worst = max(d for d in delays if d is not None) if detected else None
    first = runs[0]
    breaches = sum(r.breaches for r in runs)
    return {
        "kind": "drift",
        "description": sc.description,
        "targeted": sc.targeted,
        "target_feature": sc.target,
        "detected": detected,
        "delay_events": worst,
        "within_window": detected and worst is not None and worst <= window,
        "false_alerts": sum(len(r.false_alerts) for r in runs),
        "trials": len(runs),
        "delays": delays,
        "first_breach_delays": [r.first_breach_delay for r in runs],
        "change_position": first.change,
        "pre_change_events": (first.change or 0) * len(runs),
        "pre_change_breaching_evaluations": breaches,
        "pre_change_breaching_evaluations_partial_window": sum(r.breaches_partial for r in runs),
        "pre_change_breaches_by_test": _breaches_by_test(runs),
        "detections": [r.detection for r in runs],
        "open_false_alert_at_change": any(r.open_at_change for r in runs),
        "evaluations_held_by_cooldown": sum(r.held_by_cooldown for r in runs),
        "warnings": sum(r.warnings for r in runs),
        "full_window": first.full_window,
        "false_alert_list": [a for r in runs for a in r.false_alerts][:20],
        "seconds": round(seconds, 2),
    }


def _breaches_by_test(runs: list[Run]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in runs:
        for name, f in r.features.items():
            if f["breaches"]:
                key = name if "." in name else f"{name}:{f['test']}"
                out[key] = out.get(key, 0) + f["breaches"]
    return out


def _fmt(x: Any) -> str:
    return "-" if x is None else str(x)


def mode_streams(
    tmp: Path, overrides: dict[str, Any], args: argparse.Namespace, window_events: int
) -> dict[str, Any]:
    """The reference-mode streams (module docstring); each result as for the main streams."""
    n = args.mode_events
    out: dict[str, Any] = {}
    warm = write_config(
        tmp,
        {**overrides, "reference": {"type": "warmup", "events": args.warmup_events, "path": None}},
        "warm",
    )
    t0 = time.perf_counter()
    run = run_stream(
        warm,
        [(n, NEUTRAL)],
        (args.seed, 101),
        Run(None, None, window_events),
        args.batch,
        args.events_per_s,
    )
    out["warmup_stationary"] = {
        **stationary_result(run, time.perf_counter() - t0),
        "kind": "mode",
        "reference": f"warmup:{args.warmup_events}",
    }
    vers = write_config(
        tmp,
        {**overrides, "reference": {"type": "version", "version": "stable", "path": None}},
        "version",
    )
    stable, canary = Drift(version="stable"), Drift(version="canary")
    shifted = Drift(version="canary", mean_shift_sigma=0.5)
    blocks = [(100, stable), (100, canary)] * max(1, n // 200)
    t0 = time.perf_counter()
    run = run_stream(
        vers,
        blocks,
        (args.seed, 102),
        Run(None, None, window_events),
        args.batch,
        args.events_per_s,
    )
    out["version_stationary"] = {
        **stationary_result(run, time.perf_counter() - t0),
        "kind": "mode",
        "reference": "version:stable",
    }
    half = len(blocks) // 2
    change = 100 * half
    drifted = blocks[:half] + [(100, stable), (100, shifted)] * (half // 2)
    t0 = time.perf_counter()
    run = run_stream(
        vers,
        drifted,
        (args.seed, 103),
        Run(change, "normal_a", window_events),
        args.batch,
        args.events_per_s,
    )
    d = run.detection
    ok = d is not None and d["names_target"] and d["rollback_to"] == "stable"
    out["version_canary_mean_shift_0.5sigma"] = {
        "kind": "mode",
        "reference": "version:stable",
        "detected": bool(ok),
        "delay_events": int(d["delay_events"]) if ok and d is not None else None,
        "rollback_to": d["rollback_to"] if d is not None else None,
        "false_alerts": len(run.false_alerts),
        "pre_change_events": change,
        "events": run.events,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    return out


def null_centre(tmp: Path, method: str) -> float:
    """The centre of the multivariate statistic's calibrated null (as benchmarks.multivariate:
    PCA's reference mean error, MMD's mean resampled MMD²), from the monitor's profile."""
    doc = orjson.loads((tmp / f"profile-mv-{method}.json").read_bytes())
    null = doc["calibration"]["multivariate"]["null"]
    return float(null["center"] if method == "pca_reconstruction" else null["mean"])


def multivariate_streams(
    tmp: Path,
    overrides: dict[str, Any],
    args: argparse.Namespace,
    mv: Sequence[str],
    stationary: Sequence[MvRun],
    window_events: int,
    window_step: int,
) -> dict[str, Any]:
    """The multivariate monitors' results (module docstring): their view of the stationary
    stream (``stationary``, already run) and ``--trials`` correlation-flip streams."""
    cfg = write_config(tmp, overrides, "mv", mv, main=False)
    pre, post = args.pre_change_events, args.mv_post_change_events
    flip = Drift(corr_rho=-0.8)
    trials: dict[str, list[MvRun]] = {m: [] for m in mv}
    t0 = time.perf_counter()
    for trial in range(args.trials):
        obs = [MvRun(m, pre, window_events, centre=null_centre(tmp, m)) for m in mv]
        run_stream(
            cfg,
            [(pre, NEUTRAL), (post, flip)],
            (args.seed, 50, trial),
            Run(pre, None, window_events),
            args.batch,
            args.events_per_s,
            obs,
        )
        for o in obs:
            trials[o.method].append(o)
    flip_s = time.perf_counter() - t0
    out: dict[str, Any] = {}
    for st in stationary:
        runs = trials[st.method]
        firsts = [r.first_breach_delay for r in runs]
        delays = [r.detection["delay_events"] if r.detection else None for r in runs]
        only = all(r.detection is not None and r.detection["features"] == ["multivariate"]
                   for r in runs)  # fmt: skip
        out[st.method] = {
            "stationary": {
                "events": st.events,
                "evaluations": st.evaluations,
                "breaching_evaluations": st.breaches,
                "false_alerts": len(st.false_alerts),
                "false_alert_list": st.false_alerts[:20],
                "max_statistic": st.max_statistic,
                "threshold": st.threshold,
                "null_centre": st.centre,
                "headroom_used": st.headroom_used,
                "feature_breaches": st.feature_breaches,
            },
            "correlation_flip": {
                "trials": len(runs),
                "change_position": pre,
                "pre_change_events": pre * len(runs),
                "first_breach_delays": firsts,
                "delays": delays,
                "alert_names_only_multivariate": only,
                "feature_breaches": sum(r.feature_breaches for r in runs),
                "false_alerts": sum(len(r.false_alerts) for r in runs),
                "within_window": all(d is not None and d <= window_events for d in delays),
                "within_two_steps": all(d is not None and d <= 2 * window_step for d in firsts),
                "seconds": round(flip_s, 2),
            },
        }
    return out


def report(result: dict[str, Any]) -> None:
    w = result["window_events"]
    print(
        f"detection benchmark: reference {result['reference_events']:,} events, window {w} "
        f"(step {result['window_step']}), {result['trials']} trial(s) per drifted stream, "
        f"seed {result['seed']}"
    )
    if result["config_overrides"]:
        print(f"config overrides: {json.dumps(result['config_overrides'])}")
    print("tests: " + ", ".join(f"{k}={v}" for k, v in result["tests"].items()))
    print(
        f"{'stream':24s} {'detected':>8s} {'delay':>6s} {'1st breach':>15s} {'false':>5s} "
        f"{'breaches':>8s} {'cooldown':>8s} {'seconds':>7s}"
    )
    for name, s in result["streams"].items():
        if s["kind"] == "stationary":
            det, delay, fb, held = "n/a", "-", "-", "-"
            br = f"{s['breaching_evaluations']}/{s['evaluations']}"
        else:
            det = "yes" if s["detected"] else "NO"
            delay = _fmt(s["delay_events"])
            fb = ",".join(_fmt(x) for x in s["first_breach_delays"])
            br = str(s["pre_change_breaching_evaluations"])
            held = str(s["evaluations_held_by_cooldown"])
        print(
            f"{name:24s} {det:>8s} {delay:>6s} {fb:>15s} {s['false_alerts']:>5d} {br:>8s} "
            f"{held:>8s} {s['seconds']:>7.1f}"
        )
        if s["kind"] == "drift" and s["full_window"]:
            fw = s["full_window"]
            print(
                f"{'':24s}   full changed window: {fw['test']} statistic {_fmt(fw['statistic'])}"
                f" p {_fmt(fw['p_value'])} threshold {fw['threshold']}"
                f" quality {fw.get('quality')}"
            )
    st = result["streams"].get("stationary")
    if st:
        print("stationary stream, per test: breaching evaluations, worst value (p or statistic)")
        for name, f in st["features"].items():
            print(
                f"  {name:12s} {f['test']:17s} thr {f['threshold']:<8.4g} "
                f"breaches {f['breaches']:5d}  worst {_fmt(f['worst'])}"
            )
    for name, m in result.get("reference_modes", {}).items():
        delay = "-" if "delay_events" not in m else _fmt(m["delay_events"])
        print(
            f"mode {name:35s} {m['reference']:16s} events {m['events']:>9,} "
            f"false alerts {m['false_alerts']}  delay {delay}  {m['seconds']:.1f} s"
        )
    for method, m in result.get("multivariate", {}).items():
        st, fl = m["stationary"], m["correlation_flip"]
        print(
            f"multivariate {method:19s} stationary {st['events']:,} events: false alerts "
            f"{st['false_alerts']}, breaching {st['breaching_evaluations']}/{st['evaluations']}, "
            f"max statistic {_fmt(st['max_statistic'])} vs threshold {_fmt(st['threshold'])} "
            f"(null centre {st['null_centre']:.4g}; headroom used {_fmt(st['headroom_used'])})"
        )
        print(
            f"{'':32s} correlation flip: first breach {fl['first_breach_delays']}, alert "
            f"{fl['delays']}, only multivariate {fl['alert_names_only_multivariate']}, "
            f"per-feature breaches {fl['feature_breaches']}, false alerts {fl['false_alerts']}"
        )
    for name, t in result["targets"].items():
        print(f"target {name}: {t['value']} ({t['goal']}) -> {'met' if t['met'] else 'NOT MET'}")
    print(
        f"false alerts: {result['false_alerts']} in {result['stationary_events']:,} undrifted "
        f"events; targets met: {result['targets_met']}; total {result['elapsed_s']:.1f} s"
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.detection",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--json", action="store_true", help="end with one JSON line")
    ap.add_argument("--stationary-events", type=int, default=TARGET_STATIONARY_EVENTS)
    ap.add_argument("--reference-events", type=int, default=100_000)
    ap.add_argument("--pre-change-events", type=int, default=20_000)
    ap.add_argument("--post-change-events", type=int, default=15_000)
    ap.add_argument("--trials", type=int, default=3, help="seeded repetitions per drift stream")
    ap.add_argument("--scenarios", default="", help="comma list of drift streams (default all)")
    ap.add_argument("--config-overrides", default="{}", help="JSON merged into the monitor")
    ap.add_argument("--events-per-s", type=float, default=100.0, help="event-time rate")
    ap.add_argument("--batch", type=int, default=5000, help="micro-batch size")
    ap.add_argument("--seed", type=int, default=20261126)
    ap.add_argument("--mode-events", type=int, default=200_000, help="per reference-mode stream")
    ap.add_argument("--warmup-events", type=int, default=20_000, help="warmup reference size")
    ap.add_argument(
        "--multivariate",
        default=",".join(MV_METHODS),
        help="comma list of multivariate methods with a monitor of their own ('' skips them)",
    )
    ap.add_argument("--mv-post-change-events", type=int, default=6000)
    args = ap.parse_args(argv)
    mv = [m for m in args.multivariate.split(",") if m]
    if set(mv) - set(MV_METHODS):
        ap.error(f"unknown multivariate method(s) {sorted(set(mv) - set(MV_METHODS))}")
    overrides = json.loads(args.config_overrides)
    if not isinstance(overrides, dict):
        ap.error("--config-overrides must be a JSON object")
    chosen = [s for s in SCENARIOS if not args.scenarios or s.name in args.scenarios.split(",")]
    unknown = set(filter(None, args.scenarios.split(","))) - {s.name for s in SCENARIOS}
    if unknown:
        ap.error(f"unknown scenario(s) {sorted(unknown)}; known: {[s.name for s in SCENARIOS]}")

    t_start = time.perf_counter()
    warm_s = warm_up()
    streams: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="driftd-bench-") as tmpdir:
        tmp = Path(tmpdir)
        cfg_path = write_config(tmp, overrides)
        # the stationary stream also feeds the multivariate monitors (one stream, read once)
        cfg_all = write_config(tmp, overrides, "all", mv) if mv else cfg_path
        t0 = time.perf_counter()
        build_reference(tmp, cfg_all, args.reference_events, args.seed, args.events_per_s, mv)
        profile_s = time.perf_counter() - t0
        # the engine logs every alert at WARNING; the benchmark reports them itself
        logging.getLogger("driftd").setLevel(logging.ERROR)
        mon = load_config(cfg_path, environ={}).monitors[0]
        window_events = mon.window.events
        window_step = getattr(mon.window, "step", window_events)

        features: dict[str, dict[str, Any]] = {}
        mv_stationary = [MvRun(m, None, window_events, centre=null_centre(tmp, m)) for m in mv]
        if args.stationary_events > 0:
            t0 = time.perf_counter()
            run = run_stream(
                cfg_all,
                [(args.stationary_events, NEUTRAL)],
                (args.seed, 1),
                Run(None, None, window_events),
                args.batch,
                args.events_per_s,
                mv_stationary,
            )
            streams["stationary"] = stationary_result(run, time.perf_counter() - t0)
            features = run.features
        for k, sc in enumerate(chosen):
            t0 = time.perf_counter()
            runs = [
                run_stream(
                    cfg_path,
                    [(args.pre_change_events, NEUTRAL), (args.post_change_events, sc.drift)],
                    (args.seed, 2 + k, trial),
                    Run(args.pre_change_events, sc.target, window_events),
                    args.batch,
                    args.events_per_s,
                )
                for trial in range(args.trials)
            ]
            streams[sc.name] = drift_result(sc, runs, time.perf_counter() - t0, window_events)
            features = features or runs[0].features
        modes = mode_streams(tmp, overrides, args, window_events) if args.mode_events > 0 else {}
        multivariate = (
            multivariate_streams(
                tmp, overrides, args, mv, mv_stationary, window_events, window_step
            )
            if mv
            else {}
        )

    false_alerts = sum(s["false_alerts"] for s in streams.values())
    stationary_events = streams.get("stationary", {}).get("events", 0) + sum(
        s["pre_change_events"] for s in streams.values() if s["kind"] == "drift"
    )
    targets: dict[str, dict[str, Any]] = {
        "false_alerts": {"value": false_alerts, "goal": "== 0", "met": false_alerts == 0},
        "stationary_events": {
            "value": stationary_events,
            "goal": f">= {TARGET_STATIONARY_EVENTS:,}",
            "met": stationary_events >= TARGET_STATIONARY_EVENTS,
        },
    }
    if multivariate:
        mv_false = sum(
            m["stationary"]["false_alerts"] + m["correlation_flip"]["false_alerts"]
            for m in multivariate.values()
        )
        mv_events = min(
            m["stationary"]["events"] + m["correlation_flip"]["pre_change_events"]
            for m in multivariate.values()
        )
        targets["multivariate_false_alerts"] = {
            "value": mv_false,
            "goal": "== 0",
            "met": mv_false == 0,
        }
        targets["multivariate_stationary_events"] = {
            "value": mv_events,
            "goal": f">= {TARGET_STATIONARY_EVENTS:,}",
            "met": mv_events >= TARGET_STATIONARY_EVENTS,
        }
        for method, m in multivariate.items():
            fl = m["correlation_flip"]
            targets[f"correlation_flip_{method}"] = {
                "value": {"first_breach": fl["first_breach_delays"], "alert": fl["delays"]},
                "goal": f"first breach within two steps ({2 * window_step}), alert within"
                f" {window_events} naming only multivariate, no per-feature breach",
                "met": fl["within_two_steps"]
                and fl["within_window"]
                and fl["alert_names_only_multivariate"]
                and fl["feature_breaches"] == 0,
            }
    for sc in chosen:
        if sc.targeted:
            s = streams[sc.name]
            targets[sc.name] = {
                "value": s["delay_events"],
                "goal": f"detected, delay <= {window_events}",
                "met": bool(s["within_window"]),
            }
    result: dict[str, Any] = {
        "benchmark": "detection",
        "false_alerts": false_alerts,
        "stationary_events": stationary_events,
        "streams": streams,
        "reference_modes": modes,
        "multivariate": multivariate,
        "targets_met": all(t["met"] for t in targets.values()),
        "targets": targets,
        "window_events": window_events,
        "window_step": window_step,
        "reference_events": args.reference_events,
        "trials": args.trials,
        "events_per_s": args.events_per_s,
        "seed": args.seed,
        "config_overrides": overrides,
        "tests": {n: f"{f['test']}@{f['threshold']:g}" for n, f in features.items()},
        "warm_up_s": round(warm_s, 2),
        "profile_build_s": round(profile_s, 2),
        "elapsed_s": round(time.perf_counter() - t_start, 2),
    }
    report(result)
    if args.json:
        print(json.dumps(result, separators=(",", ":")))
    return result


if __name__ == "__main__":
    main()

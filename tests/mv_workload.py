"""Seeded event streams and configs for the wiring tests of multivariate drift and estimated
performance (tests/test_multivariate_wiring.py, tests/test_performance_estimate.py).

* ``correlation`` streams: six standard-normal features ``x0``…``x5`` (``x0``/``x1``
  correlated 0.8, ``x2``/``x3`` 0.3), a categorical ``region`` independent of them and a score
  of ``x4``. :func:`flip_stream` flips the correlation of ``x0`` and ``x1`` to −0.8 at
  :data:`FLIP`: no marginal distribution changes.
* ``credit`` streams: one feature ``x`` whose logistic is the calibrated probability of a
  default (the score), labels drawn from it. Spread :data:`SPREAD_80` gives accuracy 0.80 at
  the 0.5 threshold, :data:`SPREAD_70` 0.70 — applicants bunching at the decision boundary:
  covariate shift, the score stays calibrated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import yaml

from driftd.cli import main

D = 6
WINDOW = 2000
STEP = 500
FLIP = 10_000  # events before the correlation of x0 and x1 flips
T0_MS = 1_790_000_000_000
REGIONS = ("EU", "US", "APAC")

SPREAD_80 = 2.319491936627374  # accuracy 0.80 at 0.5 (numerical integration)
SPREAD_70 = 1.1939095491887968  # accuracy 0.70


def draw(rng: np.random.Generator, n: int, rho: float) -> np.ndarray:
    cov = np.eye(D)
    cov[0, 1] = cov[1, 0] = rho
    cov[2, 3] = cov[3, 2] = 0.3
    return rng.multivariate_normal(np.zeros(D), cov, size=n)


def correlation_events(
    rng: np.random.Generator, n: int, rho: float, start: int, version: str = "v1"
) -> list[bytes]:
    x = draw(rng, n, rho)
    region = rng.choice(len(REGIONS), size=n, p=[0.5, 0.3, 0.2])
    score = 1.0 / (1.0 + np.exp(-x[:, 4]))
    out = []
    for i in range(n):
        feats: dict[str, Any] = {f"x{j}": float(x[i, j]) for j in range(D)}
        feats["region"] = REGIONS[int(region[i])]
        out.append(
            orjson.dumps(
                {
                    "event_id": f"e{start + i}",
                    "model": "m",
                    "model_version": version,
                    "ts": T0_MS + (start + i) * 1000,
                    "features": feats,
                    "prediction": float(score[i]),
                }
            )
        )
    return out


def flip_stream(seed: int = 2026, after: int = 4000) -> tuple[list[bytes], list[bytes]]:
    """(reference events, stream): FLIP events like the reference, then ``after`` flipped."""
    rng = np.random.default_rng(seed)
    ref = correlation_events(rng, 20_000, 0.8, 0)
    stream = correlation_events(rng, FLIP, 0.8, 100_000)
    stream += correlation_events(rng, after, -0.8, 100_000 + FLIP)
    return ref, stream


def correlation_monitor(name: str, profile: Path, method: str, **extra: Any) -> dict[str, Any]:
    feats: dict[str, Any] = {f"x{j}": {"kind": "numeric"} for j in range(D)}
    feats["region"] = {"kind": "categorical"}
    mon: dict[str, Any] = {
        "name": name,
        "model": "m",
        "reference": {"type": "profile", "path": str(profile)},
        "window": {"type": "sliding", "events": WINDOW, "step": STEP},
        "features": feats,
        "prediction": {"kind": "numeric"},
        "multivariate": {"method": method},
        "policy": {"min_events": 1000, "consecutive": 1, "cooldown_s": 0},
    }
    mon.update(extra)
    return mon


def credit_events(
    rng: np.random.Generator,
    n: int,
    spread: float,
    start: int,
    *,
    version: str = "v1",
    step_s: float = 10.0,
    with_labels: bool = True,
) -> tuple[list[bytes], list[int], list[int]]:
    """(events, labels, event-time milliseconds); the label rides in the event when
    ``with_labels`` (a reference), else it is left to a label file."""
    x = rng.normal(0.0, spread, n)
    score = 1.0 / (1.0 + np.exp(-x))
    label = (rng.random(n) < score).astype(int)
    ts = [T0_MS + int((start + i) * step_s * 1000) for i in range(n)]
    out = []
    for i in range(n):
        ev: dict[str, Any] = {
            "event_id": f"c{start + i}",
            "model": "credit",
            "model_version": version,
            "ts": ts[i],
            "features": {"x": float(x[i])},
            "prediction": float(score[i]),
        }
        if with_labels:
            ev["label"] = int(label[i])
        out.append(orjson.dumps(ev))
    return out, label.tolist(), ts


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def write_config(tmp: Path, monitors: list[dict[str, Any]], **top: Any) -> Path:
    cfg = {"monitors": monitors, "state": {"dir": str(tmp / "state")}, **top}
    path = tmp / "driftd.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def build_profile(cfg: Path, monitor: str, reference: Path, out: Path) -> Path:
    argv = ["profile", "build", "-c", str(cfg), "--monitor", monitor]
    assert main([*argv, "--input", str(reference), "--out", str(out)]) == 0
    return out


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]

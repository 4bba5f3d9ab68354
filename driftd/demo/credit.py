"""Synthetic credit-scoring prediction stream (seeded, offline).

Version ``v1`` scores applicants with a calibrated logistic model. Version ``v2`` is the bad
update of the story: same applicants, but its scores are shifted up, so the approval rate
(score ≥ 0.5) jumps. Optional input drift (``income_shift``) moves applicants' incomes.

``python -m driftd.demo.credit --events N --version v1 [--seed S] [--score-shift X]`` writes
JSONL to stdout; ``--labels FILE`` also writes their delayed labels (:func:`labels_for`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson

REGIONS = ("EU", "US", "APAC", "LATAM")
REGION_P = (0.4, 0.35, 0.15, 0.10)
EMPLOYMENT = ("employed", "self_employed", "unemployed", "retired", "student")
EMPLOYMENT_P = (0.62, 0.14, 0.07, 0.12, 0.05)
FEATURES = {
    "income": "numeric",
    "age": "numeric",
    "debt_ratio": "numeric",
    "credit_history_months": "numeric",
    "num_accounts": "numeric",
    "loan_amount": "numeric",
    "region": "categorical",
    "employment": "categorical",
    "has_mortgage": "categorical",
}


def generate(
    n: int,
    *,
    version: str = "v1",
    seed: int = 0,
    score_shift: float = 0.0,
    income_shift: float = 0.0,
    start: datetime | None = None,
    rate_per_s: float = 1000.0,
    model: str = "credit-scoring",
    id_prefix: str = "",
) -> Iterator[bytes]:
    """Yield ``n`` JSON-encoded events (bytes, no newline)."""
    rng = np.random.default_rng(seed)
    income = rng.lognormal(10.8, 0.45, n) * (1.0 + income_shift)
    age = np.clip(rng.normal(42, 12, n), 18, 90).round()
    debt = np.clip(rng.beta(2, 5, n), 0, 1)
    hist = np.clip(rng.gamma(3.0, 30.0, n), 0, None).round()
    accounts = rng.poisson(3.0, n)
    loan = rng.lognormal(9.5, 0.6, n)
    region = rng.choice(len(REGIONS), n, p=REGION_P)
    employment = rng.choice(len(EMPLOYMENT), n, p=EMPLOYMENT_P)
    mortgage = rng.random(n) < 0.35
    z = (
        0.9 * (np.log(income) - 10.8) / 0.45
        - 1.4 * (debt - 0.285) / 0.16
        + 0.4 * (hist - 90) / 52
        - 0.3 * (np.log(loan) - 9.5) / 0.6
        - 0.8 * (employment == 2)
        + rng.normal(0, 0.8, n)
    )
    score = 1.0 / (1.0 + np.exp(-(z - 0.2 + score_shift)))
    t0 = start or datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    dumps = orjson.dumps
    for i in range(n):
        ts = t0 + timedelta(seconds=i / rate_per_s)
        yield dumps(
            {
                "event_id": f"{id_prefix}{version}-{seed}-{i}",
                "model": model,
                "model_version": version,
                "ts": ts.isoformat().replace("+00:00", "Z"),
                "features": {
                    "income": round(float(income[i]), 2),
                    "age": int(age[i]),
                    "debt_ratio": round(float(debt[i]), 4),
                    "credit_history_months": int(hist[i]),
                    "num_accounts": int(accounts[i]),
                    "loan_amount": round(float(loan[i]), 2),
                    "region": REGIONS[region[i]],
                    "employment": EMPLOYMENT[employment[i]],
                    "has_mortgage": bool(mortgage[i]),
                },
                "prediction": round(float(score[i]), 6),
                "label": None,
            }
        )


def labels_for(
    events: list[bytes],
    *,
    score_shift: float = 0.0,
    seed: int = 0,
    lag_s: tuple[float, float] = (1.0, 60.0),
) -> list[bytes]:
    """Delayed ground truth for ``events`` (from :func:`generate` with the same
    ``score_shift``): ``label`` 1 = the loan was repaid, 0 = it defaulted, drawn with the
    probability the calibrated v1 model gives (the score with the shift taken out), arriving
    ``lag_s`` (uniform) after the prediction. Returned in label-time order, so they come out
    of order with respect to their predictions."""
    rng = np.random.default_rng(seed + 1_000_003)
    out: list[tuple[float, bytes]] = []
    for raw in events:
        e = orjson.loads(raw)
        s = min(max(float(e["prediction"]), 1e-12), 1 - 1e-12)
        p_repaid = 1.0 / (1.0 + np.exp(-(np.log(s / (1 - s)) - score_shift)))
        label = int(rng.random() < p_repaid)
        ts = datetime.fromisoformat(e["ts"]) + timedelta(seconds=float(rng.uniform(*lag_s)))
        out.append(
            (
                ts.timestamp(),
                orjson.dumps(
                    {
                        "event_id": e["event_id"],
                        "label": label,
                        "ts": ts.isoformat().replace("+00:00", "Z"),
                    }
                ),
            )
        )
    out.sort(key=lambda x: x[0])
    return [b for _, b in out]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--version", default="v1")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--score-shift", type=float, default=0.0)
    ap.add_argument("--income-shift", type=float, default=0.0)
    ap.add_argument("--rate", type=float, default=1000.0, help="events per second of event time")
    ap.add_argument("--start-s", type=float, default=0.0, help="first event this many seconds "
                    "after 2026-11-26T12:00:00Z")  # fmt: skip
    ap.add_argument("--labels", help="also write delayed labels (labels_for) to this file")
    a = ap.parse_args()
    out = sys.stdout.buffer
    events = list(
        generate(
            a.events,
            version=a.version,
            seed=a.seed,
            score_shift=a.score_shift,
            income_shift=a.income_shift,
            start=datetime(2026, 11, 26, 12, 0, tzinfo=UTC) + timedelta(seconds=a.start_s),
            rate_per_s=a.rate,
        )
    )
    for line in events:
        out.write(line + b"\n")
    if a.labels:
        with open(a.labels, "wb") as fh:
            for line in labels_for(events, score_shift=a.score_shift, seed=a.seed):
                fh.write(line + b"\n")


if __name__ == "__main__":
    main()

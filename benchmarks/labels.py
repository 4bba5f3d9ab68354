"""Label-join benchmark: labels joined per second and memory per pending prediction.

    python -m benchmarks.labels [--json] [--predictions 1000000] [--batch 10000] [--seed 0]

Workload (seeded, generated here, no network): ``--predictions`` predictions with 32-hex-digit
event ids (like UUIDs), two model versions, positive-class scores, one every millisecond of
event time; then one label for each, arriving 1–60 s after its prediction (uniform), in the
order the labels' own timestamps put them — so labels come out of order with respect to
their predictions. Both are fed to :class:`driftd.performance.LabelJoiner` (horizon one hour,
so nothing expires) in micro-batches of ``--batch`` events, ids as Python ``str``: the times
include hashing the ids. The kernels are warmed up first.

Memory: the same predictions are added to a fresh joiner under ``tracemalloc`` (NumPy reports
its buffers to it), and the traced growth divided by the pending count is ``bytes_per_pending``;
``mb_per_1m_pending`` is that times a million, in MB (10⁶ bytes).

With ``--json`` the last line printed is one JSON object with at least
``labels_joined_per_s``, ``bytes_per_pending`` and ``mb_per_1m_pending``.
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc
from typing import Any

import numpy as np
import numpy.typing as npt

from driftd.performance import LabelJoiner, warm_up

HORIZON_S = 3600.0
RATE_PER_S = 1000.0


def make_workload(n: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    words = rng.integers(0, 2**63, size=(n, 2), dtype=np.int64)
    ids = [f"{a:016x}{b:016x}" for a, b in words.tolist()]
    ts = 1.7e9 + np.arange(n) / RATE_PER_S
    scores = rng.random(n)
    versions = np.where(rng.random(n) < 0.5, 0, 1).astype(np.int64)
    labels = (rng.random(n) < scores).astype(np.float64)
    label_ts = ts + rng.uniform(1.0, 60.0, n)
    order = np.argsort(label_ts, kind="stable")
    return {
        "ids": ids,
        "ts": ts,
        "scores": scores,
        "versions": versions,
        "label_ids": [ids[k] for k in order.tolist()],
        "labels": labels[order],
        "label_ts": label_ts[order],
    }


def add_predictions(j: LabelJoiner, w: dict[str, Any], batch: int) -> None:
    codes: npt.NDArray[np.int64] = np.array([j.version_code("v1"), j.version_code("v2")])
    n = len(w["ids"])
    for b in range(0, n, batch):
        j.add_predictions(
            w["ids"][b : b + batch],
            codes[w["versions"][b : b + batch]],
            w["scores"][b : b + batch],
            w["ts"][b : b + batch],
        )


def run(n: int, batch: int, seed: int) -> dict[str, Any]:
    warm_up()
    w = make_workload(n, seed)

    j = LabelJoiner(HORIZON_S, max_pending=max(n, 1))
    t0 = time.perf_counter()
    add_predictions(j, w, batch)
    t_pred = time.perf_counter() - t0
    t0 = time.perf_counter()
    joined = 0
    for b in range(0, n, batch):
        joined += len(
            j.add_labels(
                w["label_ids"][b : b + batch], w["labels"][b : b + batch],
                w["label_ts"][b : b + batch],
            )
        )  # fmt: skip
    t_lab = time.perf_counter() - t0
    counters = j.counters()

    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    m = LabelJoiner(HORIZON_S, max_pending=max(n, 1))
    add_predictions(m, w, batch)
    grown, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    bytes_per_pending = (grown - base) / max(m.pending, 1)

    return {
        "predictions": n,
        "batch": batch,
        "predictions_per_s": round(n / t_pred),
        "labels_per_s": round(n / t_lab),
        "labels_joined_per_s": round(joined / t_lab),
        "joined": joined,
        "counters": counters,
        "pending_after_predictions": m.pending,
        "bytes_per_pending": round(bytes_per_pending, 1),
        "array_bytes_per_pending": round(m.nbytes() / max(m.pending, 1), 1),
        "peak_bytes_per_pending": round((peak - base) / max(m.pending, 1), 1),
        "mb_per_1m_pending": round(bytes_per_pending * 1_000_000 / 1e6, 1),  # MB = 10⁶ B
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="end with one JSON line")
    ap.add_argument("--predictions", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    r = run(a.predictions, a.batch, a.seed)
    print(
        f"{r['predictions']:,} predictions, then as many labels 1-60 s late, "
        f"batches of {r['batch']:,}"
    )
    print(f"  predictions added   {r['predictions_per_s']:>12,} /s")
    print(f"  labels joined       {r['labels_joined_per_s']:>12,} /s  ({r['joined']:,} joined)")
    print(
        f"  memory              {r['bytes_per_pending']:>12} bytes per pending prediction "
        f"({r['mb_per_1m_pending']} MB per million; arrays {r['array_bytes_per_pending']})"
    )
    if a.json:
        print(json.dumps(r))


if __name__ == "__main__":
    main()

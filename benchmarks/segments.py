"""Pipeline throughput with and without segments (in process, no Kafka).

Seeded credit-scoring events (``driftd.demo.credit``) go through ``Pipeline.process`` in
micro-batches of 10,000: decode, map, stage, windows, evaluations, policy. Reported: events
per CPU second (best of ``--rounds``) for the unsegmented monitor and, when the driftd on the
path supports ``segment_by``, for the same monitor segmented by ``features.region`` (4
segments) and by a 1,000-value field with ``max_segments: 100`` (overflow path). Run it
against another checkout's driftd (e.g. main) with
``PYTHONPATH=/path/to/checkout python benchmarks/segments.py --json`` to compare the
unsegmented path across versions.

    python -m benchmarks.segments --json
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from driftd.config import MonitorConfig, validate_config
from driftd.demo.credit import generate
from driftd.reference.profile import build_profile
from driftd.runtime.pipeline import Pipeline
from driftd.types import RawRecord

FEATURES: dict[str, dict[str, Any]] = {
    "income": {"kind": "numeric", "test": "ks", "threshold": 0.001},
    "age": {"kind": "numeric", "test": "ks", "threshold": 0.001},
    "debt_ratio": {"kind": "numeric", "test": "ks", "threshold": 0.001},
    "region": {"kind": "categorical", "test": "chi2", "threshold": 0.001},
    "employment": {"kind": "categorical", "test": "chi2", "threshold": 0.001},
}


def _config(profile: Path, extra: dict[str, Any]) -> Any:
    mon = {
        "name": "credit",
        "model": "credit-scoring",
        "reference": {"type": "profile", "path": str(profile)},
        "window": {"type": "sliding", "events": 5000, "step": 1000},
        "features": FEATURES,
        "prediction": {"kind": "numeric", "test": "psi", "threshold": 0.2},
        "policy": {"min_events": 1000, "consecutive": 2, "cooldown_s": 0},
        "calibration": {"false_alerts_per_million_events": None},
        **extra,
    }
    return validate_config({"monitors": [mon]})


def _with_shard(lines: list[bytes]) -> list[bytes]:
    out = []
    for i, raw in enumerate(lines):
        obj = orjson.loads(raw)
        obj["shard"] = f"s{(i * 7919) % 1000}"
        out.append(orjson.dumps(obj))
    return out


def measure(cfg: Any, records: list[RawRecord], batch: int, rounds: int) -> float:
    best = 0.0
    for _ in range(rounds):
        engine = Pipeline(cfg)
        gc.collect()
        t0 = time.process_time()  # CPU time: the machine is shared, wall time is noisy
        for i in range(0, len(records), batch):
            engine.process(records[i : i + batch])
        best = max(best, len(records) / (time.process_time() - t0))
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="end with one JSON line")
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=3, help="best of N runs per case")
    args = ap.parse_args(argv)
    segments = "segment_by" in MonitorConfig.model_fields
    lines = _with_shard(list(generate(args.events, version="v1", seed=5)))
    records = [RawRecord(v, i + 1, None) for i, v in enumerate(lines)]
    result: dict[str, Any] = {"events": args.events, "batch": args.batch}
    with tempfile.TemporaryDirectory() as tmp:
        profile = Path(tmp) / "profile.json"
        plain = _config(profile, {})
        ref = generate(20_000, version="v1", seed=1)
        build_profile(plain.monitors[0], plain.schema_, ref).save(profile)
        cases: list[tuple[str, dict[str, Any]]] = [("unsegmented", {})]
        if segments:
            cases += [
                ("segmented_region", {"segment_by": ["features.region"]}),
                ("segmented_1000_values_max_100", {"segment_by": ["shard"], "max_segments": 100}),
            ]
        for name, extra in cases:
            eps = measure(_config(profile, extra), records, args.batch, args.rounds)
            result[f"{name}_events_per_s"] = round(eps)
            print(f"{name:32s} {eps:12,.0f} events/s", file=sys.stderr)
    if segments:
        result["segmented_region_vs_unsegmented"] = round(
            result["segmented_region_events_per_s"] / result["unsegmented_events_per_s"], 3
        )
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

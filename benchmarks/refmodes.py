"""Replay throughput per reference mode, and what a warmup's calibration costs.

    python -m benchmarks.refmodes [--json] [--events 200000] [--warmup-events 20000]
        [--batch 5000] [--resamples 1000] [--seed S]

Workload (seeded, generated here, no network; temporary files only): the credit demo stream
(``driftd.demo.credit``), versions ``stable`` and ``canary`` alternating event by event,
``--events`` in all. One monitor of 5 features (income, age, debt_ratio: ``ks``; region,
employment: ``chi2``) and the numeric score (``ks``), thresholds calibrated where the mode
calibrates (no ``threshold:``), window ``{type: sliding, events: 2000, step: 500}``, run
through an in-process :class:`~driftd.runtime.pipeline.Pipeline` in micro-batches of ``--batch``:

* ``profile``: a 20,000-event profile of the same traffic (built and calibrated beforehand,
  not timed);
* ``warmup``: ``{type: warmup, events: --warmup-events}`` — each version's reference is its
  first events, calibrated when complete (timed: it is part of consuming);
* ``version``: ``{type: version, version: stable}`` — the canary against stable's window.

Reported per mode: wall seconds, events/s, and for warmup the seconds spent resolving the
references (tests and calibration, both versions) and the events/s without them. Each mode
runs after one untimed warm-up pass over the first 5,000 events (kernels compiled or loaded).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from driftd.cli import main as driftd_cli
from driftd.config import load_config
from driftd.demo.credit import generate
from driftd.monitor import refmodes
from driftd.runtime.pipeline import Pipeline
from driftd.types import RawRecord

FEATURES = {
    "income": {"kind": "numeric", "test": "ks"},
    "age": {"kind": "numeric", "test": "ks"},
    "debt_ratio": {"kind": "numeric", "test": "ks"},
    "region": {"kind": "categorical", "test": "chi2"},
    "employment": {"kind": "categorical", "test": "chi2"},
}


def write_config(tmp: Path, name: str, reference: dict[str, Any], resamples: int) -> Path:
    mon = {
        "name": "credit",
        "model": "credit-scoring",
        "reference": reference,
        "window": {"type": "sliding", "events": 2000, "step": 500},
        "features": FEATURES,
        "prediction": {"kind": "numeric", "test": "ks"},
        "policy": {"min_events": 1000, "consecutive": 2, "cooldown_s": 0},
        "calibration": {"resamples": resamples},
    }
    cfg = {"monitors": [mon], "state": {"dir": str(tmp / "state")}}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def stream(n: int, seed: int) -> list[bytes]:
    a = generate(n - n // 2, version="stable", seed=seed)
    b = generate(n // 2, version="canary", seed=seed + 1)
    out: list[bytes] = []
    for x, y in zip(a, b, strict=False):
        out += [x, y]
    out += list(a)
    return out


def run(cfg: Path, lines: list[bytes], batch: int) -> tuple[float, float]:
    """(wall seconds, of which resolving warmup references: tests and calibration)."""
    engine = Pipeline(load_config(cfg, environ={}))
    recs = [RawRecord(v, i + 1, None) for i, v in enumerate(lines)]
    spent = [0.0]
    original = refmodes.spec_on

    def timed(*a: Any, **kw: Any) -> Any:
        t = time.perf_counter()
        try:
            return original(*a, **kw)
        finally:
            spent[0] += time.perf_counter() - t

    refmodes.spec_on = timed  # type: ignore[assignment]
    try:
        t0 = time.perf_counter()
        for i in range(0, len(recs), batch):
            engine.process(recs[i : i + batch])
        return time.perf_counter() - t0, spent[0]
    finally:
        refmodes.spec_on = original  # type: ignore[assignment]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.refmodes", description=__doc__)
    ap.add_argument("--json", action="store_true", help="end with one JSON line")
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--warmup-events", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=20261126)
    ap.add_argument("--resamples", type=int, default=1000, help="calibration.resamples")
    args = ap.parse_args(argv)
    logging.getLogger("driftd").setLevel(logging.ERROR)
    modes: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="driftd-refmodes-") as d:
        tmp = Path(d)
        ref = tmp / "reference.jsonl"
        ref.write_bytes(b"\n".join(generate(20_000, version="v0", seed=args.seed + 7)) + b"\n")
        r = args.resamples
        boot = write_config(tmp, "boot", {"type": "profile", "path": str(tmp / "p.json")}, r)
        argv_pb = ["--log-level", "error", "profile", "build", "-c", str(boot)]
        argv_pb += ["--monitor", "credit", "--input", str(ref), "--out", str(tmp / "p.json")]
        if driftd_cli(argv_pb) != 0:
            raise SystemExit("driftd profile build failed")
        configs = {
            "profile": boot,
            "warmup": write_config(
                tmp, "warmup", {"type": "warmup", "events": args.warmup_events}, r
            ),
            "version": write_config(tmp, "version", {"type": "version", "version": "stable"}, r),
        }
        lines = stream(args.events, args.seed)
        for name, cfg in configs.items():
            run(cfg, lines[:5000], args.batch)  # warm-up pass (kernels)
            wall, cal = run(cfg, lines, args.batch)
            modes[name] = {
                "seconds": round(wall, 2),
                "events_per_s": round(len(lines) / wall),
            }
            if name == "warmup":
                modes[name]["reference_s"] = round(cal, 2)
                modes[name]["events_per_s_without_references"] = round(
                    len(lines) / max(wall - cal, 1e-9)
                )
    result = {"benchmark": "refmodes", "events": len(lines), "modes": modes}
    for name, m in modes.items():
        extra = (
            f" (references {m['reference_s']} s; "
            f"{m['events_per_s_without_references']:,} events/s without)"
            if "reference_s" in m
            else ""
        )
        print(f"{name:8s} {m['seconds']:7.2f} s  {m['events_per_s']:>8,} events/s{extra}")
    if args.json:
        print(json.dumps(result, separators=(",", ":")))
    return result


if __name__ == "__main__":
    main()

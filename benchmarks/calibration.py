"""Threshold-calibration benchmark: a 20-feature monitor calibrated for its window and step.

    python -m benchmarks.calibration [--json] [--features 20] [--window-events 5000]
        [--step-events 1000] [--reference 100000] [--resamples 1000] [--workers N]

Workload (seeded, generated here, no network): ``features`` numeric reference profiles of
``reference`` values each, built as ``driftd profile build`` does (``build_numeric``), cycling
through six shapes: normal, log-normal, bimodal mixture, Poisson (ties), Student-t with 3
degrees of freedom (heavy tails), uniform. The tests are the ones auto selection picks
(``wasserstein_norm`` for references above 1000 values); the whole monitor is calibrated with
:func:`driftd.stats.calibrate.calibrate_monitor` for a false-alert target of 1 per million events
(the default), after a warm-up that compiles or loads the kernels. The same monitor is then
calibrated with ``psi`` and with ``js`` on every feature, for comparison.

With ``--json`` the last line printed is one JSON object with at least ``calibration_s`` (wall
time of the auto-selected calibration; target < 10), ``features``, ``window_events`` and a
``thresholds`` summary.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from driftd.kernels import warm_up
from driftd.reference.features import NumericReference, build_numeric
from driftd.stats import auto_select, get_test
from driftd.stats.calibrate import Calibration, alert_budget, calibrate_feature, calibrate_monitor

F64 = npt.NDArray[np.float64]
TARGET_S = 10.0

SHAPES: dict[str, Callable[[np.random.Generator, int], F64]] = {
    "normal": lambda r, n: r.normal(50.0, 10.0, n),
    "lognormal": lambda r, n: r.lognormal(3.0, 0.8, n),
    "bimodal": lambda r, n: np.where(r.random(n) < 0.3, r.normal(-2.0, 0.5, n), r.normal(1, 1, n)),
    "poisson": lambda r, n: r.poisson(4.0, n).astype(np.float64),
    "student_t3": lambda r, n: r.standard_t(3, n),
    "uniform": lambda r, n: r.uniform(0.0, 100.0, n),
}


def make_references(features: int, rows: int, seed: int) -> dict[str, NumericReference]:
    rng = np.random.default_rng(seed)
    names = list(SHAPES)
    refs: dict[str, NumericReference] = {}
    for j in range(features):
        shape = names[j % len(names)]
        refs[f"f{j:02d}_{shape}"] = build_numeric(SHAPES[shape](rng, rows), seed=seed + j)
    return refs


def summary(cals: dict[str, Calibration]) -> dict[str, Any]:
    thr = np.array([c.threshold for c in cals.values()])
    return {
        "min": float(thr.min()),
        "median": float(np.median(thr)),
        "max": float(thr.max()),
        "methods": sorted({c.method for c in cals.values()}),
        "by_feature": {name: round(c.threshold, 6) for name, c in cals.items()},
    }


def timed_monitor(
    refs: dict[str, NumericReference], test_of: Callable[[NumericReference], str], args: Any
) -> tuple[float, dict[str, Calibration]]:
    features = {name: (get_test(test_of(ref)), ref) for name, ref in refs.items()}
    t0 = time.perf_counter()
    cals = calibrate_monitor(
        features,
        args.window_events,
        args.step_events,
        args.target,
        seed=args.seed,
        resamples=args.resamples,
        workers=args.workers,
    )
    return time.perf_counter() - t0, cals


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.calibration", description=__doc__)
    ap.add_argument("--json", action="store_true", help="end with one JSON line")
    ap.add_argument("--features", type=int, default=20)
    ap.add_argument("--window-events", type=int, default=5000)
    ap.add_argument("--step-events", type=int, default=1000)
    ap.add_argument("--reference", type=int, default=100_000, help="reference values per feature")
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--target", type=float, default=1.0, help="false alerts per million events")
    ap.add_argument("--workers", type=int, default=None, help="default: one per CPU")
    ap.add_argument("--seed", type=int, default=20261126)
    args = ap.parse_args(argv)

    compile_s = warm_up()
    refs = make_references(args.features, args.reference, args.seed)
    # calibration kernels are in warm_up(); one tiny calibration also compiles the glue paths
    first = next(iter(refs.values()))
    calibrate_feature(get_test("wasserstein_norm"), first, 100, 0.01, resamples=50)

    auto_s, auto = timed_monitor(refs, lambda ref: auto_select("numeric", ref), args)
    psi_s, psi = timed_monitor(refs, lambda ref: "psi", args)
    js_s, js = timed_monitor(refs, lambda ref: "js", args)
    budget = alert_budget(args.target, args.step_events, args.features)
    tests = sorted({c.test for c in auto.values()})
    workers = args.workers or os.cpu_count() or 1

    print(f"warm-up (compile or cache load): {compile_s:.2f} s")
    print(
        f"monitor: {args.features} numeric features x {args.reference} reference values, "
        f"window {args.window_events} events, step {args.step_events}, "
        f"{args.resamples} resamples, {workers} worker(s)"
    )
    print(
        f"budget: {args.target:g} false alerts / 1e6 events -> "
        f"{budget.evaluations_per_million_events:g} evaluations / 1e6 events -> "
        f"alpha {budget.alpha:.3g} per feature and evaluation"
    )
    for label, secs, cals in (
        (", ".join(tests), auto_s, auto),
        ("psi", psi_s, psi),
        ("js", js_s, js),
    ):
        s = summary(cals)
        print(
            f"  {label:18s} {secs:6.2f} s   thresholds min {s['min']:.4g}  "
            f"median {s['median']:.4g}  max {s['max']:.4g}"
        )
    print("  per feature (auto-selected test):")
    for name, c in auto.items():
        null = c.null
        print(f"    {name:16s} {c.describe()}  null max {null.get('max') or float('nan'):.4g}")
    verdict = "ok" if auto_s < TARGET_S else "OVER TARGET"
    print(f"calibration of the auto-selected tests: {auto_s:.2f} s ({verdict}: target < 10 s)")

    result: dict[str, Any] = {
        "benchmark": "calibration",
        "calibration_s": round(auto_s, 3),
        "target_s": TARGET_S,
        "features": args.features,
        "window_events": args.window_events,
        "step_events": args.step_events,
        "reference_values": args.reference,
        "resamples": args.resamples,
        "workers": workers,
        "false_alerts_per_million_events": args.target,
        "alpha": budget.alpha,
        "tests": tests,
        "thresholds": summary(auto),
        "psi": {"calibration_s": round(psi_s, 3), "thresholds": summary(psi)},
        "js": {"calibration_s": round(js_s, 3), "thresholds": summary(js)},
        "warm_up_s": round(compile_s, 3),
    }
    if args.json:
        print(json.dumps(result, separators=(",", ":")))
    return result


if __name__ == "__main__":
    main()

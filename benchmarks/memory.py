"""Memory: resident set size of the engine holding many full windows.

    python -m benchmarks.memory [--json] [--monitors 100] [--features 20] [--window-events 5000]
                                [--reference-events 5000]

An in-process :class:`driftd.runtime.pipeline.Pipeline` (the object ``driftd run`` and
``driftd replay`` drive) with ``--monitors`` monitors, one per model, each over ``--features``
numeric features plus a numeric score, a sliding window of ``--window-events`` events (step
1,000) and its own reference profile of ``--reference-events`` events (a compiled profile
written to one file per monitor, so each monitor loads its own copy, as distinct models
would). Seeded synthetic events (written model by model to a JSONL file by a child process,
so that generating them costs the measured process nothing) are read in micro-batches by the
file source ``driftd replay`` uses and fed through ``Pipeline.process`` — decoded, windowed
and evaluated at every step — until every window is full. RSS is read from
``/proc/self/status`` (after ``gc.collect()``), with what the interpreter, NumPy, numba and the
compiled kernels take before any monitor exists (``baseline_rss_mb``), what loading the
monitors and their references adds, and what the full windows add; ``peak_rss_mb`` is the
process's high-water mark (``VmHWM``). Target: peak RSS ≤ 300 MB (issue 15).

With ``--json`` the last line is one JSON object with ``rss_mb``, ``monitors``, ``features``,
``window_events`` and the breakdown.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks import _kafka as K

TARGET_MB = 300.0


def rss() -> float:
    gc.collect()
    return K.rss_mb(os.getpid())


def write_events(path: Path, monitors: int, per_monitor: int) -> None:
    """The workload, model by model, as JSONL (run in a child process: generating it takes
    Python objects by the million, whose freed memory would stay with the measured process)."""
    with open(path, "wb") as fh:
        for i in range(monitors):
            fh.write(b"\n".join(K.make_events(per_monitor, model=i, seed=7)) + b"\n")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--monitors", type=int, default=100)
    ap.add_argument("--features", type=int, default=20, choices=range(1, len(K.NUMERIC) + 1))
    ap.add_argument("--window-events", type=int, default=5000)
    ap.add_argument("--step", type=int, default=1000)
    ap.add_argument("--reference-events", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=5000, help="micro-batch size")
    ap.add_argument("--write-events", type=Path, help=argparse.SUPPRESS)  # the child's job
    args = ap.parse_args(argv)
    if args.write_events is not None:
        write_events(args.write_events, args.monitors, args.window_events)
        return {}

    t_start = time.perf_counter()
    quiet = logging.getLogger("driftd")
    previous_level = quiet.level
    quiet.setLevel(logging.ERROR)  # (false) alerts are not the point
    try:
        return _run(args, t_start)
    finally:
        quiet.setLevel(previous_level)  # in-process callers (the smoke test) get it back


def _run(args: argparse.Namespace, t_start: float) -> dict[str, Any]:
    from driftd import kernels
    from driftd.config import validate_config
    from driftd.runtime.pipeline import Pipeline
    from driftd.sources.file import FileSource

    kernels.warm_up()
    baseline = rss()

    work = Path(tempfile.mkdtemp(prefix="driftd-bench-memory-"))
    try:
        names = K.NUMERIC[: args.features]
        feats = {n: {"kind": "numeric"} for n in names}
        window = {"type": "sliding", "events": args.window_events, "step": args.step}
        # One reference profile through the user's path (`driftd profile build`, which also
        # stores calibrated thresholds when driftd calibrates), copied once per monitor.
        ref = work / "reference.jsonl"
        with open(ref, "wb") as fh:
            for e in K.make_events(args.reference_events, model=0, seed=999):
                fh.write(e + b"\n")
        proto = work / "profile.json"
        boot = {
            "monitors": [
                K.monitor_config_dict("m0", "bench-0", proto, window=window, features=feats)
            ],
            "state": {"dir": str(work / "state")},
        }
        (work / "boot.yaml").write_text(yaml.safe_dump(boot))
        subprocess.run(
            [
                sys.executable,
                "-m",
                "driftd",
                "--log-level",
                "warning",
                "profile",
                "build",
                "-c",
                str(work / "boot.yaml"),
                "--monitor",
                "m0",
                "--input",
                str(ref),
                "--out",
                str(proto),
            ],
            check=True,
            cwd=K.REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        monitors = []
        for i in range(args.monitors):
            path = work / f"profile-{i}.json"
            shutil.copyfile(proto, path)
            monitors.append(
                K.monitor_config_dict(f"m{i}", K.model_name(i), path, window=window, features=feats)
            )
        cfg = validate_config({"monitors": monitors, "state": {"dir": str(work / "state")}})
        engine = Pipeline(cfg)
        loaded = rss()

        events = work / "events.jsonl"
        subprocess.run(
            [sys.executable, "-m", "benchmarks.memory", "--write-events", str(events),
             "--monitors", str(args.monitors), "--window-events", str(args.window_events)],
            check=True,
            cwd=K.REPO_ROOT,
        )  # fmt: skip
        fed = 0
        t0 = time.perf_counter()
        source = FileSource([str(events)])  # what `driftd replay` reads: batches, no objects
        source.open()
        while not source.exhausted:
            batch = source.poll(args.batch)
            if len(batch):
                engine.process(batch)
                fed += len(batch)
        source.close()
        feed_s = time.perf_counter() - t0
        full = sum(
            1
            for st in engine.stages
            for vs in st.versions.values()
            if vs.window.held == args.window_events
        )
        final = rss()
        anon, file_backed = K.rss_split_mb(os.getpid())
        peak = K.self_peak_rss_mb()
        window_bytes = sum(
            vs.window.nbytes
            if hasattr(vs.window, "nbytes")
            else sum(a.nbytes for a in vs.window.snapshot().values())
            for st in engine.stages
            for vs in st.versions.values()
        )
        ref_bytes = 0
        for st in engine.stages:
            prof = st.spec.profile
            for f in [*prof.features.values(), prof.prediction]:
                sample = getattr(f, "sample", None)
                if sample is not None:
                    ref_bytes += sample.nbytes
        summary = engine.summary()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    result: dict[str, Any] = {
        "benchmark": "memory",
        "rss_mb": round(final, 1),
        "monitors": args.monitors,
        "features": args.features,
        "window_events": args.window_events,
        "reference_events": args.reference_events,
        "numeric_columns": args.features + 1,
        "windows_full": full,
        "events_fed": fed,
        "accepted": summary["accepted"],
        "rss_anon_mb": round(anon, 1),
        "rss_file_mb": round(file_backed, 1),
        "baseline_rss_mb": round(baseline, 1),
        "monitors_loaded_rss_mb": round(loaded, 1),
        "peak_rss_mb": round(peak, 1),
        "window_arrays_mb": round(window_bytes / 2**20, 1),
        "reference_samples_mb": round(ref_bytes / 2**20, 1),
        "feed_events_per_s": round(fed / feed_s),
        "target_mb": TARGET_MB,
        "target_met": max(final, peak) <= TARGET_MB,
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    print(
        f"memory: {args.monitors} monitors x {args.features} numeric features (+ score), "
        f"{args.window_events}-event windows, {args.reference_events}-event references"
    )
    print(f"  interpreter + numpy + numba + compiled kernels : {baseline:7.1f} MB")
    print(
        f"  + {args.monitors} monitors with their references   : {loaded:7.1f} MB"
        f"  (raw reference samples {result['reference_samples_mb']} MB)"
    )
    print(
        f"  + {full} full windows ({fed:,} events fed)     : {final:7.1f} MB"
        f"  (ring buffers {result['window_arrays_mb']} MB; peak {peak:.1f} MB)"
    )
    print(
        f"  of which anonymous (heap, arrays) {anon:.1f} MB, file-backed (shared libraries:"
        f" LLVM, BLAS, …) {file_backed:.1f} MB"
    )
    verdict = "ok" if result["target_met"] else "OVER TARGET"
    print(f"RSS {final:.1f} MB, peak {peak:.1f} MB ({verdict}: target peak <= {TARGET_MB:.0f} MB)")
    if args.json:
        print(json.dumps(result, separators=(",", ":")), flush=True)
    return result


if __name__ == "__main__":
    main()

"""Where the time goes: the replay path's stages, in µs per event, on the e2e workload.

    python -m benchmarks.breakdown [--json] [--events 1000000] [--work DIR]

Writes the workload of ``benchmarks.e2e`` (``--write-replay``: 4 models, 23 features and a
score per event, sliding 5,000-event windows, a step every 1,000 events, a 20,000-event
reference profile) unless ``--work`` already holds it, then replays it in this process exactly
as ``driftd replay`` does, with timers around each stage of the consuming thread:

* ``read``: the file source hands out batches of raw lines (``FileSource.poll``);
* ``decode``: the compiled scan of the batch into columns (``BatchDecoder.decode``);
* ``route``: the rest of the partition stage (rejections, panes per monitor and version);
* ``fold``: the monitor stage — window appends, a frozen copy of each window at a step;
* ``wait``: the consuming thread waiting for a step still being evaluated;
* ``conclude`` and ``other``: policy and output lines, and the loop itself;

and ``evaluate``: the CPU time of the other threads (the steps' tests, on the evaluation
thread and its helper), which overlaps the consuming thread. ``events_per_s`` is the
in-process rate (start-up excluded).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

STAGES = ("read", "decode", "route", "fold", "wait", "conclude")


def _timed(owner: Any, name: str, acc: dict[str, float], key: str) -> Callable[[], None]:
    """Time ``owner.name`` into ``acc[key]``; returns the undo."""
    orig: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return orig(*args, **kwargs)
        finally:
            acc[key] += time.perf_counter() - t0

    setattr(owner, name, wrapper)
    return lambda: setattr(owner, name, orig)


def measure(work: Path) -> dict[str, Any]:
    from driftd.config import load_config
    from driftd.ingest.columns import BatchDecoder
    from driftd.monitor import deferred
    from driftd.runtime.pipeline import Pipeline
    from driftd.runtime.replay import replay_lines
    from driftd.sources.file import FileSource

    acc = dict.fromkeys((*STAGES, "route_all", "evaluate"), 0.0)
    undo = [
        _timed(FileSource, "poll", acc, "read"),
        _timed(BatchDecoder, "decode", acc, "decode"),
        _timed(Pipeline, "route", acc, "route_all"),
        _timed(Pipeline, "_fold", acc, "fold"),
    ]
    conclude = deferred.Pending.conclude

    def concluded(self: Any) -> Any:
        t0 = time.perf_counter()
        self.future.result()
        t1 = time.perf_counter()
        out = conclude(self)
        acc["wait"] += t1 - t0
        acc["conclude"] += time.perf_counter() - t1
        return out

    deferred.Pending.conclude = concluded  # type: ignore[method-assign]
    undo.append(lambda: setattr(deferred.Pending, "conclude", conclude))
    cfg = load_config(work / "replay.yaml", environ={})
    cpu0, mine0 = time.process_time(), time.thread_time()
    t0 = time.perf_counter()
    try:
        n = sum(1 for _ in replay_lines(cfg, [str(work / "events.jsonl")]))
    finally:
        for u in undo:
            u()
    total = time.perf_counter() - t0
    cpu, mine = time.process_time() - cpu0, time.thread_time() - mine0
    acc["evaluate"] = cpu - mine  # CPU of the other threads: the steps' tests
    acc["route"] = acc.pop("route_all") - acc["decode"]
    with open(work / "events.jsonl", "rb") as fh:
        events = sum(1 for _ in fh)
    per = {k: round(acc[k] / events * 1e6, 2) for k in (*STAGES, "evaluate")}
    per["other"] = round(total / events * 1e6 - sum(per[k] for k in STAGES), 2)
    return {
        "benchmark": "breakdown",
        "cores": len(os.sched_getaffinity(0)),
        "events": events,
        "output_lines": n,
        "seconds": round(total, 3),
        "events_per_s": round(events / total),
        "cpu_seconds": round(cpu, 3),
        "consuming_thread_cpu_seconds": round(mine, 3),
        "us_per_event": per,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON line at the end")
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--work", type=Path, help="the workload directory (written if empty)")
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="driftd-breakdown-"))
    if not (work / "events.jsonl").exists():
        from benchmarks.e2e import write_replay

        write_replay(work, args.events, 4)
    out = measure(work)
    if not args.json:
        print(f"{out['events_per_s']:,} events/s in process ({out['cores']} cores)")
        for k, v in out["us_per_event"].items():
            print(f"  {k:<10} {v:6.2f} µs/event")
    print(json.dumps(out), file=sys.stdout)
    return out


if __name__ == "__main__":
    main()

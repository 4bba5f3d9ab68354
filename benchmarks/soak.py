"""Soak: a steady event rate for minutes; driftd's memory and consumer lag over time.

    python -m benchmarks.soak [--minutes 10] [--rate 20000] [--json] [--bootstrap HOST:PORT]
                              [--sample-s 5] [--workers 1]

Not for CI. Against the project's real broker (a private one unless ``--bootstrap``),
rate-limited producer processes (kafka-python) write ``--rate`` events/s in total to a
4-partition topic for ``--minutes`` minutes: the e2e workload (model ``bench-i`` in partition
``i``, 20 numeric + 3 categorical features and a score, no drift), cycling through a
pre-generated pool of 50,000 events per partition. One ``driftd run`` (default window and
checkpoint interval) consumes it. Every ``--sample-s`` seconds driftd's RSS (``/proc``, the
whole process tree with ``--workers``) and its consumer lag (``driftd_consumer_lag`` summed
over partitions, from ``/metrics``) are sampled.

Reported: RSS after the first minute (warm) and at the end, the growth between them (also per
hour), the peak RSS, the maximum and the final lag, the achieved produce and consume rates.
With ``--json`` the last line is one JSON object with those figures and the samples.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks import _kafka as K

POOL = 50_000


def producer_main(
    bootstrap: str,
    topic: str,
    partitions: list[int],
    rate: float,
    duration_s: float,
    start_at: Any,
    sent: Any,
    elapsed: Any,
    ready: Any,
    pool: int = POOL,
) -> None:
    """Send its partitions' pools round-robin, cyclically, on schedule, for ``duration_s``."""
    pools = {p: K.make_events(pool, model=p, seed=5, with_ts=False) for p in partitions}
    keys = {p: K.model_name(p).encode() for p in partitions}
    producer = K.fast_producer(bootstrap, linger_ms=10)
    ready.set()
    while start_at.value == 0.0:
        time.sleep(0.005)
    wait0 = start_at.value - time.monotonic()
    if wait0 > 0:
        time.sleep(wait0)
    total = int(rate * duration_s)
    interval = 1.0 / rate
    mono = time.monotonic
    t0 = mono()
    i = 0
    n = len(partitions)
    while i < total:
        due = min(total, int((mono() - t0) / interval) + 1)
        while i < due:
            p = partitions[i % n]
            producer.send(topic, value=pools[p][(i // n) % pool], key=keys[p], partition=p)
            i += 1
        sent.value = i
        wait = t0 + i * interval - mono()
        if wait > 0:
            time.sleep(wait)
    elapsed.value = mono() - t0
    producer.flush(60)
    producer.close(10)
    sent.value = i


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=20_000.0, help="events/s, all producers")
    ap.add_argument("--bootstrap")
    ap.add_argument("--sample-s", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--source", choices=["kafka", "confluent"], default="kafka")
    ap.add_argument("--producers", type=int, default=2)
    ap.add_argument("--pool", type=int, default=POOL, help="distinct events per partition")
    args = ap.parse_args(argv)

    from benchmarks.e2e import build_profile_cli, warm_kernels

    partitions = 4
    duration = args.minutes * 60.0
    work = Path(tempfile.mkdtemp(prefix="driftd-bench-soak-"))
    print(f"soak: {args.rate:,.0f} events/s for {args.minutes:g} min, work dir {work}", flush=True)
    warm_kernels()
    profile = build_profile_cli(work)
    samples: list[dict[str, float]] = []
    with K.broker(args.bootstrap) as bootstrap:
        topic = K.create_topic(bootstrap, f"bench-soak-{uuid.uuid4().hex[:8]}", partitions)
        cfg = K.write_config(
            work / "driftd.yaml",
            bootstrap=bootstrap,
            topic=topic,
            group=f"soak-{uuid.uuid4().hex[:8]}",
            models=partitions,
            profile=profile,
            state_dir=work / "state",
            source=args.source,
        )
        d = K.DriftdProcess(cfg, work / "driftd.log", workers=args.workers)
        try:
            d.wait_ready()
            ctx = mp.get_context("spawn")
            groups = [list(range(partitions))[i :: args.producers] for i in range(args.producers)]
            start = ctx.Value("d", 0.0)
            sents = [ctx.Value("q", 0) for _ in groups]
            elapsed = [ctx.Value("d", 0.0) for _ in groups]
            readies = [ctx.Event() for _ in groups]
            procs = [
                ctx.Process(
                    target=producer_main,
                    args=(
                        bootstrap,
                        topic,
                        g,
                        args.rate * len(g) / partitions,
                        duration,
                        start,
                        s,
                        e,
                        r,
                        args.pool,
                    ),
                )
                for g, s, e, r in zip(groups, sents, elapsed, readies, strict=True)
            ]
            for p in procs:
                p.start()
            for r in readies:
                if not r.wait(600):
                    raise RuntimeError("a producer did not get ready")
            t0 = time.monotonic() + 0.5
            start.value = t0
            next_print = t0 + 30.0
            while any(p.is_alive() for p in procs):
                time.sleep(max(0.0, args.sample_s - (time.monotonic() - t0) % args.sample_s))
                if not d.alive():
                    raise RuntimeError(f"driftd exited with {d.proc.returncode}; see {d.log}")
                text = d.metrics()
                s = {
                    "t_s": round(time.monotonic() - t0, 1),
                    "rss_mb": round(d.rss_mb(), 1),
                    "lag": K.metric_sum(text, "driftd_consumer_lag"),
                    "counted": K.metric_sum(text, "driftd_events_total"),
                    "produced": float(sum(x.value for x in sents)),
                }
                samples.append(s)
                if time.monotonic() >= next_print:
                    next_print += 30.0
                    print(
                        f"  t={s['t_s']:6.0f} s  RSS {s['rss_mb']:6.1f} MB  lag {s['lag']:>9,.0f}"
                        f"  produced {s['produced']:>11,.0f}  counted {s['counted']:>11,.0f}",
                        flush=True,
                    )
            for p in procs:
                p.join()
            produced = int(sum(x.value for x in sents))
            produce_s = max(x.value for x in elapsed)
            K.wait_counted(d, produced, timeout_s=max(300.0, duration))
            hwm = d.hwm_mb()
        finally:
            rc = d.stop()

    warm = [s for s in samples if s["t_s"] >= 60.0] or samples
    first = statistics.median(s["rss_mb"] for s in warm[: max(1, int(60 / args.sample_s))])
    last = statistics.median(s["rss_mb"] for s in warm[-max(1, int(60 / args.sample_s)) :])
    span_h = max(1e-9, (warm[-1]["t_s"] - warm[0]["t_s"]) / 3600.0)
    lags = [s["lag"] for s in samples]
    result: dict[str, Any] = {
        "benchmark": "soak",
        "minutes": args.minutes,
        "rate_target_events_per_s": args.rate,
        "rate_events_per_s": round(produced / produce_s),
        "events": produced,
        "rss_start_mb": round(first, 1),
        "rss_end_mb": round(last, 1),
        "rss_growth_mb": round(last - first, 1),
        "rss_growth_mb_per_h": round((last - first) / span_h, 1),
        "peak_rss_mb": round(hwm, 1),
        "max_lag": max(lags) if lags else None,
        "final_lag": lags[-1] if lags else None,
        "workers": args.workers,
        "driftd_exit_code": rc,
        "samples": samples,
        "machine": K.machine(),
    }
    print(
        f"soak: {produced:,} events at {result['rate_events_per_s']:,}/s; driftd RSS "
        f"{first:.1f} MB after the first minute -> {last:.1f} MB at the end "
        f"(growth {last - first:+.1f} MB, {result['rss_growth_mb_per_h']:+.1f} MB/h; peak "
        f"{hwm:.1f} MB); consumer lag max {result['max_lag']:,.0f}, final "
        f"{result['final_lag']:,.0f}; exit code {rc}"
    )
    if args.json:
        print(json.dumps(result, separators=(",", ":")), flush=True)
    return result


if __name__ == "__main__":
    main()

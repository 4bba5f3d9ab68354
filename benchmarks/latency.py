"""Alert latency: last event of a drifted window produced → signed webhook received.

    python -m benchmarks.latency [--json] [--rate 50000] [--duration 30] [--bootstrap HOST:PORT]
                                 [--workers 1] [--producers 2] [--source kafka|confluent]
                                 [--producer-client kafka|confluent]

Against the project's real broker (a private one unless ``--bootstrap``), ``driftd run``
consumes a 4-partition topic of 4 models (``bench-0`` … ``bench-3``, interleaved), every event
keyed by its ``event_id`` so that each model is spread over every partition — the e2e
workload's 20 numeric + 3 categorical features and score — while rate-limited producer
processes (kafka-python, or confluent-kafka with ``--producer-client confluent``; 5 ms linger,
``acks=1``; each owns some partitions and sends their
events of the global schedule, with Kafka's default partitioner computed up front) write
``--rate`` events/s in total for ``--duration`` seconds. Each model's stream repeats drift
episodes: 15,000 clean events, then 10,000 whose features and score are shifted, then clean
again. The monitors (sliding window 5,000, step 1,000; ``consecutive: 1``,
``resolve_consecutive: 1``, ``cooldown_s: 0``) therefore raise ``drift.detected`` and
``drift.resolved`` over and over, and POST them to a local
:class:`driftd.demo.sink.WebhookSink` (signatures verified).

A webhook names the window it was decided on: per partition, the offsets of its first and
last row (``window.partitions``). The producers record, on the same monotonic clock, when
they handed each record to the Kafka client (its offset is its index in the partition: each
partition has one producer). Latency = webhook arrival − the send time of the newest event in
the window, so it covers producer batching, the broker, consumption, decoding, the merge of
the partitions, the evaluation, the durable outbox and the HTTP delivery.
Reported: p50 / p99 / max over every alert, for ``drift.detected`` alone too; the achieved
produce rate; driftd's peak consumer lag. Target: p99 < 2 s at 50,000 events/s.

With ``--json`` the last line is one JSON object with ``latency_p50_s``, ``latency_p99_s``,
``alerts`` and ``rate_events_per_s``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from kafka.partitioner.default import murmur2

from benchmarks import _kafka as K

TARGET_P99_S = 2.0
STEP = 1000
CLEAN, DRIFTED = 15_000, 10_000
SHIFT = 1.0
SECRET = b"driftd-bench-latency"


def episode_events(
    model: int, n: int, seed: int, clean: int = CLEAN, drifted: int = DRIFTED
) -> list[bytes]:
    """``n`` events of ``model`` in drift episodes (``clean`` events, ``drifted`` shifted ones,
    …), without ``ts`` (event time = the Kafka record timestamp, as when producers omit it)."""
    out: list[bytes] = []
    start = 0
    while len(out) < n:
        for count, shift in ((clean, 0.0), (drifted, SHIFT)):
            take = min(count, n - len(out))
            if take <= 0:
                break
            out += K.make_events(
                take, model=model, seed=seed, start=start, shift=shift, with_ts=False
            )
            start += take
    return out


def partition_of(event_id: bytes, partitions: int) -> int:
    """Kafka's default partitioner (murmur2 of the key), as the producer would pick."""
    return (murmur2(event_id) & 0x7FFFFFFF) % partitions


def schedule(
    models: int, n: int, shape: tuple[int, int, int], partitions: int, mine: list[int]
) -> list[tuple[int, int, bytes, bytes]]:
    """The global schedule (models interleaved round-robin; slot ``i`` is sent at ``i / rate``)
    restricted to the events of the partitions in ``mine``: (slot, partition, key, value)."""
    _, clean, drifted = shape
    per_model = n // models
    out: list[tuple[int, int, bytes, bytes]] = []
    for m in range(models):
        for k, v in enumerate(episode_events(m, per_model, 11, clean, drifted)):
            eid = f"{K.model_name(m)}-v1-11-{k}".encode()
            p = partition_of(eid, partitions)
            if p in mine:
                out.append((k * models + m, p, eid, v))
    out.sort()
    return out


def _producer(
    client: str, bootstrap: str, topic: str
) -> tuple[Callable[[bytes, bytes, int], None], Callable[[], None]]:
    """(send, finish) of one producer: kafka-python, or confluent-kafka (librdkafka: the same
    5 ms linger and ``acks=1``, a fraction of the CPU per record)."""
    if client == "kafka":
        kp = K.fast_producer(bootstrap, linger_ms=5)  # latency run: small linger

        def finish_kp() -> None:
            kp.flush(60)
            kp.close(10)

        return (lambda v, k, p: kp.send(topic, value=v, key=k, partition=p)), finish_kp
    from confluent_kafka import Producer

    cp = Producer({
        "bootstrap.servers": bootstrap, "client.id": "driftd-bench-producer", "acks": 1,
        "linger.ms": 5, "batch.size": 1 << 20, "queue.buffering.max.messages": 2_000_000,
    })  # fmt: skip
    sent = [0]

    def send_cp(value: bytes, key: bytes, p: int) -> None:
        cp.produce(topic, value=value, key=key, partition=p)
        sent[0] += 1
        if sent[0] % 1000 == 0:
            cp.poll(0)  # serve librdkafka's delivery reports

    def finish_cp() -> None:
        if cp.flush(60) > 0:
            raise RuntimeError("confluent producer: records left unsent after 60 s")

    return send_cp, finish_cp


def producer_main(
    bootstrap: str,
    topic: str,
    partitions: list[int],
    rate: float,
    duration_s: float,
    start_at: Any,
    out_path: str,
    ready: Any,
    shape: tuple[int, int, int] = (STEP, CLEAN, DRIFTED),
    n_partitions: int = 4,
    client: str = "kafka",
) -> None:
    """One producer process: pre-generate its partitions' share of the global schedule, signal
    ``ready``, wait for the shared start time (``start_at.value``, monotonic clock, 0 until
    set), then send on schedule. Writes every record's send time to ``out_path``."""
    total = int(rate * duration_s)
    events = schedule(n_partitions, total, shape, n_partitions, partitions)
    send, finish = _producer(client, bootstrap, topic)
    ready.set()
    while start_at.value == 0.0:
        time.sleep(0.005)
    sent_at: dict[int, list[float]] = {p: [] for p in partitions}
    interval = 1.0 / rate
    wait0 = start_at.value - time.monotonic()
    if wait0 > 0:
        time.sleep(wait0)
    t0 = time.monotonic()
    late_max = 0.0
    i = 0
    mono = time.monotonic
    n = len(events)
    while i < n:
        # send everything that is due, then sleep until the next event is
        due = (mono() - t0) / interval
        while i < n and events[i][0] <= due:
            _, p, key, value = events[i]
            send(value, key, p)
            sent_at[p].append(mono())  # its offset: one producer per partition
            i += 1
        if i < n:
            lag = mono() - (t0 + events[i - 1][0] * interval) if i else 0.0
            late_max = max(late_max, lag)
            wait = t0 + events[i][0] * interval - mono()
            if wait > 0:
                time.sleep(wait)
    elapsed = mono() - t0
    finish()
    with open(out_path, "w") as fh:
        json.dump(
            {
                "sent": n,
                "elapsed_s": elapsed,
                "late_max_s": late_max,
                "sent_at": {str(p): d for p, d in sent_at.items()},
            },
            fh,
        )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--rate", type=float, default=50_000.0, help="events/s, all producers")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of producing")
    ap.add_argument("--bootstrap")
    ap.add_argument("--workers", type=int, default=1, help="driftd run --workers")
    ap.add_argument("--source", choices=["kafka", "confluent"], default="kafka")
    ap.add_argument("--producers", type=int, default=2, help="producer processes")
    ap.add_argument(
        "--producer-client",
        choices=["kafka", "confluent"],
        default="kafka",
        help="the producers' client (confluent: librdkafka, less of the shared CPU)",
    )
    ap.add_argument("--window-events", type=int, default=5000)
    ap.add_argument("--step", type=int, default=STEP)
    ap.add_argument("--clean-events", type=int, default=CLEAN, help="per episode and model")
    ap.add_argument("--drifted-events", type=int, default=DRIFTED, help="per episode and model")
    args = ap.parse_args(argv)

    from driftd.demo.sink import WebhookSink

    partitions = 4
    work = Path(tempfile.mkdtemp(prefix="driftd-bench-latency-"))
    print(f"latency: {args.rate:,.0f} events/s for {args.duration:.0f} s, work dir {work}")
    from benchmarks.e2e import build_profile_cli, warm_kernels

    warm_kernels()
    window = {"type": "sliding", "events": args.window_events, "step": args.step}
    profile = build_profile_cli(work, window)
    lags: list[float] = []
    rss: list[float] = []
    with K.broker(args.bootstrap) as bootstrap, WebhookSink(SECRET) as sink:
        topic = K.create_topic(bootstrap, f"bench-latency-{uuid.uuid4().hex[:8]}", partitions)
        cfg = K.write_config(
            work / "driftd.yaml",
            bootstrap=bootstrap,
            topic=topic,
            group=f"latency-{uuid.uuid4().hex[:8]}",
            models=partitions,
            profile=profile,
            state_dir=work / "state",
            source=args.source,
            webhook_url=sink.url,
            window=window,
            policy={
                "min_events": min(1000, args.window_events),
                "consecutive": 1,
                "resolve_consecutive": 1,
                "cooldown_s": 0,
            },
        )
        d = K.DriftdProcess(
            cfg,
            work / "driftd.log",
            workers=args.workers,
            env={"DRIFTD_BENCH_SECRET": SECRET.decode()},
        )
        try:
            d.wait_ready()
            # the group is formed and every partition assigned once lag gauges exist for all
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if d.metrics().count("driftd_consumer_lag{") >= partitions:
                    break
                time.sleep(0.2)
            ctx = mp.get_context("spawn")
            groups = [list(range(partitions))[i :: args.producers] for i in range(args.producers)]
            outs = [work / f"producer-{i}.json" for i in range(len(groups))]
            readies = [ctx.Event() for _ in groups]
            shared_start = ctx.Value("d", 0.0)  # set once every producer is ready
            procs = [
                ctx.Process(
                    target=producer_main,
                    args=(
                        bootstrap,
                        topic,
                        g,
                        args.rate,
                        args.duration,
                        shared_start,
                        str(o),
                        r,
                        (args.step, args.clean_events, args.drifted_events),
                        partitions,
                        args.producer_client,
                    ),
                )
                for g, o, r in zip(groups, outs, readies, strict=True)
            ]
            for p in procs:
                p.start()
            for r in readies:
                if not r.wait(600):
                    raise RuntimeError("a producer did not get ready")
            start_at = time.monotonic() + 0.5
            shared_start.value = start_at
            t_end = start_at + args.duration
            while any(p.is_alive() for p in procs):
                lags.append(d.lag())
                rss.append(d.rss_mb())
                time.sleep(1.0)
            for p in procs:
                p.join()
                if p.exitcode != 0:
                    raise RuntimeError(f"producer exited with {p.exitcode}")
            total = sum(json.loads(o.read_text())["sent"] for o in outs)
            K.wait_counted(d, total, timeout_s=max(120.0, args.duration * 10))
            drained = time.monotonic() - t_end
            # let the last webhooks arrive
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if K.metric_sum(d.metrics(), "driftd_webhook_pending") == 0:
                    break
                time.sleep(0.2)
            time.sleep(1.0)
        finally:
            rc = d.stop()

        sent_at: dict[str, list[float]] = {}
        produced = 0
        elapsed = 0.0
        late_max = 0.0
        for o in outs:
            data = json.loads(o.read_text())
            produced += data["sent"]
            elapsed = max(elapsed, data["elapsed_s"])
            late_max = max(late_max, data["late_max_s"])
            for p, times in data["sent_at"].items():
                sent_at[f"{topic}/{p}"] = times

        seen: set[str] = set()
        lat_all: list[float] = []
        lat_detected: list[float] = []
        unmatched = 0
        invalid = 0
        with sink._lock:
            received = list(zip(sink.requests, sink.received_at, strict=True))
        for req, at in received:
            if not req.verified:
                invalid += 1
                continue
            key = req.headers.get("idempotency-key", "")
            if key in seen:
                continue
            seen.add(key)
            body = json.loads(req.body)
            sends = [
                sent_at[key][last]
                for key, (_first, last) in body["window"].get("partitions", {}).items()
                if key in sent_at and last < len(sent_at[key])
            ]
            if not sends or len(sends) != len(body["window"].get("partitions", {})):
                unmatched += 1
                continue
            t_sent = max(sends)  # the newest event in the window
            lat = at - t_sent
            lat_all.append(lat)
            if body["type"] == "drift.detected":
                lat_detected.append(lat)

    def pct(xs: list[float], q: float) -> float | None:
        return round(float(np.percentile(xs, q)), 4) if xs else None

    rate = produced / elapsed if elapsed else 0.0
    result: dict[str, Any] = {
        "benchmark": "latency",
        "latency_p50_s": pct(lat_all, 50),
        "latency_p99_s": pct(lat_all, 99),
        "latency_max_s": round(max(lat_all), 4) if lat_all else None,
        "latency_mean_s": round(statistics.fmean(lat_all), 4) if lat_all else None,
        "alerts": len(lat_all),
        "detected": len(lat_detected),
        "resolved": len(lat_all) - len(lat_detected),
        "detected_p50_s": pct(lat_detected, 50),
        "detected_p99_s": pct(lat_detected, 99),
        "rate_events_per_s": round(rate),
        "rate_target_events_per_s": args.rate,
        "producer_late_max_s": round(late_max, 3),
        "events": produced,
        "duration_s": args.duration,
        "workers": args.workers,
        "source": args.source,
        "producer_client": args.producer_client,
        "max_consumer_lag": max(lags) if lags else None,
        "drain_after_last_send_s": round(drained, 2),
        "peak_rss_mb": round(max(rss), 1) if rss else None,
        "unmatched_alerts": unmatched,
        "invalid_signatures": invalid,
        "driftd_exit_code": rc,
        "target_p99_s": TARGET_P99_S,
        "target_met": bool(lat_all) and (pct(lat_all, 99) or 0) < TARGET_P99_S,
        "machine": K.machine(),
    }
    print(
        f"produced {produced:,} events at {rate:,.0f}/s (target {args.rate:,.0f}/s; producers at"
        f" most {late_max:.2f} s behind schedule); driftd peak consumer lag "
        f"{result['max_consumer_lag']:,.0f} events, all counted {drained:.1f} s after the last"
        " send"
    )
    print(
        f"alerts: {len(lat_all)} webhooks ({len(lat_detected)} drift.detected, "
        f"{len(lat_all) - len(lat_detected)} drift.resolved), {unmatched} unmatched,"
        f" {invalid} with a bad signature"
    )
    if lat_all:
        print(
            f"latency produce -> webhook: p50 {result['latency_p50_s']:.3f} s, p99 "
            f"{result['latency_p99_s']:.3f} s, max {result['latency_max_s']:.3f} s "
            f"({'ok' if result['target_met'] else 'OVER TARGET'}: p99 < {TARGET_P99_S} s)"
        )
    if args.json:
        print(json.dumps(result, separators=(",", ":")), flush=True)
    return result


if __name__ == "__main__":
    main()

"""Scale-out throughput: the same event-id-keyed stream through 1 and 2 processes.

    python -m benchmarks.scaleout [--json] [--events 400000] [--partitions 4] [--rounds 2]
                                  [--bootstrap HOST:PORT]

Against the project's real broker (a private one is started unless ``--bootstrap``), the
benchmark builds the e2e workload's reference profile and generates ``--events`` events once
(4 models, each ``v1`` then ``v2``, 23 features, ~430 bytes of JSON, pre-encoded), then
``--rounds`` times runs each mode on a fresh topic of ``--partitions`` partitions:

(a) **one process, embedded** (the default mode: no internal topic);
(b) **one process, scale-out** (``scale_out.enabled``: panes through ``<group>.panes``, state
    in ``<group>.state``) — what the repartition step costs;
(c) **two processes**, ``driftd run --workers 2`` in scale-out (each reads half the source
    partitions and decides half the monitors).

Each run starts driftd on the empty topic and waits until every process answers ``/readyz``
(the groups have formed); then the stream is produced **keyed by event id** (every model in
every partition, as services publish prediction logs; confluent-kafka, acks=1)
while driftd consumes it live. The run is timed from the first event produced to the moment
the processes that decide the monitors have merged every event (``driftd_events_total``
summed over the processes: a (monitor, version) series is exported only by its decider). The
producer runs on the same machine (its own send rate is reported): in every mode it takes
its share of the cores. Every
version is then checked through ``/api/v1/monitors/{name}`` on the first process (it answers
for the others through them), and the group's committed offsets must cover the topic.

The internal topic's size is measured after a scale-out run: the bytes of every record in
the panes topic (pane values as produced, before the producer's lz4), per source event, and
the same compressed with lz4 in 1 MiB chunks (close to what the broker stores).

The 2-process figure is reported with the machine's core count: on 2 cores the broker and
the benchmark's pollers compete with the two driftd processes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import yaml

from benchmarks import _kafka as K
from benchmarks.e2e import build_profile_cli, check_driftd, stream


def log(msg: str) -> None:
    print(msg, flush=True)


def panes_size(bootstrap: str, topic: str) -> tuple[int, int, int]:
    """(records, value bytes, lz4-compressed bytes in 1 MiB chunks) of the whole topic."""
    import lz4.frame
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, client_id="driftd-bench-panes",
                      enable_auto_commit=False, max_partition_fetch_bytes=64 << 20,
                      fetch_max_bytes=64 << 20)  # fmt: skip
    try:
        tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or ())]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        ends = c.end_offsets(tps)
        records = raw = packed = 0
        chunk: list[bytes] = []
        size = 0
        deadline = time.monotonic() + 300
        while any(c.position(tp) < ends[tp] for tp in tps) and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=500).values():
                for r in recs:
                    records += 1
                    raw += len(r.value)
                    chunk.append(r.value)
                    size += len(r.value)
                    if size >= 1 << 20:
                        packed += len(lz4.frame.compress(b"".join(chunk)))
                        chunk, size = [], 0
        if chunk:
            packed += len(lz4.frame.compress(b"".join(chunk)))
        return records, raw, packed
    finally:
        c.close()


def produce_live(bootstrap: str, topic: str, events: list[tuple[bytes, bytes]]) -> float:
    """Send the stream keyed by event id with librdkafka (confluent-kafka: a fraction of
    kafka-python's CPU per record, so the producer leaves the cores to driftd); returns the
    send loop's events/s, flush included."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": "1", "linger.ms": 20,
                  "batch.size": 1 << 20, "queue.buffering.max.messages": 2_000_000,
                  "queue.buffering.max.kbytes": 4 << 20})  # fmt: skip
    t0 = time.perf_counter()
    for key, value in events:
        while True:
            try:
                p.produce(topic, value=value, key=key)
                break
            except BufferError:
                p.poll(0.05)
    p.flush(300)
    return len(events) / (time.perf_counter() - t0)


def run(
    work: Path,
    tag: str,
    *,
    bootstrap: str,
    events: list[tuple[bytes, bytes]],
    models: int,
    per_model: int,
    profile: Path,
    partitions: int,
    scale_out: bool,
    workers: int,
) -> dict[str, Any]:
    group = f"driftd-so-{tag}-{uuid.uuid4().hex[:8]}"
    topic = K.create_topic(bootstrap, f"bench-scaleout-{tag}-{uuid.uuid4().hex[:6]}", partitions)
    cfg = K.write_config(
        work / f"driftd-{tag}.yaml", bootstrap=bootstrap, topic=topic, group=group,
        models=models, profile=profile, state_dir=work / f"state-{tag}",
    )  # fmt: skip
    if scale_out:
        doc = yaml.safe_load(cfg.read_text())
        # no purge during the run: the topic's size is read afterwards
        doc["scale_out"] = {"enabled": True, "partitions": partitions, "purge_interval_s": 86400}
        cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    n = per_model * models
    d = K.DriftdProcess(cfg, work / f"driftd-{tag}.log", workers=workers)
    try:
        d.wait_ready()  # every process ready: the groups formed
        start_s = time.perf_counter() - d.started
        send_rate = produce_live(bootstrap, topic, events)
        done_s, _ = K.wait_counted(d, n, timeout_s=1800)
        hwm = d.hwm_mb()
        problems: list[str] = []
        deadline = time.monotonic() + 15  # membership settles within seconds of a move
        while True:
            problems = check_driftd(d, models, per_model, partitions)
            if not problems or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        rc = d.stop()
    if rc != 0:
        problems.append(f"driftd exited with {rc} (log {d.log})")
    committed = sum(K.committed_offsets(bootstrap, group, topic).values())
    if committed != n:
        problems.append(f"committed offsets cover {committed} of {n} events")
    return {
        "group": group,
        "producer_events_per_s": round(send_rate),
        "events_per_s": n / (done_s - start_s),
        "peak_rss_mb": round(hwm, 1),
        "problems": problems,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="end with one JSON line")
    ap.add_argument("--events", type=int, default=400_000)
    ap.add_argument("--partitions", type=int, default=4, help="source and internal partitions")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--bootstrap", help="HOST:PORT of an existing broker (else one is started)")
    args = ap.parse_args(argv)
    models = 4
    per_model = args.events // models
    n = per_model * models
    work = Path(tempfile.mkdtemp(prefix="driftd-bench-scaleout-"))
    log(f"scaleout: {n:,} events keyed by event id, {args.partitions} partitions, work dir {work}")
    log(f"machine: {K.machine()}")
    profile = build_profile_cli(work)
    modes = {
        "one_process": {"scale_out": False, "workers": 1},
        "one_process_scale_out": {"scale_out": True, "workers": 1},
        "two_processes": {"scale_out": True, "workers": 2},
    }
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    internal: dict[str, Any] = {}
    events = [(orjson.loads(v)["event_id"].encode(), v) for _, vs in stream(n, models) for v in vs]
    with K.broker(args.bootstrap, log) as bootstrap:
        for r in range(args.rounds):
            for mode, kw in modes.items():
                res = run(work, f"r{r}{mode}", bootstrap=bootstrap, events=events, models=models,
                          per_model=per_model, profile=profile, partitions=args.partitions,
                          **kw)  # type: ignore[arg-type]  # fmt: skip
                results[mode].append(res)
                log(
                    f"round {r + 1}: {mode:<24}{res['events_per_s']:>10,.0f} events/s"
                    f" (producer {res['producer_events_per_s']:,} events/s, peak RSS"
                    f" {res['peak_rss_mb']:.0f} MB)"
                    + (f"  PROBLEMS: {res['problems']}" if res["problems"] else "")
                )
                if mode == "two_processes" and not internal:
                    records, raw, packed = panes_size(bootstrap, f"{res['group']}.panes")
                    internal = {
                        "pane_records": records,
                        "bytes_per_event": round(raw / n, 1),
                        "lz4_bytes_per_event": round(packed / n, 1),
                    }
                    log(
                        f"internal topic: {records:,} panes, {raw / n:.1f} bytes per source"
                        f" event ({packed / n:.1f} lz4-compressed)"
                    )
    med = {m: statistics.median(x["events_per_s"] for x in rs) for m, rs in results.items()}
    problems = [p for rs in results.values() for x in rs for p in x["problems"]]
    result = {
        "benchmark": "scaleout",
        "events": n,
        "partitions": args.partitions,
        "keyed_by": "event_id",
        "rounds": args.rounds,
        "cores": os.cpu_count(),
        "one_process_events_per_s": round(med["one_process"]),
        "one_process_scale_out_events_per_s": round(med["one_process_scale_out"]),
        "two_processes_events_per_s": round(med["two_processes"]),
        "two_vs_one": round(med["two_processes"] / med["one_process"], 3),
        "runs": {m: [round(x["events_per_s"]) for x in rs] for m, rs in results.items()},
        "peak_rss_mb": {m: max(x["peak_rss_mb"] for x in rs) for m, rs in results.items()},
        "internal_topic": internal,
        "problems": problems,
        "machine": K.machine(),
    }
    log(
        f"median events/s: one process {med['one_process']:,.0f}, one process through the"
        f" internal topic {med['one_process_scale_out']:,.0f}, two processes"
        f" {med['two_processes']:,.0f} on {os.cpu_count()} cores"
    )
    if args.json:
        print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    out = main()
    raise SystemExit(1 if out.get("problems") else 0)

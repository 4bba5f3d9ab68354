"""End-to-end throughput: ``driftd run`` against the Kafka client's own ceiling, side by side.

    python -m benchmarks.e2e [--json] [--events 1000000] [--bootstrap HOST:PORT] [--rounds 2]

Against the project's real broker (a private one on free ports is started — and stopped —
unless ``--bootstrap`` is given), the benchmark

1. compiles a reference profile with ``driftd profile build`` (20,000 seeded events);
2. creates a 4-partition topic and produces ``--events`` events to it: 4 models
   (``bench-0`` … ``bench-3``, model *i* in partition *i*, as producers keying by model get),
   each first ``v1`` then ``v2`` (same distribution); 20 numeric + 3 categorical features and
   a numeric score per event, ~430 bytes of JSON, generated offline from a fixed seed and
   pre-encoded. Producer: kafka-python, 1 MiB batches, 20 ms linger, ``acks=1``, no
   compression (``--compression lz4`` to change);
3. then, ``--rounds`` times, alternating:
   (a) **raw**: a kafka-python ``KafkaConsumer`` with driftd's own settings
       (``driftd.sources.kafka.consumer_settings``: CRC checks on, same fetch sizes, same
       ``poll`` batch size) consuming and discarding every record under a new group — the
       ceiling; timed from subscribing to the last record;
   (b) **driftd**: ``driftd run`` as a subprocess under a fresh group and state directory, with
       the default checkpoint interval and window (sliding 5,000 events, step 1,000, every
       feature tested at each step), until ``driftd_events_total`` on ``/metrics`` counts every
       event (counting and evaluating happen in the same locked micro-batch step, so counted
       means windowed and evaluated). Timed from process start; start-up (to ``/readyz``) is
       reported separately and subtracted: ``driftd_events_per_s = events / (done - ready)``;
   (c) the same with ``--workers 2``.
   After each driftd run every monitor's versions are checked through
   ``/api/v1/monitors/{name}`` (event counts, last evaluation at the partition's last
   position), the process is stopped with SIGTERM and its final checkpoints are checked
   (events and next offsets cover the whole topic).

The printed figures are medians over the rounds (every run is listed too). With ``--json`` the
last line is one JSON object with ``raw_events_per_s``, ``driftd_events_per_s``, ``ratio``,
``events``, ``peak_rss_mb``, ``driftd_workers2_events_per_s`` and ``startup_s`` (plus the
per-run figures). ``--profile-out FILE`` adds one extra single-process driftd run under
cProfile (not timed) and writes its stats there; ``--write-replay DIR`` only writes the same
workload, its profile and a config as files, for profiling ``driftd replay`` without Kafka.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import _kafka as K

TARGET_RATIO = 0.6
TARGET_EVENTS_PER_S = 80_000
STEP = 1000  # the default window step (sliding 5,000 / 1,000)
MIN_EVENTS = 1000  # the default policy.min_events


def log(msg: str) -> None:
    print(msg, flush=True)


def build_profile_cli(work: Path, window: dict[str, Any] | None = None) -> Path:
    """Reference profile through the user's path, ``driftd profile build`` (which stores
    calibrated thresholds for ``window`` in it when driftd calibrates)."""
    ref = work / "reference.jsonl"
    with open(ref, "wb") as fh:
        for e in K.make_events(20_000, model=0, seed=999):
            fh.write(e + b"\n")
    boot = K.write_config(
        work / "profile-build.yaml",
        bootstrap="127.0.0.1:9",
        topic="unused",
        group="unused",
        models=1,
        profile=work / "profile.json",
        state_dir=work / "unused-state",
        window=window,
    )
    out = work / "profile.json"
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
            str(boot),
            "--monitor",
            "m0",
            "--input",
            str(ref),
            "--out",
            str(out),
        ],
        check=True,
        cwd=K.REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return out


def stream(events: int, models: int) -> Iterator[tuple[int, list[bytes]]]:
    """The workload in chunks: (model = partition, events), model by model, ``v1`` then
    ``v2``; the same for every run."""
    per_model = events // models
    chunk = 25_000
    for m in range(models):
        n_v1 = per_model // 2
        for version, first, count in (("v1", 0, n_v1), ("v2", n_v1, per_model - n_v1)):
            for start in range(first, first + count, chunk):
                n = min(chunk, first + count - start)
                yield m, K.make_events(n, model=m, version=version, start=start)


def produce(bootstrap: str, topic: str, events: int, models: int, compression: str | None) -> float:
    """Produce the workload (model i → partition i). Returns events/s of the send loop
    (generation excluded)."""
    producer = K.fast_producer(bootstrap, compression)
    send_s = 0.0
    sent = 0
    try:
        for m, values in stream(events, models):
            key = K.model_name(m).encode()
            t0 = time.perf_counter()
            for v in values:
                producer.send(topic, value=v, key=key, partition=m)
            send_s += time.perf_counter() - t0
            sent += len(values)
        t0 = time.perf_counter()
        producer.flush(300)
        send_s += time.perf_counter() - t0
    finally:
        producer.close(30)
    return sent / send_s


def write_replay(out: Path, events: int, models: int) -> None:
    """The same workload as files for ``driftd replay`` (profiling without Kafka)."""
    out.mkdir(parents=True, exist_ok=True)
    profile = build_profile_cli(out)
    cfg = K.write_config(
        out / "replay.yaml",
        bootstrap="127.0.0.1:9",
        topic="unused",
        group="unused",
        models=models,
        profile=profile,
        state_dir=out / "state",
    )
    with open(out / "events.jsonl", "wb") as fh:
        for _, values in stream(events, models):
            fh.write(b"\n".join(values) + b"\n")
    log(f"wrote {events:,} events and a config to {out}; profile the pipeline with")
    log(
        f"  python -m cProfile -s tottime -m driftd replay -c {cfg} {out / 'events.jsonl'}"
        " --out /dev/null"
    )


def check_driftd(
    d: K.DriftdProcess, models: int, per_model: int, state_dir: Path, topic: str
) -> list[str]:
    """Problems found in a finished driftd run (empty: all good)."""
    problems: list[str] = []
    n_v1 = per_model // 2
    expect = {"v1": n_v1, "v2": per_model - n_v1}
    for m in range(models):
        views = []
        for base in d.bases:
            code, body = K.http_get(f"{base}/api/v1/monitors/m{m}")
            if code == 200:
                views.append(json.loads(body))
        versions: dict[str, Any] = {}
        for v in views:
            for name, vv in v["versions"].items():
                if vv["events"]:
                    versions[name] = vv
        for ver, n in expect.items():
            got = versions.get(ver)
            if got is None or got["events"] != n:
                problems.append(f"m{m}/{ver}: events {got and got['events']} != {n}")
        # the stream's last event closes a window step: it was evaluated
        if expect["v2"] % STEP == 0 and expect["v2"] >= MIN_EVENTS:
            last = (versions.get("v2") or {}).get("last_evaluation") or {}
            end = (last.get("window") or {}).get("end_position")
            if end != per_model:
                problems.append(f"m{m}: last evaluation ends at {end}, not {per_model}")
    return problems


def check_checkpoints(state_dir: Path, topic: str, models: int, per_model: int) -> list[str]:
    problems = []
    for p in range(models):
        path = state_dir / "checkpoints" / f"{topic}__{p}.ckpt.npz"
        if not path.exists():
            problems.append(f"no checkpoint {path.name}")
            continue
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(z["__meta__"].tobytes())
        if meta.get("events") != per_model or meta.get("next_offset") != per_model:
            problems.append(
                f"{path.name}: events {meta.get('events')}, next_offset {meta.get('next_offset')}"
                f" (expected {per_model})"
            )
    return problems


def run_driftd(
    work: Path,
    tag: str,
    *,
    bootstrap: str,
    topic: str,
    models: int,
    per_model: int,
    profile: Path,
    workers: int,
    profile_out: Path | None = None,
    source: str = "kafka",
) -> dict[str, Any]:
    group = f"driftd-{tag}-{uuid.uuid4().hex[:8]}"
    state = work / f"state-{tag}"
    cfg = K.write_config(
        work / f"driftd-{tag}.yaml",
        bootstrap=bootstrap,
        topic=topic,
        group=group,
        models=models,
        profile=profile,
        state_dir=state,
        source=source,
    )
    n = per_model * models
    d = K.DriftdProcess(cfg, work / f"driftd-{tag}.log", workers=workers, profile_out=profile_out)
    try:
        ready_s = d.wait_ready()
        done_s, before_s = K.wait_counted(d, n, timeout_s=1800)
        hwm = d.hwm_mb()
        problems = check_driftd(d, models, per_model, state, topic)
    finally:
        rc = d.stop()
    if rc != 0:
        problems.append(f"driftd exited with {rc} (log {d.log})")
    problems += check_checkpoints(state, topic, models, per_model)
    return {
        "workers": workers,
        "startup_s": round(ready_s, 3),
        "total_s": round(done_s, 3),
        "resolution_s": round(done_s - before_s, 3),
        "events_per_s": n / (done_s - ready_s),
        "events_per_s_incl_startup": n / done_s,
        "peak_rss_mb": round(hwm, 1),
        "problems": problems,
    }


def warm_kernels() -> float:
    """Load (or compile, the very first time) the numba kernels into the on-disk cache, so
    start-up figures are those of a deployed daemon, not of a first-ever compilation."""
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "from driftd import kernels; kernels.warm_up()"],
        check=True,
        cwd=K.REPO_ROOT,
    )
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="end with one JSON line")
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--bootstrap", help="HOST:PORT of an existing broker (else one is started)")
    ap.add_argument("--rounds", type=int, default=2, help="alternations of raw / driftd runs")
    ap.add_argument("--partitions", type=int, default=4, help="= models")
    ap.add_argument("--compression", choices=["none", "lz4"], default="none")
    ap.add_argument("--no-workers2", action="store_true", help="skip the --workers 2 runs")
    ap.add_argument(
        "--confluent",
        action="store_true",
        help="also measure source: {type: confluent} against confluent-kafka's own ceiling",
    )
    ap.add_argument("--profile-out", type=Path, help="extra cProfile'd driftd run → pstats file")
    ap.add_argument(
        "--write-replay", type=Path, metavar="DIR", help="only write the workload for replay"
    )
    args = ap.parse_args(argv)
    if args.write_replay is not None:
        write_replay(args.write_replay, args.events, args.partitions)
        return {}

    models = args.partitions
    per_model = args.events // models
    if per_model < 2:
        ap.error("--events must be at least 2 per partition")
    n = per_model * models
    work = Path(tempfile.mkdtemp(prefix="driftd-bench-e2e-"))
    log(f"e2e: {n:,} events, {models} partitions/models, work dir {work}")
    log(f"machine: {K.machine()}")
    warm_s = warm_kernels()
    t0 = time.perf_counter()
    profile = build_profile_cli(work)
    log(
        f"kernels warm ({warm_s:.1f} s); reference profile built ({time.perf_counter() - t0:.1f} s)"
    )

    raw: list[float] = []
    one: list[dict[str, Any]] = []
    two: list[dict[str, Any]] = []
    ck_raw: list[float] = []
    ck: list[dict[str, Any]] = []
    with K.broker(args.bootstrap, log) as bootstrap:
        topic = K.create_topic(bootstrap, f"bench-e2e-{uuid.uuid4().hex[:8]}", models)
        t0 = time.perf_counter()
        send_rate = produce(
            bootstrap, topic, n, models, None if args.compression == "none" else args.compression
        )
        log(
            f"produced {n:,} events to {topic} in {time.perf_counter() - t0:.1f} s "
            f"(send loop {send_rate:,.0f} events/s, compression {args.compression})"
        )
        ends = K.end_offsets(bootstrap, topic, models)
        if sum(ends.values()) != n:
            raise SystemExit(f"topic holds {sum(ends.values())} records, expected {n}")
        common = {
            "bootstrap": bootstrap,
            "topic": topic,
            "models": models,
            "per_model": per_model,
            "profile": profile,
        }
        for r in range(args.rounds):
            secs = K.raw_consume(bootstrap, topic, n, f"raw-{r}-{uuid.uuid4().hex[:8]}")
            raw.append(n / secs)
            log(f"round {r + 1}: raw kafka-python     {raw[-1]:>10,.0f} events/s ({secs:.2f} s)")
            res = run_driftd(work, f"r{r}w1", workers=1, **common)  # type: ignore[arg-type]
            one.append(res)
            log(
                f"round {r + 1}: driftd run           {res['events_per_s']:>10,.0f} events/s "
                f"(start-up {res['startup_s']:.2f} s, total {res['total_s']:.2f} s, "
                f"peak RSS {res['peak_rss_mb']:.0f} MB)"
                + (f"  PROBLEMS: {res['problems']}" if res["problems"] else "")
            )
            if not args.no_workers2:
                res = run_driftd(work, f"r{r}w2", workers=2, **common)  # type: ignore[arg-type]
                two.append(res)
                log(
                    f"round {r + 1}: driftd run --workers 2 {res['events_per_s']:>8,.0f} events/s "
                    f"(start-up {res['startup_s']:.2f} s, total {res['total_s']:.2f} s, "
                    f"peak RSS {res['peak_rss_mb']:.0f} MB)"
                    + (f"  PROBLEMS: {res['problems']}" if res["problems"] else "")
                )
            if args.confluent:
                secs = K.raw_consume_confluent(
                    bootstrap, topic, n, f"ckraw-{r}-{uuid.uuid4().hex[:8]}"
                )
                ck_raw.append(n / secs)
                log(f"round {r + 1}: raw confluent-kafka  {ck_raw[-1]:>10,.0f} events/s")
                res = run_driftd(work, f"r{r}ck", workers=1, source="confluent", **common)  # type: ignore[arg-type]
                ck.append(res)
                log(
                    f"round {r + 1}: driftd (confluent)   {res['events_per_s']:>10,.0f} events/s "
                    f"(peak RSS {res['peak_rss_mb']:.0f} MB)"
                    + (f"  PROBLEMS: {res['problems']}" if res["problems"] else "")
                )
        if args.profile_out is not None:
            log(f"profiling one more driftd run under cProfile → {args.profile_out}")
            run_driftd(
                work,
                "prof",
                workers=1,
                profile_out=args.profile_out.resolve(),
                **common,  # type: ignore[arg-type]
            )

    med_raw = statistics.median(raw)
    d_rates = [r["events_per_s"] for r in one]
    med_d = statistics.median(d_rates)
    ratio = med_d / med_raw
    problems = [p for r in one + two + ck for p in r["problems"]]
    result: dict[str, Any] = {
        "benchmark": "e2e",
        "events": n,
        "partitions": models,
        "features": {"numeric": len(K.NUMERIC), "categorical": len(K.CATEGORICAL)},
        "rounds": args.rounds,
        "raw_events_per_s": round(med_raw),
        "driftd_events_per_s": round(med_d),
        "ratio": round(ratio, 3),
        "ratio_per_round": [round(r["events_per_s"] / w, 3) for r, w in zip(one, raw, strict=True)],
        "driftd_events_per_s_incl_startup": round(
            statistics.median(r["events_per_s_incl_startup"] for r in one)
        ),
        "startup_s": round(statistics.median(r["startup_s"] for r in one), 3),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in one),
        "raw_runs": [round(x) for x in raw],
        "driftd_runs": [round(x) for x in d_rates],
        "targets": {"ratio": TARGET_RATIO, "driftd_events_per_s": TARGET_EVENTS_PER_S},
        "targets_met": ratio >= TARGET_RATIO and med_d >= TARGET_EVENTS_PER_S,
        "problems": problems,
        "compression": args.compression,
        "machine": K.machine(),
    }
    if two:
        w2 = [r["events_per_s"] for r in two]
        result["driftd_workers2_events_per_s"] = round(statistics.median(w2))
        result["driftd_workers2_runs"] = [round(x) for x in w2]
        result["workers2_peak_rss_mb"] = max(r["peak_rss_mb"] for r in two)
        result["workers2_startup_s"] = round(statistics.median(r["startup_s"] for r in two), 3)
    if ck:
        ck_med_raw = statistics.median(ck_raw)
        ck_med = statistics.median(r["events_per_s"] for r in ck)
        result["confluent"] = {
            "raw_events_per_s": round(ck_med_raw),
            "driftd_events_per_s": round(ck_med),
            "ratio": round(ck_med / ck_med_raw, 3),
            "raw_runs": [round(x) for x in ck_raw],
            "driftd_runs": [round(r["events_per_s"]) for r in ck],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in ck),
        }
    log("")
    log(f"raw kafka-python ceiling : {med_raw:>10,.0f} events/s  ({K.spread(raw)})")
    log(
        f"driftd run (1 process)   : {med_d:>10,.0f} events/s  ({K.spread(d_rates)})"
        f"  ratio {ratio:.2f} (target {TARGET_RATIO}), target {TARGET_EVENTS_PER_S:,}/s"
    )
    if two:
        log(
            f"driftd run --workers 2   : {result['driftd_workers2_events_per_s']:>10,} events/s"
            f"  ({K.spread([r['events_per_s'] for r in two])})"
        )
    if ck:
        c = result["confluent"]
        log(
            f"confluent-kafka ceiling  : {c['raw_events_per_s']:>10,} events/s;  driftd with "
            f"source confluent {c['driftd_events_per_s']:,} events/s, ratio {c['ratio']:.2f}"
        )
    log(
        f"start-up to /readyz      : {result['startup_s']:.2f} s;  "
        f"peak RSS {result['peak_rss_mb']} MB"
    )
    if problems:
        log(f"PROBLEMS: {problems}")
    if args.json:
        print(json.dumps(result, separators=(",", ":")), flush=True)
    return result


if __name__ == "__main__":
    main()

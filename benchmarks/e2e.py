"""End-to-end throughput: ``driftd run`` against the Kafka client's own ceiling, side by side,
with the topic keyed the way prediction logs are produced (by event id) and keyed by model.

    python -m benchmarks.e2e [--json] [--events 1000000] [--bootstrap HOST:PORT] [--rounds 2]
                             [--confluent] [--baseline GIT-REV]

Against the project's real broker (a private one on free ports is started — and stopped —
unless ``--bootstrap`` is given), the benchmark

1. compiles a reference profile with ``driftd profile build`` (20,000 seeded events);
2. produces ``--events`` events to two topics of ``--partitions`` partitions: 4 models
   (``bench-0`` … ``bench-3``), each first ``v1`` then ``v2`` (same distribution), the models
   interleaved in chunks of 25,000; 20 numeric + 3 categorical features and a numeric score
   per event, ~430 bytes of JSON, generated offline from a fixed seed and pre-encoded.
   **by-event-id**: each record keyed by its ``event_id`` (Kafka's default partitioner spreads
   every model over every partition — how services publish prediction logs); **by-model**:
   model *i* in partition *i*. Producer: kafka-python, 1 MiB batches, 20 ms linger,
   ``acks=1``, no compression (``--compression lz4`` to change);
3. then, ``--rounds`` times, alternating:
   (0) **replay**: ``driftd replay`` of the same events from a JSONL file (the order they were
       produced in) with the same monitors, output to ``/dev/null``; start-up (the replay of an
       empty file) is subtracted: ``replay_events_per_s``;
   (a) **raw**: a kafka-python ``KafkaConsumer`` with driftd's own settings
       (``driftd.sources.kafka.consumer_settings``) consuming and discarding every record of
       the by-event-id topic under a new group — the ceiling;
   (b) **driftd, by event id**: ``driftd run`` as a subprocess under a fresh group and state
       directory, default checkpoint interval and window (sliding 5,000 events, step 1,000,
       every feature tested at each step), until ``driftd_events_total`` on ``/metrics``
       counts every event. Start-up (to ``/readyz``) is reported separately and subtracted:
       ``events_per_s = events / (done - ready)``;
   (c) **driftd, by model**: the same on the by-model topic;
   (d) with ``--baseline REV``: the release at git revision ``REV`` (run from a ``git
       archive`` of its ``driftd/`` package, same interpreter and dependencies) on the
       by-model topic — the figure this release is compared with;
   (e) with ``--confluent``: confluent-kafka's own ceiling and ``source: {type: confluent}``
       on the by-event-id topic.
   After each run of this release every monitor's versions are checked through
   ``/api/v1/monitors/{name}`` (one verdict per version, its event count, the last window's
   partitions), the process is stopped with SIGTERM and its checkpoint manifest is checked
   (next offsets cover the whole topic).

The printed figures are medians over the rounds (every run is listed too). With ``--json`` the
last line is one JSON object with ``raw_events_per_s``, ``driftd_events_per_s`` (by event id),
``by_model_events_per_s``, ``ratio``, ``keyed_by_event_id_vs_model``, ``events``,
``peak_rss_mb``, ``startup_s``, ``replay_events_per_s``, optionally ``baseline`` and
``confluent`` (plus the per-run figures). ``--profile-out FILE`` adds one extra driftd run
under cProfile (not timed); ``--write-replay DIR`` only writes the same workload, its profile
and a config as files, for profiling ``driftd replay`` without Kafka.
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

import orjson

from benchmarks import _kafka as K

# Issue 15: one process at ≥ 0.8 × kafka-python's consume-and-discard ceiling; on confluent-kafka
# ≥ 150,000 events/s and ≥ 0.6 × its ceiling; replay of the same events ≥ 300,000 events/s.
TARGET_RATIO = 0.8
TARGET_CONFLUENT_EVENTS_PER_S = 150_000
TARGET_CONFLUENT_RATIO = 0.6
TARGET_REPLAY_EVENTS_PER_S = 300_000
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
    """The workload in chunks: (model, events), the models interleaved chunk by chunk, each
    ``v1`` then ``v2``; the same for every run."""
    per_model = events // models
    chunk = 25_000
    n_v1 = per_model // 2
    parts = [(("v1", 0, n_v1), ("v2", n_v1, per_model - n_v1))] * models
    for version_i in range(2):
        version, first, count = parts[0][version_i]
        for start in range(first, first + count, chunk):
            n = min(chunk, first + count - start)
            for m in range(models):
                yield m, K.make_events(n, model=m, version=version, start=start)


def produce(
    bootstrap: str,
    topics: dict[str, str],
    events: int,
    models: int,
    compression: str | None,
) -> float:
    """Produce the workload to each topic of ``topics`` (keying → topic): ``event`` keys each
    record by its event id (the default partitioner spreads models over partitions),
    ``model`` puts model i in partition i. Returns events/s of the send loop."""
    producer = K.fast_producer(bootstrap, compression)
    send_s = 0.0
    sent = 0
    try:
        for m, values in stream(events, models):
            key = K.model_name(m).encode()
            ids = [orjson.loads(v)["event_id"].encode() for v in values]
            t0 = time.perf_counter()
            for keying, topic in topics.items():
                if keying == "model":
                    for v in values:
                        producer.send(topic, value=v, key=key, partition=m)
                else:
                    for v, eid in zip(values, ids, strict=True):
                        producer.send(topic, value=v, key=eid)
            send_s += time.perf_counter() - t0
            sent += len(values) * len(topics)
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


def write_events(path: Path, events: int, models: int) -> Path:
    """The workload as one JSONL file, in the order it was produced."""
    with open(path, "wb") as fh:
        for _, values in stream(events, models):
            fh.write(b"\n".join(values) + b"\n")
    return path


def run_replay(work: Path, events_file: Path, n: int, models: int, profile: Path) -> dict[str, Any]:
    """``driftd replay`` of the workload file (a subprocess, output to /dev/null), timed from
    start to exit; start-up (a replay of an empty file: imports, config, profiles, kernels
    from the cache) is measured the same way and subtracted, as ``/readyz`` is for runs."""
    cfg = K.write_config(
        work / "replay.yaml",
        bootstrap="127.0.0.1:9",
        topic="unused",
        group="unused",
        models=models,
        profile=profile,
        state_dir=work / "replay-state",
    )
    empty = work / "empty.jsonl"
    empty.write_bytes(b"")

    def timed(path: Path) -> float:
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "driftd", "--log-level", "warning", "replay", "-c", str(cfg),
             str(path), "--out", "/dev/null"],  # fmt: skip
            check=True,
            cwd=K.REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return time.perf_counter() - t0

    startup = timed(empty)
    total = timed(events_file)
    return {
        "events_per_s": n / max(total - startup, 1e-9),
        "seconds": round(total, 3),
        "startup_s": round(startup, 3),
    }


def check_driftd(d: K.DriftdProcess, models: int, per_model: int, partitions: int) -> list[str]:
    """Problems found in a finished run of this release (empty: all good): one verdict per
    version with every event of it, and — keyed by event id — a last window drawn from every
    partition. The last batch's steps are concluded at the next poll (they are evaluated on
    the evaluation thread meanwhile): asked again for up to 10 s."""
    deadline = time.monotonic() + 10
    while (problems := _check_driftd(d, models, per_model)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return problems


def _check_driftd(d: K.DriftdProcess, models: int, per_model: int) -> list[str]:
    problems: list[str] = []
    n_v1 = per_model // 2
    expect = {"v1": n_v1, "v2": per_model - n_v1}
    for m in range(models):
        code, body = K.http_get(f"{d.bases[0]}/api/v1/monitors/m{m}")
        if code != 200:
            problems.append(f"m{m}: /api/v1/monitors answered {code}")
            continue
        versions = json.loads(body)["versions"]
        for ver, n in expect.items():
            got = versions.get(ver)
            if got is None or got["events"] != n:
                problems.append(f"m{m}/{ver}: events {got and got['events']} != {n}")
        last = (versions.get("v2") or {}).get("last_evaluation") or {}
        window = last.get("window") or {}
        if expect["v2"] >= MIN_EVENTS and window.get("events") != min(5000, expect["v2"]):
            problems.append(f"m{m}: last window holds {window.get('events')} events")
    return problems


def check_manifest(state_dir: Path, ends: dict[int, int], topic: str) -> list[str]:
    path = state_dir / "checkpoints" / "MANIFEST.json"
    if not path.exists():
        return [f"no checkpoint manifest in {path.parent}"]
    sources = json.loads(path.read_bytes())["meta"]["sources"]
    want = {f"{topic}/{p}": off for p, off in ends.items() if off}
    if sources != want:
        return [f"checkpoint offsets {sources} != topic ends {want}"]
    return []


def run_driftd(
    work: Path,
    tag: str,
    *,
    bootstrap: str,
    topic: str,
    models: int,
    per_model: int,
    profile: Path,
    ends: dict[int, int],
    profile_out: Path | None = None,
    source: str = "kafka",
    release: Path | None = None,
) -> dict[str, Any]:
    """One timed ``driftd run``; ``release`` runs an earlier release's package instead."""
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
    env = {"PYTHONPATH": str(release)} if release is not None else None
    d = K.DriftdProcess(cfg, work / f"driftd-{tag}.log", env=env, profile_out=profile_out)
    problems: list[str] = []
    try:
        ready_s = d.wait_ready()
        done_s, before_s = K.wait_counted(d, n, timeout_s=1800)
        hwm = d.hwm_mb()
        if release is None:
            problems = check_driftd(d, models, per_model, len(ends))
    finally:
        rc = d.stop()
    if rc != 0:
        problems.append(f"driftd exited with {rc} (log {d.log})")
    if release is None:
        problems += check_manifest(state, ends, topic)
    return {
        "startup_s": round(ready_s, 3),
        "total_s": round(done_s, 3),
        "resolution_s": round(done_s - before_s, 3),
        "events_per_s": n / (done_s - ready_s),
        "events_per_s_incl_startup": n / done_s,
        "peak_rss_mb": round(hwm, 1),
        "problems": problems,
    }


def export_release(rev: str, work: Path) -> Path:
    """The ``driftd/`` package of git revision ``rev``, for the baseline runs."""
    out = work / f"release-{rev}"
    out.mkdir()
    archive = subprocess.run(
        ["git", "archive", rev, "driftd"], cwd=K.REPO_ROOT, check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


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
    ap.add_argument(
        "--confluent",
        action="store_true",
        help="also measure source: {type: confluent} against confluent-kafka's own ceiling",
    )
    ap.add_argument(
        "--baseline", metavar="GIT-REV", help="also run this earlier release on the by-model topic"
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
    release = export_release(args.baseline, work) if args.baseline else None

    events_file = write_events(work / "events.jsonl", n, models)
    replays: list[dict[str, Any]] = []
    raw: list[float] = []
    by_event: list[dict[str, Any]] = []
    by_model: list[dict[str, Any]] = []
    base: list[dict[str, Any]] = []
    ck_raw: list[float] = []
    ck: list[dict[str, Any]] = []
    with K.broker(args.bootstrap, log) as bootstrap:
        tag = uuid.uuid4().hex[:8]
        topics = {
            "event": K.create_topic(bootstrap, f"bench-e2e-by-event-{tag}", models),
            "model": K.create_topic(bootstrap, f"bench-e2e-by-model-{tag}", models),
        }
        t0 = time.perf_counter()
        send_rate = produce(
            bootstrap, topics, n, models, None if args.compression == "none" else args.compression
        )
        log(
            f"produced {n:,} events to each of {', '.join(topics.values())} in"
            f" {time.perf_counter() - t0:.1f} s (send loop {send_rate:,.0f} events/s,"
            f" compression {args.compression})"
        )
        ends = {k: K.end_offsets(bootstrap, t, models) for k, t in topics.items()}
        for k, e in ends.items():
            if sum(e.values()) != n:
                raise SystemExit(f"topic {topics[k]} holds {sum(e.values())} records, not {n}")
        log(f"by-event-id partitions hold {sorted(ends['event'].values())} records")
        common = {"bootstrap": bootstrap, "models": models, "per_model": per_model,
                  "profile": profile}  # fmt: skip

        def show(label: str, res: dict[str, Any]) -> None:
            log(
                f"round {r + 1}: {label:<28}{res['events_per_s']:>10,.0f} events/s "
                f"(start-up {res['startup_s']:.2f} s, peak RSS {res['peak_rss_mb']:.0f} MB)"
                + (f"  PROBLEMS: {res['problems']}" if res["problems"] else "")
            )

        for r in range(args.rounds):
            replays.append(run_replay(work, events_file, n, models, profile))
            log(
                f"round {r + 1}: {'driftd replay (file)':<28}"
                f"{replays[-1]['events_per_s']:>10,.0f} events/s"
                f" (start-up {replays[-1]['startup_s']:.2f} s)"
            )
            secs = K.raw_consume(bootstrap, topics["event"], n, f"raw-{r}-{uuid.uuid4().hex[:8]}")
            raw.append(n / secs)
            log(f"round {r + 1}: {'raw kafka-python':<28}{raw[-1]:>10,.0f} events/s ({secs:.2f} s)")
            res = run_driftd(work, f"r{r}ev", topic=topics["event"], ends=ends["event"], **common)  # type: ignore[arg-type]
            by_event.append(res)
            show("driftd, keyed by event id", res)
            res = run_driftd(work, f"r{r}mo", topic=topics["model"], ends=ends["model"], **common)  # type: ignore[arg-type]
            by_model.append(res)
            show("driftd, keyed by model", res)
            if release is not None:
                res = run_driftd(
                    work,
                    f"r{r}base",
                    topic=topics["model"],
                    ends=ends["model"],
                    release=release,
                    **common,  # type: ignore[arg-type]
                )
                base.append(res)
                show(f"{args.baseline}, keyed by model", res)
            if args.confluent:
                secs = K.raw_consume_confluent(
                    bootstrap, topics["event"], n, f"ckraw-{r}-{uuid.uuid4().hex[:8]}"
                )
                ck_raw.append(n / secs)
                log(f"round {r + 1}: {'raw confluent-kafka':<28}{ck_raw[-1]:>10,.0f} events/s")
                res = run_driftd(
                    work,
                    f"r{r}ck",
                    topic=topics["event"],
                    ends=ends["event"],
                    source="confluent",
                    **common,  # type: ignore[arg-type]
                )
                ck.append(res)
                show("driftd (confluent), event id", res)
        if args.profile_out is not None:
            log(f"profiling one more driftd run under cProfile → {args.profile_out}")
            run_driftd(
                work,
                "prof",
                topic=topics["event"],
                ends=ends["event"],
                profile_out=args.profile_out.resolve(),
                **common,  # type: ignore[arg-type]
            )

    med_raw = statistics.median(raw)
    ev_rates = [r["events_per_s"] for r in by_event]
    mo_rates = [r["events_per_s"] for r in by_model]
    med_ev = statistics.median(ev_rates)
    med_mo = statistics.median(mo_rates)
    ratio = med_ev / med_raw
    problems = [p for r in by_event + by_model + ck for p in r["problems"]]
    result: dict[str, Any] = {
        "benchmark": "e2e",
        "events": n,
        "partitions": models,
        "features": {"numeric": len(K.NUMERIC), "categorical": len(K.CATEGORICAL)},
        "rounds": args.rounds,
        "raw_events_per_s": round(med_raw),
        "driftd_events_per_s": round(med_ev),
        "by_model_events_per_s": round(med_mo),
        "keyed_by_event_id_vs_model": round(med_ev / med_mo, 3),
        "ratio": round(ratio, 3),
        "ratio_per_round": [
            round(r["events_per_s"] / w, 3) for r, w in zip(by_event, raw, strict=True)
        ],
        "driftd_events_per_s_incl_startup": round(
            statistics.median(r["events_per_s_incl_startup"] for r in by_event)
        ),
        "startup_s": round(statistics.median(r["startup_s"] for r in by_event), 3),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in by_event + by_model),
        "replay_events_per_s": round(statistics.median(r["events_per_s"] for r in replays)),
        "replay_runs": [round(r["events_per_s"]) for r in replays],
        "replay_startup_s": round(statistics.median(r["startup_s"] for r in replays), 3),
        "raw_runs": [round(x) for x in raw],
        "driftd_runs": [round(x) for x in ev_rates],
        "by_model_runs": [round(x) for x in mo_rates],
        "targets": {
            "ratio": TARGET_RATIO,
            "replay_events_per_s": TARGET_REPLAY_EVENTS_PER_S,
            "confluent_events_per_s": TARGET_CONFLUENT_EVENTS_PER_S,
            "confluent_ratio": TARGET_CONFLUENT_RATIO,
        },
        "targets_met": ratio >= TARGET_RATIO
        and statistics.median(r["events_per_s"] for r in replays) >= TARGET_REPLAY_EVENTS_PER_S,
        "problems": problems,
        "compression": args.compression,
        "machine": K.machine(),
    }
    if base:
        b_rates = [r["events_per_s"] for r in base]
        result["baseline"] = {
            "rev": args.baseline,
            "by_model_events_per_s": round(statistics.median(b_rates)),
            "runs": [round(x) for x in b_rates],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in base),
        }
        result["keyed_by_event_id_vs_baseline_by_model"] = round(
            med_ev / statistics.median(b_rates), 3
        )
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
        result["targets_met"] = (
            result["targets_met"]
            and ck_med >= TARGET_CONFLUENT_EVENTS_PER_S
            and ck_med / ck_med_raw >= TARGET_CONFLUENT_RATIO
        )
    log("")
    log(f"raw kafka-python ceiling  : {med_raw:>10,.0f} events/s  ({K.spread(raw)})")
    log(
        f"driftd, keyed by event id : {med_ev:>10,.0f} events/s  ({K.spread(ev_rates)})"
        f"  ratio {ratio:.2f} (target {TARGET_RATIO})"
    )
    log(f"driftd, keyed by model    : {med_mo:>10,.0f} events/s  ({K.spread(mo_rates)})")
    log(
        f"driftd replay of the file : {result['replay_events_per_s']:>10,} events/s"
        f"  (target {TARGET_REPLAY_EVENTS_PER_S:,}/s; start-up {result['replay_startup_s']} s)"
    )
    if base:
        log(
            f"{args.baseline}, by model   : {result['baseline']['by_model_events_per_s']:>10,}"
            f" events/s  ({K.spread([r['events_per_s'] for r in base])})"
        )
    if ck:
        c = result["confluent"]
        log(
            f"confluent-kafka ceiling   : {c['raw_events_per_s']:>10,} events/s;  driftd with "
            f"source confluent {c['driftd_events_per_s']:,} events/s, ratio {c['ratio']:.2f}"
            f" (targets {TARGET_CONFLUENT_EVENTS_PER_S:,}/s, {TARGET_CONFLUENT_RATIO})"
        )
    log(
        f"start-up to /readyz       : {result['startup_s']:.2f} s;  "
        f"peak RSS {result['peak_rss_mb']} MB"
    )
    if problems:
        log(f"PROBLEMS: {problems}")
    if args.json:
        print(json.dumps(result, separators=(",", ":")), flush=True)
    return result


if __name__ == "__main__":
    main()

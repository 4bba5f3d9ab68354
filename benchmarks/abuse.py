"""What a hostile stream, a crowded port and a crash loop cost driftd (issue 13).

    python -m benchmarks.abuse [--json] [--events 300000] [--bootstrap HOST:PORT]

1. **A crowded port.** The e2e workload (4 models, 4 partitions, keyed by event id) is consumed
   by ``driftd run`` twice in the same run: alone, and while 1,000 idle connections are held
   open and 50 pollers each scrape ``/metrics`` or ``/api/v1/monitors`` twice a second (100
   requests/s: Prometheus scrapes once per 15 s).
   Reported: events/s of each, their ratio (target ≥ 0.8), ``/readyz`` latency during the
   crowd (p99, worst), checkpoint failures (must be 0) and connections refused to make room.
2. **Invented versions.** 200,000 events each naming a new ``model_version`` go through the
   pipeline in process (``max_versions: 50``): events/s, versions kept, the size of a scrape.
3. **Year 9000.** One event dated 9000-01-01 in the middle of a time-window stream: windows
   evaluated before and after it, and how it was counted.
4. **Crash loop.** ``driftd run`` killed with SIGKILL five times mid-stream, then run to the
   end: stray files left in the checkpoint directory (must be 0), events merged exactly once.
5. **A slow-drip receiver.** An alert whose receiver answers after 30 s, then an alert of
   another version: how long the second one waits (``timeout_s`` 5 s, 4 attempts in flight).

With ``--json`` the last line is one JSON object with every figure above.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson

from benchmarks import _kafka as K

TARGET_CROWD_RATIO = 0.8


def log(msg: str) -> None:
    print(msg, flush=True)


def produce_keyed(bootstrap: str, topic: str, n: int, models: int) -> None:
    producer = K.fast_producer(bootstrap)
    per = n // models
    try:
        for m in range(models):
            for v in K.make_events(per, model=m):
                producer.send(topic, value=v, key=orjson.loads(v)["event_id"].encode())
        producer.flush(300)
    finally:
        producer.close(30)


def crowd(base: str, stop: threading.Event, latencies: list[float]) -> dict[str, int]:
    """1,000 idle sockets and 50 pollers until ``stop``; /readyz latencies meanwhile."""
    host, port = base.removeprefix("http://").split(":")
    idle = []
    for _ in range(1000):
        try:
            idle.append(socket.create_connection((host, int(port)), timeout=5))
        except OSError:
            break
    scrapes = [0]
    errors = [0]

    def poller(path: str) -> None:
        while not stop.wait(0.5):
            try:
                with urllib.request.urlopen(base + path, timeout=10) as r:
                    r.read()
                scrapes[0] += 1
            except Exception:  # noqa: BLE001 - counted
                errors[0] += 1

    threads = [
        threading.Thread(target=poller, args=("/metrics" if i % 2 else "/api/v1/monitors",))
        for i in range(50)
    ]
    for t in threads:
        t.start()
    while not stop.is_set():
        t0 = time.perf_counter()
        code, _ = K.http_get(base + "/readyz", timeout=10)
        latencies.append(time.perf_counter() - t0 if code == 200 else 10.0)
        time.sleep(0.2)
    for t in threads:
        t.join(15)
    for s in idle:
        s.close()
    return {"idle_connections": len(idle), "scrapes": scrapes[0], "scrape_errors": errors[0]}


def run_consumer(
    work: Path, tag: str, bootstrap: str, topic: str, profile: Path, n: int, crowded: bool
) -> dict[str, Any]:
    cfg = K.write_config(
        work / f"{tag}.yaml",
        bootstrap=bootstrap,
        topic=topic,
        group=f"abuse-{tag}-{uuid.uuid4().hex[:6]}",
        models=4,
        profile=profile,
        state_dir=work / f"state-{tag}",
    )
    d = K.DriftdProcess(cfg, work / f"{tag}.log")
    stop = threading.Event()
    lat: list[float] = []
    crowd_result: dict[str, int] = {}
    try:
        ready_s = d.wait_ready()
        th = None
        if crowded:
            th = threading.Thread(target=lambda: crowd_result.update(crowd(d.bases[0], stop, lat)))
            th.start()
            time.sleep(1.0)  # the crowd is in place before the clock starts mattering
        done_s, _ = K.wait_counted(d, n, timeout_s=900)
        metrics = d.metrics()
        stop.set()
        if th is not None:
            th.join(60)
    finally:
        stop.set()
        d.stop()
    out: dict[str, Any] = {
        "events_per_s": n / (done_s - ready_s),
        "checkpoint_failures": K.metric_sum(metrics, "driftd_checkpoint_failures_total"),
        "refused": K.metric_sum(metrics, "driftd_http_connections_refused_total"),
    }
    if crowded:
        out |= crowd_result
        out["readyz_p99_s"] = (
            round(float(sorted(lat)[int(0.99 * (len(lat) - 1))]), 4) if lat else None
        )
        out["readyz_max_s"] = round(max(lat), 4) if lat else None
        out["readyz_probes"] = len(lat)
        out["readyz_failed"] = sum(x >= 10.0 for x in lat)  # not 200 (counted as 10 s above)
    return out


def invented_versions(work: Path, profile: Path, n: int) -> dict[str, Any]:
    from prometheus_client import generate_latest

    from driftd.config import validate_config
    from driftd.metrics import build_registry
    from driftd.runtime.pipeline import Pipeline
    from driftd.types import RawRecord

    mon = K.monitor_config_dict("m0", K.model_name(0), profile)
    mon["max_versions"] = 50
    p = Pipeline(validate_config({"monitors": [mon], "state": {"dir": str(work / "iv")}}))
    template = orjson.loads(K.make_events(1, model=0)[0])
    lines = [
        orjson.dumps({**template, "model_version": f"inv-{i}", "event_id": str(i)})
        for i in range(n)
    ]
    t0 = time.perf_counter()
    for i in range(0, n, 5000):
        p.process([RawRecord(v, 0, None) for v in lines[i : i + 5000]])
    secs = time.perf_counter() - t0
    scrape = generate_latest(build_registry(p.status))
    s = p.summary()
    return {
        "events": n,
        "events_per_s": round(n / secs),
        "versions_kept": len(p.by_name["m0"].versions),
        "evicted": p.by_name["m0"].evicted,
        "rejected": s["rejected"],
        "scrape_bytes": len(scrape),
    }


def year_9000(work: Path, profile: Path) -> dict[str, Any]:
    from driftd.config import validate_config
    from driftd.runtime.replay import replay

    mon = K.monitor_config_dict(
        "m0",
        K.model_name(0),
        profile,
        window={"type": "tumbling_time", "size_s": 1, "allowed_lateness_s": 0},
        policy={"min_events": 100},
    )
    cfg = validate_config({"monitors": [mon], "state": {"dir": str(work / "y9")}})
    lines = K.make_events(10_000, model=0, rate_per_s=1000.0)  # 10 s of event time
    bomb = orjson.dumps({**orjson.loads(lines[5000]), "ts": "9000-01-01T00:00:00Z"})
    out = list(replay(lines[:5000] + [bomb] + lines[5000:], cfg))
    evals = [o for o in out if o["type"] == "evaluation"]
    return {
        "evaluations": len(evals),
        "evaluations_after_bomb": sum(1 for e in evals if e["window"]["end_position"] > 5001),
        "rejected": out[-1]["rejected"],
    }


def crash_loop(work: Path, bootstrap: str, profile: Path, kills: int = 5) -> dict[str, Any]:
    from benchmarks.latency import partition_of

    topic = K.create_topic(bootstrap, f"abuse-kill-{uuid.uuid4().hex[:6]}", 4)
    events = K.make_events(40_000, model=0)
    cfg = K.write_config(
        work / "kill.yaml",
        bootstrap=bootstrap,
        topic=topic,
        group=f"abuse-kill-{uuid.uuid4().hex[:6]}",
        models=1,
        profile=profile,
        state_dir=work / "state-kill",
        state={"checkpoint_interval_s": 0.5},
    )
    producer = K.fast_producer(bootstrap)
    done = threading.Event()

    def produce() -> None:
        for i, v in enumerate(events):
            eid = orjson.loads(v)["event_id"].encode()
            producer.send(topic, value=v, key=eid, partition=partition_of(eid, 4))
            if i % 2000 == 0:
                time.sleep(0.1)
        producer.flush(60)
        done.set()

    th = threading.Thread(target=produce)
    th.start()
    for k in range(kills):
        d = K.DriftdProcess(cfg, work / f"kill-{k}.log")
        d.wait_ready()
        time.sleep(0.7)
        d.proc.kill()
        d.proc.wait()
    th.join()
    producer.close(10)
    d = K.DriftdProcess(cfg, work / "kill-last.log")
    d.wait_ready()
    # merged state, not this process's counters (they start at 0 after each restart): the
    # version's event count as restored and folded on, through the status API
    deadline = time.monotonic() + 300
    counted = 0
    while time.monotonic() < deadline:
        code, body = K.http_get(d.bases[0] + "/api/v1/monitors/m0")
        if code == 200:
            counted = sum(v["events"] for v in orjson.loads(body)["versions"].values())
            if counted >= len(events):
                break
        time.sleep(0.5)
    time.sleep(1.0)  # a late duplicate would show now
    code, body = K.http_get(d.bases[0] + "/api/v1/monitors/m0")
    counted = sum(v["events"] for v in orjson.loads(body)["versions"].values())
    d.stop()
    ck = work / "state-kill" / "checkpoints"
    doc = orjson.loads((ck / "MANIFEST.json").read_bytes())
    named = {e["file"] for e in doc["entries"].values()} | {"LOCK", "MANIFEST.json"}
    stray = [p.name for p in ck.iterdir() if p.name not in named]
    return {"kills": kills, "stray_files": len(stray), "events": len(events), "counted": counted}


def slow_drip(work: Path) -> dict[str, Any]:
    from driftd.actions.webhook import WebhookAction
    from driftd.demo.sink import WebhookSink

    arrived: dict[str, float] = {}
    with WebhookSink(None) as sink:
        sink.respond(204, delay_s=30.0, times=1)  # the first request: an answer 30 s late
        action = WebhookAction(
            name="a", url=sink.url, secret=b"s", outbox_dir=work / "outbox", timeout_s=5.0
        )
        action.start()
        t0 = time.monotonic()
        for version in ("slow", "fast"):
            action.submit(
                {"id": f"alert-{version}", "type": "drift.detected", "monitor": "m",
                 "model_version": version}
            )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and "fast" not in arrived:
            for r in sink.valid_requests:
                arrived.setdefault(orjson.loads(r.body)["model_version"], time.monotonic())
            time.sleep(0.01)
        action.stop(2.0)
    return {"fast_alert_after_s": round(arrived.get("fast", float("nan")) - t0, 3)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--versions", type=int, default=200_000)
    ap.add_argument("--bootstrap")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="driftd-bench-abuse-"))
    log(f"abuse: work dir {work}; machine {K.machine()}")
    from benchmarks.e2e import build_profile_cli, warm_kernels

    warm_kernels()
    profile = build_profile_cli(work)
    result: dict[str, Any] = {"benchmark": "abuse", "machine": K.machine()}
    try:
        with K.broker(args.bootstrap, log) as bootstrap:
            topic = K.create_topic(bootstrap, f"abuse-{uuid.uuid4().hex[:6]}", 4)
            n = args.events // 4 * 4
            produce_keyed(bootstrap, topic, n, 4)
            runs = []
            for r in range(2):
                alone = run_consumer(work, f"alone{r}", bootstrap, topic, profile, n, False)
                crowded = run_consumer(work, f"crowd{r}", bootstrap, topic, profile, n, True)
                runs.append((alone, crowded))
                log(
                    f"round {r + 1}: alone {alone['events_per_s']:,.0f} events/s; with 1,000 idle"
                    f" connections and 50 pollers {crowded['events_per_s']:,.0f} events/s"
                    f" (readyz p99 {crowded['readyz_p99_s']} s, {crowded['readyz_failed']} of"
                    f" {crowded['readyz_probes']} probes failed, {crowded['scrapes']} scrapes,"
                    f" checkpoint failures {crowded['checkpoint_failures']:.0f})"
                )
            alone_rate = statistics.median(a["events_per_s"] for a, _ in runs)
            crowd_rate = statistics.median(c["events_per_s"] for _, c in runs)
            result["http_crowd"] = {
                "events": n,
                "alone_events_per_s": round(alone_rate),
                "crowded_events_per_s": round(crowd_rate),
                "ratio": round(crowd_rate / alone_rate, 3),
                "target_ratio": TARGET_CROWD_RATIO,
                "runs": [{"alone": a, "crowded": c} for a, c in runs],
            }
            result["crash_loop"] = crash_loop(work, bootstrap, profile)
            log(f"crash loop: {result['crash_loop']}")
        result["invented_versions"] = invented_versions(work, profile, args.versions)
        log(f"invented versions: {result['invented_versions']}")
        result["year_9000"] = year_9000(work, profile)
        log(f"year 9000: {result['year_9000']}")
        result["slow_drip"] = slow_drip(work)
        log(f"slow-drip receiver: {result['slow_drip']}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["targets_met"] = (
        result["http_crowd"]["ratio"] >= TARGET_CROWD_RATIO
        and result["crash_loop"]["stray_files"] == 0
        and result["crash_loop"]["counted"] == result["crash_loop"]["events"]
        and all(
            c["checkpoint_failures"] == 0 for r in result["http_crowd"]["runs"] for c in r.values()
        )  # fmt: skip
    )
    if args.json:
        print(json.dumps(result, separators=(",", ":")), flush=True)
    return result


if __name__ == "__main__":
    main()

"""Shared helpers for the broker-backed benchmarks (e2e, latency, soak) and the memory one.

- a private single-node broker driven by ``scripts/kafka/kafka.sh`` (its own state directory
  and free ports, so it never disturbs a developer's broker or the test suite's);
- the benchmark workload: seeded, generated offline, 20 numeric + 3 categorical features, a
  numeric score, one model per partition, pre-encoded JSON values;
- a reference profile compiled from that workload, a config writer, and a handle on a
  ``driftd run`` process (readiness, ``/metrics`` counters, RSS from ``/proc``).

Copied in spirit from ``tests/kafka_harness.py`` (benchmarks do not import from ``tests/``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
KAFKA_SCRIPT = REPO_ROOT / "scripts" / "kafka" / "kafka.sh"

# --------------------------------------------------------------------------- workload

NUMERIC = tuple(f"f{j:02d}" for j in range(20))
CATEGORICAL = {
    "c0": (("EU", "US", "APAC", "LATAM"), (0.4, 0.35, 0.15, 0.10)),
    "c1": (
        ("employed", "self_employed", "unemployed", "retired", "student"),
        (0.62, 0.14, 0.07, 0.12, 0.05),
    ),
    "c2": (("web", "app", "branch"), (0.5, 0.4, 0.1)),
}
T0_MS = 1_795_000_000_000  # 2026-11-18: a fixed event-time origin, so runs are reproducible


def model_name(i: int) -> str:
    return f"bench-{i}"


def _numeric_block(rng: np.random.Generator, n: int, shift: float) -> np.ndarray[Any, Any]:
    """``(n, 20)`` feature values: normal, log-normal, counts, proportions, uniform."""
    out = np.empty((n, len(NUMERIC)))
    for j in range(len(NUMERIC)):
        kind = j % 5
        if kind == 0:
            col = rng.normal(50.0 + 3 * j + shift * 10.0, 10.0, n).round(3)
        elif kind == 1:
            col = rng.lognormal(8.0 + shift * 0.5, 0.6, n).round(2)
        elif kind == 2:
            col = rng.poisson(4.0 + j / 5 + shift * 3, n).astype(np.float64)
        elif kind == 3:
            col = rng.beta(2.0 + shift, 5.0, n).round(5)
        else:
            col = rng.uniform(0.0, 100.0 + shift * 50, n).round(2)
        out[:, j] = col
    return out


def make_events(
    n: int,
    *,
    model: int,
    version: str = "v1",
    seed: int = 0,
    start: int = 0,
    shift: float = 0.0,
    rate_per_s: float = 10_000.0,
    with_ts: bool = True,
) -> list[bytes]:
    """``n`` JSON events (bytes, no newline) of model ``bench-<model>``.

    ``start`` numbers the events (ids and event times continue a model's stream); ``shift``
    > 0 moves every feature and the score (a drifted model version). Without ``with_ts`` the
    events carry no ``ts`` (driftd then takes the Kafka record timestamp).
    """
    rng = np.random.default_rng([seed, model, start])
    num = _numeric_block(rng, n, shift)
    cats = []
    for labels, p in CATEGORICAL.values():
        cats.append(np.asarray(labels, dtype=object)[rng.choice(len(labels), n, p=p)])
    z = (num[:, 0] - 50.0) / 10.0 - 0.5 * num[:, 3] + rng.normal(0.0, 1.0, n)
    score = (1.0 / (1.0 + np.exp(-(z + shift * 2.0)))).round(6)
    ts_ms = T0_MS + ((start + np.arange(n)) * (1000.0 / rate_per_s)).astype(np.int64)
    ts = np.datetime_as_string(ts_ms.astype("datetime64[ms]"), unit="ms")
    # counts (every 5th column from f02) are JSON integers, the rest floats
    cols = [
        (num[:, j].astype(np.int64) if j % 5 == 2 else num[:, j]).tolist()
        for j in range(len(NUMERIC))
    ]
    rows = list(zip(*cols, strict=True))
    c0, c1, c2 = (c.tolist() for c in cats)
    scores = score.tolist()
    tss = ts.tolist()
    name = model_name(model)
    prefix = f"{name}-{version}-{seed}-"
    dumps = orjson.dumps
    names = NUMERIC
    out = []
    for i in range(n):
        feats = dict(zip(names, rows[i], strict=True))
        feats["c0"] = c0[i]
        feats["c1"] = c1[i]
        feats["c2"] = c2[i]
        event = {
            "event_id": prefix + str(start + i),
            "model": name,
            "model_version": version,
            "ts": tss[i] + "Z",
            "features": feats,
            "prediction": scores[i],
        }
        if not with_ts:
            del event["ts"]
        out.append(dumps(event))
    # orjson's result objects keep their ~8 KiB initial buffer; one join + split gives
    # exact-size copies (what a Kafka client hands out), so holding events costs their size.
    return b"\n".join(out).split(b"\n") if out else []


def build_profile(path: Path, events: int = 20_000, seed: int = 999) -> Path:
    """Compile the workload's reference profile (one file serves every model)."""
    from driftd.config import SchemaConfig
    from driftd.reference.profile import build_profile as _build

    mon = monitor_config_dict("bench", "bench-0", path)
    from driftd.config import MonitorConfig

    prof = _build(
        MonitorConfig.model_validate(mon), SchemaConfig(), make_events(events, model=0, seed=seed)
    )
    prof.save(path)
    return path


def monitor_config_dict(
    name: str,
    model: str,
    profile: Path,
    *,
    window: dict[str, Any] | None = None,
    policy: dict[str, Any] | None = None,
    actions: Sequence[str] = (),
    features: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One monitor over the workload's 23 features (tests chosen automatically) + PSI score."""
    feats = features or {
        **{n: {"kind": "numeric"} for n in NUMERIC},
        **{c: {"kind": "categorical"} for c in CATEGORICAL},
    }
    mon: dict[str, Any] = {
        "name": name,
        "model": model,
        "reference": {"type": "profile", "path": str(profile)},
        "window": window or {"type": "sliding", "events": 5000, "step": 1000},
        "features": feats,
        "prediction": {"kind": "numeric", "test": "psi"},
        "policy": policy or {},
    }
    if actions:
        mon["actions"] = list(actions)
    return mon


def write_config(
    path: Path,
    *,
    bootstrap: str,
    topic: str,
    group: str,
    models: int,
    profile: Path,
    state_dir: Path,
    listen: str = "127.0.0.1:0",
    window: dict[str, Any] | None = None,
    policy: dict[str, Any] | None = None,
    webhook_url: str | None = None,
    state: dict[str, Any] | None = None,
    kafka: dict[str, Any] | None = None,
    source: str = "kafka",
) -> Path:
    """A driftd config: one monitor ``m<i>`` per model ``bench-<i>``; defaults elsewhere."""
    actions = ["rollback"] if webhook_url else []
    cfg: dict[str, Any] = {
        "kafka": {
            "bootstrap_servers": [bootstrap],
            "topics": [topic],
            "group_id": group,
            **(kafka or {}),
        },
        "monitors": [
            monitor_config_dict(
                f"m{i}", model_name(i), profile, window=window, policy=policy, actions=actions
            )
            for i in range(models)
        ],
        "http": {"listen": listen},
        "state": {"dir": str(state_dir), **(state or {})},
    }
    if source != "kafka":
        cfg["source"] = {"type": source}
    if webhook_url:
        cfg["actions"] = {
            "rollback": {
                "type": "webhook",
                "url": webhook_url,
                "secret": {"env": "DRIFTD_BENCH_SECRET"},
                "backoff_initial_s": 0.05,
                "backoff_max_s": 1.0,
            }
        }
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


# --------------------------------------------------------------------------- ports, /proc


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports on 127.0.0.1 free right now (inherently racy)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def _status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(x) for x in fh.read().split()]
    except OSError:
        return []


def rss_mb(pid: int) -> float:
    """Current resident set size of ``pid`` (MiB)."""
    return _status_kb(pid, "VmRSS") / 1024.0


def rss_split_mb(pid: int) -> tuple[float, float]:
    """(anonymous, file-backed) parts of the RSS (MiB). File-backed pages are mostly shared
    libraries (numba's LLVM, BLAS), shared with every other process that maps them."""
    return _status_kb(pid, "RssAnon") / 1024.0, _status_kb(pid, "RssFile") / 1024.0


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size of ``pid`` so far (``VmHWM``, MiB)."""
    return _status_kb(pid, "VmHWM") / 1024.0


def self_peak_rss_mb() -> float:
    return peak_rss_mb(os.getpid())


# --------------------------------------------------------------------------- broker


class Broker:
    """A private single-node KRaft broker on free loopback ports, in its own state directory.

    The jar cache stays in ``<repo>/.cache/kafka`` (``make kafka-fetch``). A watchdog in
    ``kafka.sh`` stops the broker if this process dies without calling :meth:`stop`.
    """

    def __init__(self) -> None:
        self.port, self.controller_port = free_ports(2)
        self.state_dir = Path(tempfile.mkdtemp(prefix="driftd-bench-kafka-"))

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _run(self, cmd: str, timeout: float) -> None:
        env = {
            **os.environ,
            "KAFKA_HOME": os.environ.get("KAFKA_HOME", str(REPO_ROOT / ".cache" / "kafka")),
            "KAFKA_STATE_DIR": str(self.state_dir),
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "KAFKA_WATCH_PID": str(os.getpid()),
        }
        proc = subprocess.run(
            ["bash", str(KAFKA_SCRIPT), cmd],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"kafka.sh {cmd} failed ({proc.returncode}):\n{proc.stderr}")

    def start(self) -> Broker:
        self._run("up", timeout=960)
        return self

    def stop(self) -> None:
        try:
            self._run("down", timeout=90)
        finally:
            shutil.rmtree(self.state_dir, ignore_errors=True)


@contextlib.contextmanager
def broker(bootstrap: str | None, log: Any = print) -> Iterator[str]:
    """Yield ``bootstrap`` if given, else start a private broker (and stop it afterwards)."""
    if bootstrap:
        yield bootstrap
        return
    b = Broker()
    t0 = time.monotonic()
    b.start()
    log(f"broker: started a private Kafka on {b.bootstrap} in {time.monotonic() - t0:.1f} s")
    try:
        yield b.bootstrap
    finally:
        b.stop()


def _admin(bootstrap: str) -> Any:
    from kafka import KafkaAdminClient

    return KafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="driftd-bench-admin", request_timeout_ms=30000
    )


def create_topic(bootstrap: str, name: str, partitions: int) -> str:
    admin = _admin(bootstrap)
    try:
        admin.create_topics(
            {name: {"num_partitions": partitions, "replication_factor": 1}}, timeout_ms=30000
        )
        admin.wait_for_topics([name], timeout_ms=30000)
    finally:
        admin.close()
    return name


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, client_id="driftd-bench-offsets")
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        return {tp.partition: off for tp, off in c.end_offsets(tps).items()}
    finally:
        c.close(autocommit=False)


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    admin = _admin(bootstrap)
    try:
        res = admin.list_group_offsets({group: None})
    finally:
        admin.close()
    return {
        tp.partition: om.offset
        for tp, om in res.get(group, {}).items()
        if tp.topic == topic and om.offset >= 0
    }


def fast_producer(bootstrap: str, compression: str | None = None, linger_ms: int = 20) -> Any:
    """A producer for bulk loading: 1 MiB batches, 20 ms linger, leader acks only."""
    from kafka import KafkaProducer

    return KafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="driftd-bench-producer",
        acks=1,
        linger_ms=linger_ms,
        batch_size=1024 * 1024,
        metrics_enabled=False,
        max_request_size=8 * 1024 * 1024,
        compression_type=compression,
    )


def raw_settings(bootstrap: str, topic: str, group: str) -> dict[str, Any]:
    """driftd's own consumer settings (``consumer_settings``) for a plain KafkaConsumer."""
    from driftd.config import KafkaConfig
    from driftd.sources.kafka import consumer_settings

    cfg = KafkaConfig(bootstrap_servers=[bootstrap], topics=[topic], group_id=group)
    return consumer_settings(cfg)


def raw_consume(bootstrap: str, topic: str, n: int, group: str, timeout_s: float = 600) -> float:
    """The ceiling: kafka-python consume-and-discard of ``n`` records with driftd's consumer
    settings and ``poll`` batch size (CRC checks on). Returns seconds from subscribing to the
    ``n``-th record."""
    from kafka import KafkaConsumer

    from driftd.config import KafkaConfig

    settings = raw_settings(bootstrap, topic, group)
    k = KafkaConfig()
    t0 = time.perf_counter()
    c = KafkaConsumer(**settings)
    c.subscribe([topic])
    got = 0
    deadline = time.monotonic() + timeout_s
    try:
        while got < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"raw consumer read {got}/{n} records in {timeout_s}s")
            for recs in c.poll(
                timeout_ms=k.poll_timeout_ms, max_records=k.max_poll_records
            ).values():
                got += len(recs)
        return time.perf_counter() - t0
    finally:
        c.close(autocommit=False)


def raw_consume_confluent(
    bootstrap: str, topic: str, n: int, group: str, timeout_s: float = 600
) -> float:
    """The confluent-kafka ceiling: consume-and-discard of ``n`` records with the settings
    driftd's confluent source uses (``driftd.sources.confluent.consumer_settings``: CRC checks
    on, same fetch sizes) and the same batch size. Seconds from subscribing to the last one."""
    from confluent_kafka import Consumer

    from driftd.config import KafkaConfig
    from driftd.sources.confluent import consumer_settings

    k = KafkaConfig(bootstrap_servers=[bootstrap], topics=[topic], group_id=group)
    t0 = time.perf_counter()
    c = Consumer(consumer_settings(k))
    c.subscribe([topic])
    got = 0
    deadline = time.monotonic() + timeout_s
    try:
        while got < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"raw consumer read {got}/{n} records in {timeout_s}s")
            for m in c.consume(num_messages=k.max_poll_records, timeout=k.poll_timeout_ms / 1000):
                if m.error() is None:
                    got += 1
        return time.perf_counter() - t0
    finally:
        c.close()


# --------------------------------------------------------------------------- driftd process


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return int(r.status), bytes(r.read())
    except urllib.error.HTTPError as e:
        return int(e.code), e.read()
    except OSError:
        return 0, b""


def metric_sum(text: str, name: str) -> float:
    """Sum of every sample of ``name`` (any labels) in a Prometheus text exposition."""
    total = 0.0
    prefix = name + "{"
    for line in text.splitlines():
        if line.startswith(prefix) or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


class DriftdProcess:
    """``driftd run -c CONFIG`` as a subprocess (``--workers N`` too): readiness, counters,
    RSS of the whole process tree."""

    def __init__(
        self,
        config: Path,
        log: Path,
        *,
        workers: int = 1,
        env: dict[str, str] | None = None,
        profile_out: Path | None = None,
    ) -> None:
        self.workers = workers
        self.ports = free_ports(1)
        port = self.ports[0]
        if workers > 1:  # worker i listens on port + i
            port = _free_port_range(workers)
        self.bases = [f"http://127.0.0.1:{port + i}" for i in range(workers)]
        cmd = [sys.executable]
        if profile_out is not None:
            cmd += ["-m", "cProfile", "-o", str(profile_out)]
        cmd += ["-m", "driftd", "--log-level", "warning", "run", "-c", str(config)]
        cmd += ["--listen", f"127.0.0.1:{port}"]
        if workers > 1:
            cmd += ["--workers", str(workers)]
        self._fh = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.log = log
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            cmd,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=log.parent,  # absolute paths everywhere; driftd is imported as installed
        )
        self.peak_rss = 0.0

    def pids(self) -> list[int]:
        """The driftd process, or with ``--workers`` the supervisor and its workers."""
        return [self.proc.pid, *children(self.proc.pid)]

    def rss_mb(self) -> float:
        """Current RSS of the tree (MiB); also folded into :attr:`peak_rss`."""
        total = sum(rss_mb(p) for p in self.pids())
        self.peak_rss = max(self.peak_rss, total)
        return total

    def hwm_mb(self) -> float:
        """Peak RSS as the kernel counted it: max over processes for one, sum of the workers'
        peaks (an upper bound) for several."""
        pids = self.pids()
        if self.workers > 1:
            pids = pids[1:]
        return max(self.peak_rss, sum(peak_rss_mb(p) for p in pids))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def ready(self) -> bool:
        return all(http_get(b + "/readyz", 1.0)[0] == 200 for b in self.bases)

    def wait_ready(self, timeout_s: float = 120.0) -> float:
        """Seconds from process start until every worker's /readyz answers 200."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"driftd exited with {self.proc.returncode}; see {self.log}")
            if self.ready():
                return time.perf_counter() - self.started
            time.sleep(0.02)
        raise RuntimeError(f"driftd not ready after {timeout_s}s; see {self.log}")

    def metrics(self) -> str:
        return "\n".join(http_get(b + "/metrics")[1].decode() for b in self.bases)

    def events_total(self) -> float:
        return metric_sum(self.metrics(), "driftd_events_total")

    def lag(self) -> float:
        return metric_sum(self.metrics(), "driftd_consumer_lag")

    def stop(self, timeout_s: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._fh.close()
        return rc


def _free_port_range(n: int) -> int:
    """A base port with ``n`` consecutive free ports (checked, still racy)."""
    for _ in range(50):
        base = free_ports(1)[0]
        if base + n > 65535:
            continue
        socks = []
        try:
            for i in range(n):
                s = socket.socket()
                s.bind(("127.0.0.1", base + i))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no range of free ports found")


def wait_counted(
    d: DriftdProcess, n: int, timeout_s: float, min_interval_s: float = 0.02
) -> tuple[float, float]:
    """Poll ``/metrics`` until ``driftd_events_total`` (summed) reaches ``n``.

    Returns (seconds from process start to the poll that saw it, the previous poll's time
    from process start) — the last event was counted in between. Polling is adaptive: it is
    slow while far from the end (scrapes cost driftd CPU) and every ``min_interval_s`` near it.
    """
    deadline = time.monotonic() + timeout_s
    prev_t = 0.0
    last_count, last_t = 0.0, time.perf_counter()
    while time.monotonic() < deadline:
        if not d.alive():
            raise RuntimeError(f"driftd exited with {d.proc.returncode}; see {d.log}")
        now = time.perf_counter()
        count = d.events_total()
        d.rss_mb()
        if count >= n:
            return now - d.started, prev_t
        prev_t = now - d.started
        rate = (count - last_count) / max(now - last_t, 1e-6)
        last_count, last_t = count, now
        remaining = (n - count) / rate if rate > 0 else 1.0
        time.sleep(min(0.5, max(min_interval_s, remaining / 4)))
    raise RuntimeError(f"driftd counted {d.events_total():.0f}/{n} events in {timeout_s}s")


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import platform

    model = ""
    try:
        with open("/proc/cpuinfo") as fh:
            model = next(
                (ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), ""
            )
    except OSError:
        pass
    try:
        from importlib.metadata import version

        kafka_python = version("kafka-python")
    except Exception:  # noqa: BLE001
        kafka_python = "?"
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpus": os.cpu_count(),
        "cpu": model,
        "mem_gb": round(mem_gb, 1),
        "python": platform.python_version(),
        "kafka_python": kafka_python,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def spread(values: Sequence[float]) -> str:
    if not values:
        return "-"
    return f"min {min(values):,.0f} / max {max(values):,.0f}"

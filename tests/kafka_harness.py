"""Helpers for tests that need a real Kafka broker.

The broker itself is managed by ``scripts/kafka/kafka.sh`` (single-node KRaft,
jars resolved from Maven Central); :class:`KafkaBroker` is a thin wrapper that
runs the script for one port. The other helpers are small kafka-python
conveniences (topic creation that waits for leaders, synchronous produce,
committed-offset lookup).

No pytest import here: usable from benchmarks / ad-hoc scripts too.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

REPO_ROOT = Path(__file__).resolve().parents[1]
KAFKA_SCRIPT = REPO_ROOT / "scripts" / "kafka" / "kafka.sh"

# Big enough for ~3 MB prediction-log records (broker allows 10 MiB).
MAX_REQUEST_SIZE = 8 * 1024 * 1024


class KafkaHarnessError(RuntimeError):
    """The broker could not be started/stopped, or a helper timed out."""


# --------------------------------------------------------------------------- kafka-python fixes


def apply_kafka_python_workarounds() -> None:
    """Idempotently patch kafka-python bugs that break ``filterwarnings = error``.

    kafka-python 3.0.12 (latest at the time of writing) does not close the
    socket when a connect attempt fails (e.g. ECONNREFUSED while a broker is
    down/restarting): ``kafka.net.inet.KafkaNetSocket.sock_connect`` raises and
    the socket is only reclaimed by GC, emitting a ResourceWarning that pytest
    turns into an error (often in an unrelated test). Close it on failure.
    """
    from kafka.net import inet

    orig = inet.KafkaNetSocket.sock_connect
    if getattr(orig, "_driftd_closes_on_error", False):
        return

    async def sock_connect(
        self: Any, net: Any, sock: socket.socket, sockaddr: Any, timeout_at: Any = None
    ) -> Any:
        try:
            return await orig(self, net, sock, sockaddr, timeout_at=timeout_at)
        except BaseException:
            sock.close()
            raise

    sock_connect._driftd_closes_on_error = True  # type: ignore[attr-defined]
    inet.KafkaNetSocket.sock_connect = sock_connect  # type: ignore[method-assign]


apply_kafka_python_workarounds()


# --------------------------------------------------------------------------- ports


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (inherently racy)."""
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports (sockets held open together so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# --------------------------------------------------------------------------- broker


class KafkaBroker:
    """One single-node KRaft broker on 127.0.0.1, driven by ``kafka.sh``.

    ``state_dir`` (data dir, config, pid file, log) defaults to the script's
    ``KAFKA_HOME`` (``<repo>/.cache/kafka``); the jar cache always lives in
    ``kafka_home`` so it is shared between runs.

    The broker is watched: if this Python process dies without calling
    :meth:`stop`, the broker is stopped shortly afterwards (``KAFKA_WATCH_PID``).
    """

    def __init__(
        self,
        port: int | None = None,
        controller_port: int | None = None,
        *,
        kafka_home: str | os.PathLike[str] | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        start_timeout_s: int = 60,
        stop_timeout_s: int = 30,
    ) -> None:
        if port is None or controller_port is None:
            p, c = free_ports(2)
            port = port if port is not None else p
            controller_port = controller_port if controller_port is not None else c
        self.port = port
        self.controller_port = controller_port
        self.kafka_home = Path(kafka_home) if kafka_home else REPO_ROOT / ".cache" / "kafka"
        self.state_dir = Path(state_dir) if state_dir else self.kafka_home
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s

    # -- properties ------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.state_dir / f"kafka-{self.port}.log"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / f"data-{self.port}"

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> KafkaBroker:
        """Fresh start: (fetch jars,) format an empty data dir, wait until ready.

        No-op if this broker is already running.
        """
        self._run("up", timeout=self.start_timeout_s + 900)  # + first-time maven fetch
        return self

    def stop(self) -> None:
        """Graceful stop (SIGTERM, SIGKILL after ``stop_timeout_s``). Keeps data."""
        self._run("down", timeout=self.stop_timeout_s + 30)

    def kill9(self) -> None:
        """SIGKILL immediately (simulated crash). Keeps the data dir."""
        self._run("kill9", timeout=30)

    def resume(self) -> None:
        """Start again on the existing data dir (after :meth:`stop`/:meth:`kill9`)."""
        self._run("start", timeout=self.start_timeout_s + 30)

    def restart(self, *, hard: bool = False) -> None:
        """Stop (gracefully, or ``kill -9`` if ``hard``) and start on the same data.

        Same port, same data, same cluster id. If the broker is not running it
        is simply started on the existing data.
        """
        if hard:
            self.kill9()
        else:
            self.stop()
        self.resume()

    def is_running(self) -> bool:
        return self._run("status", check=False).returncode == 0

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return f"(no log at {self.log_path})"

    def __enter__(self) -> KafkaBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"KafkaBroker(bootstrap={self.bootstrap!r}, state_dir={str(self.state_dir)!r})"

    # -- internals -------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            KAFKA_HOME=str(self.kafka_home),
            KAFKA_STATE_DIR=str(self.state_dir),
            KAFKA_PORT=str(self.port),
            KAFKA_CONTROLLER_PORT=str(self.controller_port),
            KAFKA_START_TIMEOUT=str(self.start_timeout_s),
            KAFKA_STOP_TIMEOUT=str(self.stop_timeout_s),
            KAFKA_WATCH_PID=str(os.getpid()),
        )
        return env

    def _run(
        self, cmd: str, *, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        try:
            proc = subprocess.run(
                ["bash", str(KAFKA_SCRIPT), cmd],
                env=self._env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            raise KafkaHarnessError(
                f"kafka.sh {cmd} timed out after {timeout}s for {self!r}\n"
                f"--- broker log tail ---\n{self.log_tail()}"
            ) from e
        if check and proc.returncode != 0:
            raise KafkaHarnessError(
                f"kafka.sh {cmd} failed (exit {proc.returncode}) for {self!r}\n"
                f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
            )
        return proc


# --------------------------------------------------------------------------- admin


def _admin(bootstrap: str, **kw: Any) -> KafkaAdminClient:
    kw.setdefault("request_timeout_ms", 30000)
    return KafkaAdminClient(bootstrap_servers=bootstrap, client_id="driftd-tests-admin", **kw)


def check_bootstrap(bootstrap: str, timeout_s: float = 15.0) -> dict[str, Any]:
    """Raise unless ``bootstrap`` answers a metadata request listing a broker."""
    admin = _admin(
        bootstrap,
        request_timeout_ms=int(timeout_s * 1000),
        bootstrap_timeout_ms=int(timeout_s * 1000),
    )
    try:
        cluster: dict[str, Any] = admin.describe_cluster()
    finally:
        admin.close()
    if not cluster.get("brokers"):
        raise KafkaHarnessError(f"{bootstrap}: metadata lists no brokers: {cluster!r}")
    return cluster


def unique_topic(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def create_topic(
    bootstrap: str,
    name: str,
    partitions: int = 1,
    *,
    configs: dict[str, str] | None = None,
    timeout_s: float = 30.0,
) -> str:
    """Create ``name`` (replication factor 1) and wait until every partition has
    a leader in the broker's metadata. Returns the topic name."""
    spec: dict[str, Any] = {"num_partitions": partitions, "replication_factor": 1}
    if configs:
        spec["configs"] = configs
    admin = _admin(bootstrap)
    try:
        admin.create_topics({name: spec}, timeout_ms=int(timeout_s * 1000))
        admin.wait_for_topics([name], timeout_ms=int(timeout_s * 1000))
        (desc,) = admin.describe_topics([name])
        got = len(desc["partitions"])
        if got != partitions:
            raise KafkaHarnessError(f"topic {name}: expected {partitions} partitions, got {got}")
    finally:
        admin.close()
    return name


def delete_topic(bootstrap: str, name: str) -> None:
    admin = _admin(bootstrap)
    try:
        admin.delete_topics([name])
    finally:
        admin.close()


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """``{partition: committed offset}`` of consumer group ``group`` on ``topic``
    (partitions without a commit are absent)."""
    deadline = time.monotonic() + 30
    while True:
        admin = _admin(bootstrap)
        try:
            result = admin.list_group_offsets({group: None})
            break
        except KafkaError as exc:
            # a fresh broker has no group coordinator until __consumer_offsets exists
            if not getattr(exc, "retriable", False) or time.monotonic() > deadline:
                raise
        finally:
            admin.close()
        time.sleep(0.5)
    return {
        tp.partition: om.offset
        for tp, om in result.get(group, {}).items()
        if tp.topic == topic and om.offset >= 0
    }


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """``{partition: log end offset}`` (i.e. the offset of the next record)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="driftd-tests-offsets")
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        return {tp.partition: off for tp, off in consumer.end_offsets(tps).items()}
    finally:
        consumer.close(autocommit=False)


# --------------------------------------------------------------------------- produce / consume


def produce(
    bootstrap: str,
    topic: str,
    values: Iterable[bytes | None],
    key: bytes | None = None,
    *,
    keys: Sequence[bytes | None] | None = None,
    partition: int | None = None,
    timeout_s: float = 60.0,
    **producer_config: Any,
) -> list[tuple[int, int]]:
    """Synchronously produce ``values`` (acks=all, small linger) and flush.

    ``key`` is used for every record unless ``keys`` (one per value) is given.
    Returns ``[(partition, offset), ...]`` in input order; raises on any
    delivery error.
    """
    values = list(values)
    if keys is not None and len(keys) != len(values):
        raise ValueError(f"len(keys)={len(keys)} != len(values)={len(values)}")
    cfg: dict[str, Any] = {
        "acks": "all",
        "linger_ms": 5,
        "max_request_size": MAX_REQUEST_SIZE,
        "client_id": "driftd-tests-producer",
    }
    cfg.update(producer_config)
    producer = KafkaProducer(bootstrap_servers=bootstrap, **cfg)
    try:
        futures = [
            producer.send(
                topic,
                value=v,
                key=keys[i] if keys is not None else key,
                partition=partition,
            )
            for i, v in enumerate(values)
        ]
        producer.flush(timeout=timeout_s)
        out = []
        for f in futures:
            md = f.get(timeout=timeout_s)
            out.append((md.partition, md.offset))
        return out
    finally:
        producer.close(timeout=timeout_s)


def consume(
    bootstrap: str,
    topic: str,
    count: int,
    *,
    group_id: str | None = None,
    commit: bool = False,
    timeout_s: float = 30.0,
    **consumer_config: Any,
) -> list[Any]:
    """Read ``count`` records of ``topic`` from the earliest offset (or from the
    group's committed position). With ``commit=True`` (needs ``group_id``) the
    consumed positions are committed synchronously before returning.
    Raises :class:`KafkaHarnessError` if fewer than ``count`` arrive in time."""
    if commit and group_id is None:
        raise ValueError("commit=True requires a group_id")
    cfg: dict[str, Any] = {
        "group_id": group_id,
        "auto_offset_reset": "earliest",
        "enable_auto_commit": False,
        "client_id": "driftd-tests-consumer",
    }
    cfg.update(consumer_config)
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, **cfg)
    records: list[Any] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(records) < count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500, max_records=count - len(records)).values():
                records.extend(batch)
        if len(records) < count:
            raise KafkaHarnessError(
                f"consumed {len(records)}/{count} records from {topic} within {timeout_s}s"
            )
        if commit:
            consumer.commit()
    finally:
        consumer.close(autocommit=False)
    return records


class SlowProducer(threading.Thread):
    """Produces ``values`` at about ``rate`` events/s from a thread, so driftd is mid-stream
    when a fault is injected."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        values: Sequence[bytes],
        rate: float,
        keys: Sequence[bytes] | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.values, self.rate = bootstrap, topic, values, rate
        self.keys = keys
        self.error: BaseException | None = None

    def run(self) -> None:
        p = KafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            linger_ms=5,
            retries=2**31 - 1,
            request_timeout_ms=60_000,
            delivery_timeout_ms=600_000,
        )
        try:
            t0 = time.monotonic()
            for i, v in enumerate(self.values):
                p.send(self.topic, value=v, key=self.keys[i] if self.keys else None)
                if i % 200 == 0:
                    ahead = i / self.rate - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
            p.flush(120)
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            p.close(10)

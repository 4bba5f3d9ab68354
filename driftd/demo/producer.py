"""Demo producer: replays the synthetic credit-scoring rollout to Kafka.

v1 serves first; then v2 — the bad update whose scores are shifted up — takes over. Events are
keyed by their ``event_id``, as services publish prediction logs, so every version is spread
over every partition of the topic (created with ``--partitions`` when missing).
``python -m driftd.demo.producer --bootstrap HOST:PORT --topic predictions``;
``--create-only`` creates the topic and exits (before driftd subscribes to it).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime

import orjson
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from driftd.demo.credit import generate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--topic", default="predictions")
    ap.add_argument("--v1-events", type=int, default=15_000)
    ap.add_argument("--v2-events", type=int, default=15_000)
    ap.add_argument("--score-shift", type=float, default=1.0, help="v2's shift of the logit")
    ap.add_argument("--rate", type=float, default=5000.0, help="events per second")
    ap.add_argument("--seed", type=int, default=100)
    ap.add_argument("--partitions", type=int, default=4, help="of the topic, if created here")
    ap.add_argument("--create-only", action="store_true", help="create the topic and exit")
    a = ap.parse_args(argv)
    ensure_topic(a.bootstrap, a.topic, a.partitions)
    if a.create_only:
        return 0
    producer = KafkaProducer(
        bootstrap_servers=a.bootstrap.split(","),
        linger_ms=20,
        acks="all",
        compression_type=None,
        batch_size=256 * 1024,
    )
    try:
        t0 = time.monotonic()
        sent = 0
        now = datetime.now(UTC)
        phases = [("v1", a.v1_events, 0.0, a.seed), ("v2", a.v2_events, a.score_shift, a.seed + 1)]
        for version, n, shift, seed in phases:
            sys.stderr.write(
                f"producer: {n} events of credit-scoring {version}"
                f"{' (scores shifted up)' if shift else ''}\n"
            )
            for ev in generate(
                n, version=version, seed=seed, score_shift=shift, start=now, rate_per_s=a.rate
            ):
                producer.send(a.topic, value=ev, key=orjson.loads(ev)["event_id"].encode())
                sent += 1
                if a.rate > 0 and sent % 500 == 0:
                    ahead = sent / a.rate - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
        producer.flush(30)
        sys.stderr.write(f"producer: {sent} events sent in {time.monotonic() - t0:.1f}s\n")
    finally:
        producer.close(5)
    return 0


def ensure_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    try:
        if topic in admin.list_topics():
            return
        try:
            admin.create_topics([NewTopic(topic, partitions, 1)], timeout_ms=30_000)
            sys.stderr.write(f"producer: created topic {topic} ({partitions} partitions)\n")
        except Exception as exc:  # noqa: BLE001 - created meanwhile by someone else
            if "TopicAlreadyExists" not in type(exc).__name__ + str(exc):
                raise
    finally:
        admin.close()


if __name__ == "__main__":
    raise SystemExit(main())

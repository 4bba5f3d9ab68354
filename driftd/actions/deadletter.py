"""Dead-letter destinations for rejected events: a JSONL file or a Kafka topic.

Every rejected event is counted by reason; with a destination configured it is also copied
there with its reason, so nothing is silently dropped. Writes are buffered and made durable by
``flush()``, which the runtime calls before it persists a checkpoint and commits offsets (the
"act" step), so a rejected event is in the dead-letter destination before its offset is
committed.

File lines::

    {"reason": "invalid_json", "detail": "...", "partition": "predictions/0", "offset": 41,
     "position": 42, "timestamp_ms": 1764158400000, "value": "<utf-8 text>" | null,
     "value_base64": "<base64>" | null}

``value`` holds the raw bytes when they are valid UTF-8, else ``value_base64`` does. Kafka
records keep the raw value and carry ``driftd-reason``, ``driftd-detail``, ``driftd-source``
(partition key) and ``driftd-offset`` headers.
"""

from __future__ import annotations

import base64
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from driftd.actions.jsonl import DEFAULT_MAX_BYTES, PrivateJsonl
from driftd.config import DeadLetterFile, DeadLetterKafka, KafkaConfig
from driftd.errors import ConfigError
from driftd.types import RawRecord

log = logging.getLogger(__name__)

Rejected = tuple[RawRecord, str, str]  # record, reason, detail


def _key(r: RawRecord) -> str:
    return f"{r.topic}/{r.partition}" if r.topic else ""


class DeadLetterSink(ABC):
    def __init__(self) -> None:
        self.written = 0

    @abstractmethod
    def write(self, rejected: Sequence[Rejected]) -> None: ...

    @abstractmethod
    def flush(self) -> None:
        """Make everything written so far durable; raises OSError / Kafka errors."""

    @abstractmethod
    def close(self) -> None: ...


class FileDeadLetter(DeadLetterSink):
    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_BYTES, backups: int = 5) -> None:
        super().__init__()
        self.path = path
        try:
            self._fh = PrivateJsonl(path, max_bytes, backups)
        except OSError as exc:
            raise ConfigError("dead_letter.path", f"cannot open {path}: {exc.strerror}") from exc

    def write(self, rejected: Sequence[Rejected]) -> None:
        for rec, reason, detail in rejected:
            raw = rec.value or b""
            doc: dict[str, Any] = {
                "reason": reason,
                "detail": detail,
                "partition": _key(rec),
                "offset": rec.offset if rec.offset >= 0 else None,
                "position": rec.position,
                "timestamp_ms": rec.timestamp_ms,
            }
            try:
                doc["value"] = raw.decode("utf-8")
                doc["value_base64"] = None
            except UnicodeDecodeError:
                doc["value"] = None
                doc["value_base64"] = base64.b64encode(raw).decode()
            self._fh.write(orjson.dumps(doc) + b"\n")
            self.written += 1

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


class KafkaDeadLetter(DeadLetterSink):
    def __init__(self, topic: str, kafka: KafkaConfig) -> None:
        super().__init__()
        from kafka import KafkaProducer

        from driftd.sources.kafka import consumer_settings

        base = consumer_settings(kafka)
        keep = ("bootstrap_servers", "client_id", "security_protocol") + tuple(
            k for k in base if k.startswith(("sasl_", "ssl_"))
        )
        self.topic = topic
        self._producer = KafkaProducer(
            **{k: base[k] for k in keep if k in base},
            acks="all",
            linger_ms=50,
            max_request_size=16 * 1024 * 1024,
        )

    def write(self, rejected: Sequence[Rejected]) -> None:
        for rec, reason, detail in rejected:
            headers = [
                ("driftd-reason", reason.encode()),
                ("driftd-detail", detail.encode("utf-8", "replace")[:1000]),
                ("driftd-source", _key(rec).encode()),
                ("driftd-offset", str(rec.offset).encode()),
            ]
            self._producer.send(self.topic, value=rec.value or b"", headers=headers)
            self.written += 1

    def flush(self) -> None:
        self._producer.flush(timeout=30)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._producer.close(timeout=5)


def open_dead_letter(
    cfg: DeadLetterFile | DeadLetterKafka | None, kafka: KafkaConfig
) -> DeadLetterSink | None:
    if cfg is None:
        return None
    if isinstance(cfg, DeadLetterFile):
        return FileDeadLetter(cfg.path, cfg.max_bytes, cfg.backups)
    return KafkaDeadLetter(cfg.topic, kafka)

"""Source interface: ``open`` / ``poll`` / ``commit`` / ``close``.

A source hands out micro-batches of :class:`~driftd.types.RawRecord`. Records carry a
partition key (``"topic/partition"``; ``""`` for files) and a 1-based position within it
(Kafka: offset + 1; files: line number). ``commit`` is called by the runtime only with offsets
covered by a durable checkpoint (act → persist → commit).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

from driftd.types import RawRecord


class Source(ABC):
    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def poll(self, max_records: int, timeout_ms: int) -> Sequence[RawRecord]:
        """Return the next micro-batch (possibly empty)."""

    def commit(self, offsets: Mapping[str, int]) -> None:  # noqa: B027 - optional for files
        """Durably acknowledge, per partition key, the next offset to read."""

    @abstractmethod
    def close(self) -> None: ...

    @property
    def exhausted(self) -> bool:
        """True when a finite source has no more records."""
        return False

    def lag(self) -> dict[tuple[str, int], int]:
        return {}

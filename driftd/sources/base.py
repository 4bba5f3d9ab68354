"""Source interface: ``open`` / ``poll`` / ``commit`` / ``close``.

A source hands out micro-batches as :class:`~driftd.sources.batch.RecordBatch` (values in one
buffer, column by column; a :class:`~driftd.types.RawRecord` per record only on demand).
Records carry a partition key (``"topic/partition"``; ``""`` for files) and a 1-based position
within it (Kafka: offset + 1; files: line number). ``commit`` is called by the runtime only
with offsets covered by a durable checkpoint (act → persist → commit).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping

from driftd.sources.batch import RecordBatch, partition_key, split_partition_key

__all__ = ["Source", "offsets_to_commit", "partition_key", "split_partition_key"]

log = logging.getLogger(__name__)


def offsets_to_commit(committed: Mapping[str, int], offsets: Mapping[str, int]) -> dict[str, int]:
    """The offsets worth sending: new ones only, and never below one already committed
    (offsets only go up; a lower one is refused and logged)."""
    todo: dict[str, int] = {}
    for key, off in offsets.items():
        prev = committed.get(key, -1)
        if off < prev:
            log.error("refusing to commit %s at %d, below %d", key, off, prev)
        elif off > prev:
            todo[key] = off
    return todo


class Source(ABC):
    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def poll(self, max_records: int, timeout_ms: int) -> RecordBatch:
        """Return the next micro-batch (possibly empty)."""

    def commit(self, offsets: Mapping[str, int]) -> None:  # noqa: B027 - optional for files
        """Durably acknowledge, per partition key, the next offset to read."""

    @abstractmethod
    def close(self) -> None: ...

    def pause(self) -> None:  # noqa: B027 - optional: files need no back-pressure
        """Stop fetching from every assigned partition (``poll`` returns nothing) while
        staying in the consumer group."""

    def resume(self) -> None:  # noqa: B027
        """Fetch again after :meth:`pause`."""

    @property
    def exhausted(self) -> bool:
        """True when a finite source has no more records."""
        return False

    def lag(self) -> dict[tuple[str, int], int]:
        return {}

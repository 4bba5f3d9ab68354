"""Source interface: ``open(resume)`` / ``poll`` / ``commit`` / ``close``.

A source hands out micro-batches of :class:`~driftd.types.RawRecord` with 1-based positions
counting every event read (rejected ones included). ``commit`` is called by the runtime only
after the records it covers are folded into state (and, with checkpoints, persisted).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from driftd.types import RawRecord


class Source(ABC):
    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def poll(self, max_records: int, timeout_ms: int) -> Sequence[RawRecord]:
        """Return the next micro-batch (possibly empty)."""

    @abstractmethod
    def commit(self) -> None:
        """Durably acknowledge everything returned by ``poll`` so far."""

    @abstractmethod
    def close(self) -> None: ...

    @property
    def exhausted(self) -> bool:
        """True when a finite source has no more records."""
        return False

    def lag(self) -> dict[tuple[str, int], int]:
        return {}

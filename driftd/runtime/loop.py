"""The one loop of ``driftd run`` and ``driftd replay``: poll → process → hand to the sink.

The two commands differ only in their source (Kafka or files) and their sink: the daemon's
sink stages alerts for the outbox, writes the audit log and dead letters and checkpoints;
replay's writes output lines. :func:`drive` yields each batch's output lines, after the sink
has handled them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from driftd.runtime.pipeline import Pipeline
from driftd.sources.base import Source
from driftd.types import RawRecord

TICK_S = 1.0  # without records, time windows are re-examined this often (idle partitions)


class Sink(Protocol):
    def polling(self, active: bool) -> None:
        """Called around ``poll`` (the daemon's watchdog watches only a stuck poll)."""

    def handle(
        self, records: Sequence[RawRecord], outputs: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Act on a batch's outputs; return the lines to yield (possibly with more)."""

    def closing(self) -> list[dict[str, Any]]:
        """A finite source ended: lines due before the open time windows close."""


def drive(
    source: Source,
    pipeline: Pipeline,
    sink: Sink,
    *,
    max_records: int,
    poll_timeout_ms: int,
    should_stop: Callable[[], bool] = lambda: False,
) -> Iterator[list[dict[str, Any]]]:
    last_tick = time.monotonic()
    while not should_stop():
        sink.polling(True)
        try:
            records = source.poll(max_records, poll_timeout_ms)
        finally:
            sink.polling(False)
        if records:
            outputs = pipeline.process(records)
        elif pipeline.holding:  # idle: the last batch's deferred steps come out now
            outputs = pipeline.drain()
        elif pipeline.time_based and time.monotonic() - last_tick >= TICK_S:
            last_tick = time.monotonic()
            outputs = pipeline.tick()
        else:
            outputs = []
        yield sink.handle(records, outputs)
        if source.exhausted:
            last = sink.closing()
            yield sink.handle([], last + pipeline.finish())  # close open time windows
            return

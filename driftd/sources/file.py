"""Event files (or stdin) as a finite source, for `driftd replay` and tests.

``FileSource(paths)`` reads JSONL; ``FileSource.of_format(paths, fmt, schema)`` reads JSONL,
CSV or Parquet (detected by extension unless ``fmt`` is given), each row handed out as the JSON
event line :func:`driftd.io.event_lines` makes of it, so positions count rows (lines for
JSONL, data rows for CSV and Parquet).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from typing import BinaryIO

from driftd.config import SchemaConfig
from driftd.sources.base import Source
from driftd.types import RawRecord


class FileSource(Source):
    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = list(paths)
        self._it: Iterator[bytes] | None = None
        self._position = 0
        self._done = False
        self._reader: Callable[[], Iterator[bytes]] = self._lines

    @classmethod
    def of_format(
        cls, paths: Sequence[str], fmt: str | None = None, schema: SchemaConfig | None = None
    ) -> FileSource:
        """Files in any of the formats :mod:`driftd.io` reads (``fmt``: ``jsonl``, ``csv``,
        ``parquet``, or None to detect each file's format from its name). Raises
        :class:`~driftd.errors.ConfigError` for a format it cannot tell."""
        from driftd.io import detect_format, event_lines

        for p in paths:
            detect_format(p, fmt)  # fail before the first poll
        src = cls(paths)
        src._reader = lambda: event_lines(list(paths), fmt, schema)
        return src

    def _lines(self) -> Iterator[bytes]:
        for p in self.paths:
            fh: BinaryIO
            if p == "-":
                yield from _strip(sys.stdin.buffer)
                continue
            with open(p, "rb") as fh:
                yield from _strip(fh)

    def open(self) -> None:
        self._it = self._reader()

    def poll(self, max_records: int, timeout_ms: int = 0) -> list[RawRecord]:
        assert self._it is not None, "open() first"
        out: list[RawRecord] = []
        for line in self._it:
            self._position += 1
            out.append(RawRecord(line, self._position, None))
            if len(out) >= max_records:
                return out
        self._done = True
        return out

    def close(self) -> None:
        self._it = None

    @property
    def position(self) -> int:
        """Records read so far (the position of the last one)."""
        return self._position

    @property
    def exhausted(self) -> bool:
        return self._done


def _strip(fh: BinaryIO) -> Iterator[bytes]:
    for line in fh:
        if line.endswith(b"\n"):
            line = line[:-1]
            if line.endswith(b"\r"):
                line = line[:-1]
        yield line

"""Event files (or stdin) as a finite source, for `driftd replay` and tests.

``FileSource(paths)`` reads JSONL; ``FileSource.of_format(paths, fmt, schema)`` reads JSONL,
CSV or Parquet (detected by extension unless ``fmt`` is given), each row handed out as the JSON
event line :func:`driftd.io.event_lines` makes of it, so positions count rows (lines for
JSONL, data rows for CSV and Parquet).

JSONL is read in blocks and split into lines with NumPy: a poll hands the pipeline one buffer
and the lines' offsets in it (a :class:`~driftd.sources.batch.RecordBatch`), never a Python
object per line. Lines are split on ``\\n`` and lose one trailing ``\\r``, as iterating over
a binary file and stripping would; a last line without ``\\n`` still counts.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from typing import BinaryIO

import numpy as np

from driftd.config import SchemaConfig
from driftd.sources.base import Source
from driftd.sources.batch import NO_TS, RecordBatch

BLOCK_BYTES = 1024 * 1024


class FileSource(Source):
    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = list(paths)
        self._position = 0
        self._done = False
        self._reader: Callable[[], Iterator[bytes]] | None = None  # CSV / Parquet / iterables
        self._it: Iterator[bytes] | None = None
        self._files: Iterator[BinaryIO] | None = None
        self._fh: BinaryIO | None = None
        self._data = b""  # bytes read, from the first line not handed out yet
        self._nl = np.empty(0, dtype=np.int64)  # ends of the complete lines in _data
        self._k = 0  # lines of _data handed out

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

    def _handles(self) -> Iterator[BinaryIO]:
        for p in self.paths:
            if p == "-":
                yield sys.stdin.buffer
                continue
            with open(p, "rb") as fh:
                yield fh

    def open(self) -> None:
        if self._reader is not None:
            self._it = self._reader()
        else:
            self._files = self._handles()
            self._fh = next(self._files, None)

    def poll(self, max_records: int, timeout_ms: int = 0) -> RecordBatch:
        if self._reader is not None:
            return self._poll_rows(max_records)
        while self._nl.shape[0] - self._k < max_records and self._fh is not None:
            self._read()
        start = int(self._nl[self._k - 1]) + 1 if self._k else 0
        ends = self._nl[self._k : self._k + max_records]
        self._k += ends.shape[0]
        if self._fh is None and self._k == self._nl.shape[0]:
            self._done = True
        return self._lines(self._data, start, ends)

    def _read(self) -> None:
        """Read the next block: the unread tail of ``_data`` plus new bytes, re-indexed."""
        assert self._fh is not None
        block = self._fh.read1(BLOCK_BYTES)  # type: ignore[attr-defined]
        if not block:  # this file ended: its last line may lack "\n"
            self._fh = next(self._files, None) if self._files is not None else None
            partial = int(self._nl[-1]) + 1 if self._nl.shape[0] else 0
            if partial >= len(self._data):
                return
            block = b"\n"
        start = int(self._nl[self._k - 1]) + 1 if self._k else 0
        self._data = self._data[start:] + block
        self._nl = np.flatnonzero(np.frombuffer(self._data, dtype=np.uint8) == 10)
        self._k = 0

    def _lines(self, data: bytes, start: int, ends: np.ndarray) -> RecordBatch:
        n = ends.shape[0]
        starts = np.empty(n, dtype=np.int64)
        if n:
            starts[0] = start
            starts[1:] = ends[:-1] + 1
        ends = ends.astype(np.int64, copy=True)
        buf = np.frombuffer(data, dtype=np.uint8)
        if n:
            cr = (ends > starts) & (buf[np.maximum(ends - 1, 0)] == 13)
            ends[cr] -= 1
        positions = np.arange(self._position + 1, self._position + n + 1, dtype=np.int64)
        self._position += n
        return RecordBatch(
            data,
            starts,
            ends,
            np.full(n, -1, dtype=np.int64),
            np.full(n, NO_TS, dtype=np.int64),
            positions,
            [("", "", 0, n)] if n else [],
        )

    def _poll_rows(self, max_records: int) -> RecordBatch:
        assert self._it is not None, "open() first"
        values: list[bytes] = []
        for line in self._it:
            values.append(line)
            if len(values) >= max_records:
                break
        else:
            self._done = True
        n = len(values)
        positions = np.arange(self._position + 1, self._position + n + 1, dtype=np.int64)
        self._position += n
        return RecordBatch.of_values(
            values,
            np.full(n, -1, dtype=np.int64),
            np.full(n, NO_TS, dtype=np.int64),
            positions,
            [("", "", 0, n)] if n else [],
        )

    def close(self) -> None:
        self._it = None
        self._fh = None
        if self._files is not None:
            self._files.close()  # type: ignore[attr-defined]
            self._files = None

    @property
    def position(self) -> int:
        """Records read so far (the position of the last one)."""
        return self._position

    @property
    def exhausted(self) -> bool:
        return self._done

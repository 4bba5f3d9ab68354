"""A poll's records as columns: what every source hands the pipeline.

The message values sit back to back in one buffer with ``(start, end)`` offsets, beside
per-record arrays (source offset, record timestamp, position in the source) and the runs of
consecutive records of one partition. Nothing is built per record on the way in; a
:class:`~driftd.types.RawRecord` is made only when one is asked for (``batch[i]``: a rejected
event for the dead letters, a label event), with the same fields a source used to fill.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import overload

import numpy as np
import numpy.typing as npt

from driftd.types import RawRecord

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]
NO_TS = np.iinfo(np.int64).min  # a record without a timestamp (RawRecord.timestamp_ms None)

Run = tuple[str, str, int, int]  # (partition key "topic/partition" or "", topic, start, end)


def partition_key(topic: str, partition: int) -> str:
    """``"topic/partition"``: how runtime, checkpoints and sources name a partition."""
    return f"{topic}/{partition}"


def split_partition_key(key: str) -> tuple[str, int]:
    topic, _, part = key.rpartition("/")
    return topic, int(part)


class RecordBatch(Sequence[RawRecord]):
    """Records ``0 … n-1`` of one poll. ``runs`` cover them in order, one partition each."""

    __slots__ = ("data", "buf", "starts", "ends", "offsets", "timestamps", "positions", "runs",
                 "nones", "_run_starts")  # fmt: skip

    def __init__(
        self,
        data: bytes,
        starts: I64,
        ends: I64,
        offsets: I64,
        timestamps: I64,
        positions: I64,
        runs: Sequence[Run],
        nones: frozenset[int] = frozenset(),
    ) -> None:
        self.data = data  # the values back to back (kept: slicing bytes is the cheap way out)
        self.buf: U8 = np.frombuffer(data, dtype=np.uint8)
        self.starts = starts
        self.ends = ends
        self.offsets = offsets  # source offset (-1: none, files)
        self.timestamps = timestamps  # record timestamp in ms, NO_TS when none
        self.positions = positions  # RawRecord.position: offset + 1, or the line number
        self.runs = list(runs)
        self.nones = nones  # records whose value is None (Kafka tombstones)
        self._run_starts = [r[2] for r in self.runs]

    # ------------------------------------------------------------------ building

    @classmethod
    def of_values(
        cls,
        values: Sequence[bytes | None],
        offsets: Sequence[int] | I64,
        timestamps: Sequence[int | None] | I64,
        positions: Sequence[int] | I64,
        runs: Sequence[Run],
    ) -> RecordBatch:
        """From per-record values (a Kafka client's), joined into one buffer."""
        n = len(values)
        nones: frozenset[int] = frozenset()
        if None in values:
            nones = frozenset(i for i, v in enumerate(values) if v is None)
            values = [v or b"" for v in values]
        data = b"".join(values)  # type: ignore[arg-type]
        lens = np.fromiter(map(len, values), dtype=np.int64, count=n)  # type: ignore[arg-type]
        ends = np.cumsum(lens)
        ts = timestamps
        if not isinstance(ts, np.ndarray):
            if None in ts:
                ts = [NO_TS if t is None else t for t in ts]
            ts = np.array(ts, dtype=np.int64).reshape(n)
        return cls(
            data,
            ends - lens,
            ends,
            np.asarray(offsets, dtype=np.int64),
            ts,
            np.asarray(positions, dtype=np.int64),
            runs,
            nones,
        )

    @classmethod
    def of_records(cls, records: Sequence[RawRecord]) -> RecordBatch:
        """From RawRecords (tests, the Python API, label feeds): runs of one partition."""
        runs: list[Run] = []
        start = 0
        n = len(records)
        while start < n:
            first = records[start]
            topic, part = first.topic, first.partition
            end = start + 1
            while end < n and records[end].partition == part and records[end].topic == topic:
                end += 1
            runs.append((f"{topic}/{part}" if topic else "", topic, start, end))
            start = end
        return cls.of_values(
            [r.value for r in records],
            [r.offset for r in records],
            [r.timestamp_ms for r in records],
            [r.position for r in records],
            runs,
        )

    # ------------------------------------------------------------------ reading

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes of the values (what a reader of the input went through, minus separators)."""
        return int((self.ends - self.starts).sum())

    def value(self, i: int) -> bytes | None:
        if i in self.nones:
            return None
        return self.data[int(self.starts[i]) : int(self.ends[i])]

    def _run_of(self, i: int) -> Run:
        lo, hi = 0, len(self._run_starts)
        while hi - lo > 1:  # the last run starting at or before i
            mid = (lo + hi) // 2
            if self._run_starts[mid] <= i:
                lo = mid
            else:
                hi = mid
        return self.runs[lo]

    def record(self, i: int) -> RawRecord:
        key, topic, _, _ = self._run_of(i) if self.runs else ("", "", 0, 0)
        ts = int(self.timestamps[i])
        return RawRecord(
            self.value(i),
            int(self.positions[i]),
            None if ts == NO_TS else ts,
            split_partition_key(key)[1] if key else 0,
            int(self.offsets[i]),
            topic,
        )

    @overload
    def __getitem__(self, i: int) -> RawRecord: ...

    @overload
    def __getitem__(self, i: slice) -> RecordBatch: ...

    def __getitem__(self, i: int | slice) -> RawRecord | RecordBatch:
        if isinstance(i, slice):
            a, b, step = i.indices(len(self))
            if step != 1:
                raise ValueError("a RecordBatch slices with step 1 only")
            return self._sub(a, b)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.record(i)

    def __iter__(self) -> Iterator[RawRecord]:
        return (self.record(i) for i in range(len(self)))

    def _sub(self, a: int, b: int) -> RecordBatch:
        runs = [
            (k, t, max(s, a) - a, min(e, b) - a) for k, t, s, e in self.runs if s < b and e > a
        ]
        sub = object.__new__(RecordBatch)
        sub.data = self.data
        sub.buf = self.buf
        sub.starts = self.starts[a:b]
        sub.ends = self.ends[a:b]
        sub.offsets = self.offsets[a:b]
        sub.timestamps = self.timestamps[a:b]
        sub.positions = self.positions[a:b]
        sub.runs = runs
        sub.nones = frozenset(i - a for i in self.nones if a <= i < b) if self.nones else self.nones
        sub._run_starts = [r[2] for r in runs]
        return sub

    @property
    def last_offset(self) -> int:
        return int(self.offsets[-1]) if len(self) else -1


def as_batch(records: Sequence[RawRecord] | RecordBatch) -> RecordBatch:
    return records if isinstance(records, RecordBatch) else RecordBatch.of_records(records)

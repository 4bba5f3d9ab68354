"""Panes: bounded, columnar slices of one (monitor, version)'s accepted rows from one source
partition — what the partition stage hands the monitor stage.

A pane carries, per row, the monitor's numeric block (float64, NaN for missing), its
categorical block (int32 codes, -1 for missing), the row's source position (1-based count of
events read, rejected ones included), event time (epoch seconds, NaN when unknown), the source
offset (-1 for sources without offsets, such as files) and, for monitors with ``segment_by``,
the row's segment (an index into the pane's ``segment_keys``). Beside the rows: which source
partition it came from and the pane's sequence number in that partition.

The monitor stage merges panes of every partition into one stream per (monitor, version)
ordered by position (:func:`merge`); panes are the seam at which the two stages can run in
different processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]


@dataclass(slots=True)
class Rows:
    """Column blocks of accepted rows (all arrays have the same first dimension).

    ``part`` holds a partition code assigned by whoever merges rows from several partitions
    (the monitor stage: an index into its partition table); ``seg`` a segment code (index into
    a segment-key table of the same owner) or None for monitors without segments.
    """

    num: F64
    cat: I32
    pos: I64
    ts: F64
    off: I64
    part: I32
    seg: I32 | None = None

    def __len__(self) -> int:
        return int(self.pos.shape[0])

    def take(self, idx: npt.NDArray[np.intp] | slice) -> Rows:
        return Rows(
            self.num[idx],
            self.cat[idx],
            self.pos[idx],
            self.ts[idx],
            self.off[idx],
            self.part[idx],
            None if self.seg is None else self.seg[idx],
        )

    @staticmethod
    def of(num: F64, cat: I32, pos: npt.ArrayLike, ts: npt.ArrayLike) -> Rows:
        """Rows without offsets or partitions (files, tests, the Python API)."""
        p = np.asarray(pos, dtype=np.int64)
        n = p.shape[0]
        return Rows(
            np.asarray(num, dtype=np.float64).reshape(n, -1),
            np.asarray(cat, dtype=np.int32).reshape(n, -1),
            p,
            np.asarray(ts, dtype=np.float64),
            np.full(n, -1, dtype=np.int64),
            np.zeros(n, dtype=np.int32),
        )

    @staticmethod
    def empty(n_num: int, n_cat: int, segmented: bool = False) -> Rows:
        return Rows(
            np.empty((0, n_num), dtype=np.float64),
            np.empty((0, n_cat), dtype=np.int32),
            np.empty(0, dtype=np.int64),
            np.empty(0, dtype=np.float64),
            np.empty(0, dtype=np.int64),
            np.empty(0, dtype=np.int32),
            np.empty(0, dtype=np.int32) if segmented else None,
        )

    @staticmethod
    def concat(parts: Sequence[Rows]) -> Rows:
        if len(parts) == 1:
            return parts[0]
        segs = [p.seg for p in parts]
        return Rows(
            np.concatenate([p.num for p in parts]),
            np.concatenate([p.cat for p in parts]),
            np.concatenate([p.pos for p in parts]),
            np.concatenate([p.ts for p in parts]),
            np.concatenate([p.off for p in parts]),
            np.concatenate([p.part for p in parts]),
            None if any(s is None for s in segs) else np.concatenate(segs),  # type: ignore[arg-type]
        )


@dataclass(slots=True)
class Pane:
    """Accepted rows of one (monitor, version) from one source partition, in offset order."""

    monitor: str
    version: str
    partition: str  # "topic/partition"; "" for files
    seq: int  # pane sequence number within the partition (0, 1, …)
    rows: Rows  # ``part`` is all zeros here: the merger assigns its own codes
    segment_keys: list[tuple[str, ...]] = field(default_factory=list)

    @property
    def first_offset(self) -> int:
        return int(self.rows.off[0]) if len(self.rows) else -1

    @property
    def last_offset(self) -> int:
        return int(self.rows.off[-1]) if len(self.rows) else -1


def merge(
    panes: Sequence[Pane],
    part_code: dict[str, int],
    seg_code: dict[tuple[str, ...], int] | None,
) -> Rows:
    """One stream of the panes' rows in position order. Partition keys and segment keys are
    translated into the caller's code tables (``part_code`` / ``seg_code``, extended with keys
    seen for the first time)."""
    parts: list[Rows] = []
    for p in panes:
        r = p.rows
        code = part_code.setdefault(p.partition, len(part_code))
        part = np.full(len(r), code, dtype=np.int32)
        seg = None
        if seg_code is not None and r.seg is not None:
            lut = np.array(
                [seg_code.setdefault(k, len(seg_code)) for k in p.segment_keys] or [0],
                dtype=np.int32,
            )
            seg = lut[r.seg]
        parts.append(Rows(r.num, r.cat, r.pos, r.ts, r.off, part, seg))
    rows = Rows.concat(parts)
    if len(panes) > 1:
        order = np.argsort(rows.pos, kind="stable")
        rows = rows.take(order)
    return rows

"""The schema paths of a router as a trie, and one compiled scan of a batch over them.

:class:`ScanPlan` collects the dotted paths the partition stage reads (model, version, time,
features object, prediction, every monitor's feature paths, segment paths, event id and label
for performance monitoring) and compiles them into the arrays the scanner
(:mod:`driftd.kernels.jsonscan`) walks. :func:`scan` runs it over one batch: per event a
status (``OK`` or ``SLOW``: the orjson path decides) and, per path, the value's kind, byte span
and number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from driftd.kernels import jsonscan as js

U8 = npt.NDArray[np.uint8]
I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


def path_parts(path: str) -> list[str]:
    """How :func:`driftd.ingest.decode._getter` splits a path."""
    return path.split(".")


class ScanPlan:
    """A trie of object keys; :meth:`slot` registers a path whose value is recorded."""

    def __init__(self) -> None:
        self._keys: list[bytes] = [b""]
        self._parent: list[int] = [-1]
        self._slot: list[int] = [-1]
        self._inner: list[int] = [1]
        self._index: dict[tuple[int, bytes], int] = {}
        self.n_slots = 0
        self._arrays: tuple[np.ndarray, ...] | None = None

    def slot(self, parts: list[str]) -> int:
        """The slot of the value at ``parts`` (keys from the event's top level)."""
        node = 0
        for part in parts:
            key = (node, part.encode("utf-8", "surrogatepass"))
            child = self._index.get(key)
            if child is None:
                child = self._index[key] = len(self._keys)
                self._keys.append(key[1])
                self._parent.append(node)
                self._slot.append(-1)
                self._inner.append(0)
            self._inner[node] = 1
            node = child
        if self._slot[node] < 0:
            self._slot[node] = self.n_slots
            self.n_slots += 1
            self._arrays = None
        return self._slot[node]

    def arrays(self) -> tuple[np.ndarray, ...]:
        """(parent, key start, key length, key bytes, slot, inner, hash table)."""
        if self._arrays is None:
            lens = np.array([len(k) for k in self._keys], dtype=np.int64)
            starts = np.concatenate(([0], np.cumsum(lens)[:-1])).astype(np.int64)
            keys = np.frombuffer(b"".join(self._keys) or b"\0", dtype=np.uint8).copy()
            parent = np.asarray(self._parent, dtype=np.int32)
            size = 16
            while size < 4 * len(self._keys):
                size *= 2
            table = np.full(size, -1, dtype=np.int32)
            js.build_table(keys, starts, lens, parent, table)
            self._arrays = (
                parent,
                starts,
                lens,
                keys,
                np.asarray(self._slot, dtype=np.int32),
                np.asarray(self._inner, dtype=np.int8),
                table,
            )
        return self._arrays


@dataclass(slots=True)
class Scanned:
    """One batch scanned: ``status`` (n,) OK/SLOW; per event and slot ``kind`` (n, slots),
    ``span`` (n, slots, 2) byte offsets into the buffer, ``num`` and ``nflag`` for numbers.
    Rows of SLOW events are partial and never read."""

    status: I8
    kind: I8
    span: I64
    num: F64
    nflag: I8
    slow: int


def scan(plan: ScanPlan, buf: U8, starts: I64, ends: I64) -> Scanned:
    n = starts.shape[0]
    s = max(plan.n_slots, 1)
    status = np.empty(n, dtype=np.int8)
    kind = np.zeros((n, s), dtype=np.int8)
    span = np.empty((n, s, 2), dtype=np.int64)
    num = np.empty((n, s), dtype=np.float64)
    nflag = np.zeros((n, s), dtype=np.int8)
    parent, kstart, klen, keys, slot, inner, table = plan.arrays()
    slow = js.scan_events(
        buf, starts, ends, parent, kstart, klen, keys, slot, inner, table,
        status, kind, span, num, nflag, js.POW10,
    )  # fmt: skip
    return Scanned(status, kind, span, num, nflag, int(slow))

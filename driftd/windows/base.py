"""The one window interface, shared by count and event-time windows.

A window holds accepted rows of one (monitor, version[, segment]) and hands out *views* to
evaluate: a count window every ``step`` rows appended, an event-time window when the
watermark passes a window's end. ``append`` and ``advance`` return iterators; a view is read
before the iterator is advanced (a count window's view is the window itself at that moment).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from driftd.ingest.panes import Rows


@runtime_checkable
class WindowView(Protocol):
    """What evaluation reads from a window."""

    @property
    def filled(self) -> int: ...

    def num_column(self, j: int) -> npt.NDArray[np.float64]: ...

    def cat_column(self, j: int) -> npt.NDArray[np.int32]: ...

    def span(self) -> dict[str, Any]: ...


class Window(Protocol):
    """A window of one (monitor, version[, segment]). ``seq`` of the views it yields (the rows
    ever appended for count windows, the window's end time for time windows) keys alert ids;
    ``trigger`` is the position of the row that completed it (count windows; time windows
    learn it from the caller's clock)."""

    time_based: bool

    def append(self, rows: Rows) -> Iterator[WindowView]: ...

    def advance(self, watermark_ts: float) -> Iterator[WindowView]: ...

    @property
    def held(self) -> int: ...

    def snapshot(self) -> dict[str, npt.NDArray[Any]]: ...


def provenance(part: npt.NDArray[np.int32], off: npt.NDArray[np.int64]) -> dict[int, list[int]]:
    """``{partition code: [first offset, last offset]}`` of rows that have offsets."""
    has = off >= 0
    if not has.any():
        return {}
    part, off = part[has], off[has]
    out: dict[int, list[int]] = {}
    for code in np.unique(part).tolist():
        o = off[part == code]
        out[int(code)] = [int(o.min()), int(o.max())]
    return out

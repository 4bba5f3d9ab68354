"""Panes on the wire: a compact, versioned encoding for the internal topic (no pickle).

::

    b"DPN" + format byte (1)
    u32 little-endian: length of the JSON header
    header: {"monitor", "version", "partition", "seq", "rows", "n_num", "n_cat",
             "segment_keys": [[...], ...] or null}
    then the columns, little-endian, row-major: num (float64, rows × n_num), cat (int32,
    rows × n_cat), ts (float64), off (int64), and seg (int32) when the monitor has segments

Positions are not sent: in scale-out the monitor stage numbers the rows of the stream it
merges itself. The producer compresses batches of panes (lz4).
"""

from __future__ import annotations

import struct

import numpy as np
import orjson

from driftd.ingest.panes import Pane, Rows

MAGIC = b"DPN"
FORMAT = 1
_LEN = struct.Struct("<I")


class WireError(ValueError):
    """Not a pane this release can read."""


def encode(pane: Pane) -> bytes:
    r = pane.rows
    n = len(r)
    header = {
        "monitor": pane.monitor,
        "version": pane.version,
        "partition": pane.partition,
        "seq": pane.seq,
        "rows": n,
        "n_num": int(r.num.shape[1]),
        "n_cat": int(r.cat.shape[1]),
        "segment_keys": [list(k) for k in pane.segment_keys] if r.seg is not None else None,
    }
    head = orjson.dumps(header)
    parts = [
        MAGIC,
        bytes([FORMAT]),
        _LEN.pack(len(head)),
        head,
        np.ascontiguousarray(r.num, dtype="<f8").tobytes(),
        np.ascontiguousarray(r.cat, dtype="<i4").tobytes(),
        np.ascontiguousarray(r.ts, dtype="<f8").tobytes(),
        np.ascontiguousarray(r.off, dtype="<i8").tobytes(),
    ]
    if r.seg is not None:
        parts.append(np.ascontiguousarray(r.seg, dtype="<i4").tobytes())
    return b"".join(parts)


def decode(data: bytes) -> Pane:
    """Raises :class:`WireError` for anything that is not a pane of this format."""
    if len(data) < 8 or data[:3] != MAGIC:
        raise WireError("not a driftd pane")
    if data[3] != FORMAT:
        raise WireError(f"pane format {data[3]} (this release reads {FORMAT})")
    (hlen,) = _LEN.unpack_from(data, 4)
    try:
        h = orjson.loads(data[8 : 8 + hlen])
        n, n_num, n_cat = int(h["rows"]), int(h["n_num"]), int(h["n_cat"])
        at = 8 + hlen

        def take(dtype: str, count: int) -> np.ndarray:
            nonlocal at
            size = np.dtype(dtype).itemsize * count
            if at + size > len(data):
                raise WireError("truncated pane")
            arr = np.frombuffer(data, dtype=dtype, count=count, offset=at)
            at += size
            return arr.astype(dtype[1:], copy=True)  # native order, writable

        num = take("<f8", n * n_num).reshape(n, n_num)
        cat = take("<i4", n * n_cat).reshape(n, n_cat)
        ts = take("<f8", n)
        off = take("<i8", n)
        keys = h["segment_keys"]
        seg = take("<i4", n) if keys is not None else None
    except (KeyError, TypeError, ValueError, orjson.JSONDecodeError) as exc:
        if isinstance(exc, WireError):
            raise
        raise WireError(f"bad pane: {exc}") from None
    rows = Rows(num, cat, np.zeros(n, dtype=np.int64), ts, off, np.zeros(n, dtype=np.int32), seg)
    return Pane(
        str(h["monitor"]),
        str(h["version"]),
        str(h["partition"]),
        int(h["seq"]),
        rows,
        [tuple(str(x) for x in k) for k in keys] if keys is not None else [],
    )

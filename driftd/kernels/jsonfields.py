"""Scanned JSON values → columns, compiled: RFC 3339 times and per-batch string dictionaries.

:func:`rfc3339` reads ``YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`` (1–9 fraction digits,
years 1900–2200) into epoch seconds exactly as ``datetime.fromisoformat(s).timestamp()``:
Python truncates the fraction to microseconds and divides the exact integer count of
microseconds by 10**6 (correctly rounded); that count is below 2**53 in those years, so one
IEEE division of two exact doubles gives the same double. Anything else returns ``ok=False``
and is left to Python (which accepts more forms and gives the rejection reasons).

:func:`numbers` turns one slot's scanned values into floats in one pass.

:func:`intern_spans` numbers the distinct byte strings of one slot in a batch in order of first
appearance (one open-addressing table per call), so that only the distinct values are turned
into Python strings.

Twins: :func:`rfc3339_np` (``datetime.fromisoformat``) and :func:`intern_spans_np` (a dict).
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import numpy.typing as npt

from driftd.kernels._jit import kernel
from driftd.kernels.jsonscan import ARRAY, FALSE, NUM_EXACT, NUMBER, OBJECT, STRING, TRUE

U8 = npt.NDArray[np.uint8]
I8 = npt.NDArray[np.int8]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


def rfc3339(text: bytes) -> tuple[bool, float]:
    """(ok, epoch seconds) of one RFC 3339 time (see the module doc); the kernel on one row."""
    buf = np.frombuffer(text, dtype=np.uint8)
    spans = np.array([[0, len(text)]], dtype=np.int64)
    out = np.empty(1)
    ok = np.zeros(1, dtype=np.int8)
    times(buf, spans, np.zeros(1, dtype=np.int64), _DAYS, out, ok)
    return bool(ok[0]), float(out[0]) if ok[0] else 0.0


def rfc3339_np(text: bytes) -> tuple[bool, float]:
    """Twin of :func:`rfc3339`: Python's own parser, on the forms the kernel reads."""
    try:
        dt = datetime.fromisoformat(text.decode())
    except (ValueError, UnicodeDecodeError):
        return False, 0.0
    if dt.tzinfo is None:
        return False, 0.0
    return True, dt.timestamp()


@kernel
def times(buf: U8, spans: I64, rows: I64, days: I64, out: F64, ok: I8) -> None:
    """Epoch seconds of the RFC 3339 time at ``spans[r]`` for each row r in ``rows``:
    ``ok[r]`` 1 and ``out[r]`` the time, or ``ok[r]`` 0 (not a form read here)."""
    f = np.empty(6, dtype=np.int64)  # year, month, day, hour, minute, second
    for r in rows:
        ok[r] = 0
        out[r] = math.nan
        s = spans[r, 0]
        e = spans[r, 1]
        if e - s < 20:
            continue
        if buf[s + 4] != 45 or buf[s + 7] != 45 or buf[s + 10] != 84:
            continue
        if buf[s + 13] != 58 or buf[s + 16] != 58:
            continue
        for k, (at, w) in enumerate(((0, 4), (5, 2), (8, 2), (11, 2), (14, 2), (17, 2))):
            v = 0
            for m in range(w):
                dg = int(buf[s + at + m]) - 48
                if dg < 0 or dg > 9:
                    v = -1
                    break
                v = v * 10 + dg
            f[k] = v
        y, mo, d, hh, mi, ss = f[0], f[1], f[2], f[3], f[4], f[5]
        if y < 1900 or y > 2200 or mo < 1 or mo > 12 or d < 1 or hh < 0 or hh > 23:
            continue
        if mi < 0 or mi > 59 or ss < 0 or ss > 59:
            continue
        leap = (y % 4 == 0 and y % 100 != 0) or y % 400 == 0
        if d > days[mo] + (1 if mo == 2 and leap else 0):
            continue
        p = s + 19
        micro = 0
        if p < e and buf[p] == 46:
            p += 1
            nf = 0
            while p < e and 48 <= buf[p] <= 57:
                if nf < 6:
                    micro = micro * 10 + (int(buf[p]) - 48)
                nf += 1
                p += 1
            if nf == 0 or nf > 9:
                continue
            for _ in range(nf, 6):
                micro *= 10
        if p >= e:
            continue
        off = 0
        if buf[p] == 90:
            p += 1
        elif buf[p] == 43 or buf[p] == 45:
            if e - p != 6 or buf[p + 3] != 58:
                continue
            oh = (int(buf[p + 1]) - 48) * 10 + int(buf[p + 2]) - 48
            om = (int(buf[p + 4]) - 48) * 10 + int(buf[p + 5]) - 48
            digits = True
            for m in (1, 2, 4, 5):
                if not 48 <= buf[p + m] <= 57:
                    digits = False
            if not digits or oh > 23 or om > 59:
                continue
            off = oh * 3600 + om * 60
            if buf[p] == 45:
                off = -off
            p += 6
        else:
            continue
        if p != e:
            continue
        # days since 1970-01-01 (Howard Hinnant's days_from_civil)
        yy = y - 1 if mo <= 2 else y
        era = yy // 400
        yoe = yy - era * 400
        mp = mo - 3 if mo > 2 else mo + 9
        doe = yoe * 365 + yoe // 4 - yoe // 100 + (153 * mp + 2) // 5 + d - 1
        days_ = era * 146097 + doe - 719468
        secs = days_ * 86400 + hh * 3600 + mi * 60 + ss - off
        ok[r] = 1
        out[r] = float(secs * 1_000_000 + micro) / 1e6


@kernel
def intern_spans(buf: U8, spans: I64, take: I8, codes: I32, first: I64) -> int:
    """Number the distinct byte strings ``buf[spans[r, 0]:spans[r, 1]]`` of the rows with
    ``take[r]`` in order of first appearance: ``codes[r]`` (-1 where not taken) and, per
    code, the first row holding it (``first``). Returns the number of distinct strings."""
    n = spans.shape[0]
    size = 16
    while size < 2 * n:
        size *= 2
    mask = size - 1
    table = np.full(size, -1, dtype=np.int64)
    nu = 0
    for r in range(n):
        if not take[r]:
            codes[r] = -1
            continue
        s = spans[r, 0]
        e = spans[r, 1]
        h = 0x811C9DC5  # FNV-1a
        for k in range(s, e):
            h = ((h ^ int(buf[k])) * 0x01000193) & 0xFFFFFFFF
        h &= mask
        while True:
            u = table[h]
            if u < 0:
                table[h] = nu
                first[nu] = r
                codes[r] = nu
                nu += 1
                break
            f = first[u]
            fs = spans[f, 0]
            if spans[f, 1] - fs == e - s:
                same = True
                for k in range(e - s):
                    if buf[fs + k] != buf[s + k]:
                        same = False
                        break
                if same:
                    codes[r] = u
                    break
            h = (h + 1) & mask
    return nu


def intern_spans_np(buf: U8, spans: I64, take: I8) -> tuple[I32, I64]:
    """Twin of :func:`intern_spans`: (codes, first rows) with a Python dict."""
    table: dict[bytes, int] = {}
    codes = np.full(spans.shape[0], -1, dtype=np.int32)
    first: list[int] = []
    raw = buf.tobytes()
    for r in range(spans.shape[0]):
        if take[r]:
            key = raw[spans[r, 0] : spans[r, 1]]
            if key not in table:
                table[key] = len(first)
                first.append(r)
            codes[r] = table[key]
    return codes, np.asarray(first, dtype=np.int64)


@kernel
def numbers(kind: I8, nflag: I8, num: F64, slot: int, vals: F64, bad: I8, slow: I64) -> int:
    """One slot's values as floats (``to_float``'s: numbers, ``true`` 1.0, ``false`` 0.0, else
    NaN) into ``vals``; ``bad[i]`` where ``to_float`` rejects the value (a string, an object,
    an array). Numbers the scan could not read exactly are left NaN and their rows listed in
    ``slow`` (the count is returned) for the caller to read through orjson."""
    m = 0
    for i in range(kind.shape[0]):
        k = kind[i, slot]
        v = np.nan
        if k == NUMBER:
            if nflag[i, slot] & NUM_EXACT:
                v = num[i, slot]
            else:
                slow[m] = i
                m += 1
        elif k == TRUE:
            v = 1.0
        elif k == FALSE:
            v = 0.0
        vals[i] = v
        bad[i] = k == STRING or k == OBJECT or k == ARRAY
    return m

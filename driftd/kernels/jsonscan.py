"""One compiled pass over a batch of JSON events: the kind, byte span and (for numbers) value
of each configured path, or a flag that an event needs the orjson path.

The events are one ``uint8`` buffer and ``(start, end)`` offsets. The paths are a trie of
object keys (node 0 is the event itself); a node with a *slot* has its value recorded per
event: ``kind`` (absent, null, false, true, number, string, object, array), the byte span of
the value (a string's span excludes its quotes) and, for numbers, the value when it is
provably the double orjson would give (Clinger's fast path: at most 15 significant digits and
a decimal exponent within ±22, so one exact IEEE multiplication or division rounds it).

Anything the scan cannot prove it reads exactly as orjson does marks the event ``SLOW``:
invalid or unsupported JSON (orjson's error messages are not reproduced), escapes in a key of
an object the trie descends into or in a string value that is read, ``\\u`` surrogates, nesting
deeper than ``MAX_DEPTH``, a number that might overflow to infinity (orjson refuses those), a
repeated key the trie knows, a byte-order mark. Skipped values are validated in full (strict
UTF-8, escapes, number grammar), so an event the scan accepts is one orjson accepts.

The twin is orjson itself: :func:`scan_events_np` computes the same kinds and numbers from
``orjson.loads`` (the tests compare the two on every event the scan does not mark slow).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from driftd.kernels._jit import kernel

U8 = npt.NDArray[np.uint8]
I8 = npt.NDArray[np.int8]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

# kinds of a slot's value in one event
ABSENT, NULL, FALSE, TRUE, NUMBER, STRING, OBJECT, ARRAY = range(8)
# event status
OK, SLOW = 0, 1
# number flags
NUM_EXACT = 1  # the value is the double orjson gives for the literal
NUM_INT = 2  # an integer literal (no fraction, no exponent); orjson gives an int when EXACT
NUM_MINUS = 4  # the literal starts with '-'

MAX_DEPTH = 64
POW10 = np.array([10.0**k for k in range(23)], dtype=np.float64)  # exact doubles
_MASK32 = 0xFFFFFFFF


@kernel
def key_hash(buf: U8, s: int, n: int, parent: int) -> int:
    """Hash of an object key (bytes ``buf[s:s+n]``) under trie node ``parent``; 32-bit
    arithmetic so that the plain-Python run (NUMBA_DISABLE_JIT) gives the same numbers.
    (:func:`scan_events` computes it inline.)"""
    h = (int(n) * 0x9E3779B1 + int(parent) * 0x85EBCA77 + 0x27D4EB2F) & _MASK32
    if n > 0:
        h ^= int(buf[s]) << 8
        h ^= int(buf[s + n - 1]) << 16
        h ^= int(buf[s + (n >> 1)]) << 24
        h = (h * 0x2C1B3C6D) & _MASK32
        h ^= h >> 15
    return h


@kernel
def build_table(keys: U8, kstart: I64, klen: I64, parent: I32, table: I32) -> None:
    """Fill the open-addressing table (size a power of two, all -1) with nodes 1…"""
    mask = table.shape[0] - 1
    for node in range(1, parent.shape[0]):
        h = key_hash(keys, kstart[node], klen[node], parent[node]) & mask
        while table[h] >= 0:
            h = (h + 1) & mask
        table[h] = node


@kernel
def scan_events(
    buf: U8,
    starts: I64,
    ends: I64,
    t_parent: I32,
    t_kstart: I64,
    t_klen: I64,
    t_keys: U8,
    t_slot: I32,
    t_inner: I8,
    t_table: I32,
    status: I8,
    kind: I8,
    span: I64,
    num: F64,
    nflag: I8,
    pow10: F64,
) -> int:
    """Scan every event; ``kind`` (n, slots) must come zeroed (ABSENT). Fills ``status``
    (OK / SLOW) and, per event and slot, ``kind``, ``span`` (n, slots, 2), ``num`` and
    ``nflag``. Returns the number of SLOW events.

    One loop reads one token per turn. Each kind of token is read in exactly one place, in
    line (helpers taking the buffer would cost reference counting per call): strings (keys
    and values), numbers, literals, structure.
    """
    n_nodes = t_parent.shape[0]
    mask = t_table.shape[0] - 1
    seen = np.full(n_nodes, -1, dtype=np.int64)
    st_node = np.empty(MAX_DEPTH, dtype=np.int64)
    st_obj = np.empty(MAX_DEPTH, dtype=np.int8)
    st_slot = np.empty(MAX_DEPTH, dtype=np.int64)
    n_slow = 0
    for e in range(starts.shape[0]):
        p = starts[e]
        end = ends[e]
        ok = False
        while p < end and (buf[p] == 32 or buf[p] == 10 or buf[p] == 13 or buf[p] == 9):
            p += 1
        if p < end and buf[p] == 123:
            p += 1
            depth = 0
            st_node[0] = 0
            st_obj[0] = 1
            st_slot[0] = -1
            first = True  # just inside "{" / "[": the closer may come
            after = False  # a value was read: "," or the closer must come
            is_key = True  # in an object, expecting a key
            node = -1  # trie node of the value about to be read
            while True:
                while p < end and (
                    buf[p] == 32 or buf[p] == 10 or buf[p] == 13 or buf[p] == 9
                ):
                    p += 1
                if p >= end:
                    break
                c = buf[p]
                closer = 125 if st_obj[depth] else 93
                if after or (first and c == closer):
                    if after and c == 44:
                        p += 1
                        after = False
                        first = False
                        is_key = st_obj[depth] == 1
                        continue
                    if c != closer:
                        break
                    sl = st_slot[depth]
                    if sl >= 0:
                        span[e, sl, 1] = p + 1
                    p += 1
                    if depth == 0:
                        while p < end and (
                            buf[p] == 32 or buf[p] == 10 or buf[p] == 13 or buf[p] == 9
                        ):
                            p += 1
                        ok = p == end
                        break
                    depth -= 1
                    after = True
                    continue
                if first:
                    first = False
                    is_key = st_obj[depth] == 1
                if c == 34:  # ------------------------------------------- a string
                    q = p + 1
                    esc = False
                    good = False
                    while q < end:
                        b = buf[q]
                        if 32 <= b < 128 and b != 34 and b != 92:
                            q += 1
                            continue
                        if b == 34:
                            good = True
                            break
                        if b == 92:
                            esc = True
                            if q + 1 >= end:
                                break
                            d = buf[q + 1]
                            if d == 34 or d == 92 or d == 47 or d == 98 or d == 102:
                                q += 2
                                continue
                            if d == 110 or d == 114 or d == 116:
                                q += 2
                                continue
                            if d != 117 or q + 6 > end:
                                break
                            v = 0
                            for k in range(2, 6):
                                h = int(buf[q + k])
                                if 48 <= h <= 57:
                                    v = v * 16 + h - 48
                                elif 65 <= h <= 70:
                                    v = v * 16 + h - 55
                                elif 97 <= h <= 102:
                                    v = v * 16 + h - 87
                                else:
                                    v = -1
                                    break
                            if v < 0 or 0xD800 <= v <= 0xDFFF:  # surrogates: orjson's
                                break
                            q += 6
                            continue
                        if b < 32:
                            break
                        # UTF-8, strictly as Unicode's table 3-7
                        lo = 0x80
                        hi = 0xBF
                        m = 0
                        if 0xC2 <= b <= 0xDF:
                            m = 1
                        elif 0xE0 <= b <= 0xEF:
                            m = 2
                            if b == 0xE0:
                                lo = 0xA0
                            elif b == 0xED:
                                hi = 0x9F
                        elif 0xF0 <= b <= 0xF4:
                            m = 3
                            if b == 0xF0:
                                lo = 0x90
                            elif b == 0xF4:
                                hi = 0x8F
                        else:
                            break
                        if q + m >= end or not lo <= buf[q + 1] <= hi:
                            break
                        bad = False
                        for k in range(2, m + 1):
                            if not 0x80 <= buf[q + k] <= 0xBF:
                                bad = True
                        if bad:
                            break
                        q += m + 1
                    if not good:
                        break
                    # the string is buf[p + 1 : q]; q is its closing quote
                    if is_key:
                        node = -1
                        parent = st_node[depth]
                        if parent >= 0:
                            if esc:
                                break
                            ks = p + 1
                            kn = q - ks
                            h = (kn * 0x9E3779B1 + parent * 0x85EBCA77 + 0x27D4EB2F) & _MASK32
                            if kn > 0:
                                h ^= int(buf[ks]) << 8
                                h ^= int(buf[ks + kn - 1]) << 16
                                h ^= int(buf[ks + (kn >> 1)]) << 24
                                h = (h * 0x2C1B3C6D) & _MASK32
                                h ^= h >> 15
                            h &= mask
                            while True:
                                cand = t_table[h]
                                if cand < 0:
                                    break
                                if t_parent[cand] == parent and t_klen[cand] == kn:
                                    ts = t_kstart[cand]
                                    same = True
                                    for k in range(kn):
                                        if buf[ks + k] != t_keys[ts + k]:
                                            same = False
                                            break
                                    if same:
                                        node = cand
                                        break
                                h = (h + 1) & mask
                            if node >= 0:
                                if seen[node] == e:  # a repeated key: orjson keeps the last
                                    break
                                seen[node] = e
                        p = q + 1
                        while p < end and (
                            buf[p] == 32 or buf[p] == 10 or buf[p] == 13 or buf[p] == 9
                        ):
                            p += 1
                        if p >= end or buf[p] != 58:
                            break
                        p += 1
                        is_key = False
                        continue
                    sl = t_slot[node] if node >= 0 else -1
                    if sl >= 0:
                        if esc:
                            break
                        kind[e, sl] = STRING
                        span[e, sl, 0] = p + 1
                        span[e, sl, 1] = q
                    p = q + 1
                    after = True
                    node = -1
                    continue
                if is_key:
                    break
                sl = t_slot[node] if node >= 0 else -1
                if c == 123 or c == 91:  # ---------------------------------- a container
                    if depth + 1 >= MAX_DEPTH:
                        break
                    depth += 1
                    st_obj[depth] = 1 if c == 123 else 0
                    st_node[depth] = node if (node >= 0 and c == 123 and t_inner[node]) else -1
                    st_slot[depth] = sl
                    if sl >= 0:
                        kind[e, sl] = OBJECT if c == 123 else ARRAY
                        span[e, sl, 0] = p
                    p += 1
                    first = True
                    node = -1
                    continue
                if c == 116 or c == 102 or c == 110:  # --------------------- a literal
                    if c == 116:
                        lit, ln = TRUE, 4
                        good = p + 4 <= end and buf[p + 1] == 114 and buf[p + 2] == 117
                        good = good and buf[p + 3] == 101
                    elif c == 102:
                        lit, ln = FALSE, 5
                        good = p + 5 <= end and buf[p + 1] == 97 and buf[p + 2] == 108
                        good = good and buf[p + 3] == 115 and buf[p + 4] == 101
                    else:
                        lit, ln = NULL, 4
                        good = p + 4 <= end and buf[p + 1] == 117 and buf[p + 2] == 108
                        good = good and buf[p + 3] == 108
                    if not good:
                        break
                    if sl >= 0:
                        kind[e, sl] = lit
                        span[e, sl, 0] = p
                        span[e, sl, 1] = p + ln
                    p += ln
                    after = True
                    node = -1
                    continue
                # ------------------------------------------------------------ a number
                q = p
                flags = 0
                if buf[q] == 45:
                    flags = NUM_MINUS
                    q += 1
                    if q >= end:
                        break
                mant = 0
                nd = 0  # significant digits in mant
                e10 = 0  # value = mant * 10**e10
                exact = True
                d0 = buf[q]
                if d0 == 48:
                    q += 1
                    if q < end and 48 <= buf[q] <= 57:
                        break  # a leading zero
                elif 49 <= d0 <= 57:
                    while q < end and 48 <= buf[q] <= 57:
                        if nd < 16:
                            mant = mant * 10 + (int(buf[q]) - 48)
                            nd += 1
                        else:
                            e10 += 1
                            exact = False
                        q += 1
                else:
                    break
                is_int = True
                if q < end and buf[q] == 46:
                    is_int = False
                    q += 1
                    if q >= end or not 48 <= buf[q] <= 57:
                        break
                    while q < end and 48 <= buf[q] <= 57:
                        dg = int(buf[q]) - 48
                        if mant == 0 and dg == 0:
                            e10 -= 1
                        elif nd < 16:
                            mant = mant * 10 + dg
                            nd += 1
                            e10 -= 1
                        else:
                            exact = False
                        q += 1
                if q < end and (buf[q] == 101 or buf[q] == 69):
                    is_int = False
                    q += 1
                    eneg = False
                    if q < end and (buf[q] == 43 or buf[q] == 45):
                        eneg = buf[q] == 45
                        q += 1
                    if q >= end or not 48 <= buf[q] <= 57:
                        break
                    ex = 0
                    while q < end and 48 <= buf[q] <= 57:
                        if ex < 100_000:
                            ex = ex * 10 + (int(buf[q]) - 48)
                        q += 1
                    e10 += -ex if eneg else ex
                if mant != 0 and nd - 1 + e10 >= 300:
                    break  # might overflow to infinity, which orjson refuses
                if sl >= 0:
                    if is_int:
                        flags |= NUM_INT
                    val = 0.0
                    if mant == 0:
                        flags |= NUM_EXACT
                        if flags & NUM_MINUS and not is_int:
                            val = -0.0
                    elif exact and nd <= 15 and -22 <= e10 <= 22:
                        val = float(mant)
                        val = val * pow10[e10] if e10 >= 0 else val / pow10[-e10]
                        if flags & NUM_MINUS:
                            val = -val
                        flags |= NUM_EXACT
                    kind[e, sl] = NUMBER
                    span[e, sl, 0] = p
                    span[e, sl, 1] = q
                    num[e, sl] = val
                    nflag[e, sl] = flags
                p = q
                after = True
                node = -1
        status[e] = OK if ok else SLOW
        if not ok:
            n_slow += 1
    return n_slow

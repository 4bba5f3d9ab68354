"""Event-id hashing and the numba kernels behind :class:`driftd.performance.join.LabelJoiner`.

Ids are never kept as Python objects. Each id is hashed to a 64-bit key (never 0, which
means "empty") and the joiner keeps two *stores* and one *cache* in fixed-width NumPy arrays:

**Stores** (pending predictions, early labels): a ring of ``R`` records in arrival order,
``rec`` uint64 ``(R, 4)`` = ``[key, ts, value, aux]`` (``ts``/``value`` are float64 bits, read
through ``recf``, a float64 view of the same buffer; one 32-byte record, one cache line per
lookup), plus an open-addressing index ``table`` (uint64, power-of-two size ``T >= 2R`` so the
load stays at most 1/2; linear probing; deletion by backward shift, so no tombstones). An
index word is ``fingerprint << 31 | (ring position + 1)`` with ``fingerprint = key >> 31``,
whose low bits are also the home slot: probing and shifting never touch the ring, and a hit
is confirmed against the full key in the record it reads anyway. 32 + 16…32 bytes per slot.

==========  =====================  ===========================  ===========================
store       ts                     value                        aux
==========  =====================  ===========================  ===========================
pending     prediction ts          score                        version | (pred + 1) << 16
early       label ts               label                        0
==========  =====================  ===========================  ===========================

Removing an entry from the middle (a join) zeroes its key, leaving a hole; the head skips
holes, and when the ring is physically full its owner compacts or grows it. That needs a new
allocation, so kernels stop and report which store needs room (:data:`NEED_PENDING`,
:data:`NEED_EARLY`) and are called again from where they stopped. ``st`` (int64[3]) holds
``head`` (position of the oldest slot), ``span`` (slots from head to tail, holes included)
and ``live``.

**Resolved cache** (ids of predictions that were joined, expired or evicted, so that a later
label is told to be a duplicate, late or orphaned): 8-way set-associative, ``rc`` uint64
``(S, 2)`` = ``[key & ~3 | status, prediction ts]``; a full set replaces the entry with the
oldest prediction time. It is a bounded memory, not a record: an id pushed out of it is
simply unknown again.

Collisions. Two distinct ids collide with probability about ``k² / 2⁶⁵`` for ``k`` ids in
memory at once (≈3·10⁻⁸ for a million): a collision makes a label join the wrong prediction
or count as a duplicate, which is noise far below any metric's resolution.

The hash kernels have NumPy twins (:func:`hash_codepoints_np`, :func:`hash_ints_np`); the
store kernels are checked against a dict-based reference joiner in
``tests/performance/test_join.py``, which is the twin that makes sense for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from driftd.kernels._jit import kernel

FloatArray = npt.NDArray[np.float64]
KeyArray = npt.NDArray[np.uint64]
I64Array = npt.NDArray[np.int64]
CodeArray = npt.NDArray[np.uint8] | npt.NDArray[np.uint32]

# ------------------------------------------------------------------------------ hashing

_SEED = np.uint64(0x2545F4914F6CDD1D)
_FNV = np.uint64(0x100000001B3)  # FNV-1a's 64-bit prime: one multiply a code point
_P5 = np.uint64(0x27D4EB2F165667C5)
_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_S33 = np.uint64(33)
_ZERO = np.uint64(0)
_ONE = np.uint64(1)
_SEP = 0  # separator code point between ids in a joined buffer


@kernel
def fmix64(h: np.uint64) -> np.uint64:
    """MurmurHash3's 64-bit finaliser: a bijection with full avalanche."""
    h ^= h >> _S33
    h *= _M1
    h ^= h >> _S33
    h *= _M2
    h ^= h >> _S33
    return h


@kernel
def hash_codepoints(buf: CodeArray, n: int) -> KeyArray:
    """Keys of the ``n`` ids in ``buf``: code points of the ids separated by a 0.

    ``buf`` is ``"\\0".join(ids)`` encoded as latin-1 bytes (ASCII ids) or UTF-32 code
    units; both hash the same code point values, so an id's key does not depend on which
    encoding its batch needed.
    """
    out = np.empty(n, dtype=np.uint64)
    m = buf.shape[0]
    j = 0
    for r in range(n):
        start = j
        while j < m and buf[j] != _SEP:
            j += 1
        h = _SEED ^ (np.uint64(j - start) * _P5)
        for c in range(start, j):
            h = (h ^ np.uint64(buf[c])) * _FNV
        h = fmix64(h)
        out[r] = h if h != _ZERO else _ONE
        j += 1  # skip the separator
    return out


def hash_codepoints_np(buf: CodeArray, n: int) -> KeyArray:
    """NumPy twin of :func:`hash_codepoints` (vectorised over ids, looping over positions)."""
    sep = np.flatnonzero(buf == _SEP)
    ends = np.concatenate((sep, [buf.shape[0]]))[:n].astype(np.int64)
    starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64)
    lens = ends - starts
    with np.errstate(over="ignore"):
        h = _SEED ^ (lens.astype(np.uint64) * _P5)
        width = int(lens.max()) if n else 0
        for c in range(width):
            live = lens > c
            idx = np.where(live, starts + c, 0)
            x = buf[idx].astype(np.uint64)
            h = np.where(live, (h ^ x) * _FNV, h)
        h = _fmix64_np(h)
    return np.where(h == _ZERO, _ONE, h)


@kernel
def hash_ints(ids: I64Array) -> KeyArray:
    """Keys of integer ids: ``fmix64(id ^ seed)`` (0 mapped to 1)."""
    out = np.empty(ids.shape[0], dtype=np.uint64)
    for i in range(ids.shape[0]):
        h = fmix64(np.uint64(ids[i]) ^ _SEED)
        out[i] = h if h != _ZERO else _ONE
    return out


def hash_ints_np(ids: I64Array) -> KeyArray:
    """NumPy twin of :func:`hash_ints`."""
    with np.errstate(over="ignore"):
        h = _fmix64_np(ids.astype(np.uint64) ^ _SEED)
    return np.where(h == _ZERO, _ONE, h)


def _fmix64_np(h: KeyArray) -> KeyArray:
    h = h ^ (h >> _S33)
    h = h * _M1
    h = h ^ (h >> _S33)
    h = h * _M2
    return h ^ (h >> _S33)


def encode_ids(ids: Sequence[str]) -> CodeArray:
    """``"\\0".join(ids)`` as latin-1 bytes when every id is ASCII, else UTF-32 code units.

    Joining and encoding once is ~4x faster than ``np.asarray(ids, dtype=str)``. Callers check
    that no id contains a NUL (:func:`hash_ids` falls back to fixed-width arrays then)."""
    joined = "\0".join(ids)
    if joined.isascii():
        return np.frombuffer(joined.encode("latin-1"), dtype=np.uint8)
    return np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)


def hash_ids(ids: Sequence[str] | npt.NDArray[Any]) -> KeyArray:
    """64-bit keys (never 0) of a batch of event ids, stable across processes and versions.

    ``ids`` may be a sequence of ``str``, a NumPy ``str_``/``bytes_`` array (bytes hash as
    their latin-1 code points, so an ASCII id hashes the same as ``str`` or ``bytes``) or an
    integer array (hashed as integers: ``5`` and ``"5"`` are different ids).
    """
    with np.errstate(over="ignore"):  # wrapping uint64 arithmetic when run without the JIT
        if isinstance(ids, np.ndarray):
            if ids.dtype.kind in "iu":
                return hash_ints(np.ascontiguousarray(ids, dtype=np.int64))
            if ids.dtype.kind not in "US":
                raise TypeError(f"event ids must be str, bytes or integers, not {ids.dtype}")
            if ids.dtype.kind == "S":
                ids = np.char.decode(ids, "latin-1")
            seq: Sequence[str] = ids.tolist()
        else:
            seq = ids
        n = len(seq)
        if n == 0:
            return np.empty(0, dtype=np.uint64)
        buf = encode_ids(seq)
        if int(np.count_nonzero(buf == _SEP)) != n - 1:
            # some id contains a NUL: hash each one on its own (slow, and never seen in practice)
            return np.concatenate([hash_codepoints(encode_ids([s]), 1) for s in seq])
        return hash_codepoints(buf, n)


# ------------------------------------------------------------------------------ the stores

RecArray = npt.NDArray[np.uint64]  # (R, 4) records / (S, 2) cache entries
RecFArray = npt.NDArray[np.float64]  # float64 view of the same buffer

HEAD, SPAN, LIVE = 0, 1, 2
K_KEY, K_TS, K_VAL, K_AUX = 0, 1, 2, 3
REC_WIDTH = 4
WAYS = 8

# what a kernel stopped for (bit flags): the store whose ring is physically full
NEED_PENDING, NEED_EARLY = 1, 2

# statuses kept in the resolved cache (the low two bits of its first word)
JOINED, EXPIRED, EVICTED = 1, 2, 3

# counters (int64 array shared with the joiner)
C_PREDICTIONS = 0
C_LABELS = 1
C_JOINED = 2
C_ORPHANED = 3
C_LATE = 4
C_EXPIRED = 5
C_EVICTED = 6
C_DUPLICATES = 7
C_DUP_PREDICTIONS = 8
N_COUNTERS = 9
COUNTER_NAMES = (
    "predictions",
    "labels",
    "joined",
    "orphaned",
    "late",
    "expired",
    "evicted",
    "duplicates",
    "duplicate_predictions",
)

# float state (float64 array shared with the joiner)
F_LAG_SUM = 0
N_FSTATE = 1

_FP_SHIFT = np.uint64(31)
_POS_MASK = np.uint64((1 << 31) - 1)
MAX_RING = (1 << 31) - 2
_STATUS_MASK = np.uint64(3)
_KEY_MASK = np.uint64(0xFFFFFFFFFFFFFFFC)
_S2 = np.uint64(2)


@kernel
def slot_pos(table: KeyArray, slot: int) -> int:
    """Ring position indexed at ``slot``."""
    return int(np.int64(table[slot] & _POS_MASK) - 1)


@kernel
def table_find(rec: RecArray, table: KeyArray, key: np.uint64) -> int:
    """Index slot of ``key`` or -1."""
    mask = table.shape[0] - 1
    fp = key >> _FP_SHIFT
    i = np.int64(fp & np.uint64(mask))
    while True:
        w = table[i]
        if w == _ZERO:
            return -1
        if (w >> _FP_SHIFT) == fp and rec[np.int64(w & _POS_MASK) - 1, K_KEY] == key:
            return int(i)
        i = (i + 1) & mask


@kernel
def table_insert(table: KeyArray, key: np.uint64, pos: int) -> None:
    """Index ring position ``pos`` under ``key`` (which must not be indexed yet)."""
    mask = table.shape[0] - 1
    fp = key >> _FP_SHIFT
    i = np.int64(fp & np.uint64(mask))
    while table[i] != _ZERO:
        i = (i + 1) & mask
    table[i] = (fp << _FP_SHIFT) | np.uint64(pos + 1)


@kernel
def table_delete(table: KeyArray, slot: int) -> None:
    """Remove index slot ``slot`` by backward shift: each later entry of the probe run moves
    back unless its home slot lies cyclically in ``(slot, its position]``."""
    mask = table.shape[0] - 1
    umask = np.uint64(mask)
    i = slot
    j = slot
    while True:
        j = (j + 1) & mask
        w = table[j]
        if w == _ZERO:
            break
        k = np.int64((w >> _FP_SHIFT) & umask)
        if i <= j:
            if i < k and k <= j:
                continue
        elif k > i or k <= j:
            continue
        table[i] = w
        i = j
    table[i] = _ZERO


@kernel
def table_rebuild(rec: RecArray, table: KeyArray, n: int) -> None:
    """Index ring positions ``0 … n-1`` (a freshly compacted ring) into ``table``."""
    table[:] = _ZERO
    for pos in range(n):
        table_insert(table, rec[pos, K_KEY], pos)


@kernel
def skip_holes(rec: RecArray, st: I64Array) -> None:
    r = rec.shape[0]
    h = st[HEAD]
    s = st[SPAN]
    while s > 0 and rec[h, K_KEY] == _ZERO:
        h += 1
        if h == r:
            h = 0
        s -= 1
    st[HEAD] = h
    st[SPAN] = s


@kernel
def store_push(
    rec: RecArray,
    recf: RecFArray,
    table: KeyArray,
    st: I64Array,
    key: np.uint64,
    t: float,
    v: float,
    a: int,
) -> None:
    """Append at the tail. The caller has made sure that ``span < R``."""
    pos = (st[HEAD] + st[SPAN]) % rec.shape[0]
    rec[pos, K_KEY] = key
    recf[pos, K_TS] = t
    recf[pos, K_VAL] = v
    rec[pos, K_AUX] = np.uint64(a)
    st[SPAN] += 1
    st[LIVE] += 1
    table_insert(table, key, pos)


@kernel
def store_kill(rec: RecArray, table: KeyArray, st: I64Array, slot: int) -> None:
    """Remove the entry indexed at ``slot``, leaving a hole in the ring (its ts, value and
    aux stay readable until the slot is reused)."""
    pos = slot_pos(table, slot)
    table_delete(table, slot)
    rec[pos, K_KEY] = _ZERO
    st[LIVE] -= 1
    skip_holes(rec, st)


@kernel
def store_pop_oldest(rec: RecArray, table: KeyArray, st: I64Array) -> tuple[int, np.uint64]:
    """Remove the oldest entry (the store must not be empty); return its ring position and
    key."""
    skip_holes(rec, st)
    pos = st[HEAD]
    key = rec[pos, K_KEY]
    store_kill(rec, table, st, table_find(rec, table, key))
    return int(pos), key


@kernel
def needs_room(rec: RecArray, st: I64Array, max_live: int) -> bool:
    """Whether a push could find the ring physically full. A logically full store (``live``
    at its bound) pops its oldest entry before pushing, which always frees a slot."""
    return bool(st[SPAN] >= rec.shape[0] and st[LIVE] < max_live)


@kernel
def resolved_get(rc: RecArray, rcf: RecFArray, key: np.uint64, oldest: float) -> int:
    """Status remembered for ``key`` (0 if none, or if its prediction ts is before
    ``oldest``)."""
    if rc.shape[0] == 0:
        return 0
    nsets = rc.shape[0] // WAYS
    b = np.int64((key >> _S2) & np.uint64(nsets - 1)) * WAYS
    k = key & _KEY_MASK
    for w in range(b, b + WAYS):
        word = rc[w, 0]
        if word != _ZERO and (word & _KEY_MASK) == k:
            if rcf[w, 1] < oldest:
                return 0
            return int(word & _STATUS_MASK)
    return 0


@kernel
def resolved_put(rc: RecArray, rcf: RecFArray, key: np.uint64, t: float, status: int) -> None:
    """Remember ``key`` as ``status``; a full set forgets its oldest prediction."""
    if rc.shape[0] == 0:
        return
    nsets = rc.shape[0] // WAYS
    b = np.int64((key >> _S2) & np.uint64(nsets - 1)) * WAYS
    k = key & _KEY_MASK
    victim = -1
    for w in range(b, b + WAYS):
        word = rc[w, 0]
        if word == _ZERO or (word & _KEY_MASK) == k:
            victim = w
            break
        if victim < 0 or rcf[w, 1] < rcf[victim, 1]:
            victim = w
    rc[victim, 0] = k | np.uint64(status)
    rcf[victim, 1] = t


@kernel
def _observe_lag(lag: float, bounds: FloatArray, lag_counts: I64Array, fstate: FloatArray) -> None:
    b = 0
    nb = bounds.shape[0]
    while b < nb and lag > bounds[b]:
        b += 1
    lag_counts[b] += 1
    fstate[F_LAG_SUM] += lag


@kernel
def join_predictions(
    prec: RecArray,
    precf: RecFArray,
    ptab: KeyArray,
    pst: I64Array,
    erec: RecArray,
    erecf: RecFArray,
    etab: KeyArray,
    est: I64Array,
    rc: RecArray,
    rcf: RecFArray,
    limits: I64Array,
    cutoff: float,
    oldest: float,
    keys: KeyArray,
    ts: FloatArray,
    score: FloatArray,
    aux: I64Array,
    start: int,
    out_f: FloatArray,
    out_a: I64Array,
    m: int,
    counters: I64Array,
    bounds: FloatArray,
    lag_counts: I64Array,
    fstate: FloatArray,
) -> tuple[int, int, int]:
    """Process predictions ``start …``; return ``(next, need, m)``: ``next`` is the first item
    not processed (``len(keys)`` when done), ``need`` the stores to make room in before
    calling again, ``m`` the number of joined rows now in ``out_f`` / ``out_a``."""
    max_pending = limits[0]
    n = keys.shape[0]
    for i in range(start, n):
        if needs_room(prec, pst, max_pending):
            return i, NEED_PENDING, m
        key = keys[i]
        t = ts[i]
        counters[C_PREDICTIONS] += 1
        if (pst[LIVE] > 0 and table_find(prec, ptab, key) >= 0) or resolved_get(
            rc, rcf, key, oldest
        ) != 0:
            counters[C_DUP_PREDICTIONS] += 1
            continue
        eslot = table_find(erec, etab, key) if est[LIVE] > 0 else -1
        if eslot >= 0:
            epos = slot_pos(etab, eslot)
            lts = erecf[epos, K_TS]
            lab = erecf[epos, K_VAL]
            store_kill(erec, etab, est, eslot)
            if lts < cutoff:  # an expired early label not swept yet: it is an orphan
                counters[C_ORPHANED] += 1
                eslot = -1
        if eslot >= 0:  # its label came first
            if t >= cutoff:
                out_f[m, 0] = score[i]
                out_f[m, 1] = lab
                out_f[m, 2] = t
                out_f[m, 3] = lts
                out_a[m] = aux[i] | (np.int64(i) << 32)  # the trigger in the high bits
                m += 1
                counters[C_JOINED] += 1
                _observe_lag(lts - t, bounds, lag_counts, fstate)
                resolved_put(rc, rcf, key, t, JOINED)
            else:
                counters[C_EXPIRED] += 1
                counters[C_LATE] += 1
                resolved_put(rc, rcf, key, t, EXPIRED)
            continue
        if t < cutoff:  # already past the horizon on arrival
            counters[C_EXPIRED] += 1
            resolved_put(rc, rcf, key, t, EXPIRED)
            continue
        if pst[LIVE] >= max_pending:
            pos, old = store_pop_oldest(prec, ptab, pst)
            if precf[pos, K_TS] < cutoff:  # expired, just not swept yet
                counters[C_EXPIRED] += 1
                resolved_put(rc, rcf, old, precf[pos, K_TS], EXPIRED)
            else:
                counters[C_EVICTED] += 1
                resolved_put(rc, rcf, old, precf[pos, K_TS], EVICTED)
        store_push(prec, precf, ptab, pst, key, t, score[i], aux[i])
    return n, 0, m


@kernel
def join_labels(
    prec: RecArray,
    precf: RecFArray,
    ptab: KeyArray,
    pst: I64Array,
    erec: RecArray,
    erecf: RecFArray,
    etab: KeyArray,
    est: I64Array,
    rc: RecArray,
    rcf: RecFArray,
    limits: I64Array,
    cutoff: float,
    oldest: float,
    keys: KeyArray,
    ts: FloatArray,
    label: FloatArray,
    start: int,
    out_f: FloatArray,
    out_a: I64Array,
    m: int,
    counters: I64Array,
    bounds: FloatArray,
    lag_counts: I64Array,
    fstate: FloatArray,
) -> tuple[int, int, int]:
    """Process labels ``start …``; same contract as :func:`join_predictions`."""
    max_early = limits[1]
    n = keys.shape[0]
    for i in range(start, n):
        if needs_room(erec, est, max_early):
            return i, NEED_EARLY, m
        key = keys[i]
        lt = ts[i]
        counters[C_LABELS] += 1
        pslot = table_find(prec, ptab, key) if pst[LIVE] > 0 else -1
        if pslot >= 0:
            pos = slot_pos(ptab, pslot)
            t = precf[pos, K_TS]
            if t >= cutoff:
                out_f[m, 0] = precf[pos, K_VAL]
                out_f[m, 1] = label[i]
                out_f[m, 2] = t
                out_f[m, 3] = lt
                out_a[m] = np.int64(prec[pos, K_AUX]) | (np.int64(i) << 32)
                m += 1
                counters[C_JOINED] += 1
                _observe_lag(lt - t, bounds, lag_counts, fstate)
                status = JOINED
            else:  # past the horizon but not swept yet
                counters[C_EXPIRED] += 1
                counters[C_LATE] += 1
                status = EXPIRED
            store_kill(prec, ptab, pst, pslot)
            resolved_put(rc, rcf, key, t, status)
            continue
        status = resolved_get(rc, rcf, key, oldest)
        if status == JOINED:
            counters[C_DUPLICATES] += 1
            continue
        if status == EXPIRED:
            counters[C_LATE] += 1
            continue
        if status == EVICTED:
            counters[C_ORPHANED] += 1
            continue
        eslot = table_find(erec, etab, key) if est[LIVE] > 0 else -1
        if eslot >= 0:
            if erecf[slot_pos(etab, eslot), K_TS] >= cutoff:
                counters[C_DUPLICATES] += 1
                continue
            store_kill(erec, etab, est, eslot)  # expired, not swept yet: an orphan
            counters[C_ORPHANED] += 1
        if lt < cutoff or max_early <= 0:
            counters[C_ORPHANED] += 1
            continue
        if est[LIVE] >= max_early:
            store_pop_oldest(erec, etab, est)
            counters[C_ORPHANED] += 1
        store_push(erec, erecf, etab, est, key, lt, label[i], 0)
    return n, 0, m


@kernel
def expire_heads(
    prec: RecArray,
    precf: RecFArray,
    ptab: KeyArray,
    pst: I64Array,
    erec: RecArray,
    erecf: RecFArray,
    etab: KeyArray,
    est: I64Array,
    rc: RecArray,
    rcf: RecFArray,
    cutoff: float,
    counters: I64Array,
) -> None:
    """Expire from the oldest end of each ring while the oldest entry is past ``cutoff``
    (entries behind a newer one wait for :func:`sweep` or their lookup)."""
    while est[LIVE] > 0:
        skip_holes(erec, est)
        if erecf[est[HEAD], K_TS] >= cutoff:
            break
        store_pop_oldest(erec, etab, est)
        counters[C_ORPHANED] += 1
    while pst[LIVE] > 0:
        skip_holes(prec, pst)
        t = precf[pst[HEAD], K_TS]
        if t >= cutoff:
            break
        _, key = store_pop_oldest(prec, ptab, pst)
        counters[C_EXPIRED] += 1
        resolved_put(rc, rcf, key, t, EXPIRED)


@kernel
def sweep(
    prec: RecArray,
    precf: RecFArray,
    ptab: KeyArray,
    pst: I64Array,
    erec: RecArray,
    erecf: RecFArray,
    etab: KeyArray,
    est: I64Array,
    rc: RecArray,
    rcf: RecFArray,
    cutoff: float,
    counters: I64Array,
) -> None:
    """Expire every pending prediction and early label past ``cutoff``, wherever it sits in
    its ring, in ring order."""
    r = erec.shape[0]
    h = est[HEAD]
    for _ in range(est[SPAN]):
        key = erec[h, K_KEY]
        if key != _ZERO and erecf[h, K_TS] < cutoff:
            store_kill(erec, etab, est, table_find(erec, etab, key))
            counters[C_ORPHANED] += 1
        h += 1
        if h == r:
            h = 0
    r = prec.shape[0]
    h = pst[HEAD]
    for _ in range(pst[SPAN]):
        key = prec[h, K_KEY]
        t = precf[h, K_TS]
        if key != _ZERO and t < cutoff:
            store_kill(prec, ptab, pst, table_find(prec, ptab, key))
            counters[C_EXPIRED] += 1
            resolved_put(rc, rcf, key, t, EXPIRED)
        h += 1
        if h == r:
            h = 0

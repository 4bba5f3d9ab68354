"""Join delayed labels to the predictions they belong to, by ``event_id``, in bounded memory.

:class:`LabelJoiner` keeps the predictions still waiting for a label (*pending*), labels that
arrived before their prediction (*early*), and a bounded memory of recently *resolved*
prediction ids (joined, expired or evicted) so that duplicates and late labels can be told
apart from orphans. All three live in NumPy arrays indexed by numba hash tables on 64-bit id
hashes (:mod:`driftd.performance.table`): 48–64 bytes per pending prediction (a 32-byte
record plus its share of the index), no Python object per event.

Time and the horizon. The joiner's clock (*watermark*) is the largest event time seen so far,
predictions and labels alike, advanced once per call before the call's items are processed
(NaN times are read as the watermark). With ``cutoff = watermark − label_horizon_s``:

* a prediction with ``ts < cutoff`` is **expired**: it is dropped (``expired``) unless a label
  has already joined it. A label joins its prediction only while the prediction is still
  pending, so ``label_ts − prediction_ts ≤ label_horizon_s`` always holds for a join;
* a label whose prediction expired (and is still remembered) is **late**;
* a label with no known prediction is kept as *early* (bounded by ``max_early``, FIFO) in case
  its prediction is still on the way; it is **orphaned** when its own ``ts < cutoff``, when it
  is pushed out of the early store, when its id was evicted, or immediately if it is already
  past the cutoff or ``max_early`` is 0;
* a second label for an already joined (or already early) id is a **duplicate**, ignored; a
  second prediction with a pending or remembered id is a ``duplicate_predictions``, ignored
  (at-least-once delivery redelivers both after a restart).

Bounds. At most ``max_pending`` predictions wait; beyond that the oldest *by arrival* is
**evicted** (``evicted``). Expiry runs lazily from the oldest end of each store on every call,
plus a full sweep whenever the cutoff has advanced by ``sweep_interval_s`` (default: an
eighth of the horizon) since the last one, so a prediction with an out-of-order timestamp
cannot linger; a lookup also treats an expired-but-unswept prediction as expired, so the
result does not depend on sweep timing. Resolved ids are remembered until their prediction is
``resolved_retention_s`` past the cutoff (default: one more horizon), in a 4-way
set-associative cache of about ``max_resolved`` entries (a full set forgets its oldest
prediction); an id it no longer remembers is unknown, so a label for it waits as early and
ends up orphaned.

Every prediction ends up in exactly one of ``joined``, ``expired``, ``evicted``,
``duplicate_predictions`` or is still ``pending``; every label in exactly one of ``joined``,
``late``, ``orphaned``, ``duplicates`` or is still ``early``.

State: :meth:`LabelJoiner.snapshot` returns NumPy arrays (npz-able) and one JSON-able
``"meta"`` dict; :meth:`LabelJoiner.restore` rebuilds a joiner that behaves exactly as the
original from there on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from driftd.errors import StateError
from driftd.performance import table as T

FloatArray = npt.NDArray[np.float64]
I8Array = npt.NDArray[np.int8]
I16Array = npt.NDArray[np.int16]
RecArray = npt.NDArray[np.uint64]
RecFArray = npt.NDArray[np.float64]
KeyArray = npt.NDArray[np.uint64]
I64Array = npt.NDArray[np.int64]

SNAPSHOT_FORMAT = 1
MIN_RING = 1024
MAX_VERSIONS = 32767  # version codes live in the low 16 bits of an int32
# Label-lag histogram bucket upper bounds (seconds): seconds for fraud-like labels up to
# months for credit defaults.
LAG_BUCKETS_S: tuple[float, ...] = (
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 4 * 3600.0,
    86400.0, 7 * 86400.0, 30 * 86400.0, 90 * 86400.0, 365 * 86400.0,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class JoinedPairs:
    """Predictions joined to their labels, one row per pair, in join order."""

    version: I16Array  # code into version_names
    score: FloatArray
    label: FloatArray
    pred_label: I8Array  # -1 when the prediction carried none
    pred_ts: FloatArray
    label_ts: FloatArray
    version_names: tuple[str, ...]
    # index, in the call that made the pair, of the input row (prediction or label) that
    # completed it
    trigger: I64Array | None = None

    def __len__(self) -> int:
        return int(self.score.shape[0])

    @property
    def lag_s(self) -> FloatArray:
        """Label lag: ``label_ts − pred_ts`` (negative when the label's clock is behind)."""
        return self.label_ts - self.pred_ts

    def select(self, mask: npt.NDArray[np.bool_]) -> JoinedPairs:
        return JoinedPairs(
            self.version[mask],
            self.score[mask],
            self.label[mask],
            self.pred_label[mask],
            self.pred_ts[mask],
            self.label_ts[mask],
            self.version_names,
            self.trigger[mask] if self.trigger is not None else None,
        )

    def by_version(self) -> dict[str, JoinedPairs]:
        """The pairs split by model version (versions with no pair are left out)."""
        return {
            self.version_names[int(c)]: self.select(self.version == c)
            for c in np.unique(self.version)
        }


class _Store:
    """One ring + index (see :mod:`driftd.performance.table`)."""

    __slots__ = ("rec", "recf", "table", "st", "max_live", "r_max")

    def __init__(self, max_live: int) -> None:
        self.max_live = max_live
        # slack above max_live so that compacting a full ring always frees a fifth of it
        self.r_max = min(max_live + max_live // 4 + 16, T.MAX_RING)
        self._alloc(min(MIN_RING, self.r_max))

    def _alloc(self, ring: int) -> None:
        self.rec = np.zeros((ring, T.REC_WIDTH), dtype=np.uint64)
        self.recf = self.rec.view(np.float64)
        self.table = np.zeros(_table_size(ring), dtype=np.uint64)
        self.st = np.zeros(3, dtype=np.int64)

    @property
    def live(self) -> int:
        return int(self.st[T.LIVE])

    def nbytes(self) -> int:
        return int(self.rec.nbytes + self.table.nbytes + self.st.nbytes)

    def entries(self) -> npt.NDArray[np.uint64]:
        """Live records, oldest first (a copy)."""
        r = self.rec.shape[0]
        pos = (int(self.st[T.HEAD]) + np.arange(int(self.st[T.SPAN]), dtype=np.int64)) % r
        pos = pos[self.rec[pos, T.K_KEY] != 0]
        out: npt.NDArray[np.uint64] = self.rec[pos]
        return out

    def make_room(self) -> None:
        """Compact the ring, growing it (doubling, up to ``r_max``) when it is over half
        live. Amortised O(1) a push: a compaction frees at least a fifth of the ring."""
        r = self.rec.shape[0]
        if self.live > r // 2 and r < self.r_max:
            r = min(2 * r, self.r_max)
        self._load(self.entries(), ring=r)

    def _load(self, records: npt.NDArray[np.uint64], ring: int) -> None:
        n = records.shape[0]
        self._alloc(ring)
        self.rec[:n] = records
        T.table_rebuild(self.rec, self.table, n)
        self.st[:] = (0, n, n)

    @classmethod
    def from_entries(cls, max_live: int, records: npt.NDArray[Any]) -> _Store:
        n = int(records.shape[0])
        if records.ndim != 2 or records.shape[1] != T.REC_WIDTH or n > max_live:
            raise StateError("label joiner snapshot: inconsistent store records")
        keys = records[:, T.K_KEY]
        if n and (np.any(keys == 0) or np.unique(keys).shape[0] != n):
            raise StateError("label joiner snapshot: zero or repeated keys")
        s = cls(max_live)
        ring = s.rec.shape[0]
        while ring <= n and ring < s.r_max:
            ring = min(2 * ring, s.r_max)
        s._load(np.ascontiguousarray(records, dtype=np.uint64), ring=ring)
        return s


def _table_size(ring: int) -> int:
    """Smallest power of two ≥ 2·ring (load factor ≤ 1/2), at least 16."""
    return 1 << max(4, (2 * ring - 1).bit_length())


def _cache_size(max_resolved: int) -> int:
    """Slots of the resolved cache: ``WAYS`` × a power of two, at least ``max_resolved``."""
    if max_resolved <= 0:
        return 0
    sets = -(-max_resolved // T.WAYS)
    return T.WAYS * (1 << (sets - 1).bit_length())


class LabelJoiner:
    """Bounded, checkpointable join of delayed labels to predictions (see module docstring).

    Counters (monotonic, for Prometheus): :attr:`predictions`, :attr:`labels`,
    :attr:`joined`, :attr:`orphaned`, :attr:`late`, :attr:`expired`, :attr:`evicted`,
    :attr:`duplicates`, :attr:`duplicate_predictions`. Gauges: :attr:`pending`,
    :attr:`early`, :attr:`watermark`. Label lag: :meth:`lag_histogram`.
    """

    def __init__(
        self,
        label_horizon_s: float,
        *,
        max_pending: int = 1_000_000,
        max_early: int = 100_000,
        max_resolved: int = 200_000,
        resolved_retention_s: float | None = None,
        sweep_interval_s: float | None = None,
        lag_buckets_s: Sequence[float] = LAG_BUCKETS_S,
    ) -> None:
        if not (label_horizon_s > 0 and math.isfinite(label_horizon_s)):
            raise ValueError("label_horizon_s must be a positive number of seconds")
        if max_pending < 1 or max_early < 0 or max_resolved < 0:
            raise ValueError("max_pending must be ≥ 1, max_early and max_resolved ≥ 0")
        bounds = [float(b) for b in lag_buckets_s]
        if any(not math.isfinite(b) for b in bounds) or bounds != sorted(set(bounds)):
            raise ValueError("lag_buckets_s must be finite and strictly increasing")
        self.label_horizon_s = float(label_horizon_s)
        self.max_pending = int(max_pending)
        self.max_early = int(max_early)
        self.max_resolved = int(max_resolved)
        self.resolved_retention_s = float(
            label_horizon_s if resolved_retention_s is None else resolved_retention_s
        )
        # Sweeping at least once per retention period means an expired prediction still in
        # the ring is always still within retention: lazy and eager expiry then agree.
        self.sweep_interval_s = min(
            float(label_horizon_s / 8.0 if sweep_interval_s is None else sweep_interval_s),
            self.resolved_retention_s,
        )
        self.version_names: list[str] = []
        self._version_codes: dict[str, int] = {}
        self._pending = _Store(self.max_pending)
        self._early = _Store(self.max_early)
        self._rc = np.zeros((_cache_size(self.max_resolved), 2), dtype=np.uint64)
        self._limits = np.array([self.max_pending, self.max_early], dtype=np.int64)
        self._counters = np.zeros(T.N_COUNTERS, dtype=np.int64)
        self._fstate = np.zeros(T.N_FSTATE, dtype=np.float64)
        self._lag_bounds = np.array(bounds, dtype=np.float64)
        self._lag_counts = np.zeros(len(bounds) + 1, dtype=np.int64)
        self._clock = -math.inf
        self._last_sweep = -math.inf

    # ------------------------------------------------------------------ counters / gauges

    def _c(self, i: int) -> int:
        return int(self._counters[i])

    @property
    def predictions(self) -> int:
        """Predictions added."""
        return self._c(T.C_PREDICTIONS)

    @property
    def labels(self) -> int:
        """Labels added."""
        return self._c(T.C_LABELS)

    @property
    def joined(self) -> int:
        """Prediction–label pairs joined."""
        return self._c(T.C_JOINED)

    @property
    def orphaned(self) -> int:
        """Labels that found no prediction."""
        return self._c(T.C_ORPHANED)

    @property
    def late(self) -> int:
        """Labels that came after their prediction's horizon."""
        return self._c(T.C_LATE)

    @property
    def expired(self) -> int:
        """Predictions whose horizon passed without a label."""
        return self._c(T.C_EXPIRED)

    @property
    def evicted(self) -> int:
        """Predictions pushed out by ``max_pending``."""
        return self._c(T.C_EVICTED)

    @property
    def duplicates(self) -> int:
        """Repeated labels, ignored."""
        return self._c(T.C_DUPLICATES)

    @property
    def duplicate_predictions(self) -> int:
        """Repeated predictions, ignored."""
        return self._c(T.C_DUP_PREDICTIONS)

    @property
    def pending(self) -> int:
        """Predictions waiting for a label."""
        return self._pending.live

    @property
    def early(self) -> int:
        """Labels waiting for their prediction."""
        return self._early.live

    @property
    def watermark(self) -> float:
        """Largest event time seen (epoch seconds; ``-inf`` before the first event)."""
        return self._clock

    def counters(self) -> dict[str, int]:
        """All counters and the two gauges by name."""
        out = {name: int(v) for name, v in zip(T.COUNTER_NAMES, self._counters, strict=True)}
        out["pending"] = self.pending
        out["early"] = self.early
        return out

    def lag_histogram(self) -> tuple[list[tuple[float, int]], float]:
        """``([(upper_bound_s, cumulative_count), …, (inf, total)], sum_s)`` of the label lag
        of every join, in the shape Prometheus histograms take."""
        cum = np.cumsum(self._lag_counts)
        bounds = [*self._lag_bounds.tolist(), math.inf]
        return [(b, int(c)) for b, c in zip(bounds, cum, strict=True)], float(
            self._fstate[T.F_LAG_SUM]
        )

    def nbytes(self) -> int:
        """Bytes held in the stores' arrays (the joiner's memory, less a few hundred bytes of
        Python objects)."""
        return self._pending.nbytes() + self._early.nbytes() + int(self._rc.nbytes)

    # ------------------------------------------------------------------ versions

    def version_code(self, name: str) -> int:
        """The code of model version ``name`` (registered on first use)."""
        code = self._version_codes.get(name)
        if code is None:
            if len(self.version_names) >= MAX_VERSIONS:
                raise ValueError(f"more than {MAX_VERSIONS} model versions")
            code = len(self.version_names)
            self.version_names.append(name)
            self._version_codes[name] = code
        return code

    def _codes(self, versions: str | Sequence[str] | npt.NDArray[Any], n: int) -> I64Array:
        if isinstance(versions, str):
            return np.full(n, self.version_code(versions), dtype=np.int64)
        if isinstance(versions, np.ndarray) and versions.dtype.kind in "iu":
            codes = versions.astype(np.int64).reshape(-1)
            if codes.size and (codes.min() < 0 or codes.max() >= len(self.version_names)):
                raise ValueError("version codes must come from version_code()")
        else:
            get = self._version_codes.get
            codes = np.fromiter(
                (c if (c := get(v)) is not None else self.version_code(v) for v in versions),
                dtype=np.int64,
                count=len(versions),
            )
        if codes.shape[0] != n:
            raise ValueError(f"{codes.shape[0]} versions for {n} event ids")
        return codes

    # ------------------------------------------------------------------ the join

    def add_predictions(
        self,
        event_ids: Sequence[str] | npt.NDArray[Any],
        versions: str | Sequence[str] | npt.NDArray[Any],
        scores: npt.ArrayLike,
        ts: npt.ArrayLike,
        pred_labels: npt.ArrayLike | None = None,
    ) -> JoinedPairs:
        """Add a micro-batch of predictions; returns the pairs joined with early labels.

        ``versions``: one name for the whole batch, a name per event, or codes from
        :meth:`version_code`. ``scores``: the positive-class probability or the regression
        value. ``pred_labels``: optional predicted classes (0/1; -1 = none). ``ts``: event
        times in epoch seconds."""
        keys = T.hash_ids(event_ids)
        n = keys.shape[0]
        s = _f64(scores, n, "scores")
        t, clock = self._times(ts, n)
        aux = self._codes(versions, n)
        if pred_labels is not None:
            pl = np.asarray(pred_labels, dtype=np.float64).reshape(-1)
            if pl.shape[0] != n:
                raise ValueError(f"{pl.shape[0]} pred_labels for {n} event ids")
            # stored as pred + 1 in bits 16-17: 1 positive, 0 negative, -1 none (NaN too)
            pred = np.where(pl > 0, 2, np.where(pl == 0, 1, 0)).astype(np.int64)
            aux = aux | (pred << 16)
        self._clock = clock
        self._expire()
        out_f = np.empty((n, 4), dtype=np.float64)
        out_a = np.empty(n, dtype=np.int64)
        i = m = 0
        while True:
            i, need, m = T.join_predictions(
                *self._args(), keys, t, s, aux, i, out_f, out_a, m,
                self._counters, self._lag_bounds, self._lag_counts, self._fstate,
            )  # fmt: skip
            if not need:
                break
            self._make_room(need)
        return self._pairs(out_f[:m], out_a[:m])

    def add_labels(
        self,
        event_ids: Sequence[str] | npt.NDArray[Any],
        labels: npt.ArrayLike,
        ts: npt.ArrayLike,
    ) -> JoinedPairs:
        """Add a micro-batch of labels (any order); returns the pairs joined."""
        keys = T.hash_ids(event_ids)
        n = keys.shape[0]
        lab = _f64(labels, n, "labels")
        t, self._clock = self._times(ts, n)
        self._expire()
        out_f = np.empty((n, 4), dtype=np.float64)
        out_a = np.empty(n, dtype=np.int64)
        i = m = 0
        while True:
            i, need, m = T.join_labels(
                *self._args(), keys, t, lab, i, out_f, out_a, m,
                self._counters, self._lag_bounds, self._lag_counts, self._fstate,
            )  # fmt: skip
            if not need:
                break
            self._make_room(need)
        return self._pairs(out_f[:m], out_a[:m])

    def advance(self, watermark_s: float) -> None:
        """Move the clock forward without an event (e.g. from the source's record time when
        a topic is idle) and expire what that makes expire. Never moves it back."""
        if watermark_s > self._clock:
            self._clock = float(watermark_s)
        self._expire()

    # ------------------------------------------------------------------ internals

    def _cutoff(self) -> float:
        return self._clock - self.label_horizon_s

    def _times(self, ts: npt.ArrayLike, n: int) -> tuple[FloatArray, float]:
        """Event times with NaN read as the watermark, and the watermark after them."""
        t = _f64(ts, n, "ts")
        ok = np.isfinite(t)
        clock = self._clock
        if n and ok.any():
            clock = max(clock, float(t[ok].max()))
        if not ok.all():
            t = np.where(ok, t, clock if math.isfinite(clock) else 0.0)
        return t, clock

    def _args(
        self,
    ) -> tuple[
        RecArray, RecFArray, KeyArray, I64Array,
        RecArray, RecFArray, KeyArray, I64Array,
        RecArray, RecFArray, I64Array, float, float,
    ]:  # fmt: skip
        """The stores' arrays as the join kernels take them (re-read after every
        :meth:`_make_room`, which reallocates)."""
        p, e = self._pending, self._early
        cutoff = self._cutoff()
        return (
            p.rec, p.recf, p.table, p.st,
            e.rec, e.recf, e.table, e.st,
            self._rc, self._rc.view(np.float64), self._limits,
            cutoff, cutoff - self.resolved_retention_s,
        )  # fmt: skip

    def _make_room(self, need: int) -> None:
        if need & T.NEED_PENDING:
            self._pending.make_room()
        if need & T.NEED_EARLY:
            self._early.make_room()

    def _expire(self) -> None:
        cutoff = self._cutoff()
        if not math.isfinite(cutoff):
            return
        p, e = self._pending, self._early
        stores = (p.rec, p.recf, p.table, p.st, e.rec, e.recf, e.table, e.st)
        rc = (self._rc, self._rc.view(np.float64))
        T.expire_heads(*stores, *rc, cutoff, self._counters)
        if cutoff - self._last_sweep >= self.sweep_interval_s:
            T.sweep(*stores, *rc, cutoff, self._counters)
            self._last_sweep = cutoff

    def _pairs(self, f: FloatArray, a: I64Array) -> JoinedPairs:
        return JoinedPairs(
            version=(a & 0xFFFF).astype(np.int16),
            score=f[:, 0].copy(),
            label=f[:, 1].copy(),
            pred_label=(((a >> 16) & 0x3) - 1).astype(np.int8),
            pred_ts=f[:, 2].copy(),
            label_ts=f[:, 3].copy(),
            version_names=tuple(self.version_names),
            trigger=a >> 32,
        )

    # ------------------------------------------------------------------ state

    def snapshot(self) -> dict[str, Any]:
        """NumPy arrays (save them with ``np.savez``) plus ``"meta"``, a JSON-able dict.
        Stores are saved compacted, oldest first."""
        out: dict[str, Any] = {
            "counters": self._counters.copy(),
            "fstate": self._fstate.copy(),
            "clock": np.array([self._clock, self._last_sweep], dtype=np.float64),
            "lag_counts": self._lag_counts.copy(),
            "lag_bounds": self._lag_bounds.copy(),
        }
        out["pending"] = self._pending.entries()
        out["early"] = self._early.entries()
        used = np.flatnonzero(self._rc[:, 0])
        out["resolved_slots"] = used.astype(np.int64)
        out["resolved"] = self._rc[used]
        out["meta"] = {
            "format": SNAPSHOT_FORMAT,
            "label_horizon_s": self.label_horizon_s,
            "max_pending": self.max_pending,
            "max_early": self.max_early,
            "max_resolved": self.max_resolved,
            "resolved_retention_s": self.resolved_retention_s,
            "sweep_interval_s": self.sweep_interval_s,
            "versions": list(self.version_names),
        }
        return out

    @classmethod
    def restore(cls, state: Mapping[str, Any]) -> LabelJoiner:
        """Rebuild a joiner from :meth:`snapshot` output (arrays possibly read back from an
        npz file, meta from JSON). Raises :class:`~driftd.errors.StateError` if it does not
        fit together."""
        try:
            meta = state["meta"]
            if meta.get("format") != SNAPSHOT_FORMAT:
                raise StateError(f"label joiner snapshot format {meta.get('format')!r}")
            j = cls(
                float(meta["label_horizon_s"]),
                max_pending=int(meta["max_pending"]),
                max_early=int(meta["max_early"]),
                max_resolved=int(meta["max_resolved"]),
                resolved_retention_s=float(meta["resolved_retention_s"]),
                sweep_interval_s=float(meta["sweep_interval_s"]),
                lag_buckets_s=np.asarray(state["lag_bounds"], dtype=np.float64).tolist(),
            )
            for v in meta["versions"]:
                j.version_code(str(v))
            j._counters[:] = np.asarray(state["counters"], dtype=np.int64)
            j._fstate[:] = np.asarray(state["fstate"], dtype=np.float64)
            j._lag_counts[:] = np.asarray(state["lag_counts"], dtype=np.int64)
            clock = np.asarray(state["clock"], dtype=np.float64)
            j._clock, j._last_sweep = float(clock[0]), float(clock[1])
            j._pending = _Store.from_entries(j.max_pending, np.asarray(state["pending"]))
            j._early = _Store.from_entries(j.max_early, np.asarray(state["early"]))
            slots = np.asarray(state["resolved_slots"], dtype=np.int64)
            j._rc[slots] = np.asarray(state["resolved"], dtype=np.uint64).reshape(-1, 2)
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise StateError(f"label joiner snapshot: {e!r}") from e
        return j


def _f64(a: npt.ArrayLike, n: int, what: str) -> FloatArray:
    x = np.ascontiguousarray(a, dtype=np.float64).reshape(-1)
    if x.shape[0] != n:
        raise ValueError(f"{x.shape[0]} {what} for {n} event ids")
    return x

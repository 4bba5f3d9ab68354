"""Performance monitoring in scale-out: the label join runs in the partition stage.

In one process a monitor's joiner sees every prediction and every label. With several
processes the prediction and label topics are *co-partitioned*: both keyed by ``event_id``
with the same partition count, and assigned together (the range assignor gives a process the
same partition numbers of every topic). The prediction and the label of one event then reach
the same process under the same partition index, which joins them there
(:class:`PartitionJoins`: one joiner per monitor and partition index, its state moving with the
partitions through the state topic). The joined pairs travel to the process that decides the
monitor as :class:`Outcomes`, with the panes:

- the pairs (model version, score, label, times);
- per pair, the source record that completed it (partition key, offset): after a crash the
  partition stage re-joins from its saved state and offsets, and the decider folds a pair
  only if its trigger is past what it folded from that source partition;
- the join's counters since the previous outcomes of that joiner (joined, late, orphaned, …,
  the label-lag histogram and the pending / early gauges), so ``driftd_labels_total`` and
  friends are exported once, by the decider, summed over partitions.
"""

from __future__ import annotations

import logging
import struct
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from driftd.monitor.perf_join import Chunk, Label, Prediction, join_batch
from driftd.monitor.perf_state import MonitorPerf
from driftd.performance import JoinedPairs, LabelJoiner
from driftd.performance import table as T
from driftd.sources.base import split_partition_key
from driftd.state.checkpoint import join_arrays, split_arrays

log = logging.getLogger(__name__)

I64 = npt.NDArray[np.int64]


@dataclass(slots=True)
class Outcomes:
    """What one partition index's join of one monitor produced in one batch."""

    monitor: str
    part: int
    pairs: JoinedPairs
    keys: tuple[str, ...]  # source partition keys the triggers come from
    key: npt.NDArray[np.int16]  # per pair: index into keys
    offset: I64  # per pair: source offset of the record that completed it
    counters: I64  # join counter deltas (performance.table.COUNTER_NAMES order)
    lag_counts: I64  # label-lag histogram deltas
    lag_sum: float
    pending: int  # gauges of the joiner, absolute
    early: int
    unjoinable: dict[str, int] = field(default_factory=dict)

    def fresh(self, folded: dict[str, int]) -> JoinedPairs:
        """The pairs whose trigger is past ``folded`` (source key → last offset folded), which
        is advanced; replays of pairs folded before are dropped."""
        if not len(self.pairs):
            return self.pairs
        keep = np.ones(len(self.pairs), dtype=np.bool_)
        for k, key in enumerate(self.keys):
            mine = self.key == k
            if not mine.any():
                continue
            last = folded.get(key, -1)
            keep &= ~mine | (self.offset > last)
            folded[key] = max(last, int(self.offset[mine].max()))
        return self.pairs if keep.all() else self.pairs.select(keep)


class PartitionJoins:
    """Every (partition index, monitor) joiner of this process's partition stage."""

    def __init__(self, monitors: dict[str, MonitorPerf]) -> None:
        self.monitors = monitors
        self.parts: dict[int, dict[str, LabelJoiner]] = {}
        # counters at the last Outcomes of each joiner (to send deltas)
        self._sent: dict[tuple[int, str], tuple[I64, I64, float]] = {}
        self.dirty: set[int] = set()  # partition indices changed since their last save

    def joiner(self, part: int, mp: MonitorPerf) -> LabelJoiner:
        mine = self.parts.setdefault(part, {})
        j = mine.get(mp.name)
        if j is None:
            j = mine[mp.name] = mp.new_joiner()
        self.dirty.add(part)
        return j

    def take(
        self,
        preds: list[Prediction],
        labels: list[Label],
        p_origin: list[tuple[str, int]],
        l_origin: list[tuple[str, int]],
    ) -> list[Outcomes]:
        """A batch's staged predictions and labels (with their source key and offset), joined
        per partition index: the outcomes of every monitor whose join they touched."""
        parts: dict[int, tuple[list[int], list[int]]] = {}
        for k, (key, _) in enumerate(p_origin):
            parts.setdefault(split_partition_key(key)[1], ([], []))[0].append(k)
        for k, (key, _) in enumerate(l_origin):
            parts.setdefault(split_partition_key(key)[1], ([], []))[1].append(k)
        out: list[Outcomes] = []
        monitors = list(self.monitors.values())
        for part, (pk, lk) in sorted(parts.items()):
            touched: dict[str, MonitorPerf] = {}

            def joiner_of(
                mp: MonitorPerf, part: int = part, touched: dict[str, MonitorPerf] = touched
            ) -> LabelJoiner:
                touched[mp.name] = mp
                return self.joiner(part, mp)

            unjoinable: Counter[tuple[str, str]] = Counter()
            joined = join_batch(
                monitors, [preds[k] for k in pk], [labels[k] for k in lk], joiner_of, unjoinable
            )
            origins = [p_origin[k] for k in pk] + [l_origin[k] for k in lk]
            for (name, _), _n in unjoinable.items():
                touched.setdefault(name, self.monitors[name])
            for name, mp in touched.items():
                mine = {r: n for (m, r), n in unjoinable.items() if m == name}
                out.append(self.outcomes(part, mp, joined.get(name, []), origins, mine))
        return out

    def outcomes(
        self,
        part: int,
        mp: MonitorPerf,
        chunks: list[Chunk],
        origins: list[tuple[str, int]],
        unjoinable: dict[str, int],
    ) -> Outcomes:
        """The monitor's outcomes of one batch at one partition index: ``chunks`` are the
        pairs with, per pair, the index of its trigger in ``origins`` (key, offset)."""
        j = self.joiner(part, mp)
        pairs = _concat(chunks, j)
        trig = np.concatenate([t for _, t in chunks]) if chunks else np.zeros(0, dtype=np.int64)
        keys = tuple(sorted({origins[int(t)][0] for t in trig}))
        code = {k: i for i, k in enumerate(keys)}
        key = np.fromiter((code[origins[int(t)][0]] for t in trig), np.int16, len(trig))
        off = np.fromiter((origins[int(t)][1] for t in trig), np.int64, len(trig))
        counters = j._counters.copy()
        lag = j._lag_counts.copy()
        lag_sum = float(j._fstate[T.F_LAG_SUM])
        c0, l0, s0 = self._sent.get((part, mp.name), (np.zeros_like(counters),
                                                     np.zeros_like(lag), 0.0))  # fmt: skip
        self._sent[(part, mp.name)] = (counters, lag, lag_sum)
        return Outcomes(
            mp.name, part, pairs, keys, key, off, counters - c0, lag - l0, lag_sum - s0,
            j.pending, j.early, unjoinable,
        )  # fmt: skip

    # ------------------------------------------------------------------ state

    def snapshot(self, part: int, offsets: dict[str, int]) -> tuple[dict[str, Any], dict[str, Any]]:
        """One partition index's joiners with the source offsets they have seen up to."""
        arrays: dict[str, Any] = {}
        joiners = {
            name: split_arrays(j.snapshot(), arrays, f"{name}.")
            for name, j in self.parts.get(part, {}).items()
        }
        return {"part": part, "offsets": offsets, "joiners": joiners}, arrays

    def restore(self, part: int, meta: dict[str, Any], arrays: dict[str, Any]) -> dict[str, int]:
        """Install a partition index's joiners; returns the source offsets they cover (the
        source resumes there). A joiner whose monitor's performance block changed, or whose
        state is unusable, starts empty (logged)."""
        mine: dict[str, LabelJoiner] = {}
        for name, saved in meta.get("joiners", {}).items():
            mp = self.monitors.get(name)
            if mp is None:
                continue
            try:
                j = LabelJoiner.restore(join_arrays(saved, arrays))
            except Exception as exc:  # noqa: BLE001 - StateError and friends: start empty
                log.error("label join of %s, partition %d unusable (%r); empty", name, part, exc)
                continue
            if j.label_horizon_s != mp.cfg.label_horizon_s:
                log.warning("label join of %s changed; partition %d starts empty", name, part)
                continue
            mine[name] = j
            self._sent[(part, name)] = (
                j._counters.copy(), j._lag_counts.copy(), float(j._fstate[T.F_LAG_SUM])
            )  # fmt: skip
        self.parts[part] = mine
        return {str(k): int(v) for k, v in meta.get("offsets", {}).items()}

    def drop(self, part: int) -> None:
        self.parts.pop(part, None)
        self.dirty.discard(part)
        for key in [k for k in self._sent if k[0] == part]:
            del self._sent[key]


def fold_counts(mp: MonitorPerf, out: Outcomes) -> None:
    """Add a partition's join counters to the decider's (its own joiner, idle in scale-out,
    is their sum)."""
    j = mp.joiner
    if out.counters.shape == j._counters.shape:
        j._counters += out.counters
    if out.lag_counts.shape == j._lag_counts.shape:
        j._lag_counts += out.lag_counts
        j._fstate[T.F_LAG_SUM] += out.lag_sum
    mp.part_gauges[out.part] = (out.pending, out.early)


def _concat(chunks: list[Chunk], j: LabelJoiner) -> JoinedPairs:
    """One JoinedPairs of several from one joiner (its version codes never change)."""
    names = tuple(j.version_names)
    if not chunks:
        z = np.zeros(0)
        return JoinedPairs(z.astype(np.int16), z, z, z.astype(np.int8), z, z, names)

    def cat(f: str) -> Any:
        return np.concatenate([getattr(p, f) for p, _ in chunks])

    return JoinedPairs(
        cat("version"), cat("score"), cat("label"), cat("pred_label"), cat("pred_ts"),
        cat("label_ts"), names,
    )  # fmt: skip


# ---------------------------------------------------------------------------- wire format
#
#   b"DJP" + format byte (1), u32 little-endian length of the JSON header, the header
#   {"monitor", "part", "keys", "versions", "pairs", "counters", "lags", "lag_sum",
#    "pending", "early", "unjoinable"}, then little-endian columns: version (int16), score,
#   label (float64), pred_label (int8), pred_ts, label_ts (float64), key (int16),
#   offset (int64), counters (int64), lag counts (int64).

MAGIC = b"DJP"
FORMAT = 1
_COLS = (("version", "<i2"), ("score", "<f8"), ("label", "<f8"), ("pred_label", "<i1"),
         ("pred_ts", "<f8"), ("label_ts", "<f8"))  # fmt: skip


def encode(o: Outcomes) -> bytes:
    p = o.pairs
    head = orjson.dumps(
        {
            "monitor": o.monitor, "part": o.part, "keys": list(o.keys),
            "versions": list(p.version_names), "pairs": len(p),
            "counters": int(o.counters.shape[0]), "lags": int(o.lag_counts.shape[0]),
            "lag_sum": o.lag_sum, "pending": o.pending, "early": o.early,
            "unjoinable": o.unjoinable,
        }
    )  # fmt: skip
    parts = [MAGIC, bytes([FORMAT]), struct.pack("<I", len(head)), head]
    parts += [np.ascontiguousarray(getattr(p, f), dtype=dt).tobytes() for f, dt in _COLS]
    parts += [
        np.ascontiguousarray(o.key, dtype="<i2").tobytes(),
        np.ascontiguousarray(o.offset, dtype="<i8").tobytes(),
        np.ascontiguousarray(o.counters, dtype="<i8").tobytes(),
        np.ascontiguousarray(o.lag_counts, dtype="<i8").tobytes(),
    ]
    return b"".join(parts)


def is_outcomes(data: bytes) -> bool:
    return data[:3] == MAGIC


def decode(data: bytes) -> Outcomes:
    """Raises ValueError for anything that is not outcomes of this format."""
    if len(data) < 8 or data[:3] != MAGIC:
        raise ValueError("not driftd join outcomes")
    if data[3] != FORMAT:
        raise ValueError(f"join outcomes format {data[3]} (this release reads {FORMAT})")
    (hlen,) = struct.unpack_from("<I", data, 4)
    try:
        h = orjson.loads(data[8 : 8 + hlen])
        n = int(h["pairs"])
    except (KeyError, TypeError, ValueError, orjson.JSONDecodeError) as exc:
        raise ValueError(f"bad join outcomes: {exc}") from None
    at = 8 + hlen

    def take(dtype: str, count: int) -> Any:
        nonlocal at
        size = np.dtype(dtype).itemsize * count
        if at + size > len(data):
            raise ValueError("truncated join outcomes")
        arr = np.frombuffer(data, dtype=dtype, count=count, offset=at)
        at += size
        return arr.astype(dtype[1:], copy=True)

    version, score, label, pred_label, pred_ts, label_ts = (take(dt, n) for _, dt in _COLS)
    names = tuple(str(v) for v in h["versions"])
    pairs = JoinedPairs(version, score, label, pred_label, pred_ts, label_ts, names)
    key, off = take("<i2", n), take("<i8", n)
    counters, lags = take("<i8", int(h["counters"])), take("<i8", int(h["lags"]))
    return Outcomes(
        str(h["monitor"]), int(h["part"]), pairs, tuple(str(k) for k in h["keys"]), key, off,
        counters, lags, float(h["lag_sum"]), int(h["pending"]), int(h["early"]),
        {str(k): int(v) for k, v in h.get("unjoinable", {}).items()},
    )  # fmt: skip

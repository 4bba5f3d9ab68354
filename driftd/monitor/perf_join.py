"""One batch of staged predictions and labels through the label joiners.

Predictions first (grouped by model and version, their ids, scores and times handed to the
joiner as arrays), then labels. Each pair comes back with the index, in ``preds + labels``,
of the staged row that completed it: scale-out uses it to know which source record produced
which pair (:mod:`driftd.monitor.perf_split`).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from driftd.ingest.labels import MAX_FUTURE_S, as_id, as_number
from driftd.monitor.perf_state import MonitorPerf
from driftd.performance import JoinedPairs, LabelJoiner

# Joined pairs with, per pair, the index of the staged prediction / label that completed it.
Chunk = tuple[JoinedPairs, npt.NDArray[np.int64]]
Prediction = tuple[str, str, Any, Any, float]  # model, version, (id, label, raw ts), pred, ts
Label = tuple[str | None, str, float, float]  # model or None, event id, label, ts
JoinerOf = Callable[[MonitorPerf], LabelJoiner]


def join_batch(
    monitors: Sequence[MonitorPerf],
    preds: list[Prediction],
    labels: list[Label],
    joiner_of: JoinerOf,
    unjoinable: Counter[tuple[str, str]],
) -> dict[str, list[Chunk]]:
    """The pairs per monitor; predictions the join cannot take are counted in
    ``unjoinable[(monitor, reason)]``."""
    joined: dict[str, list[Chunk]] = {}
    if preds:
        by_model: dict[str, list[MonitorPerf]] = {}
        for mp in monitors:
            by_model.setdefault(mp.model, []).append(mp)
        _add_predictions(by_model, preds, joined, joiner_of, unjoinable)
    base = len(preds)
    for mp in monitors if labels else ():
        idx = [k for k, x in enumerate(labels) if x[0] is None or x[0] == mp.model]
        if not idx:
            continue
        mine = [labels[k] for k in idx]
        pairs = joiner_of(mp).add_labels(
            [x[1] for x in mine],
            np.fromiter((x[2] for x in mine), np.float64, len(mine)),
            np.fromiter((x[3] for x in mine), np.float64, len(mine)),
        )
        if len(pairs):
            trig = base + np.asarray(idx, dtype=np.int64)[_trigger(pairs)]
            joined.setdefault(mp.name, []).append((pairs, trig))
    return joined


def _add_predictions(
    by_model: dict[str, list[MonitorPerf]],
    preds: list[Prediction],
    joined: dict[str, list[Chunk]],
    joiner_of: JoinerOf,
    unjoinable: Counter[tuple[str, str]],
) -> None:
    groups: dict[tuple[str, str], list[tuple[Any, Any, float, int]]] = {}
    for k, (model, version, extra, pred, ts) in enumerate(preds):
        groups.setdefault((model, version), []).append((extra, pred, ts, k))
    for (model, version), rows in groups.items():
        ids: list[str] = []
        scores: list[float] = []
        times: list[float] = []
        rows_of: list[int] = []
        lab_ids: list[str] = []
        lab_vals: list[float] = []
        lab_ts: list[float] = []
        lab_of: list[int] = []
        missing = 0
        future = 0
        limit = time.time() + MAX_FUTURE_S
        for (eid_raw, label_raw, _), pred, ts, k in rows:
            eid = as_id(eid_raw)
            if eid is None:
                missing += 1
                continue
            if ts > limit:  # would move the join's clock ahead for good: not joined
                future += 1
                continue
            ids.append(eid)
            scores.append(as_number(pred))
            times.append(ts)
            rows_of.append(k)
            if label_raw is not None:
                lv = as_number(label_raw)
                if math.isfinite(lv):
                    lab_ids.append(eid)
                    lab_vals.append(lv)
                    lab_ts.append(ts)
                    lab_of.append(k)
        for mp in by_model[model]:
            if missing:
                unjoinable[(mp.name, "no_event_id")] += missing
            if future:
                unjoinable[(mp.name, "future_ts")] += future
            if not ids:
                continue
            j = joiner_of(mp)
            if not mp.has_room_for(version, j):
                # the joiner codes versions in 15 bits: a stream inventing versions without
                # end is counted, not a crash
                unjoinable[(mp.name, "too_many_versions")] += len(ids)
                continue
            pairs = j.add_predictions(ids, version, scores, times)
            if len(pairs):
                trig = np.asarray(rows_of, dtype=np.int64)[_trigger(pairs)]
                joined.setdefault(mp.name, []).append((pairs, trig))
            if lab_ids:  # labels carried by the prediction events themselves
                pairs = j.add_labels(lab_ids, lab_vals, lab_ts)
                if len(pairs):
                    trig = np.asarray(lab_of, dtype=np.int64)[_trigger(pairs)]
                    joined.setdefault(mp.name, []).append((pairs, trig))


def _trigger(p: JoinedPairs) -> npt.NDArray[np.int64]:
    assert p.trigger is not None
    return p.trigger

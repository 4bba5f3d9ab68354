"""What scale-out mode keeps in the state topic, and how it is read back.

Two kinds of record, both ``scaleout.encode_bundle`` bundles (versioned, no pickle):

- key ``<monitor>``: one monitor's whole state — its meta entry, one entry per version (windows,
  references, policy, segments), its performance state when it has a ``performance`` block —
  with the alerts it raised that are not yet in an outbox. Written by the process that decides
  the monitor before it commits the panes offsets the state covers; read by the next owner of
  the monitor's panes partition.
- key ``join/<i>``: the label join of source partition index ``i`` (predictions waiting for
  labels and the reverse) with the source offsets it covers. Written by the process reading
  that partition before it commits those offsets; read by the next one.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from driftd.monitor import persist
from driftd.runtime.pipeline import monitor_key, version_key
from driftd.runtime.scaleout import decode_bundle, encode_bundle
from driftd.sources.base import split_partition_key

if TYPE_CHECKING:
    from driftd.monitor.perf_split import PartitionJoins
    from driftd.monitor.stage import MonitorStage
    from driftd.runtime.pipeline import Pipeline

log = logging.getLogger(__name__)

PERF_ENTRY = "performance"
JOIN_ENTRY = "join"


def encode_monitor(
    pipeline: Pipeline, stage: MonitorStage, alerts: list[dict[str, Any]] | None
) -> bytes:
    """The state record of one monitor (marks what it wrote clean)."""
    name = stage.name
    entries: dict[str, Any] = {monitor_key(name): (persist.stage_meta(stage), {})}
    for v, vm in stage.versions.items():
        entries[version_key(name, v)] = persist.snapshot_version(stage, v)
        vm.dirty = False
        for c in vm.segments.values():
            c.dirty = False
    perf = pipeline.perf
    if perf is not None and name in perf.monitors:
        from driftd.monitor import perf_state

        entries[PERF_ENTRY] = perf_state.snapshot({name: perf.monitors[name]})
    stage.meta_dirty = False
    stage.removed.clear()
    return encode_bundle(entries, alerts or [])


def restore_monitor(
    pipeline: Pipeline, stage: MonitorStage, record: bytes
) -> tuple[bool, list[dict[str, Any]]]:
    """Load a monitor's record into its freshly reset stage: (whether there was state, the
    alerts it had raised and not handed over)."""
    name = stage.name
    entries, alerts = decode_bundle(record)
    meta = entries.get(monitor_key(name))
    restored = False
    if meta is not None:

        def load(v: str) -> Any:
            return entries.get(version_key(name, v))

        persist.restore_stage(stage, meta[0], load, time.time())
        restored = True
    perf = pipeline.perf
    saved_perf = entries.get(PERF_ENTRY)
    if perf is not None and name in perf.monitors and saved_perf is not None:
        from driftd.monitor import perf_state

        perf_state.restore({name: perf.monitors[name]}, *saved_perf)
    return restored, alerts


def join_key(part: int) -> str:
    """The state-topic key of the label join of source partition index ``part``."""
    return f"join/{part}"


def source_index(key: str) -> int:
    """The partition index of a source key ``topic/partition``."""
    return split_partition_key(key)[1]


def encode_join(joins: PartitionJoins, part: int, offsets: dict[str, int]) -> bytes:
    return encode_bundle({JOIN_ENTRY: joins.snapshot(part, offsets)}, [])


def restore_join(joins: PartitionJoins, part: int, record: bytes) -> dict[str, int]:
    """Load the label join of partition index ``part``; the source offsets it covers (empty,
    and the join started empty, when the record is unusable)."""
    try:
        entries, _ = decode_bundle(record)
        meta, arrays = entries[JOIN_ENTRY]
        return joins.restore(part, meta, arrays)
    except (KeyError, ValueError, TypeError) as exc:
        log.error("label join state of partition %d unusable (%r); starting it empty", part, exc)
        joins.parts[part] = {}
        return {}

"""A monitor's state ↔ checkpoint entries: the monitor's own meta (version order, partitions,
segments, clock) and, per version, its window, policy states, detectors, reference-mode state
and segments as plain arrays plus JSON (never pickle)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from driftd.ingest.decode import OpenCodes
from driftd.monitor import detect, refmodes
from driftd.monitor.version import Context, VersionMonitor
from driftd.policy import PolicyState
from driftd.reference.warmup import WarmupBuilder
from driftd.state.checkpoint import join_arrays, split_arrays

if TYPE_CHECKING:
    from driftd.monitor.stage import MonitorStage

log = logging.getLogger(__name__)

VersionLoader = Callable[[str], tuple[dict[str, Any], dict[str, Any]] | None]


def stage_meta(stage: MonitorStage) -> dict[str, Any]:
    """The monitor's own checkpoint entry (its versions are entries of their own)."""
    meta: dict[str, Any] = {
        "monitor": stage.name,
        "fingerprint": stage.fingerprint,
        "order": stage.order,
        "served": sorted(stage.served),
        "versions": list(stage.versions),
        "partitions": stage.partition_keys,
        "segments": [list(k) for k in stage._seg_keys],
        "clock": stage.clock.snapshot() if stage.clock is not None else None,
        "stream_position": stage.stream_position,
    }
    if stage.spec.open_categories:  # the codes in windows and warmup counts index them
        meta["codes"] = [list(t) for t in stage.code_tables()]
    return meta


def snapshot_version(
    stage: MonitorStage, version: str
) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
    """A version's checkpoint entry: (JSON meta, arrays)."""
    arrays: dict[str, npt.NDArray[Any]] = {}
    meta = snapshot(stage.versions[version], arrays)
    return {"monitor": stage.name, "fingerprint": stage.fingerprint, **meta}, arrays


def restore_stage(
    stage: MonitorStage, meta: dict[str, Any], load_version: VersionLoader, now: float
) -> int:
    """Install saved state into a fresh stage; returns the versions restored. State saved for
    another window, feature layout or profile is discarded whole (logged); a version whose
    saved state cannot be used starts fresh (logged)."""
    if meta.get("fingerprint") != stage.fingerprint:
        log.warning(
            "checkpoint: monitor %s changed (window, features, segments or reference"
            " profile); discarding its saved state and starting it fresh",
            stage.name,
            extra={"monitor": stage.name},
        )
        return 0
    recode = None
    if stage.spec.open_categories and meta.get("codes") is not None:
        recode = recode_tables(meta["codes"], stage.code_tables(), stage.spec)
    stage.order = [str(v) for v in meta.get("order", [])]
    stage.stream_position = int(meta.get("stream_position", 0))
    stage.served = {str(v) for v in meta.get("served", [])}
    stage.partition_keys = [str(k) for k in meta.get("partitions", [])]
    stage._part_code = {k: i for i, k in enumerate(stage.partition_keys)}
    stage._seg_keys = [tuple(str(x) for x in k) for k in meta.get("segments", [])]
    if stage._seg_code is not None:
        stage._seg_code = {k: i for i, k in enumerate(stage._seg_keys)}
    if stage.clock is not None and meta.get("clock") is not None:
        stage.clock.restore(meta["clock"], now)
    n = 0
    for version in meta.get("versions", []):
        saved = load_version(str(version))
        if saved is None:
            continue
        vmeta, arrays = saved
        try:
            vm = restore(stage, vmeta, arrays, "", recode)
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            log.error(
                "checkpoint: state of monitor %s version %s is unusable (%r); starting the"
                " version fresh",
                stage.name,
                version,
                exc,
                extra={"monitor": stage.name, "model_version": str(version)},
            )
            continue
        stage.versions[vm.version] = vm
        n += 1
    stage.meta_dirty = False
    return n


def snapshot(
    vm: VersionMonitor, arrays: dict[str, npt.NDArray[Any]], prefix: str = ""
) -> dict[str, Any]:
    """The JSON part of the version's state; its arrays go to ``arrays`` under ``prefix``
    (plain arrays, never pickle)."""
    for name, arr in vm.window.snapshot().items():
        arrays[f"{prefix}w.{name}"] = arr
    meta: dict[str, Any] = {
        "version": vm.version,
        "segment": list(vm.segment) if vm.segment is not None else None,
        "accepted": vm.accepted,
        "last_position": vm.last_position,
        "merged": vm.merged,
        "policy": vm.policy.to_json(),
        "warn": vm.warn.to_json(),
        "latest": vm.latest,
        "estimate": vm.est.to_json(),
        "estimate_latest": vm.est_latest,
        "detectors": [
            split_arrays(a.snapshot(), arrays, f"{prefix}d{j}.")
            for j, a in enumerate(vm.dets)
        ],
    }
    if vm.warmup is not None:
        meta["warmup"] = True
        for name, arr in vm.warmup.snapshot().items():
            arrays[f"{prefix}b.{name}"] = arr
    elif vm.ref_spec is not None:
        meta["reference"] = refmodes.profile_state(vm.ref_spec.profile, arrays, f"{prefix}r.")
    meta["segments"] = [
        snapshot(child, arrays, f"{prefix}s{i}.")
        for i, child in enumerate(vm.segments.values())
    ]
    return meta


def restore(
    ctx: Context,
    meta: dict[str, Any],
    arrays: dict[str, npt.NDArray[Any]],
    prefix: str = "",
    recode: list[npt.NDArray[np.int64]] | None = None,
) -> VersionMonitor:
    """Rebuild a version from :meth:`snapshot`. Raises KeyError / ValueError on a state
    that does not fit (the caller logs it and starts the version fresh)."""
    seg = meta.get("segment")
    vm = VersionMonitor(ctx, str(meta["version"]), tuple(str(x) for x in seg) if seg else None)
    wp = f"{prefix}w."
    saved = {k[len(wp) :]: a for k, a in arrays.items() if k.startswith(wp)}
    vm.window = ctx.spec.restore_window(_recode_window(saved, recode))
    vm.policy = PolicyState.from_json(meta["policy"])
    vm.warn = PolicyState.from_json(meta["warn"])
    vm.accepted = int(meta["accepted"])
    vm.last_position = int(meta.get("last_position", 0))
    vm.merged = {str(k): int(v) for k, v in meta.get("merged", {}).items()}
    vm.latest = meta.get("latest")
    if "estimate" in meta:  # checkpoints before performance estimates have none
        vm.est = PolicyState.from_json(meta["estimate"])
        vm.est_latest = meta.get("estimate_latest")
    if vm.dets:
        dets = [join_arrays(d, arrays) for d in meta.get("detectors", [])]
        vm.dets = detect.attach(ctx.spec.cfg, dets if len(dets) == len(vm.dets) else None)
    if meta.get("warmup"):
        bp = f"{prefix}b."
        vm.warmup = WarmupBuilder.restore(
            {k[len(bp) :]: a for k, a in arrays.items() if k.startswith(bp)}, recode
        )
    elif "reference" in meta:
        prof = refmodes.profile_from_state(meta["reference"], arrays, f"{prefix}r.")
        vm.warmup = None
        vm.ref_spec = refmodes.spec_on(ctx.spec, prof, ctx.index, vm.version, restored=True)
    elif ctx.spec.mode == "warmup" and vm.segment is None:
        raise ValueError("warmup monitor state without its reference")
    for i, child in enumerate(meta.get("segments", [])):
        c = restore(ctx, child, arrays, f"{prefix}s{i}.", recode)
        if c.segment is not None:
            vm.segments[c.segment] = c
    vm.dirty = False
    return vm


def recode_tables(
    saved: list[list[str]], tables: list[Any], spec: Any
) -> list[npt.NDArray[np.int64]] | None:
    """Lookup tables from the codes a checkpoint saved to today's codes for the open
    categorical features, or None when every saved label got its old code back."""
    recode = refmodes.recode_luts(saved, tables, spec.open_categories)
    if all(
        np.array_equal(lut[: len(labels)], np.arange(len(labels)))
        for lut, labels in zip(recode, saved, strict=True)
    ):
        return None
    if any(not isinstance(t, OpenCodes) for t in tables):
        return None
    return recode


def _recode_window(
    arrays: dict[str, npt.NDArray[Any]], recode: list[npt.NDArray[np.int64]] | None
) -> dict[str, npt.NDArray[Any]]:
    """Saved window arrays with their category codes translated to the current dictionary."""
    if recode is None or "cat" not in arrays:
        return arrays
    cat = np.array(arrays["cat"], dtype=np.int32, copy=True)
    for j, lut in enumerate(recode):
        cat[:, j] = lut[cat[:, j]]
    return {**arrays, "cat": cat}

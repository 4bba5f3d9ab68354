"""A version's state ↔ a checkpoint entry: its window, policy states, detectors, reference-mode
state and segments as plain arrays plus JSON (never pickle)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from driftd.monitor import detect, refmodes
from driftd.monitor.version import Context, VersionMonitor
from driftd.policy import PolicyState
from driftd.reference.warmup import WarmupBuilder
from driftd.state.checkpoint import join_arrays, split_arrays


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

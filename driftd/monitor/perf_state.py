"""The performance state of a monitor (label join, labelled windows per version, error-stream
detector) and its checkpoint form: plain arrays and JSON, never pickle."""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy.typing as npt
import orjson

from driftd.config import PerformanceConfig
from driftd.errors import StateError
from driftd.performance import ErrorStreamDetector, LabelJoiner, LabelledWindow
from driftd.performance.join import MAX_VERSIONS
from driftd.policy import Policy, PolicyState
from driftd.state.checkpoint import join_arrays, split_arrays

log = logging.getLogger(__name__)

SNAPSHOT_FORMAT = 1


class MonitorRef(Protocol):
    """What the performance stage reads from a monitor's stage."""

    name: str
    model: str
    policy: Policy
    alerts: Counter[str]

    def rollback_to(self, version: str) -> str | None: ...


@dataclass(slots=True)
class VersionPerf:
    """One model version of one monitor: its labelled window and alert state."""

    window: LabelledWindow
    policy: PolicyState = field(default_factory=PolicyState)
    next_eval: int = 0  # window.total at which the next evaluation is due
    latest: dict[str, Any] | None = None  # last performance evaluation output


class MonitorPerf:
    """The join and the per-version windows of one monitor with a ``performance`` block."""

    def __init__(self, m: MonitorRef, cfg: PerformanceConfig) -> None:
        self.name = m.name
        self.model = m.model
        self.cfg = cfg
        self.ref = m
        self.policy: Policy = m.policy
        # Bumped whenever saved state is discarded, so the alert ids of the new windows
        # (keyed by labelled-event counts that restart at 0) never repeat delivered ones.
        self.epoch = 0
        self.joiner = self.new_joiner()
        # Scale-out: the join runs in the partition stages (monitor.perf_split); this
        # joiner only sums their counters, and their pending / early gauges are here.
        self.part_gauges: dict[int, tuple[int, int]] = {}
        self.folded: dict[str, int] = {}  # source key → offset of the last trigger folded
        self.versions: dict[str, VersionPerf] = {}
        self.fingerprint = perf_fingerprint(cfg)
        # One detector on the monitor's error stream in join order (across versions), so a
        # rollout that raises the error rate is a change point in it.
        self.detector = ErrorStreamDetector(cfg.detector) if cfg.detector is not None else None
        self._full_logged = False

    def new_joiner(self) -> LabelJoiner:
        cfg = self.cfg
        return LabelJoiner(
            cfg.label_horizon_s,
            max_pending=cfg.max_pending,
            max_early=cfg.max_early,
            max_resolved=max(2 * cfg.max_early, 200_000),
        )

    def has_room_for(self, version: str, j: LabelJoiner | None = None) -> bool:
        j = self.joiner if j is None else j
        if version in j.version_names or len(j.version_names) < MAX_VERSIONS:
            return True
        if not self._full_logged:
            self._full_logged = True
            log.error(
                "monitor %s: more than %d model versions; predictions of new versions are "
                "not joined (counted in driftd_predictions_unjoinable_total)",
                self.name,
                MAX_VERSIONS,
                extra={"monitor": self.name, "model_version": version},
            )
        return False

    def version(self, name: str) -> VersionPerf:
        vp = self.versions.get(name)
        if vp is None:
            vp = self.versions[name] = VersionPerf(
                LabelledWindow(self.cfg.window), next_eval=self.cfg.every
            )
        return vp


def perf_fingerprint(cfg: PerformanceConfig) -> str:
    """What saved performance state depends on (window size, join bounds, task)."""
    key = [cfg.task, cfg.window, cfg.label_horizon_s, cfg.max_pending, cfg.max_early]
    return hashlib.sha256(orjson.dumps(key)).hexdigest()[:16]



def snapshot(
    monitors_by_name: dict[str, MonitorPerf],
) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
    """(meta, arrays) of every monitor's performance state."""
    arrays: dict[str, npt.NDArray[Any]] = {}
    monitors = []
    for i, mp in enumerate(monitors_by_name.values()):
        jmeta = split_arrays(mp.joiner.snapshot(), arrays, f"p{i}.j.")
        versions = []
        for k, (name, vp) in enumerate(mp.versions.items()):
            for col, arr in vp.window.snapshot().items():
                arrays[f"p{i}.v{k}.{col}"] = arr
            versions.append(
                {
                    "version": name,
                    "policy": vp.policy.to_json(),
                    "next_eval": vp.next_eval,
                    "latest": vp.latest,
                }
            )
        monitors.append(
            {
                "monitor": mp.name,
                "fingerprint": mp.fingerprint,
                "epoch": mp.epoch,
                "joiner": jmeta,
                "folded": mp.folded,
                "versions": versions,
                "detector": split_arrays(mp.detector.snapshot(), arrays, f"p{i}.d.")
                if mp.detector is not None
                else None,
            }
        )
    return {"format": SNAPSHOT_FORMAT, "monitors": monitors}, arrays

def restore(
    monitors: dict[str, MonitorPerf], meta: dict[str, Any], arrays: dict[str, npt.NDArray[Any]]
) -> None:
    """Install saved state; a monitor whose performance config changed starts fresh."""
    if meta.get("format") != SNAPSHOT_FORMAT:
        log.warning(
            "performance checkpoint format %r unknown; starting fresh", meta.get("format")
        )
        return
    for i, saved in enumerate(meta.get("monitors", [])):
        mp = monitors.get(saved["monitor"])
        if mp is not None:
            mp.epoch = int(saved.get("epoch", 0))
        if mp is None or saved["fingerprint"] != mp.fingerprint:
            if mp is not None:
                mp.epoch += 1
            log.warning(
                "performance checkpoint: monitor %s no longer configured or its "
                "performance block changed; its saved join and windows are discarded",
                saved["monitor"],
                extra={"monitor": saved["monitor"]},
            )
            continue
        try:
            joiner, versions, detector = _restore_one(mp, i, saved, arrays)
        except (StateError, KeyError, TypeError, ValueError, IndexError) as exc:
            log.error(
                "performance checkpoint: state of monitor %s is unusable (%r); starting "
                "its join and windows fresh",
                mp.name,
                exc,
                extra={"monitor": mp.name},
            )
            mp.epoch += 1
            continue
        mp.joiner, mp.versions = joiner, versions
        mp.folded = {str(k): int(v) for k, v in saved.get("folded", {}).items()}
        if detector is not None:
            mp.detector = detector
        log.info(
            "restored performance state of %s: %d pending predictions, %d versions",
            mp.name,
            mp.joiner.pending,
            len(mp.versions),
            extra={"monitor": mp.name},
        )

def _restore_one(
    mp: MonitorPerf, i: int, saved: dict[str, Any], arrays: dict[str, npt.NDArray[Any]]
) -> tuple[LabelJoiner, dict[str, VersionPerf], ErrorStreamDetector | None]:
    joiner = LabelJoiner.restore(join_arrays(saved["joiner"], arrays))
    versions: dict[str, VersionPerf] = {}
    for k, v in enumerate(saved["versions"]):
        prefix = f"p{i}.v{k}."
        cols = {key[len(prefix) :]: a for key, a in arrays.items() if key.startswith(prefix)}
        window = LabelledWindow.restore(cols)
        if window.size != mp.cfg.window:
            raise StateError(f"window of {window.size} events, configured {mp.cfg.window}")
        versions[str(v["version"])] = VersionPerf(
            window, PolicyState.from_json(v["policy"]), int(v["next_eval"]), v.get("latest")
        )
    det = saved.get("detector")
    detector = None
    if det is not None and mp.cfg.detector == det["meta"]["name"]:
        detector = ErrorStreamDetector.restore(join_arrays(det, arrays))
    return joiner, versions, detector


"""The river detectors: ADWIN, Page-Hinkley and KSWIN behind :class:`SignalDetector`.

river is imported lazily, on the first detector built: ``import river.drift`` costs about a
second (it pulls in river's datasets), which monitors without detectors should not pay.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from driftd.detectors.base import DEFAULT_REPLAY_LIMIT, Param, SignalDetector, register

log = logging.getLogger(__name__)

_REPLAY = Param("replay_limit", "int", DEFAULT_REPLAY_LIMIT, lo=1)


@register
class Adwin(SignalDetector):
    """``river.drift.ADWIN``: adaptive window over the signal's mean (~0.2 µs per value).

    Restore replays the history: exact while the values since the last detection are at most
    ``replay_limit``. Beyond, the rebuilt ADWIN window holds only the last ``replay_limit``
    values (ADWIN's own window is usually shorter than that after a change, but grows without
    bound on a stationary signal) and its ``clock`` phase may differ, so later detection
    positions can shift by up to ``clock`` values and old history no longer weighs in.
    """

    name = "adwin"
    params = (
        Param("delta", "float", 0.002, lo=0.0, hi=1.0, lo_open=True, hi_open=True),
        Param("clock", "int", 32, lo=1),
        Param("max_buckets", "int", 5, lo=1),
        Param("min_window_length", "int", 5, lo=1),
        Param("grace_period", "int", 10, lo=0),
        _REPLAY,
    )

    def _new(self) -> Any:
        from river.drift import ADWIN

        make: Any = ADWIN  # river's ADWIN.__init__ is unannotated
        c = self.config
        return make(
            delta=c["delta"],
            clock=c["clock"],
            max_buckets=c["max_buckets"],
            min_window_length=c["min_window_length"],
            grace_period=c["grace_period"],
        )


@register
class PageHinkley(SignalDetector):
    """``river.drift.PageHinkley``: CUSUM on deviations from the running mean (~0.6 µs/value).

    Restore replays the history: exact while the values since the last detection are at most
    ``replay_limit``. Beyond, the running mean and the cumulative sums restart from the last
    ``replay_limit`` values (the sums fade with ``alpha`` but the mean does not), and the
    ``min_instances`` warm-up is satisfied again only if ``replay_limit >= min_instances``.
    """

    name = "page_hinkley"
    params = (
        Param("min_instances", "int", 30, lo=1),
        Param("delta", "float", 0.005, lo=0.0),
        Param("threshold", "float", 50.0, lo=0.0, lo_open=True),
        Param("alpha", "float", 1 - 0.0001, lo=0.0, hi=1.0, lo_open=True),
        Param("mode", "choice", "both", choices=("both", "up", "down")),
        _REPLAY,
    )

    def _new(self) -> Any:
        from river.drift import PageHinkley as RiverPageHinkley

        c = self.config
        return RiverPageHinkley(
            min_instances=c["min_instances"],
            delta=c["delta"],
            threshold=c["threshold"],
            alpha=c["alpha"],
            mode=c["mode"],
        )


@register
class Kswin(SignalDetector):
    """``river.drift.KSWIN``: KS test of the last ``stat_size`` values against a random sample
    of the older part of a ``window_size`` window (~150-700 µs per value: per-window
    statistics only).

    Replaying would cost a KS test per value, so the state is KSWIN's own, exact at any
    stream length: the window (the last ``window_size`` values since the last detection),
    the seeded ``random.Random`` state used to draw the sample, the value count and the last
    p-value. The random state is river's private ``_rng``; if a river release drops it, the
    snapshot omits it and a restored KSWIN draws from a freshly seeded generator (same
    window, different random sample: approximate), with a warning in the log.
    """

    name = "kswin"
    params = (
        Param("alpha", "float", 0.005, lo=0.0, hi=1.0, lo_open=True, hi_open=True),
        Param("window_size", "int", 100, lo=2),
        Param("stat_size", "int", 30, lo=1),
        Param("seed", "int", 42, lo=0),
    )

    @classmethod
    def _check(cls, config: dict[str, Any]) -> None:
        # river samples stat_size values from the window_size - stat_size older ones.
        if 2 * config["stat_size"] > config["window_size"]:
            raise ValueError(
                f"kswin.stat_size ({config['stat_size']}) must be at most half of "
                f"kswin.window_size ({config['window_size']})"
            )

    @property
    def history_limit(self) -> int:
        return int(self.config["window_size"])

    def _new(self, window: list[float] | None = None) -> Any:
        from river.drift import KSWIN

        c = self.config
        return KSWIN(
            alpha=c["alpha"],
            window_size=c["window_size"],
            stat_size=c["stat_size"],
            seed=c["seed"],
            window=window,
        )

    def _export(self) -> dict[str, Any]:
        if self.since_reset == 0:
            # Fresh, or flagged on the last value: river restarts on the next one (reseeding
            # its generator), so the state to save is the fresh one.
            return {"p_value": 0.0}
        rng = getattr(self._det, "_rng", None)
        if not isinstance(rng, random.Random):
            log.warning("river KSWIN has no random.Random state; its restore will be approximate")
            return {"p_value": float(self._det.p_value)}
        version, words, gauss = rng.getstate()
        return {
            "p_value": float(self._det.p_value),
            "rng_version": int(version),
            "rng_state": np.array(words, dtype=np.int64),
            "rng_gauss": gauss,
        }

    def _import(self, history: npt.NDArray[np.float64], state: Mapping[str, Any]) -> None:
        if self.since_reset == 0:
            return  # the fresh detector made by __init__ is the exact state
        det = self._new(window=history.tolist())
        det.n = int(state["since_reset"])
        det.p_value = float(state["p_value"])
        rng = getattr(det, "_rng", None)
        if "rng_state" in state and isinstance(rng, random.Random):
            words = tuple(int(x) for x in np.asarray(state["rng_state"]).tolist())
            rng.setstate((int(state["rng_version"]), words, state["rng_gauss"]))
        elif self.since_reset >= self.config["window_size"]:
            log.warning("restoring KSWIN without its random state: its sample draws will differ")
        self._det = det

"""The detector adapter, its parameters, its state, and the registry of detectors by name."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np
import numpy.typing as npt

from driftd.types import DETECTOR_NAMES

DEFAULT_REPLAY_LIMIT = 20_000


@dataclass(frozen=True, slots=True)
class Param:
    """One config parameter of a detector: its type, default and allowed range.

    ``kind`` is ``"int"`` (a Python/NumPy integer, never a bool), ``"float"`` (any finite real
    number, converted to float) or ``"choice"`` (one of ``choices``). ``lo``/``hi`` bound the
    value, inclusively unless ``lo_open``/``hi_open``.
    """

    name: str
    kind: str
    default: Any
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple[str, ...] = ()

    def check(self, detector: str, value: Any) -> Any:
        where = f"{detector}.{self.name}"
        if self.kind == "choice":
            if value not in self.choices:
                raise ValueError(f"{where} must be one of {list(self.choices)}, got {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise ValueError(f"{where} must be a number, got {value!r}")
        if self.kind == "int":
            if not isinstance(value, int | np.integer):
                raise ValueError(f"{where} must be an integer, got {value!r}")
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"{where} must be finite, got {value!r}")
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            raise ValueError(
                f"{where} must be {'>' if self.lo_open else '≥'} {self.lo}, got {value!r}"
            )
        if self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi):
            raise ValueError(
                f"{where} must be {'<' if self.hi_open else '≤'} {self.hi}, got {value!r}"
            )
        return value


class SignalDetector:
    """A river drift detector fed with an aggregate signal, with exact counters and state.

    Subclasses set ``name`` and ``params``, build the river object in :meth:`_new`, and may
    add cross-parameter checks in :meth:`_check`. They are constructed from validated keyword
    parameters (defaults filled in); unknown or invalid parameters raise ``ValueError``.

    State (no pickle) is the adapter's counters plus the *history*: the most recent inputs
    since the detector last reset, at most ``history_limit`` of them. All river detectors used
    here reset themselves on the update after a detection and are deterministic functions of
    the inputs since that reset (KSWIN given its seed), so :meth:`restore` rebuilds the river
    object by replaying the history into a fresh one: exact while the inputs since the last
    reset fit in the history, approximate beyond (see each subclass). Subclasses with a
    cheaper exact state (KSWIN) override :meth:`_export` / :meth:`_import`.
    """

    name: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()

    def __init__(self, **params: Any) -> None:
        self.config = self._validate(params)
        self.n_seen = 0  # finite values fed
        self.n_skipped = 0  # non-finite values ignored
        self.drift_count = 0
        self.last_drift_position: int | None = None
        self.drift_detected = False  # did the last value fed raise a detection
        self.since_reset = 0  # values fed since the river detector last (re)started
        # The history ring grows by doubling up to history_limit: idle detectors stay small.
        self._hist = np.empty(min(self.history_limit, 64), dtype=np.float64)
        self._head = 0  # next slot to write
        self._det: Any = self._new()

    # ------------------------------------------------------------------ subclass hooks

    @property
    def history_limit(self) -> int:
        """How many of the latest inputs since the last reset are kept for restore."""
        return int(self.config.get("replay_limit", DEFAULT_REPLAY_LIMIT))

    def _new(self) -> Any:
        raise NotImplementedError

    @classmethod
    def _check(cls, config: dict[str, Any]) -> None:
        """Cross-parameter validation; raise ValueError."""

    # ------------------------------------------------------------------ config

    @classmethod
    def _validate(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        known = {p.name: p for p in cls.params}
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {', '.join(map(repr, unknown))} for detector "
                f"{cls.name!r}; known parameters: {', '.join(sorted(known))}"
            )
        config = {n: p.check(cls.name, params.get(n, p.default)) for n, p in known.items()}
        cls._check(config)
        return config

    # ------------------------------------------------------------------ updates

    def update_many(
        self, values: npt.NDArray[np.float64], positions: npt.NDArray[np.int64]
    ) -> list[int]:
        """Feed values in order; return the positions of those on which river flagged drift.

        ``positions[i]`` labels ``values[i]`` (e.g. the source position of a sampled score or
        the end position of an evaluated window). Non-finite values are skipped and counted in
        ``n_skipped``: they would poison running means.
        """
        values = np.asarray(values, dtype=np.float64)
        positions = np.asarray(positions, dtype=np.int64)
        if values.shape != positions.shape or values.ndim != 1:
            raise ValueError(
                f"values and positions must be 1-d arrays of one length, got shapes "
                f"{values.shape} and {positions.shape}"
            )
        finite = np.isfinite(values)
        self.n_skipped += int(values.size - np.count_nonzero(finite))
        if not finite.all():
            values, positions = values[finite], positions[finite]
        det = self._det
        hits: list[int] = []
        last_hit = -1
        for i, x in enumerate(values.tolist()):
            det.update(x)
            if det.drift_detected:
                hits.append(int(positions[i]))
                last_hit = i
        n = int(values.size)
        if n == 0:
            return hits
        self.n_seen += n
        self.drift_detected = last_hit == n - 1
        if hits:
            self.drift_count += len(hits)
            self.last_drift_position = hits[-1]
            # River restarts the detector on the update after a detection: the history
            # that matters starts after the last hit.
            self._head = 0
            self.since_reset = 0
            self._push(values[last_hit + 1 :])
        else:
            self._push(values)
        return hits

    def update(self, value: float, position: int) -> bool:
        """One value; True if drift was flagged on it."""
        return bool(
            self.update_many(np.array([value], dtype=np.float64), np.array([position], np.int64))
        )

    def _push(self, values: npt.NDArray[np.float64]) -> None:
        n = int(values.size)
        size = self._hist.shape[0]
        if size < self.history_limit and self.since_reset + n > size:
            # Not wrapped yet (it only wraps at full size): keep the order, grow.
            kept = self.history()
            grown = np.empty(min(self.history_limit, max(self.since_reset + n, 2 * size)))
            grown[: kept.size] = kept
            self._hist, self._head, size = grown, kept.size % grown.size, grown.size
        self.since_reset += n
        if n >= size:
            self._hist[:] = values[-size:]
            self._head = 0
        elif n:
            first = min(n, size - self._head)
            self._hist[self._head : self._head + first] = values[:first]
            self._hist[: n - first] = values[first:]
            self._head = (self._head + n) % size

    def history(self) -> npt.NDArray[np.float64]:
        """The kept inputs since the last reset, oldest first (a copy)."""
        cap = self._hist.shape[0]
        kept = min(self.since_reset, cap)
        if kept < cap:
            return self._hist[self._head - kept : self._head].copy()
        return np.concatenate([self._hist[self._head :], self._hist[: self._head]])

    @property
    def history_exact(self) -> bool:
        """Whether :meth:`restore` would rebuild the river detector exactly right now."""
        return self.since_reset <= self.history_limit

    # ------------------------------------------------------------------ state

    def snapshot(self) -> dict[str, Any]:
        """JSON-able values plus NumPy arrays (``history`` and detector extras); no pickle."""
        state: dict[str, Any] = {
            "type": self.name,
            "params": dict(self.config),
            "n_seen": self.n_seen,
            "n_skipped": self.n_skipped,
            "drift_count": self.drift_count,
            "last_drift_position": self.last_drift_position,
            "drift_detected": self.drift_detected,
            "since_reset": self.since_reset,
            "history": self.history(),
        }
        state.update(self._export())
        return state

    @classmethod
    def restore(cls, state: Mapping[str, Any]) -> SignalDetector:
        """Rebuild from :meth:`snapshot` output (a subclass, picked by ``state["type"]``)."""
        impl = get_detector(str(state["type"])) if cls is SignalDetector else cls
        if impl.name != state["type"]:
            raise ValueError(f"cannot restore a {state['type']!r} state as {impl.name!r}")
        d = impl(**state["params"])
        hist = np.asarray(state["history"], dtype=np.float64)
        d.since_reset = 0
        d._push(hist)
        d.since_reset = int(state["since_reset"])
        d._import(hist, state)
        d.n_seen = int(state["n_seen"])
        d.n_skipped = int(state["n_skipped"])
        d.drift_count = int(state["drift_count"])
        last = state["last_drift_position"]
        d.last_drift_position = None if last is None else int(last)
        d.drift_detected = bool(state["drift_detected"])
        return d

    def _export(self) -> dict[str, Any]:
        return {}

    def _import(self, history: npt.NDArray[np.float64], state: Mapping[str, Any]) -> None:
        """Default: replay the history into the fresh river detector made by ``__init__``.

        A detection during replay can only happen when the history was truncated (the
        original did not detect there); river then restarts on the next value, as it would.
        """
        det = self._det
        for x in history.tolist():
            det.update(x)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({args})"


# ---------------------------------------------------------------------- registry

_REGISTRY: dict[str, type[SignalDetector]] = {}
D = TypeVar("D", bound=type[SignalDetector])


def register(cls: D) -> D:
    """Class decorator: make a detector available under ``cls.name``."""
    name = cls.name
    if not name or name != name.lower():
        raise ValueError(f"detector names are lower case and non-empty: {name!r}")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"detector name {name!r} registered twice")
    if name not in DETECTOR_NAMES:
        raise ValueError(f"add {name!r} to driftd.types.DetectorName (what config accepts)")
    _REGISTRY[name] = cls
    return cls


def get_detector(name: str) -> type[SignalDetector]:
    """The detector class registered under ``name``; ``KeyError`` names the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"unknown detector {name!r}; known detectors: {', '.join(sorted(_REGISTRY))}"
        ) from None


def detector_names() -> list[str]:
    return sorted(_REGISTRY)


def build_detector(config: Mapping[str, Any]) -> SignalDetector:
    """A detector from its config mapping, e.g. ``{"type": "adwin", "delta": 0.002}``.

    Raises ``KeyError`` for an unknown or missing ``type`` (naming the known detectors) and
    ``ValueError`` for invalid parameters.
    """
    params = dict(config)
    kind = params.pop("type", None)
    if not isinstance(kind, str):
        raise KeyError(
            f"detector config needs a 'type'; known detectors: {', '.join(sorted(_REGISTRY))}"
        )
    return get_detector(kind)(**params)

"""The Python API's one door into the daemon's code: profile building, spec resolution (tests,
thresholds, calibration), category coding and window evaluation are the daemon's own
functions, reached from here only, so that a rename inside the engine is fixed in one file.

Nothing here computes a statistic; it only adapts tables to what those functions read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from driftd.config import FeatureConfig, MonitorConfig, SchemaConfig
from driftd.errors import ConfigError
from driftd.ingest.decode import MISSING_CODE, Reject, RowMapper, to_float
from driftd.monitor.evaluate import evaluate
from driftd.monitor.spec import FeatureSpec, MonitorSpec, build_spec
from driftd.reference.profile import Profile as ProfileData
from driftd.reference.profile import _check_kind, build_profile

__all__ = [
    "MISSING_CODE",
    "FeatureSpec",
    "MonitorSpec",
    "ProfileData",
    "Reject",
    "TableWindow",
    "build",
    "category_coder",
    "check_profile",
    "evaluate_window",
    "layout_for",
    "spec_for",
    "to_float",
]


def build(
    monitor: MonitorConfig, schema: SchemaConfig, lines: Iterable[bytes], seed: int = 0
) -> ProfileData:
    """``driftd profile build``'s profile of JSON event lines."""
    return build_profile(monitor, schema, lines, seed=seed)


def check_profile(monitor: MonitorConfig, profile: ProfileData) -> None:
    """A profile covers the monitor's features, with their kinds (the daemon's kind check)."""
    for name, fc in monitor.features.items():
        ref = profile.features.get(name)
        if ref is None:
            raise ConfigError("features", f"the reference has no feature {name!r}")
        _check_kind(ref, fc, "features", name)


def spec_for(monitor: MonitorConfig, profile: ProfileData, index: int = 0) -> MonitorSpec:
    """Tests, thresholds (calibrated into ``profile.calibration`` when the monitor asks for
    it and the profile has none that fits) and column layout, as the daemon resolves them."""
    return build_spec(monitor, profile, index)


def layout_for(monitor: MonitorConfig, profile: ProfileData) -> MonitorSpec:
    """Tests, configured or default thresholds and column layout, without calibrating (for
    reading a window, not judging it)."""
    return build_spec(monitor, profile, 0, allow_calibration=False)


def category_coder(
    name: str, fc: FeatureConfig, categories: tuple[str, ...]
) -> Callable[[Any], int]:
    """``value -> code`` of one categorical column, by the daemon's :class:`RowMapper`
    (``-1`` missing, ``len(categories)`` unseen); raises :class:`Reject` for a value the
    daemon would reject the event for. Memoised per distinct value."""
    mapper = RowMapper([], [(name, fc.model_copy(update={"path": None}), categories)], None)
    memo: dict[tuple[type, Any], int] = {}

    def code(value: Any) -> int:
        try:
            key = (type(value), value)
            hit = memo.get(key)
        except TypeError:  # unhashable (dict, list): the mapper rejects it
            key, hit = None, None
        if hit is not None:
            return hit
        out: list[int] = []
        mapper.map({name: value}, None, [], out)
        if key is not None:
            memo[key] = out[0]
        return out[0]

    return code


class TableWindow:
    """A whole table as one full window: the read interface of
    :class:`driftd.windows.time.WindowView`, rows in table order.

    Columns are kept one array each (a caller's float64 column is used as it is, not
    copied): what evaluation reads from a window — the finite values, the missing count, the
    category counts — does not depend on how the daemon's count window lays its columns out
    (every test sorts or counts the values it is given)."""

    __slots__ = ("num", "cat", "filled")

    def __init__(
        self, num: list[npt.NDArray[np.float64]], cat: list[npt.NDArray[np.int32]], filled: int
    ) -> None:
        self.num = num
        self.cat = cat
        self.filled = filled

    def num_column(self, j: int) -> npt.NDArray[np.float64]:
        return self.num[j]

    def cat_column(self, j: int) -> npt.NDArray[np.int32]:
        return self.cat[j]

    def span(self) -> dict[str, Any]:
        return {"start_position": 1, "end_position": self.filled, "events": self.filled}


@dataclass(frozen=True, slots=True)
class Evaluation:
    spec: MonitorSpec
    window: TableWindow
    result: dict[str, Any]  # evaluate()'s output: features, prediction, quality, share


def evaluate_window(spec: MonitorSpec, window: TableWindow) -> Evaluation:
    return Evaluation(spec, window, evaluate(spec, window))

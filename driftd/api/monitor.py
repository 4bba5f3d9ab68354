"""Monitor settings for the Python API: from a daemon config, or made up from the tables.

``compare`` and ``Profile.build`` either take a monitor from a daemon config (``config=``,
``monitor=``), with its schema, features, tests, thresholds, calibration, quality limits and
policy, or describe one from their arguments and the reference: every feature column (see
:func:`driftd.io.column_path`), numeric when its values are numbers, categorical when they are
strings or booleans; the tests' default thresholds (no calibration: a notebook answer comes
back at once; pass a config to get the daemon's calibrated thresholds); ``policy.min_events``
1, so any table is evaluated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from driftd.config import (
    CalibrationConfig,
    Config,
    FeatureConfig,
    MonitorConfig,
    PolicyConfig,
    ProfileReference,
    SchemaConfig,
    TumblingWindow,
    load_config,
)
from driftd.errors import ConfigError
from driftd.io import Columns, column_path

Kind = Literal["numeric", "categorical"]
FeaturesArg = Sequence[str] | Mapping[str, str | Mapping[str, Any] | FeatureConfig] | None
PerFeature = Mapping[str, Any]
IN_MEMORY = Path("<in-memory>")


@dataclass(frozen=True, slots=True)
class Settings:
    """One monitor's settings and where they came from."""

    monitor: MonitorConfig
    schema: SchemaConfig
    index: int  # position in the config's monitors (calibration seeds, error keys)
    from_config: bool


def from_config(config: str | Path | Config, monitor: str | None) -> Settings:
    cfg = config if isinstance(config, Config) else load_config(config)
    if monitor is None:
        if len(cfg.monitors) != 1:
            names = ", ".join(m.name for m in cfg.monitors)
            raise ConfigError("monitor", f"the config has several monitors ({names}); name one")
        monitor = cfg.monitors[0].name
    mon = cfg.monitor(monitor)
    index = next(i for i, m in enumerate(cfg.monitors) if m.name == mon.name)
    return Settings(mon, cfg.schema_, index, True)


def infer_kind(values: Any) -> Kind | None:
    """numeric for numbers, categorical for strings and booleans; None when all missing."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind in "iuf":
            return "numeric"
        if values.dtype.kind == "b":
            return "categorical"
        values = values.tolist()
    for v in values:
        if v is None or (isinstance(v, float) and v != v):
            continue
        if isinstance(v, bool) or isinstance(v, str):
            return "categorical"
        if isinstance(v, int | float):
            return "numeric"
        return "categorical"
    return None


def feature_columns(cols: Columns, schema: SchemaConfig) -> dict[str, str]:
    """Feature name → column, for the columns that hold one feature each."""
    base = tuple(schema.features.split("."))
    out: dict[str, str] = {}
    for c in cols:
        p = column_path(c, schema)
        if len(p) > len(base) and p[: len(base)] == base:
            out[".".join(p[len(base) :])] = c
    return out


def _feature(spec: str | Mapping[str, Any] | FeatureConfig, kind: Kind | None) -> FeatureConfig:
    if isinstance(spec, FeatureConfig):
        return spec
    if isinstance(spec, str):
        return FeatureConfig(kind=spec)  # type: ignore[arg-type]  # pydantic checks it
    d = dict(spec)
    if "kind" not in d and kind is not None:
        d["kind"] = kind
    return FeatureConfig(**d)


def _per(value: Any, name: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(name)
    return value


def describe(
    *,
    name: str,
    kinds: Mapping[str, Kind | None],
    prediction: Kind | None,
    features: FeaturesArg,
    tests: str | PerFeature | None,
    thresholds: float | PerFeature | None,
    window_events: int = 10_000,
    schema: SchemaConfig | None = None,
) -> Settings:
    """A monitor made up from arguments; ``kinds`` are the reference's features and kinds.
    Without calibration the window size is only nominal (``window_events``): a comparison's
    window is the whole current table, whatever its length."""
    chosen: dict[str, FeatureConfig] = {}
    if features is None:
        items: list[tuple[str, Any]] = [(n, None) for n in kinds]
    elif isinstance(features, Mapping):
        items = list(features.items())
    else:
        items = [(n, None) for n in features]
    for fname, given in items:
        kind = kinds.get(fname)
        if given is None:
            if fname not in kinds:
                raise ConfigError(f"features.{fname}", "no such column in the reference")
            if kind is None:
                raise ConfigError(
                    f"features.{fname}", "every reference value is missing: give its kind"
                )
            fc = FeatureConfig(kind=kind)
        else:
            fc = _feature(given, kind)
        upd: dict[str, Any] = {}
        t = _per(tests, fname)
        if t is not None:
            upd["test"] = t
        thr = _per(thresholds, fname)
        if thr is not None:
            upd["threshold"] = float(thr)
        chosen[fname] = fc.model_copy(update=upd) if upd else fc
    if not chosen:
        raise ConfigError("features", "no feature to compare")
    pred: FeatureConfig | None = None
    if prediction is not None:
        upd = {}
        if isinstance(tests, Mapping) and tests.get("prediction") is not None:
            upd["test"] = tests["prediction"]
        if isinstance(thresholds, Mapping) and thresholds.get("prediction") is not None:
            upd["threshold"] = float(thresholds["prediction"])
        pred = FeatureConfig(kind=prediction, **upd)
    try:
        mon = MonitorConfig(
            name=name,
            model="*",
            reference=ProfileReference(type="profile", path=IN_MEMORY),
            window=TumblingWindow(type="tumbling", events=max(10, window_events)),
            features=chosen,
            prediction=pred,
            policy=PolicyConfig(min_events=1),
            calibration=CalibrationConfig(false_alerts_per_million_events=None),
        )
    except ValueError as exc:  # pydantic: a bad kind or test name
        raise ConfigError("features", str(exc).splitlines()[-1].strip()) from None
    return Settings(mon, schema or SchemaConfig(), 0, False)


def override(
    s: Settings,
    features: FeaturesArg,
    tests: str | PerFeature | None,
    thresholds: float | PerFeature | None,
) -> Settings:
    """A config's monitor with ``features`` (a subset of its names), ``tests`` and
    ``thresholds`` (per feature, or one for all) taking precedence."""
    mon = s.monitor
    feats = dict(mon.features)
    if features is not None:
        names = list(features)
        missing = [n for n in names if n not in feats]
        if missing:
            raise ConfigError("features", f"not in monitor {mon.name}: {', '.join(missing)}")
        feats = {n: feats[n] for n in names}
    for fname, fc in list(feats.items()):
        upd: dict[str, Any] = {}
        t = _per(tests, fname)
        if t is not None:
            upd["test"] = t
        thr = _per(thresholds, fname)
        if thr is not None:
            upd["threshold"] = float(thr)
        if upd:
            feats[fname] = fc.model_copy(update=upd)
    pred = mon.prediction
    if pred is not None:
        upd = {}
        if isinstance(tests, Mapping) and tests.get("prediction") is not None:
            upd["test"] = tests["prediction"]
        if isinstance(thresholds, Mapping) and thresholds.get("prediction") is not None:
            upd["threshold"] = float(thresholds["prediction"])
        if upd:
            pred = pred.model_copy(update=upd)
    if feats == mon.features and pred == mon.prediction:
        return s
    return Settings(
        mon.model_copy(update={"features": feats, "prediction": pred}), s.schema, s.index, True
    )

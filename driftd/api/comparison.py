"""``driftd.compare``: one current table against a reference, evaluated by the daemon's code.

The current table is one full window: its rows, in order, become the columns the daemon's
count window would hold for the same events (numbers as float64 with NaN for missing,
categories coded against the reference by the daemon's row mapper), and the daemon's
``evaluate`` runs the tests, thresholds and quality checks on it. So ``compare`` gives, bit for
bit, the statistics ``driftd replay`` writes for a window holding exactly these events.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from driftd.api import _engine
from driftd.api.inputs import EventLines, event_columns, is_files, lines_of, table_columns
from driftd.api.monitor import FeaturesArg, Kind, PerFeature, Settings, describe, override
from driftd.api.profile import Profile, _prediction_kind
from driftd.api.result import DriftReport, feature_result
from driftd.config import Config, FeatureConfig, SchemaConfig
from driftd.errors import ConfigError
from driftd.io import Columns, column_path
from driftd.reference.features import CategoricalReference


def compare(
    reference: Any,
    current: Any,
    *,
    features: FeaturesArg = None,
    tests: str | PerFeature | None = None,
    thresholds: float | PerFeature | None = None,
    prediction: bool | Kind | None = None,
    config: str | Path | Config | None = None,
    monitor: str | None = None,
    format: str | None = None,
) -> DriftReport:
    """Test ``current`` against ``reference``, feature by feature, as the daemon would.

    ``reference``: a :class:`~driftd.Profile`, or anything :meth:`Profile.build` reads (a
    pandas/polars DataFrame, a pyarrow Table, a dict of arrays, event file path(s)).
    ``current``: a table or event file path(s). Flat columns map onto features as in
    :mod:`driftd.io` (``income`` or ``features.income``; ``prediction`` is the prediction).

    Without ``config``: ``features`` (names, or name → kind / settings; default: every
    feature of the reference), ``tests`` and ``thresholds`` (one for all, or per feature;
    ``"prediction"`` names the prediction) — tests chosen automatically and the tests'
    default thresholds otherwise. ``prediction``: ``False`` to leave it out, a kind to force
    one; by default it is tested when the reference has one.

    With ``config`` (a daemon config file or :class:`driftd.config.Config`) and ``monitor``:
    that monitor's schema, features, tests, thresholds (calibrated ones included, for its
    window size), quality limits and multiple-testing policy; ``features`` then picks a
    subset, and ``tests`` / ``thresholds`` override.
    """
    key = None
    if isinstance(reference, Profile) and config is None:
        # A notebook compares one profile with table after table: resolve its settings and
        # spec once per set of arguments (they depend on nothing else).
        key = _cache_key(features, tests, thresholds, prediction)
        hit = reference._specs.get(key) if key is not None else None
        if hit is not None:
            return _compare(hit[0], reference, hit[1], current, format)
    settings, ref = _reference(
        reference, config, monitor, features, tests, thresholds, prediction, format
    )
    spec = _engine.spec_for(settings.monitor, ref.data, settings.index)
    if key is not None:
        if len(ref._specs) >= 8:
            ref._specs.pop(next(iter(ref._specs)))
        ref._specs[key] = (settings, spec)
    return _compare(settings, ref, spec, current, format)


def _cache_key(*args: Any) -> bytes | None:
    try:
        return orjson.dumps(args, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except TypeError:  # e.g. FeatureConfig objects: no cache
        return None


def _reference(
    reference: Any,
    config: str | Path | Config | None,
    monitor: str | None,
    features: FeaturesArg,
    tests: str | PerFeature | None,
    thresholds: float | PerFeature | None,
    prediction: bool | Kind | None,
    fmt: str | None,
) -> tuple[Settings, Profile]:
    if isinstance(reference, Profile):
        if config is not None:
            from driftd.api.monitor import from_config

            settings = override(from_config(config, monitor), features, tests, thresholds)
        else:
            settings = describe(
                name=reference.monitor,
                kinds=reference.kinds,
                prediction=_prediction_kind(prediction, None)
                if prediction is not None and prediction is not True
                else reference.prediction_kind,
                features=features,
                tests=tests,
                thresholds=thresholds,
            )
        _engine.check_profile(settings.monitor, reference.data)
        if settings.monitor.prediction is not None and reference.data.prediction is None:
            raise ConfigError("prediction", "the reference profile has no prediction")
        return settings, reference
    settings = Profile._settings(
        reference,
        config,
        monitor,
        features,
        tests,
        thresholds,
        prediction,
        fmt,
        "reference",
    )
    return settings, Profile._build(reference, settings, fmt, 0)


def _compare(
    settings: Settings, ref: Profile, spec: _engine.MonitorSpec, current: Any, fmt: str | None
) -> DriftReport:
    window, rejected = current_window(spec, settings.schema, current, fmt)
    ev = _engine.evaluate_window(spec, window)
    r = ev.result
    kinds = {f.name: f.kind for f in spec.features}
    return DriftReport(
        features={n: feature_result(n, kinds[n], d) for n, d in r["features"].items()},
        prediction=feature_result("prediction", spec.prediction.kind, r["prediction"])
        if spec.prediction is not None and r["prediction"] is not None
        else None,
        drift_share=float(r["drift_share"]),
        drifted=bool(r["drifted"]),
        quality_breaches=list(r["quality_breaches"]),
        reference_id=ref.id,
        reference_events=ref.events,
        current_events=window.filled,
        rejected=rejected,
        monitor=settings.monitor.name,
        multivariate=r.get("multivariate"),
        _evaluation=ev,
    )


def _event_path(schema: SchemaConfig, name: str, fc: FeatureConfig | None) -> tuple[str, ...]:
    if fc is None:  # the prediction
        return tuple(schema.prediction.split("."))
    return (*schema.features.split("."), *(fc.path or name).split("."))


def current_window(
    spec: _engine.MonitorSpec, schema: SchemaConfig, current: Any, fmt: str | None = None
) -> tuple[_engine.TableWindow, int]:
    """The current data as one window in the spec's column layout, and the number of rows
    left out because the daemon would reject their event."""
    cfg = spec.cfg
    feats = [*spec.features, *([spec.prediction] if spec.prediction is not None else [])]
    paths = [
        _event_path(schema, f.name, None if f is spec.prediction else cfg.features[f.name])
        for f in feats
    ]
    if is_files(current) or isinstance(current, EventLines):
        cols, rejected = event_columns(lines_of(current, schema, fmt), schema, paths)
        by_path = {tuple(c.split(".")): c for c in cols}
    else:
        cols, rejected = table_columns(current), 0
        by_path = {column_path(c, schema): c for c in cols}
    n = cols.rows
    num: list[npt.NDArray[np.float64]] = [np.empty(0)] * spec.n_num
    cat: list[npt.NDArray[np.int32]] = [np.empty(0, dtype=np.int32)] * spec.n_cat
    bad = np.zeros(n, dtype=bool)
    for f, path in zip(feats, paths, strict=True):
        values = _column(cols, by_path, path, f.name)
        if f.kind == "numeric":
            num[f.column] = _numeric(values, f.name, bad)
        else:
            ref = f.ref
            assert isinstance(ref, CategoricalReference)
            fc = cfg.features[f.name] if f is not spec.prediction else cfg.prediction
            assert fc is not None
            cat[f.column] = _codes(values, f.name, fc, ref.categories, bad)
    if bad.any():
        keep = ~bad
        num = [c[keep] for c in num]
        cat = [c[keep] for c in cat]
        rejected += int(bad.sum())
        n -= int(bad.sum())
    return _engine.TableWindow(num, cat, n), rejected


def _column(
    cols: Columns, by_path: dict[tuple[str, ...], str], path: tuple[str, ...], name: str
) -> Any:
    col = by_path.get(path)
    if col is not None:
        values = cols[col]
        if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
            return values
        return cols.values_of(col)
    # a struct column holding the value further down (a Parquet `features` column)
    for k in range(len(path) - 1, 0, -1):
        outer = by_path.get(path[:k])
        if outer is not None:
            rest = path[k:]
            return [_dig(v, rest) for v in cols.values_of(outer)]
    if name == "prediction":
        raise ConfigError(
            "prediction",
            f"the current data has no column for the prediction ({'.'.join(path)});"
            " pass prediction=False to leave it out",
        )
    raise ConfigError(
        f"features.{name}", f"the current data has no column for {name!r} ({'.'.join(path)})"
    )


def _dig(v: Any, rest: tuple[str, ...]) -> Any:
    for part in rest:
        if not isinstance(v, dict):
            return None
        v = v.get(part)
    return v


def _numeric(values: Any, name: str, bad: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    """The decoder's ``to_float`` over a column: numbers and booleans as floats, missing and
    non-finite as NaN, anything else rejects its row."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
        # Non-finite values stay as they are: evaluation reads only the finite ones and
        # counts the others as missing, exactly as it counts the decoder's NaN.
        if values.dtype == np.float64:
            return values
        return values.astype(np.float64)
    vals = values.tolist() if isinstance(values, np.ndarray) else values
    out = np.empty(len(vals), dtype=np.float64)
    to_float, reject = _engine.to_float, _engine.Reject
    for i, v in enumerate(vals):
        try:
            out[i] = to_float(v, name)
        except reject:
            out[i] = np.nan
            bad[i] = True
    return out


def _codes(
    values: Any,
    name: str,
    fc: FeatureConfig,
    categories: tuple[str, ...],
    bad: npt.NDArray[np.bool_],
) -> npt.NDArray[np.int32]:
    code = _engine.category_coder(name, fc, categories)
    vals = values.tolist() if isinstance(values, np.ndarray) else values
    out = np.empty(len(vals), dtype=np.int32)
    reject = _engine.Reject
    for i, v in enumerate(vals):
        try:
            out[i] = code(v)
        except reject:
            out[i] = _engine.MISSING_CODE
            bad[i] = True
    return out

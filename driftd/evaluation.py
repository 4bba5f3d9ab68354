"""Window content → per-feature test results and the monitor-level breach, for one evaluation.

This is the glue between windows (raw values in ring buffers), the reference profile and the
statistical tests in :mod:`driftd.stats`. It runs once per window step, never per event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from driftd.config import FeatureConfig, MonitorConfig
from driftd.decode import RowMapper
from driftd.errors import ConfigError
from driftd.stats import DriftTest, auto_select, get_test
from driftd.windows.count import CountWindow
from driftd.windows.profile import FeatureRef, Profile
from driftd.windows.reference import CategoricalReference, NumericReference


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    name: str
    kind: str  # "numeric" | "categorical"
    column: int  # column in the window's num or cat block
    ref: FeatureRef
    test: DriftTest
    threshold: float


@dataclass(frozen=True, slots=True)
class MonitorSpec:
    cfg: MonitorConfig
    profile: Profile
    features: tuple[FeatureSpec, ...]
    prediction: FeatureSpec | None
    n_num: int
    n_cat: int

    def mapper(self) -> RowMapper:
        num = [(f.name, self.cfg.features[f.name]) for f in self.features if f.kind == "numeric"]
        cat = [
            (f.name, self.cfg.features[f.name], _cats(f.ref))
            for f in self.features
            if f.kind == "categorical"
        ]
        m = RowMapper(num, cat, self.prediction.kind if self.prediction else None)
        if self.prediction is not None and self.prediction.kind == "categorical":
            m.set_prediction_categories(_cats(self.prediction.ref))
        return m

    def new_window(self) -> CountWindow:
        w = self.cfg.window
        step = w.step if w.type == "sliding" else w.events
        return CountWindow(w.events, step, self.n_num, self.n_cat)


def _cats(ref: FeatureRef) -> tuple[str, ...]:
    assert isinstance(ref, CategoricalReference)
    return ref.categories


def _feature_spec(
    name: str, fc: FeatureConfig, ref: FeatureRef, column: int, key: str
) -> FeatureSpec:
    test_name = fc.test or auto_select(fc.kind, ref)
    try:
        test = get_test(test_name)
    except KeyError as exc:
        raise ConfigError(f"{key}.test", str(exc.args[0]) if exc.args else str(exc)) from None
    if fc.kind not in test.kinds:
        raise ConfigError(f"{key}.test", f"test {test_name!r} does not apply to {fc.kind} features")
    thr = fc.threshold if fc.threshold is not None else test.default_threshold
    return FeatureSpec(name, fc.kind, column, ref, test, float(thr))


def build_spec(cfg: MonitorConfig, profile: Profile, index: int) -> MonitorSpec:
    """Resolve tests, thresholds and column layout. Numeric features come first in their block,
    then the prediction when numeric; likewise for categoricals."""
    feats: list[FeatureSpec] = []
    n_num = n_cat = 0
    for name, fc in cfg.features.items():
        key = f"monitors.{index}.features.{name}"
        col = n_num if fc.kind == "numeric" else n_cat
        feats.append(_feature_spec(name, fc, profile.features[name], col, key))
        if fc.kind == "numeric":
            n_num += 1
        else:
            n_cat += 1
    pred: FeatureSpec | None = None
    if cfg.prediction is not None and profile.prediction is not None:
        key = f"monitors.{index}.prediction"
        col = n_num if cfg.prediction.kind == "numeric" else n_cat
        pred = _feature_spec("prediction", cfg.prediction, profile.prediction, col, key)
        if cfg.prediction.kind == "numeric":
            n_num += 1
        else:
            n_cat += 1
    return MonitorSpec(cfg, profile, tuple(feats), pred, n_num, n_cat)


def _evaluate_feature(spec: FeatureSpec, window: CountWindow) -> dict[str, Any]:
    n = window.filled
    if spec.kind == "numeric":
        col = window.num_column(spec.column)
        finite = col[np.isfinite(col)]
        ref = spec.ref
        assert isinstance(ref, NumericReference)
        res = spec.test.numeric(ref, finite)
        missing = n - finite.size
        quality: dict[str, float] = {"missing_rate": float(missing) / n if n else 0.0}
        if finite.size:
            out = np.count_nonzero((finite < ref.min) | (finite > ref.max))
            quality["out_of_range_rate"] = float(out) / finite.size
        else:
            quality["out_of_range_rate"] = 0.0
    else:
        codes = window.cat_column(spec.column)
        cref = spec.ref
        assert isinstance(cref, CategoricalReference)
        k = len(cref.categories)
        present = codes[codes >= 0]
        counts = np.bincount(present, minlength=k + 1).astype(np.int64)
        res = spec.test.categorical(cref, counts)
        missing = n - present.size
        quality = {
            "missing_rate": float(missing) / n if n else 0.0,
            "unseen_rate": float(counts[k]) / present.size if present.size else 0.0,
        }
    drifted = bool(spec.test.drifted(res, spec.threshold))
    return {
        "test": spec.test.name,
        "statistic": _num(res.statistic),
        "p_value": _num(res.p_value),
        "threshold": spec.threshold,
        "drifted": drifted,
        "quality": quality,
    }


def _num(x: float | None) -> float | None:
    if x is None:
        return None
    f = float(x)
    return f if np.isfinite(f) else None


def evaluate(spec: MonitorSpec, window: CountWindow) -> dict[str, Any]:
    """Test every feature (and the prediction) of the window against the reference."""
    features = {f.name: _evaluate_feature(f, window) for f in spec.features}
    prediction = _evaluate_feature(spec.prediction, window) if spec.prediction else None
    n_drifted = sum(1 for r in features.values() if r["drifted"])
    share = n_drifted / len(features) if features else 0.0
    rule = spec.cfg.policy.drift_share
    breach = (share >= rule) if rule is not None else n_drifted > 0
    if prediction is not None and prediction["drifted"]:
        breach = True
    return {
        "window": window.span(),
        "features": features,
        "prediction": prediction,
        "drift_share": float(share),
        "drifted": breach,
    }

"""Window content → per-feature test results and the monitor-level breach, for one evaluation.

This is the glue between windows (raw values in ring buffers), the reference profile and the
statistical tests in :mod:`driftd.stats`. It runs once per window step, never per event.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from driftd.config import (
    FeatureConfig,
    MonitorConfig,
    QualityConfig,
    SlidingTimeWindow,
    TumblingTimeWindow,
)
from driftd.errors import ConfigError
from driftd.ingest.decode import RowMapper
from driftd.reference.features import CategoricalReference, NumericReference
from driftd.reference.profile import FeatureRef, Profile
from driftd.stats import DriftTest, auto_select, get_test
from driftd.windows.count import CountWindow
from driftd.windows.time import TimeWindow, WindowView

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    name: str
    kind: str  # "numeric" | "categorical"
    column: int  # column in the window's num or cat block
    ref: FeatureRef
    test: DriftTest
    threshold: float
    calibrated: bool = False
    warn_threshold: float | None = None
    calibrated_window: int = 0  # window events the calibrated threshold was derived for


@dataclass(frozen=True, slots=True)
class MonitorSpec:
    cfg: MonitorConfig
    profile: Profile
    features: tuple[FeatureSpec, ...]
    prediction: FeatureSpec | None
    n_num: int
    n_cat: int
    # Specs against per-segment references (profile segments), by segment key; a segment
    # without one is evaluated with this spec (the global reference).
    segment_specs: dict[tuple[str, ...], MonitorSpec] = field(default_factory=dict)

    def for_segment(self, key: tuple[str, ...]) -> MonitorSpec:
        return self.segment_specs.get(key, self)
    # Reference mode: "profile", or "warmup" / "version" (this spec is then the layout only:
    # references are built at run time, see driftd.monitor.refmodes) with categories learnt as they
    # appear, up to ``open_categories`` labels per feature.
    mode: str = "profile"
    open_categories: int = 0

    def mapper(self) -> RowMapper:
        num = [(f.name, self.cfg.features[f.name]) for f in self.features if f.kind == "numeric"]
        cat = [
            (f.name, self.cfg.features[f.name], _cats(f.ref))
            for f in self.features
            if f.kind == "categorical"
        ]
        m = RowMapper(
            num, cat, self.prediction.kind if self.prediction else None, self.open_categories
        )
        if self.prediction is not None and self.prediction.kind == "categorical":
            m.set_prediction_categories(_cats(self.prediction.ref))
        return m

    @property
    def time_based(self) -> bool:
        return self.cfg.window.type in ("tumbling_time", "sliding_time")

    def new_window(self) -> CountWindow | TimeWindow:
        w = self.cfg.window
        if isinstance(w, TumblingTimeWindow | SlidingTimeWindow):
            step_s = w.step_s if isinstance(w, SlidingTimeWindow) else w.size_s
            return TimeWindow(
                w.size_s,
                step_s,
                w.allowed_lateness_s,
                self.n_num,
                self.n_cat,
                max_events=w.max_events,
            )
        step = w.step if w.type == "sliding" else w.events
        return CountWindow(w.events, step, self.n_num, self.n_cat)

    def restore_window(self, arrays: dict[str, Any]) -> CountWindow | TimeWindow:
        if self.time_based:
            return TimeWindow.restore(arrays)
        return CountWindow.restore(arrays)


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
    warn = float(fc.warn_threshold) if fc.warn_threshold is not None else None
    return FeatureSpec(name, fc.kind, column, ref, test, float(thr), warn_threshold=warn)


def calibration_key(cfg: MonitorConfig, tests: dict[str, str]) -> dict[str, Any]:
    """Everything calibrated thresholds depend on; a stored calibration with another key is
    stale."""
    w = cfg.window
    events = int(getattr(w, "events", 0))
    return {
        "window_events": events,
        "step_events": int(getattr(w, "step", events)),
        "target": cfg.calibration.false_alerts_per_million_events,
        "resamples": cfg.calibration.resamples,
        "seed": cfg.calibration.seed,
        "tests": dict(sorted(tests.items())),
    }


def calibrate(
    cfg: MonitorConfig, profile: Profile, specs: dict[str, FeatureSpec]
) -> dict[str, Any]:
    """Calibrate the thresholds of ``specs`` (features without an explicit threshold), with
    the false-alert budget split over every tested feature. Returns the profile's
    ``calibration`` document."""
    from driftd.stats.calibrate import alert_budget, calibrate_feature, feature_seed

    c = cfg.calibration
    assert c.false_alerts_per_million_events is not None
    n_tested = len(cfg.features) + (1 if cfg.prediction is not None else 0)
    key = calibration_key(cfg, {n: f.test.name for n, f in specs.items()})
    alpha = alert_budget(c.false_alerts_per_million_events, key["step_events"], n_tested, 1).alpha
    t0 = time.perf_counter()

    def one(item: tuple[str, FeatureSpec]) -> tuple[str, Any]:
        name, f = item
        cal = calibrate_feature(
            f.test,
            f.ref,
            key["window_events"],
            alpha,
            resamples=c.resamples,
            seed=feature_seed(c.seed, name),
        )
        return name, cal.to_json()

    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        results = dict(pool.map(one, specs.items()))
    log.info(
        "monitor %s: calibrated %d thresholds in %.1fs (alpha %.2g per evaluation)",
        cfg.name,
        len(results),
        time.perf_counter() - t0,
        alpha,
    )
    return {"key": key, "alpha": alpha, "features": results}


def build_spec(
    cfg: MonitorConfig, profile: Profile, index: int, *, allow_calibration: bool = True
) -> MonitorSpec:
    """The monitor's spec against ``profile``, with one spec per segment reference the profile
    holds (see :func:`_build_one`). A segment spec has the same column layout; its tests may
    differ where automatic selection depends on the (smaller) reference, and its thresholds
    are calibrated against its own reference."""
    spec = _build_one(cfg, profile, index, allow_calibration=allow_calibration)
    if not cfg.segment_by or not profile.segments:
        return spec
    segs = {
        key: _build_one(cfg, seg, index, allow_calibration=allow_calibration)
        for key, seg in profile.segments.items()
    }
    return replace(spec, segment_specs=segs)


def _build_one(
    cfg: MonitorConfig, profile: Profile, index: int, *, allow_calibration: bool = True
) -> MonitorSpec:
    """Resolve tests, thresholds and column layout. Numeric features come first in their block,
    then the prediction when numeric; likewise for categoricals.

    Thresholds: an explicit ``threshold`` wins; otherwise a calibrated one (from the profile
    when it matches the monitor's window and tests, else calibrated now and logged); otherwise
    the test's default."""
    spec = _build_spec(cfg, profile, index)
    if cfg.calibration.false_alerts_per_million_events is None or not allow_calibration:
        return spec
    if spec.time_based:
        log.info(
            "monitor %s: time windows have no fixed event count; thresholds are the tests'"
            " defaults unless configured (calibration applies to count windows)",
            cfg.name,
        )
        return spec
    todo = {f.name: f for f in spec.features if cfg.features[f.name].threshold is None}
    if spec.prediction is not None and cfg.prediction is not None:
        if cfg.prediction.threshold is None:
            todo["prediction"] = spec.prediction
    if not todo:
        return spec
    key = calibration_key(cfg, {n: f.test.name for n, f in todo.items()})
    doc = profile.calibration
    if doc is None or doc.get("key") != key:
        if doc is not None:
            log.warning(
                "monitor %s: the profile's calibration was made for another window or tests;"
                " recalibrating (store it with `driftd profile build`)",
                cfg.name,
            )
        doc = calibrate(cfg, profile, todo)
        object.__setattr__(profile, "calibration", doc)
    thresholds = {n: float(d["threshold"]) for n, d in doc["features"].items()}

    window_events = int(doc["key"]["window_events"])

    def with_thr(f: FeatureSpec) -> FeatureSpec:
        t = thresholds.get(f.name)
        if t is None or f.name not in todo:
            return f
        return replace(f, threshold=t, calibrated=True, calibrated_window=window_events)

    return replace(
        spec,
        features=tuple(with_thr(f) for f in spec.features),
        prediction=with_thr(spec.prediction) if spec.prediction is not None else None,
    )


def _build_spec(cfg: MonitorConfig, profile: Profile, index: int) -> MonitorSpec:
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


def _quality_breaches(
    name: str, spec: FeatureSpec, quality: dict[str, float], cfg: QualityConfig
) -> list[dict[str, Any]]:
    out = []
    ref_missing = spec.ref.missing / max(1, spec.ref.missing + spec.ref.count)
    checks: list[tuple[str, float | None, float]] = [
        ("missing_rate", cfg.missing_rate, ref_missing),
        ("out_of_range_rate", cfg.out_of_range_rate, 0.0),
        ("unseen_rate", cfg.unseen_rate, 0.0),
    ]
    for test, limit, base in checks:
        value = quality.get(test)
        if limit is None or value is None:
            continue
        threshold = base + limit
        if value > threshold:
            out.append(
                {
                    "name": name,
                    "test": test,
                    "statistic": value,
                    "p_value": None,
                    "threshold": threshold,
                }
            )
    return out


# How a distance statistic's null fluctuation shrinks with the effective sample size
# n' = 1 / (1/n + 1/reference): ∝ n'^-1/2 for distances (Wasserstein, JS distance, Hellinger,
# TV, energy distance, mean difference), ∝ n'^-1 for divergences (PSI, KL ~ χ²/n).
NULL_SCALING = {
    "wasserstein": 0.5,
    "wasserstein_norm": 0.5,
    "mean_diff": 0.5,
    "energy": 0.5,
    "js": 0.5,
    "hellinger": 0.5,
    "tv": 0.5,
    "psi": 1.0,
    "kl": 1.0,
}


def effective_threshold(spec: FeatureSpec, n_values: int) -> float:
    """A calibrated distance threshold holds for full windows; the first evaluations of a
    version run on fewer events (from ``policy.min_events``), whose null statistics are larger.
    Scale the threshold to the window actually evaluated so partial windows keep the same
    false-breach level. p-value levels and configured thresholds are used as they are."""
    gamma = NULL_SCALING.get(spec.test.name)
    w = spec.calibrated_window
    if not spec.calibrated or gamma is None or w <= 0 or n_values >= w or n_values <= 0:
        return spec.threshold
    ref_n = len(spec.ref.sample) if isinstance(spec.ref, NumericReference) else spec.ref.count
    ref_n = max(ref_n, 1)

    def eff(n: int) -> float:
        return 1.0 / (1.0 / n + 1.0 / ref_n)

    return float(spec.threshold * (eff(w) / eff(n_values)) ** gamma)


def _evaluate_feature(spec: FeatureSpec, window: WindowView) -> dict[str, Any]:
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
    threshold = effective_threshold(spec, n)
    drifted = bool(spec.test.drifted(res, threshold))
    warning = (
        not drifted
        and spec.warn_threshold is not None
        and bool(spec.test.drifted(res, spec.warn_threshold))
    )
    result: dict[str, Any] = {
        "test": spec.test.name,
        "statistic": _num(res.statistic),
        "p_value": _num(res.p_value),
        "threshold": threshold,
        "drifted": drifted,
        "level": "critical" if drifted else "warning" if warning else "ok",
        "quality": quality,
    }
    if spec.warn_threshold is not None:
        result["warn_threshold"] = spec.warn_threshold
    return result


def adjust_multiple_testing(
    method: str, specs: tuple[FeatureSpec, ...], results: dict[str, dict[str, Any]]
) -> None:
    """Bonferroni or Benjamini–Hochberg across the monitor's uncalibrated p-value tests:
    rewrites ``drifted`` and records the ``adjusted_threshold`` each p-value was held to."""
    family = [
        f
        for f in specs
        if f.test.threshold_kind == "p_value"
        and not f.calibrated
        and results[f.name]["p_value"] is not None
    ]
    m = len(family)
    if method == "none" or m < 2:
        return
    if method == "bonferroni":
        for f in family:
            r = results[f.name]
            r["adjusted_threshold"] = f.threshold / m
            r["drifted"] = r["p_value"] < r["adjusted_threshold"]
    else:  # Benjamini–Hochberg step-up: reject ranks 1..k*, k* the largest k with
        # p_(k) <= k/m * q_(k)
        ordered = sorted(family, key=lambda f: results[f.name]["p_value"])
        k_star = 0
        for k, f in enumerate(ordered, start=1):
            if results[f.name]["p_value"] <= k / m * f.threshold:
                k_star = k
        for k, f in enumerate(ordered, start=1):
            r = results[f.name]
            r["adjusted_threshold"] = k / m * f.threshold
            r["drifted"] = k <= k_star
    for f in family:
        r = results[f.name]
        if r["drifted"]:
            r["level"] = "critical"
        elif r["level"] == "critical":
            r["level"] = "ok"


def _num(x: float | None) -> float | None:
    if x is None:
        return None
    f = float(x)
    return f if np.isfinite(f) else None


def evaluate(spec: MonitorSpec, window: WindowView) -> dict[str, Any]:
    """Test every feature (and the prediction) of the window against the reference."""
    features = {f.name: _evaluate_feature(f, window) for f in spec.features}
    adjust_multiple_testing(spec.cfg.policy.multiple_testing, spec.features, features)
    prediction = _evaluate_feature(spec.prediction, window) if spec.prediction else None
    quality: list[dict[str, Any]] = []
    for f in spec.features:
        quality += _quality_breaches(f.name, f, features[f.name]["quality"], spec.cfg.quality)
    if spec.prediction is not None and prediction is not None:
        quality += _quality_breaches(
            "prediction", spec.prediction, prediction["quality"], spec.cfg.quality
        )
    n_drifted = sum(1 for r in features.values() if r["drifted"])
    share = n_drifted / len(features) if features else 0.0
    rule = spec.cfg.policy.drift_share
    breach = (share >= rule) if rule is not None else n_drifted > 0
    if prediction is not None and prediction["drifted"]:
        breach = True
    if quality:
        breach = True
    warnings = [
        n
        for n, r in [*features.items(), ("prediction", prediction)]
        if r is not None and r["level"] == "warning"
    ]
    return {
        "warnings": warnings,
        "window": window.span(),
        "features": features,
        "prediction": prediction,
        "quality_breaches": quality,
        "drift_share": float(share),
        "drifted": breach,
    }

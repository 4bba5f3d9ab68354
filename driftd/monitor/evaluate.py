"""Window content → per-feature test results and the monitor-level breach, for one evaluation.

This is the glue between windows (raw values), the reference in a :class:`MonitorSpec` and the
statistical tests in :mod:`driftd.stats`. It runs once per window step, never per event.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from driftd.config import QualityConfig
from driftd.monitor import multivar
from driftd.monitor.spec import FeatureSpec, MonitorSpec
from driftd.reference.features import CategoricalReference, NumericReference
from driftd.windows.base import WindowView


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


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# Threads that evaluate one window's features: 2 when the process may use two cores or more
# (set before the first evaluation to change it; 1 evaluates in line).
THREADS = min(2, _cpus())
_helper: ThreadPoolExecutor | None = None


def _each(specs: Sequence[FeatureSpec], window: WindowView) -> list[dict[str, Any]]:
    """``_evaluate_feature`` of every spec, in order. With a second thread, every other
    feature is evaluated there while this thread does the rest: the kernels and NumPy's sort
    release the GIL, so the two halves run at once, and each result is computed exactly as in
    line (the window is only read)."""
    global _helper
    if THREADS < 2 or len(specs) < 4:
        return [_evaluate_feature(f, window) for f in specs]
    if _helper is None:
        _helper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="driftd-evaluate")
    theirs = _helper.submit(lambda: [_evaluate_feature(f, window) for f in specs[1::2]])
    mine = [_evaluate_feature(f, window) for f in specs[0::2]]
    out: list[dict[str, Any]] = [{}] * len(specs)
    out[0::2] = mine
    out[1::2] = theirs.result()
    return out


def evaluate(spec: MonitorSpec, window: WindowView) -> dict[str, Any]:
    """Test every feature (and the prediction, and the multivariate statistic) of the window
    against the reference. ``multivariate`` is None without ``multivariate:``."""
    span = window.span()
    tested = [*spec.features, *([spec.prediction] if spec.prediction else [])]
    results = _each(tested, window)
    features = dict(zip([f.name for f in spec.features], results, strict=False))
    adjust_multiple_testing(spec.cfg.policy.multiple_testing, spec.features, features)
    prediction = results[-1] if spec.prediction else None
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
    mv = None
    if spec.multivariate is not None:
        mv = multivar.evaluate(spec.multivariate, window, span.get("end_position"))
        if mv["drifted"]:  # like the prediction: breaches whatever the drift share
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
        "window": span,
        "features": features,
        "prediction": prediction,
        "multivariate": mv,
        "quality_breaches": quality,
        "drift_share": float(share),
        "drifted": breach,
    }

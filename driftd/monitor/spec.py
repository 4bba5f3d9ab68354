"""Monitor specs: each feature's test, reference and threshold, and the window layout.

A :class:`MonitorSpec` is what a monitor's configuration and reference profile resolve to:
the column layout of its windows (numeric block, categorical block), the test and threshold of
every feature and of the prediction (explicit, calibrated to the false-alert budget, or the
test's default), the multivariate statistic and the performance estimator fitted on the
reference's rows (:mod:`driftd.monitor.multivar`, :mod:`driftd.monitor.estimate`), and one spec
per segment reference. Built once at start (or when a warmup reference completes);
evaluation (:mod:`driftd.monitor.evaluate`) only reads it.

While ``driftd profile build`` runs, the profile still holds its rows: building the spec then
fits what the monitor asks for into the profile (saved with it), as it calibrates thresholds
into it. A profile loaded from a file must already hold them.
"""

from __future__ import annotations

import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from driftd.config import FeatureConfig, MonitorConfig, SlidingTimeWindow, TumblingTimeWindow
from driftd.errors import ConfigError
from driftd.ingest.decode import RowMapper
from driftd.monitor import estimate, multivar
from driftd.monitor.estimate import EstimatorSpec
from driftd.monitor.multivar import MultivariateSpec
from driftd.reference.features import CategoricalReference
from driftd.reference.profile import FeatureRef, Profile, segment_label
from driftd.stats import DriftTest, auto_select, get_test
from driftd.stats.progress import OnProgress, ProgressTracker
from driftd.windows.count import CountWindow
from driftd.windows.time import EventTimeWindow

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
    multivariate: MultivariateSpec | None = None
    estimator: EstimatorSpec | None = None  # performance estimate (the version's window only)

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

    def models(self) -> list[str]:
        """The multivariate statistic and the performance estimator, one line each (for
        ``profile build`` and ``check-config``)."""
        out = []
        if self.multivariate is not None:
            out.append(multivar.describe(self.multivariate))
        if self.estimator is not None:
            out.append(estimate.describe(self.estimator))
        return out

    @property
    def time_based(self) -> bool:
        return self.cfg.window.type in ("tumbling_time", "sliding_time")

    def new_window(self) -> CountWindow | EventTimeWindow:
        w = self.cfg.window
        if isinstance(w, TumblingTimeWindow | SlidingTimeWindow):
            step_s = w.step_s if isinstance(w, SlidingTimeWindow) else w.size_s
            return EventTimeWindow(
                w.size_s, step_s, self.n_num, self.n_cat, max_events=w.max_events
            )
        step = w.step if w.type == "sliding" else w.events
        return CountWindow(w.events, step, self.n_num, self.n_cat)

    def restore_window(self, arrays: dict[str, Any]) -> CountWindow | EventTimeWindow:
        if self.time_based:
            return EventTimeWindow.restore(arrays)
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
    key: dict[str, Any] = {
        "window_events": events,
        "step_events": int(getattr(w, "step", events)),
        "target": cfg.calibration.false_alerts_per_million_events,
        "resamples": cfg.calibration.resamples,
        "seed": cfg.calibration.seed,
        "tests": dict(sorted(tests.items())),
    }
    if cfg.multivariate is not None:  # one more tested quantity (absent: keys as before)
        mv = cfg.multivariate
        key["multivariate"] = multivar.fitted_key(cfg) if mv.threshold is None else "configured"
    return key


def n_tested(cfg: MonitorConfig) -> int:
    """Quantities tested per evaluation, over which the false-alert budget is split: the
    features, the prediction and the multivariate statistic."""
    return (
        len(cfg.features)
        + (1 if cfg.prediction is not None else 0)
        + (1 if cfg.multivariate is not None else 0)
    )


def calibrate(
    cfg: MonitorConfig,
    profile: Profile,
    specs: dict[str, FeatureSpec],
    mv: MultivariateSpec | None = None,
    progress: OnProgress | None = None,
    what: str | None = None,
) -> dict[str, Any]:
    """Calibrate the thresholds of ``specs`` (features without an explicit threshold) and of
    the multivariate statistic ``mv`` (when given), with the false-alert budget split over
    every tested quantity. Returns the profile's ``calibration`` document. ``progress`` is told
    how far it is (from the pool's threads)."""
    from driftd.stats.calibrate import alert_budget, calibrate_feature, feature_seed

    c = cfg.calibration
    assert c.false_alerts_per_million_events is not None
    key = calibration_key(cfg, {n: f.test.name for n, f in specs.items()})
    alpha = alert_budget(
        c.false_alerts_per_million_events, key["step_events"], n_tested(cfg), 1
    ).alpha
    t0 = time.perf_counter()
    track = ProgressTracker(what or f"monitor {cfg.name}", len(specs), c.resamples, progress)

    def one(item: tuple[str, FeatureSpec]) -> tuple[str, Any]:
        name, f = item
        with track.feature() as step:
            cal = calibrate_feature(
                f.test,
                f.ref,
                key["window_events"],
                alpha,
                resamples=c.resamples,
                seed=feature_seed(c.seed, name),
                progress=step,
            )
        return name, cal.to_json()

    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        results = dict(pool.map(one, specs.items()))
    doc: dict[str, Any] = {"key": key, "alpha": alpha, "features": results}
    if mv is not None:
        doc["multivariate"] = multivar.calibrate(
            mv.model, key["window_events"], alpha, c.resamples, c.seed
        )
    log.info(
        "monitor %s: calibrated %d thresholds in %.1fs (alpha %.2g per evaluation)",
        cfg.name,
        len(results) + (mv is not None),
        time.perf_counter() - t0,
        alpha,
    )
    return doc


def build_spec(
    cfg: MonitorConfig,
    profile: Profile,
    index: int,
    *,
    allow_calibration: bool = True,
    progress: OnProgress | None = None,
    layout_only: bool = False,
) -> MonitorSpec:
    """The monitor's spec against ``profile``, with one spec per segment reference the profile
    holds (see :func:`_build_one`). A segment spec has the same column layout; its tests may
    differ where automatic selection depends on the (smaller) reference, and its thresholds
    are calibrated against its own reference; its multivariate statistic is its own when the
    profile fitted one on the segment's rows, else the global one. ``layout_only``: no
    multivariate statistic or estimator (a placeholder profile before any reference exists).
    ``progress`` follows any calibration.
    """
    spec = _build_one(
        cfg, profile, index, allow_calibration=allow_calibration, layout_only=layout_only,
        progress=progress,
    )  # fmt: skip
    if not cfg.segment_by or not profile.segments:
        return spec
    segs = {}
    for key, seg in profile.segments.items():
        s = _build_one(
            cfg, seg, index, allow_calibration=allow_calibration, layout_only=layout_only,
            segment=True, progress=progress,
            what=f"monitor {cfg.name}, segment {segment_label(cfg.segment_by, key)}",
        )  # fmt: skip
        if s.multivariate is None and spec.multivariate is not None:
            s = replace(s, multivariate=spec.multivariate)
        segs[key] = s
    return replace(spec, segment_specs=segs)


def _fit(cfg: MonitorConfig, profile: Profile, index: int, segment: bool) -> None:
    """Fit what the monitor asks for on the rows of a profile being built (stored in it,
    like calibrated thresholds) unless it holds a fit for the same configuration."""
    rows = profile.rows
    if rows is None or not len(rows):
        return
    if cfg.multivariate is not None:
        fitted = profile.multivariate
        if fitted is None or fitted.key != multivar.fitted_key(cfg):
            try:
                object.__setattr__(profile, "multivariate", multivar.fit(cfg, profile, rows))
            except ValueError as exc:
                if not segment:
                    raise ConfigError(
                        f"monitors.{index}.multivariate", f"cannot fit on the reference: {exc}"
                    ) from None
                log.warning(
                    "monitor %s segment %s: multivariate statistic not fitted (%s); the"
                    " segment uses the global one",
                    cfg.name,
                    profile.segment,
                    exc,
                )
    perf = cfg.performance
    if perf is not None and perf.estimate is not None and not segment:
        fitted = profile.estimator
        if fitted is None or fitted.key != estimate.fitted_key(cfg):
            object.__setattr__(profile, "estimator", estimate.fit(cfg, rows))


def _build_one(
    cfg: MonitorConfig,
    profile: Profile,
    index: int,
    *,
    allow_calibration: bool = True,
    layout_only: bool = False,
    segment: bool = False,
    progress: OnProgress | None = None,
    what: str | None = None,
) -> MonitorSpec:
    """Resolve tests, thresholds and column layout. Numeric features come first in their block,
    then the prediction when numeric; likewise for categoricals.

    Thresholds: an explicit ``threshold`` wins; otherwise a calibrated one (from the profile
    when it matches the monitor's window and tests, else calibrated now and logged); otherwise
    the test's default. The multivariate statistic's threshold is explicit or calibrated."""
    if not layout_only:
        _fit(cfg, profile, index, segment)
    spec = _build_spec(cfg, profile, index)
    if not layout_only:
        spec = _with_models(cfg, profile, index, spec, segment)
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
    mv = spec.multivariate
    mv_todo = mv if mv is not None and not mv.calibrated and math.isnan(mv.threshold) else None
    if not todo and mv_todo is None:
        return spec
    key = calibration_key(cfg, {n: f.test.name for n, f in todo.items()})
    doc = profile.calibration
    if (
        doc is None
        or doc.get("key") != key
        or (mv_todo is not None and "multivariate" not in doc)
    ):
        if doc is not None:
            log.warning(
                "monitor %s: the profile's calibration was made for another window or tests;"
                " recalibrating (store it with `driftd profile build`)",
                cfg.name,
            )
        doc = calibrate(cfg, profile, todo, mv_todo, progress, what)
        object.__setattr__(profile, "calibration", doc)
    thresholds = {n: float(d["threshold"]) for n, d in doc["features"].items()}

    window_events = int(doc["key"]["window_events"])
    if mv_todo is not None:
        thr, center = multivar.threshold_from(doc["multivariate"])
        mv = replace(
            mv_todo, threshold=thr, calibrated=True, calibrated_window=window_events, center=center
        )

    def with_thr(f: FeatureSpec) -> FeatureSpec:
        t = thresholds.get(f.name)
        if t is None or f.name not in todo:
            return f
        return replace(f, threshold=t, calibrated=True, calibrated_window=window_events)

    return replace(
        spec,
        features=tuple(with_thr(f) for f in spec.features),
        prediction=with_thr(spec.prediction) if spec.prediction is not None else None,
        multivariate=mv,
    )


def _with_models(
    cfg: MonitorConfig, profile: Profile, index: int, spec: MonitorSpec, segment: bool
) -> MonitorSpec:
    """The spec with the multivariate statistic (threshold NaN until calibrated) and the
    performance estimator the profile holds; ``ConfigError`` when the monitor asks for one
    the profile does not have (a segment without its own statistic uses the global one)."""
    mv: MultivariateSpec | None = None
    if cfg.multivariate is not None and not (segment and profile.multivariate is None):
        model = multivar.model_of(cfg, profile, f"monitors.{index}.multivariate")
        num_of = {f.name: f.column for f in spec.features if f.kind == "numeric"}
        cat_of = {f.name: f.column for f in spec.features if f.kind == "categorical"}
        num_cols, cat_cols = multivar.columns(cfg, num_of, cat_of)
        thr = cfg.multivariate.threshold
        mv = MultivariateSpec(
            model=model,
            num_columns=num_cols,
            cat_columns=cat_cols,
            threshold=float(thr) if thr is not None else math.nan,
            seed=cfg.calibration.seed,
        )
    est: EstimatorSpec | None = None
    perf = cfg.performance
    if perf is not None and perf.estimate is not None and not segment:
        assert spec.prediction is not None and spec.prediction.kind == "numeric"
        est = estimate.spec_of(
            cfg, profile, spec.prediction.column, f"monitors.{index}.performance.estimate"
        )
    return replace(spec, multivariate=mv, estimator=est)


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

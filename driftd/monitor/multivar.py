"""A monitor's multivariate drift statistic (``multivariate:``): fitted on the reference's
rows, its threshold, and its value on each window.

The statistics themselves are :mod:`driftd.stats.multivariate`; this module wires them to a
monitor: which window columns they read (a subset of the monitor's features, by name), the
fitted model stored in the profile (:class:`driftd.reference.profile.Fitted`, keyed by what
it was fitted for), the calibrated or configured threshold, and the subsample seed of a
window — derived from the window's end position, so a replay and a restarted daemon draw
the same rows.

A window drifts when its statistic is *above* the threshold. Like a calibrated distance
test (:func:`driftd.monitor.evaluate.effective_threshold`), a calibrated threshold holds for
full windows and is widened for the first, smaller windows of a version: PCA's deviation
from the reference's mean error by the square root of the effective sizes' ratio, MMD² by
the ratio itself (its null scales as ``1/m + 1/r`` for ``m`` window and ``r`` reference rows).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from driftd.config import MULTIVARIATE, MonitorConfig
from driftd.errors import ConfigError
from driftd.reference.features import CategoricalReference
from driftd.reference.profile import Fitted, Profile, ReferenceRows
from driftd.stats import multivariate as MV
from driftd.stats.calibrate import Calibration, feature_seed
from driftd.windows.base import WindowView

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MultivariateSpec:
    """The statistic of one monitor (or segment) against one reference."""

    model: MV.MultivariateModel
    num_columns: tuple[int, ...]  # window num-block columns, in the model's numeric order
    cat_columns: tuple[int, ...]  # window cat-block columns, in its categorical order
    threshold: float
    calibrated: bool = False
    calibrated_window: int = 0  # window events a calibrated threshold was derived for
    center: float = 0.0  # pca: the null's centre (the reference's mean out-of-fold error)
    seed: int = 0  # subsample seeds: window_seed(seed, end position)

    @property
    def method(self) -> str:
        return self.model.method


def fitted_key(cfg: MonitorConfig) -> dict[str, Any]:
    """What a fitted model depends on besides the reference rows: a profile whose model has
    another key was fitted for another ``multivariate:`` block."""
    mv = cfg.multivariate
    assert mv is not None
    num, cat = cfg.multivariate_features
    key: dict[str, Any] = {"method": mv.method, "numeric": num, "categorical": cat}
    if mv.method == "pca_reconstruction":
        key.update(variance=mv.variance, encoding=mv.encoding)
    else:
        key.update(
            reference_rows=mv.reference_rows, window_rows=mv.window_rows, pool_rows=mv.pool_rows
        )
    key["seed"] = cfg.calibration.seed
    return key


def fit(cfg: MonitorConfig, profile: Profile, rows: ReferenceRows) -> Fitted:
    """Fit the monitor's statistic on the reference ``rows`` (categorical codes index the
    categories of ``profile``). ``ValueError`` when the rows cannot carry it (too few)."""
    mv = cfg.multivariate
    assert mv is not None
    num, cat = cfg.multivariate_features
    x = rows.num[:, [rows.numeric.index(n) for n in num]] if num else None
    t0 = time.perf_counter()
    if mv.method == "pca_reconstruction":
        c = rows.cat[:, [rows.categorical.index(n) for n in cat]] if cat else None
        cats = []
        for n in cat:
            ref = profile.features[n]
            assert isinstance(ref, CategoricalReference)
            cats.append(ref.categories)
        model: MV.MultivariateModel = MV.fit(
            mv.method,
            x,
            c,
            numeric=num,
            categorical=cat,
            categories=cats if cat else None,
            variance=mv.variance,
            encoding=mv.encoding,
            seed=cfg.calibration.seed,
        )
    else:
        model = MV.fit(
            mv.method,
            x,
            None,
            numeric=num,
            reference_rows=mv.reference_rows,
            window_rows=mv.window_rows,
            pool_rows=mv.pool_rows,
            seed=cfg.calibration.seed,
        )
    meta, arrays = model.to_state()
    log.info(
        "monitor %s: %s fitted on %d reference rows of %d features in %.2fs",
        cfg.name,
        mv.method,
        len(rows),
        len(num) + len(cat),
        time.perf_counter() - t0,
    )
    return Fitted(fitted_key(cfg), meta, arrays)


def model_of(cfg: MonitorConfig, profile: Profile, key: str) -> MV.MultivariateModel:
    """The profile's fitted model for the monitor's ``multivariate:`` block; ``ConfigError``
    naming ``key`` when the profile has none, or one fitted for another block."""
    fitted = profile.multivariate
    want = fitted_key(cfg)
    if fitted is None:
        raise ConfigError(
            key,
            f"profile {profile.id or '(new)'} holds no multivariate model: rebuild it with"
            " `driftd profile build` (the statistic is fitted on the reference's rows)",
        )
    if fitted.key != want:
        diff = sorted(k for k in {*want, *fitted.key} if want.get(k) != fitted.key.get(k))
        raise ConfigError(
            key,
            f"the profile's multivariate model was fitted for another configuration (differs"
            f" in {', '.join(diff)}): rebuild the profile with `driftd profile build`",
        )
    try:
        return MV.from_state(fitted.meta, fitted.arrays)
    except (KeyError, ValueError, TypeError) as exc:
        raise ConfigError(key, f"the profile's multivariate model is unreadable: {exc}") from None


def columns(cfg: MonitorConfig, num_of: dict[str, int], cat_of: dict[str, int]) -> tuple[
    tuple[int, ...], tuple[int, ...]
]:  # fmt: skip
    """Window columns of the statistic's features (``num_of`` / ``cat_of``: feature → column)."""
    num, cat = cfg.multivariate_features
    return tuple(num_of[n] for n in num), tuple(cat_of[n] for n in cat)


def calibrate(
    model: MV.MultivariateModel, window_events: int, alpha: float, resamples: int, seed: int
) -> dict[str, Any]:
    """The calibration document of the statistic (stored beside the features')."""
    cal = model.calibrate(
        window_events, alpha, resamples=resamples, seed=feature_seed(seed, MULTIVARIATE)
    )
    return cal.to_json()


def threshold_from(doc: dict[str, Any]) -> tuple[float, float]:
    """(threshold, null centre) of a stored calibration."""
    cal = Calibration.from_json(doc)
    center = cal.null.get("center")
    return cal.threshold, float(center) if center is not None else 0.0


def effective_threshold(mv: MultivariateSpec, n: int) -> float:
    """The threshold for a window of ``n`` rows (module docstring)."""
    w = mv.calibrated_window
    if not mv.calibrated or w <= 0 or n >= w or n <= 0:
        return mv.threshold
    model = mv.model
    if isinstance(model, MV.MMD):
        r = float(model.reference.shape[0])
        m_w, m_n = min(w, model.window_rows), min(n, model.window_rows)
        if m_n >= m_w:
            return mv.threshold
        return mv.threshold * (1.0 / m_n + 1.0 / r) / (1.0 / m_w + 1.0 / r)
    ref_n = max(model.errors_count, 1)

    def eff(k: int) -> float:
        return 1.0 / (1.0 / k + 1.0 / ref_n)

    return mv.center + (mv.threshold - mv.center) * math.sqrt(eff(w) / eff(n))


def _block(window: WindowView, cols: tuple[int, ...], cat: bool) -> npt.NDArray[Any] | None:
    if not cols:
        return None
    get = window.cat_column if cat else window.num_column
    return np.column_stack([get(j) for j in cols])


def evaluate(mv: MultivariateSpec, window: WindowView, end_position: int | None) -> dict[str, Any]:
    """The evaluation's ``"multivariate"`` entry: ``{"method", "statistic", "threshold",
    "drifted"}``."""
    num = _block(window, mv.num_columns, False)
    cat = _block(window, mv.cat_columns, True)
    seed = MV.window_seed(mv.seed, int(end_position or 0))
    threshold = effective_threshold(mv, window.filled)
    return dict(MV.evaluate(mv.model, num, cat, threshold, seed=seed))


def describe(mv: MultivariateSpec) -> str:
    """One line for ``profile build`` and ``check-config``."""
    model = mv.model
    n = len(model.numeric) + len(model.categorical)
    how = "calibrated" if mv.calibrated else "configured"
    return f"{MULTIVARIATE}={mv.method}@{mv.threshold:.4g} ({how}; {n} features)"

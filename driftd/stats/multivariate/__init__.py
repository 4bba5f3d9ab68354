"""Multivariate drift: one statistic over many features at once, for the changes no marginal
test sees (features whose distributions stay put while the way they move together changes).

Two methods, looked up by the name used in config (``multivariate: {method: …}``):

======================  ==================================================================
``pca_reconstruction``  mean PCA reconstruction error of the window's rows, NannyML's
                        ``DataReconstructionDriftCalculator`` (:mod:`.pca`); numeric and
                        categorical features
``mmd``                 biased MMD² with a Gaussian kernel (median-heuristic bandwidth)
                        between bounded, seeded subsamples (:mod:`.mmd`); numeric features
======================  ==================================================================

Both take rows in the windows' layout — ``num`` ``(n, p)`` float64 with NaN for missing,
``cat`` ``(n, q)`` integer codes into the reference categories with ``-1`` for missing and
``>= len(categories)`` for unseen — and share one interface:

* ``fit(method, num, cat, **options)`` on the reference rows → a model;
* ``model.statistic(num, cat, seed=…)`` → float (NaN for an empty window); drift when it is
  *above* the threshold;
* ``model.calibrate(window_events, alpha, seed=…)`` →
  :class:`driftd.stats.calibrate.Calibration` whose ``threshold`` keeps a stationary window's
  breach probability at about ``alpha`` — pass the ``alpha`` of
  :func:`driftd.stats.calibrate.alert_budget` with the multivariate statistic counted as one
  more tested feature;
* ``model.to_state()`` → ``(meta, arrays)``, :func:`from_state` back (checkpoints);
  :func:`to_json` / :func:`from_json` for the profile document.

A model holds what calibration needs (out-of-fold reference errors for PCA, a pool of
reference rows for MMD), so a threshold can be recalibrated from the profile alone when the
window size or the budget changes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, TypedDict

import numpy as np
import numpy.typing as npt

from driftd.state.arrays import arrays_from_json, arrays_to_json
from driftd.stats.multivariate.mmd import MMD, fit_mmd
from driftd.stats.multivariate.pca import PCAReconstruction, fit_pca

MultivariateModel = PCAReconstruction | MMD
METHODS: tuple[str, ...] = ("pca_reconstruction", "mmd")
_Loader = Callable[[dict[str, Any], dict[str, npt.NDArray[Any]]], "MultivariateModel"]
_LOADERS: dict[str, _Loader] = {
    PCAReconstruction.method: PCAReconstruction.from_state,
    MMD.method: MMD.from_state,
}


class MultivariateResult(TypedDict):
    """An evaluation's ``"multivariate"`` entry (``statistic`` None when undefined)."""

    method: str
    statistic: float | None
    threshold: float
    drifted: bool


def fit(
    method: str,
    num: npt.ArrayLike | None,
    cat: npt.ArrayLike | None = None,
    **options: Any,
) -> MultivariateModel:
    """Fit ``method`` on the reference rows; ``options`` go to :func:`.pca.fit_pca`
    (``numeric``, ``categorical``, ``categories``, ``variance``, ``encoding``, ``folds``,
    ``seed``) or :func:`.mmd.fit_mmd` (``numeric``, ``reference_rows``, ``window_rows``,
    ``pool_rows``, ``seed``). ``KeyError`` for an unknown method."""
    if method == PCAReconstruction.method:
        return fit_pca(num, cat, **options)
    if method == MMD.method:
        if num is None:
            raise ValueError("mmd needs numeric features")
        return fit_mmd(num, cat, **options)
    raise KeyError(f"unknown multivariate method {method!r}; known: {', '.join(METHODS)}")


def from_state(
    meta: Mapping[str, Any], arrays: Mapping[str, npt.NDArray[Any]]
) -> MultivariateModel:
    """A model back from :meth:`to_state`'s ``(meta, arrays)``."""
    method = meta.get("method")
    loader = _LOADERS.get(str(method))
    if loader is None:
        raise ValueError(f"unknown multivariate method in state: {method!r}")
    return loader(dict(meta), dict(arrays))


def to_json(model: MultivariateModel) -> dict[str, Any]:
    """The model as one JSON-ready document (arrays spelt out, see
    :mod:`driftd.state.arrays`), e.g. for the profile file."""
    meta, arrays = model.to_state()
    return {"meta": meta, "arrays": arrays_to_json(arrays)}


def from_json(doc: Mapping[str, Any]) -> MultivariateModel:
    """Inverse of :func:`to_json`."""
    return from_state(doc["meta"], arrays_from_json(doc["arrays"]))


def evaluate(
    model: MultivariateModel,
    num: npt.ArrayLike | None,
    cat: npt.ArrayLike | None,
    threshold: float,
    *,
    seed: int = 0,
) -> MultivariateResult:
    """The statistic of one window against ``threshold``: ``drifted`` when it is above
    (an undefined statistic never drifts)."""
    stat = model.statistic(num, cat, seed=seed)
    defined = math.isfinite(stat)
    return {
        "method": model.method,
        "statistic": float(stat) if defined else None,
        "threshold": float(threshold),
        "drifted": bool(defined and stat > threshold),
    }


def window_seed(seed: int, position: int) -> int:
    """A subsample seed for the window ending at stream ``position`` (events counted): the
    same window gets the same subsample in replay and after a restart, consecutive windows
    independent ones."""
    return int(np.random.SeedSequence([int(seed), int(position)]).generate_state(1)[0])


__all__ = [
    "METHODS",
    "MMD",
    "MultivariateModel",
    "MultivariateResult",
    "PCAReconstruction",
    "evaluate",
    "fit",
    "fit_mmd",
    "fit_pca",
    "from_json",
    "from_state",
    "to_json",
    "window_seed",
]

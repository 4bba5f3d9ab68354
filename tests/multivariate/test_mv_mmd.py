"""MMD: the statistic against a direct scikit-learn/SciPy computation, the median heuristic,
seeded subsamples, calibration determinism, state round-trips."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from scipy.spatial.distance import pdist
from sklearn.metrics.pairwise import rbf_kernel

from driftd.stats import multivariate as MV
from driftd.stats.multivariate.mmd import MMD, fit_mmd


def rows(rng: np.random.Generator, n: int, rho: float = 0.6) -> np.ndarray:
    cov = np.eye(4)
    cov[0, 1] = cov[1, 0] = rho
    x = rng.multivariate_normal(np.zeros(4), cov, size=n)
    return x * np.array([1.0, 50.0, 1e-3, 2.0]) + np.array([0.0, 500.0, 1.0, -3.0])


def direct_mmd2(ref_z: np.ndarray, win_z: np.ndarray, gamma: float) -> float:
    """Biased MMD² from full Gram matrices (scikit-learn's RBF kernel, same gamma)."""
    return float(
        rbf_kernel(ref_z, ref_z, gamma=gamma).mean()
        + rbf_kernel(win_z, win_z, gamma=gamma).mean()
        - 2.0 * rbf_kernel(win_z, ref_z, gamma=gamma).mean()
    )


def test_statistic_equals_direct_computation_and_median_heuristic() -> None:
    rng = np.random.default_rng(30)
    ref = rows(rng, 3000)
    ref[rng.random(ref.shape) < 0.02] = np.nan
    model = fit_mmd(ref, reference_rows=400, window_rows=300, pool_rows=1000, seed=4)
    assert model.reference.shape == (400, 4) and model.pool.shape == (1000, 4)
    # standardised by the reference's mean and population sd, missing at 0
    np.testing.assert_allclose(model.center, np.nanmean(ref, axis=0), rtol=1e-12)
    np.testing.assert_allclose(model.scale, np.nanstd(ref, axis=0), rtol=1e-12)
    # the median heuristic: 2σ² = median squared distance between distinct reference rows
    med = float(np.median(pdist(model.reference, "sqeuclidean")))
    assert model.gamma == pytest.approx(1.0 / med, rel=1e-12)
    assert model.sigma == pytest.approx(math.sqrt(med / 2.0), rel=1e-12)
    assert model.krr == pytest.approx(rbf_kernel(model.reference, gamma=model.gamma).mean())
    win = rows(rng, 250, rho=-0.6)  # smaller than window_rows: every row is used
    win[3, 1] = np.nan
    z = (win - model.center) / model.scale
    z[np.isnan(z)] = 0.0
    want = direct_mmd2(model.reference, z, model.gamma)
    assert model.statistic(win) == pytest.approx(want, rel=1e-10)
    assert model.statistic(win, seed=1) == model.statistic(win, seed=2)


def test_subsample_is_seeded_and_bounded() -> None:
    rng = np.random.default_rng(31)
    model = fit_mmd(rows(rng, 2000), reference_rows=200, window_rows=100, pool_rows=500)
    win = rows(rng, 1000)
    a = model.statistic(win, seed=7)
    assert a == model.statistic(win, seed=7)
    assert a != model.statistic(win, seed=8)
    sub = model.subsample(win, seed=7)
    assert sub.shape == (100, 4)
    idx = np.sort(np.random.default_rng(7).choice(1000, 100, replace=False))
    assert a == pytest.approx(
        direct_mmd2(model.reference, model.standardise(win[idx]), model.gamma)
    )
    assert MV.window_seed(0, 5000) == MV.window_seed(0, 5000) != MV.window_seed(0, 6000)


def test_units_do_not_matter() -> None:
    rng = np.random.default_rng(32)
    ref = rows(rng, 2000)
    win = rows(rng, 300, rho=0.0)
    units = np.array([1e3, 1e-3, 7.0, 1.0])
    a = fit_mmd(ref, reference_rows=300, pool_rows=500).statistic(win)
    b = fit_mmd(ref * units, reference_rows=300, pool_rows=500).statistic(win * units)
    assert a == pytest.approx(b, rel=1e-9)


def test_reference_subsample_and_pool_are_disjoint() -> None:
    rng = np.random.default_rng(33)
    ref = rows(rng, 900)
    model = fit_mmd(ref, reference_rows=1000, pool_rows=5000)
    assert model.reference.shape[0] == 450  # at most half the reference
    assert model.pool.shape[0] == 450
    seen = {tuple(r) for r in model.reference.round(12)}
    assert not any(tuple(r) in seen for r in model.pool.round(12))


def test_calibration_is_deterministic_whatever_the_workers() -> None:
    rng = np.random.default_rng(34)
    model = fit_mmd(rows(rng, 3000), reference_rows=150, window_rows=100, pool_rows=800)
    one = model.calibrate(500, 1e-3, resamples=100, seed=5, workers=1)
    two = model.calibrate(500, 1e-3, resamples=100, seed=5, workers=2)
    assert one.threshold == two.threshold
    assert one.test == "mmd" and one.threshold_kind == "statistic"
    assert one.window_values == 100  # the subsample size the null was drawn for
    assert one.null["max"] is not None and one.threshold > one.null["max"]
    small_pool = fit_mmd(rows(rng, 200), reference_rows=100, window_rows=150, pool_rows=60)
    cal = small_pool.calibrate(1000, 1e-2, resamples=60)
    assert cal.window_values == 60 and any("conservative" in n for n in cal.notes)


def test_state_round_trips_exactly() -> None:
    rng = np.random.default_rng(35)
    model = fit_mmd(
        rows(rng, 2500), numeric=["a", "b", "c", "d"], reference_rows=200, pool_rows=400
    )
    meta, arrays = model.to_state()
    back = MMD.from_state(orjson.loads(orjson.dumps(meta)), arrays)
    again = MV.from_json(orjson.loads(orjson.dumps(MV.to_json(model))))
    win = rows(rng, 1500, rho=0.0)
    for other in (back, again):
        assert isinstance(other, MMD)
        assert other.numeric == ("a", "b", "c", "d")
        assert other.statistic(win, seed=3) == model.statistic(win, seed=3)
        assert (
            other.calibrate(800, 1e-3, resamples=60, seed=1).threshold
            == model.calibrate(800, 1e-3, resamples=60, seed=1).threshold
        )


def test_inputs_are_checked() -> None:
    rng = np.random.default_rng(36)
    ref = rows(rng, 100)
    with pytest.raises(ValueError, match="numeric features only"):
        fit_mmd(ref, np.zeros((100, 1), dtype=np.int32))
    model = fit_mmd(ref, reference_rows=20, pool_rows=50)
    with pytest.raises(ValueError, match="numeric features only"):
        model.statistic(ref, np.zeros((100, 1), dtype=np.int32))
    with pytest.raises(ValueError):
        model.statistic(ref[:, :3])
    assert math.isnan(model.statistic(np.zeros((0, 4))))
    with pytest.raises(ValueError):
        fit_mmd(ref[:3])
    with pytest.raises(KeyError):
        MV.fit("nope", ref)

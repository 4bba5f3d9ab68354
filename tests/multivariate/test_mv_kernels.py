"""``driftd.kernels.multivariate`` against its NumPy twins and direct formulas.

Small inputs: runs unchanged with ``NUMBA_DISABLE_JIT=1`` (``make test-nojit``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from driftd.kernels import multivariate as K

SHAPES = [(1, 1), (2, 3), (7, 2), (40, 5), (33, 8)]


def _pca_inputs(rng: np.random.Generator, n: int, d: int, k: int) -> tuple[np.ndarray, ...]:
    x = rng.normal(2.0, 3.0, size=(n, d))
    x[rng.random((n, d)) < 0.2] = np.nan
    fill = rng.normal(size=d)
    center = rng.normal(size=d)
    scale = rng.uniform(0.5, 2.0, size=d)
    pca_mean = rng.normal(0.0, 1e-3, size=d)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    comps = np.ascontiguousarray(q[:, :k].T)
    return x, fill, center, scale, pca_mean, comps


@pytest.mark.parametrize(("n", "d"), SHAPES)
@pytest.mark.parametrize("keep", [0, 1, -1])
def test_pca_errors_match_twin_and_definition(n: int, d: int, keep: int) -> None:
    rng = np.random.default_rng(n * 100 + d)
    k = d if keep == -1 else min(keep, d)
    x, fill, center, scale, pca_mean, comps = _pca_inputs(rng, n, d, k)
    got = K.pca_errors(x, fill, center, scale, pca_mean, comps)
    twin = K.pca_errors_np(x, fill, center, scale, pca_mean, comps)
    np.testing.assert_allclose(got, twin, rtol=1e-12, atol=1e-12)
    # the definition: distance between the standardised row and its reconstruction
    s = (np.where(np.isnan(x), fill, x) - center) / scale
    recon = ((s - pca_mean) @ comps.T) @ comps + pca_mean
    np.testing.assert_allclose(got, np.linalg.norm(s - recon, axis=1), rtol=1e-10, atol=1e-12)
    mean = K.pca_mean_error(x, fill, center, scale, pca_mean, comps)
    assert mean == pytest.approx(float(np.mean(twin)), rel=1e-12, abs=1e-14)
    assert mean == pytest.approx(K.pca_mean_error_np(x, fill, center, scale, pca_mean, comps))
    if k == d:  # every direction kept: nothing to miss
        np.testing.assert_allclose(got, 0.0, atol=1e-10)


def test_pca_empty_window_is_nan() -> None:
    d = 3
    z = np.zeros(d)
    comps = np.eye(d)[:1].copy()
    x = np.zeros((0, d))
    assert K.pca_errors(x, z, z, np.ones(d), z, comps).shape == (0,)
    assert math.isnan(K.pca_mean_error(x, z, z, np.ones(d), z, comps))
    assert math.isnan(K.pca_mean_error_np(x, z, z, np.ones(d), z, comps))


def _gram(a: np.ndarray, b: np.ndarray, gamma: float) -> np.ndarray:
    out = np.empty((a.shape[0], b.shape[0]))
    for i in range(a.shape[0]):
        for j in range(b.shape[0]):
            out[i, j] = math.exp(-gamma * float(np.sum((a[i] - b[j]) ** 2)))
    return out


@pytest.mark.parametrize(("n", "m", "d"), [(1, 1, 1), (3, 5, 2), (17, 9, 4), (25, 30, 3)])
def test_kernel_means_match_twins_and_gram(n: int, m: int, d: int) -> None:
    rng = np.random.default_rng(n + 7 * m + 31 * d)
    a = rng.normal(size=(n, d))
    b = rng.normal(0.3, 1.2, size=(m, d))
    gamma = 0.37
    g_ab = _gram(a, b, gamma)
    g_aa = _gram(a, a, gamma)
    g_bb = _gram(b, b, gamma)
    assert K.kernel_mean(a, b, gamma) == pytest.approx(g_ab.mean(), rel=1e-12)
    assert K.kernel_mean_np(a, b, gamma) == pytest.approx(g_ab.mean(), rel=1e-12)
    assert K.kernel_mean_self(a, gamma) == pytest.approx(g_aa.mean(), rel=1e-12)
    assert K.kernel_mean_self_np(a, gamma) == pytest.approx(g_aa.mean(), rel=1e-12)
    np.testing.assert_allclose(K.kernel_row_means(a, b, gamma), g_ab.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(K.kernel_row_means_np(a, b, gamma), g_ab.mean(axis=1), rtol=1e-12)
    krr = g_aa.mean()
    want = krr + g_bb.mean() - 2.0 * g_ab.mean()
    assert K.mmd2(a, b, gamma, krr) == pytest.approx(want, rel=1e-10, abs=1e-14)
    assert K.mmd2_np(a, b, gamma, krr) == pytest.approx(want, rel=1e-10, abs=1e-14)
    assert K.mmd2(a, b, gamma, krr) >= -1e-15  # the V-statistic is a squared RKHS norm


def test_sq_dists_upper_matches_twin() -> None:
    rng = np.random.default_rng(5)
    a = rng.normal(size=(12, 3))
    got = K.sq_dists_upper(a)
    np.testing.assert_allclose(got, K.sq_dists_upper_np(a), rtol=1e-14)
    i, j = np.triu_indices(12, k=1)
    np.testing.assert_allclose(got, np.sum((a[i] - a[j]) ** 2, axis=1), rtol=1e-14)
    assert K.sq_dists_upper(a[:1]).shape == (0,)


def test_null_mmd2_is_mmd2_of_each_subsample() -> None:
    rng = np.random.default_rng(11)
    ref = rng.normal(size=(9, 3))
    pool = rng.normal(size=(20, 3))
    gamma = 0.5
    krr = K.kernel_mean_self(ref, gamma)
    cross = K.kernel_row_means(pool, ref, gamma)
    idx = np.array([np.sort(rng.choice(20, 6, replace=False)) for _ in range(5)], dtype=np.int64)
    got = K.null_mmd2(pool, cross, idx, gamma, krr)
    twin = K.null_mmd2_np(pool, cross, idx, gamma, krr)
    direct = [K.mmd2(ref, pool[row], gamma, krr) for row in idx]
    np.testing.assert_allclose(got, twin, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got, direct, rtol=1e-12, atol=1e-15)
    empty = np.zeros((3, 0), dtype=np.int64)
    assert np.isnan(K.null_mmd2(pool, cross, empty, gamma, krr)).all()
    assert np.isnan(K.null_mmd2_np(pool, cross, empty, gamma, krr)).all()


def test_mmd_of_empty_side_is_nan() -> None:
    a = np.ones((3, 2))
    e = np.zeros((0, 2))
    assert math.isnan(K.mmd2(a, e, 1.0, 1.0))
    assert math.isnan(K.mmd2_np(a, e, 1.0, 1.0))
    assert math.isnan(K.kernel_mean(e, a, 1.0))
    assert math.isnan(K.kernel_mean_self(e, 1.0))
    assert np.isnan(K.kernel_row_means(a, e, 1.0)).all()

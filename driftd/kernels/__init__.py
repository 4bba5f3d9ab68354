"""Compiled kernels: numba ``@njit(cache=True)`` functions on NumPy arrays only.

Importing this package is cheap: it does not import numba. The kernels live in submodules,
each with a plain-NumPy twin (suffix ``_np``) that the tests compare against:

=======================  =================================================================
module                   kernels
=======================  =================================================================
``kernels.binning``      ``bin_counts`` (any order), ``bin_counts_sorted`` (sorted input)
``kernels.twosample``    on sorted samples, one merge each: ``ks_statistic``,
                         ``cdf_distances`` / ``wasserstein`` / ``energy``, ``cvm_u`` /
                         ``cvm_statistic``, ``ad_midrank_a2kn``
``kernels.divergence``   ``psi``, ``kl``, ``js_distance``, ``hellinger``,
                         ``total_variation``, ``chi2_contingency_2xk``
``kernels.special``      null distributions for p-values (KS exact/asymptotic, Smirnov, CvM,
                         AD, χ², t, normal), reproducing scipy's methods
``kernels.ring``         ``ring_append`` for count windows
``kernels.resample``     sorted resamples and null statistics for threshold calibration
``kernels.multivariate`` rows of many features: ``pca_errors`` / ``pca_mean_error`` (PCA
                         reconstruction), ``mmd2`` and its Gaussian-kernel means,
                         ``null_mmd2`` (calibration resamples)
``kernels.isotonic``     ``merge_ties`` and ``pav`` (pool-adjacent-violators) for CBPE's
                         calibration map
``kernels.jsonscan``     ``scan_events``: a batch of JSON events → kind, span and number of
                         each configured path, or "needs orjson" (twin: ``orjson.loads``)
``kernels.jsonfields``   ``times`` (RFC 3339), ``intern_spans`` (per-batch dictionaries)
=======================  =================================================================

Conventions shared by all kernels: float64 C-contiguous arrays; NaN is ignored defensively
(callers remove missing values first); an empty input gives NaN rather than an exception.

Call :func:`warm_up` once at start-up: with ``cache=True`` the first run in a fresh
environment compiles and writes the cache, later processes load it in milliseconds. It then
gives back the resident pages of LLVM's code that loading left mapped
(:func:`driftd.kernels._resident.release_llvm_pages`).
"""

from __future__ import annotations

import time


def warm_up() -> float:
    """Compile (or load from the on-disk cache) every kernel by calling it once on tiny
    arrays of the production dtypes. Returns the seconds it took."""
    t0 = time.perf_counter()

    import numpy as np

    from driftd.kernels import (
        binning,
        divergence,
        isotonic,
        jsonfields,
        jsonscan,
        multivariate,
        resample,
        ring,
        special,
        twosample,
    )

    a = np.array([0.0, 1.0, 1.0, 2.5], dtype=np.float64)
    b = np.array([0.5, 1.0, 3.0], dtype=np.float64)
    edges = np.array([-np.inf, 0.75, 1.5, np.inf], dtype=np.float64)
    binning.bin_counts(a, edges)
    binning.bin_counts(a, np.concatenate(([-np.inf], np.arange(128.0), [np.inf])))
    binning.bin_counts_sorted(a, edges)

    twosample.valid_len(a)
    twosample.gallop_left(a, 2.0, 0, 4)
    twosample.ks_statistic(a, b)
    twosample.cdf_distances(a, b)
    twosample.wasserstein(a, b)
    twosample.energy(a, b)
    twosample.cvm_u(a, b)
    twosample.cvm_statistic(a, b)
    twosample.ad_midrank_a2kn(a, b)

    p = np.array([0.5, 0.3, 0.2, 0.0], dtype=np.float64)
    q = np.array([0.4, 0.4, 0.1, 0.1], dtype=np.float64)
    divergence.psi(p, q, divergence.EPS)
    divergence.kl(p, q, divergence.EPS)
    divergence.js_distance(p, q)
    divergence.hellinger(p, q)
    divergence.total_variation(p, q)
    rc = np.array([5, 3, 0], dtype=np.int64)
    cc = np.array([4, 4, 1], dtype=np.int64)
    divergence.chi2_contingency_2xk(rc, cc, True)

    special.ks_prob_outside_square(4, 2)
    special.ks_prob_outside_band(4, 3, 1, 6)
    special.smirnov_sf(50, 0.3)
    special.cvm_exact_tail_count(3, 3, 1, 1, 10.0)
    special.cvm_inf_cdf(0.5)

    buf = np.zeros((4, 2), dtype=np.float64)
    ring.ring_append(buf, 0, np.ones((3, 2), dtype=np.float64))

    spacings = np.ones((2, 4), dtype=np.float64)
    tails = np.zeros(resample.N_TAIL_PARAMS, dtype=np.float64)
    prefix = resample.quantile_prefix(a)
    resample.draw_sorted(a, spacings[0], tails)
    resample.wasserstein_sorted(a, prefix, b)
    resample.window_statistic(resample.PSI, a, prefix, b, edges, p[:3], 0.0, 1.0, 1e-4)
    resample.null_statistics(a, prefix, spacings, tails, resample.PSI, edges, p[:3], 0.0, 1.0, 1e-4)

    rows = np.array([[0.0, 1.0], [np.nan, 2.0], [1.5, -1.0]], dtype=np.float64)
    zero2 = np.zeros(2, dtype=np.float64)
    one2 = np.ones(2, dtype=np.float64)
    comp = np.array([[1.0, 0.0]], dtype=np.float64)
    multivariate.pca_errors(rows, zero2, zero2, one2, zero2, comp)
    multivariate.pca_mean_error(rows, zero2, zero2, one2, zero2, comp)
    full = np.nan_to_num(rows)
    multivariate.sq_dists_upper(full)
    multivariate.kernel_row_means(full, full, 0.5)
    multivariate.kernel_mean(full, full, 0.5)
    multivariate.kernel_mean_self(full, 0.5)
    multivariate.mmd2(full, full, 0.5, 1.0)
    multivariate.null_mmd2(full, np.ones(3), np.array([[0, 2]], dtype=np.int64), 0.5, 1.0)

    isotonic.merge_ties(a, a, np.ones(4, dtype=np.float64))
    isotonic.pav(a, np.ones(4, dtype=np.float64))

    doc = b'{"a":{"b":"2026-11-26T12:00:00Z"},"c":[1.5,true,null]}'
    text = np.frombuffer(doc, dtype=np.uint8)
    one = np.zeros(1, dtype=np.int64)
    ends = np.array([len(doc)], dtype=np.int64)
    keys = np.frombuffer(b"ab", dtype=np.uint8).copy()
    parent = np.array([-1, 0, 1], dtype=np.int32)
    kstart = np.array([0, 0, 1], dtype=np.int64)
    klen = np.array([0, 1, 1], dtype=np.int64)
    table = np.full(16, -1, dtype=np.int32)
    jsonscan.build_table(keys, kstart, klen, parent, table)
    kind = np.zeros((1, 1), dtype=np.int8)
    span = np.zeros((1, 1, 2), dtype=np.int64)
    jsonscan.scan_events(
        text, one, ends, parent, kstart, klen, keys, np.array([-1, -1, 0], dtype=np.int32),
        np.array([1, 1, 0], dtype=np.int8), table, np.zeros(1, dtype=np.int8), kind, span,
        np.zeros((1, 1)), np.zeros((1, 1), dtype=np.int8), jsonscan.POW10,
    )  # fmt: skip
    jsonfields.times(text, span[:, 0], one, jsonfields._DAYS, np.zeros(1), np.zeros(1, np.int8))
    codes = np.zeros(1, dtype=np.int32)
    jsonfields.intern_spans(text, span[:, 0], np.ones(1, dtype=np.int8), codes, one.copy())

    from driftd.kernels._resident import release_llvm_pages

    release_llvm_pages()
    return time.perf_counter() - t0


__all__ = ["warm_up"]

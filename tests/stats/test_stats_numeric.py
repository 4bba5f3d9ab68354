"""Numeric kernels vs their NumPy twins, and numeric drift tests vs scipy.

Statistics must agree with scipy to 1e-9 (relative, with a small absolute floor only where a
statistic is a difference of large terms); p-values likewise, relative where they are tiny.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import special as sp
from scipy import stats as ss
from scipy.stats._ksstats import kolmogn as scipy_kolmogn

from driftd.kernels import binning, ring, special, twosample
from driftd.reference.features import (
    FloatArray,
    NumericReference,
    build_numeric,
    numeric_from_sample,
)
from driftd.stats import get_test

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------ strategies

_TIED = st.integers(-3, 3).map(float)
_WIDE = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
_HUGE = st.floats(-1e300, 1e300, allow_nan=False, allow_infinity=False)
_TINY = st.sampled_from([0.0, 5e-324, -5e-324, 1e-300, -1e-300, 2.5e-310])


def samples(min_size: int = 1, max_size: int = 40) -> st.SearchStrategy[FloatArray]:
    """Tied, ordinary, extreme-magnitude, subnormal or constant samples."""
    size = st.integers(min_size, max_size)
    return st.one_of(
        arrays(np.float64, size, elements=_TIED),
        arrays(np.float64, size, elements=_WIDE),
        arrays(np.float64, size, elements=_HUGE),
        arrays(np.float64, size, elements=_TINY),
        st.tuples(size, _WIDE).map(lambda t: np.full(t[0], t[1], dtype=np.float64)),
    )


def pairs(
    min_size: int = 1, max_size: int = 40
) -> st.SearchStrategy[tuple[FloatArray, FloatArray]]:
    """Two independent samples, or two halves of one (same scale, shared ties)."""
    return st.one_of(
        st.tuples(samples(min_size, max_size), samples(min_size, max_size)),
        samples(2 * min_size, 2 * max_size).map(lambda a: (a[: len(a) // 2], a[len(a) // 2 :])),
    )


def make_ref(sample: FloatArray) -> NumericReference:
    """Like ``build_numeric`` but tolerant of 1e300-scale values (whose std overflows)."""
    with np.errstate(all="ignore"):
        mean = float(np.mean(sample)) if sample.size else 0.0
        std = float(np.std(sample)) if sample.size else 0.0
    return numeric_from_sample(
        sample,
        count=int(sample.size),
        missing=0,
        mean=mean,
        std=std,
        lo=float(sample.min()) if sample.size else 0.0,
        hi=float(sample.max()) if sample.size else 0.0,
    )


def norm_scale(std: float) -> float:
    return std if std > 0 and math.isfinite(std) else 1e-3


def close(ours: float, theirs: float, rtol: float = 1e-9, atol: float = 0.0) -> bool:
    if math.isnan(theirs):
        return math.isnan(ours)
    if math.isinf(theirs):
        return ours == theirs
    return abs(ours - theirs) <= atol + rtol * abs(theirs)


def quiet(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    """scipy's anderson_ksamp warns when it caps the p-value; pytest runs warnings-as-errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# ------------------------------------------------------------------ kernels vs twins


@SETTINGS
@given(pairs(1, 60))
def test_twosample_kernels_match_numpy_twins(ab: tuple[FloatArray, FloatArray]) -> None:
    a, b = np.sort(ab[0]), np.sort(ab[1])
    assert twosample.ks_statistic(a, b) == twosample.ks_statistic_np(a, b)
    assert close(twosample.wasserstein(a, b), twosample.wasserstein_np(a, b), 1e-12)
    assert close(twosample.energy(a, b), twosample.energy_np(a, b), 1e-12)
    assert close(twosample.cvm_u(a, b), twosample.cvm_u_np(a, b), 1e-13)
    assert close(twosample.cvm_statistic(a, b), twosample.cvm_statistic_np(a, b), 1e-12, 1e-12)
    assert close(twosample.ad_midrank_a2kn(a, b), twosample.ad_midrank_a2kn_np(a, b), 1e-12)


@SETTINGS
@given(pairs(1, 30))
def test_twosample_kernels_ignore_trailing_nan(ab: tuple[FloatArray, FloatArray]) -> None:
    a, b = np.sort(ab[0]), np.sort(ab[1])
    an = np.concatenate([a, [np.nan, np.nan]])
    bn = np.concatenate([b, [np.nan]])
    for fn in (
        twosample.ks_statistic,
        twosample.wasserstein,
        twosample.energy,
        twosample.cvm_u,
        twosample.ad_midrank_a2kn,
    ):
        x, y = fn(a, b), fn(an, bn)
        assert (math.isnan(x) and math.isnan(y)) or x == y


@SETTINGS
@given(samples(1, 80), _WIDE, st.data())
def test_gallop_left_matches_searchsorted(x: FloatArray, v: float, data: st.DataObject) -> None:
    x = np.sort(x)
    below = int(np.searchsorted(x, v, side="left"))
    if below == 0:
        return  # precondition x[lo] < v cannot hold
    lo = data.draw(st.integers(0, below - 1))
    hi = data.draw(st.integers(lo + 1, x.size))
    expect = lo + int(np.searchsorted(x[lo:hi], v, side="left"))
    assert twosample.gallop_left(x, v, lo, hi) == expect


def test_twosample_kernels_empty_is_nan() -> None:
    e = np.zeros(0)
    one = np.array([1.0])
    for fn in (twosample.ks_statistic, twosample.wasserstein, twosample.energy, twosample.cvm_u):
        assert math.isnan(fn(e, one)) and math.isnan(fn(one, e))
        assert math.isnan(fn(np.array([np.nan]), one))
    assert math.isnan(twosample.ad_midrank_a2kn(np.ones(3), np.ones(2)))  # one distinct value


@SETTINGS
@given(
    samples(0, 80),
    st.lists(_WIDE, min_size=0, max_size=150, unique=True).map(sorted),
    st.booleans(),
)
def test_bin_counts_match_twin_and_reference_convention(
    values: FloatArray, interior: list[float], with_nan: bool
) -> None:
    edges = np.array([-np.inf, *interior, np.inf])
    if with_nan:
        values = np.concatenate([values, [np.nan]])
    expect = binning.bin_counts_np(values, edges)
    assert np.array_equal(binning.bin_counts(values, edges), expect)
    assert np.array_equal(binning.bin_counts_sorted(np.sort(values), edges), expect)
    finite = values[~np.isnan(values)]
    # the convention of driftd.reference.features: edges[i] <= x < edges[i+1]
    idx = np.searchsorted(edges[1:-1], finite, side="right")
    assert np.array_equal(expect, np.bincount(idx, minlength=len(edges) - 1))


def test_bin_counts_edge_values_go_right() -> None:
    edges = np.array([-np.inf, 0.0, 1.0, np.inf])
    v = np.array([-1.0, 0.0, 0.5, 1.0, np.inf, -np.inf])
    assert binning.bin_counts(v, edges).tolist() == [2, 2, 2]
    many = np.concatenate([[-np.inf], np.arange(200.0), [np.inf]])
    assert binning.bin_counts(np.array([0.0, 199.0, 250.0, -5.0]), many)[[0, 1, 200]].tolist() == [
        1,
        1,
        2,
    ]


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 12),
    st.integers(1, 4),
    st.lists(st.integers(0, 30), min_size=1, max_size=6),
    st.integers(0, 50),
)
def test_ring_append_matches_twin(w: int, nf: int, batches: list[int], head0: int) -> None:
    rng = np.random.default_rng(w * 31 + nf)
    a = rng.normal(size=(w, nf))
    b = a.copy()
    ha = hb = head0 % w
    for n in batches:
        block = rng.normal(size=(n, nf))
        ha = ring.ring_append(a, ha, block)
        hb = ring.ring_append_np(b, hb, block)
        assert ha == hb
        assert np.array_equal(a, b)


# ------------------------------------------------------------------ tests vs scipy


def _run(name: str, ref_sample: FloatArray, cur: FloatArray):  # type: ignore[no-untyped-def]
    return get_test(name).numeric(make_ref(ref_sample), cur)


@SETTINGS
@given(pairs(1, 60))
def test_ks_matches_scipy(ab: tuple[FloatArray, FloatArray]) -> None:
    x, y = ab
    r = _run("ks", x, y)
    s = quiet(ss.ks_2samp, x, y)
    assert close(r.statistic, float(s.statistic), 1e-9)
    assert r.p_value is not None and close(r.p_value, float(s.pvalue), 1e-9, 1e-300)


@pytest.mark.parametrize(
    ("n1", "n2", "shift"),
    [
        (10_001, 3, 0.0),
        (12_000, 57, 0.3),
        (12_000, 140, 0.05),
        (10_500, 141, 0.2),
        (20_000, 2_000, 0.02),
        (20_000, 9_000, 0.1),
        (11_000, 11_000, 0.0),
        (15_000, 800, 1.0),
    ],
)
def test_ks_asymptotic_branch_matches_scipy(n1: int, n2: int, shift: float) -> None:
    rng = np.random.default_rng(n1 + n2)
    x = rng.normal(size=n1)
    y = rng.normal(shift, 1.0, size=n2)
    r = _run("ks", x, y)
    s = ss.ks_2samp(x, y)
    assert close(r.statistic, float(s.statistic), 1e-9)
    assert r.p_value is not None and close(r.p_value, float(s.pvalue), 1e-9, 1e-300)


@pytest.mark.parametrize(
    ("n1", "n2", "shift"),
    [
        (1000, 5000, 0.1),
        (1000, 5000, 0.6),
        (1000, 5000, 8.0),
        (3000, 2000, 0.05),
        (777, 10_000, 1.0),
    ],
)
def test_ks_exact_branch_large_samples_match_scipy(n1: int, n2: int, shift: float) -> None:
    rng = np.random.default_rng(n1 * 7 + n2)
    x = rng.normal(size=n1)
    y = rng.normal(shift, 1.0, size=n2)
    r = _run("ks", x, y)
    s = quiet(ss.ks_2samp, x, y)
    assert close(r.statistic, float(s.statistic), 1e-9)
    # below ~1e-300 only the absolute difference is meaningful (p underflows)
    assert r.p_value is not None and close(r.p_value, float(s.pvalue), 1e-9, 1e-300)


@SETTINGS
@given(pairs(1, 60))
def test_wasserstein_energy_match_scipy(ab: tuple[FloatArray, FloatArray]) -> None:
    x, y = ab
    w = _run("wasserstein", x, y)
    assert w.p_value is None
    assert close(w.statistic, float(ss.wasserstein_distance(x, y)), 1e-9)
    e = _run("energy", x, y)
    assert close(e.statistic, float(ss.energy_distance(x, y)), 1e-9)
    ref = make_ref(x)
    wn = get_test("wasserstein_norm").numeric(ref, y)
    assert close(wn.statistic, float(ss.wasserstein_distance(x, y)) / norm_scale(ref.std), 1e-9)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pairs(2, 30))
def test_cvm_matches_scipy(ab: tuple[FloatArray, FloatArray]) -> None:
    x, y = ab
    r = _run("cvm", x, y)
    s = ss.cramervonmises_2samp(x, y)
    # T = U/(mnN) - (4mn-1)/(6N): a difference of O(mn/N) terms, hence the absolute floor
    assert close(r.statistic, float(s.statistic), 1e-9, 1e-12 * (1 + len(x) * len(y)))
    assert r.p_value is not None and close(r.p_value, float(s.pvalue), 1e-9, 1e-12)


@pytest.mark.parametrize(("n1", "n2"), [(21, 5), (300, 200), (5000, 3000), (20, 20), (3, 2)])
def test_cvm_both_p_value_branches_match_scipy(n1: int, n2: int) -> None:
    rng = np.random.default_rng(n1 * n2)
    for shift in (0.0, 0.4, 1.5):
        x = rng.normal(size=n1)
        y = np.round(rng.normal(shift, 1.0, size=n2), 1)
        r = _run("cvm", x, y)
        s = ss.cramervonmises_2samp(x, y)
        assert close(r.statistic, float(s.statistic), 1e-9, 1e-12 * n1 * n2)
        assert r.p_value is not None and close(r.p_value, float(s.pvalue), 1e-9, 1e-12)


@SETTINGS
@given(pairs(1, 50))
def test_ad_matches_scipy(ab: tuple[FloatArray, FloatArray]) -> None:
    x, y = ab
    r = _run("ad", x, y)
    pooled = np.concatenate([x, y])
    if pooled.size < 4 or np.unique(pooled).size < 2:
        assert math.isnan(r.statistic) and r.p_value is None  # scipy raises or returns nan
        return
    s = quiet(ss.anderson_ksamp, [x, y], variant="midrank")
    assert close(r.statistic, float(s.statistic), 1e-9, 1e-11)
    assert r.p_value is not None and close(r.p_value, float(s.pvalue), 1e-9)


@pytest.mark.parametrize(("n1", "n2"), [(4000, 3000), (100, 7), (12_000, 5000)])
def test_ad_large_samples_match_scipy(n1: int, n2: int) -> None:
    rng = np.random.default_rng(n1)
    for shift in (0.0, 0.05, 0.5):
        x = rng.normal(size=n1)
        y = rng.normal(shift, 1.0, size=n2)
        r = _run("ad", x, y)
        s = quiet(ss.anderson_ksamp, [x, y], variant="midrank")
        assert close(r.statistic, float(s.statistic), 1e-9, 1e-11)
        assert r.p_value is not None and close(r.p_value, float(s.pvalue), 1e-9)


@SETTINGS
@given(samples(2, 50), samples(2, 50))
def test_mean_shift_tests_match_welch(x: FloatArray, y: FloatArray) -> None:
    ref = make_ref(x)
    r = get_test("t_test").numeric(ref, y)
    m = get_test("mean_diff").numeric(ref, y)
    assert r == m or (math.isnan(r.statistic) and math.isnan(m.statistic))
    n, nr = y.size, ref.count
    with np.errstate(all="ignore"):
        mean_y = float(np.mean(y))
        v1 = float(np.var(y, ddof=1))
        v2 = ref.std * ref.std * nr / (nr - 1)
    if not all(math.isfinite(v) for v in (v1, v2, mean_y - ref.mean)):
        assert math.isnan(r.statistic) and r.p_value is None
        return
    scale = norm_scale(ref.std)
    # the mean of the window is summed in sorted order here: allow for that rounding
    atol = 1e-13 * (float(np.abs(y).max()) + abs(ref.mean)) / scale + 1e-290
    assert close(r.statistic, abs(mean_y - ref.mean) / scale, 1e-9, atol)
    # scipy squares v/n for the Welch df: compare where those squares are representable
    representable = all(v == 0 or 1e-150 < v < 1e150 for v in (v1 / n, v2 / nr))
    if v1 / n + v2 / nr > 0 and representable:
        with np.errstate(all="ignore"):
            s = ss.ttest_ind_from_stats(
                mean_y, math.sqrt(v1), n, ref.mean, math.sqrt(v2), nr, equal_var=False
            )
        if math.isfinite(float(s.pvalue)):
            assert r.p_value is not None and close(r.p_value, float(s.pvalue), 1e-8, 1e-300)


# ------------------------------------------------------------------ special functions


@pytest.mark.parametrize("n", [2, 3, 7, 50, 140, 141, 1000, 20_000, 100_000])
def test_smirnov_and_kolmogn_match_scipy(n: int) -> None:
    rng = np.random.default_rng(n)
    k = 25 if n <= 1000 else 6  # scipy itself takes ~0.1 s per point at n = 1e5
    xs = np.r_[rng.uniform(0, 1, k), rng.uniform(0, 4 / math.sqrt(n), k), 1 / n, 0.5, 1 - 1 / n]
    for x in xs:
        assert close(special.smirnov_sf(n, float(x)), float(sp.smirnov(n, x)), 1e-9, 1e-300)
        ours = special.kolmogn_sf(n, float(x))
        assert close(ours, float(scipy_kolmogn(n, x, cdf=False)), 1e-9, 1e-300)


@SETTINGS
@given(st.integers(1, 40), st.integers(1, 40), st.data())
def test_ks_exact_p_matches_scipy_on_lattice(n1: int, n2: int, data: st.DataObject) -> None:
    # samples realising every D = h / lcm are awkward to build: compare the null distribution
    # through scipy's (private) exact routine, including its fall-back to the asymptotic one
    # when rounding pushes the exact probability above 1.
    from scipy.stats._stats_py import _attempt_exact_2kssamp

    g = math.gcd(n1, n2)
    lcm = n1 * n2 // g
    h = data.draw(st.integers(0, lcm))
    ok, d, p = _attempt_exact_2kssamp(n1, n2, g, h / lcm, "two-sided")
    if not ok:
        m, n = sorted([float(n1), float(n2)], reverse=True)
        p = min(max(float(ss.kstwo.sf(d, np.round(m * n / (m + n)))), 0.0), 1.0)
    ours_d, ours_p = special.ks_2samp_pvalue(n1, n2, h / lcm)
    assert ours_d == d
    assert close(ours_p, float(p), 1e-12, 1e-300)


def test_chi2_t_normal_tails_match_scipy() -> None:
    rng = np.random.default_rng(7)
    for df in (1, 2, 3, 7, 30, 200, 2000):
        for x in np.r_[rng.uniform(0, 3 * df, 30), df * rng.uniform(3, 15, 5)]:
            assert close(special.chi2_sf(float(x), df), float(ss.chi2.sf(x, df)), 1e-9, 1e-300)
    for df in (0.8, 1.0, 2.5, 10.0, 1e3, 1e5, 1e6):
        for t in np.r_[rng.uniform(0, 6, 30), rng.uniform(6, 30, 5)]:
            expect = 2 * float(ss.t.sf(t, df))
            if expect > 1e-290:
                assert close(special.t_sf_two_sided(float(t), df), expect, 1e-9)
    for z in rng.uniform(0, 37, 50):
        assert close(special.norm_sf_two_sided(float(z)), 2 * float(ss.norm.sf(z)), 1e-12)


def test_bessel_and_cvm_limit_match_scipy() -> None:
    from scipy.stats._hypotests import _cdf_cvm_inf

    for z in np.logspace(-4, 2.5, 60):
        assert close(special._kve(0.25, float(z)), float(sp.kve(0.25, z)), 1e-12)
    for x in np.r_[np.linspace(0.003, 3, 80)]:
        assert close(special.cvm_inf_cdf(float(x)), float(_cdf_cvm_inf(x)), 1e-10, 1e-14)


def test_reference_sample_is_used_even_with_subsampled_reference() -> None:
    rng = np.random.default_rng(3)
    full = rng.normal(size=2000)
    ref = build_numeric(full, max_raw=500)
    cur = rng.normal(size=300)
    r = get_test("ks").numeric(ref, cur)
    s = ss.ks_2samp(ref.sample, cur)
    assert close(r.statistic, float(s.statistic)) and r.p_value is not None
    assert close(r.p_value, float(s.pvalue))
    # numeric_from_sample keeps the sample sorted and finite: the tests rely on it
    again = numeric_from_sample(
        ref.sample[::-1].copy(), count=2000, missing=0, mean=0.0, std=1.0, lo=-5.0, hi=5.0
    )
    assert np.array_equal(again.sample, ref.sample)

"""Binned divergences and categorical tests vs textbook formulas and scipy."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats as ss
from scipy.spatial.distance import jensenshannon
from scipy.special import rel_entr

from driftd.kernels import divergence as dv
from driftd.reference.features import (
    CategoricalReference,
    FloatArray,
    IntArray,
    bin_counts,
    build_numeric,
)
from driftd.stats import get_test

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_W = st.one_of(st.just(0.0), st.floats(1e-9, 1e3, allow_nan=False, allow_infinity=False))


def weight_pairs() -> st.SearchStrategy[tuple[FloatArray, FloatArray]]:
    return st.integers(1, 12).flatmap(
        lambda n: st.tuples(arrays(np.float64, n, elements=_W), arrays(np.float64, n, elements=_W))
    )


def count_vectors(k: int) -> st.SearchStrategy[IntArray]:
    el = st.one_of(st.just(0), st.integers(0, 40), st.integers(0, 100_000))
    return arrays(np.int64, k, elements=el)


def close(a: float, b: float, rtol: float = 1e-9, atol: float = 1e-12) -> bool:
    if math.isnan(b):
        return math.isnan(a)
    return abs(a - b) <= atol + rtol * abs(b)


def shares(w: FloatArray) -> FloatArray:
    return w / w.sum()


# ------------------------------------------------------------------ textbook formulas


def psi_textbook(p: FloatArray, q: FloatArray, eps: float = 1e-4) -> float:
    p = np.where(p == 0, eps, p)
    q = np.where(q == 0, eps, q)
    return float(sum((qi - pi) * math.log(qi / pi) for pi, qi in zip(p, q, strict=True)))


def kl_textbook(p: FloatArray, q: FloatArray, eps: float = 1e-4) -> float:
    p = np.where(p == 0, eps, p)
    q = np.where(q == 0, eps, q)
    return float(sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True)))


def js_divergence_scipy(p: FloatArray, q: FloatArray) -> float:
    """``scipy.spatial.distance.jensenshannon(p, q, base=2) ** 2``, computed as scipy does but
    without the square root."""
    pn, qn = p / p.sum(), q / q.sum()
    m = (pn + qn) / 2.0
    return float((rel_entr(pn, m).sum() + rel_entr(qn, m).sum()) / np.log(2.0) / 2.0)


def hellinger_textbook(p: FloatArray, q: FloatArray) -> float:
    return math.sqrt(max(1.0 - float(np.sum(np.sqrt(p * q))), 0.0))


@SETTINGS
@given(weight_pairs())
def test_divergence_kernels_match_twins_and_textbook(pq: tuple[FloatArray, FloatArray]) -> None:
    p, q = pq
    if p.sum() == 0 or q.sum() == 0:
        for fn in (dv.psi, dv.kl, dv.js_distance, dv.hellinger, dv.total_variation):
            assert math.isnan(fn(p, q))
        return
    ps, qs = shares(p), shares(q)
    assert close(dv.psi(p, q), dv.psi_np(p, q))
    assert close(dv.psi(p, q), psi_textbook(ps, qs), 1e-9, 1e-9)
    assert close(dv.kl(p, q), dv.kl_np(p, q))
    assert close(dv.kl(p, q), kl_textbook(ps, qs), 1e-9, 1e-9)
    js = dv.js_distance(p, q)
    assert close(js, dv.js_distance_np(p, q), 1e-9, 1e-7)
    # sqrt near 0 amplifies rounding: compare squares there, against scipy's divergence before
    # its square root (jensenshannon() itself warns when rounding makes that a tiny negative)
    assert close(js**2, js_divergence_scipy(p, q), 1e-9, 1e-14)
    assert 0.0 <= js <= 1.0 + 1e-12
    h = dv.hellinger(p, q)
    assert close(h, dv.hellinger_np(p, q))
    assert close(h**2, hellinger_textbook(ps, qs) ** 2, 1e-9, 1e-14)
    tv = dv.total_variation(p, q)
    assert close(tv, dv.total_variation_np(p, q))
    assert close(tv, 0.5 * float(np.abs(ps - qs).sum()))
    assert 0.0 <= h <= 1.0 + 1e-12 and 0.0 <= tv <= 1.0 + 1e-12


def test_divergences_of_identical_distributions_are_zero() -> None:
    p = np.array([0.2, 0.0, 0.5, 0.3])
    for fn in (dv.psi, dv.kl, dv.js_distance, dv.hellinger, dv.total_variation):
        assert fn(p, p * 7) == 0.0
    assert dv.js_distance(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == 1.0
    assert dv.hellinger(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == 1.0


# ------------------------------------------------------------------ numeric binned tests


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, st.integers(1, 200), elements=st.floats(-50, 50)),
    arrays(np.float64, st.integers(1, 200), elements=st.floats(-60, 60)),
    st.integers(2, 20),
)
def test_numeric_binned_tests_use_reference_bins(x: FloatArray, y: FloatArray, n_bins: int) -> None:
    ref = build_numeric(x, n_bins=n_bins)
    q = bin_counts(y, ref.edges) / y.size
    p = ref.probs
    assert close(get_test("psi").numeric(ref, y).statistic, psi_textbook(p, q), 1e-9, 1e-9)
    assert close(get_test("kl").numeric(ref, y).statistic, kl_textbook(p, q), 1e-9, 1e-9)
    js = get_test("js").numeric(ref, y).statistic
    assert close(js**2, js_divergence_scipy(p, q), 1e-9, 1e-14)
    tv = get_test("tv").numeric(ref, y).statistic
    assert close(tv, 0.5 * float(np.abs(p - q).sum()))
    h = get_test("hellinger").numeric(ref, y).statistic
    assert close(h**2, hellinger_textbook(p, q) ** 2, 1e-9, 1e-14)


# ------------------------------------------------------------------ categorical tests


def cat_ref(counts: IntArray) -> CategoricalReference:
    return CategoricalReference(
        count=int(counts.sum()),
        missing=0,
        categories=tuple(f"c{i}" for i in range(len(counts))),
        counts=counts.astype(np.int64),
    )


@SETTINGS
@given(st.integers(1, 8).flatmap(lambda k: st.tuples(count_vectors(k), count_vectors(k + 1))))
def test_chi2_matches_scipy_chi2_contingency(rc: tuple[IntArray, IntArray]) -> None:
    ref_counts, cur = rc
    r = get_test("chi2").categorical(cat_ref(ref_counts), cur)
    if ref_counts.sum() == 0 or cur.sum() == 0:
        assert math.isnan(r.statistic) and r.p_value is None
        return
    table = np.array([np.r_[ref_counts, 0], cur])
    table = table[:, table.sum(axis=0) > 0]  # scipy rejects all-empty columns
    s = ss.chi2_contingency(table)
    assert close(r.statistic, float(s.statistic), 1e-9, 1e-9)
    assert r.p_value is not None and close(r.p_value, float(s.pvalue), 1e-9, 1e-300)
    ks, kc = dv.chi2_contingency_2xk(np.r_[ref_counts, 0], cur, True)
    ns, nc = dv.chi2_contingency_2xk_np(np.r_[ref_counts, 0], cur, True)
    assert kc == nc == int(s.dof) and close(ks, ns, 1e-12, 1e-12)


def test_chi2_counts_unseen_values_as_drift() -> None:
    ref = cat_ref(np.array([500, 300, 200]))
    same = get_test("chi2").categorical(ref, np.array([50, 30, 20, 0]))
    unseen = get_test("chi2").categorical(ref, np.array([45, 27, 18, 10]))
    assert same.p_value is not None and unseen.p_value is not None
    assert same.p_value > 0.9 and unseen.p_value < 1e-6
    assert get_test("chi2").drifted(unseen, 0.05) and not get_test("chi2").drifted(same, 0.05)


@SETTINGS
@given(st.integers(1, 4).flatmap(lambda k: st.tuples(count_vectors(k), count_vectors(k + 1))))
def test_z_test_textbook(rc: tuple[IntArray, IntArray]) -> None:
    ref_counts, cur = rc
    r = get_test("z").categorical(cat_ref(ref_counts), cur)
    if ref_counts.sum() == 0 or cur.sum() == 0:
        assert math.isnan(r.statistic) and r.p_value is None
        return
    i = int(np.argmax(ref_counts))
    n1, n2 = ref_counts.sum(), cur.sum()
    p1, p2 = ref_counts[i] / n1, cur[i] / n2
    pooled = (ref_counts[i] + cur[i]) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        assert r.statistic == 0.0 and r.p_value == 1.0
        return
    z = (p2 - p1) / se
    assert close(r.statistic, abs(z))
    assert r.p_value is not None and close(r.p_value, 2 * float(ss.norm.sf(abs(z))), 1e-9, 1e-300)


def test_categorical_binned_tests_count_unseen_bucket() -> None:
    ref = cat_ref(np.array([60, 40]))
    cur = np.array([30, 20, 50])  # half the window never seen in the reference
    p = np.array([0.6, 0.4, 0.0])
    q = cur / cur.sum()
    assert close(get_test("tv").categorical(ref, cur).statistic, 0.5)
    assert close(get_test("js").categorical(ref, cur).statistic, float(jensenshannon(p, q, base=2)))
    assert close(get_test("psi").categorical(ref, cur).statistic, psi_textbook(p, q))
    assert close(get_test("kl").categorical(ref, cur).statistic, kl_textbook(p, q))
    assert close(get_test("hellinger").categorical(ref, cur).statistic, hellinger_textbook(p, q))

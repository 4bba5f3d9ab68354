"""Contract every registered drift test honours, and the registry / auto-selection rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

import driftd.stats as stats
from driftd.reference.features import (
    CategoricalReference,
    NumericReference,
    build_categorical,
    build_numeric,
    numeric_from_sample,
)
from driftd.stats import DriftTest, TestResult

ALL = stats.test_names()
NUMERIC = stats.test_names("numeric")
CATEGORICAL = stats.test_names("categorical")

EXPECTED = {
    "ks",
    "cvm",
    "ad",
    "t_test",
    "mean_diff",
    "wasserstein",
    "wasserstein_norm",
    "energy",
    "psi",
    "kl",
    "js",
    "hellinger",
    "tv",
    "chi2",
    "z",
}


def numeric_ref(n: int = 500, seed: int = 0) -> NumericReference:
    return build_numeric(np.random.default_rng(seed).normal(size=n))


def any_numeric_ref(sample: np.ndarray) -> NumericReference:
    """build_numeric, but tolerant of 1e300-scale values (their std overflows to inf)."""
    with np.errstate(all="ignore"):
        mean, std = float(np.mean(sample)), float(np.std(sample))
    return numeric_from_sample(
        sample,
        count=sample.size,
        missing=0,
        mean=mean,
        std=std,
        lo=float(sample.min()),
        hi=float(sample.max()),
    )


def empty_numeric_ref() -> NumericReference:
    return build_numeric(np.array([], dtype=np.float64))


def cat_ref(labels: str = "aaabbc" * 50) -> CategoricalReference:
    return build_categorical(list(labels))


def check_result(test: DriftTest, r: TestResult) -> None:
    assert isinstance(r, TestResult)
    assert isinstance(r.statistic, float)
    assert r.p_value is None or isinstance(r.p_value, float)
    if math.isnan(r.statistic):  # documented "undefined": no p-value, never drifted
        assert r.p_value is None
        assert not test.drifted(r, test.default_threshold)
        return
    assert math.isfinite(r.statistic)
    if test.threshold_kind == "p_value":
        assert r.p_value is not None and 0.0 <= r.p_value <= 1.0
        for thr in (1e-3, 0.05, 0.5):
            assert test.drifted(r, thr) == (r.p_value < thr)
    else:
        for thr in (0.0, 0.1, 1.0):
            assert test.drifted(r, thr) == (r.statistic > thr)


def test_registry_holds_the_documented_tests() -> None:
    assert set(ALL) == EXPECTED
    assert set(NUMERIC) | set(CATEGORICAL) == EXPECTED
    assert {"psi", "js", "hellinger", "kl", "tv"} <= set(NUMERIC) & set(CATEGORICAL)
    with pytest.raises(KeyError, match="known tests: ad, chi2"):
        stats.get_test("nope")
    doc = stats.__doc__ or ""
    for name in ALL:  # the README table lists every test with its default threshold
        t = stats.get_test(name)
        row = next(line for line in doc.splitlines() if line.startswith(f"| `{name}` "))
        assert f"| {t.default_threshold:<7} |" in row, row


@pytest.mark.parametrize("name", ALL)
def test_class_attributes(name: str) -> None:
    t = stats.get_test(name)
    assert t.name == name == name.lower()
    assert t.kinds and t.kinds <= {"numeric", "categorical"}
    assert t.threshold_kind in ("p_value", "statistic")
    assert t.default_threshold > 0
    if t.threshold_kind == "p_value":
        assert t.default_threshold < 1


@pytest.mark.parametrize("name", NUMERIC)
def test_numeric_contract(name: str) -> None:
    t = stats.get_test(name)
    rng = np.random.default_rng(1)
    ref = numeric_ref()
    cur = rng.normal(0.2, 1.0, size=300)
    r = t.numeric(ref, cur)
    check_result(t, r)
    assert not math.isnan(r.statistic)
    # empty window, empty reference, both
    for rr in (
        t.numeric(ref, np.array([])),
        t.numeric(empty_numeric_ref(), cur),
        t.numeric(empty_numeric_ref(), np.array([])),
    ):
        check_result(t, rr)
        assert math.isnan(rr.statistic) and rr.p_value is None
    # NaN / inf in the window are dropped, never crash
    dirty = np.concatenate([cur[:150], [np.nan, np.inf, -np.inf], cur[150:], [np.nan]])
    assert t.numeric(ref, dirty) == r
    check_result(t, t.numeric(ref, np.array([np.nan, np.nan])))
    # the window is not modified, order does not matter, and sharing a sort gives the same
    before = dirty.copy()
    t.numeric(ref, dirty)
    assert np.array_equal(before, dirty, equal_nan=True)
    assert t.numeric(ref, cur[::-1].copy()) == r
    assert stats.evaluate_numeric([t], ref, cur) == [r]
    # tiny, constant, tied and extreme inputs: a result, never an exception
    for sample in (
        np.array([1.0]),
        np.array([1.0, 2.0]),
        np.full(5, 3.0),
        np.array([0.0, 0.0, 1.0, 1.0, 1.0]),
        np.array([1e300, -1e300, 0.0]),
    ):
        for cur_s in (sample, np.full(3, 3.0), np.array([5e-324])):
            check_result(t, t.numeric(any_numeric_ref(sample), cur_s))
    # identical constant samples: no drift
    const = build_numeric(np.full(50, 2.0))
    assert not t.drifted(t.numeric(const, np.full(40, 2.0)), t.default_threshold)
    # a large shift is detected with the default threshold
    big = t.numeric(ref, rng.normal(3.0, 1.0, size=300))
    assert t.drifted(big, t.default_threshold)


@pytest.mark.parametrize("name", CATEGORICAL)
def test_categorical_contract(name: str) -> None:
    t = stats.get_test(name)
    ref = cat_ref()
    k = len(ref.categories)
    cur = np.array([140, 110, 50, 0], dtype=np.int64)
    r = t.categorical(ref, cur)
    check_result(t, r)
    assert not math.isnan(r.statistic)
    for rr in (
        t.categorical(ref, np.zeros(k + 1, dtype=np.int64)),
        t.categorical(build_categorical([]), np.zeros(1, dtype=np.int64)),
        t.categorical(build_categorical([]), np.array([7], dtype=np.int64)),
    ):
        check_result(t, rr)
        assert math.isnan(rr.statistic) and rr.p_value is None
    with pytest.raises(ValueError, match="expected 4 current counts"):
        t.categorical(ref, np.array([1, 2, 3]))
    # a single category on both sides
    one = build_categorical(["x"] * 20)
    check_result(t, t.categorical(one, np.array([10, 0])))
    assert not t.drifted(t.categorical(one, np.array([10, 0])), t.default_threshold)
    # only unseen values in the window: drift evidence, not dropped
    unseen = t.categorical(ref, np.array([0, 0, 0, 300], dtype=np.int64))
    check_result(t, unseen)
    assert t.drifted(unseen, t.default_threshold)
    # a different mix is detected
    check_result(t, t.categorical(ref, np.array([10, 10, 280, 0])))
    assert t.drifted(t.categorical(ref, np.array([10, 10, 280, 0])), t.default_threshold)


@pytest.mark.parametrize("name", sorted(set(ALL) - set(NUMERIC)))
def test_numeric_only_where_declared(name: str) -> None:
    with pytest.raises(NotImplementedError):
        stats.get_test(name).numeric(numeric_ref(), np.ones(3))


@pytest.mark.parametrize("name", sorted(set(ALL) - set(CATEGORICAL)))
def test_categorical_only_where_declared(name: str) -> None:
    ref = cat_ref()
    with pytest.raises(NotImplementedError):
        stats.get_test(name).categorical(ref, np.ones(len(ref.categories) + 1, dtype=np.int64))


def test_drifted_is_false_for_undefined_results() -> None:
    for name in ALL:
        t = stats.get_test(name)
        assert not t.drifted(stats.UNDEFINED, t.default_threshold)
        assert not t.drifted(TestResult(math.nan, math.nan), 0.5)


# ------------------------------------------------------------------ automatic selection


def test_auto_select_rule() -> None:
    small = numeric_ref(1000)
    large = numeric_ref(1001)
    assert stats.auto_select("numeric", small) == "ks"
    assert stats.auto_select("numeric", large) == "wasserstein_norm"
    assert stats.get_test("wasserstein_norm").default_threshold == 0.1
    binary_small = build_categorical(["y", "n"] * 500)
    binary_large = build_categorical(["y", "n"] * 501)
    assert stats.auto_select("categorical", binary_small) == "z"
    assert stats.auto_select("categorical", binary_large) == "js"
    multi_small = build_categorical(list("abc") * 333)
    multi_large = build_categorical(list("abc") * 334)
    assert stats.auto_select("categorical", multi_small) == "chi2"
    assert stats.auto_select("categorical", multi_large) == "js"
    assert stats.get_test("js").default_threshold == 0.1
    # the count of all reference values decides, not the stored sample
    sub = build_numeric(np.arange(5000.0), max_raw=100)
    assert sub.sample.size == 100 and stats.auto_select("numeric", sub) == "wasserstein_norm"
    with pytest.raises(TypeError):
        stats.auto_select("numeric", binary_small)
    with pytest.raises(ValueError):
        stats.auto_select("text", small)  # type: ignore[arg-type]
    for kind, ref in (("numeric", small), ("categorical", multi_small)):
        assert kind in stats.get_test(stats.auto_select(kind, ref)).kinds  # type: ignore[arg-type]


def test_kernels_package_is_cheap_and_warm_up_runs() -> None:
    import subprocess
    import sys

    code = "import sys, driftd.kernels; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    from driftd.kernels import warm_up

    assert warm_up() >= 0.0

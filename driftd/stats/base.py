"""Drift-test API and the registry tests are looked up in by their config name.

A test compares the current window of one feature with that feature's reference summary
(:mod:`driftd.reference.features`) and returns a :class:`TestResult`. Tests are stateless.

Undefined results. When a test cannot say anything (empty current window, empty reference,
too few values for the statistic, a sample with a single distinct value where the statistic
divides by its spread) it returns :data:`UNDEFINED` — ``statistic`` NaN and ``p_value`` None —
and :meth:`DriftTest.drifted` is ``False`` for it. Tests never raise on data; they raise only
on misuse (wrong kind, count vector of the wrong length).

Missing values. The caller removes missing values (and counts them as a data-quality
statistic). Numeric tests still drop NaN and ±inf from ``cur`` defensively; the reference's
``sample`` is trusted to be sorted and finite (that is the profile builder's contract).
"""

from __future__ import annotations

import math
from abc import ABC
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal, TypeVar

import numpy as np

from driftd.reference.features import (
    CategoricalReference,
    FloatArray,
    IntArray,
    NumericReference,
)
from driftd.types import DRIFT_TEST_NAMES

Kind = Literal["numeric", "categorical"]
ThresholdKind = Literal["p_value", "statistic"]
KINDS: frozenset[str] = frozenset({"numeric", "categorical"})


@dataclass(frozen=True, slots=True)
class TestResult:
    """Outcome of one test: the statistic and, for hypothesis tests, its p-value."""

    __test__: ClassVar[bool] = False  # not a pytest test class

    statistic: float
    p_value: float | None

    @property
    def defined(self) -> bool:
        return not math.isnan(self.statistic)


UNDEFINED = TestResult(math.nan, None)


class DriftTest(ABC):
    """A drift test, configured by :attr:`name`.

    Subclasses set the class variables and override :meth:`numeric_sorted` and/or
    :meth:`categorical` for the kinds listed in :attr:`kinds`.
    """

    __test__: ClassVar[bool] = False

    name: ClassVar[str]
    kinds: ClassVar[frozenset[str]]  # subset of {"numeric", "categorical"}
    threshold_kind: ClassVar[ThresholdKind]  # drifted iff p < thr, or statistic > thr
    default_threshold: ClassVar[float]
    description: ClassVar[str] = ""

    def numeric(self, ref: NumericReference, cur: FloatArray) -> TestResult:
        """Compare the current window ``cur`` (unsorted, may be empty) with ``ref``."""
        return self.numeric_sorted(ref, prepare_current(cur))

    def numeric_sorted(self, ref: NumericReference, cur_sorted: FloatArray) -> TestResult:
        """Same as :meth:`numeric` for a window already passed through
        :func:`prepare_current` (finite, ascending, float64, contiguous); lets several tests
        share one sort of the window."""
        raise NotImplementedError(f"test {self.name!r} does not apply to numeric features")

    def categorical(self, ref: CategoricalReference, cur_counts: IntArray) -> TestResult:
        """Compare current category counts (``len == len(ref.categories) + 1``, the last being
        values unseen in the reference) with ``ref``."""
        raise NotImplementedError(f"test {self.name!r} does not apply to categorical features")

    def drifted(self, result: TestResult, threshold: float) -> bool:
        """``p_value < threshold`` or ``statistic > threshold`` by :attr:`threshold_kind`;
        ``False`` for an undefined result."""
        if self.threshold_kind == "p_value":
            p = result.p_value
            return p is not None and not math.isnan(p) and p < threshold
        return bool(result.statistic > threshold)  # NaN compares False


def prepare_current(cur: FloatArray) -> FloatArray:
    """The current window as the numeric kernels want it: float64, finite values only,
    ascending, C-contiguous (a fresh array; the input is not modified)."""
    arr = np.asarray(cur, dtype=np.float64).ravel()
    if arr.size and not np.isfinite(arr).all():
        arr = arr[np.isfinite(arr)]
    return np.sort(arr)


def reference_sample(ref: NumericReference) -> FloatArray:
    """``ref.sample`` as a float64 C-contiguous array (no copy when it already is one)."""
    return np.ascontiguousarray(ref.sample, dtype=np.float64)


def categorical_vectors(
    ref: CategoricalReference, cur_counts: IntArray
) -> tuple[IntArray, IntArray] | None:
    """Aligned ``(ref_counts, cur_counts)`` of length ``k + 1`` (reference count 0 in the unseen
    bucket), or ``None`` when either side is empty. Raises ``ValueError`` on a wrong length."""
    k = len(ref.categories)
    cur = np.ascontiguousarray(cur_counts, dtype=np.int64)
    if cur.ndim != 1 or cur.shape[0] != k + 1:
        raise ValueError(
            f"expected {k + 1} current counts ({k} categories + unseen), got shape {cur.shape}"
        )
    refc = np.zeros(k + 1, dtype=np.int64)
    refc[:k] = np.asarray(ref.counts, dtype=np.int64)[:k]
    if refc.sum() <= 0 or cur.sum() <= 0:
        return None
    return refc, cur


# --------------------------------------------------------------------------- registry

_REGISTRY: dict[str, type[DriftTest]] = {}

T = TypeVar("T", bound=type[DriftTest])


def register(cls: T) -> T:
    """Class decorator: make a test available under ``cls.name``."""
    name = cls.name
    if name != name.lower() or not name:
        raise ValueError(f"test names are lower case and non-empty: {name!r}")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"test name {name!r} registered twice")
    if name not in DRIFT_TEST_NAMES:
        raise ValueError(f"add {name!r} to driftd.types.DriftTestName (what config accepts)")
    if not cls.kinds or not cls.kinds <= KINDS:
        raise ValueError(f"test {name!r}: kinds must be a non-empty subset of {sorted(KINDS)}")
    _REGISTRY[name] = cls
    return cls


def get_test(name: str) -> DriftTest:
    """The test registered under ``name``. Raises ``KeyError`` naming the known tests."""
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"unknown drift test {name!r}; known tests: {', '.join(sorted(_REGISTRY))}"
        ) from None
    return cls()


def test_names(kind: str | None = None) -> list[str]:
    """Sorted names of the registered tests, optionally only those applicable to ``kind``."""
    return sorted(n for n, c in _REGISTRY.items() if kind is None or kind in c.kinds)


test_names.__test__ = False  # type: ignore[attr-defined]  # not a pytest test function


def evaluate_numeric(
    tests: Sequence[DriftTest], ref: NumericReference, cur: FloatArray
) -> list[TestResult]:
    """Run several numeric tests on one window, sorting it once."""
    cur_sorted = prepare_current(cur)
    return [t.numeric_sorted(ref, cur_sorted) for t in tests]

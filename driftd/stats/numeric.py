"""Numeric tests on the reference's raw sample: rank tests and CDF distances.

All of them compare ``ref.sample`` (sorted reservoir of raw reference values) with the current
window, through one merge of the two sorted arrays (:mod:`driftd.kernels.twosample`), and agree
with the scipy function named in each docstring.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from driftd.kernels import special, twosample
from driftd.reference.features import FloatArray, NumericReference
from driftd.stats.base import (
    UNDEFINED,
    DriftTest,
    TestResult,
    ThresholdKind,
    reference_sample,
    register,
)

NUMERIC: frozenset[str] = frozenset({"numeric"})

# Scale used by the "normalised" statistics when the reference has no spread at all
# (constant feature): any change then reads as a large shift instead of a division by zero.
STD_FLOOR = 1e-3


def norm_scale(ref: NumericReference) -> float:
    """The reference standard deviation (population, all values), or :data:`STD_FLOOR` when it
    is zero or not finite."""
    s = float(ref.std)
    return s if s > 0.0 and math.isfinite(s) else STD_FLOOR


class _SampleTest(DriftTest):
    """Shared guard: both samples non-empty (and at least ``min_n`` values each)."""

    kinds: ClassVar[frozenset[str]] = NUMERIC
    min_n: ClassVar[int] = 1

    def numeric_sorted(self, ref: NumericReference, cur_sorted: FloatArray) -> TestResult:
        a = reference_sample(ref)
        if a.shape[0] < self.min_n or cur_sorted.shape[0] < self.min_n:
            return UNDEFINED
        return self._compute(ref, a, cur_sorted)

    def _compute(self, ref: NumericReference, a: FloatArray, b: FloatArray) -> TestResult:
        raise NotImplementedError


@register
class KS(_SampleTest):
    """Two-sample Kolmogorov–Smirnov: ``scipy.stats.ks_2samp(ref.sample, cur)``, two-sided,
    ``method="auto"`` (exact p-value when both samples have at most 10,000 values)."""

    name = "ks"
    threshold_kind: ClassVar[ThresholdKind] = "p_value"
    default_threshold = 0.05

    def _compute(self, ref: NumericReference, a: FloatArray, b: FloatArray) -> TestResult:
        d = twosample.ks_statistic(a, b)
        d, p = special.ks_2samp_pvalue(a.shape[0], b.shape[0], d)
        return TestResult(float(d), float(p))


@register
class Wasserstein(_SampleTest):
    """Wasserstein-1 distance in the feature's units: ``scipy.stats.wasserstein_distance``.
    The default threshold assumes unit-scale data; set one per feature."""

    name = "wasserstein"
    threshold_kind: ClassVar[ThresholdKind] = "statistic"
    default_threshold = 0.1

    def _compute(self, ref: NumericReference, a: FloatArray, b: FloatArray) -> TestResult:
        return TestResult(float(twosample.wasserstein(a, b)), None)


@register
class WassersteinNorm(_SampleTest):
    """Wasserstein-1 distance divided by the reference standard deviation (Evidently's
    "wasserstein" test); a constant reference divides by ``STD_FLOOR`` = 1e-3."""

    name = "wasserstein_norm"
    threshold_kind: ClassVar[ThresholdKind] = "statistic"
    default_threshold = 0.1

    def _compute(self, ref: NumericReference, a: FloatArray, b: FloatArray) -> TestResult:
        return TestResult(float(twosample.wasserstein(a, b)) / norm_scale(ref), None)


@register
class Energy(_SampleTest):
    """Energy distance ``sqrt(2 ∫ (F_ref - F_cur)^2)``: ``scipy.stats.energy_distance``."""

    name = "energy"
    threshold_kind: ClassVar[ThresholdKind] = "statistic"
    default_threshold = 0.1

    def _compute(self, ref: NumericReference, a: FloatArray, b: FloatArray) -> TestResult:
        return TestResult(float(twosample.energy(a, b)), None)


@register
class CramerVonMises(_SampleTest):
    """Two-sample Cramér–von Mises: ``scipy.stats.cramervonmises_2samp(ref.sample, cur)``
    (mid-ranks for ties; exact p-value when both samples have at most 20 values, else the
    asymptotic one). Needs at least 2 values on each side."""

    name = "cvm"
    threshold_kind: ClassVar[ThresholdKind] = "p_value"
    default_threshold = 0.05
    min_n = 2

    def _compute(self, ref: NumericReference, a: FloatArray, b: FloatArray) -> TestResult:
        nx = int(a.shape[0])
        ny = int(b.shape[0])
        u = float(twosample.cvm_u(a, b))
        k = nx * ny
        nn = nx + ny
        t = u / (k * nn) - (4 * k - 1) / (6 * nn)
        return TestResult(t, float(special.cvm_2samp_pvalue(u, t, nx, ny)))


@register
class AndersonDarling(_SampleTest):
    """k-sample Anderson–Darling for two samples, midrank variant:
    ``scipy.stats.anderson_ksamp([ref.sample, cur], variant="midrank")``. The p-value is
    scipy's interpolated significance level, capped to [0.001, 0.25]. Undefined when the pooled
    sample has fewer than 4 values or a single distinct value."""

    name = "ad"
    threshold_kind: ClassVar[ThresholdKind] = "p_value"
    default_threshold = 0.05

    def _compute(self, ref: NumericReference, a: FloatArray, b: FloatArray) -> TestResult:
        a2kn = float(twosample.ad_midrank_a2kn(a, b))
        a2 = special.ad_2samp_standardise(a2kn, int(a.shape[0]), int(b.shape[0]))
        if math.isnan(a2):
            return UNDEFINED
        return TestResult(a2, special.ad_2samp_pvalue(a2))


class _MeanShift(DriftTest):
    """Mean shift against the reference's mean/std/count (not its sample).

    statistic: ``|mean(cur) - ref.mean| / ref.std`` (reference standard deviations; a constant
    reference divides by ``STD_FLOOR``); p-value: Welch's two-sided t-test,
    ``scipy.stats.ttest_ind_from_stats(mean(cur), std(cur, ddof=1), n, ref.mean,
    ref.std * sqrt(N / (N - 1)), N, equal_var=False)`` with ``N = ref.count``. When both
    variances are zero the p-value is 1 for equal means and 0 otherwise. Needs 2 values on each
    side.
    """

    kinds: ClassVar[frozenset[str]] = NUMERIC

    def numeric_sorted(self, ref: NumericReference, cur_sorted: FloatArray) -> TestResult:
        n = int(cur_sorted.shape[0])
        nref = int(ref.count)
        if n < 2 or nref < 2 or not math.isfinite(ref.mean) or not math.isfinite(ref.std):
            return UNDEFINED
        with np.errstate(all="ignore"):  # absurd magnitudes overflow; judged just below
            m = float(np.mean(cur_sorted))
            v = float(np.var(cur_sorted, ddof=1))
            sd = float(ref.std)
            vref = sd * sd * nref / (nref - 1)  # not **: Python floats raise on overflow
            diff = m - float(ref.mean)
        if not (math.isfinite(v) and math.isfinite(vref) and math.isfinite(diff)):
            return UNDEFINED
        stat = abs(diff) / norm_scale(ref)
        vn1 = v / n
        vn2 = vref / nref
        se2 = vn1 + vn2
        if not se2 > 0.0:
            return TestResult(stat, 1.0 if diff == 0.0 else 0.0)
        r1 = vn1 / se2  # Welch–Satterthwaite df, in shares of se2 so nothing overflows
        r2 = vn2 / se2
        df = 1.0 / (r1 * r1 / (n - 1) + r2 * r2 / (nref - 1))
        t = diff / math.sqrt(se2)
        return TestResult(stat, special.t_sf_two_sided(t, df))


@register
class TTest(_MeanShift):
    __doc__ = _MeanShift.__doc__
    name = "t_test"
    threshold_kind: ClassVar[ThresholdKind] = "p_value"
    default_threshold = 0.05


@register
class MeanDiff(_MeanShift):
    __doc__ = _MeanShift.__doc__
    name = "mean_diff"
    threshold_kind: ClassVar[ThresholdKind] = "statistic"
    default_threshold = 0.1

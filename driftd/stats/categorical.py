"""Hypothesis tests for categorical features (count vectors with an unseen bucket)."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from driftd.kernels import divergence, special
from driftd.reference.features import CategoricalReference, IntArray
from driftd.stats.base import (
    UNDEFINED,
    DriftTest,
    TestResult,
    ThresholdKind,
    categorical_vectors,
    register,
)

CATEGORICAL: frozenset[str] = frozenset({"categorical"})


@register
class ChiSquare(DriftTest):
    """Pearson χ² test of homogeneity on the 2 × (k+1) table ``[reference counts; current
    counts]``: ``scipy.stats.chi2_contingency(table)`` with its defaults (Yates' correction
    when there is one degree of freedom), after dropping columns empty in both rows.

    The unseen bucket is a column like any other, with reference count 0: unseen values in the
    window add to χ² and to the degrees of freedom instead of being dropped. A contingency
    test (not goodness-of-fit against the reference shares) because the reference is a sample
    too — auto selection uses χ² precisely when it is small (≤ 1000 values). A table left with a
    single column gives statistic 0, p-value 1.
    """

    name = "chi2"
    kinds: ClassVar[frozenset[str]] = CATEGORICAL
    threshold_kind: ClassVar[ThresholdKind] = "p_value"
    default_threshold = 0.05

    def categorical(self, ref: CategoricalReference, cur_counts: IntArray) -> TestResult:
        v = categorical_vectors(ref, cur_counts)
        if v is None:
            return UNDEFINED
        stat, dof = divergence.chi2_contingency_2xk(v[0], v[1], True)
        if math.isnan(stat):
            return UNDEFINED
        if dof <= 0:
            return TestResult(0.0, 1.0)
        return TestResult(float(stat), special.chi2_sf(float(stat), float(dof)))


@register
class ZTest(DriftTest):
    """Two-proportion z-test (pooled variance) on the share of the reference's most frequent
    category (lowest index on ties) — for binary features the two categories are symmetric.

    The current share's denominator includes unseen values, so they count as evidence.
    statistic: ``|z|``; p-value: two-sided normal tail. Equal pooled shares of 0 or 1 (no
    variance) give statistic 0, p-value 1.
    """

    name = "z"
    kinds: ClassVar[frozenset[str]] = CATEGORICAL
    threshold_kind: ClassVar[ThresholdKind] = "p_value"
    default_threshold = 0.05

    def categorical(self, ref: CategoricalReference, cur_counts: IntArray) -> TestResult:
        v = categorical_vectors(ref, cur_counts)
        if v is None:
            return UNDEFINED
        refc, cur = v
        i = int(np.argmax(refc[:-1]))
        n1 = float(refc.sum())
        n2 = float(cur.sum())
        x1 = float(refc[i])
        x2 = float(cur[i])
        pooled = (x1 + x2) / (n1 + n2)
        se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2))
        if not se > 0.0:
            return TestResult(0.0, 1.0)
        z = (x2 / n2 - x1 / n1) / se
        return TestResult(abs(z), special.norm_sf_two_sided(z))

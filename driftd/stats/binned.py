"""Divergences on binned distributions; each applies to both kinds of feature.

* numeric: the current window is counted into the reference's quantile bins
  (``ref.edges``, convention ``edges[i] <= x < edges[i+1]``) and compared with ``ref.probs``;
* categorical: current counts (``k`` categories + the unseen bucket) against the reference's
  category counts, whose unseen bucket is 0 — so values never seen in the reference are drift
  evidence (JS, Hellinger and TV count them at their full share; PSI and KL through the
  ``EPS`` = 1e-4 floor that stands in for the reference's empty share).

Formulas and the zero-share rule are in :mod:`driftd.kernels.divergence`.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from driftd.kernels import divergence
from driftd.kernels.binning import bin_counts_sorted
from driftd.reference.features import CategoricalReference, FloatArray, IntArray, NumericReference
from driftd.stats.base import (
    UNDEFINED,
    DriftTest,
    TestResult,
    ThresholdKind,
    categorical_vectors,
    register,
)

BOTH: frozenset[str] = frozenset({"numeric", "categorical"})


class _Binned(DriftTest):
    kinds: ClassVar[frozenset[str]] = BOTH
    threshold_kind: ClassVar[ThresholdKind] = "statistic"
    default_threshold = 0.1

    def score(self, ref_w: FloatArray, cur_w: FloatArray) -> float:
        """The divergence between two aligned weight vectors (normalised by the kernel)."""
        raise NotImplementedError

    def numeric_sorted(self, ref: NumericReference, cur_sorted: FloatArray) -> TestResult:
        if ref.count <= 0 or cur_sorted.shape[0] == 0:
            return UNDEFINED
        edges = np.ascontiguousarray(ref.edges, dtype=np.float64)
        probs = np.ascontiguousarray(ref.probs, dtype=np.float64)
        counts = bin_counts_sorted(cur_sorted, edges)
        if counts.sum() == 0 or not probs.sum() > 0:
            return UNDEFINED
        return TestResult(float(self.score(probs, counts.astype(np.float64))), None)

    def categorical(self, ref: CategoricalReference, cur_counts: IntArray) -> TestResult:
        v = categorical_vectors(ref, cur_counts)
        if v is None:
            return UNDEFINED
        refc, cur = v
        return TestResult(float(self.score(refc.astype(np.float64), cur.astype(np.float64))), None)


@register
class PSI(_Binned):
    """Population stability index ``Σ (q - p) ln(q / p)``, zero shares floored to 1e-4.
    Rule of thumb: < 0.1 stable, 0.1–0.25 moderate shift, > 0.25 major shift."""

    name = "psi"

    def score(self, ref_w: FloatArray, cur_w: FloatArray) -> float:
        return float(divergence.psi(ref_w, cur_w, divergence.EPS))


@register
class KL(_Binned):
    """Kullback–Leibler divergence KL(reference ‖ current) in nats, zero shares floored to
    1e-4."""

    name = "kl"

    def score(self, ref_w: FloatArray, cur_w: FloatArray) -> float:
        return float(divergence.kl(ref_w, cur_w, divergence.EPS))


@register
class JensenShannon(_Binned):
    """Jensen–Shannon *distance*, base 2, in [0, 1]
    (``scipy.spatial.distance.jensenshannon(p, q, base=2)``)."""

    name = "js"

    def score(self, ref_w: FloatArray, cur_w: FloatArray) -> float:
        return float(divergence.js_distance(ref_w, cur_w))


@register
class Hellinger(_Binned):
    """Hellinger distance ``sqrt(½ Σ (√p - √q)²)``, in [0, 1]."""

    name = "hellinger"

    def score(self, ref_w: FloatArray, cur_w: FloatArray) -> float:
        return float(divergence.hellinger(ref_w, cur_w))


@register
class TotalVariation(_Binned):
    """Total variation distance ``½ Σ |p - q|``, in [0, 1]."""

    name = "tv"

    def score(self, ref_w: FloatArray, cur_w: FloatArray) -> float:
        return float(divergence.total_variation(ref_w, cur_w))

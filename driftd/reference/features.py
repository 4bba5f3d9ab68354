"""Reference summaries for one feature, as stored in a reference profile.

A numeric reference keeps a uniform reservoir of up to ``MAX_RAW`` raw values (sorted) beside
quantile bins, so that rank tests (KS, Wasserstein, CvM, AD, energy) are exact for references up
to that size, and binned tests (PSI, JS, KL, Hellinger) use the quantile bins.

Binning convention (shared by every kernel): with ``edges`` of length ``n_bins + 1`` where
``edges[0] == -inf`` and ``edges[-1] == +inf``, a value ``x`` falls in bin ``i`` when
``edges[i] <= x < edges[i + 1]`` (so ``i = searchsorted(edges[1:-1], x, side="right")``).

Categorical convention: a current window is summarised as an int64 count vector of length
``k + 1`` where ``k = len(categories)``; index ``k`` is the *unseen* bucket (values never seen in
the reference). Missing values are counted separately, never in that vector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from driftd.arrays import FloatArray as FloatArray  # re-exported for the stats layer
from driftd.arrays import IntArray as IntArray

MAX_RAW = 100_000
DEFAULT_BINS = 10


@dataclass(frozen=True, slots=True)
class NumericReference:
    count: int  # non-missing reference values seen (may exceed len(sample))
    missing: int  # null / NaN values seen
    sample: FloatArray  # sorted, finite, at most MAX_RAW values (uniform reservoir)
    edges: FloatArray  # len n_bins + 1, edges[0] = -inf, edges[-1] = +inf, strictly increasing
    probs: FloatArray  # len n_bins, reference share of each bin (sums to 1)
    mean: float
    std: float  # population standard deviation (ddof=0) of all non-missing values
    min: float
    max: float

    @property
    def n_bins(self) -> int:
        return int(self.probs.shape[0])

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "numeric",
            "count": self.count,
            "missing": self.missing,
            "mean": self.mean,
            "std": self.std,
            "min": self.min,
            "max": self.max,
            "edges": [_enc(e) for e in self.edges.tolist()],
            "probs": self.probs.tolist(),
            "sample": self.sample.tolist(),
        }

    @staticmethod
    def from_json(d: dict[str, Any]) -> NumericReference:
        return NumericReference(
            count=int(d["count"]),
            missing=int(d["missing"]),
            sample=np.sort(np.asarray(d["sample"], dtype=np.float64)),
            edges=np.asarray([_dec(e) for e in d["edges"]], dtype=np.float64),
            probs=np.asarray(d["probs"], dtype=np.float64),
            mean=float(d["mean"]),
            std=float(d["std"]),
            min=float(d["min"]),
            max=float(d["max"]),
        )


@dataclass(frozen=True, slots=True)
class CategoricalReference:
    count: int  # non-missing reference values
    missing: int
    categories: tuple[str, ...]  # index = category code
    counts: IntArray  # len k, reference count per category

    @property
    def probs(self) -> FloatArray:
        total = self.counts.sum()
        return self.counts / total if total > 0 else np.zeros(len(self.counts))

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "categorical",
            "count": self.count,
            "missing": self.missing,
            "categories": list(self.categories),
            "counts": self.counts.tolist(),
        }

    @staticmethod
    def from_json(d: dict[str, Any]) -> CategoricalReference:
        return CategoricalReference(
            count=int(d["count"]),
            missing=int(d["missing"]),
            categories=tuple(str(c) for c in d["categories"]),
            counts=np.asarray(d["counts"], dtype=np.int64),
        )


def _enc(x: float) -> float | str:
    if x == float("inf"):
        return "inf"
    if x == float("-inf"):
        return "-inf"
    return x


def _dec(x: float | str) -> float:
    return float(x)


def quantile_edges(sample: FloatArray, n_bins: int = DEFAULT_BINS) -> FloatArray:
    """Bin edges at the reference quantiles: ``[-inf, q_1, …, q_{n-1}, +inf]``, deduplicated.

    Point masses (discrete or constant data) collapse repeated quantiles; when that leaves no
    interior edge above the minimum, an edge just above the maximum keeps "larger than anything
    seen" separable from the reference mass.
    """
    if sample.size == 0:
        return np.array([-np.inf, np.inf])
    qs = np.quantile(sample, np.linspace(0.0, 1.0, n_bins + 1)[1:-1])
    interior = np.unique(qs[np.isfinite(qs)])
    lo = float(sample[0])
    interior = interior[interior > lo]
    if interior.size == 0:
        interior = np.array([np.nextafter(float(sample[-1]), np.inf)])
    return np.concatenate(([-np.inf], interior, [np.inf])).astype(np.float64)


def bin_counts(values: FloatArray, edges: FloatArray) -> IntArray:
    """Reference implementation of the binning convention (NumPy; kernels have their own)."""
    idx = np.searchsorted(edges[1:-1], values, side="right")
    return np.bincount(idx, minlength=len(edges) - 1).astype(np.int64)


def build_numeric(
    values: npt.ArrayLike,
    n_bins: int = DEFAULT_BINS,
    max_raw: int = MAX_RAW,
    seed: int = 0,
) -> NumericReference:
    """Summarise an in-memory array (NaN = missing) into a NumericReference."""
    arr = np.asarray(values, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    missing = int(arr.size - finite.size)
    if finite.size > max_raw:
        rng = np.random.default_rng(seed)
        sample = rng.choice(finite, size=max_raw, replace=False)
    else:
        sample = finite
    sample = np.sort(sample)
    return numeric_from_sample(
        sample,
        count=int(finite.size),
        missing=missing,
        mean=float(finite.mean()) if finite.size else 0.0,
        std=float(finite.std()) if finite.size else 0.0,
        lo=float(finite.min()) if finite.size else 0.0,
        hi=float(finite.max()) if finite.size else 0.0,
        n_bins=n_bins,
    )


def numeric_from_sample(
    sample: FloatArray,
    *,
    count: int,
    missing: int,
    mean: float,
    std: float,
    lo: float,
    hi: float,
    n_bins: int = DEFAULT_BINS,
) -> NumericReference:
    sample = np.sort(np.asarray(sample, dtype=np.float64))
    edges = quantile_edges(sample, n_bins)
    counts = bin_counts(sample, edges)
    total = counts.sum()
    probs = counts / total if total > 0 else np.full(len(counts), 1.0 / len(counts))
    return NumericReference(
        count=count,
        missing=missing,
        sample=sample,
        edges=edges,
        probs=probs.astype(np.float64),
        mean=mean,
        std=std,
        min=lo,
        max=hi,
    )


def build_categorical(values: list[str | None]) -> CategoricalReference:
    """Summarise category labels (None = missing); categories ordered by first appearance."""
    index: dict[str, int] = {}
    counts: list[int] = []
    missing = 0
    for v in values:
        if v is None:
            missing += 1
            continue
        i = index.get(v)
        if i is None:
            index[v] = len(counts)
            counts.append(1)
        else:
            counts[i] += 1
    return CategoricalReference(
        count=sum(counts),
        missing=missing,
        categories=tuple(index),
        counts=np.asarray(counts, dtype=np.int64),
    )

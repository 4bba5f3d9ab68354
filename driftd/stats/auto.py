"""Automatic test selection for features configured without ``test:`` (Evidently's rule)."""

from __future__ import annotations

from typing import Literal

from driftd.reference.features import CategoricalReference, NumericReference

SMALL_REFERENCE = 1000  # reference values (non-missing) up to which hypothesis tests are used


def auto_select(
    kind: Literal["numeric", "categorical"], ref: NumericReference | CategoricalReference
) -> str:
    """Name of the test to use for a feature of ``kind`` with reference ``ref``.

    ==============================  =========================  ==========================
    feature                         reference ≤ 1000 values    reference > 1000 values
    ==============================  =========================  ==========================
    numeric                         ``ks`` (p < 0.05)          ``wasserstein_norm`` (> 0.1)
    categorical, ≤ 2 categories     ``z`` (p < 0.05)           ``js`` (> 0.1)
    categorical, > 2 categories     ``chi2`` (p < 0.05)        ``js`` (> 0.1)
    ==============================  =========================  ==========================

    "Reference values" is ``ref.count`` (all non-missing reference values, not just the stored
    sample). Small references get a hypothesis test; large ones a distance, because with
    thousands of values every test rejects for shifts too small to matter.
    """
    if kind == "numeric":
        if not isinstance(ref, NumericReference):
            raise TypeError(f"numeric feature needs a NumericReference, got {type(ref).__name__}")
        return "ks" if ref.count <= SMALL_REFERENCE else "wasserstein_norm"
    if kind == "categorical":
        if not isinstance(ref, CategoricalReference):
            raise TypeError(
                f"categorical feature needs a CategoricalReference, got {type(ref).__name__}"
            )
        small = ref.count <= SMALL_REFERENCE
        if len(ref.categories) <= 2:
            return "z" if small else "js"
        return "chi2" if small else "js"
    raise ValueError(f"unknown feature kind {kind!r}; expected 'numeric' or 'categorical'")

"""Smoke test of ``benchmarks.kernels``' Python-API figures at a tiny size: they are measured
on equal statistics (the benchmark asserts compare's statistics equal the raw kernels') and
carry the documented keys; the figures come from the full-size run."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `benchmarks` is not installed; pytest may run from elsewhere
    sys.path.insert(0, str(ROOT))

from benchmarks import kernels  # noqa: E402


def test_api_compare_figures() -> None:
    ref, cur = kernels.make_data(1500, 4, seed=3)
    out = kernels.api_compare(ref, cur, repeat=1)
    assert out["api_compare_test"] == "wasserstein_norm"  # automatic choice, 1500 values
    for key in ("api_compare_ms", "api_raw_kernels_ms", "api_evaluate_ms"):
        assert out[key] > 0
    assert out["api_overhead"] == round(out["api_compare_ms"] / out["api_raw_kernels_ms"] - 1, 4)
    assert set(out["api_compare_by_test"]) == set(kernels.TESTS)

"""Drift tests, looked up by the name used in config (``features: {x: {test: ks}}``).

Tests
-----

Drifted means `p_value < threshold` for hypothesis tests and `statistic > threshold` for
distances. Names in backticks in the last column are the scipy functions the test agrees
with (to 1e-9). Every test returns statistic NaN / p-value None ("undefined", never drifted)
when the window or the reference is empty or too small for it.

| test               | kinds | drift if | default | statistic (reference vs current)               |
|--------------------|-------|----------|---------|------------------------------------------------|
| `ks`               | num   | p <      | 0.05    | KS D; `ks_2samp` (exact p up to 10k values)    |
| `cvm`              | num   | p <      | 0.05    | Cramér–von Mises T; `cramervonmises_2samp`     |
| `ad`               | num   | p <      | 0.05    | A² midrank; `anderson_ksamp`; p in [.001, .25] |
| `t_test`           | num   | p <      | 0.05    | abs(Δ mean) / ref std; `ttest_ind_from_stats`  |
| `mean_diff`        | num   | stat >   | 0.1     | abs(Δ mean) / ref std (same result as t_test)  |
| `wasserstein`      | num   | stat >   | 0.1     | Wasserstein-1, feature units (set a thr!)      |
| `wasserstein_norm` | num   | stat >   | 0.1     | Wasserstein-1 / ref std                        |
| `energy`           | num   | stat >   | 0.1     | energy distance; `energy_distance`             |
| `psi`              | both  | stat >   | 0.1     | PSI, ln, zero shares → 1e-4                    |
| `kl`               | both  | stat >   | 0.1     | KL(ref ‖ cur), nats, zero shares → 1e-4        |
| `js`               | both  | stat >   | 0.1     | JS distance, base 2, in [0,1]; `jensenshannon` |
| `hellinger`        | both  | stat >   | 0.1     | Hellinger distance, in [0, 1]                  |
| `tv`               | both  | stat >   | 0.1     | total variation distance, in [0, 1]            |
| `chi2`             | cat   | p <      | 0.05    | χ² of the 2×(k+1) table; `chi2_contingency`    |
| `z`                | cat   | p <      | 0.05    | abs(z), 2-proportion z-test, top ref category  |

Numeric binned tests use the reference's quantile bins (`edges[i] <= x < edges[i+1]`);
categorical tests compare count vectors whose last entry counts values unseen in the
reference (reference share 0, so unseen values are drift evidence, never dropped).

Automatic selection
-------------------

A feature configured without `test:` gets (Evidently's rule; "reference size" is the number
of non-missing reference values, `ref.count`):

| feature                     | reference ≤ 1000 values | reference > 1000 values        |
|-----------------------------|-------------------------|--------------------------------|
| numeric                     | `ks`, p < 0.05          | `wasserstein_norm`, stat > 0.1 |
| categorical, ≤ 2 categories | `z`, p < 0.05           | `js`, stat > 0.1               |
| categorical, > 2 categories | `chi2`, p < 0.05        | `js`, stat > 0.1               |

Adding a test: subclass `DriftTest` in one of the modules below and decorate it with
`@register`.
"""

from __future__ import annotations

from driftd.stats import binned, categorical, numeric  # noqa: F401  (registers the tests)
from driftd.stats.auto import SMALL_REFERENCE, auto_select
from driftd.stats.base import (
    UNDEFINED,
    DriftTest,
    TestResult,
    evaluate_numeric,
    get_test,
    prepare_current,
    register,
    test_names,
)

__all__ = [
    "SMALL_REFERENCE",
    "UNDEFINED",
    "DriftTest",
    "TestResult",
    "auto_select",
    "evaluate_numeric",
    "get_test",
    "prepare_current",
    "register",
    "test_names",
]

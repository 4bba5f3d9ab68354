"""Calibration of the degradation rule on realistic window sizes (compiled kernels: these run
millions of resampling draws, too many for ``NUMBA_DISABLE_JIT=1``).

* a version whose accuracy is 5 points lower on 5,000 labelled events is flagged;
* equally good versions are flagged no more often than the interval level implies;
* DeLong's interval agrees with the bootstrap's;
* regression metrics.
"""

from __future__ import annotations

import numpy as np
from perf_data import credit_window

from driftd.performance.compare import (
    Sample,
    bootstrap_ci,
    compare,
    compare_all,
    degraded,
    delong_ci,
)


def test_five_point_accuracy_drop_on_5000_events_is_flagged() -> None:
    for seed in range(5):
        rng = np.random.default_rng(seed)
        v1 = credit_window(rng, 5000, 0.85)
        v2 = credit_window(rng, 5000, 0.80)
        c = compare("accuracy", v2, v1, seed=seed)
        assert c.degraded, c
        assert c.method == "bootstrap" and c.n_current == c.n_baseline == 5000
        assert c.ci_low < c.difference < c.ci_high < 0
        # the previous version is not flagged against the new one
        assert not compare("accuracy", v1, v2, seed=seed).degraded


def test_equal_accuracy_false_flags_stay_within_the_interval_level() -> None:
    """200 seeded pairs of equally good versions (accuracy 0.85, 5,000 events each).

    With ``min_effect=0`` a flag needs only the 95% interval to exclude zero on the bad side:
    ≈2.5% of trials; Binomial(200, 0.025) has mean 5 and P(X > 12) ≈ 0.2%. With the default
    2-point minimum the point difference must also reach 0.02 ≈ 2.8 standard errors
    (sd of the difference ≈ 0.0071): P ≈ 0.26% a trial, mean 0.5 in 200, P(X > 4) ≈ 0.02%."""
    flags_no_min = flags_default = 0
    for seed in range(200):
        rng = np.random.default_rng(10_000 + seed)
        v1 = credit_window(rng, 5000, 0.85)
        v2 = credit_window(rng, 5000, 0.85)
        c = compare("accuracy", v2, v1, min_effect=0.0, seed=seed)
        flags_no_min += c.degraded
        ci = (c.ci_low, c.ci_high)
        flags_default += degraded("accuracy", c.baseline, c.current, ci, 0.02)
    assert flags_no_min <= 12, flags_no_min
    assert flags_default <= 4, flags_default


def test_delong_agrees_with_the_bootstrap() -> None:
    rng = np.random.default_rng(5)
    cur = credit_window(rng, 3000, 0.80)
    base = credit_window(rng, 3000, 0.84)
    d_diff, d_lo, d_hi = delong_ci(cur, base)
    b_diff, b_lo, b_hi = bootstrap_ci("roc_auc", cur, base, n_resamples=2000, seed=1)
    assert d_diff == b_diff
    # same width within 10%, same centre within a tenth of the width
    assert abs((d_hi - d_lo) / (b_hi - b_lo) - 1.0) < 0.10
    assert abs((d_lo + d_hi) / 2 - (b_lo + b_hi) / 2) < 0.1 * (d_hi - d_lo)
    # against a fixed value the DeLong interval narrows to the current sample's variance
    f_diff, f_lo, f_hi = delong_ci(cur, 0.9)
    assert f_hi - f_lo < d_hi - d_lo and f_lo < f_diff < f_hi


def test_regression_metrics_compare() -> None:
    rng = np.random.default_rng(4)
    y1 = rng.normal(100, 10, 3000)
    y2 = rng.normal(100, 10, 3000)
    good = Sample(y1 + rng.normal(0, 5, 3000), y1)
    worse = Sample(y2 + rng.normal(2, 6, 3000), y2)  # biased and noisier
    res = compare_all(["mae", "rmse", "bias", "mape"], worse, good, seed=3)
    assert res["mae"].degraded and res["rmse"].degraded and res["bias"].degraded
    assert not compare("mae", good, worse).degraded
    fixed = compare_all(["mae", "rmse"], good, {"mae": 4.0})
    assert list(fixed) == ["mae"] and fixed["mae"].n_baseline is None

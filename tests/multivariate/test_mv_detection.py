"""What the multivariate statistics are for, on seeded streams: a correlation flip that no
univariate test sees is caught within two steps by both methods, and stationary windows
breach a calibrated threshold no more often than its level.

Fresh windows are drawn from the true distribution, never from the reference sample, so the
false-alarm rates include the reference's own sampling error, as in production.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom

from driftd.reference.features import build_numeric
from driftd.stats import get_test
from driftd.stats import multivariate as MV
from driftd.stats.calibrate import alert_budget, calibrate_feature

D = 6
WINDOW = 2000
STEP = 500
FLIP_AT = 10_000  # events before the correlation of features 0 and 1 flips


def draw(rng: np.random.Generator, n: int, rho: float) -> np.ndarray:
    cov = np.eye(D)
    cov[0, 1] = cov[1, 0] = rho
    cov[2, 3] = cov[3, 2] = 0.3
    return rng.multivariate_normal(np.zeros(D), cov, size=n)


@pytest.fixture(scope="module")
def flip_stream() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2026)
    ref = draw(rng, 20_000, 0.8)
    stream = np.vstack([draw(rng, FLIP_AT, 0.8), draw(rng, 4000, -0.8)])
    return ref, stream


def evaluations(stream: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(position, window) at every step of a count window of WINDOW events."""
    return [(end, stream[end - WINDOW : end]) for end in range(WINDOW, stream.shape[0] + 1, STEP)]


@pytest.mark.parametrize("method", ["pca_reconstruction", "mmd"])
def test_correlation_flip_is_caught_within_two_steps_and_by_no_marginal_test(
    flip_stream: tuple[np.ndarray, np.ndarray], method: str
) -> None:
    ref, stream = flip_stream
    # the budget of a monitor with 6 features, the prediction and the multivariate statistic
    alpha = alert_budget(1.0, STEP, D + 2).alpha
    model = MV.fit(method, ref, seed=1)  # MMD: 1,000-row subsamples each side
    threshold = model.calibrate(WINDOW, alpha, seed=2).threshold
    ks = get_test("ks")
    refs = [build_numeric(ref[:, j]) for j in (0, 1)]
    ks_level = [calibrate_feature(ks, r, WINDOW, alpha, seed=3).threshold for r in refs]

    drifted = []
    for end, win in evaluations(stream):
        res = MV.evaluate(model, win, None, threshold, seed=MV.window_seed(9, end))
        assert res["method"] == method and res["threshold"] == threshold
        if res["drifted"]:
            drifted.append(end)
        for j in (0, 1):  # the marginals never move: KS at its calibrated level stays quiet
            assert not ks.drifted(ks.numeric(refs[j], win[:, j]), ks_level[j])

    assert drifted, f"{method} never flagged the flip"
    first = drifted[0]
    assert FLIP_AT < first <= FLIP_AT + 2 * STEP
    # once the window is mostly flipped it stays flagged
    assert drifted == list(range(first, stream.shape[0] + 1, STEP))
    # pinned for this seed: PCA sees a quarter-flipped window, MMD a half-flipped one
    assert first == {"pca_reconstruction": FLIP_AT + STEP, "mmd": FLIP_AT + 2 * STEP}[method]


@pytest.mark.parametrize(
    ("method", "alpha", "windows"),
    [("pca_reconstruction", 0.01, 3000), ("mmd", 0.02, 500)],
)
def test_stationary_false_alarm_rate_is_within_alpha(
    method: str, alpha: float, windows: int
) -> None:
    rng = np.random.default_rng(77)
    ref = draw(rng, 10_000, 0.8)
    size = 500
    options = {"reference_rows": 300, "window_rows": 300} if method == "mmd" else {}
    model = MV.fit(method, ref, seed=5, **options)
    threshold = model.calibrate(size, alpha, seed=6).threshold
    breaches = sum(
        model.statistic(draw(rng, size, 0.8), seed=i) > threshold for i in range(windows)
    )
    # not significantly above alpha (one-sided binomial test at 0.1 %)
    assert binom.sf(breaches - 1, windows, alpha) > 1e-3, (breaches, windows)
    # and a real change of the joint distribution is far above the threshold
    flipped = model.statistic(draw(rng, size, -0.8), seed=0)
    assert flipped > 1.05 * threshold

"""Calibrated thresholds: per-feature levels that keep false alerts on a stationary stream
below a target (``calibration: {false_alerts_per_million_events: 1}``).

API: :func:`calibrate_monitor` (every feature of a monitor, on one thread per CPU) and
:func:`calibrate_feature` (one test on one reference) return :class:`Calibration` records —
threshold, level, method, a summary of the resampled null, seconds — that serialise with
``to_json`` / ``from_json`` for the profile. :func:`alert_budget` gives the level itself.

Method (docs/decisions.md, "Calibrated thresholds")
---------------------------------------------------

**Budget.** A monitor whose window steps every S events is evaluated 1e6 / S times per million
events. An alert needs at least one breaching evaluation, and an evaluation breaches only if a
feature does, so the expected number of false alerts is at most the sum, over evaluations and
features, of the per-feature breach probabilities — linearity of expectation and the union
bound, true however correlated the features and the overlapping windows are. With F tested
features (the prediction counts as one) each gets ``alpha = target × S / 1e6 / F`` per
evaluation: 1 per million, S = 1000, F = 21 gives 4.8e-5. ``consecutive: k`` is deliberately
not used to relax alpha: windows of W events stepped by S share W − S events, so one breach is
usually followed by more (k = 2 buys nothing at W = 5 S), and multiplying probabilities of
disjoint windows assumes an i.i.d. stream, which real traffic is not. The bound is loose in
the safe direction: breaches come in runs, and a run is one alert. A ``drift_share`` rule
needing several features at once only makes false alerts rarer still.

**Null distribution by resampling.** A live window differs from the reference by two sampling
errors, the window's and the reference's own, so both are resampled, from a population proxy:
the reference sample in the bulk and, beyond its 1 % most extreme values on each side, a
generalised Pareto tail (probability-weighted moments, shape taken half a standard error
heavier than estimated). Windows then hold values the reference never saw, as live ones do —
which is what makes heavy-tailed features (amounts, Student-t) breach Wasserstein or a mean
shift. Tails that are mostly ties (discrete, capped) and references under 1000 values stay
empirical.

* Distance tests on numeric features (``wasserstein[_norm]``, ``energy``, ``mean_diff``,
  ``psi``, ``kl``, ``js``, ``hellinger``, ``tv``): M = 1000 windows of the *effective* size
  ``W' = 1 / (1/W + 1/n)`` (n = reference sample size; all reference values for
  ``mean_diff``) are drawn from the proxy and compared with the reference exactly as the test
  does. A one-sample draw of W' values fluctuates around the reference like the difference of
  independent samples of W and n values (the two-sample limit behind KS's n·m/(n+m)), so the
  reference's error is counted at the cost of an O(W) draw per resample, not O(n). W counts
  non-missing values: the reference's missing share is removed, minus three binomial sd.
* Hypothesis tests (``ks``, ``cvm``, ``ad``, ``t_test``, ``chi2``, ``z``) and every
  categorical test: a double bootstrap — a reference of n values and a window of W values, both
  drawn from the proxy, run through the test object itself. For categoricals the proxy is the
  reference shares plus a Good–Turing share N1/n (N1 = categories seen once) of never-seen
  categories, as rare as the singletons; categories a bootstrap reference misses count as
  unseen.

**Tail extrapolation.** alpha is far beyond what 1000 resamples resolve. With ``y =
statistic²`` (the statistic itself for ``psi``, ``kl``; ``-ln p`` for p-values) —
asymptotically a weighted sum of χ²₁ variables, with an exponential upper tail — the
``1 - alpha`` quantile of y is the larger of a method-of-moments gamma (scaled χ²) fit of all
resamples and an exponential-tail fit of the excesses over their 90th percentile,
``q = u + beta · ln(0.1 / alpha)``. The threshold is then raised until that tail probability
plus a single-big-jump term is at most alpha: W × the proxy's probability of one value extreme
enough, by itself, to lift a typical null window over the threshold (read off the statistic
itself; it dominates Wasserstein and ``mean_diff`` for heavy tails, and is 0 for binned
tests). It is never below the largest resampled statistic.

**Safety margin.** 10 % on the deviation the statistic measures: threshold × 1.1 (× 1.21 for
the quadratic ``psi``, ``kl``). It absorbs extrapolation error and, mostly, the fact that the
reference in hand is one sample: the level above holds on average over reference samples, and
without the margin a reference two standard errors off in the worst direction would, in one
dimension, raise the breach rate at alpha = 5e-5 two- to fourfold (W/n from 0.05 to 1);
with it, the rate stays within alpha.

**P-value tests.** ``-ln p`` is Exp(1) for valid p-values. When its fitted ``1 - alpha``
quantile exceeds ``-ln alpha`` by more than two standard errors of the fit, the test's
p-values are too small in the tail (χ² with sparse cells or unseen categories, CvM on tied
data — scipy's ``cramervonmises_2samp`` too) and the level is lowered to ``exp(-q)``;
otherwise, conservative p-values included (KS with ties), it stays alpha. The same margin then
applies on the z-like scale: threshold = level^1.21 (alpha 4.8e-5 → 5.9e-6). The
Anderson–Darling p-value is floored at 0.001, so AD can never breach at such levels (noted).

**Measured** (``tests/stats/test_calibrate.py``; fresh windows drawn from the true
distribution, never from the reference sample; calibrated at 0.01 so rates are measurable;
references of 20,000 values, windows of 2,000, 2,000 fresh windows per shape): normal,
log-normal, bimodal, Poisson, Student-t(3) — Wasserstein 0.0005–0.011 (mean 0.0046),
mean_diff 0.0005–0.0105, PSI and JS 0.0015–0.0035; categoricals of 3 and 50 levels — JS and
PSI 0.0005–0.0035, χ² 0.004–0.009. Averaged over 10 references of 10,000 values (windows of
1,000, 20,000 fresh windows each) at levels 1e-2 / 1e-3 / 1e-4: normal, Wasserstein 0.43 /
0.38 / 0.60 × the level, mean_diff 0.44 / 0.26 / 0.25 ×, PSI 0.17 / 0.07 / 0 ×; Student-t(3),
Wasserstein 0.26 / 0.54 / 1.15 ×, mean_diff 0.29 / 0.40 / 1.05 ×. At the default target no
fresh window breaches, and one 5,000-event window (100,000-value reference) is flagged by a
0.5σ mean shift (Wasserstein 3.6–8.8 × its threshold, PSI 25–227 ×, JS 5–11 ×) and by variance
× 1.5 (Wasserstein 1.1–3.3 ×, PSI 4–208 ×, JS 2.1–9.3 ×). Calibrating 20 numeric features
(100,000-value references, W = 5,000, S = 1,000, Wasserstein) takes a few seconds on 2 cores
(``python -m benchmarks.calibration``).

**Limits.** Stationary means i.i.d. within the stream: seasonality or bursts are drift to this
model. For heavy tails the jump term extrapolates a GPD to ~1e-8 per value, far beyond the
reference (which Wasserstein and mean_diff need at alpha ≈ 5e-5): across eight
100,000-value Student-t(3) references the Wasserstein threshold ranged 0.10–0.17 (normal:
0.058–0.065), so a variance × 1.5 (Wasserstein 0.143) is missed by Wasserstein for some —
PSI and JS, immune to single values, catch it. The guarantee is on average over reference
samples; a reference can be unlucky, and tiny ones (e.g. a categorical reference with fewer
than ~10 values per level) can be far off. Time-based windows must pass their expected event
count as ``window_events``. Calibrated p-value thresholds already split the budget across
features: do not apply Bonferroni on top.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
import zlib
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from driftd.kernels import divergence, resample
from driftd.kernels.binning import bin_counts_sorted
from driftd.kernels.special import gammaincc
from driftd.reference.features import CategoricalReference, FloatArray, NumericReference
from driftd.stats.base import DriftTest, TestResult, reference_sample
from driftd.stats.numeric import norm_scale

FeatureRef = NumericReference | CategoricalReference

DEFAULT_FALSE_ALERTS_PER_MILLION = 1.0
DEFAULT_RESAMPLES = 1000
MARGIN = 0.10  # safety margin, in units of the deviation a statistic measures (z for p-values)
TAIL_FRACTION = 0.10  # share of the resamples in the exponential tail fit
MIN_TAIL = 10  # ... and at least this many
MIN_DEFINED = 20  # fewer defined null statistics than this: keep the default threshold
MIN_RESAMPLES = 50
AD_P_FLOOR = 0.001  # the Anderson–Darling p-value is capped to [0.001, 0.25] (as scipy)
_P_FLOOR = 1e-300  # -ln(0) is infinite: p-values of exactly 0 count as this
_CHUNK_ROWS = 64  # resampled windows per kernel call (bounds the spacings buffer)
TAIL_MIN_SAMPLE = 1000  # smaller references are resampled as they are (no GPD tails)
TAIL_SHARE = 0.01  # share of the reference sample in each GPD tail fit
TAIL_MIN_K = 20
TAIL_MIN_DISTINCT = 0.5  # share of distinct excesses a tail needs to be smoothed
TAIL_XI_MIN = -0.5
TAIL_XI_MAX = 0.9
TAIL_XI_SE = 0.5  # tail shape used: the estimate plus this many standard errors
JUMP_CUTOFF = 0.01  # per-window expected count of values beyond the jump cutoff
JUMP_GRID = 41  # tail probabilities of the jump curve: cutoff · 10^(-j/4), j < JUMP_GRID

# Statistics computed by driftd.kernels.resample.null_statistics, by test name. The kernel
# path is checked against the test object on the first resampled window and abandoned (for
# the generic per-window path) if the two disagree, e.g. for a re-registered name.
KERNEL_CODES: dict[str, int] = {
    "wasserstein": resample.WASSERSTEIN,
    "wasserstein_norm": resample.WASSERSTEIN,
    "energy": resample.ENERGY,
    "mean_diff": resample.MEAN_SHIFT,
    "psi": resample.PSI,
    "kl": resample.KL,
    "js": resample.JS,
    "hellinger": resample.HELLINGER,
    "tv": resample.TV,
}
_NORMALISED = frozenset({"wasserstein_norm", "mean_diff"})  # divided by norm_scale(ref)

# How a distance statistic grows with a deviation of the window's distribution: PSI and KL
# are quadratic in the share differences (≈ χ² / n), every other distance is linear (a norm
# of F_ref - F_cur, or the square root of a χ²-like divergence). y = statistic^(2 / power)
# is then asymptotically a weighted sum of χ²₁ variables, whose upper tail is exponential.
DEVIATION_POWER: dict[str, int] = {"psi": 2, "kl": 2}


# =========================================================================== budget


@dataclass(frozen=True, slots=True)
class AlertBudget:
    """How a monitor's false-alert target becomes a per-feature, per-evaluation level."""

    false_alerts_per_million_events: float
    step_events: int
    features: int
    consecutive: int
    evaluations_per_million_events: float  # 1e6 / step
    per_evaluation: float  # allowed probability that an evaluation breaches (any feature)
    alpha: float  # per feature and evaluation: per_evaluation / features


def alert_budget(
    false_alerts_per_million_events: float,
    step_events: int,
    features: int,
    consecutive: int = 1,
) -> AlertBudget:
    """The per-feature false-breach probability ``alpha`` for a monitor.

    ``alpha = target × step / 1e6 / features``: expected false alerts ≤ expected breaching
    evaluations (an alert needs at least one) ≤ evaluations × Σ per-feature breach
    probabilities — linearity of expectation and the union bound, so no independence between
    features or overlapping windows is assumed. ``consecutive`` is recorded but deliberately
    does not relax ``alpha`` (see the module docstring).
    """
    if not false_alerts_per_million_events > 0 or not math.isfinite(
        false_alerts_per_million_events
    ):
        raise ValueError("false_alerts_per_million_events must be a positive number")
    if step_events < 1:
        raise ValueError("step_events must be at least 1")
    if features < 1:
        raise ValueError("a monitor needs at least one feature to calibrate")
    if consecutive < 1:
        raise ValueError("consecutive must be at least 1")
    per_eval = min(1.0, false_alerts_per_million_events * step_events / 1e6)
    return AlertBudget(
        false_alerts_per_million_events=float(false_alerts_per_million_events),
        step_events=int(step_events),
        features=int(features),
        consecutive=int(consecutive),
        evaluations_per_million_events=1e6 / step_events,
        per_evaluation=per_eval,
        alpha=per_eval / features,
    )


# =========================================================================== result


@dataclass(frozen=True, slots=True)
class Calibration:
    """A calibrated threshold for one feature's test, with the evidence behind it.

    ``threshold`` is used like a configured one: drift when ``statistic > threshold``
    (``threshold_kind == "statistic"``) or ``p_value < threshold`` (``"p_value"``).
    ``null`` summarises the resampled null distribution and the tail fit (numbers or None).
    """

    test: str
    threshold_kind: str
    threshold: float
    alpha: float
    method: str
    resamples: int
    window_events: int
    window_values: int  # non-missing values per window the null was computed for
    null: dict[str, float | None]
    seconds: float
    seed: int
    notes: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line for ``check-config`` / ``profile build`` output."""
        op = ">" if self.threshold_kind == "statistic" else "p <"
        return (
            f"{self.test} {op} {self.threshold:.4g} (alpha {self.alpha:.2g}, {self.method}, "
            f"{self.resamples} resamples, {self.seconds:.2f} s)"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "test": self.test,
            "threshold_kind": self.threshold_kind,
            "threshold": self.threshold,
            "alpha": self.alpha,
            "method": self.method,
            "resamples": self.resamples,
            "window_events": self.window_events,
            "window_values": self.window_values,
            "null": {k: _json_num(v) for k, v in self.null.items()},
            "seconds": self.seconds,
            "seed": self.seed,
            "notes": list(self.notes),
        }

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> Calibration:
        return Calibration(
            test=str(d["test"]),
            threshold_kind=str(d["threshold_kind"]),
            threshold=float(d["threshold"]),
            alpha=float(d["alpha"]),
            method=str(d["method"]),
            resamples=int(d["resamples"]),
            window_events=int(d["window_events"]),
            window_values=int(d["window_values"]),
            null={str(k): (None if v is None else float(v)) for k, v in d["null"].items()},
            seconds=float(d["seconds"]),
            seed=int(d["seed"]),
            notes=tuple(str(n) for n in d.get("notes", ())),
        )


def _json_num(x: float | None) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return float(x)


# =========================================================================== tail fit


def gamma_isf(shape: float, q: float) -> float:
    """``x`` with ``P(G > x) = q`` for a standard gamma ``G`` of the given ``shape``
    (bisection on the regularised upper incomplete gamma)."""
    if not shape > 0 or not 0.0 < q < 1.0:
        raise ValueError("gamma_isf needs shape > 0 and 0 < q < 1")
    lo = 0.0
    hi = max(1.0, shape)
    while gammaincc(shape, hi) > q:
        lo = hi
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if gammaincc(shape, mid) > q:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * hi:
            break
    return 0.5 * (lo + hi)


@dataclass(frozen=True, slots=True)
class TailFit:
    """Extrapolated ``1 - alpha`` quantile of ``y`` (a non-negative null statistic).

    ``q = max(q_gamma, q_tail)``: a method-of-moments gamma (scaled χ²) fit of all defined
    values, and an exponential (generalised Pareto with shape 0) fit of the excesses over the
    ``1 - k/total`` empirical quantile ``u``: ``q_tail = u + beta · ln((k/total) / alpha)``.
    ``se_tail`` is the standard error of ``q_tail`` from the mean excess ``beta``.
    """

    q: float
    q_gamma: float
    q_tail: float
    shape: float
    scale: float
    u: float
    beta: float
    k: int
    se_tail: float
    y_max: float
    p_u: float  # k / total
    defined: float  # share of the resamples with a defined statistic

    def sf(self, y: float) -> float:
        """Fitted ``P(y_null > y)``: the larger of the gamma and the exponential-tail models
        (the latter meant for ``y >= u``)."""
        g = 0.0
        if self.shape > 0.0 and self.scale > 0.0:
            g = self.defined * gammaincc(self.shape, y / self.scale)
        if y < self.u:
            e = self.p_u
        elif self.beta > 0.0:
            e = self.p_u * math.exp(-(y - self.u) / self.beta)
        else:
            e = 0.0
        return max(g, e)


def fit_upper_tail(y: FloatArray, total: int, alpha: float) -> TailFit | None:
    """Fit the upper tail of the finite values ``y`` out of ``total`` resamples (the others
    were undefined, which never breach). ``None`` when ``y`` is degenerate: fewer than
    :data:`MIN_DEFINED` values, or all equal."""
    ys = np.sort(np.asarray(y, dtype=np.float64))
    n = int(ys.shape[0])
    if n < MIN_DEFINED or not ys[-1] > ys[0]:
        return None
    k = min(max(MIN_TAIL, int(round(TAIL_FRACTION * total))), n - 1)
    u = float(ys[n - k - 1])
    beta = float(np.mean(ys[n - k :] - u))
    p_u = k / total
    if alpha < p_u:
        span = math.log(p_u / alpha)
        q_tail = u + beta * span
        se_tail = beta * span / math.sqrt(k)
    else:  # inside the data: the empirical quantile (undefined resamples at the bottom)
        above = max(1, int(math.floor(alpha * total)))
        q_tail = float(ys[max(n - above, 0)])
        se_tail = 0.0
    mean = float(np.mean(ys))
    var = float(np.var(ys, ddof=1))
    a_cond = alpha * total / n  # P(y > q | defined)
    q_gamma = math.nan
    shape = scale = math.nan
    if mean > 0.0 and var > 0.0 and a_cond < 1.0:
        shape = mean * mean / var
        scale = var / mean
        q_gamma = scale * gamma_isf(shape, a_cond)
    q = q_tail if math.isnan(q_gamma) else max(q_gamma, q_tail)
    return TailFit(
        q, q_gamma, q_tail, shape, scale, u, beta, k, se_tail, float(ys[-1]), p_u, n / total
    )


# =========================================================================== null distributions


def fit_tails(sample: FloatArray) -> FloatArray:
    """Generalised-Pareto tails for the population proxy of a sorted reference ``sample``
    (the ``tails`` vector of :func:`driftd.kernels.resample.draw_sorted`).

    Each tail beyond the ``k``-th most extreme value (``k`` = 1 % of the sample, at least 20) is
    fitted by probability-weighted moments (Hosking & Wallis 1987) on the ``k`` excesses. The
    shape is then taken half a standard error (``(1 + xi) / sqrt(k)``) heavier, clipped to
    [-0.5, 0.9]: the jump term extrapolates it far beyond the sample, where an unlucky low
    estimate costs much more (breach rate) than a high one gains (power). A tail is left
    empirical (switched off) when the sample has fewer than :data:`TAIL_MIN_SAMPLE` values or
    the tail is mostly ties (discrete or capped data).
    """
    out = np.zeros(resample.N_TAIL_PARAMS, dtype=np.float64)
    x = np.asarray(sample, dtype=np.float64)
    n = int(x.shape[0])
    if n < TAIL_MIN_SAMPLE:
        return out
    k = max(TAIL_MIN_K, int(round(TAIL_SHARE * n)))
    sides = (
        (x[n - 1 - k], x[n - k :] - x[n - 1 - k], resample.TAIL_P_HI),
        (x[k], x[k] - x[:k][::-1], resample.TAIL_P_LO),
    )
    for u, exc, at in sides:
        if np.unique(exc).shape[0] < TAIL_MIN_DISTINCT * k or not exc[-1] > 0.0:
            continue
        a0 = float(np.mean(exc))
        plot = (np.arange(1, k + 1) - 0.35) / k
        a1 = float(np.mean((1.0 - plot) * exc))
        d = a0 - 2.0 * a1
        if not d > 0.0:
            continue
        xi_hat = 2.0 - a0 / d
        sigma = 2.0 * a0 * a1 / d
        xi_se = (1.0 + max(xi_hat, 0.0)) / math.sqrt(k)
        xi = min(max(xi_hat + TAIL_XI_SE * xi_se, TAIL_XI_MIN), TAIL_XI_MAX)
        if not sigma > 0.0 or not math.isfinite(sigma):
            continue
        out[at : at + 4] = (k / n, float(u), xi, sigma)
    return out


def _tails_summary(tails: FloatArray) -> dict[str, float | None]:
    lo = float(tails[resample.TAIL_P_LO]) > 0.0
    hi = float(tails[resample.TAIL_P_HI]) > 0.0
    return {
        "tail_xi_lo": float(tails[resample.TAIL_XI_LO]) if lo else None,
        "tail_xi_hi": float(tails[resample.TAIL_XI_HI]) if hi else None,
    }


def window_values(ref: FeatureRef, window_events: int) -> int:
    """Non-missing values to expect in a window of ``window_events`` events: the reference's
    missing share removed, minus three binomial standard deviations (fewer values means a
    wider null, so the low end is the conservative one). At least 2."""
    total = ref.count + ref.missing
    miss = ref.missing / total if total > 0 else 0.0
    if miss <= 0.0:
        return int(window_events)
    mean = window_events * (1.0 - miss)
    sd = math.sqrt(window_events * miss * (1.0 - miss))
    return max(2, int(math.floor(mean - 3.0 * sd)))


def effective_window(window: int, reference: int) -> int:
    """``round(1 / (1/window + 1/reference))``: a one-sample bootstrap window of this size
    drawn from the reference fluctuates around it as much as a window of ``window`` values from
    the population fluctuates around a reference of ``reference`` values drawn from it too."""
    return max(2, int(round(1.0 / (1.0 / window + 1.0 / reference))))


def _close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= 1e-12 + 1e-9 * abs(b)


@dataclass(frozen=True, slots=True)
class JumpCurve:
    """How far one window value beyond the bulk of the population moves the statistic.

    ``deltas[j]`` (ascending) is the statistic's increase when the most extreme value of a
    typical resampled window is replaced by the population proxy's value of tail probability
    ``probs[j]`` (descending, per value, both tails summed in :meth:`rate`). Probabilities start
    at ``cutoff`` = ``JUMP_CUTOFF / window`` per value: beyond it a window rarely holds such a
    value, so the resamples cannot show the effect and :meth:`rate` adds it.
    """

    deltas_hi: FloatArray
    log_probs_hi: FloatArray
    deltas_lo: FloatArray
    log_probs_lo: FloatArray
    window: int

    def rate(self, threshold: float, stats: FloatArray) -> float:
        """``window · mean_b P(one value lifts T_b above threshold)`` over the null statistics
        ``stats``: the single-big-jump estimate of the breach probability the resamples miss."""
        need = threshold - stats
        total = np.zeros(need.shape[0], dtype=np.float64)
        for deltas, logp in (
            (self.deltas_hi, self.log_probs_hi),
            (self.deltas_lo, self.log_probs_lo),
        ):
            if deltas.shape[0] >= 2:
                lp = np.interp(need, deltas, logp, left=logp[0], right=-np.inf)
                total += np.exp(lp)
        return float(self.window * np.mean(total)) if total.shape[0] else 0.0


def jump_curve(
    stat: Callable[[FloatArray], float], window: FloatArray, tails: FloatArray, values: int
) -> JumpCurve | None:
    """The :class:`JumpCurve` of statistic ``stat`` (sorted window → statistic) around the
    sorted ``window``, for the GPD ``tails``; ``None`` when neither tail is fitted or a single
    value cannot move the statistic (binned tests: the extreme bins absorb it)."""
    base = stat(window)
    cutoff = JUMP_CUTOFF / values
    grid = cutoff * 10.0 ** (-np.arange(JUMP_GRID) / 4.0)  # down to cutoff · 1e-10
    sides: list[tuple[FloatArray, FloatArray]] = []
    for at, sign in ((resample.TAIL_P_HI, 1.0), (resample.TAIL_P_LO, -1.0)):
        p, u, xi, sigma = (float(v) for v in tails[at : at + 4])
        deltas: list[float] = []
        logs: list[float] = []
        if p > 0.0 and not math.isnan(base):
            for s in grid[grid < p]:
                x = u + sign * resample.gpd_excess(float(s / p), xi, sigma)
                w2 = window.copy()
                if sign > 0 and x > w2[-1]:
                    w2[-1] = x
                elif sign < 0 and x < w2[0]:
                    w2[0] = x
                else:
                    continue
                d = stat(w2) - base
                if deltas and not d > deltas[-1]:
                    continue  # keep the curve strictly increasing (np.interp needs it)
                if d > 0.0:
                    deltas.append(d)
                    logs.append(math.log(s))
        sides.append((np.asarray(deltas, dtype=np.float64), np.asarray(logs, dtype=np.float64)))
    (d_hi, l_hi), (d_lo, l_lo) = sides
    if d_hi.shape[0] < 2 and d_lo.shape[0] < 2:
        return None
    return JumpCurve(d_hi, l_hi, d_lo, l_lo, int(values))


def _null_numeric_effective(
    test: DriftTest,
    ref: NumericReference,
    m_vals: int,
    resamples: int,
    rng: np.random.Generator,
    progress: Callable[[int], None] | None = None,
) -> tuple[FloatArray, JumpCurve | None, dict[str, float | None]]:
    """Distance statistics of ``resamples`` windows of the effective size drawn from the
    population proxy, against the reference; the jump curve; summary extras."""
    sample = reference_sample(ref)
    tails = fit_tails(sample)
    code = KERNEL_CODES.get(test.name)
    # the bootstrap world's population is the sample: centre mean-based tests on its mean
    world = dataclasses.replace(ref, mean=float(np.mean(sample)))
    n_ref = int(ref.count) if code == resample.MEAN_SHIFT else int(sample.shape[0])
    w_eff = effective_window(m_vals, max(n_ref, 1))
    edges = np.ascontiguousarray(ref.edges, dtype=np.float64)
    probs = np.ascontiguousarray(ref.probs, dtype=np.float64)
    scale = norm_scale(ref) if test.name in _NORMALISED else 1.0
    prefix = resample.quantile_prefix(sample)

    def kernel_stat(cur: FloatArray) -> float:
        assert code is not None
        return float(
            resample.window_statistic(
                code, sample, prefix, cur, edges, probs, world.mean, scale, divergence.EPS
            )
        )

    def test_stat(cur: FloatArray) -> float:
        return float(test.numeric_sorted(world, cur).statistic)

    out = np.empty(resamples, dtype=np.float64)
    checked = False
    for start in range(0, resamples, _CHUNK_ROWS):
        rows = min(_CHUNK_ROWS, resamples - start)
        spacings = rng.standard_exponential((rows, w_eff + 1))
        if code is not None:
            stats = resample.null_statistics(
                sample,
                prefix,
                spacings,
                tails,
                code,
                edges,
                probs,
                world.mean,
                scale,
                divergence.EPS,
            )
            if not checked:
                checked = True
                first = resample.draw_sorted(sample, spacings[0], tails)
                if not _close(float(stats[0]), test_stat(first)):
                    code = None  # not the statistic the kernel knows: use the test itself
        if code is None:
            stats = np.array(
                [test_stat(resample.draw_sorted(sample, row, tails)) for row in spacings],
                dtype=np.float64,
            )
        out[start : start + rows] = stats
        if progress is not None:
            progress(rows)
    # a single value moves a window by 1 / (its size): the jump curve uses a real-size window
    typical = resample.draw_sorted(sample, rng.standard_exponential(m_vals + 1), tails)
    curve = jump_curve(kernel_stat if code is not None else test_stat, typical, tails, m_vals)
    extra: dict[str, float | None] = {"effective_window": float(w_eff)}
    extra.update(_tails_summary(tails))
    return out, curve, extra


def _result_value(res: TestResult, p_value: bool) -> float:
    if p_value:
        return math.nan if res.p_value is None else float(res.p_value)
    return float(res.statistic)


def _null_numeric_double(
    test: DriftTest,
    ref: NumericReference,
    m_vals: int,
    resamples: int,
    rng: np.random.Generator,
    progress: Callable[[int], None] | None = None,
) -> FloatArray:
    """Test results (p-values or statistics) of a bootstrap reference against a bootstrap
    window, both drawn from the reference sample, through the test object itself."""
    sample = reference_sample(ref)
    tails = fit_tails(sample)
    n_s = int(sample.shape[0])
    edges = np.ascontiguousarray(ref.edges, dtype=np.float64)
    p_value = test.threshold_kind == "p_value"
    out = np.empty(resamples, dtype=np.float64)
    for b in range(resamples):
        r_star = resample.draw_sorted(sample, rng.standard_exponential(n_s + 1), tails)
        cur = resample.draw_sorted(sample, rng.standard_exponential(m_vals + 1), tails)
        counts = bin_counts_sorted(r_star, edges)
        ref_b = NumericReference(
            count=n_s,
            missing=0,
            sample=r_star,
            edges=edges,
            probs=counts / max(n_s, 1),
            mean=float(np.mean(r_star)),
            std=float(np.std(r_star)),
            min=float(r_star[0]),
            max=float(r_star[-1]),
        )
        out[b] = _result_value(test.numeric_sorted(ref_b, cur), p_value)
        _step(progress, b, resamples)
    return out


def _null_categorical_double(
    test: DriftTest,
    ref: CategoricalReference,
    m_vals: int,
    resamples: int,
    rng: np.random.Generator,
    progress: Callable[[int], None] | None = None,
) -> tuple[FloatArray, dict[str, float | None]]:
    """Test results of multinomial bootstrap reference counts against multinomial window
    counts, both drawn from the population proxy, through the test object itself.

    The proxy is the reference shares plus the Good–Turing estimate ``N1 / n`` (``N1``
    categories seen once) of the share of categories the reference never saw, spread over
    ``N1`` novel categories of share ``1 / n`` each — as rare as the reference's own
    singletons. A category (novel or not) that a bootstrap reference misses is unseen for that
    resample: its window count goes to the unseen bucket.
    """
    counts = np.asarray(ref.counts, dtype=np.int64)
    k = int(counts.shape[0])
    n_ref = int(counts.sum())
    singletons = int(np.count_nonzero(counts == 1))
    novel = singletons / n_ref
    proxy = np.empty(k + singletons, dtype=np.float64)
    proxy[:k] = counts / n_ref * (1.0 - novel)
    proxy[k:] = 1.0 / n_ref
    proxy /= proxy.sum()
    cats = np.array(
        list(ref.categories) + [f"\x00novel-{i}" for i in range(singletons)], dtype=object
    )
    p_value = test.threshold_kind == "p_value"
    ref_draws = rng.multinomial(n_ref, proxy, size=resamples).astype(np.int64)
    cur_draws = rng.multinomial(m_vals, proxy, size=resamples).astype(np.int64)
    out = np.empty(resamples, dtype=np.float64)
    for b in range(resamples):
        keep = ref_draws[b] > 0
        kk = int(np.count_nonzero(keep))
        ref_b = CategoricalReference(
            count=n_ref,
            missing=0,
            categories=tuple(str(c) for c in cats[keep]),
            counts=np.ascontiguousarray(ref_draws[b][keep]),
        )
        cur = np.empty(kk + 1, dtype=np.int64)
        cur[:kk] = cur_draws[b][keep]
        cur[kk] = cur_draws[b][~keep].sum()
        out[b] = _result_value(test.categorical(ref_b, cur), p_value)
        _step(progress, b, resamples)
    return out, {"novel_share": novel}


def _step(progress: Callable[[int], None] | None, b: int, resamples: int) -> None:
    """Report resamples to ``progress`` once per chunk of ``_CHUNK_ROWS`` and at the end."""
    if progress is not None and ((b + 1) % _CHUNK_ROWS == 0 or b + 1 == resamples):
        progress((b % _CHUNK_ROWS) + 1)


# =========================================================================== thresholds


def _quantiles(x: FloatArray) -> dict[str, float | None]:
    f = x[np.isfinite(x)]
    if f.size == 0:
        return {"defined": 0.0}
    q = np.quantile(f, [0.5, 0.9, 0.99])
    return {
        "defined": f.size / x.size,
        "mean": float(np.mean(f)),
        "sd": float(np.std(f)),
        "q50": float(q[0]),
        "q90": float(q[1]),
        "q99": float(q[2]),
        "max": float(np.max(f)),
    }


def _fit_summary(fit: TailFit, prefix: str = "y_") -> dict[str, float | None]:
    return {
        f"{prefix}gamma_shape": fit.shape,
        f"{prefix}gamma_scale": fit.scale,
        f"{prefix}tail_u": fit.u,
        f"{prefix}tail_beta": fit.beta,
        f"{prefix}tail_k": float(fit.k),
        f"{prefix}q_gamma": fit.q_gamma,
        f"{prefix}q_tail": fit.q_tail,
        f"{prefix}q": fit.q,
    }


def statistic_threshold(
    stats: FloatArray,
    alpha: float,
    power: int,
    margin: float,
    jumps: JumpCurve | None = None,
) -> tuple[float | None, dict[str, float | None]]:
    """Threshold for a distance test from its resampled null statistics, or ``None`` when the
    null is degenerate.

    With ``y = stat^(2/power)`` and :func:`fit_upper_tail`, ``t`` is the smallest statistic
    whose fitted tail probability plus the single-jump rate of ``jumps`` is at most ``alpha``;
    never below the largest resampled statistic when ``alpha · total < 1``. The threshold is
    ``t · (1 + margin)^power`` (``margin`` in units of the deviation the statistic measures).
    """
    total = int(stats.shape[0])
    finite = stats[np.isfinite(stats)]
    y = np.maximum(finite, 0.0) ** (2.0 / power)
    summary = _quantiles(stats)
    fit = fit_upper_tail(y, total, alpha)
    if fit is None:
        return None, summary
    half = power / 2.0
    t_fit = fit.q**half
    t = t_fit
    jump_at_fit = 0.0
    if jumps is not None:
        jump_at_fit = jumps.rate(t_fit, finite)

        def breach(x: float) -> float:
            return fit.sf(x ** (2.0 / power)) + jumps.rate(x, finite)

        if breach(t) > alpha:
            lo, hi = t, 2.0 * t
            for _ in range(200):
                if breach(hi) <= alpha:
                    break
                lo, hi = hi, 2.0 * hi
            for _ in range(100):
                mid = 0.5 * (lo + hi)
                if breach(mid) > alpha:
                    lo = mid
                else:
                    hi = mid
                if hi - lo <= 1e-12 * hi:
                    break
            t = hi
    q = t ** (2.0 / power)
    if alpha * total < 1.0:
        q = max(q, fit.y_max)
    thr = (q * (1.0 + margin) ** 2) ** half
    summary.update(_fit_summary(fit))
    summary.update(
        {
            "y_power": float(power),
            "margin": margin,
            "q_gamma": fit.q_gamma**half,
            "q_tail": fit.q_tail**half,
            "q_fit": t_fit,
            "jump_rate_at_fit": jump_at_fit if jumps is not None else None,
            "q_jump": t if jumps is not None else None,
        }
    )
    return thr, summary


def p_value_threshold(
    pvals: FloatArray, alpha: float, margin: float = MARGIN
) -> tuple[float | None, str, dict[str, float | None]]:
    """Threshold on the p-value of a hypothesis test from its resampled null p-values.

    ``y = -ln p`` is Exp(1) when the p-values are valid. The fitted ``1 - alpha`` quantile
    ``q`` of ``y`` (:func:`fit_upper_tail`) is compared with ``-ln alpha``: within two standard
    errors of the tail fit, or below (conservative p-values, e.g. KS on tied data), the level
    is ``alpha`` (rule "alpha"); above, the p-values are too small in the tail and the level is
    lowered to ``exp(-q)`` ("lowered"). The margin applies as for distances, on the z-like
    scale ``sqrt(y)``: ``thr = level^((1 + margin)²)``. Never above the smallest resampled
    p-value when ``alpha · total < 1``. ``None`` when the null is degenerate.
    """
    total = int(pvals.shape[0])
    finite = pvals[np.isfinite(pvals)]
    summary: dict[str, float | None] = {"defined": finite.size / total if total else 0.0}
    if finite.size:
        q = np.quantile(finite, [0.01, 0.1, 0.5])
        summary.update(
            {
                "p_min": float(np.min(finite)),
                "p_q01": float(q[0]),
                "p_q10": float(q[1]),
                "p_q50": float(q[2]),
                "rate_below_alpha": float(np.count_nonzero(finite < alpha)) / total,
                "rate_below_0.01": float(np.count_nonzero(finite < 0.01)) / total,
            }
        )
    y = -np.log(np.maximum(finite, _P_FLOOR))
    fit = fit_upper_tail(y, total, alpha)
    if fit is None:
        return None, "degenerate", summary
    summary.update(_fit_summary(fit))
    y_alpha = -math.log(alpha)
    tolerance = 2.0 * fit.se_tail
    summary["tolerance"] = tolerance
    if fit.q <= y_alpha + tolerance:
        y_thr, rule = y_alpha, "alpha"
    else:
        y_thr, rule = fit.q, "lowered"
    thr = math.exp(-y_thr * (1.0 + margin) ** 2)
    if alpha * total < 1.0 and finite.size and float(np.min(finite)) < thr:
        thr = float(np.min(finite))
    return thr, rule, summary


# =========================================================================== entry points


def _default(
    test: DriftTest,
    alpha: float,
    resamples: int,
    window_events: int,
    m_vals: int,
    seed: int,
    t0: float,
    note: str,
    null: dict[str, float | None] | None = None,
) -> Calibration:
    return Calibration(
        test=test.name,
        threshold_kind=test.threshold_kind,
        threshold=float(test.default_threshold),
        alpha=alpha,
        method="default",
        resamples=resamples,
        window_events=window_events,
        window_values=m_vals,
        null=null or {},
        seconds=time.perf_counter() - t0,
        seed=seed,
        notes=(note,),
    )


def calibrate_feature(
    test: DriftTest,
    ref: FeatureRef,
    window_events: int,
    alpha: float,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    margin: float = MARGIN,
    progress: Callable[[int], None] | None = None,
) -> Calibration:
    """Calibrate ``test`` on ``ref`` for windows of ``window_events`` events so that a window
    from the reference's population breaches with probability at most about ``alpha``.

    Deterministic for a given ``seed``. Raises ``ValueError`` on bad arguments or a test that
    does not apply to the reference's kind; never on data (an empty reference or a degenerate
    null keeps ``test.default_threshold``, with ``method="default"`` and a note).
    ``progress`` (optional) is called, on the calling thread, with the number of resamples
    drawn since its last call, every few dozen resamples.
    """
    if window_events < 2:
        raise ValueError("window_events must be at least 2")
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must be in (0, 1)")
    if resamples < MIN_RESAMPLES:
        raise ValueError(f"resamples must be at least {MIN_RESAMPLES}")
    if not margin >= 0.0:
        raise ValueError("margin must be >= 0")
    kind = "numeric" if isinstance(ref, NumericReference) else "categorical"
    if kind not in test.kinds:
        raise ValueError(f"test {test.name!r} does not apply to {kind} features")
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    m_vals = window_values(ref, window_events)
    notes: list[str] = []

    def done(thr: float, method: str, null: dict[str, float | None]) -> Calibration:
        return Calibration(
            test=test.name,
            threshold_kind=test.threshold_kind,
            threshold=float(thr),
            alpha=alpha,
            method=method,
            resamples=resamples,
            window_events=window_events,
            window_values=m_vals,
            null=null,
            seconds=time.perf_counter() - t0,
            seed=seed,
            notes=tuple(notes),
        )

    if isinstance(ref, NumericReference):
        if ref.sample.shape[0] < 2:
            return _default(
                test, alpha, resamples, window_events, m_vals, seed, t0, "empty reference"
            )
    elif int(np.asarray(ref.counts).sum()) <= 0:
        return _default(test, alpha, resamples, window_events, m_vals, seed, t0, "empty reference")

    if test.threshold_kind == "statistic":
        extra: dict[str, float | None] = {}
        curve: JumpCurve | None = None
        if isinstance(ref, NumericReference):
            stats, curve, extra = _null_numeric_effective(
                test, ref, m_vals, resamples, rng, progress
            )
            scheme = "effective-size-bootstrap"
        else:
            stats, extra = _null_categorical_double(test, ref, m_vals, resamples, rng, progress)
            scheme = "double-bootstrap"
        power = DEVIATION_POWER.get(test.name, 1)
        thr, null = statistic_threshold(stats, alpha, power, margin, curve)
        null.update(extra)
        if thr is None:
            return _default(
                test, alpha, resamples, window_events, m_vals, seed, t0, "degenerate null", null
            )
        return done(thr, f"{scheme}:tail-fit", null)

    p_extra: dict[str, float | None] = {}
    if isinstance(ref, NumericReference):
        pvals = _null_numeric_double(test, ref, m_vals, resamples, rng, progress)
    else:
        pvals, p_extra = _null_categorical_double(test, ref, m_vals, resamples, rng, progress)
    p_thr, rule, null = p_value_threshold(pvals, alpha, margin)
    null.update(p_extra)
    if p_thr is None:
        return _default(
            test, alpha, resamples, window_events, m_vals, seed, t0, "degenerate null", null
        )
    if test.name == "ad" and p_thr < AD_P_FLOOR:
        notes.append(
            f"ad p-values are capped below at {AD_P_FLOOR}: a threshold of {p_thr:.3g} can never "
            "be breached; use cvm or ks for this target"
        )
    return done(p_thr, f"double-bootstrap:{rule}", null)


def feature_seed(seed: int, name: str) -> int:
    """The seed of feature ``name`` in a monitor calibrated with ``seed``: independent of the
    other features and of their order."""
    ss = np.random.SeedSequence([int(seed), zlib.crc32(name.encode("utf-8"))])
    return int(ss.generate_state(1)[0])


def _cpus() -> int:
    """CPUs this process may run on (the affinity mask, where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def calibrate_monitor(
    features: Mapping[str, tuple[DriftTest, FeatureRef]],
    window_events: int,
    step_events: int,
    false_alerts_per_million_events: float = DEFAULT_FALSE_ALERTS_PER_MILLION,
    consecutive: int = 1,
    seed: int = 0,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    margin: float = MARGIN,
    workers: int | None = None,
) -> dict[str, Calibration]:
    """Calibrate every feature of a monitor (pass the prediction as one more entry).

    Each feature gets ``alert_budget(...).alpha`` and its own seed (:func:`feature_seed`);
    features run on ``workers`` threads (default: one per CPU) — the kernels release the GIL,
    and results do not depend on the number of workers.
    """
    if seed < 0:
        raise ValueError("seed must be >= 0")
    budget = alert_budget(false_alerts_per_million_events, step_events, len(features), consecutive)

    def one(name: str) -> Calibration:
        test, ref = features[name]
        return calibrate_feature(
            test,
            ref,
            window_events,
            budget.alpha,
            resamples=resamples,
            seed=feature_seed(seed, name),
            margin=margin,
        )

    names = list(features)
    n_workers = workers if workers is not None else _cpus()
    n_workers = max(1, min(n_workers, len(names)))
    run: Callable[[str], Calibration] = one
    if n_workers == 1:
        return {name: run(name) for name in names}
    with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="calibrate") as pool:
        results = list(pool.map(run, names))
    return dict(zip(names, results, strict=True))


__all__ = [
    "DEFAULT_FALSE_ALERTS_PER_MILLION",
    "DEFAULT_RESAMPLES",
    "MARGIN",
    "AlertBudget",
    "Calibration",
    "FeatureRef",
    "JumpCurve",
    "TailFit",
    "alert_budget",
    "calibrate_feature",
    "calibrate_monitor",
    "effective_window",
    "feature_seed",
    "fit_upper_tail",
    "gamma_isf",
    "p_value_threshold",
    "statistic_threshold",
    "window_values",
]

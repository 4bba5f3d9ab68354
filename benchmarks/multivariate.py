"""Multivariate drift and CBPE benchmark: cost per evaluation against NannyML, same data,
same run.

    python -m benchmarks.multivariate [--json] [--rows 5000] [--features 20] [--repeat 7]
                                      [--stationary-events 1000000]

Workload (seeded, generated here, no network): a reference of ``--reference-rows`` rows and a
window of ``--rows`` rows of ``--features`` correlated numeric features (a fixed random mixing
of independent normal, Student-t and log-normal columns; the window's first two features have
their correlation flipped), plus classifier scores and labels for CBPE.

Timed, best of ``--repeat`` after one untimed call, one evaluation each:

* ``pca_reconstruction`` — :meth:`PCAReconstruction.statistic` on the window, against
  NannyML's ``DataReconstructionDriftCalculator.calculate`` on the same window (one chunk of
  the window's size; fitted once beforehand, as the daemon fits once), and the two values;
* ``mmd`` — :meth:`MMD.statistic` (1,000-row subsamples each side) and, for scale, its
  NumPy twin on the same subsample (NannyML has no MMD);
* ``cbpe`` — :meth:`CBPE.estimate` of the window's scores against NannyML's
  ``CBPE.estimate`` (calibration forced on, as driftd always calibrates).

One-off costs are reported too (fit, threshold calibration). With ``--stationary-events``
(default 1,000,000; 0 to skip) a count window of ``--rows`` rows stepping by ``--step``
slides over that many fresh stationary events, each step evaluated against thresholds
calibrated to the budget of 1 false alert per million events (the features and the
prediction as univariate tests, plus the multivariate statistic): the number of breaches
(expected: 0) per method.

NannyML is optional here: when it is not installed the NannyML fields are ``null`` and the
output says so. With ``--json`` the last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from driftd.kernels import multivariate as KM
from driftd.kernels import warm_up
from driftd.performance.cbpe import fit_cbpe
from driftd.stats import multivariate as MV
from driftd.stats.calibrate import alert_budget

F64 = npt.NDArray[np.float64]


def best_of(fn: Callable[[], object], repeat: int) -> float:
    """Best wall time in milliseconds over ``repeat`` runs (after one untimed run)."""
    fn()
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


class Source:
    """Correlated rows: independent columns of three shapes through a fixed mixing matrix."""

    def __init__(self, features: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.features = features
        self.mix = np.eye(features) + rng.normal(0.0, 0.4, (features, features))
        self.rng = np.random.default_rng(seed + 1)

    def rows(self, n: int, flip: bool = False) -> F64:
        d = self.features
        z = np.empty((n, d))
        for j in range(d):
            kind = j % 3
            if kind == 0:
                z[:, j] = self.rng.normal(size=n)
            elif kind == 1:
                z[:, j] = self.rng.standard_t(5, size=n)
            else:
                z[:, j] = self.rng.lognormal(0.0, 0.5, size=n)
        x: F64 = z @ self.mix
        if flip:  # same marginals, opposite correlation between features 0 and 1
            x[:, 1] = 2.0 * np.mean(x[:, 1]) - x[:, 1]
        return x


def scores(rng: np.random.Generator, n: int, shift: float) -> tuple[F64, F64]:
    x = rng.normal(shift, 1.5, n)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-1.2 * x))).astype(np.float64)
    return 1.0 / (1.0 + np.exp(-(0.9 * x + 0.3))), y


# ----------------------------------------------------------------- NannyML (optional)


def load_nannyml() -> Any | None:
    os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")  # no telemetry from a benchmark
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import nannyml  # type: ignore[import-untyped]
    except Exception:
        return None
    return nannyml


def nannyml_pca(nml: Any, ref: F64, win: F64, repeat: int) -> tuple[float, float]:
    import pandas as pd  # type: ignore[import-untyped]

    cols = [f"f{j}" for j in range(ref.shape[1])]
    rdf = pd.DataFrame(ref, columns=cols)
    wdf = pd.DataFrame(win, columns=cols)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        calc = nml.DataReconstructionDriftCalculator(column_names=cols, chunk_size=len(win))
        calc.fit(rdf)
        value = float(
            calc.calculate(wdf)
            .filter(period="analysis")
            .to_df()[("reconstruction_error", "value")][0]
        )
        ms = best_of(lambda: calc.calculate(wdf), repeat)
    return ms, value


def nannyml_cbpe(
    nml: Any, ref: tuple[F64, F64], win: tuple[F64, F64], repeat: int
) -> tuple[float, dict[str, float]]:
    import nannyml.performance_estimation.confidence_based.cbpe as cbpe_module  # type: ignore[import-untyped]
    import pandas as pd

    def frame(s: F64, y: F64) -> Any:
        return pd.DataFrame({"s": s, "y": y, "p": (s >= 0.5).astype(np.int64)})

    metrics = ["roc_auc", "f1", "precision", "recall", "accuracy"]
    saved = cbpe_module.needs_calibration
    cbpe_module.needs_calibration = lambda **_: True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = nml.CBPE(
                y_pred_proba="s",
                y_pred="p",
                y_true="y",
                problem_type="classification_binary",
                metrics=metrics,
                chunk_size=len(win[0]),
            )
            est.fit(frame(*ref))
            wdf = frame(*win)
            res = est.estimate(wdf).filter(period="analysis").to_df()
            values = {m: float(res[(m, "value")][0]) for m in metrics}
            ms = best_of(lambda: est.estimate(wdf), repeat)
    finally:
        cbpe_module.needs_calibration = saved
    return ms, values


# ----------------------------------------------------------------- stationary stream


def stationary_breaches(
    models: dict[str, MV.MultivariateModel],
    thresholds: dict[str, float],
    centres: dict[str, float],
    src: Source,
    window: int,
    step: int,
    events: int,
) -> tuple[dict[str, int], int, dict[str, float]]:
    """Slide a count window over ``events`` fresh stationary rows; count breaches and the
    largest share of the headroom used, ``(statistic - centre) / (threshold - centre)`` with
    the centre of the resampled null (1 = a breach)."""
    buf = src.rows(window)
    breaches = dict.fromkeys(models, 0)
    largest = dict.fromkeys(models, -math.inf)
    evaluations = 0
    head = 0
    for pos in range(window, window + events, step):
        new = src.rows(step)
        for i in range(0, step, window):  # a step larger than the window keeps its tail
            part = new[i : i + window]
            idx = (head + np.arange(part.shape[0])) % window
            buf[idx] = part
            head = (head + part.shape[0]) % window
        evaluations += 1
        for name, model in models.items():
            stat = model.statistic(buf, seed=MV.window_seed(1, pos))
            used = (stat - centres[name]) / (thresholds[name] - centres[name])
            largest[name] = max(largest[name], used)
            breaches[name] += stat > thresholds[name]
    return breaches, evaluations, largest


# ----------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.multivariate", description=__doc__)
    ap.add_argument("--json", action="store_true", help="end with one JSON line")
    ap.add_argument("--rows", type=int, default=5000, help="window rows")
    ap.add_argument("--reference-rows", type=int, default=20_000)
    ap.add_argument("--features", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--step", type=int, default=1000)
    ap.add_argument("--stationary-events", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=20261201)
    args = ap.parse_args(argv)

    compile_s = warm_up()
    src = Source(args.features, args.seed)
    ref = src.rows(args.reference_rows)
    win = src.rows(args.rows, flip=True)
    rng = np.random.default_rng(args.seed + 2)
    ref_scores = scores(rng, args.reference_rows, 0.5)
    win_scores = scores(rng, args.rows, -0.3)
    alpha = alert_budget(1.0, args.step, args.features + 2).alpha

    t0 = time.perf_counter()
    pca = MV.fit("pca_reconstruction", ref, seed=args.seed)
    pca_fit_ms = (time.perf_counter() - t0) * 1e3
    t0 = time.perf_counter()
    mmd = MV.fit("mmd", ref, seed=args.seed)
    mmd_fit_ms = (time.perf_counter() - t0) * 1e3
    pca_cal = pca.calibrate(args.rows, alpha, seed=args.seed)
    mmd_cal = mmd.calibrate(args.rows, alpha, seed=args.seed)
    t0 = time.perf_counter()
    cbpe = fit_cbpe(*ref_scores)
    cbpe_fit_ms = (time.perf_counter() - t0) * 1e3

    pca_value = pca.statistic(win)
    pca_ms = best_of(lambda: pca.statistic(win), args.repeat)
    mmd_value = mmd.statistic(win, seed=1)
    mmd_ms = best_of(lambda: mmd.statistic(win, seed=1), args.repeat)
    sub = mmd.subsample(win, seed=1)
    mmd_np_value = KM.mmd2_np(mmd.reference, sub, mmd.gamma, mmd.krr)
    mmd_np_ms = best_of(
        lambda: KM.mmd2_np(mmd.reference, sub, mmd.gamma, mmd.krr), max(1, args.repeat // 3)
    )
    cbpe_values = cbpe.estimate_values(win_scores[0])
    cbpe_ms = best_of(lambda: cbpe.estimate(win_scores[0]), args.repeat)

    nml = load_nannyml()
    nml_pca_ms = nml_pca_value = nml_cbpe_ms = None
    nml_cbpe_values: dict[str, float] | None = None
    if nml is not None:
        nml_pca_ms, nml_pca_value = nannyml_pca(nml, ref, win, args.repeat)
        nml_cbpe_ms, nml_cbpe_values = nannyml_cbpe(nml, ref_scores, win_scores, args.repeat)

    breaches: dict[str, int] = {}
    largest: dict[str, float] = {}
    evaluations = 0
    stationary_s = 0.0
    if args.stationary_events > 0:
        t0 = time.perf_counter()
        breaches, evaluations, largest = stationary_breaches(
            {"pca_reconstruction": pca, "mmd": mmd},
            {"pca_reconstruction": pca_cal.threshold, "mmd": mmd_cal.threshold},
            {"pca_reconstruction": pca.errors_mean, "mmd": float(mmd_cal.null["mean"] or 0.0)},
            src,
            args.rows,
            args.step,
            args.stationary_events,
        )
        stationary_s = time.perf_counter() - t0

    cpus = os.cpu_count()
    shape = f"window {args.rows} x {args.features}, reference {args.reference_rows} rows"
    print(f"os.cpu_count() = {cpus}; warm-up (compile or cache load) {compile_s:.2f} s")
    print(
        f"{shape}; alpha per evaluation {alpha:.3g} (1 false alert / 1M events, step {args.step})"
    )
    print(f"per evaluation (best of {args.repeat}):")
    line = f"  pca_reconstruction  driftd {pca_ms:8.2f} ms"
    if nml_pca_ms is not None and nml_pca_value is not None:
        line += (
            f"   NannyML {nml_pca_ms:8.2f} ms  (x{nml_pca_ms / pca_ms:.0f})"
            f"   |diff| {abs(pca_value - nml_pca_value):.1e}"
        )
    print(line)
    print(
        f"  mmd (1000 x 1000)   driftd {mmd_ms:8.2f} ms   NumPy twin {mmd_np_ms:8.2f} ms"
        f"   |diff| {abs(mmd_value - mmd_np_value):.1e}   (NannyML has no MMD)"
    )
    line = f"  cbpe estimate       driftd {cbpe_ms:8.2f} ms"
    if nml_cbpe_ms is not None and nml_cbpe_values is not None:
        diff = max(abs(cbpe_values[m] - v) for m, v in nml_cbpe_values.items())
        line += (
            f"   NannyML {nml_cbpe_ms:8.2f} ms  (x{nml_cbpe_ms / cbpe_ms:.0f})   |diff| {diff:.1e}"
        )
    print(line)
    if nml is None:
        print("  NannyML: not installed, comparison skipped")
    print(
        f"one-off: fit pca {pca_fit_ms:.0f} ms, mmd {mmd_fit_ms:.0f} ms, cbpe {cbpe_fit_ms:.0f} ms;"
        f" calibrate pca {pca_cal.seconds:.2f} s, mmd {mmd_cal.seconds:.2f} s"
    )
    print(
        f"thresholds: pca {pca_cal.threshold:.4f} (statistic on the flipped window"
        f" {pca_value:.4f}), mmd {mmd_cal.threshold:.3g} ({mmd_value:.3g})"
    )
    if evaluations:
        print(
            f"stationary: {args.stationary_events} events, {evaluations} evaluations in"
            f" {stationary_s:.0f} s: breaches {breaches}, largest share of the headroom"
            f" {', '.join(f'{k} {v:.3f}' for k, v in largest.items())}"
        )

    def r(x: float | None, nd: int = 3) -> float | None:
        return None if x is None else round(x, nd)

    result: dict[str, Any] = {
        "benchmark": "multivariate",
        "cpu_count": cpus,
        "window_rows": args.rows,
        "reference_rows": args.reference_rows,
        "features": args.features,
        "alpha": alpha,
        "nannyml": None if nml is None else str(nml.__version__),
        "pca_ms": r(pca_ms),
        "nannyml_pca_ms": r(nml_pca_ms),
        "pca_abs_diff_vs_nannyml": None
        if nml_pca_value is None
        else abs(pca_value - nml_pca_value),
        "mmd_ms": r(mmd_ms),
        "mmd_numpy_ms": r(mmd_np_ms),
        "mmd_window_rows": mmd.window_rows,
        "mmd_reference_rows": int(mmd.reference.shape[0]),
        "cbpe_ms": r(cbpe_ms),
        "nannyml_cbpe_ms": r(nml_cbpe_ms),
        "cbpe_max_abs_diff_vs_nannyml": None
        if nml_cbpe_values is None
        else max(abs(cbpe_values[m] - v) for m, v in nml_cbpe_values.items()),
        "fit_ms": {"pca": r(pca_fit_ms), "mmd": r(mmd_fit_ms), "cbpe": r(cbpe_fit_ms)},
        "calibrate_s": {"pca": r(pca_cal.seconds), "mmd": r(mmd_cal.seconds)},
        "thresholds": {"pca": pca_cal.threshold, "mmd": mmd_cal.threshold},
        "flipped_statistic": {"pca": pca_value, "mmd": mmd_value},
        "stationary_events": args.stationary_events,
        "stationary_evaluations": evaluations,
        "stationary_breaches": breaches,
        "stationary_max_ratio": {k: round(v, 4) for k, v in largest.items()},
        "warm_up_s": round(compile_s, 3),
    }
    if args.json:
        print(json.dumps(result, separators=(",", ":")))
    return result


if __name__ == "__main__":
    main()

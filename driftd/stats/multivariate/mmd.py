"""Maximum mean discrepancy: a kernel two-sample test on bounded, seeded subsamples.

**Fit** (on the reference rows, numeric features): each feature is standardised by the
reference mean and population standard deviation (so no feature's units dominate the
distances; missing values become the mean, i.e. 0) and the rows are shuffled with ``seed``:
the first ``reference_rows`` (≤ half the reference) become the fixed reference subsample
``R``, the next ``pool_rows`` the calibration pool. The Gaussian kernel
``k(x, y) = exp(-‖x - y‖² / (2σ²))`` takes its bandwidth from the median heuristic on ``R``
(``2σ² =`` the median squared distance between distinct rows of ``R``, as alibi-detect's
``sigma_median``), fixed from then on.

**Statistic**: the biased MMD² (V-statistic, never negative) between ``R`` and at most
``window_rows`` rows of the window drawn without replacement with the caller's ``seed``
(the whole window when it is smaller) — :func:`driftd.kernels.multivariate.mmd2`, whose cost
is ``O((r + m) m d)``, bounded whatever the window size.

**Calibration**: conditional on ``R``, a stationary window's subsample is ``m`` rows from the
population; the pool — reference rows *not* in ``R`` — stands in for it, and each resample is
``m`` distinct pool rows. Drawing from a finite pool removes the finite-population share
``m / pool`` of the window's variance and adds the pool's own deviation from the population,
``1 / pool``: on average the two cancel. The resampled MMD² values go through
:func:`driftd.stats.calibrate.statistic_threshold` as a quadratic statistic (its null is a
weighted sum of χ²₁ variables, like PSI's): tail fit, extrapolation to ``alpha`` and a 10 %
margin on the deviation (× 1.21 on MMD²). The kernel is bounded, so one extreme row moves
MMD² by at most ``O(1/m)``: no single-big-jump term is needed. A pool smaller than the window
subsample is drawn whole (a smaller sample, a wider null: conservative, noted).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from driftd.kernels import multivariate as K
from driftd.stats.calibrate import (
    DEFAULT_RESAMPLES,
    MARGIN,
    MIN_RESAMPLES,
    Calibration,
    statistic_threshold,
)
from driftd.stats.multivariate._common import FloatArray, as_rows, cpus, names

DEFAULT_REFERENCE_ROWS = 1000
DEFAULT_WINDOW_ROWS = 1000
DEFAULT_POOL_ROWS = 5000
_CHUNK = 32  # resamples per kernel call (one task for the calibration threads)


def _no_categorical(cat: npt.ArrayLike | None) -> None:
    if cat is not None and np.asarray(cat).size:
        raise ValueError("mmd compares numeric features only: pass no categorical columns")


@dataclass(frozen=True, slots=True, eq=False)
class MMD:
    """A fitted MMD statistic (build with :func:`fit_mmd`)."""

    method: ClassVar[str] = "mmd"
    categorical: ClassVar[tuple[str, ...]] = ()  # numeric features only

    numeric: tuple[str, ...]
    center: FloatArray  # (p,) reference means
    scale: FloatArray  # (p,) reference standard deviations (1 for constant columns)
    reference: FloatArray  # (r, p) standardised reference subsample R
    pool: FloatArray  # (pool, p) standardised calibration rows, disjoint from R
    gamma: float  # 1 / (2σ²)
    krr: float  # mean k over R × R, diagonal included
    window_rows: int  # at most this many window rows per evaluation
    rows: int  # reference rows fitted on

    @property
    def sigma(self) -> float:
        """The kernel bandwidth σ, in reference standard deviations."""
        return math.sqrt(0.5 / self.gamma)

    def standardise(self, num: npt.ArrayLike | None) -> FloatArray:
        """Rows standardised by the reference, missing values at the mean (0)."""
        x = as_rows(num, len(self.numeric))
        z = (x - self.center) / self.scale
        return np.ascontiguousarray(np.where(np.isnan(z), 0.0, z))

    def subsample(self, num: npt.ArrayLike | None, seed: int = 0) -> FloatArray:
        """At most :attr:`window_rows` standardised rows, drawn without replacement."""
        x = as_rows(num, len(self.numeric))
        if x.shape[0] > self.window_rows:
            rng = np.random.default_rng(seed)
            # sorted: the rows are then read in memory order
            x = x[np.sort(rng.choice(x.shape[0], self.window_rows, replace=False))]
        return self.standardise(x)

    def statistic(
        self, num: npt.ArrayLike | None, cat: npt.ArrayLike | None = None, *, seed: int = 0
    ) -> float:
        """Biased MMD² between the reference subsample and the window's (``seed`` picks the
        window subsample when the window has more than :attr:`window_rows` rows); NaN for an
        empty window. ``cat`` must have no columns (numeric features only)."""
        _no_categorical(cat)
        s = self.subsample(num, seed)
        return float(K.mmd2(self.reference, s, self.gamma, self.krr))

    def calibrate(
        self,
        window_events: int,
        alpha: float,
        *,
        resamples: int = DEFAULT_RESAMPLES,
        seed: int = 0,
        margin: float = MARGIN,
        workers: int | None = None,
    ) -> Calibration:
        """Threshold on :meth:`statistic` for windows of ``window_events`` rows (module
        docstring). Deterministic for a given ``seed`` whatever ``workers`` (default: one
        thread per CPU; the kernel releases the GIL)."""
        if window_events < 2:
            raise ValueError("window_events must be at least 2")
        if not 0.0 < alpha < 1.0:
            raise ValueError("alpha must be in (0, 1)")
        if resamples < MIN_RESAMPLES:
            raise ValueError(f"resamples must be at least {MIN_RESAMPLES}")
        if not margin >= 0.0:
            raise ValueError("margin must be >= 0")
        t0 = time.perf_counter()
        n_pool = int(self.pool.shape[0])
        m = min(int(window_events), self.window_rows)
        notes: list[str] = []
        if n_pool < 2:
            raise ValueError("mmd calibration needs a pool of at least 2 reference rows")
        if m > n_pool:
            notes.append(
                f"pool of {n_pool} rows < window subsample of {m}: null drawn with {n_pool} "
                "rows (conservative)"
            )
            m = n_pool
        rng = np.random.default_rng(seed)
        idx = np.empty((resamples, m), dtype=np.int64)
        for b in range(resamples):
            idx[b] = np.sort(rng.choice(n_pool, m, replace=False))
        cross = K.kernel_row_means(self.pool, self.reference, self.gamma)
        chunks = [idx[i : i + _CHUNK] for i in range(0, resamples, _CHUNK)]

        def run(chunk: npt.NDArray[np.int64]) -> FloatArray:
            return K.null_mmd2(self.pool, cross, chunk, self.gamma, self.krr)

        n_workers = max(1, min(workers if workers is not None else cpus(), len(chunks)))
        if n_workers == 1:
            parts = [run(c) for c in chunks]
        else:
            with ThreadPoolExecutor(n_workers, thread_name_prefix="calibrate-mmd") as pool:
                parts = list(pool.map(run, chunks))
        stats = np.concatenate(parts)
        thr, null = statistic_threshold(stats, alpha, 2, margin)
        null.update({"gamma": self.gamma, "window_subsample": float(m), "pool": float(n_pool)})
        method = "pool-subsample:tail-fit"
        if thr is None:  # all resamples equal (a constant reference): any change drifts
            thr = float(np.max(stats)) if stats.size else 0.0
            method = "pool-subsample:degenerate"
            notes.append("degenerate null: threshold at the largest resampled MMD²")
        return Calibration(
            test=self.method,
            threshold_kind="statistic",
            threshold=float(thr),
            alpha=alpha,
            method=method,
            resamples=resamples,
            window_events=int(window_events),
            window_values=m,
            null=null,
            seconds=time.perf_counter() - t0,
            seed=seed,
            notes=tuple(notes),
        )

    # ----------------------------------------------------------------- state

    def to_state(self) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
        """``(meta, arrays)``: JSON-ready metadata and plain NumPy arrays (no pickle)."""
        meta: dict[str, Any] = {
            "method": self.method,
            "numeric": list(self.numeric),
            "gamma": self.gamma,
            "krr": self.krr,
            "window_rows": self.window_rows,
            "rows": self.rows,
        }
        arrays: dict[str, npt.NDArray[Any]] = {
            "center": self.center,
            "scale": self.scale,
            "reference": self.reference,
            "pool": self.pool,
        }
        return meta, arrays

    @staticmethod
    def from_state(meta: dict[str, Any], arrays: dict[str, npt.NDArray[Any]]) -> MMD:
        """Inverse of :meth:`to_state`; ``ValueError`` on inconsistent state."""
        if meta.get("method") != MMD.method:
            raise ValueError(f"not an mmd state: {meta.get('method')!r}")
        numeric = tuple(str(v) for v in meta["numeric"])
        p = len(numeric)
        center = np.ascontiguousarray(arrays["center"], dtype=np.float64)
        scale = np.ascontiguousarray(arrays["scale"], dtype=np.float64)
        ref = np.ascontiguousarray(arrays["reference"], dtype=np.float64).reshape(-1, p)
        pool = np.ascontiguousarray(arrays["pool"], dtype=np.float64).reshape(-1, p)
        if center.shape != (p,) or scale.shape != (p,):
            raise ValueError("mmd state: inconsistent dimensions")
        return MMD(
            numeric=numeric,
            center=center,
            scale=scale,
            reference=ref,
            pool=pool,
            gamma=float(meta["gamma"]),
            krr=float(meta["krr"]),
            window_rows=int(meta["window_rows"]),
            rows=int(meta["rows"]),
        )


def fit_mmd(
    num: npt.ArrayLike,
    cat: npt.ArrayLike | None = None,
    *,
    numeric: Sequence[str] = (),
    reference_rows: int = DEFAULT_REFERENCE_ROWS,
    window_rows: int = DEFAULT_WINDOW_ROWS,
    pool_rows: int = DEFAULT_POOL_ROWS,
    seed: int = 0,
) -> MMD:
    """Fit on the reference rows ``num`` (``(n, p)`` floats, NaN missing); ``cat`` must be
    ``None`` or have no columns — MMD here compares numeric features only. ``seed`` picks the
    reference subsample and the pool."""
    raw = np.asarray(num, dtype=np.float64)
    if raw.ndim != 2 or raw.shape[1] == 0:
        raise ValueError(f"num must have shape (rows, columns >= 1), got {raw.shape}")
    x = as_rows(raw, raw.shape[1])
    n, p = x.shape
    _no_categorical(cat)
    if reference_rows < 2 or window_rows < 2 or pool_rows < 2:
        raise ValueError("reference_rows, window_rows and pool_rows must be at least 2")
    if n < 4:
        raise ValueError("mmd needs at least 4 reference rows")
    with np.errstate(all="ignore"):
        center = np.nanmean(x, axis=0)
        std = np.nanstd(x, axis=0)
    center = np.where(np.isfinite(center), center, 0.0)
    scale = np.where(np.isfinite(std) & (std > 0.0), std, 1.0)
    z = (x - center) / scale
    z = np.where(np.isnan(z), 0.0, z)
    order = np.random.default_rng(seed).permutation(n)
    r = min(reference_rows, n // 2)
    ref = np.ascontiguousarray(z[np.sort(order[:r])])
    pool = np.ascontiguousarray(z[np.sort(order[r : r + pool_rows])])
    d2 = K.sq_dists_upper(ref)
    med = float(np.median(d2))
    if not med > 0.0:  # mostly tied rows: the mean of the positive distances, else 1
        pos = d2[d2 > 0.0]
        med = float(np.mean(pos)) if pos.size else 1.0
    gamma = 1.0 / med
    return MMD(
        numeric=names(numeric, p, "x"),
        center=np.ascontiguousarray(center),
        scale=np.ascontiguousarray(scale),
        reference=ref,
        pool=pool,
        gamma=gamma,
        krr=float(K.kernel_mean_self(ref, gamma)),
        window_rows=int(window_rows),
        rows=n,
    )


__all__ = [
    "DEFAULT_POOL_ROWS",
    "DEFAULT_REFERENCE_ROWS",
    "DEFAULT_WINDOW_ROWS",
    "MMD",
    "fit_mmd",
]

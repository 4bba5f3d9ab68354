"""Isotonic regression by pool-adjacent-violators, for CBPE's calibration map
(:mod:`driftd.performance.cbpe`).

The fit follows scikit-learn's ``IsotonicRegression(increasing=True)``: points sorted by
``x`` (then ``y``), duplicate ``x`` merged into their weighted mean (:func:`merge_ties`, with
scikit-learn's rule that a value within ``resolution = 1e-15`` of a group's first ``x`` joins
the group), then :func:`pav` on the merged points. Prediction is linear interpolation between
the fitted points, clipped to their range (``out_of_bounds="clip"``), which ``np.interp``
does.

Each kernel has a NumPy twin (suffix ``_np``) that solves the same problem another way.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from driftd.kernels._jit import kernel

FloatArray = npt.NDArray[np.float64]

RESOLUTION = float(np.finfo(np.float64).resolution)  # 1e-15, sklearn's _make_unique eps


@kernel
def merge_ties(
    x: FloatArray, y: FloatArray, w: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``(x, weighted mean y, total w)`` per group of equal ``x`` in the ascending ``x``; a
    value joins the current group when it is less than :data:`RESOLUTION` above the group's
    first value, which stands for the group."""
    n = x.shape[0]
    ux = np.empty(n, dtype=np.float64)
    uy = np.empty(n, dtype=np.float64)
    uw = np.empty(n, dtype=np.float64)
    if n == 0:
        return ux, uy, uw
    g = 0
    cx = x[0]
    cy = 0.0
    cw = 0.0
    for j in range(n):
        if x[j] - cx >= RESOLUTION:
            ux[g] = cx
            uy[g] = cy / cw
            uw[g] = cw
            g += 1
            cx = x[j]
            cy = 0.0
            cw = 0.0
        cy += y[j] * w[j]
        cw += w[j]
    ux[g] = cx
    uy[g] = cy / cw
    uw[g] = cw
    return ux[: g + 1], uy[: g + 1], uw[: g + 1]


@kernel
def pav(y: FloatArray, w: FloatArray) -> FloatArray:
    """The non-decreasing sequence closest to ``y`` in weighted least squares (weights ``w``
    > 0): pool adjacent violators with a stack of blocks, ``O(n)``. A block is merged into the
    one before it while that one's mean is not below its own (equal means merged too, as
    scikit-learn does; it changes no fitted value)."""
    n = y.shape[0]
    mean = np.empty(n, dtype=np.float64)
    weight = np.empty(n, dtype=np.float64)
    wsum = np.empty(n, dtype=np.float64)  # Σ w·y of the block, so merges are exact sums
    end = np.empty(n, dtype=np.int64)
    nb = 0
    for i in range(n):
        mean[nb] = y[i]
        weight[nb] = w[i]
        wsum[nb] = w[i] * y[i]
        end[nb] = i
        nb += 1
        while nb > 1 and mean[nb - 2] >= mean[nb - 1]:
            wsum[nb - 2] += wsum[nb - 1]
            weight[nb - 2] += weight[nb - 1]
            mean[nb - 2] = wsum[nb - 2] / weight[nb - 2]
            end[nb - 2] = end[nb - 1]
            nb -= 1
    out = np.empty(n, dtype=np.float64)
    start = 0
    for b in range(nb):
        for i in range(start, end[b] + 1):
            out[i] = mean[b]
        start = end[b] + 1
    return out


# --------------------------------------------------------------------------- NumPy twins


def merge_ties_np(
    x: FloatArray, y: FloatArray, w: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """NumPy twin of :func:`merge_ties` (group starts found in one pass of Python, sums by
    ``np.add.reduceat``)."""
    n = x.shape[0]
    if n == 0:
        e = np.empty(0, dtype=np.float64)
        return e, e.copy(), e.copy()
    starts = [0]
    for j in range(1, n):
        if x[j] - x[starts[-1]] >= RESOLUTION:
            starts.append(j)
    s = np.asarray(starts, dtype=np.int64)
    tw = np.add.reduceat(w, s)
    ty = np.add.reduceat(w * y, s)
    return x[s].astype(np.float64), ty / tw, tw


def pav_np(y: FloatArray, w: FloatArray) -> FloatArray:
    """NumPy twin of :func:`pav`: merge the first adjacent violating pair of blocks and start
    over, until none is left (``O(n²)``, for tests)."""
    blocks = [[float(w[i] * y[i]), float(w[i]), 1] for i in range(y.shape[0])]
    changed = True
    while changed:
        changed = False
        for b in range(len(blocks) - 1):
            m0 = blocks[b][0] / blocks[b][1]
            m1 = blocks[b + 1][0] / blocks[b + 1][1]
            if m0 >= m1:
                nxt = blocks.pop(b + 1)
                blocks[b] = [blocks[b][0] + nxt[0], blocks[b][1] + nxt[1], blocks[b][2] + nxt[2]]
                changed = True
                break
    out = [bl[0] / bl[1] for bl in blocks for _ in range(int(bl[2]))]
    return np.asarray(out, dtype=np.float64)

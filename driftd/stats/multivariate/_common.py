"""Input checks and helpers shared by the multivariate statistics."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def as_rows(num: npt.ArrayLike | None, columns: int, what: str = "num") -> FloatArray:
    """``num`` as a float64 C-contiguous ``(n, columns)`` array (``None`` or a 1-D empty array:
    no columns). NaN marks a missing value; ±inf is treated as missing too."""
    if num is None:
        a = np.zeros((0, columns), dtype=np.float64)
    else:
        a = np.asarray(num, dtype=np.float64)
        if a.ndim == 1 and a.size == 0:
            a = a.reshape(0, columns)
    if a.ndim != 2 or a.shape[1] != columns:
        raise ValueError(f"{what} must have shape (rows, {columns}), got {a.shape}")
    if not np.isfinite(a).all():
        a = np.where(np.isfinite(a), a, np.nan)
    return np.ascontiguousarray(a)


def as_codes(cat: npt.ArrayLike | None, columns: int, rows: int) -> IntArray:
    """Category codes as int64 ``(rows, columns)``: ``-1`` missing, ``>= k`` unseen (the
    windows' int32 layout, :mod:`driftd.windows.count`)."""
    if cat is None:
        if columns:
            raise ValueError(f"cat must have shape ({rows}, {columns}), got None")
        return np.zeros((rows, 0), dtype=np.int64)
    a = np.asarray(cat)
    if a.ndim == 1 and a.size == 0:
        a = a.reshape(rows, 0) if rows == 0 or columns == 0 else a
    if a.ndim != 2 or a.shape != (rows, columns):
        raise ValueError(f"cat must have shape ({rows}, {columns}), got {a.shape}")
    if a.dtype.kind not in "iu":
        raise ValueError(f"cat must hold integer category codes, got dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.int64)


def names(given: Sequence[str], count: int, prefix: str) -> tuple[str, ...]:
    """Feature names: ``given`` (must match ``count``) or ``prefix0, prefix1, …``."""
    if not given:
        return tuple(f"{prefix}{i}" for i in range(count))
    if len(given) != count:
        raise ValueError(f"{len(given)} names for {count} {prefix} columns")
    return tuple(str(g) for g in given)


def cpus() -> int:
    """CPUs this process may run on (the affinity mask, where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1

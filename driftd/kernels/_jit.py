"""The one place kernels are compiled: ``numba.njit(cache=True, nogil=True)`` with types kept.

``numba`` is untyped for mypy, so the decorator is wrapped to return the function's own type.
With ``NUMBA_DISABLE_JIT=1`` numba hands back the Python function unchanged, which is how CI
runs the same kernel tests a second time as plain Python.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba

F = TypeVar("F", bound=Callable[..., Any])


def kernel(fn: F) -> F:
    """Compile ``fn`` in nopython mode, cached on disk, releasing the GIL."""
    return cast(F, numba.njit(cache=True, nogil=True)(fn))

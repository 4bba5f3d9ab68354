"""NumPy array aliases shared from the kernels up (a module of their own: ``driftd.types`` and
the config stay free of NumPy, and the kernels must not import higher layers for them)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

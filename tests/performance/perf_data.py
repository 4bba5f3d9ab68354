"""Seeded labelled windows shared by the performance tests."""

from __future__ import annotations

import numpy as np


def credit_window(
    rng: np.random.Generator, n: int, accuracy: float, default_rate: float = 0.3
) -> tuple[np.ndarray, np.ndarray]:
    """A classifier window with the given expected accuracy: scores on the right side of 0.5
    for correct events, on the wrong side otherwise."""
    y = (rng.random(n) < default_rate).astype(np.float64)
    correct = rng.random(n) < accuracy
    predicted = np.where(correct, y, 1.0 - y)
    s = np.where(predicted > 0, 0.5 + 0.5 * rng.random(n), 0.5 * rng.random(n))
    return s, y

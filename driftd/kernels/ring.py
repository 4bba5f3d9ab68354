"""Ring-buffer append for count windows: ``(batch, n_features)`` rows into ``(W, n_features)``."""

from __future__ import annotations

import numpy as np

from driftd.arrays import FloatArray
from driftd.kernels._jit import kernel


@kernel
def ring_append(buf: FloatArray, head: int, block: FloatArray) -> int:
    """Write the rows of ``block`` into ``buf`` starting at row ``head`` (wrapping) and return
    the new head. When ``block`` has more rows than ``buf``, only its last ``W`` rows land.
    ``buf`` and ``block`` must have the same number of columns."""
    w = buf.shape[0]
    nb = block.shape[0]
    nf = block.shape[1]
    if w == 0:
        return 0
    start = 0
    if nb > w:
        start = nb - w
        head = (head + start) % w
    h = head % w
    for r in range(start, nb):
        for c in range(nf):
            buf[h, c] = block[r, c]
        h += 1
        if h == w:
            h = 0
    return int(h)


def ring_append_np(buf: FloatArray, head: int, block: FloatArray) -> int:
    """NumPy twin of :func:`ring_append`."""
    w = buf.shape[0]
    if w == 0:
        return 0
    nb = block.shape[0]
    if nb > w:
        head = (head + nb - w) % w
        block = block[nb - w :]
        nb = w
    idx = (head + np.arange(nb)) % w
    buf[idx] = block
    return int((head + nb) % w)

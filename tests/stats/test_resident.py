"""Releasing LLVM's resident pages after the warm-up leaves every kernel working and lowers
the process's file-backed RSS (on Linux)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from driftd import kernels
from driftd.kernels import _resident, twosample


def _rss_file_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("RssFile:"):
                return int(line.split()[1])
    return 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/smaps is Linux's")
def test_kernels_run_after_the_pages_are_released() -> None:
    kernels.warm_up()  # releases at its end
    a = np.sort(np.random.default_rng(0).normal(size=500))
    b = np.sort(np.random.default_rng(1).normal(size=300))
    want = twosample.cdf_distances(a, b)[0]
    before = _rss_file_kb()
    _resident.release_llvm_pages()
    assert _rss_file_kb() <= before + 1024
    assert twosample.wasserstein(a, b) == want
    assert abs(twosample.wasserstein_np(a, b) - want) < 1e-12
    for m in _resident._mappings():
        if _resident.LIBRARY in str(m["path"]) and "w" in str(m["perms"]):
            assert m.get("Rss", 0) >= 0  # writable mappings are never touched

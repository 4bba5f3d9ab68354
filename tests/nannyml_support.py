"""NannyML for the equality tests (a test-only dependency, ``[test]`` extra).

Imported with its usage telemetry off and its import-time warnings silenced; every call into
NannyML goes through :func:`quiet`, since the suite turns warnings into errors and NannyML
warns about things that do not matter here (few chunks, pandas deprecations).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"  # no network calls from a test


@contextmanager
def quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


with quiet():
    import nannyml  # noqa: E402
    import nannyml.performance_estimation.confidence_based.cbpe as _cbpe_module  # noqa: E402

nml: Any = nannyml


@contextmanager
def calibration_forced() -> Iterator[None]:
    """NannyML's CBPE fits its isotonic calibrator only when ``needs_calibration`` (a
    shuffled 10-fold ECE comparison) says so; driftd always calibrates. Force it on so the
    two compute the same thing."""
    saved = _cbpe_module.needs_calibration
    _cbpe_module.needs_calibration = lambda **_: True
    try:
        yield
    finally:
        _cbpe_module.needs_calibration = saved

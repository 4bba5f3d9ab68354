"""The Python API: :func:`compare` two tables, build and save a reference :class:`Profile`,
as the daemon does (its own code, reached through :mod:`driftd.api._engine`)."""

from __future__ import annotations

from driftd.api.comparison import compare
from driftd.api.profile import Profile
from driftd.api.result import DriftReport, FeatureResult

__all__ = ["DriftReport", "FeatureResult", "Profile", "compare"]

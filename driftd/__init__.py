"""driftd: streaming drift detection."""

from __future__ import annotations

from driftd._version import __version__

__all__ = ["__version__"]

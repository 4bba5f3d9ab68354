from __future__ import annotations

from driftd.cli import entry

entry()

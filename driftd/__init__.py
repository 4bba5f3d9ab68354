"""driftd: streaming drift detection — and, in Python, the same tests on two tables.

Public API (documented in docs/python-api.md)::

    report = driftd.compare(reference, current)       # DataFrame / pyarrow Table / dict / files
    profile = driftd.Profile.build(reference, config="driftd.yaml", monitor="credit")
    profile.save("credit.json")
    for line in driftd.replay("events.jsonl", config="driftd.yaml"): ...  # as `driftd replay`
    driftd.report("report.html", reference=profile, current=current)

``compare``, ``Profile``, ``DriftReport``, ``FeatureResult`` and ``replay`` are imported on
first use, so ``import driftd`` (and the CLI) stays light. Nothing inside the package imports
from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from driftd._version import __version__

# `driftd.report` is both a subpackage and the function users call: importing the function
# here binds the name to it (the submodule's own code imports nothing heavy at import time).
from driftd.report import report

if TYPE_CHECKING:
    from driftd.api import DriftReport, FeatureResult, Profile, compare
    from driftd.runtime.replay import replay

__all__ = [
    "DriftReport",
    "FeatureResult",
    "Profile",
    "__version__",
    "compare",
    "replay",
    "report",
]

_LAZY = {"compare", "Profile", "DriftReport", "FeatureResult"}


def __getattr__(name: str) -> Any:
    if name == "replay":
        from driftd.runtime.replay import replay

        globals()["replay"] = replay
        return replay
    if name in _LAZY:
        import driftd.api

        value = getattr(driftd.api, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'driftd' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _LAZY | {"replay"})

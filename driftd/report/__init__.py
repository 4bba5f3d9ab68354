"""The HTML report: one self-contained page (plotly.js and the data inline) per run.

This module is imported with ``import driftd`` (``driftd.report`` is the function below), so
it imports nothing heavy itself; the work is in :mod:`driftd.report.compared`,
:mod:`driftd.report.replayed` and :mod:`driftd.report.page`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from driftd.config import Config

__all__ = ["report"]


def report(
    out: str | Path,
    *,
    reference: Any = None,
    current: Any = None,
    replay: str | Path | Iterable[Mapping[str, Any]] | None = None,
    profile: Any = None,
    events: Any = None,
    config: str | Path | Config | None = None,
    monitor: str | None = None,
    features: Sequence[str] | Mapping[str, Any] | None = None,
    tests: str | Mapping[str, Any] | None = None,
    thresholds: float | Mapping[str, Any] | None = None,
    format: str | None = None,
    title: str | None = None,
) -> Path:
    """Write one self-contained HTML report to ``out`` and return its path.

    Either (a) ``reference`` (a :class:`driftd.Profile`, a table or event files) and
    ``current`` (a table or event files): one comparison, as :func:`driftd.compare` makes it
    (same ``features``, ``tests``, ``thresholds``, ``config``, ``monitor``, ``format``); or
    (b) ``replay``: the output of ``driftd replay`` (a JSONL path, or its lines as dicts), with
    optionally ``profile`` (the reference, for the distributions; by default the monitor's
    profile from ``config`` when given) and ``events`` (the replay input, to overlay each
    version's data on the reference).
    """
    from driftd.report.compared import from_compare
    from driftd.report.page import write_page
    from driftd.report.replayed import from_replay

    if replay is not None:
        if reference is not None or current is not None:
            raise TypeError("give either replay= or reference= and current=, not both")
        model = from_replay(
            replay, profile=profile, events=events, config=config, monitor=monitor, fmt=format
        )
    else:
        if reference is None or current is None:
            raise TypeError("give reference= and current= (or replay=)")
        model = from_compare(
            reference,
            current,
            config=config,
            monitor=monitor,
            features=features,
            tests=tests,
            thresholds=thresholds,
            fmt=format,
        )
    return write_page(Path(out), model, title=title)

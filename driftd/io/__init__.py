"""Reading the tables users have: event files (JSONL, CSV, Parquet) as event lines, and
in-memory tables (pandas, polars, pyarrow, dicts of arrays) as columns.

A low layer (beside :mod:`driftd.config`): it knows the event schema, never the monitors.
"""

from __future__ import annotations

from driftd.io.frames import Columns, is_table, to_columns
from driftd.io.tables import (
    FORMATS,
    Format,
    column_path,
    detect_format,
    dumps,
    event_lines,
    rows_to_lines,
)

__all__ = [
    "FORMATS",
    "Columns",
    "Format",
    "column_path",
    "detect_format",
    "dumps",
    "event_lines",
    "is_table",
    "rows_to_lines",
    "to_columns",
]

"""In-memory tables — pandas or polars DataFrames, pyarrow Tables, dicts of arrays — as
named columns, without importing pandas, polars or pyarrow unless the table is one of theirs.

A column comes out either as a NumPy array (numbers and booleans without missing values; a
float NaN is a missing value) or as a list of Python values with ``None`` for missing. Both
are read with the decoder's conversions (:func:`driftd.ingest.decode.to_float` and
``to_category`` semantics), so a column means the same here as in an event.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

Column = npt.NDArray[Any] | list[Any]


class Columns(Mapping[str, Column]):
    """Ordered, equally long named columns."""

    __slots__ = ("_cols", "rows")

    def __init__(self, cols: dict[str, Column]) -> None:
        lengths = {len(c) for c in cols.values()}
        if len(lengths) > 1:
            sizes = ", ".join(f"{k}={len(c)}" for k, c in cols.items())
            raise ValueError(f"columns of different lengths: {sizes}")
        self._cols = cols
        self.rows = lengths.pop() if lengths else 0

    def __getitem__(self, key: str) -> Column:
        return self._cols[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._cols)

    def __len__(self) -> int:
        return len(self._cols)

    def values_of(self, name: str) -> list[Any]:
        """A column as Python values (``None`` for missing)."""
        col = self._cols[name]
        if isinstance(col, np.ndarray):
            if col.dtype.kind == "M":  # datetime64: RFC 3339 strings, NaT missing
                strings = np.datetime_as_string(col, unit="us", timezone="UTC")
                return [None if s == "NaT" else str(s) for s in strings.tolist()]
            return list(col.tolist())
        return col

    def row_values(self) -> Iterator[tuple[Any, ...]]:
        """Rows as tuples of Python values in column order."""
        return zip(*(self.values_of(n) for n in self._cols), strict=True)


def is_table(obj: Any) -> bool:
    """Whether :func:`to_columns` can read ``obj``."""
    mod = type(obj).__module__.split(".", 1)[0]
    return (
        isinstance(obj, Mapping)
        or mod in ("pandas", "polars", "pyarrow")
        or hasattr(obj, "__arrow_c_stream__")
    )


def to_columns(table: Any) -> Columns:
    """Named columns of a pandas/polars DataFrame, a pyarrow Table or RecordBatch, or a
    mapping of column name → array-like."""
    if isinstance(table, Columns):
        return table
    mod = type(table).__module__.split(".", 1)[0]
    if isinstance(table, Mapping):
        return Columns({str(k): _array_like(v) for k, v in table.items()})
    if mod == "pandas":
        return Columns({str(k): _pandas(table[k]) for k in table.columns})
    if mod == "polars":
        return Columns({str(s.name): _polars(s) for s in table.get_columns()})
    if mod == "pyarrow" and hasattr(table, "column_names"):
        return Columns({str(n): _arrow(table.column(n)) for n in table.column_names})
    if hasattr(table, "__arrow_c_stream__"):  # any other Arrow PyCapsule producer
        try:
            import pyarrow as pa
        except ImportError:
            raise TypeError(
                f"reading a {type(table).__name__} needs pyarrow: pip install 'driftd[tables]'"
            ) from None
        t = pa.table(table)
        return Columns({str(n): _arrow(t.column(n)) for n in t.column_names})
    raise TypeError(
        "expected a pandas or polars DataFrame, a pyarrow Table or a dict of arrays,"
        f" got {type(table).__name__}"
    )


def _array_like(v: Any) -> Column:
    if isinstance(v, np.ndarray):
        return _numpy(v)
    mod = type(v).__module__.split(".", 1)[0]
    if mod == "pandas":
        return _pandas(v)
    if mod == "polars":
        return _polars(v)
    if mod == "pyarrow":
        return _arrow(v)
    if isinstance(v, Sequence) and not isinstance(v, str | bytes):
        return list(v)
    raise TypeError(f"a column must be an array or a list, got {type(v).__name__}")


def _numpy(a: npt.NDArray[Any]) -> Column:
    if a.ndim != 1:
        raise ValueError(f"a column must be one-dimensional, got shape {a.shape}")
    if a.dtype.kind in "biufM":
        return a
    return [None if _missing(x) else x for x in a.tolist()]


def _missing(x: Any) -> bool:
    if x is None:
        return True
    try:
        return bool(x != x)  # NaN, pandas.NA and NaT compare unequal (or ambiguously) to themselves
    except (TypeError, ValueError):
        return True


def _pandas(s: Any) -> Column:
    dtype = s.dtype
    kind = getattr(dtype, "kind", "O")
    if isinstance(dtype, np.dtype) and kind in "biufM":
        return np.asarray(s.to_numpy())
    if str(dtype).startswith("datetime64["):  # tz-aware: to UTC, then as datetime64
        return np.asarray(s.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy())
    values = s.to_numpy(dtype=object)
    return [None if _missing(x) else _scalar(x) for x in values.tolist()]


def _scalar(x: Any) -> Any:
    item = getattr(x, "item", None)  # numpy scalars inside object columns
    return item() if callable(item) and type(x).__module__ == "numpy" else x


def _polars(s: Any) -> Column:
    if s.dtype.is_numeric() and s.null_count() == 0:
        return np.asarray(s.to_numpy())
    if str(s.dtype) == "Boolean" and s.null_count() == 0:
        return np.asarray(s.to_numpy(), dtype=bool)
    return [None if _missing(x) else x for x in s.to_list()]


def _arrow(c: Any) -> Column:
    import pyarrow as pa

    t = c.type
    if c.null_count == 0 and (
        pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
    ):
        return np.asarray(c.to_numpy(zero_copy_only=False))
    return [None if _missing(x) else x for x in c.to_pylist()]

"""Event files in three formats — JSONL, CSV, Parquet — as JSON-encoded event lines.

Every reader yields one ``bytes`` per event in the event schema (DESIGN "Event format"), the
same bytes a JSONL file would hold, so ``profile build`` and ``replay`` decode a CSV row or a
Parquet row with exactly the code that decodes a Kafka message: no second decoder, and the
same data in any of the three formats gives the same profile and the same evaluations.

Formats are detected from the file name (``.jsonl``/``.ndjson``/``.json`` → JSONL, ``.csv``
→ CSV, ``.parquet``/``.pq`` → Parquet; ``-`` is JSONL on stdin) unless given explicitly.

Columns of a flat table (CSV, Parquet, DataFrames) map onto the event like this
(``schema`` paths are the configured ones; defaults shown):

* a column named like a schema path — ``model``, ``model_version``, ``ts``, ``prediction``,
  ``event_id``, ``label`` — goes to that path (dotted names such as ``meta.version`` are
  nested: ``{"meta": {"version": …}}``);
* a column named ``features.<name>`` (the features path, a dot, anything) goes to that path,
  so ``features.income`` is the feature ``income`` (this is how to name a feature that would
  otherwise clash with a schema field, e.g. ``features.label``);
* a column named like the features path itself (``features``) holds the whole features
  object (a Parquet struct column);
* every other column is a feature named by the column, unsplit: ``income`` →
  ``{"features": {"income": …}}``.

Missing cells (CSV: empty; Parquet/arrow: null; a float NaN) are left out of the event,
which the decoder reads as missing. CSV has no types, so a cell is read as: empty → missing;
``true``/``false`` (any case) → boolean; a JSON number literal (``41``, ``-0.5``, ``1e3``; not
``007``) → number; anything else → string. Parquet keeps its types; timestamps without a
zone are read as UTC, and written as RFC 3339.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO, Literal

import orjson

from driftd.config import SchemaConfig
from driftd.errors import ConfigError

Format = Literal["jsonl", "csv", "parquet"]
FORMATS: tuple[Format, ...] = ("jsonl", "csv", "parquet")
_SUFFIXES: dict[str, Format] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
# A JSON number literal (RFC 8259 §6): no leading zeros, no "nan"/"inf", no leading "+".
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_TRUE = frozenset({"true", "True", "TRUE"})
_FALSE = frozenset({"false", "False", "FALSE"})
_DUMP_OPTS = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z | orjson.OPT_SERIALIZE_NUMPY
_PARQUET_BATCH = 16_384


def detect_format(path: str | Path, fmt: str | None = None, *, key: str = "--format") -> Format:
    """The format of ``path``: ``fmt`` when given (checked), else from the file name."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise ConfigError(key, f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
        return fmt
    if str(path) == "-":
        return "jsonl"
    name = Path(path).name.lower()
    for suffix, found in _SUFFIXES.items():
        if name.endswith(suffix):
            return found
    raise ConfigError(
        key,
        f"cannot tell the format of {path} from its name (.jsonl, .csv, .parquet);"
        f" give it with {key}",
    )


def event_lines(
    paths: str | Path | Sequence[str | Path],
    fmt: str | None = None,
    schema: SchemaConfig | None = None,
) -> Iterator[bytes]:
    """JSON-encoded events (no trailing newline) from each file in turn, in file order.

    JSONL lines are handed out as they are (line endings stripped, blank lines kept, so a
    line's position is its line number, as ``driftd replay`` counts positions); a CSV or
    Parquet row becomes one event by the column rules in this module's docstring.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    schema = schema or SchemaConfig()
    for p in paths:
        kind = detect_format(p, fmt)
        if kind == "jsonl":
            yield from _jsonl(p)
        elif kind == "csv":
            yield from _csv(p, schema)
        else:
            yield from _parquet(p, schema)


def _open(path: str | Path, key: str = "--input") -> BinaryIO:
    if str(path) == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    except OSError as exc:
        raise ConfigError(key, f"cannot read {path}: {exc.strerror or exc}") from None


def _jsonl(path: str | Path) -> Iterator[bytes]:
    fh = _open(path)
    try:
        for line in fh:
            if line.endswith(b"\n"):
                line = line[:-1]
                if line.endswith(b"\r"):
                    line = line[:-1]
            yield line
    finally:
        if fh is not sys.stdin.buffer:
            fh.close()


def csv_cell(cell: str) -> Any:
    """One CSV cell as a JSON value (see the module docstring)."""
    if not cell:
        return None
    if cell in _TRUE:
        return True
    if cell in _FALSE:
        return False
    m = _NUMBER.fullmatch(cell)
    if m is None:
        return cell
    if m.group(1) is None and m.group(2) is None:
        n = int(cell)
        # orjson writes integers of up to 64 bits; beyond that the value is read as a float,
        # which is what the decoder would make of it anyway.
        return n if -(2**63) <= n < 2**64 else float(n)
    return float(cell)


def _csv(path: str | Path, schema: SchemaConfig) -> Iterator[bytes]:
    fh = _open(path)
    try:
        text = io.TextIOWrapper(fh, encoding="utf-8-sig", newline="")
        reader = csv.reader(text)
        header = next(reader, None)
        if header is None:
            return
        build = event_builder(header, schema)
        for row in reader:
            if not row:
                continue  # csv yields [] for a blank line
            yield dumps(build([csv_cell(c) for c in row]))
    finally:
        if fh is not sys.stdin.buffer:
            fh.close()


def _parquet(path: str | Path, schema: SchemaConfig) -> Iterator[bytes]:
    pq = _pyarrow_parquet()
    try:
        pf = pq.ParquetFile(str(path))
    except OSError as exc:
        raise ConfigError("--input", f"cannot read {path} as Parquet: {exc}") from None
    names = list(pf.schema_arrow.names)
    build = event_builder(names, schema)
    for batch in pf.iter_batches(batch_size=_PARQUET_BATCH):
        cols = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
        for row in zip(*cols, strict=True):
            yield dumps(build(list(row)))


def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(
            "--format", "reading Parquet needs pyarrow: pip install 'driftd[tables]'"
        ) from None
    return pq


def column_path(name: str, schema: SchemaConfig) -> tuple[str, ...]:
    """Where a flat table's column goes in the event (the mapping rules above)."""
    fields = (
        schema.model,
        schema.model_version,
        schema.timestamp,
        schema.prediction,
        schema.event_id,
        schema.label,
        schema.features,
    )
    if name in fields:
        return tuple(name.split("."))
    prefix = schema.features + "."
    if name.startswith(prefix):
        return (*schema.features.split("."), *name[len(prefix) :].split("."))
    return (*schema.features.split("."), name)


def event_builder(
    columns: Sequence[str], schema: SchemaConfig
) -> Callable[[Sequence[Any]], dict[str, Any]]:
    """``row values (in column order) -> event dict``; missing values (None, NaN) left out."""
    paths = [column_path(c, schema) for c in columns]
    seen: dict[tuple[str, ...], str] = {}
    for c, p in zip(columns, paths, strict=True):
        if p in seen:
            raise ConfigError("columns", f"columns {seen[p]!r} and {c!r} both map to {'.'.join(p)}")
        seen[p] = c
    flat = [(i, p[0]) for i, p in enumerate(paths) if len(p) == 1]
    # Feature columns under the default schema: one dict, filled in one loop.
    nested = [(i, p) for i, p in enumerate(paths) if len(p) > 1]

    def build(row: Sequence[Any]) -> dict[str, Any]:
        ev: dict[str, Any] = {}
        for i, key in flat:
            v = row[i]
            if v is not None and v == v:  # None and NaN are missing
                ev[key] = v
        for i, path in nested:
            v = row[i]
            if v is None or v != v:
                continue
            node = ev
            for part in path[:-1]:
                nxt = node.get(part)
                if not isinstance(nxt, dict):
                    nxt = node[part] = {}
                node = nxt
            node[path[-1]] = v
        return ev

    return build


def _default(obj: Any) -> Any:
    """orjson's fallback for values tables hold but JSON has no type for."""
    if isinstance(obj, Decimal):
        return float(obj)
    if isinstance(obj, dt.datetime):  # pandas.Timestamp and other subclasses
        if obj.tzinfo is None:
            obj = obj.replace(tzinfo=dt.UTC)
        return obj.isoformat().replace("+00:00", "Z")
    if isinstance(obj, dt.date | dt.time):
        return obj.isoformat()
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    item = getattr(obj, "item", None)  # numpy scalars that orjson does not know
    if callable(item):
        return item()
    raise TypeError(f"cannot write a {type(obj).__name__} into an event")


def dumps(event: Mapping[str, Any]) -> bytes:
    """An event as the bytes of one JSONL line (no newline)."""
    return orjson.dumps(event, default=_default, option=_DUMP_OPTS)


def rows_to_lines(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], schema: SchemaConfig | None = None
) -> Iterator[bytes]:
    """Rows of a flat table (values in ``columns`` order) as event lines."""
    build = event_builder(columns, schema or SchemaConfig())
    for row in rows:
        yield dumps(build(row))

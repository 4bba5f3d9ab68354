"""API inputs: an in-memory table or event files, as columns or as event lines."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from driftd.config import SchemaConfig
from driftd.io import Columns, event_lines, is_table, rows_to_lines, to_columns

Files = str | Path | Sequence[str | Path]


class EventLines(list[bytes]):
    """Events already as JSON lines (one event each), e.g. a slice of an event file."""


def is_files(obj: Any) -> bool:
    if isinstance(obj, str | Path):
        return True
    return (
        isinstance(obj, Sequence)
        and not isinstance(obj, str | bytes)
        and len(obj) > 0
        and all(isinstance(p, str | Path) for p in obj)
    )


def lines_of(data: Any, schema: SchemaConfig, fmt: str | None = None) -> Iterator[bytes]:
    """Event lines of a table (one event per row) or of event files."""
    if isinstance(data, EventLines):
        return iter(data)
    if is_files(data):
        return event_lines(data, fmt, schema)
    if not is_table(data):
        raise TypeError(
            "expected a DataFrame, a pyarrow Table, a dict of arrays or event file path(s),"
            f" got {type(data).__name__}"
        )
    cols = to_columns(data)
    return rows_to_lines(list(cols), cols.row_values(), schema)


def _path_name(path: Sequence[str]) -> str:
    return ".".join(path)


def event_columns(
    lines: Iterable[bytes], schema: SchemaConfig, paths: Sequence[Sequence[str]]
) -> tuple[Columns, int]:
    """Values at ``paths`` of each event (columns named by the dotted path), and how many
    lines were not an event at all (not JSON, not an object, features not an object): the
    daemon rejects those whatever monitor reads them."""
    feats = tuple(schema.features.split("."))
    out: list[list[Any]] = [[] for _ in paths]
    rejected = 0
    for line in lines:
        if not line.strip():
            rejected += 1
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            rejected += 1
            continue
        if not isinstance(obj, dict):
            rejected += 1
            continue
        f = _get(obj, feats)
        if f is not None and not isinstance(f, dict):
            rejected += 1
            continue
        for col, p in zip(out, paths, strict=True):
            col.append(_get(obj, p))
    return Columns({_path_name(p): c for p, c in zip(paths, out, strict=True)}), rejected


def _get(obj: Any, path: Sequence[str]) -> Any:
    for part in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def sample_features(
    lines: Iterable[bytes], schema: SchemaConfig, limit: int = 1000
) -> tuple[dict[str, list[Any]], list[Any]]:
    """Feature values (by name) and predictions of the first ``limit`` events, to tell the
    features and their kinds of an event file when no config says."""
    feats = tuple(schema.features.split("."))
    pred = tuple(schema.prediction.split("."))
    values: dict[str, list[Any]] = {}
    preds: list[Any] = []
    n = 0
    for line in lines:
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(obj, dict):
            continue
        f = _get(obj, feats)
        if isinstance(f, dict):
            for k, v in f.items():
                values.setdefault(k, []).append(v)
        preds.append(_get(obj, pred))
        n += 1
        if n >= limit:
            break
    return values, preds


def table_columns(data: Any) -> Columns:
    return to_columns(data)

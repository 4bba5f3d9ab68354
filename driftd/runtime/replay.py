"""``driftd replay``: the daemon's loop over files, writing output lines instead of acting.

:func:`replay_lines` drives :func:`driftd.runtime.loop.drive` with a file source and yields
every output line — evaluations, alerts, detector hits, performance lines — then the summary.
The CLI writes them as JSONL; the Python API hands them out as dicts.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from driftd.actions.audit import AuditLog
from driftd.actions.deadletter import open_dead_letter
from driftd.config import Config
from driftd.errors import ConfigError
from driftd.ingest.decode import Reject, _getter, parse_ts
from driftd.runtime.loop import drive
from driftd.runtime.pipeline import Pipeline
from driftd.sources.file import FileSource
from driftd.types import RawRecord


class LabelFeed:
    """Label files, each read in order and merged by ``ts``, handed out as the replay's event
    time passes each label's ``ts`` (a label without a readable ts is due at once; the
    pipeline counts it if it is bad). Positions count label lines over all files."""

    def __init__(self, paths: Sequence[str], cfg: Config) -> None:
        self._fhs = [open(p, "rb") for p in paths]  # noqa: SIM115 - closed by close()
        self._ts = _getter(cfg.schema_.timestamp)
        self._position = 0
        self._heads: list[tuple[float, int, bytes]] = []  # (due, file index, line) heap
        for i in range(len(self._fhs)):
            self._read(i)

    def _read(self, i: int) -> None:
        line = self._fhs[i].readline()
        if not line:
            return
        line = line.rstrip(b"\r\n")
        due = float("-inf")
        try:
            obj = orjson.loads(line)
            raw = self._ts(obj) if isinstance(obj, dict) else None
            if raw is not None:
                due = parse_ts(raw)
        except (orjson.JSONDecodeError, Reject):
            pass
        heapq.heappush(self._heads, (due, i, line))

    def until(self, watermark: float) -> list[RawRecord]:
        out: list[RawRecord] = []
        while self._heads and self._heads[0][0] <= watermark:
            _, i, line = heapq.heappop(self._heads)
            self._position += 1
            out.append(RawRecord(line, self._position, None))
            self._read(i)
        return out

    def close(self) -> None:
        for fh in self._fhs:
            fh.close()


class ReplaySink:
    """Audit log and dead letters as the daemon keeps them; labels fed by event time."""

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        labels: LabelFeed | None = None,
        audit: AuditLog | None = None,
        dead_letter: Any = None,
        progress: Callable[[Sequence[RawRecord]], None] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.labels = labels
        self.audit = audit
        self.dead_letter = dead_letter
        self.progress = progress

    def polling(self, active: bool) -> None:
        pass

    def handle(
        self, records: Sequence[RawRecord], outputs: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        p = self.pipeline
        if self.progress is not None and records:
            self.progress(records)
        if records and self.labels is not None and p.perf is not None:
            due = self.labels.until(p.perf.watermark())
            if due:
                outputs = outputs + p.process_labels(due, p.position)
        if self.audit is not None:
            self.audit.write(outputs)
        if self.dead_letter is not None:
            self.dead_letter.write(p.take_rejects())
        return outputs

    def closing(self) -> list[dict[str, Any]]:
        if self.labels is None:
            return []
        rest = self.labels.until(float("inf"))
        return self.pipeline.process_labels(rest, self.pipeline.position) if rest else []


class LineSource(FileSource):
    """Event lines (JSON bytes, one event each) from an iterator, as a finite source."""

    def __init__(self, lines: Iterable[bytes]) -> None:
        super().__init__([])
        self._given = lines
        self._reader = lambda: iter(self._given)


def replay_lines(
    cfg: Config,
    files: Sequence[str] | Iterable[bytes],
    *,
    labels: Sequence[str] = (),
    audit: Path | None = None,
    batch: int = 5000,
    progress: Callable[[Sequence[RawRecord]], None] | None = None,
    pipeline: Pipeline | None = None,
    fmt: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Every output line of ``files`` (JSONL, CSV or Parquet by extension or ``fmt``; or an
    iterable of event lines) run through the pipeline, then the summary line."""
    if isinstance(files, Sequence) and all(isinstance(p, str) for p in files):
        paths = [str(p) for p in files]
        for p in paths:
            if p != "-" and not Path(p).is_file():
                raise ConfigError("files", f"{p} is not a readable file")
        plain = fmt in (None, "jsonl") and all(p == "-" or p.endswith(".jsonl") for p in paths)
        src = FileSource(paths) if plain else FileSource.of_format(paths, fmt, cfg.schema_)
    else:
        src = LineSource(files)  # type: ignore[arg-type]
    for p in labels:
        if not Path(p).is_file():
            raise ConfigError("--labels", f"{p} is not a readable file")
    pipe = pipeline if pipeline is not None else Pipeline(cfg)
    if pipeline is None:
        pipe.defer_evaluations()  # steps evaluated while the next batch is read
    if labels and pipe.perf is None:
        raise ConfigError("--labels", "no monitor has a performance block")
    feed = LabelFeed(labels, cfg) if labels else None
    dead = open_dead_letter(cfg.dead_letter, cfg.kafka)
    pipe.collect_rejects = dead is not None
    log = AuditLog(audit) if audit is not None else None
    src.open()
    sink = ReplaySink(pipe, labels=feed, audit=log, dead_letter=dead, progress=progress)
    try:
        for outputs in drive(src, pipe, sink, max_records=batch, poll_timeout_ms=0):
            yield from outputs
        yield pipe.summary()
    finally:
        src.close()
        if feed is not None:
            feed.close()
        if dead is not None:
            dead.close()
        if log is not None:
            log.close()


def replay(
    events: Any,
    config: Config | str | Path,
    *,
    labels: Sequence[str | Path] = (),
    format: str | None = None,  # noqa: A002 - the CLI's --format
    batch: int = 5000,
) -> Iterator[dict[str, Any]]:
    """``driftd replay`` in Python: the same loop, the same lines (evaluations, alerts,
    detector and performance lines, then the summary) as dicts.

    ``events``: event file path(s) (JSONL, CSV, Parquet), a table (pandas or polars
    DataFrame, pyarrow Table, dict of arrays: one event per row) or an iterable of events
    (dicts, or JSON bytes). ``config``: a config file or a loaded :class:`~driftd.config.Config`.
    """
    from driftd.config import load_config

    cfg = config if isinstance(config, Config) else load_config(config)
    if isinstance(events, str | Path) or (
        isinstance(events, Sequence) and events and all(isinstance(p, str | Path) for p in events)
    ):
        paths = [str(events)] if isinstance(events, str | Path) else [str(p) for p in events]
        source: Sequence[str] | Iterable[bytes] = paths
    else:
        source = _event_lines(events, cfg, format)
    return replay_lines(cfg, source, labels=[str(p) for p in labels], batch=batch, fmt=format)


def _event_lines(events: Any, cfg: Config, fmt: str | None) -> Iterator[bytes]:
    from driftd.io import is_table, rows_to_lines, to_columns

    if is_table(events):
        cols = to_columns(events)
        yield from rows_to_lines(list(cols), cols.row_values(), cfg.schema_)
        return
    for e in events:
        yield e if isinstance(e, bytes) else orjson.dumps(e)

"""What a driftd process writes on stderr beside its output.

- Log records: text (``%(asctime)s %(levelname)s %(name)s: %(message)s``), or with
  ``--log-format json`` one JSON object per line — ``ts``, ``level``, ``logger``, ``msg``, the
  context fields of :data:`CONTEXT_FIELDS` that the call site passed as ``extra=`` (a log
  shipper filters on ``monitor`` or ``alert_id`` without parsing ``msg``) and ``exc`` with the
  traceback. The message reads the same in both formats.
- The progress of threshold calibration (:class:`CalibrationDisplay`): a self-overwriting bar
  when stderr is a terminal, otherwise a log line every few seconds while it runs.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, TextIO

import orjson

if TYPE_CHECKING:  # the CLI sets up logging without importing the statistics
    from driftd.stats.progress import CalibrationProgress

# Fields a log line carries when they apply (docs/operations.md, "Logs"). ``segment`` is the
# label the metrics use (``features.region=EU``), ``partition`` a source partition
# (``<topic>/<partition>``), ``action`` the name of a webhook action.
CONTEXT_FIELDS = ("monitor", "model_version", "segment", "alert_id", "partition", "action")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        d: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = record.__dict__
        for key in CONTEXT_FIELDS:
            value = fields.get(key)
            if value is not None and value != "":
                d[key] = value
        if record.exc_info:
            d["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            d["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(d, default=str).decode()


def setup_logging(level: str, fmt: str) -> None:
    """Point the root logger at stderr in ``fmt`` (``text`` | ``json``) at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.set_name("driftd-cli")
    root = logging.getLogger()
    # Replace only our own handler (repeated main() calls, e.g. in tests), keep others.
    root.handlers[:] = [h for h in root.handlers if h.get_name() != "driftd-cli"] + [handler]
    root.setLevel(level.upper())
    logging.getLogger("kafka").setLevel(max(logging.WARNING, root.level))


def fatal_json(msg: str, exc: BaseException, level: int = logging.ERROR) -> str:
    """The JSON log line of the error that ends a command (the CLI writes it itself: also
    before logging is set up, and whatever the log level)."""
    record = logging.LogRecord(
        "driftd", level, __file__, 0, "%s", (msg,), (type(exc), exc, exc.__traceback__)
    )
    return JsonFormatter().format(record)


# -------------------------------------------------------------------- calibration progress

log = logging.getLogger("driftd.calibration")

# Read when a display is made, so tests can shorten them.
BAR_DELAY_S = 0.5  # no bar for calibrations shorter than this
BAR_INTERVAL_S = 0.2
LOG_INTERVAL_S = 5.0  # a log line this often (none for calibrations shorter than this)
BAR_WIDTH = 24


class CalibrationDisplay:
    """Shows how far threshold calibration is (an :data:`~driftd.stats.progress.OnProgress`).

    On a terminal: one self-overwriting line on ``stream``, ``calibrating monitor credit:
    [#####-----]  45% 3/7 features, 12 s``, erased when the calibration finishes (the
    "calibrated N thresholds" log line then stands alone). Elsewhere (logs, pipes, CI): a log
    line at info level every ``LOG_INTERVAL_S`` while it runs, ``calibrating monitor credit:
    3/7 features, 45%, 12 s``. Short calibrations show nothing.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty()) if callable(isatty) else False
        self.delay_s = BAR_DELAY_S if self.tty else LOG_INTERVAL_S
        self.interval_s = BAR_INTERVAL_S if self.tty else LOG_INTERVAL_S
        self._lock = threading.Lock()
        self._what: str | None = None
        self._last = 0.0
        self._shown = False

    def __call__(self, p: CalibrationProgress) -> None:
        with self._lock:
            if p.what != self._what:  # a new calibration (another monitor or segment)
                self._what = p.what
                self._last = p.elapsed_s - self.interval_s
            if p.finished:
                self._erase()
                self._what = None
                return
            if p.elapsed_s < self.delay_s or p.elapsed_s - self._last < self.interval_s:
                return
            self._last = p.elapsed_s
            if self.tty:
                self._draw(p)
            else:
                log.info(
                    "calibrating %s: %d/%d features, %.0f%%, %.0f s",
                    p.what,
                    p.features_done,
                    p.features,
                    100.0 * p.fraction,
                    p.elapsed_s,
                )

    def _draw(self, p: CalibrationProgress) -> None:
        filled = int(round(BAR_WIDTH * p.fraction))
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        self.stream.write(
            f"\rcalibrating {p.what}: [{bar}] {100.0 * p.fraction:3.0f}%"
            f" {p.features_done}/{p.features} features, {p.elapsed_s:.0f} s\x1b[K"
        )
        self.stream.flush()
        self._shown = True

    def _erase(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False

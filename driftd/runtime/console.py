"""What a driftd process writes on stderr beside its output.

- Log records: text (``%(asctime)s %(levelname)s %(name)s: %(message)s``), or with
  ``--log-format json`` one JSON object per line — ``ts``, ``level``, ``logger``, ``msg``, the
  context fields of :data:`CONTEXT_FIELDS` that the call site passed as ``extra=`` (a log
  shipper filters on ``monitor`` or ``alert_id`` without parsing ``msg``) and ``exc`` with the
  traceback. The message reads the same in both formats.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

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

"""Structured logs of the services: one line per state change, readable text or JSON lines.

Every line is a :mod:`logging` record. Records made with :func:`log_event` carry an event name
(``dispute.phase``, ``job.done``...) and fields (ids, phase, round...), which the formatters
print as ``key=value`` pairs (text) or as the keys of one JSON object per line
(``--log-format json``, for log shippers). Levels mean something: DEBUG one committed answer,
INFO a state change, WARNING a party that missed a deadline or a lease lost, ERROR a dispute or
job that could not proceed. Fields never hold secrets: database URLs are logged through
:func:`arbiter.storage.db.safe_url` (password hidden), and keys only as public keys.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from arbiter.errors import ArbiterInputError

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")
_FIELDS = "verde_fields"
_EVENT = "verde_event"


def log_event(logger: logging.Logger, level: int, event: str, message: str,
              **fields: Any) -> None:
    """Log ``message`` as event ``event`` with structured ``fields`` (ids, phase, counts...)."""
    if logger.isEnabledFor(level):
        logger.log(level, message, extra={_EVENT: event, _FIELDS: fields})


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per record: ``ts``, ``level``, ``logger``, ``event``, ``msg``, fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, _EVENT, "log"),
            "msg": record.getMessage(),
        }
        for key, value in getattr(record, _FIELDS, {}).items():
            doc.setdefault(key, value)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``2025-01-01T12:00:00.000Z INFO  dispute decided  dispute_id=... reason=...``."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={_text_value(v)}"
                          for k, v in getattr(record, _FIELDS, {}).items())
        line = f"{_timestamp(record)} {record.levelname:<7} {record.getMessage()}"
        if fields:
            line += f"  {fields}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return json.dumps(text) if (not text or " " in text or "=" in text) else text


def configure_logging(log_format: str = "text", level: str = "info",
                      stream: TextIO | None = None) -> logging.Handler:
    """Send every record (ours, gRPC's, SQLAlchemy's, warnings) to ``stream`` in one format.

    Replaces the root logger's handlers, so a service's stderr holds only formatted lines;
    returns the handler (tests remove it again).
    """
    if log_format not in LOG_FORMATS:
        raise ArbiterInputError(f"log format must be one of {', '.join(LOG_FORMATS)}, "
                                f"got {log_format!r}")
    if level.lower() not in LOG_LEVELS:
        raise ArbiterInputError(f"log level must be one of {', '.join(LOG_LEVELS)}, "
                                f"got {level!r}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonLinesFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)  # other libraries: warnings and errors only
    logging.getLogger("verde").setLevel(level.upper())
    logging.captureWarnings(True)
    return handler

"""The runner's log lines: one JSON object each, like the functions' Powertools Logger lines beside them.

Fields: ``timestamp`` (UTC, ISO 8601), ``level``, ``logger``, ``thread``, ``message``, and when the record has them
``request_id`` (the Lambda request id) and ``correlation_id`` (API Gateway's request id, which the functions'
Logger reports as its ``correlation_id``), so one grep follows a request through the runner and the function.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

CONTEXT_FIELDS = ("request_id", "correlation_id", "function")


class JsonLogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "thread": record.threadName,
            "message": record.getMessage(),
        }
        for field in CONTEXT_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)

"""Log setup: plain text for people, JSON lines (with request and run ids) for collectors."""

from __future__ import annotations

import contextvars
import json
import logging
from datetime import datetime, timezone

# Set by the request middleware and by the run executor, so every record made while
# serving a request or running a graph says which one.
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("skeino_request_id", default=None)
run_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("skeino_run_id", default=None)

LOG_FORMATS = ("text", "json")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, ids, and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid, run = request_id.get(), run_id.get()
        if rid:
            doc["request_id"] = rid
        if run:
            doc["run_id"] = run
        if record.exc_info:
            doc["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def configure(level: str, fmt: str) -> dict[str, object] | None:
    """Set up the root logger; returns the uvicorn log config to use with it (None: uvicorn's own)."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    if fmt != "json":
        return None
    # uvicorn's access and error logs go through the same JSON handler.
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "skeino.logs.JsonFormatter"}},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "json"}},
        "loggers": {name: {"handlers": ["default"], "level": level.upper(), "propagate": False}
                    for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
    }

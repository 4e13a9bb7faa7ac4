"""The audit trail: one structured event per authentication decision and state change."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

logger = logging.getLogger("skeino.audit")


class Audit:
    """Events go to the `skeino.audit` logger (`log`, the default), to a JSON-lines file, or nowhere (`off`)."""

    def __init__(self, sink: str) -> None:
        self.enabled = sink != "off"
        self._handler: logging.Handler | None = None
        if sink not in ("log", "off"):
            self._handler = logging.FileHandler(sink, encoding="utf-8")
            self._handler.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(self._handler)
            logger.propagate = False  # the file has them; the server log need not repeat them
            logger.setLevel(logging.INFO)

    def record(self, *, who: str | None, action: str, resource: str, outcome: str, request_id: str | None,
               **extra: Any) -> None:
        level = logging.WARNING if outcome == "denied" else logging.INFO
        # Built only when it goes somewhere: the default log level drops every INFO event.
        if not self.enabled or not logger.isEnabledFor(level):
            return
        event = {"time": datetime.now(timezone.utc).isoformat(), "who": who or "anonymous", "action": action,
                 "resource": resource, "outcome": outcome, "request_id": request_id, **extra}
        logger.log(level, "%s", json.dumps(event, default=str))

    def close(self) -> None:
        if self._handler is not None:
            logger.removeHandler(self._handler)
            self._handler.close()
            self._handler = None
            logger.propagate = True

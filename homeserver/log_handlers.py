"""The logging handler and formatter a Synapse log config may name, in this server's
form (see `homeserver.log_config`, which maps Synapse's class paths to these)."""

from __future__ import annotations

import json
import logging
import logging.handlers
import threading
from typing import Any


class PeriodicallyFlushingMemoryHandler(logging.handlers.MemoryHandler):
    """A MemoryHandler that also writes what it holds at least every ``period``
    seconds (Synapse's handler of the same name): records wait at most that long."""

    def __init__(
        self,
        capacity: int,
        flushLevel: int = logging.ERROR,
        target: logging.Handler | None = None,
        flushOnClose: bool = True,
        period: float = 5.0,
    ) -> None:
        super().__init__(capacity, flushLevel, target, flushOnClose)
        self._period = period
        self._stopped = threading.Event()
        self._flusher = threading.Thread(
            target=self._flush_periodically, name="log-flusher", daemon=True
        )
        self._flusher.start()

    def _flush_periodically(self) -> None:
        while not self._stopped.wait(self._period):
            self.flush()

    def close(self) -> None:
        self._stopped.set()
        super().close()


class JsonFormatter(logging.Formatter):
    """One JSON object per record: the message, its level, logger, time and the
    request it belongs to (Synapse's terse JSON keys: log, level, namespace,
    time, request)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "log": record.getMessage(),
            "namespace": record.name,
            "level": record.levelname,
            "time": round(record.created, 2),
            "request": getattr(record, "request", None),
        }
        requester = getattr(record, "requester", None)
        if requester is not None:
            entry["requester"] = requester
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)

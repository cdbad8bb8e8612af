"""``log_config``: a Python logging YAML (dictConfig schema) in Synapse's format.

A Synapse log config names a few of Synapse's own classes; each is replaced by
this server's equivalent before the dictionary is applied:

- ``synapse.logging.context.LoggingContextFilter`` -> `RequestContextFilter`
  (adds ``request``, the request ID, and ``requester``);
- ``synapse.logging.handlers.PeriodicallyFlushingMemoryHandler`` ->
  `PeriodicallyFlushingMemoryHandler` (same arguments: target, capacity,
  flushLevel, period);
- ``synapse.logging.TerseJsonFormatter`` and ``synapse.logging.JsonFormatter`` ->
  `JsonFormatter` (one JSON object per line).

Every record carries ``request`` whatever the config (see
`homeserver.request_context.install_record_factory`), so Synapse's usual format
``%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s``
works with or without the filter.
"""

from __future__ import annotations

import json
import logging
import logging.config
import logging.handlers
import threading
from pathlib import Path
from typing import Any, Final

import yaml

from homeserver.request_context import install_record_factory

SYNAPSE_CLASSES: Final[dict[str, str]] = {
    "synapse.logging.context.LoggingContextFilter": (
        "homeserver.request_context.RequestContextFilter"
    ),
    "synapse.logging.handlers.PeriodicallyFlushingMemoryHandler": (
        "homeserver.log_config.PeriodicallyFlushingMemoryHandler"
    ),
    "synapse.logging.TerseJsonFormatter": "homeserver.log_config.JsonFormatter",
    "synapse.logging.JsonFormatter": "homeserver.log_config.JsonFormatter",
    "synapse.logging.terse_json.TerseJsonFormatter": "homeserver.log_config.JsonFormatter",
    "synapse.logging.terse_json.JsonFormatter": "homeserver.log_config.JsonFormatter",
}

# The format of the default (no log_config) logging to stderr, as Synapse's.
DEFAULT_FORMAT: Final = (
    "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s"
)


class LogConfigError(Exception):
    """The log config file cannot be read or applied; the message says why."""


def with_our_classes(settings: Any) -> Any:
    """``settings`` with every Synapse class path (a ``class`` or ``()`` value)
    replaced by ours."""
    if isinstance(settings, dict):
        return {
            key: (
                SYNAPSE_CLASSES.get(value, value)
                if key in ("class", "()") and isinstance(value, str)
                else with_our_classes(value)
            )
            for key, value in settings.items()
        }
    if isinstance(settings, list):
        return [with_our_classes(item) for item in settings]
    return settings


def apply_log_config(path: Path) -> None:
    """Read the YAML at ``path`` and apply it with dictConfig."""
    try:
        with open(path, encoding="utf-8") as stream:
            settings = yaml.safe_load(stream)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise LogConfigError(f"log_config: cannot read {path}: {error}") from None
    if not isinstance(settings, dict):
        raise LogConfigError(f"log_config: {path} is not a mapping of logging settings")
    if settings.get("structured"):
        raise LogConfigError(
            f"log_config: {path} uses Synapse's old structured logging format; use a "
            "formatter of class synapse.logging.TerseJsonFormatter instead"
        )
    install_record_factory()
    try:
        logging.config.dictConfig(with_our_classes(settings))
    except (ValueError, TypeError, AttributeError, ImportError) as error:
        raise LogConfigError(f"log_config: cannot use {path}: {error}") from None


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

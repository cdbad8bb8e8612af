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

The handler and the formatter live in `homeserver.log_handlers`, imported only by a
log config that names them.

Every record carries ``request`` whatever the config (see
`homeserver.request_context.install_record_factory`), so Synapse's usual format
``%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s``
works with or without the filter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import yaml

from homeserver.request_context import install_record_factory

SYNAPSE_CLASSES: Final[dict[str, str]] = {
    "synapse.logging.context.LoggingContextFilter": (
        "homeserver.request_context.RequestContextFilter"
    ),
    "synapse.logging.handlers.PeriodicallyFlushingMemoryHandler": (
        "homeserver.log_handlers.PeriodicallyFlushingMemoryHandler"
    ),
    "synapse.logging.TerseJsonFormatter": "homeserver.log_handlers.JsonFormatter",
    "synapse.logging.JsonFormatter": "homeserver.log_handlers.JsonFormatter",
    "synapse.logging.terse_json.TerseJsonFormatter": "homeserver.log_handlers.JsonFormatter",
    "synapse.logging.terse_json.JsonFormatter": "homeserver.log_handlers.JsonFormatter",
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
    # (only here: logging.config brings logging.handlers, pickle and socketserver,
    # ~0.5 MB that a server logging to stderr by default does not need)
    import logging.config

    try:
        logging.config.dictConfig(with_our_classes(settings))
    except (ValueError, TypeError, AttributeError, ImportError) as error:
        raise LogConfigError(f"log_config: cannot use {path}: {error}") from None

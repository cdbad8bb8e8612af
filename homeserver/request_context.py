"""The context of the request being handled, for log lines and metrics.

The HTTP middleware opens a `RequestContext` for each request (a request ID in
Synapse's ``METHOD-N`` form) in a context variable; everything the request causes,
in its task and in the tasks it starts, sees it. Authentication notes the requester
in it, the sync handler the kind of sync (Synapse's metrics ``tag``). The logging
filter copies the request ID into every record as ``request``, the field Synapse's
log formats print (``%(request)s``).
"""

from __future__ import annotations

import itertools
import logging
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final

# What ``%(request)s`` shows outside any request (Synapse prints "sentinel" there too).
NO_REQUEST: Final = "sentinel"


@dataclass(slots=True)
class RequestContext:
    request_id: str
    requester: str | None = None  # user ID, or the origin server of a federation request
    tag: str = ""  # the metrics ``tag`` of the request (the kind of sync)


_current: ContextVar[RequestContext | None] = ContextVar("request_context", default=None)


def current_request() -> RequestContext | None:
    return _current.get()


def enter_request(context: RequestContext) -> Any:
    """Make ``context`` the current one; pass the result to `leave_request`."""
    return _current.set(context)


def leave_request(token: Any) -> None:
    _current.reset(token)


def note_requester(requester: str) -> None:
    """The current request was authenticated as ``requester``."""
    context = _current.get()
    if context is not None:
        context.requester = requester


def set_request_tag(tag: str) -> None:
    """Label the current request's metrics with ``tag`` (``sync_v2:initial_sync`` ...)."""
    context = _current.get()
    if context is not None:
        context.tag = tag


class RequestIds:
    """Request IDs of one homeserver: ``GET-1``, ``PUT-2`` ... (Synapse's form)."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def next(self, method: str) -> str:
        return f"{method}-{next(self._counter)}"


class RequestContextFilter(logging.Filter):
    """Adds ``request`` (the request ID) and ``requester`` to every record it sees.

    The stand-in for Synapse's ``synapse.logging.context.LoggingContextFilter``:
    a log config naming that class gets this one (``request`` is what to show
    outside a request, as Synapse's filter takes it). It never replaces a value a
    record already carries (the record factory of `install_record_factory` sets
    them when the record is made, in the task that logs).
    """

    def __init__(self, request: str = NO_REQUEST, name: str = "") -> None:
        super().__init__(name)
        self._default = request

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request"):
            context = _current.get()
            record.request = context.request_id if context is not None else self._default
            record.requester = context.requester if context is not None else None
        return True


_factory_installed = False


def install_record_factory() -> None:
    """Give every log record ``request`` and ``requester`` when it is made, so that
    any handler and format may use ``%(request)s``, and a record buffered by a
    MemoryHandler keeps the request it was logged in. Idempotent."""
    global _factory_installed
    if _factory_installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        context = _current.get()
        if context is None:
            record.request = NO_REQUEST
            record.requester = None
        else:
            record.request = context.request_id
            record.requester = context.requester
        return record

    logging.setLogRecordFactory(factory)
    _factory_installed = True

"""The background tasks of the admin API (room deletions, history purges): each
record's status while it runs, kept for a day after it finishes, as Synapse keeps them
(in memory: a restart forgets them)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Generic, Protocol, TypeVar

from homeserver.clock import Clock
from homeserver.errors import MatrixError, NotFound

logger = logging.getLogger(__name__)

STATUS_KEPT_MS = 24 * 60 * 60 * 1000  # how long a finished task's status stays readable


class TaskRecord(Protocol):
    room_id: str
    status: str
    error: str | None
    task: asyncio.Task[None] | None
    finished_ts: int | None


R = TypeVar("R", bound=TaskRecord)


class AdminTasks(Generic[R]):
    def __init__(self, clock: Clock, what: str) -> None:
        self._clock = clock
        self._what = what  # "delete", "purge": in the not-found message and the log
        self._records: dict[str, R] = {}

    def records(self) -> Iterator[R]:
        """Every record still kept."""
        self._forget_old()
        return iter(list(self._records.values()))

    def launch(self, task_id: str, record: R, work: Callable[[], Awaitable[None]]) -> None:
        """Keep ``record`` and run ``work`` in the background: the record ends
        ``complete``, or ``failed`` with the error."""
        self._records[task_id] = record
        record.task = asyncio.get_running_loop().create_task(self._run(task_id, record, work))

    async def _run(self, task_id: str, record: R, work: Callable[[], Awaitable[None]]) -> None:
        try:
            await work()
            record.status = "complete"
        except MatrixError as exc:
            record.status, record.error = "failed", exc.message
        except Exception as exc:
            logger.exception("%s %s of %s failed", self._what, task_id, record.room_id)
            record.status, record.error = "failed", str(exc)
        record.finished_ts = self._clock.time_ms()

    def _forget_old(self) -> None:
        horizon = self._clock.time_ms() - STATUS_KEPT_MS
        for task_id, record in list(self._records.items()):
            if record.finished_ts is not None and record.finished_ts < horizon:
                del self._records[task_id]

    def get(self, task_id: str) -> R:
        """The record; 404 M_NOT_FOUND if there is none (or it was forgotten)."""
        self._forget_old()
        record = self._records.get(task_id)
        if record is None:
            raise NotFound(f"{self._what} id '{task_id}' not found")
        return record

    async def wait(self, task_id: str) -> R:
        """The record once its task has finished (tests, and callers that must not race it)."""
        record = self.get(task_id)
        if record.task is not None:
            await asyncio.shield(record.task)
        return record

    async def stop(self) -> None:
        for record in self._records.values():
            if record.task is not None and not record.task.done():
                record.task.cancel()

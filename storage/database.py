"""The one async database interface, shared by both engines.

SQL is written once, with numbered placeholders ``$1, $2, ...``; each engine
translates them (SQLite to ``?NNN``, PostgreSQL to ``%s`` in order of use).

Every unit of work is a named transaction::

    async with db.transaction("register_user") as txn:
        await txn.execute("INSERT INTO users (user_id) VALUES ($1)", user_id)

``run_transaction(name, func)`` does the same and retries ``func`` when the engine
reports a serialization failure, deadlock or busy database, so functions passed to
it must be safe to run again. Writes use it; the plain ``transaction()`` block never
retries (a conflict surfaces as RetryableError), so it is for reads and for the few
writes whose body cannot run twice. ``execute`` (one statement) retries too. Helpers
that run inside a transaction are suffixed ``_txn``. Callbacks registered with ``txn.call_after_commit`` run only once the
transaction is durable (notifier wake-ups, cache updates).
"""

from __future__ import annotations

import abc
import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Literal, TypeVar

if TYPE_CHECKING:
    from storage.ids import IdGenerator

logger = logging.getLogger(__name__)

T = TypeVar("T")
Row = tuple[Any, ...]
Engine = Literal["sqlite", "postgres"]

_PLACEHOLDER = re.compile(r"\$(\d+)")


class RetryableError(Exception):
    """Raised by an engine for a conflict that a retry of the transaction may solve."""


class IntegrityError(Exception):
    """A uniqueness or foreign-key constraint was violated."""


class DatabaseOpenError(Exception):
    """The database cannot be opened or reached; the message is one line naming it."""


def translate_numbered(sql: str, style: str) -> tuple[str, list[int] | None]:
    """Rewrite ``$n`` placeholders for an engine.

    Returns the new SQL and, for positional styles that cannot reuse an argument,
    the order in which the caller's arguments must be passed (0-based indexes).
    """
    if style == "sqlite":
        return _PLACEHOLDER.sub(lambda m: "?" + m.group(1), sql), None
    order: list[int] = []

    def repl(m: re.Match[str]) -> str:
        order.append(int(m.group(1)) - 1)
        return "%s"

    escaped = sql.replace("%", "%%")
    return _PLACEHOLDER.sub(repl, escaped), order


class Transaction(abc.ABC):
    """One open transaction on one connection."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._after_commit: list[Callable[[], None]] = []

    def call_after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` (synchronously) once this transaction has committed."""
        self._after_commit.append(callback)

    @abc.abstractmethod
    async def execute(self, sql: str, *args: Any) -> int:
        """Run one statement; return the number of rows it changed."""

    @abc.abstractmethod
    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per row of arguments.

        An engine may defer it to the next statement that returns a result (or the
        commit); a constraint violation then surfaces there, still in this transaction.
        """

    async def queue(self, sql: str, *args: Any) -> None:
        """Run a write whose row count is not needed; it may be deferred like executemany."""
        await self.execute(sql, *args)

    @abc.abstractmethod
    async def fetchall(self, sql: str, *args: Any) -> list[Row]:
        """Run a query; return every row."""

    @abc.abstractmethod
    async def execute_script(self, script: str) -> None:
        """Run several statements (a migration's DDL) inside this transaction."""

    async def fetchone(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetchall(sql, *args)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, *args: Any) -> Any:
        """The first column of the first row, or None when there is no row."""
        row = await self.fetchone(sql, *args)
        return None if row is None else row[0]

    def _run_after_commit(self) -> None:
        for callback in self._after_commit:
            try:
                callback()
            except Exception:
                logger.exception("after-commit callback of %s failed", self.name)


# Told the name and duration (seconds) of each transaction and single statement
# once it ends (committed, rolled back or failed): the metrics' hook.
TransactionObserver = Callable[[str, float], None]


class Database(abc.ABC):
    """An open database: a pool of connections of one engine."""

    engine: Engine
    # Set by the composition root when metrics are on; None costs nothing.
    transaction_observer: TransactionObserver | None = None
    # run_transaction: how often a conflicting transaction is tried again, and the
    # wait before the first retry (doubled after each, up to retry_max_delay).
    max_retries = 5
    retry_delay = 0.01
    retry_max_delay = 0.5

    @abc.abstractmethod
    def transaction(
        self, name: str, *, readonly: bool = False
    ) -> AbstractAsyncContextManager[Transaction]:
        """Open a transaction; it commits when the block exits normally."""

    def grouped_transaction(self, name: str) -> AbstractAsyncContextManager[Transaction]:
        """A write transaction whose COMMIT may be shared with other concurrent ones
        (group commit), each still atomic on its own: an engine that groups does so
        only for one whose statements all wait to be sent (it read nothing back), in
        a savepoint of its own. Without group commit, a plain transaction."""
        return self.transaction(name)

    @abc.abstractmethod
    async def close(self) -> None:
        """Close every connection."""

    @abc.abstractmethod
    def id_generator(self, sequence: str, max_sql: str) -> IdGenerator:
        """Race-free IDs of the rows ``max_sql`` measures (see storage/ids.py): the
        PostgreSQL sequence ``sequence``, or SQLite's counter after ``max_sql``."""

    async def run_transaction(
        self,
        name: str,
        func: Callable[[Transaction], Awaitable[T]],
        *,
        readonly: bool = False,
        group_commit: bool = False,
    ) -> T:
        """Run ``func`` in a transaction, retrying it on transient conflicts.

        A conflict (serialization failure, deadlock, busy or locked database) rolls
        the transaction back; ``func`` then runs again in a new one after a growing
        wait, at most ``max_retries`` times before the RetryableError is raised.
        ``group_commit``: in a :meth:`grouped_transaction`.
        """

        async def attempt() -> T:
            context = (
                self.grouped_transaction(name)
                if group_commit and not readonly
                else self.transaction(name, readonly=readonly)
            )
            async with context as txn:
                return await func(txn)

        return await self.retrying(f"transaction {name}", attempt)

    async def retrying(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """``attempt()``, tried again after a growing wait each time it raises
        RetryableError, at most ``max_retries`` times before that error is raised."""
        delay = self.retry_delay
        for tries in range(self.max_retries + 1):
            try:
                return await attempt()
            except RetryableError as exc:
                if tries == self.max_retries:
                    logger.warning("%s gave up after %d retries: %s", what, tries, exc)
                    raise
                logger.info(
                    "%s conflicted (%s); retry %d in %.0f ms", what, exc, tries + 1, delay * 1000
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_delay)
        raise AssertionError("unreachable")

    # Conveniences for single queries, each in its own short transaction.

    async def fetchall(self, name: str, sql: str, *args: Any) -> list[Row]:
        async with self.transaction(name, readonly=True) as txn:
            return await txn.fetchall(sql, *args)

    async def fetchone(self, name: str, sql: str, *args: Any) -> Row | None:
        async with self.transaction(name, readonly=True) as txn:
            return await txn.fetchone(sql, *args)

    async def fetchval(self, name: str, sql: str, *args: Any) -> Any:
        async with self.transaction(name, readonly=True) as txn:
            return await txn.fetchval(sql, *args)

    async def execute(self, name: str, sql: str, *args: Any) -> int:
        """One write in its own transaction, retried on conflicts like run_transaction."""

        async def write(txn: Transaction) -> int:
            return await txn.execute(sql, *args)

        return await self.run_transaction(name, write)

    async def execute_statements(
        self, name: str, statements: Sequence[tuple[str, Sequence[Any]]]
    ) -> list[int]:
        """A few writes that commit together, in order, in their own transaction (retried
        on conflicts); their row counts. Like ``execute``, SQLite commits it in a group."""

        async def write(txn: Transaction) -> list[int]:
            return [await txn.execute(sql, *args) for sql, args in statements]

        return await self.run_transaction(name, write)

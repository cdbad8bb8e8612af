"""The full-text index of server-side search (schema 0034).

One row per indexed event: the text of one key (``content.body``, ``content.name``
or ``content.topic``) with the event's room, sender and positions. Full-text search
is where the two engines truly differ, so each has its own ``FullTextDialect``:
SQLite keeps the text in an FTS5 table under the row's id and ranks with bm25;
PostgreSQL keeps a ``tsvector`` under a GIN index and ranks with ``ts_rank_cd``. A
query is a list of words, each matched as a prefix, all of them required.
"""

from __future__ import annotations

import abc
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from storage.database import Database, Row, Transaction


@dataclass(frozen=True)
class SearchHit:
    event_id: str
    room_id: str
    sender: str
    stream_ordering: int
    origin_server_ts: int
    rank: float


@dataclass(frozen=True)
class SearchScope:
    """Where a query looks: rooms, keys and words (all non-empty)."""

    room_ids: Sequence[str]
    keys: Sequence[str]
    words: Sequence[str]


class FullTextDialect(abc.ABC):
    """The engine-specific SQL of the index."""

    @abc.abstractmethod
    async def insert_txn(
        self,
        txn: Transaction,
        row: tuple[str, str, str, str, int, int],
        value: str,
    ) -> None:
        """Index ``value`` for (event_id, room_id, sender, key, stream, ts)."""

    @abc.abstractmethod
    async def delete_txn(self, txn: Transaction, event_id: str) -> None:
        """Drop the event's row, if it has one."""

    @abc.abstractmethod
    async def delete_room_txn(self, txn: Transaction, room_id: str) -> None:
        """Drop every row of a room."""

    @abc.abstractmethod
    def matching(self, scope: SearchScope) -> tuple[str, str, list[object]]:
        """(FROM ... WHERE ... clause, rank expression, arguments) of the scope's matches;
        the rows are aliased ``s``, the arguments numbered from $1."""


class SqliteFullText(FullTextDialect):
    async def insert_txn(
        self, txn: Transaction, row: tuple[str, str, str, str, int, int], value: str
    ) -> None:
        # Both statements are queued: they reach the database with the event's other
        # writes and its COMMIT, in the transaction's one round trip. The text is
        # indexed under the row's id once (an event indexed before keeps its entry).
        await txn.queue(
            "INSERT INTO event_search"
            " (event_id, room_id, sender, key, stream_ordering, origin_server_ts)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING",
            *row,
        )
        await txn.queue(
            "INSERT INTO event_search_fts (rowid, value)"
            " SELECT s.id, $2 FROM event_search s WHERE s.event_id = $1"
            " AND NOT EXISTS (SELECT 1 FROM event_search_fts f WHERE f.rowid = s.id)",
            row[0],
            value,
        )

    async def delete_txn(self, txn: Transaction, event_id: str) -> None:
        row_id = await txn.fetchval("SELECT id FROM event_search WHERE event_id = $1", event_id)
        if row_id is None:
            return
        await txn.execute("DELETE FROM event_search_fts WHERE rowid = $1", row_id)
        await txn.execute("DELETE FROM event_search WHERE id = $1", row_id)

    async def delete_room_txn(self, txn: Transaction, room_id: str) -> None:
        await txn.execute(
            "DELETE FROM event_search_fts WHERE rowid IN"
            " (SELECT id FROM event_search WHERE room_id = $1)",
            room_id,
        )
        await txn.execute("DELETE FROM event_search WHERE room_id = $1", room_id)

    def matching(self, scope: SearchScope) -> tuple[str, str, list[object]]:
        # every word a quoted prefix term: the user's text is never FTS5 syntax
        query = " ".join('"' + w.replace('"', '""') + '"*' for w in scope.words)
        args: list[object] = [query]
        rooms = _placeholders(args, scope.room_ids)
        keys = _placeholders(args, scope.keys)
        clause = (
            "FROM event_search_fts f JOIN event_search s ON s.id = f.rowid"
            f" WHERE event_search_fts MATCH $1 AND s.room_id IN ({rooms}) AND s.key IN ({keys})"
        )
        # bm25 is lower for better matches
        return clause, "-bm25(event_search_fts)", args


class PostgresFullText(FullTextDialect):
    async def insert_txn(
        self, txn: Transaction, row: tuple[str, str, str, str, int, int], value: str
    ) -> None:
        await txn.queue(
            "INSERT INTO event_search"
            " (event_id, room_id, sender, key, stream_ordering, origin_server_ts, vector)"
            " VALUES ($1, $2, $3, $4, $5, $6, to_tsvector('english', $7))"
            " ON CONFLICT (event_id) DO NOTHING",
            *row,
            value,
        )

    async def delete_txn(self, txn: Transaction, event_id: str) -> None:
        await txn.execute("DELETE FROM event_search WHERE event_id = $1", event_id)

    async def delete_room_txn(self, txn: Transaction, room_id: str) -> None:
        await txn.execute("DELETE FROM event_search WHERE room_id = $1", room_id)

    def matching(self, scope: SearchScope) -> tuple[str, str, list[object]]:
        # every word a prefix lexeme (the words are letters and digits only)
        query = " & ".join(f"{w}:*" for w in scope.words)
        args: list[object] = [query, list(scope.room_ids), list(scope.keys)]
        clause = (
            "FROM event_search s"
            " WHERE s.vector @@ to_tsquery('english', $1)"
            " AND s.room_id = ANY($2) AND s.key = ANY($3)"
        )
        # normalised by the length of the text (1 + its log), as bm25 does
        return clause, "ts_rank_cd(s.vector, to_tsquery('english', $1), 1)", args


_HIT_COLUMNS = "s.event_id, s.room_id, s.sender, s.stream_ordering, s.origin_server_ts"


def _hit(row: Row) -> SearchHit:
    return SearchHit(row[0], row[1], row[2], int(row[3]), int(row[4]), float(row[5]))


def _placeholders(args: list[object], values: Sequence[str]) -> str:
    start = len(args) + 1
    args.extend(values)
    return ", ".join(f"${n}" for n in range(start, start + len(values)))


class SearchStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._dialect: FullTextDialect = (
            PostgresFullText() if db.engine == "postgres" else SqliteFullText()
        )

    async def index_txn(
        self,
        txn: Transaction,
        *,
        event_id: str,
        room_id: str,
        sender: str,
        key: str,
        stream_ordering: int,
        origin_server_ts: int,
        value: str,
    ) -> None:
        row = (event_id, room_id, sender, key, stream_ordering, origin_server_ts)
        await self._dialect.insert_txn(txn, row, value)

    async def remove_txn(self, txn: Transaction, event_id: str) -> None:
        await self._dialect.delete_txn(txn, event_id)

    async def remove_events_txn(
        self, txn: Transaction, room_id: str, event_ids: Collection[str]
    ) -> None:
        """Drop the rows of these events of a room (a history purge)."""
        if not event_ids:
            return
        rows = await txn.fetchall("SELECT event_id FROM event_search WHERE room_id = $1", room_id)
        indexed = {r[0] for r in rows} & set(event_ids)
        for event_id in sorted(indexed):
            await self._dialect.delete_txn(txn, event_id)

    async def remove_room_txn(self, txn: Transaction, room_id: str) -> None:
        """Drop every row of a room (a room purge)."""
        await self._dialect.delete_room_txn(txn, room_id)

    async def count(self, scope: SearchScope) -> int:
        clause, _rank, args = self._dialect.matching(scope)
        return int(await self._db.fetchval("search_count", f"SELECT COUNT(*) {clause}", *args))

    async def by_rank(self, scope: SearchScope, offset: int, limit: int) -> list[SearchHit]:
        """Matches, best first (the newest first among equals), from ``offset``."""
        clause, rank, args = self._dialect.matching(scope)
        n = len(args)
        rows = await self._db.fetchall(
            "search_by_rank",
            f"SELECT {_HIT_COLUMNS}, {rank} AS rank {clause}"
            f" ORDER BY rank DESC, s.origin_server_ts DESC, s.stream_ordering DESC"
            f" LIMIT ${n + 1} OFFSET ${n + 2}",
            *args,
            limit,
            offset,
        )
        return [_hit(r) for r in rows]

    async def by_recency(
        self, scope: SearchScope, before: tuple[int, int] | None, limit: int
    ) -> list[SearchHit]:
        """Matches, newest first (by origin_server_ts, then stream position: backfilled
        history has stream positions out of time order), older than ``before``
        (a match's (origin_server_ts, stream position)) if given."""
        clause, rank, args = self._dialect.matching(scope)
        n = len(args)
        if before is not None:
            clause += (
                f" AND (s.origin_server_ts < ${n + 1}"
                f" OR (s.origin_server_ts = ${n + 1} AND s.stream_ordering < ${n + 2}))"
            )
            args += [before[0], before[1]]
            n += 2
        rows = await self._db.fetchall(
            "search_by_recency",
            f"SELECT {_HIT_COLUMNS}, {rank} AS rank {clause}"
            f" ORDER BY s.origin_server_ts DESC, s.stream_ordering DESC LIMIT ${n + 1}",
            *args,
            limit,
        )
        return [_hit(r) for r in rows]

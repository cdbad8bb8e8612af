"""Per-room summaries for sliding sync: the bump stamp, the state a room list filters
and names rooms by, and the member counts, one row per room (schema 0029).

The rows are written inside each event's own transaction by the service in
``homeserver/sliding_sync/summaries.py``, which decides what they hold; this store
only reads and writes them, and reads the raw inputs a summary is made from (the
relevant current state, member counts, the latest bump event) for rooms whose row
is missing. Reads are cached per room until a write to the room commits.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from storage.database import Database, Row, Transaction

_IN_CHUNK = 500

_COLUMNS = (
    "room_id, bump_stamp, room_type, is_encrypted, name, avatar, canonical_alias,"
    " tombstone_successor, joined_count, invited_count"
)
# Columns the service may set one by one (the rest follow from them).
UPDATABLE = frozenset(
    {"room_type", "is_encrypted", "name", "avatar", "canonical_alias", "tombstone_successor"}
)


@dataclass(frozen=True)
class RoomSummary:
    room_id: str
    # stream ordering of the latest "bump" event in the live timeline, 0 if none
    bump_stamp: int
    room_type: str | None  # m.room.create content.type
    is_encrypted: bool  # m.room.encryption with an algorithm in current state
    name: str | None  # m.room.name content.name
    avatar: str | None  # m.room.avatar content.url
    canonical_alias: str | None  # m.room.canonical_alias content.alias
    joined_count: int  # current members with membership join
    invited_count: int  # ... invite
    tombstone_successor: str | None = None  # m.room.tombstone content.replacement_room


@dataclass
class SummaryInputs:
    """What a room's summary is made from, as held in the database."""

    room_id: str
    room_version: str | None
    # state type (state key "") -> (the event's PDU, whether it has been redacted)
    state: dict[str, tuple[dict[str, Any], bool]] = field(default_factory=dict)
    # membership -> number of current members with it
    memberships: dict[str, int] = field(default_factory=dict)
    bump_stamp: int = 0


def _marks(first: int, count: int) -> str:
    return ", ".join(f"${first + i}" for i in range(count))


def _summary(row: Row) -> RoomSummary:
    return RoomSummary(
        room_id=row[0],
        bump_stamp=int(row[1]),
        room_type=row[2],
        is_encrypted=bool(row[3]),
        name=row[4],
        avatar=row[5],
        canonical_alias=row[6],
        tombstone_successor=row[7],
        joined_count=int(row[8]),
        invited_count=int(row[9]),
    )


class RoomSummaryStore:
    def __init__(self, db: Database, cache_size: int = 100_000) -> None:
        self.db = db
        self._cache: OrderedDict[str, RoomSummary] = OrderedDict()
        self._cache_size = cache_size
        # room -> count of committed writes, so a read racing a write is not cached
        self._generation: dict[str, int] = {}
        self._cleared = 0  # moves on clear_caches: reads in flight then are not cached
        # rooms known to have a row (rows are never deleted): their updates need no
        # row count, so they can be queued with the rest of the event's writes
        self._known: set[str] = set()

    # -- reads ---------------------------------------------------------------------

    async def get_many(self, room_ids: Collection[str]) -> dict[str, RoomSummary]:
        """The summaries of those of ``room_ids`` that have one (rooms this server
        holds current state for), cached; one query per 500 rooms not cached."""
        cache = self._cache
        result = {r: c for r in room_ids if (c := cache.get(r)) is not None}
        missing = [r for r in room_ids if r not in result] if len(result) < len(room_ids) else []
        for start in range(0, len(missing), _IN_CHUNK):
            chunk = missing[start : start + _IN_CHUNK]
            cleared = self._cleared
            generations = {r: self._generation.get(r, 0) for r in chunk}
            rows = await self.db.fetchall(
                "get_room_summaries",
                f"SELECT {_COLUMNS} FROM room_summaries WHERE room_id IN ({_marks(1, len(chunk))})",
                *chunk,
            )
            for row in rows:
                summary = _summary(row)
                result[summary.room_id] = summary
                self._known.add(summary.room_id)
                if (
                    self._generation.get(summary.room_id, 0) == generations[summary.room_id]
                    and self._cleared == cleared
                ):
                    self._cache[summary.room_id] = summary
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return result

    async def get(self, room_id: str) -> RoomSummary | None:
        return (await self.get_many([room_id])).get(room_id)

    async def rooms_missing(self) -> list[str]:
        """Rooms with a current state (a create event) but no summary row: those held
        from before the summaries existed."""
        rows = await self.db.fetchall(
            "rooms_missing_summaries",
            "SELECT r.room_id FROM rooms r"
            " WHERE NOT EXISTS (SELECT 1 FROM room_summaries s WHERE s.room_id = r.room_id)"
            " AND EXISTS (SELECT 1 FROM current_state c WHERE c.room_id = r.room_id"
            " AND c.type = 'm.room.create' AND c.state_key = '')",
        )
        return [r[0] for r in rows]

    async def read_inputs(
        self, room_ids: Collection[str], state_types: Collection[str], bump_types: Collection[str]
    ) -> dict[str, SummaryInputs]:
        """:meth:`read_inputs_txn` in a read transaction of its own."""
        async with self.db.transaction("read_summary_inputs", readonly=True) as txn:
            return await self.read_inputs_txn(txn, room_ids, state_types, bump_types)

    async def read_inputs_txn(
        self,
        txn: Transaction,
        room_ids: Collection[str],
        state_types: Collection[str],
        bump_types: Collection[str],
    ) -> dict[str, SummaryInputs]:
        """The inputs of each room's summary, read in ``txn`` (so an event being
        persisted in it is seen): the current state events of ``state_types`` (state
        key ""), the member counts, and the latest accepted live event of
        ``bump_types``. Rooms without current state are left out."""
        result: dict[str, SummaryInputs] = {}
        rooms = list(dict.fromkeys(room_ids))
        types = sorted(state_types)
        bumps = sorted(bump_types)
        for start in range(0, len(rooms), _IN_CHUNK):
            chunk = rooms[start : start + _IN_CHUNK]
            n = len(chunk)
            rows = await txn.fetchall(
                "SELECT c.room_id, r.room_version, c.type, e.json, e.redacted_by"
                " FROM current_state c JOIN events e ON e.event_id = c.event_id"
                " LEFT JOIN rooms r ON r.room_id = c.room_id"
                f" WHERE c.room_id IN ({_marks(1, n)}) AND c.state_key = ''"
                f" AND c.type IN ({_marks(n + 1, len(types))})",
                *chunk,
                *types,
            )
            for room_id, version, event_type, pdu_json, redacted_by in rows:
                inputs = result.setdefault(room_id, SummaryInputs(room_id, version))
                inputs.state[event_type] = (json.loads(pdu_json), redacted_by is not None)
            rows = await txn.fetchall(
                "SELECT room_id, membership, COUNT(*) FROM current_state"
                f" WHERE room_id IN ({_marks(1, n)}) AND type = 'm.room.member'"
                " GROUP BY room_id, membership",
                *chunk,
            )
            for room_id, membership, count in rows:
                if room_id in result and membership is not None:
                    result[room_id].memberships[membership] = int(count)
            rows = await txn.fetchall(
                "SELECT room_id, MAX(stream_ordering) FROM events"
                f" WHERE room_id IN ({_marks(1, n)}) AND type IN ({_marks(n + 1, len(bumps))})"
                " AND stream_ordering > 0 AND outlier = FALSE AND soft_failed = FALSE"
                " AND rejected_reason IS NULL GROUP BY room_id",
                *chunk,
                *bumps,
            )
            for room_id, stamp in rows:
                if room_id in result and stamp is not None:
                    result[room_id].bump_stamp = int(stamp)
        return result

    # -- writes --------------------------------------------------------------------

    def _changed_on_commit(self, txn: Transaction, room_id: str, *, known: bool) -> None:
        def changed() -> None:
            self._cache.pop(room_id, None)
            self._generation[room_id] = self._generation.get(room_id, 0) + 1
            if known:
                self._known.add(room_id)

        txn.call_after_commit(changed)

    async def upsert_txn(self, txn: Transaction, summary: RoomSummary) -> None:
        """Write the whole row (replacing any)."""
        await txn.execute(
            f"INSERT INTO room_summaries ({_COLUMNS})"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (room_id) DO UPDATE"
            " SET bump_stamp = excluded.bump_stamp, room_type = excluded.room_type,"
            " is_encrypted = excluded.is_encrypted, name = excluded.name,"
            " avatar = excluded.avatar, canonical_alias = excluded.canonical_alias,"
            " tombstone_successor = excluded.tombstone_successor,"
            " joined_count = excluded.joined_count, invited_count = excluded.invited_count",
            *_values(summary),
        )
        self._changed_on_commit(txn, summary.room_id, known=True)

    async def insert_missing(self, summaries: Collection[RoomSummary]) -> int:
        """Insert rows for rooms that have none (a row written meanwhile by an event's
        transaction wins); how many were inserted."""
        if not summaries:
            return 0

        async def insert(txn: Transaction) -> int:
            inserted = 0
            for summary in summaries:
                inserted += await txn.execute(
                    f"INSERT INTO room_summaries ({_COLUMNS})"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                    " ON CONFLICT (room_id) DO NOTHING",
                    *_values(summary),
                )
                self._changed_on_commit(txn, summary.room_id, known=True)
            return inserted

        return await self.db.run_transaction("insert_room_summaries", insert)

    async def bump_txn(self, txn: Transaction, room_id: str, stream_ordering: int) -> bool:
        """Raise the room's bump stamp to ``stream_ordering``; False when the room has
        no row yet (nothing written)."""
        sql = (
            "UPDATE room_summaries SET bump_stamp = CASE WHEN bump_stamp < $2 THEN $2"
            " ELSE bump_stamp END WHERE room_id = $1"
        )
        if room_id in self._known:
            await txn.queue(sql, room_id, stream_ordering)
            found = True
        else:
            found = await txn.execute(sql, room_id, stream_ordering) > 0
        self._changed_on_commit(txn, room_id, known=found)
        return found

    async def update_txn(
        self,
        txn: Transaction,
        room_id: str,
        fields: Mapping[str, Any],
        joined_delta: int = 0,
        invited_delta: int = 0,
    ) -> bool:
        """Set ``fields`` (names of UPDATABLE) and move the member counts by the
        deltas; False when the room has no row yet (nothing written)."""
        unknown = set(fields) - UPDATABLE
        if unknown:
            raise ValueError(f"not updatable summary fields: {sorted(unknown)}")
        names = sorted(fields)
        sets = [f"{name} = ${i + 2}" for i, name in enumerate(names)]
        args: list[Any] = [room_id, *(fields[n] for n in names)]
        if joined_delta:
            args.append(joined_delta)
            sets.append(f"joined_count = joined_count + ${len(args)}")
        if invited_delta:
            args.append(invited_delta)
            sets.append(f"invited_count = invited_count + ${len(args)}")
        if not sets:
            sets.append("room_id = room_id")  # still tells whether the row exists
        sql = f"UPDATE room_summaries SET {', '.join(sets)} WHERE room_id = $1"
        if room_id in self._known:
            await txn.queue(sql, *args)
            found = True
        else:
            found = await txn.execute(sql, *args) > 0
        self._changed_on_commit(txn, room_id, known=found)
        return found

    def invalidate_room(self, room_id: str) -> None:
        """Another process wrote the room's row: drop it (a read racing this is not
        cached)."""
        self._cache.pop(room_id, None)
        self._generation[room_id] = self._generation.get(room_id, 0) + 1

    def clear_caches(self) -> None:
        """Notices from the other processes may have been missed: drop every cached
        row (a read in flight is not cached)."""
        self._cache.clear()
        self._cleared += 1

    def forget_room(self, room_id: str) -> None:
        """Drop the cached row of a purged room."""
        self._cache.pop(room_id, None)

    def forget_cache(self) -> None:
        """Drop every cached row (tests; another process wrote the table)."""
        self._cache.clear()
        self._known.clear()


def _values(summary: RoomSummary) -> tuple[Any, ...]:
    return (
        summary.room_id,
        summary.bump_stamp,
        summary.room_type,
        summary.is_encrypted,
        summary.name,
        summary.avatar,
        summary.canonical_alias,
        summary.tombstone_successor,
        summary.joined_count,
        summary.invited_count,
    )

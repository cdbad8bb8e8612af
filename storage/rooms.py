"""Rooms: the room table, memberships, invite state, aliases, the directory, filters."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from homeserver.events import Event
from storage.database import Database, IntegrityError, Transaction


class RoomStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create_room_txn(
        self, txn: Transaction, room_id: str, room_version: str, creator: str | None, ts: int
    ) -> bool:
        """Record a room; False (and nothing changed) when the room ID is already taken."""
        changed = await txn.execute(
            "INSERT INTO rooms (room_id, room_version, creator, is_public, created_ts)"
            " VALUES ($1, $2, $3, FALSE, $4) ON CONFLICT (room_id) DO NOTHING",
            room_id,
            room_version,
            creator,
            ts,
        )
        return changed > 0

    async def room_exists(self, room_id: str) -> bool:
        return (
            await self.db.fetchval("room_exists", "SELECT 1 FROM rooms WHERE room_id = $1", room_id)
            is not None
        )

    # -- memberships -----------------------------------------------------------------

    async def insert_membership_txn(
        self, txn: Transaction, event: Event, stream: int | None
    ) -> None:
        await txn.queue(
            "INSERT INTO room_memberships (event_id, room_id, user_id, sender, membership, stream_ordering)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO UPDATE"
            " SET stream_ordering = excluded.stream_ordering"
            " WHERE room_memberships.stream_ordering IS NULL",
            event.event_id,
            event.room_id,
            event.state_key,
            event.sender,
            event.membership,
            stream,
        )

    async def insert_memberships_txn(
        self, txn: Transaction, events: Sequence[Event], stream: int | None
    ) -> None:
        """:meth:`insert_membership_txn` for a batch of member events (one statement)."""
        await txn.executemany(
            "INSERT INTO room_memberships (event_id, room_id, user_id, sender, membership, stream_ordering)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO UPDATE"
            " SET stream_ordering = excluded.stream_ordering"
            " WHERE room_memberships.stream_ordering IS NULL",
            [(e.event_id, e.room_id, e.state_key, e.sender, e.membership, stream) for e in events],
        )

    async def memberships_of_events(self, event_ids: Sequence[str]) -> dict[str, str]:
        """The membership of each accepted member event among ``event_ids`` (by ID)."""
        found: dict[str, str] = {}
        for start in range(0, len(event_ids), 500):
            chunk = event_ids[start : start + 500]
            marks = ", ".join(f"${i + 1}" for i in range(len(chunk)))
            rows = await self.db.fetchall(
                "memberships_of_events",
                f"SELECT event_id, membership FROM room_memberships WHERE event_id IN ({marks})",
                *chunk,
            )
            found.update((event_id, membership) for event_id, membership in rows)
        return found

    async def store_stripped_state_txn(
        self, txn: Transaction, event_id: str, stripped: list[dict[str, Any]]
    ) -> None:
        await txn.execute(
            "INSERT INTO invite_state (event_id, stripped_state) VALUES ($1, $2)"
            " ON CONFLICT (event_id) DO UPDATE SET stripped_state = excluded.stripped_state",
            event_id,
            json.dumps(stripped),
        )

    async def get_stripped_state(self, event_id: str) -> list[dict[str, Any]]:
        raw = await self.db.fetchval(
            "get_stripped_state",
            "SELECT stripped_state FROM invite_state WHERE event_id = $1",
            event_id,
        )
        return [] if raw is None else list(json.loads(raw))

    async def latest_membership_event_id(self, user_id: str, room_id: str) -> str | None:
        """The user's latest membership event in the room that has a stream position
        (out-of-band ones too: an invite to a room this server is not in)."""
        value = await self.db.fetchval(
            "latest_membership_event_id",
            "SELECT event_id FROM room_memberships WHERE user_id = $1 AND room_id = $2"
            " AND stream_ordering IS NOT NULL ORDER BY stream_ordering DESC LIMIT 1",
            user_id,
            room_id,
        )
        return None if value is None else str(value)

    async def forget_room(self, user_id: str, room_id: str) -> None:
        await self.db.execute(
            "forget_room",
            "INSERT INTO forgotten_rooms (user_id, room_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            user_id,
            room_id,
        )

    async def unforget_room_txn(self, txn: Transaction, user_id: str, room_id: str) -> None:
        await txn.execute(
            "DELETE FROM forgotten_rooms WHERE user_id = $1 AND room_id = $2", user_id, room_id
        )

    async def is_forgotten(self, user_id: str, room_id: str) -> bool:
        return (
            await self.db.fetchval(
                "is_room_forgotten",
                "SELECT 1 FROM forgotten_rooms WHERE user_id = $1 AND room_id = $2",
                user_id,
                room_id,
            )
            is not None
        )

    async def state_group_at(self, room_id: str, stream: int) -> int | None:
        """The state group after the room's latest accepted event at or before ``stream``.

        Used for member lists "at" a sync or pagination token.
        """
        value = await self.db.fetchval(
            "state_group_at",
            "SELECT state_group FROM events WHERE room_id = $1 AND stream_ordering <= $2"
            " AND NOT outlier AND NOT soft_failed AND rejected_reason IS NULL"
            " AND state_group IS NOT NULL ORDER BY stream_ordering DESC LIMIT 1",
            room_id,
            stream,
        )
        return None if value is None else int(value)

    async def forgotten_rooms(self, user_id: str) -> set[str]:
        rows = await self.db.fetchall(
            "forgotten_rooms", "SELECT room_id FROM forgotten_rooms WHERE user_id = $1", user_id
        )
        return {r[0] for r in rows}

    # -- aliases and the directory ---------------------------------------------------

    async def create_alias(
        self, alias: str, room_id: str, creator: str, servers: list[str]
    ) -> bool:
        changed = await self.db.execute(
            "create_alias",
            "INSERT INTO room_aliases (alias, room_id, creator, servers) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (alias) DO NOTHING",
            alias,
            room_id,
            creator,
            json.dumps(servers),
        )
        return changed > 0

    async def get_alias(self, alias: str) -> tuple[str, list[str], str] | None:
        """room_id, servers and creator of an alias."""
        row = await self.db.fetchone(
            "get_alias",
            "SELECT room_id, servers, creator FROM room_aliases WHERE alias = $1",
            alias,
        )
        return None if row is None else (row[0], list(json.loads(row[1])), row[2])

    async def delete_alias(self, alias: str) -> bool:
        return (
            await self.db.execute(
                "delete_alias", "DELETE FROM room_aliases WHERE alias = $1", alias
            )
            > 0
        )

    async def aliases_for_room(self, room_id: str) -> list[str]:
        rows = await self.db.fetchall(
            "aliases_for_room",
            "SELECT alias FROM room_aliases WHERE room_id = $1 ORDER BY alias",
            room_id,
        )
        return [r[0] for r in rows]

    async def move_aliases(self, old_room_id: str, new_room_id: str) -> int:
        """Point every alias of ``old_room_id`` at ``new_room_id`` (a room upgrade);
        how many moved."""
        return await self.db.execute(
            "move_aliases",
            "UPDATE room_aliases SET room_id = $2 WHERE room_id = $1",
            old_room_id,
            new_room_id,
        )

    async def set_public(self, room_id: str, public: bool) -> None:
        await self.db.execute(
            "set_room_public", "UPDATE rooms SET is_public = $2 WHERE room_id = $1", room_id, public
        )

    async def is_public(self, room_id: str) -> bool:
        value = await self.db.fetchval(
            "is_room_public", "SELECT is_public FROM rooms WHERE room_id = $1", room_id
        )
        return bool(value)

    async def public_room_ids(self) -> list[str]:
        rows = await self.db.fetchall(
            "public_room_ids",
            "SELECT room_id FROM rooms WHERE is_public ORDER BY created_ts, room_id",
        )
        return [r[0] for r in rows]

    async def set_appservice_public(
        self, appservice_id: str, network_id: str, room_id: str, public: bool
    ) -> None:
        """Publish ``room_id`` in (or withdraw it from) an application service's list
        for one network."""
        if public:
            await self.db.execute(
                "set_appservice_room_public",
                "INSERT INTO appservice_room_list (appservice_id, network_id, room_id)"
                " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                appservice_id,
                network_id,
                room_id,
            )
        else:
            await self.db.execute(
                "set_appservice_room_private",
                "DELETE FROM appservice_room_list"
                " WHERE appservice_id = $1 AND network_id = $2 AND room_id = $3",
                appservice_id,
                network_id,
                room_id,
            )

    async def appservice_public_room_ids(
        self, appservice_id: str | None = None, network_id: str | None = None
    ) -> list[str]:
        """The rooms of one service's list for one network, or (``None``) of every list."""
        if appservice_id is None or network_id is None:
            rows = await self.db.fetchall(
                "all_appservice_public_room_ids",
                "SELECT DISTINCT room_id FROM appservice_room_list ORDER BY room_id",
            )
        else:
            rows = await self.db.fetchall(
                "appservice_public_room_ids",
                "SELECT room_id FROM appservice_room_list"
                " WHERE appservice_id = $1 AND network_id = $2 ORDER BY room_id",
                appservice_id,
                network_id,
            )
        return [r[0] for r in rows]

    # -- filters -----------------------------------------------------------------------

    async def add_filter(self, user_id: str, filter_json: dict[str, Any]) -> int:
        """Store a filter under the user's next filter ID. Two uploads of one user at
        once may pick the same ID; the one whose insert loses takes the next."""
        for _attempt in range(20):
            try:
                return await self.db.run_transaction(
                    "add_filter", lambda txn: self._add_filter_txn(txn, user_id, filter_json)
                )
            except IntegrityError:
                continue
        raise IntegrityError(f"no free filter ID for {user_id}")

    async def _add_filter_txn(
        self, txn: Transaction, user_id: str, filter_json: dict[str, Any]
    ) -> int:
        current = await txn.fetchval(
            "SELECT MAX(filter_id) FROM user_filters WHERE user_id = $1", user_id
        )
        filter_id = int(current if current is not None else -1) + 1
        await txn.execute(
            "INSERT INTO user_filters (user_id, filter_id, filter_json) VALUES ($1, $2, $3)",
            user_id,
            filter_id,
            json.dumps(filter_json),
        )
        return filter_id

    async def get_filter(self, user_id: str, filter_id: int) -> dict[str, Any] | None:
        raw = await self.db.fetchval(
            "get_filter",
            "SELECT filter_json FROM user_filters WHERE user_id = $1 AND filter_id = $2",
            user_id,
            filter_id,
        )
        return None if raw is None else dict(json.loads(raw))

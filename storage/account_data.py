"""Account data of local users, global (room_id '') and per room (client-server API:
Client Config), including tags (``m.tag``) and the fully read marker (``m.fully_read``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from storage.database import Database, Transaction

GLOBAL = ""
_CHUNK = 200  # users per query of get_global_many (placeholder limits)


@dataclass(frozen=True)
class AccountDataRecord:
    room_id: str | None
    data_type: str
    content: dict[str, Any]
    stream_id: int


def _record(row: tuple[object, ...]) -> AccountDataRecord:
    room = str(row[0])
    return AccountDataRecord(
        None if room == GLOBAL else room,
        str(row[1]),
        json.loads(str(row[2])),
        int(row[3]),  # type: ignore[call-overload]
    )


class AccountDataStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def max_stream_id(self) -> int:
        value = await self.db.fetchval(
            "account_data_max_stream", "SELECT MAX(stream_id) FROM account_data"
        )
        return int(value or 0)

    async def get(self, user_id: str, room_id: str | None, data_type: str) -> dict[str, Any] | None:
        value = await self.db.fetchval(
            "get_account_data",
            "SELECT content FROM account_data WHERE user_id = $1 AND room_id = $2"
            " AND data_type = $3",
            user_id,
            GLOBAL if room_id is None else room_id,
            data_type,
        )
        return None if value is None else dict(json.loads(str(value)))

    async def per_room_of_type(self, user_id: str, data_type: str) -> dict[str, dict[str, Any]]:
        """The user's room account data of one type, by room (e.g. every room's tags)."""
        rows = await self.db.fetchall(
            "per_room_account_data_of_type",
            "SELECT room_id, content FROM account_data WHERE user_id = $1"
            " AND data_type = $2 AND room_id <> $3",
            user_id,
            data_type,
            GLOBAL,
        )
        return {str(room): dict(json.loads(str(content))) for room, content in rows}

    async def get_global_many(
        self, user_ids: Collection[str], data_type: str
    ) -> dict[str, dict[str, Any]]:
        """One global entry of each listed user who has it."""
        users = list(dict.fromkeys(user_ids))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(users), _CHUNK):
            chunk = users[start : start + _CHUNK]
            marks = ", ".join(f"${i + 3}" for i in range(len(chunk)))
            rows = await self.db.fetchall(
                "get_global_account_data_many",
                "SELECT user_id, content FROM account_data WHERE room_id = $1"
                f" AND data_type = $2 AND user_id IN ({marks})",
                GLOBAL,
                data_type,
                *chunk,
            )
            for user_id, content in rows:
                found[str(user_id)] = dict(json.loads(str(content)))
        return found

    async def put(
        self,
        user_id: str,
        room_id: str | None,
        data_type: str,
        content: dict[str, Any],
        stream_id: int,
    ) -> None:
        await self.db.run_transaction(
            "put_account_data",
            lambda txn: self.put_txn(txn, user_id, room_id, data_type, content, stream_id),
        )

    async def update(
        self,
        user_id: str,
        room_id: str | None,
        data_type: str,
        change: Callable[[dict[str, Any] | None], dict[str, Any] | None],
        stream_id: int,
    ) -> dict[str, Any] | None:
        """Read-modify-write one entry in a transaction; ``change`` returning None keeps it."""

        async def txn_func(txn: Transaction) -> dict[str, Any] | None:
            value = await txn.fetchval(
                "SELECT content FROM account_data WHERE user_id = $1 AND room_id = $2"
                " AND data_type = $3",
                user_id,
                GLOBAL if room_id is None else room_id,
                data_type,
            )
            current = None if value is None else dict(json.loads(str(value)))
            new = change(current)
            if new is not None:
                await self.put_txn(txn, user_id, room_id, data_type, new, stream_id)
            return new

        return await self.db.run_transaction("update_account_data", txn_func)

    async def put_txn(
        self,
        txn: Transaction,
        user_id: str,
        room_id: str | None,
        data_type: str,
        content: dict[str, Any],
        stream_id: int,
    ) -> None:
        await txn.execute(
            "INSERT INTO account_data (user_id, room_id, data_type, content, stream_id)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, room_id, data_type)"
            " DO UPDATE SET content = excluded.content, stream_id = excluded.stream_id",
            user_id,
            GLOBAL if room_id is None else room_id,
            data_type,
            json.dumps(content),
            stream_id,
        )

    async def changed_for_user(
        self, user_id: str, since: int | None, upto: int
    ) -> list[AccountDataRecord]:
        """The user's account data changed in (since, upto] (everything if since is None)."""
        rows = await self.db.fetchall(
            "account_data_for_user",
            "SELECT room_id, data_type, content, stream_id FROM account_data"
            " WHERE user_id = $1 AND stream_id > $2 AND stream_id <= $3 ORDER BY stream_id",
            user_id,
            -1 if since is None else since,
            upto,
        )
        return [_record(r) for r in rows]

    async def changed_global(
        self, user_id: str, since: int | None, upto: int
    ) -> list[AccountDataRecord]:
        """The user's global account data changed in (since, upto] (all if since is None)."""
        rows = await self.db.fetchall(
            "global_account_data_for_user",
            "SELECT room_id, data_type, content, stream_id FROM account_data"
            " WHERE user_id = $1 AND room_id = $2 AND stream_id > $3 AND stream_id <= $4"
            " ORDER BY stream_id",
            user_id,
            GLOBAL,
            -1 if since is None else since,
            upto,
        )
        return [_record(r) for r in rows]

    async def changed_in_rooms(
        self, user_id: str, room_ids: Collection[str], since: int | None, upto: int
    ) -> list[AccountDataRecord]:
        """The user's account data of ``room_ids`` changed in (since, upto] (all of it
        if since is None), in stream order per chunk of rooms."""
        rooms = [r for r in dict.fromkeys(room_ids) if r != GLOBAL]
        found: list[AccountDataRecord] = []
        for start in range(0, len(rooms), _CHUNK):
            chunk = rooms[start : start + _CHUNK]
            marks = ", ".join(f"${i + 4}" for i in range(len(chunk)))
            rows = await self.db.fetchall(
                "room_account_data_for_user",
                "SELECT room_id, data_type, content, stream_id FROM account_data"
                " WHERE user_id = $1 AND stream_id > $2 AND stream_id <= $3"
                f" AND room_id IN ({marks}) ORDER BY stream_id",
                user_id,
                -1 if since is None else since,
                upto,
                *chunk,
            )
            found += [_record(r) for r in rows]
        return found

    async def rooms_changed(self, user_id: str, since: int, upto: int) -> set[str]:
        """The rooms whose account data of the user changed in (since, upto]."""
        rows = await self.db.fetchall(
            "rooms_with_account_data_changes",
            "SELECT DISTINCT room_id FROM account_data"
            " WHERE user_id = $1 AND room_id <> $2 AND stream_id > $3 AND stream_id <= $4",
            user_id,
            GLOBAL,
            since,
            upto,
        )
        return {str(r[0]) for r in rows}

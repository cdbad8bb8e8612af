"""HTTP pushers and the position of each one's delivery queue."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from storage.database import Database, Transaction

_COLUMNS = (
    "user_id, app_id, pushkey, kind, device_id, app_display_name, device_display_name,"
    " profile_tag, lang, data, pushkey_ts, last_stream_ordering, failing_since_ms"
)


@dataclass(frozen=True, slots=True)
class PusherRecord:
    user_id: str
    app_id: str
    pushkey: str
    kind: str
    device_id: str | None
    app_display_name: str
    device_display_name: str
    profile_tag: str | None
    lang: str
    data: dict[str, Any]
    pushkey_ts: int  # seconds
    last_stream_ordering: int
    failing_since_ms: int | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.user_id, self.app_id, self.pushkey)


def _record(row: tuple[Any, ...]) -> PusherRecord:
    return PusherRecord(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        row[8],
        json.loads(row[9]),
        int(row[10]),
        int(row[11]),
        None if row[12] is None else int(row[12]),
    )


class PusherStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get_pushers(self, user_id: str) -> list[PusherRecord]:
        rows = await self.db.fetchall(
            "get_pushers",
            f"SELECT {_COLUMNS} FROM pushers WHERE user_id = $1 ORDER BY app_id, pushkey",
            user_id,
        )
        return [_record(r) for r in rows]

    async def all_pushers(self) -> list[PusherRecord]:
        rows = await self.db.fetchall("all_pushers", f"SELECT {_COLUMNS} FROM pushers")
        return [_record(r) for r in rows]

    async def upsert_pusher(
        self, pusher: PusherRecord, *, remove_others: bool
    ) -> list[PusherRecord]:
        """Add or update a pusher (keeping an existing one's queue position).

        With ``remove_others`` the pushers of other users with the same app ID and
        pushkey are deleted; they are returned. Returns the stored pusher first.
        """

        async def txn_func(txn: Transaction) -> list[PusherRecord]:
            await txn.execute(
                f"INSERT INTO pushers ({_COLUMNS}) VALUES"
                " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
                " ON CONFLICT (user_id, app_id, pushkey) DO UPDATE SET kind = excluded.kind,"
                " device_id = excluded.device_id, app_display_name = excluded.app_display_name,"
                " device_display_name = excluded.device_display_name,"
                " profile_tag = excluded.profile_tag, lang = excluded.lang, data = excluded.data,"
                " pushkey_ts = excluded.pushkey_ts",
                pusher.user_id,
                pusher.app_id,
                pusher.pushkey,
                pusher.kind,
                pusher.device_id,
                pusher.app_display_name,
                pusher.device_display_name,
                pusher.profile_tag,
                pusher.lang,
                json.dumps(pusher.data, separators=(",", ":")),
                pusher.pushkey_ts,
                pusher.last_stream_ordering,
                None,
            )
            stored = await txn.fetchone(
                f"SELECT {_COLUMNS} FROM pushers WHERE user_id = $1 AND app_id = $2"
                " AND pushkey = $3",
                pusher.user_id,
                pusher.app_id,
                pusher.pushkey,
            )
            assert stored is not None
            removed: list[PusherRecord] = []
            if remove_others:
                rows = await txn.fetchall(
                    f"SELECT {_COLUMNS} FROM pushers WHERE app_id = $1 AND pushkey = $2"
                    " AND user_id <> $3",
                    pusher.app_id,
                    pusher.pushkey,
                    pusher.user_id,
                )
                removed = [_record(r) for r in rows]
                await txn.execute(
                    "DELETE FROM pushers WHERE app_id = $1 AND pushkey = $2 AND user_id <> $3",
                    pusher.app_id,
                    pusher.pushkey,
                    pusher.user_id,
                )
            return [_record(stored), *removed]

        return await self.db.run_transaction("upsert_pusher", txn_func)

    async def delete_pusher(self, user_id: str, app_id: str, pushkey: str) -> bool:
        changed = await self.db.execute(
            "delete_pusher",
            "DELETE FROM pushers WHERE user_id = $1 AND app_id = $2 AND pushkey = $3",
            user_id,
            app_id,
            pushkey,
        )
        return changed > 0

    async def delete_device_pushers_txn(
        self, txn: Transaction, user_id: str, device_ids: list[str]
    ) -> list[tuple[str, str, str]]:
        """Delete the user's pushers set by any of ``device_ids``; return their keys."""
        if not device_ids:
            return []
        rows = await txn.fetchall(
            "SELECT app_id, pushkey, device_id FROM pushers WHERE user_id = $1", user_id
        )
        wanted = set(device_ids)
        keys = [(user_id, app_id, pushkey) for app_id, pushkey, device in rows if device in wanted]
        if keys:
            await txn.executemany(
                "DELETE FROM pushers WHERE user_id = $1 AND app_id = $2 AND pushkey = $3", keys
            )
        return keys

    async def set_delivery_state(
        self,
        key: tuple[str, str, str],
        last_stream_ordering: int,
        failing_since_ms: int | None,
    ) -> None:
        await self.db.execute(
            "set_pusher_delivery_state",
            "UPDATE pushers SET last_stream_ordering = $4, failing_since_ms = $5"
            " WHERE user_id = $1 AND app_id = $2 AND pushkey = $3",
            *key,
            last_stream_ordering,
            failing_since_ms,
        )

"""Server-side room key backups: versions and the keys stored in them.

Spec: client-server "Server-side key backups". Versions are numbered per user and
never reused; a deleted version is kept as a tombstone so deleting it again succeeds.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from storage.database import Database, Transaction


@dataclass(frozen=True)
class BackupVersion:
    version: int
    algorithm: str
    # opaque to the server: any JSON value the client gave (see KeyBackupService)
    auth_data: Any
    etag: int
    deleted: bool


@dataclass(frozen=True)
class BackedUpKey:
    room_id: str
    session_id: str
    first_message_index: int
    forwarded_count: int
    is_verified: bool
    session_data: Any

    def to_json(self) -> dict[str, Any]:
        return {
            "first_message_index": self.first_message_index,
            "forwarded_count": self.forwarded_count,
            "is_verified": self.is_verified,
            "session_data": self.session_data,
        }


_KEY_COLUMNS = (
    "room_id, session_id, first_message_index, forwarded_count, is_verified, session_data"
)


def _key(row: tuple[Any, ...]) -> BackedUpKey:
    return BackedUpKey(row[0], row[1], int(row[2]), int(row[3]), bool(row[4]), json.loads(row[5]))


class KeyBackupStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- versions ---------------------------------------------------------------------

    async def create_version_txn(
        self, txn: Transaction, user_id: str, algorithm: str, auth_data: Any
    ) -> int:
        last = await txn.fetchval(
            "SELECT COALESCE(MAX(version), 0) FROM e2e_room_keys_versions WHERE user_id = $1",
            user_id,
        )
        version = int(last or 0) + 1
        await txn.execute(
            "INSERT INTO e2e_room_keys_versions (user_id, version, algorithm, auth_data, etag)"
            " VALUES ($1, $2, $3, $4, 0)",
            user_id,
            version,
            algorithm,
            json.dumps(auth_data),
        )
        return version

    async def get_version_txn(
        self, txn: Transaction, user_id: str, version: int | None
    ) -> BackupVersion | None:
        """One version (deleted ones included), or the latest live one when None."""
        if version is None:
            row = await txn.fetchone(
                "SELECT version, algorithm, auth_data, etag, deleted FROM e2e_room_keys_versions"
                " WHERE user_id = $1 AND deleted = FALSE ORDER BY version DESC LIMIT 1",
                user_id,
            )
        else:
            row = await txn.fetchone(
                "SELECT version, algorithm, auth_data, etag, deleted FROM e2e_room_keys_versions"
                " WHERE user_id = $1 AND version = $2",
                user_id,
                version,
            )
        if row is None:
            return None
        return BackupVersion(int(row[0]), row[1], json.loads(row[2]), int(row[3]), bool(row[4]))

    async def get_version(self, user_id: str, version: int | None) -> BackupVersion | None:
        async with self.db.transaction("get_backup_version", readonly=True) as txn:
            return await self.get_version_txn(txn, user_id, version)

    async def update_auth_data_txn(
        self, txn: Transaction, user_id: str, version: int, auth_data: Any
    ) -> None:
        await txn.execute(
            "UPDATE e2e_room_keys_versions SET auth_data = $3 WHERE user_id = $1 AND version = $2",
            user_id,
            version,
            json.dumps(auth_data),
        )

    async def delete_version_txn(self, txn: Transaction, user_id: str, version: int) -> None:
        await txn.execute(
            "UPDATE e2e_room_keys_versions SET deleted = TRUE WHERE user_id = $1 AND version = $2",
            user_id,
            version,
        )
        await txn.execute(
            "DELETE FROM e2e_room_keys WHERE user_id = $1 AND version = $2", user_id, version
        )

    async def bump_etag_txn(self, txn: Transaction, user_id: str, version: int) -> int:
        await txn.execute(
            "UPDATE e2e_room_keys_versions SET etag = etag + 1 WHERE user_id = $1 AND version = $2",
            user_id,
            version,
        )
        return int(
            await txn.fetchval(
                "SELECT etag FROM e2e_room_keys_versions WHERE user_id = $1 AND version = $2",
                user_id,
                version,
            )
        )

    # -- keys -------------------------------------------------------------------------

    async def count_keys_txn(self, txn: Transaction, user_id: str, version: int) -> int:
        value = await txn.fetchval(
            "SELECT COUNT(*) FROM e2e_room_keys WHERE user_id = $1 AND version = $2",
            user_id,
            version,
        )
        return int(value or 0)

    async def get_keys_txn(
        self,
        txn: Transaction,
        user_id: str,
        version: int,
        room_id: str | None = None,
        session_id: str | None = None,
    ) -> list[BackedUpKey]:
        sql = f"SELECT {_KEY_COLUMNS} FROM e2e_room_keys WHERE user_id = $1 AND version = $2"
        args: list[Any] = [user_id, version]
        if room_id is not None:
            sql += " AND room_id = $3"
            args.append(room_id)
            if session_id is not None:
                sql += " AND session_id = $4"
                args.append(session_id)
        rows = await txn.fetchall(sql + " ORDER BY room_id, session_id", *args)
        return [_key(r) for r in rows]

    async def get_keys_for_sessions_txn(
        self, txn: Transaction, user_id: str, version: int, room_ids: Collection[str]
    ) -> dict[tuple[str, str], BackedUpKey]:
        out: dict[tuple[str, str], BackedUpKey] = {}
        for room_id in room_ids:
            for key in await self.get_keys_txn(txn, user_id, version, room_id):
                out[(key.room_id, key.session_id)] = key
        return out

    async def put_key_txn(
        self, txn: Transaction, user_id: str, version: int, key: BackedUpKey
    ) -> None:
        await txn.execute(
            f"INSERT INTO e2e_room_keys (user_id, version, {_KEY_COLUMNS})"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " ON CONFLICT (user_id, version, room_id, session_id) DO UPDATE SET"
            " first_message_index = excluded.first_message_index,"
            " forwarded_count = excluded.forwarded_count, is_verified = excluded.is_verified,"
            " session_data = excluded.session_data",
            user_id,
            version,
            key.room_id,
            key.session_id,
            key.first_message_index,
            key.forwarded_count,
            key.is_verified,
            json.dumps(key.session_data),
        )

    async def delete_keys_txn(
        self,
        txn: Transaction,
        user_id: str,
        version: int,
        room_id: str | None = None,
        session_id: str | None = None,
    ) -> int:
        sql = "DELETE FROM e2e_room_keys WHERE user_id = $1 AND version = $2"
        args: list[Any] = [user_id, version]
        if room_id is not None:
            sql += " AND room_id = $3"
            args.append(room_id)
            if session_id is not None:
                sql += " AND session_id = $4"
                args.append(session_id)
        return await txn.execute(sql, *args)

"""Users and their profiles."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from storage.database import Database, Transaction
from storage.user_directory import insert_local_txn


@dataclass(frozen=True)
class UserRecord:
    user_id: str
    password_hash: str | None
    is_admin: bool
    is_guest: bool
    deactivated: bool
    created_ts: int


class AccountStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create_user_txn(
        self,
        txn: Transaction,
        user_id: str,
        password_hash: str | None,
        *,
        created_ts: int,
        is_admin: bool = False,
        is_guest: bool = False,
        displayname: str | None = None,
    ) -> None:
        await txn.execute(
            "INSERT INTO users (user_id, password_hash, is_admin, is_guest, deactivated, created_ts)"
            " VALUES ($1, $2, $3, $4, FALSE, $5)",
            user_id,
            password_hash,
            is_admin,
            is_guest,
            created_ts,
        )
        await txn.execute(
            "INSERT INTO profiles (user_id, displayname, avatar_url) VALUES ($1, $2, NULL)",
            user_id,
            displayname,
        )
        await insert_local_txn(txn, user_id, displayname)

    async def ensure_user(self, user_id: str, *, created_ts: int, displayname: str) -> bool:
        """Create a passwordless user (and its profile) unless it exists; True when
        created. Safe against another process doing the same at once."""

        async def txn_func(txn: Transaction) -> bool:
            created = await txn.execute(
                "INSERT INTO users (user_id, password_hash, is_admin, is_guest, deactivated,"
                " created_ts) VALUES ($1, NULL, FALSE, FALSE, FALSE, $2)"
                " ON CONFLICT (user_id) DO NOTHING",
                user_id,
                created_ts,
            )
            if created:
                await txn.execute(
                    "INSERT INTO profiles (user_id, displayname, avatar_url) VALUES ($1, $2, NULL)"
                    " ON CONFLICT (user_id) DO NOTHING",
                    user_id,
                    displayname,
                )
                await insert_local_txn(txn, user_id, displayname)
            return created > 0

        return await self.db.run_transaction("ensure_user", txn_func)

    async def get_user(self, user_id: str) -> UserRecord | None:
        row = await self.db.fetchone(
            "get_user",
            "SELECT user_id, password_hash, is_admin, is_guest, deactivated, created_ts"
            " FROM users WHERE user_id = $1",
            user_id,
        )
        if row is None:
            return None
        return UserRecord(row[0], row[1], bool(row[2]), bool(row[3]), bool(row[4]), int(row[5]))

    async def get_user_case_insensitive(self, user_id: str) -> list[str]:
        rows = await self.db.fetchall(
            "get_user_case_insensitive",
            "SELECT user_id FROM users WHERE LOWER(user_id) = LOWER($1)",
            user_id,
        )
        return [r[0] for r in rows]

    async def set_password_hash_txn(
        self, txn: Transaction, user_id: str, password_hash: str | None
    ) -> None:
        await txn.execute(
            "UPDATE users SET password_hash = $2 WHERE user_id = $1", user_id, password_hash
        )

    async def upgrade_guest_txn(
        self, txn: Transaction, user_id: str, password_hash: str | None
    ) -> bool:
        """Make a live guest account a full one; False if ``user_id`` is no such guest."""
        changed = await txn.execute(
            "UPDATE users SET is_guest = FALSE, password_hash = $2"
            " WHERE user_id = $1 AND is_guest AND NOT deactivated",
            user_id,
            password_hash,
        )
        return changed == 1

    async def set_deactivated_txn(self, txn: Transaction, user_id: str) -> None:
        await txn.execute(
            "UPDATE users SET deactivated = TRUE, password_hash = NULL WHERE user_id = $1", user_id
        )
        await txn.execute(
            "UPDATE profiles SET displayname = NULL, avatar_url = NULL WHERE user_id = $1", user_id
        )

    async def mark_erased_txn(self, txn: Transaction, user_id: str) -> None:
        await txn.execute(
            "INSERT INTO erased_users (user_id) VALUES ($1) ON CONFLICT (user_id) DO NOTHING",
            user_id,
        )

    async def erased_among(self, user_ids: Collection[str]) -> set[str]:
        """Those of ``user_ids`` who asked for their data to be erased."""
        wanted = sorted(set(user_ids))
        if not wanted:
            return set()
        marks = ", ".join(f"${i}" for i in range(1, len(wanted) + 1))
        rows = await self.db.fetchall(
            "erased_among", f"SELECT user_id FROM erased_users WHERE user_id IN ({marks})", *wanted
        )
        return {str(r[0]) for r in rows}

    async def set_admin(self, user_id: str, is_admin: bool) -> None:
        await self.db.execute(
            "set_admin", "UPDATE users SET is_admin = $2 WHERE user_id = $1", user_id, is_admin
        )

    async def get_profile(self, user_id: str) -> tuple[str | None, str | None] | None:
        row = await self.db.fetchone(
            "get_profile",
            "SELECT p.displayname, p.avatar_url FROM profiles p JOIN users u USING (user_id)"
            " WHERE p.user_id = $1 AND NOT u.deactivated",
            user_id,
        )
        return None if row is None else (row[0], row[1])

    async def set_profile_field(self, user_id: str, field: str, value: str | None) -> None:
        column = {"displayname": "displayname", "avatar_url": "avatar_url"}[field]
        await self.db.execute(
            "set_profile_field",
            f"UPDATE profiles SET {column} = $2 WHERE user_id = $1",
            user_id,
            value,
        )

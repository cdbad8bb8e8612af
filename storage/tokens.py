"""Access and refresh tokens, stored as SHA-256 digests of the token."""

from __future__ import annotations

from dataclasses import dataclass

from storage.database import Database, Transaction


@dataclass(frozen=True)
class AccessTokenRecord:
    user_id: str
    device_id: str
    expires_ts: int | None
    is_guest: bool
    deactivated: bool
    # the refresh token this access token was minted with, while its predecessor lives
    refreshed_from: str | None = None
    shadow_banned: bool = False
    locked: bool = False
    suspended: bool = False
    # the user's own message rate limit (admin API override_ratelimit), if any
    limit_override: tuple[int, int] | None = None


@dataclass(frozen=True)
class RefreshTokenRecord:
    user_id: str
    device_id: str
    next_token_hash: str | None


class TokenStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add_access_token_txn(
        self,
        txn: Transaction,
        token_hash: str,
        user_id: str,
        device_id: str,
        *,
        created_ts: int,
        expires_ts: int | None = None,
        refresh_token_hash: str | None = None,
    ) -> None:
        await txn.execute(
            "INSERT INTO access_tokens"
            " (token_hash, user_id, device_id, created_ts, expires_ts, refresh_token_hash)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            token_hash,
            user_id,
            device_id,
            created_ts,
            expires_ts,
            refresh_token_hash,
        )

    async def get_access_token(self, token_hash: str) -> AccessTokenRecord | None:
        row = await self.db.fetchone(
            "get_access_token",
            "SELECT t.user_id, t.device_id, t.expires_ts, u.is_guest, u.deactivated,"
            " (SELECT p.token_hash FROM refresh_tokens p"
            "   WHERE p.next_token_hash = t.refresh_token_hash),"
            " u.shadow_banned, u.locked, r.messages_per_second, r.burst_count, u.suspended"
            " FROM access_tokens t JOIN users u USING (user_id)"
            " LEFT JOIN ratelimit_override r ON r.user_id = t.user_id"
            " WHERE t.token_hash = $1",
            token_hash,
        )
        if row is None:
            return None
        return AccessTokenRecord(
            row[0],
            row[1],
            row[2],
            bool(row[3]),
            bool(row[4]),
            row[5],
            shadow_banned=bool(row[6]),
            locked=bool(row[7]),
            limit_override=None if row[8] is None else (int(row[8]), int(row[9])),
            suspended=bool(row[10]),
        )

    async def revoke_predecessor(self, predecessor_hash: str) -> None:
        """The successor of a refresh token was used: the old refresh token dies."""
        await self.db.execute(
            "revoke_refresh_predecessor",
            "DELETE FROM refresh_tokens WHERE token_hash = $1",
            predecessor_hash,
        )

    async def delete_access_token_txn(self, txn: Transaction, token_hash: str) -> None:
        await txn.execute("DELETE FROM access_tokens WHERE token_hash = $1", token_hash)

    async def delete_tokens_for_devices_txn(
        self, txn: Transaction, user_id: str, device_ids: list[str]
    ) -> list[str]:
        """Delete every access and refresh token of these devices; return the access token hashes."""
        hashes: list[str] = []
        for device_id in device_ids:
            rows = await txn.fetchall(
                "SELECT token_hash FROM access_tokens WHERE user_id = $1 AND device_id = $2",
                user_id,
                device_id,
            )
            hashes.extend(r[0] for r in rows)
            await txn.execute(
                "DELETE FROM access_tokens WHERE user_id = $1 AND device_id = $2",
                user_id,
                device_id,
            )
            await txn.execute(
                "DELETE FROM refresh_tokens WHERE user_id = $1 AND device_id = $2",
                user_id,
                device_id,
            )
        return hashes

    async def delete_user_tokens_txn(self, txn: Transaction, user_id: str) -> list[str]:
        """Delete every access and refresh token of a user; return the access token hashes."""
        rows = await txn.fetchall(
            "SELECT token_hash FROM access_tokens WHERE user_id = $1", user_id
        )
        await txn.execute("DELETE FROM access_tokens WHERE user_id = $1", user_id)
        await txn.execute("DELETE FROM refresh_tokens WHERE user_id = $1", user_id)
        return [r[0] for r in rows]

    async def add_refresh_token_txn(
        self, txn: Transaction, token_hash: str, user_id: str, device_id: str, created_ts: int
    ) -> None:
        await txn.execute(
            "INSERT INTO refresh_tokens (token_hash, user_id, device_id, created_ts)"
            " VALUES ($1, $2, $3, $4)",
            token_hash,
            user_id,
            device_id,
            created_ts,
        )

    async def get_refresh_token_txn(
        self, txn: Transaction, token_hash: str
    ) -> RefreshTokenRecord | None:
        row = await txn.fetchone(
            "SELECT user_id, device_id, next_token_hash FROM refresh_tokens WHERE token_hash = $1",
            token_hash,
        )
        return None if row is None else RefreshTokenRecord(row[0], row[1], row[2])

    async def replace_refresh_token_txn(
        self, txn: Transaction, old_hash: str, new_hash: str
    ) -> list[str]:
        """Mark ``old_hash`` used; drop the access tokens it had minted; return their hashes."""
        await txn.execute(
            "UPDATE refresh_tokens SET next_token_hash = $2 WHERE token_hash = $1",
            old_hash,
            new_hash,
        )
        rows = await txn.fetchall(
            "SELECT token_hash FROM access_tokens WHERE refresh_token_hash = $1", old_hash
        )
        await txn.execute("DELETE FROM access_tokens WHERE refresh_token_hash = $1", old_hash)
        return [r[0] for r in rows]

    async def delete_refresh_token_txn(self, txn: Transaction, token_hash: str) -> list[str]:
        """Delete a refresh token and the access tokens minted with it."""
        rows = await txn.fetchall(
            "SELECT token_hash FROM access_tokens WHERE refresh_token_hash = $1", token_hash
        )
        await txn.execute("DELETE FROM access_tokens WHERE refresh_token_hash = $1", token_hash)
        await txn.execute("DELETE FROM refresh_tokens WHERE token_hash = $1", token_hash)
        return [r[0] for r in rows]

    async def delete_predecessor_txn(self, txn: Transaction, token_hash: str) -> list[str]:
        """Using a refresh token revokes the one it replaced."""
        rows = await txn.fetchall(
            "SELECT token_hash FROM refresh_tokens WHERE next_token_hash = $1", token_hash
        )
        revoked: list[str] = []
        for (old,) in rows:
            revoked += await self.delete_refresh_token_txn(txn, old)
        return revoked

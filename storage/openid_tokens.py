"""OpenID tokens (``openid_tokens``), stored as SHA-256 digests."""

from __future__ import annotations

from storage.database import Database, Transaction


class OpenIdTokenStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, token_hash: str, user_id: str, expiry_ts: int, now: int) -> None:
        """Store a new token; tokens that have expired by ``now`` go at the same time."""

        async def add_token(txn: Transaction) -> None:
            await txn.execute("DELETE FROM openid_tokens WHERE expiry_ts <= $1", now)
            await txn.execute(
                "INSERT INTO openid_tokens (token_hash, user_id, expiry_ts) VALUES ($1, $2, $3)",
                token_hash,
                user_id,
                expiry_ts,
            )

        await self.db.run_transaction("add_openid_token", add_token)

    async def get_user(self, token_hash: str, now: int) -> str | None:
        """The user the token was made for, None if it is unknown or has expired."""
        value = await self.db.fetchval(
            "get_openid_token",
            "SELECT user_id FROM openid_tokens WHERE token_hash = $1 AND expiry_ts > $2",
            token_hash,
            now,
        )
        return None if value is None else str(value)

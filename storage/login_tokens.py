"""Short-lived single-use login tokens (``m.login.token``), stored as SHA-256 digests."""

from __future__ import annotations

from dataclasses import dataclass

from storage.database import Database, Transaction


@dataclass(frozen=True)
class LoginTokenRecord:
    user_id: str
    auth_provider: str | None


class LoginTokenStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(
        self, token_hash: str, user_id: str, auth_provider: str | None, expiry_ts: int, now: int
    ) -> None:
        """Store a new token; tokens that have expired by ``now`` go at the same time."""

        async def add_token(txn: Transaction) -> None:
            await txn.execute("DELETE FROM login_tokens WHERE expiry_ts <= $1", now)
            await txn.execute(
                "INSERT INTO login_tokens (token_hash, user_id, auth_provider, expiry_ts)"
                " VALUES ($1, $2, $3, $4)",
                token_hash,
                user_id,
                auth_provider,
                expiry_ts,
            )

        await self.db.run_transaction("add_login_token", add_token)

    async def consume(self, token_hash: str, now: int) -> LoginTokenRecord | None:
        """Mark the token used and return it; None if it is unknown, used or expired
        (of two concurrent uses, only one gets it)."""

        async def use_token(txn: Transaction) -> LoginTokenRecord | None:
            row = await txn.fetchone(
                "SELECT user_id, auth_provider FROM login_tokens"
                " WHERE token_hash = $1 AND used_ts IS NULL AND expiry_ts > $2",
                token_hash,
                now,
            )
            if row is None:
                return None
            changed = await txn.execute(
                "UPDATE login_tokens SET used_ts = $2 WHERE token_hash = $1 AND used_ts IS NULL",
                token_hash,
                now,
            )
            if changed != 1:
                return None
            return LoginTokenRecord(str(row[0]), None if row[1] is None else str(row[1]))

        return await self.db.run_transaction("consume_login_token", use_token)

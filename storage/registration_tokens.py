"""Registration tokens, managed by admins, spent by /register."""

from __future__ import annotations

from dataclasses import dataclass

from storage.database import Database, Transaction


@dataclass(frozen=True)
class RegistrationToken:
    token: str
    uses_allowed: int | None
    pending: int
    completed: int
    expiry_time: int | None

    def is_valid(self, now_ms: int) -> bool:
        if self.expiry_time is not None and now_ms > self.expiry_time:
            return False
        return self.uses_allowed is None or self.pending + self.completed < self.uses_allowed


_COLUMNS = "token, uses_allowed, pending, completed, expiry_time"


class RegistrationTokenStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, token: str, uses_allowed: int | None, expiry_time: int | None) -> bool:
        changed = await self.db.execute(
            "create_registration_token",
            "INSERT INTO registration_tokens (token, uses_allowed, pending, completed, expiry_time)"
            " VALUES ($1, $2, 0, 0, $3) ON CONFLICT (token) DO NOTHING",
            token,
            uses_allowed,
            expiry_time,
        )
        return changed > 0

    async def get(self, token: str) -> RegistrationToken | None:
        row = await self.db.fetchone(
            "get_registration_token",
            f"SELECT {_COLUMNS} FROM registration_tokens WHERE token = $1",
            token,
        )
        return None if row is None else RegistrationToken(*row)

    async def list_all(self) -> list[RegistrationToken]:
        rows = await self.db.fetchall(
            "list_registration_tokens", f"SELECT {_COLUMNS} FROM registration_tokens ORDER BY token"
        )
        return [RegistrationToken(*r) for r in rows]

    async def update(self, token: str, uses_allowed: int | None, expiry_time: int | None) -> bool:
        changed = await self.db.execute(
            "update_registration_token",
            "UPDATE registration_tokens SET uses_allowed = $2, expiry_time = $3 WHERE token = $1",
            token,
            uses_allowed,
            expiry_time,
        )
        return changed > 0

    async def delete(self, token: str) -> bool:
        changed = await self.db.execute(
            "delete_registration_token", "DELETE FROM registration_tokens WHERE token = $1", token
        )
        return changed > 0

    async def consume_txn(self, txn: Transaction, token: str, now_ms: int) -> bool:
        """Count one completed use of ``token`` if it is still valid; False otherwise."""
        changed = await txn.execute(
            "UPDATE registration_tokens SET completed = completed + 1 WHERE token = $1"
            " AND (expiry_time IS NULL OR expiry_time >= $2)"
            " AND (uses_allowed IS NULL OR pending + completed < uses_allowed)",
            token,
            now_ms,
        )
        return changed > 0

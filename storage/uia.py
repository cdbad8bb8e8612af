"""Sessions of user-interactive authentication and the stages they completed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from storage.database import Database, Transaction


@dataclass(frozen=True)
class UiaSession:
    session_id: str
    created_ts: int
    request: str
    clientdict: dict[str, Any]
    user_id: str | None
    completed: dict[str, Any]
    # the account a registration session created (None before, or for other requests)
    registered_user_id: str | None = None


class UiaStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create_session(
        self,
        session_id: str,
        created_ts: int,
        request: str,
        clientdict: dict[str, Any],
        user_id: str | None,
    ) -> None:
        await self.db.execute(
            "create_uia_session",
            "INSERT INTO ui_auth_sessions (session_id, created_ts, request, clientdict, user_id)"
            " VALUES ($1, $2, $3, $4, $5)",
            session_id,
            created_ts,
            request,
            json.dumps(clientdict),
            user_id,
        )

    async def get_session(self, session_id: str) -> UiaSession | None:
        async with self.db.transaction("get_uia_session", readonly=True) as txn:
            row = await txn.fetchone(
                "SELECT session_id, created_ts, request, clientdict, user_id, registered_user_id"
                " FROM ui_auth_sessions WHERE session_id = $1",
                session_id,
            )
            if row is None:
                return None
            stages = await txn.fetchall(
                "SELECT stage_type, result FROM ui_auth_completed WHERE session_id = $1", session_id
            )
        completed = {s: json.loads(r) for s, r in stages}
        return UiaSession(row[0], row[1], row[2], json.loads(row[3]), row[4], completed, row[5])

    async def mark_stage_complete_txn(
        self, txn: Transaction, session_id: str, stage: str, result: Any
    ) -> None:
        await txn.execute(
            "INSERT INTO ui_auth_completed (session_id, stage_type, result) VALUES ($1, $2, $3)"
            " ON CONFLICT (session_id, stage_type) DO UPDATE SET result = excluded.result",
            session_id,
            stage,
            json.dumps(result),
        )

    async def set_registered_user(self, session_id: str, user_id: str) -> None:
        await self.db.execute(
            "set_uia_registered_user",
            "UPDATE ui_auth_sessions SET registered_user_id = $1 WHERE session_id = $2",
            user_id,
            session_id,
        )

    async def delete_session_txn(self, txn: Transaction, session_id: str) -> None:
        await txn.execute("DELETE FROM ui_auth_sessions WHERE session_id = $1", session_id)

    async def delete_older_than(self, ts: int) -> None:
        await self.db.execute(
            "expire_uia_sessions", "DELETE FROM ui_auth_sessions WHERE created_ts < $1", ts
        )

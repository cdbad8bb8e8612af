"""Validation sessions of third-party IDs this server checks itself (email): the
session a client opened with its ``client_secret``, and the tokens mailed for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from storage.database import Database, Transaction


@dataclass(frozen=True)
class ValidationSession:
    session_id: str
    medium: str
    address: str
    client_secret: str
    last_send_attempt: int
    validated_at: int | None


@dataclass(frozen=True)
class ValidationToken:
    session_id: str
    next_link: str | None
    expires: int


_SESSION_COLUMNS = "session_id, medium, address, client_secret, last_send_attempt, validated_at"


def _session(row: Any) -> ValidationSession:
    return ValidationSession(
        session_id=str(row[0]),
        medium=str(row[1]),
        address=str(row[2]),
        client_secret=str(row[3]),
        last_send_attempt=int(row[4]),
        validated_at=None if row[5] is None else int(row[5]),
    )


class ThreepidValidationStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def unvalidated_session(
        self, medium: str, client_secret: str, address: str
    ) -> ValidationSession | None:
        """The open (not yet validated) session of this secret and address, if any."""
        row = await self.db.fetchone(
            "get_unvalidated_threepid_session",
            f"SELECT {_SESSION_COLUMNS} FROM threepid_validation_session"
            " WHERE medium = $1 AND client_secret = $2 AND address = $3"
            " AND validated_at IS NULL",
            medium,
            client_secret,
            address,
        )
        return None if row is None else _session(row)

    async def session(self, session_id: str) -> ValidationSession | None:
        async with self.db.transaction("get_threepid_session", readonly=True) as txn:
            return await self.session_txn(txn, session_id)

    async def session_txn(self, txn: Transaction, session_id: str) -> ValidationSession | None:
        row = await txn.fetchone(
            f"SELECT {_SESSION_COLUMNS} FROM threepid_validation_session WHERE session_id = $1",
            session_id,
        )
        return None if row is None else _session(row)

    async def start_or_continue(
        self,
        session: ValidationSession,
        token: str,
        next_link: str | None,
        expires: int,
        now: int,
    ) -> None:
        """Record ``session`` (new, or its new send attempt) with a new ``token``; tokens
        that expired before ``now`` go."""

        async def txn_func(txn: Transaction) -> None:
            updated = await txn.execute(
                "UPDATE threepid_validation_session SET last_send_attempt = $2"
                " WHERE session_id = $1",
                session.session_id,
                session.last_send_attempt,
            )
            if not updated:
                await txn.execute(
                    f"INSERT INTO threepid_validation_session ({_SESSION_COLUMNS})"
                    " VALUES ($1, $2, $3, $4, $5, NULL)",
                    session.session_id,
                    session.medium,
                    session.address,
                    session.client_secret,
                    session.last_send_attempt,
                )
            await txn.execute("DELETE FROM threepid_validation_token WHERE expires <= $1", now)
            await txn.execute(
                "INSERT INTO threepid_validation_token (token, session_id, next_link, expires)"
                " VALUES ($1, $2, $3, $4)",
                token,
                session.session_id,
                next_link,
                expires,
            )

        await self.db.run_transaction("start_or_continue_threepid_session", txn_func)

    async def token_txn(
        self, txn: Transaction, session_id: str, token: str
    ) -> ValidationToken | None:
        row = await txn.fetchone(
            "SELECT session_id, next_link, expires FROM threepid_validation_token"
            " WHERE session_id = $1 AND token = $2",
            session_id,
            token,
        )
        return None if row is None else ValidationToken(str(row[0]), row[1], int(row[2]))

    async def mark_validated_txn(self, txn: Transaction, session_id: str, now: int) -> None:
        """The session is validated; its tokens are spent."""
        await txn.execute(
            "UPDATE threepid_validation_session SET validated_at = $2 WHERE session_id = $1",
            session_id,
            now,
        )
        await txn.execute("DELETE FROM threepid_validation_token WHERE session_id = $1", session_id)

    async def delete_session_txn(self, txn: Transaction, session_id: str) -> None:
        await txn.execute("DELETE FROM threepid_validation_token WHERE session_id = $1", session_id)
        await txn.execute(
            "DELETE FROM threepid_validation_session WHERE session_id = $1", session_id
        )

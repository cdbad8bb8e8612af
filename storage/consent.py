"""Which version of the privacy policy (``user_consent``) each local user agreed to."""

from __future__ import annotations

from dataclasses import dataclass

from storage.database import Database


@dataclass(frozen=True)
class UserConsent:
    user_id: str
    is_guest: bool
    consent_version: str | None
    consent_ts: int | None
    consent_server_notice_sent: str | None


class ConsentStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, user_id: str) -> UserConsent | None:
        row = await self.db.fetchone(
            "get_user_consent",
            "SELECT user_id, is_guest, consent_version, consent_ts, consent_server_notice_sent"
            " FROM users WHERE user_id = $1",
            user_id,
        )
        if row is None:
            return None
        return UserConsent(row[0], bool(row[1]), row[2], row[3], row[4])

    async def set_consent_version(self, user_id: str, version: str, ts: int) -> bool:
        """Record that ``user_id`` agreed to ``version``; False if no such user."""
        updated = await self.db.execute(
            "set_user_consent_version",
            "UPDATE users SET consent_version = $1, consent_ts = $2 WHERE user_id = $3",
            version,
            ts,
            user_id,
        )
        return bool(updated)

    async def set_server_notice_sent(self, user_id: str, version: str) -> None:
        await self.db.execute(
            "set_consent_server_notice_sent",
            "UPDATE users SET consent_server_notice_sent = $1 WHERE user_id = $2",
            version,
            user_id,
        )

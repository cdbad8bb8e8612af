"""Which local user each identity of a single sign-on provider logs in as."""

from __future__ import annotations

from storage.database import Database, Transaction


class ExternalIdStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get_user(self, auth_provider: str, external_id: str) -> str | None:
        """The user ``external_id`` of ``auth_provider`` logs in as, if recorded."""
        value = await self.db.fetchval(
            "get_user_by_external_id",
            "SELECT user_id FROM user_external_ids WHERE auth_provider = $1 AND external_id = $2",
            auth_provider,
            external_id,
        )
        return None if value is None else str(value)

    async def record(self, auth_provider: str, external_id: str, user_id: str) -> str:
        """Link ``external_id`` to ``user_id`` unless it is linked already; return the
        user it is linked to (the earlier link wins a race)."""

        async def link(txn: Transaction) -> str:
            await txn.execute(
                "INSERT INTO user_external_ids (auth_provider, external_id, user_id)"
                " VALUES ($1, $2, $3) ON CONFLICT (auth_provider, external_id) DO NOTHING",
                auth_provider,
                external_id,
                user_id,
            )
            linked = await txn.fetchval(
                "SELECT user_id FROM user_external_ids"
                " WHERE auth_provider = $1 AND external_id = $2",
                auth_provider,
                external_id,
            )
            return str(linked)

        return await self.db.run_transaction("record_user_external_id", link)

    async def get_providers_of_user(self, user_id: str) -> list[str]:
        """The providers ``user_id`` has an identity at."""
        rows = await self.db.fetchall(
            "get_external_providers_of_user",
            "SELECT DISTINCT auth_provider FROM user_external_ids WHERE user_id = $1"
            " ORDER BY auth_provider",
            user_id,
        )
        return [str(row[0]) for row in rows]

"""A user's third-party IDs (``user_threepids``, which the admin API fills too) and
the identity servers each was bound on through this server."""

from __future__ import annotations

from storage.database import Database, Transaction
from storage.user_admin import ThreepidRow


class ThreepidStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def user_of(self, medium: str, address: str) -> str | None:
        value = await self.db.fetchval(
            "get_user_id_by_threepid",
            "SELECT user_id FROM user_threepids WHERE medium = $1 AND address = $2",
            medium,
            address,
        )
        return None if value is None else str(value)

    async def of_user(self, user_id: str) -> list[ThreepidRow]:
        rows = await self.db.fetchall(
            "user_get_threepids",
            "SELECT medium, address, added_at, validated_at FROM user_threepids"
            " WHERE user_id = $1 ORDER BY added_at, medium, address",
            user_id,
        )
        return [ThreepidRow(str(r[0]), str(r[1]), int(r[2]), int(r[3])) for r in rows]

    async def add_txn(
        self,
        txn: Transaction,
        user_id: str,
        medium: str,
        address: str,
        validated_at: int,
        added_at: int,
    ) -> bool:
        """Give the user the third-party ID; False if some account already has it."""
        added = await txn.execute(
            "INSERT INTO user_threepids (user_id, medium, address, validated_at, added_at)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (medium, address) DO NOTHING",
            user_id,
            medium,
            address,
            validated_at,
            added_at,
        )
        return added > 0

    async def delete(self, user_id: str, medium: str, address: str) -> None:
        await self.db.execute(
            "user_delete_threepid",
            "DELETE FROM user_threepids WHERE user_id = $1 AND medium = $2 AND address = $3",
            user_id,
            medium,
            address,
        )

    # -- bindings on identity servers ------------------------------------------------

    async def add_binding(self, user_id: str, medium: str, address: str, id_server: str) -> None:
        await self.db.execute(
            "add_user_bound_threepid",
            "INSERT INTO user_threepid_id_server (user_id, medium, address, id_server)"
            " VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (user_id, medium, address, id_server) DO NOTHING",
            user_id,
            medium,
            address,
            id_server,
        )

    async def remove_binding(self, user_id: str, medium: str, address: str, id_server: str) -> None:
        await self.db.execute(
            "remove_user_bound_threepid",
            "DELETE FROM user_threepid_id_server"
            " WHERE user_id = $1 AND medium = $2 AND address = $3 AND id_server = $4",
            user_id,
            medium,
            address,
            id_server,
        )

    async def id_servers_of(self, user_id: str, medium: str, address: str) -> list[str]:
        rows = await self.db.fetchall(
            "get_id_servers_user_bound",
            "SELECT id_server FROM user_threepid_id_server"
            " WHERE user_id = $1 AND medium = $2 AND address = $3 ORDER BY id_server",
            user_id,
            medium,
            address,
        )
        return [str(r[0]) for r in rows]

    async def bindings_of(self, user_id: str) -> list[tuple[str, str, str]]:
        """(medium, address, id_server) of every binding the user made through us."""
        rows = await self.db.fetchall(
            "user_get_bound_threepids",
            "SELECT medium, address, id_server FROM user_threepid_id_server"
            " WHERE user_id = $1 ORDER BY medium, address, id_server",
            user_id,
        )
        return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]

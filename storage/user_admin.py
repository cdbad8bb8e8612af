"""What Synapse's user admin API reads and sets about local accounts: the listing
with its filters and orders, account flags, third-party IDs, rate-limit overrides,
the (IP, user agent) pairs devices were seen from, and the erasure of a user's own
rows."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from storage.database import Database, Transaction
from storage.user_directory import insert_local_txn

# order_by value -> SQL expression (the listing's columns; see list_users)
USER_ORDERS = {
    "name": "u.user_id",
    "is_guest": "u.is_guest",
    "admin": "u.is_admin",
    "user_type": "u.user_type",
    "deactivated": "u.deactivated",
    "shadow_banned": "u.shadow_banned",
    "displayname": "p.displayname",
    "avatar_url": "p.avatar_url",
    "creation_ts": "u.created_ts",
    "last_seen_ts": "last_seen_ts",
    "locked": "u.locked",
}


@dataclass(frozen=True)
class UserFilter:
    """The listing's filters; None means "do not filter on this"."""

    user_id: str | None = None
    name: str | None = None
    guests: bool = True
    deactivated: bool | None = False
    admins: bool | None = None
    locked: bool = False
    not_user_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class AdminUserRow:
    user_id: str
    is_guest: bool
    is_admin: bool
    user_type: str | None
    deactivated: bool
    shadow_banned: bool
    displayname: str | None
    avatar_url: str | None
    created_ts: int
    last_seen_ts: int | None
    locked: bool
    suspended: bool
    erased: bool


@dataclass(frozen=True)
class ThreepidRow:
    medium: str
    address: str
    added_at: int
    validated_at: int


@dataclass(frozen=True)
class Connection:
    device_id: str
    ip: str
    user_agent: str
    last_seen: int


_ROW_SELECT = (
    "SELECT u.user_id, u.is_guest, u.is_admin, u.user_type, u.deactivated, u.shadow_banned,"
    " p.displayname, p.avatar_url, u.created_ts,"
    " (SELECT MAX(d.last_seen_ts) FROM devices d WHERE d.user_id = u.user_id) AS last_seen_ts,"
    " u.locked, u.suspended,"
    " EXISTS (SELECT 1 FROM erased_users e WHERE e.user_id = u.user_id)"
    " FROM users u LEFT JOIN profiles p ON p.user_id = u.user_id"
)


def _row(row: Any) -> AdminUserRow:
    return AdminUserRow(
        user_id=str(row[0]),
        is_guest=bool(row[1]),
        is_admin=bool(row[2]),
        user_type=row[3],
        deactivated=bool(row[4]),
        shadow_banned=bool(row[5]),
        displayname=row[6],
        avatar_url=row[7],
        created_ts=int(row[8]),
        last_seen_ts=None if row[9] is None else int(row[9]),
        locked=bool(row[10]),
        suspended=bool(row[11]),
        erased=bool(row[12]),
    )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class UserAdminStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- the listing -------------------------------------------------------------

    async def list_users(
        self, where: UserFilter, order_by: str, backwards: bool, limit: int, offset: int
    ) -> tuple[list[AdminUserRow], int]:
        """A page of local users and how many match in all; ties in the order are
        broken by ascending user ID."""
        clauses: list[str] = []
        args: list[Any] = []

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if where.name:
            needle = _escape_like(where.name.lower())
            clauses.append(
                f"(LOWER(u.user_id) LIKE {arg('@%' + needle + '%:%')} ESCAPE '\\'"
                f" OR LOWER(p.displayname) LIKE {arg('%' + needle + '%')} ESCAPE '\\')"
            )
        elif where.user_id:
            needle = _escape_like(where.user_id.lower())
            clauses.append(f"LOWER(u.user_id) LIKE {arg('%' + needle + '%')} ESCAPE '\\'")
        if not where.guests:
            clauses.append("NOT u.is_guest")
        if where.deactivated is not None:
            clauses.append("u.deactivated" if where.deactivated else "NOT u.deactivated")
        if where.admins is not None:
            clauses.append("u.is_admin" if where.admins else "NOT u.is_admin")
        if not where.locked:
            clauses.append("NOT u.locked")
        types = [t for t in where.not_user_types if t]
        if "" in where.not_user_types:
            clauses.append("u.user_type IS NOT NULL")
        if types:
            marks = ", ".join(arg(t) for t in types)
            clauses.append(f"(u.user_type IS NULL OR u.user_type NOT IN ({marks}))")
        where_sql = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        direction = "DESC" if backwards else "ASC"
        column = USER_ORDERS[order_by]
        # NULLs sort first going forwards on both engines (SQLite's default)
        nulls = "NULLS LAST" if backwards else "NULLS FIRST"
        total = await self.db.fetchval(
            "count_users_admin",
            "SELECT COUNT(*) FROM users u LEFT JOIN profiles p ON p.user_id = u.user_id"
            + where_sql,
            *args,
        )
        page_args = [*args, limit, offset]
        n = len(args)
        rows = await self.db.fetchall(
            "list_users_admin",
            f"{_ROW_SELECT}{where_sql} ORDER BY {column} {direction} {nulls}, u.user_id ASC"
            f" LIMIT ${n + 1} OFFSET ${n + 2}",
            *page_args,
        )
        return [_row(r) for r in rows], int(total or 0)

    async def get_user(self, user_id: str) -> AdminUserRow | None:
        row = await self.db.fetchone(
            "get_user_admin", f"{_ROW_SELECT} WHERE u.user_id = $1", user_id
        )
        return None if row is None else _row(row)

    # -- flags ---------------------------------------------------------------------

    async def set_flag(self, user_id: str, flag: str, value: bool) -> None:
        column = {"shadow_banned": "shadow_banned", "locked": "locked", "suspended": "suspended"}[
            flag
        ]
        await self.db.execute(
            f"set_user_{column}",
            f"UPDATE users SET {column} = $2 WHERE user_id = $1",
            user_id,
            value,
        )

    async def set_user_type(self, user_id: str, user_type: str | None) -> None:
        await self.db.execute(
            "set_user_type",
            "UPDATE users SET user_type = $2 WHERE user_id = $1",
            user_id,
            user_type,
        )

    async def reactivate(self, user_id: str) -> None:
        """The account is active again, no longer erased, back in the user directory."""

        async def txn_func(txn: Transaction) -> None:
            await txn.execute("UPDATE users SET deactivated = FALSE WHERE user_id = $1", user_id)
            await txn.execute("DELETE FROM erased_users WHERE user_id = $1", user_id)
            name = await txn.fetchval(
                "SELECT displayname FROM profiles WHERE user_id = $1", user_id
            )
            await insert_local_txn(txn, user_id, name)

        await self.db.run_transaction("reactivate_user", txn_func)

    async def account_data(self, user_id: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """The user's global account data, and per room."""
        rows = await self.db.fetchall(
            "get_all_account_data",
            "SELECT room_id, data_type, content FROM account_data WHERE user_id = $1"
            " ORDER BY room_id, data_type",
            user_id,
        )
        global_data: dict[str, Any] = {}
        rooms: dict[str, dict[str, Any]] = {}
        for room_id, data_type, content in rows:
            value = json.loads(str(content))
            if room_id == "":
                global_data[str(data_type)] = value
            else:
                rooms.setdefault(str(room_id), {})[str(data_type)] = value
        return global_data, rooms

    # -- third-party IDs and external IDs -------------------------------------------

    async def threepids(self, user_id: str) -> list[ThreepidRow]:
        rows = await self.db.fetchall(
            "get_user_threepids",
            "SELECT medium, address, added_at, validated_at FROM user_threepids"
            " WHERE user_id = $1 ORDER BY medium, address",
            user_id,
        )
        return [ThreepidRow(str(r[0]), str(r[1]), int(r[2]), int(r[3])) for r in rows]

    async def replace_threepids(
        self, user_id: str, threepids: set[tuple[str, str]], now: int
    ) -> None:
        """Make the user's third-party IDs exactly ``threepids`` (those kept keep their
        times); an address another user holds moves to this one."""

        async def txn_func(txn: Transaction) -> None:
            rows = await txn.fetchall(
                "SELECT medium, address FROM user_threepids WHERE user_id = $1", user_id
            )
            current = {(str(r[0]), str(r[1])) for r in rows}
            for medium, address in sorted(current - threepids):
                await txn.execute(
                    "DELETE FROM user_threepids WHERE medium = $1 AND address = $2",
                    medium,
                    address,
                )
            for medium, address in sorted(threepids - current):
                await txn.execute(
                    "DELETE FROM user_threepids WHERE medium = $1 AND address = $2",
                    medium,
                    address,
                )
                await txn.execute(
                    "INSERT INTO user_threepids (user_id, medium, address, validated_at, added_at)"
                    " VALUES ($1, $2, $3, $4, $4)",
                    user_id,
                    medium,
                    address,
                    now,
                )

        await self.db.run_transaction("replace_user_threepids", txn_func)

    async def user_of_threepid(self, medium: str, address: str) -> str | None:
        value = await self.db.fetchval(
            "get_user_by_threepid",
            "SELECT user_id FROM user_threepids WHERE medium = $1 AND address = $2",
            medium,
            address,
        )
        return None if value is None else str(value)

    async def external_ids(self, user_id: str) -> list[tuple[str, str]]:
        rows = await self.db.fetchall(
            "get_user_external_ids",
            "SELECT auth_provider, external_id FROM user_external_ids WHERE user_id = $1"
            " ORDER BY auth_provider, external_id",
            user_id,
        )
        return [(str(r[0]), str(r[1])) for r in rows]

    async def replace_external_ids(self, user_id: str, external_ids: list[tuple[str, str]]) -> bool:
        """Make the user's external IDs exactly ``external_ids``; False (and nothing
        changed) when one of them belongs to another user."""

        async def txn_func(txn: Transaction) -> bool:
            for provider, external_id in external_ids:
                owner = await txn.fetchval(
                    "SELECT user_id FROM user_external_ids"
                    " WHERE auth_provider = $1 AND external_id = $2",
                    provider,
                    external_id,
                )
                if owner is not None and owner != user_id:
                    return False
            await txn.execute("DELETE FROM user_external_ids WHERE user_id = $1", user_id)
            for provider, external_id in sorted(set(external_ids)):
                await txn.execute(
                    "INSERT INTO user_external_ids (auth_provider, external_id, user_id)"
                    " VALUES ($1, $2, $3)",
                    provider,
                    external_id,
                    user_id,
                )
            return True

        return await self.db.run_transaction("replace_user_external_ids", txn_func)

    # -- rate-limit overrides ----------------------------------------------------------

    async def ratelimit_override(self, user_id: str) -> tuple[int, int] | None:
        row = await self.db.fetchone(
            "get_ratelimit_override",
            "SELECT messages_per_second, burst_count FROM ratelimit_override WHERE user_id = $1",
            user_id,
        )
        return None if row is None else (int(row[0]), int(row[1]))

    async def set_ratelimit_override(self, user_id: str, per_second: int, burst: int) -> None:
        await self.db.execute(
            "set_ratelimit_override",
            "INSERT INTO ratelimit_override (user_id, messages_per_second, burst_count)"
            " VALUES ($1, $2, $3) ON CONFLICT (user_id) DO UPDATE"
            " SET messages_per_second = excluded.messages_per_second,"
            " burst_count = excluded.burst_count",
            user_id,
            per_second,
            burst,
        )

    async def delete_ratelimit_override(self, user_id: str) -> None:
        await self.db.execute(
            "delete_ratelimit_override",
            "DELETE FROM ratelimit_override WHERE user_id = $1",
            user_id,
        )

    # -- where devices were seen ---------------------------------------------------------

    async def connections(self, user_id: str) -> list[Connection]:
        rows = await self.db.fetchall(
            "get_user_connections",
            "SELECT device_id, ip, user_agent, last_seen FROM user_ips WHERE user_id = $1"
            " ORDER BY device_id, last_seen DESC",
            user_id,
        )
        return [Connection(str(r[0]), str(r[1]), str(r[2]), int(r[3])) for r in rows]

    # -- erasure -------------------------------------------------------------------------

    async def delete_deactivated_data_txn(self, txn: Transaction, user_id: str) -> None:
        """What Synapse removes on every deactivation: third-party IDs, account data,
        push rules, end-to-end keys, the user directory row, the rate-limit override
        stays (as Synapse)."""
        for sql in (
            "DELETE FROM user_threepids WHERE user_id = $1",
            "DELETE FROM account_data WHERE user_id = $1",
            "DELETE FROM push_rules WHERE user_id = $1",
            "DELETE FROM push_rule_defaults WHERE user_id = $1",
            "DELETE FROM e2e_device_keys WHERE user_id = $1",
            "DELETE FROM e2e_one_time_keys WHERE user_id = $1",
            "DELETE FROM e2e_fallback_keys WHERE user_id = $1",
            "DELETE FROM e2e_cross_signing_keys WHERE user_id = $1",
            "DELETE FROM e2e_cross_signing_signatures WHERE user_id = $1",
            "DELETE FROM user_directory WHERE user_id = $1",
            "DELETE FROM pushers WHERE user_id = $1",
            "DELETE FROM refresh_tokens WHERE user_id = $1",
            "DELETE FROM openid_tokens WHERE user_id = $1",
        ):
            await txn.execute(sql, user_id)

    async def erase_user_data_txn(self, txn: Transaction, user_id: str) -> None:
        """The rows that only serve the erased user: receipts, key backup, to-device
        messages, filters, push actions and counts, presence, where they were seen,
        and their profile (the row stays, emptied, for the account's foreign keys)."""
        for sql in (
            "DELETE FROM receipts WHERE user_id = $1",
            "DELETE FROM e2e_room_keys WHERE user_id = $1",
            "DELETE FROM e2e_room_keys_versions WHERE user_id = $1",
            "DELETE FROM device_inbox WHERE user_id = $1",
            "DELETE FROM user_filters WHERE user_id = $1",
            "DELETE FROM event_push_actions WHERE user_id = $1",
            "DELETE FROM push_unread_counts WHERE user_id = $1",
            "DELETE FROM push_read_positions WHERE user_id = $1",
            "DELETE FROM presence WHERE user_id = $1",
            "DELETE FROM user_ips WHERE user_id = $1",
            "UPDATE devices SET last_seen_ip = NULL, last_seen_user_agent = NULL"
            " WHERE user_id = $1",
            "UPDATE profiles SET displayname = NULL, avatar_url = NULL, extra = '{}'"
            " WHERE user_id = $1",
        ):
            await txn.execute(sql, user_id)

"""The user directory (schema 0030): one row per user it may find, with the words a
search matches, and the rooms whose members anyone may find.

Rows are written on change by ``homeserver/user_directory/``: local users from their
profile (and at registration, ``insert_local_txn``), remote users from their
membership events, the public rooms from the rooms' join rules and history
visibility. A search is one query: who may be found (a room shared with the searcher,
a public room, or any local user) is read from the current memberships, so joins and
leaves need no directory write. The SQL is plain (LIKE, lower()) for both engines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from storage.database import Database, Transaction

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def words_of(text: str) -> list[str]:
    """The lower-cased words (runs of letters and digits) of ``text``."""
    return _WORD.findall(text.lower())


def search_words(user_id: str, display_name: str | None) -> str:
    """What a search matches a user on: the words of the localpart and display name,
    the whole localpart, the whole user ID and the whole display name, each after a
    space (so ``LIKE '% term%'`` is a word prefix)."""
    localpart = user_id[1:].partition(":")[0]
    tokens = [user_id.lower(), localpart.lower(), *words_of(localpart)]
    if display_name:
        tokens += [display_name.lower(), *words_of(display_name)]
    seen: dict[str, None] = dict.fromkeys(t for t in tokens if t)
    return "".join(f" {t}" for t in seen)


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class DirectoryEntry:
    user_id: str
    display_name: str | None
    avatar_url: str | None


_UPSERT = (
    "INSERT INTO user_directory (user_id, display_name, avatar_url, is_local, search_words)"
    " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id) DO UPDATE SET"
    " display_name = excluded.display_name, avatar_url = excluded.avatar_url,"
    " is_local = excluded.is_local, search_words = excluded.search_words"
)
_INSERT_MISSING = (
    "INSERT INTO user_directory (user_id, display_name, avatar_url, is_local, search_words)"
    " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id) DO NOTHING"
)


def _row(
    user_id: str, display_name: str | None, avatar_url: str | None, local: bool
) -> tuple[str, str | None, str | None, bool, str]:
    return (user_id, display_name, avatar_url, local, search_words(user_id, display_name))


async def insert_local_txn(txn: Transaction, user_id: str, display_name: str | None) -> None:
    """A newly registered local user (called by the account store)."""
    await txn.execute(_INSERT_MISSING, *_row(user_id, display_name, None, True))


# The user is joined to a public room that a local user is still joined to ($6: the
# LIKE pattern of local user IDs; a room this server left is no longer followed), or
# is another user joined to a room the searcher ($1) is joined to.
_MEMBER = "m.type = 'm.room.member' AND m.state_key = d.user_id AND m.membership = 'join'"
_VISIBLE = (
    "EXISTS (SELECT 1 FROM current_state m JOIN user_directory_public_rooms p"
    f" ON p.room_id = m.room_id WHERE {_MEMBER} AND EXISTS (SELECT 1 FROM current_state l"
    " WHERE l.room_id = m.room_id AND l.type = 'm.room.member' AND l.membership = 'join'"
    " AND l.state_key LIKE $6 ESCAPE '\\'))"
    " OR (d.user_id <> $1 AND EXISTS (SELECT 1 FROM current_state m JOIN current_state s"
    f" ON s.room_id = m.room_id WHERE {_MEMBER} AND s.type = 'm.room.member'"
    " AND s.state_key = $1 AND s.membership = 'join'))"
)


class UserDirectoryStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- writes --------------------------------------------------------------------

    async def upsert(
        self, user_id: str, display_name: str | None, avatar_url: str | None, *, local: bool
    ) -> None:
        await self.db.execute(
            "upsert_user_directory", _UPSERT, *_row(user_id, display_name, avatar_url, local)
        )

    async def upsert_many_txn(
        self,
        txn: Transaction,
        entries: Iterable[tuple[str, str | None, str | None, bool]],
        *,
        only_missing: bool = False,
    ) -> None:
        rows = [_row(*entry) for entry in entries]
        if rows:
            await txn.executemany(_INSERT_MISSING if only_missing else _UPSERT, rows)

    async def set_public_txn(self, txn: Transaction, room_id: str, public: bool) -> None:
        if public:
            await txn.execute(
                "INSERT INTO user_directory_public_rooms (room_id) VALUES ($1)"
                " ON CONFLICT (room_id) DO NOTHING",
                room_id,
            )
        else:
            await txn.execute("DELETE FROM user_directory_public_rooms WHERE room_id = $1", room_id)

    # -- the one-time fill ---------------------------------------------------------

    async def is_filled(self) -> bool:
        row = await self.db.fetchone(
            "user_directory_is_filled", "SELECT filled FROM user_directory_filled"
        )
        return row is not None

    async def local_profiles(self) -> list[tuple[str, str | None, str | None]]:
        rows = await self.db.fetchall(
            "user_directory_local_profiles",
            "SELECT p.user_id, p.displayname, p.avatar_url FROM profiles p"
            " JOIN users u ON u.user_id = p.user_id",
        )
        return [(r[0], r[1], r[2]) for r in rows]

    async def joined_members(self) -> list[tuple[str, str]]:
        """(user ID, membership event ID) of every current join."""
        rows = await self.db.fetchall(
            "user_directory_joined_members",
            "SELECT state_key, event_id FROM current_state"
            " WHERE type = 'm.room.member' AND membership = 'join'",
        )
        return [(r[0], r[1]) for r in rows]

    async def visibility_state(self) -> list[tuple[str, str, str]]:
        """(room ID, type, event ID) of every current join rule and history visibility."""
        rows = await self.db.fetchall(
            "user_directory_visibility_state",
            "SELECT room_id, type, event_id FROM current_state WHERE state_key = ''"
            " AND type IN ('m.room.join_rules', 'm.room.history_visibility')",
        )
        return [(r[0], r[1], r[2]) for r in rows]

    async def mark_filled_txn(self, txn: Transaction) -> None:
        await txn.execute(
            "INSERT INTO user_directory_filled (filled) VALUES (TRUE) ON CONFLICT (filled) DO NOTHING"
        )

    # -- search --------------------------------------------------------------------

    async def search(
        self,
        searcher: str,
        server_name: str,
        terms: Sequence[str],
        whole_term: str,
        *,
        limit: int,
        search_all_users: bool,
        prefer_local_users: bool,
        exclude_remote_users: bool = False,
        show_locked_users: bool = False,
    ) -> list[DirectoryEntry]:
        """Up to ``limit`` users the searcher may find whose words start with every one
        of ``terms`` (or one starting with ``whole_term``), best matches first.

        Deactivated and support accounts are never found; locked accounts only with
        ``show_locked_users``; remote users not with ``exclude_remote_users``."""
        args: list[object] = [searcher, whole_term, escape_like(whole_term) + "%"]
        args.append("@" + escape_like(whole_term) + "%")
        args.append("@" + escape_like(whole_term) + ":%")
        args.append("%:" + escape_like(server_name))
        matches = []
        for term in terms:
            args.append("% " + escape_like(term) + "%")
            matches.append(f"d.search_words LIKE ${len(args)} ESCAPE '\\'")
        args.append("% " + escape_like(whole_term) + "%")
        match = f"d.search_words LIKE ${len(args)} ESCAPE '\\'"
        if matches:
            match = f"({match} OR ({' AND '.join(matches)}))"
        visible = f"(d.is_local OR {_VISIBLE})" if search_all_users else f"({_VISIBLE})"
        if exclude_remote_users:
            visible += " AND d.is_local"
        hidden = "u.deactivated OR u.user_type = 'support'"
        if not show_locked_users:
            hidden += " OR u.locked"
        order = [
            "CASE WHEN lower(d.display_name) = $2 OR lower(d.user_id) = $2"
            " OR lower(d.user_id) LIKE $5 ESCAPE '\\' THEN 0"
            " WHEN lower(d.display_name) LIKE $3 ESCAPE '\\'"
            " OR lower(d.user_id) LIKE $4 ESCAPE '\\' THEN 1 ELSE 2 END",
        ]
        if prefer_local_users:
            order.append("CASE WHEN d.is_local THEN 0 ELSE 1 END")
        order += [
            "CASE WHEN d.display_name IS NULL THEN 1 ELSE 0 END",
            "CASE WHEN d.avatar_url IS NULL THEN 1 ELSE 0 END",
            "lower(d.display_name)",
            "d.user_id",
        ]
        args.append(limit)
        rows = await self.db.fetchall(
            "search_user_directory",
            "SELECT d.user_id, d.display_name, d.avatar_url FROM user_directory d"
            f" WHERE {match} AND {visible}"
            " AND NOT EXISTS (SELECT 1 FROM users u WHERE u.user_id = d.user_id"
            f" AND ({hidden}))"
            f" ORDER BY {', '.join(order)} LIMIT ${len(args)}",
            *args,
        )
        return [DirectoryEntry(r[0], r[1], r[2]) for r in rows]

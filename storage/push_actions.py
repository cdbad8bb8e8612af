"""Notifications: the push actions events got for each user, read positions, and the
position up to which push rules were evaluated."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from storage.database import Database, Transaction

UNTHREADED = ""  # the thread_id of a read position set by an unthreaded receipt


@dataclass(frozen=True, slots=True)
class PushAction:
    user_id: str
    event_id: str
    room_id: str
    stream_ordering: int
    thread_id: str
    actions: list[Any]
    highlight: bool
    ts: int


@dataclass(frozen=True, slots=True)
class Notification:
    action: PushAction
    read: bool


# An action is unread when it is after both the unthreaded read position and the
# read position of its own thread.
_UNREAD_JOIN = (
    " LEFT JOIN push_read_positions u ON u.user_id = a.user_id AND u.room_id = a.room_id"
    " AND u.thread_id = ''"
    " LEFT JOIN push_read_positions t ON t.user_id = a.user_id AND t.room_id = a.room_id"
    " AND t.thread_id = a.thread_id"
)
_READ_UPTO = (
    "CASE WHEN COALESCE(u.stream_ordering, 0) > COALESCE(t.stream_ordering, 0)"
    " THEN COALESCE(u.stream_ordering, 0) ELSE COALESCE(t.stream_ordering, 0) END"
)
_MARK_READ = (
    "INSERT INTO push_read_positions (user_id, room_id, thread_id, stream_ordering)"
    " VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, room_id, thread_id) DO UPDATE"
    " SET stream_ordering = excluded.stream_ordering"
    " WHERE push_read_positions.stream_ordering < excluded.stream_ordering"
)
# One more unread notification (and highlight, if $4 is 1) in a room's thread.
_COUNT_UP = (
    "INSERT INTO push_unread_counts (room_id, user_id, thread_id, notifications, highlights)"
    " VALUES ($1, $2, $3, 1, $4) ON CONFLICT (room_id, user_id, thread_id) DO UPDATE"
    " SET notifications = push_unread_counts.notifications + 1,"
    " highlights = push_unread_counts.highlights + excluded.highlights"
)
# After user $1's read position in room $2 moved to stream position $3: recount the
# unread actions of thread $4 ('' for an unthreaded receipt: every thread of the room).
# Only actions after $3 can still be unread, so only those are read (the user's
# actions are keyed by stream position).
_RECOUNT = (
    "UPDATE push_unread_counts SET (notifications, highlights) = ("
    " SELECT COUNT(*), COALESCE(SUM(CASE WHEN a.highlight THEN 1 ELSE 0 END), 0)"
    " FROM event_push_actions a"
    " WHERE a.user_id = push_unread_counts.user_id AND a.stream_ordering > $3"
    " AND a.room_id = push_unread_counts.room_id"
    " AND a.thread_id = push_unread_counts.thread_id"
    " AND a.stream_ordering > COALESCE((SELECT MAX(r.stream_ordering)"
    " FROM push_read_positions r WHERE r.user_id = push_unread_counts.user_id"
    " AND r.room_id = push_unread_counts.room_id"
    " AND r.thread_id IN ('', push_unread_counts.thread_id)), 0))"
    " WHERE user_id = $1 AND room_id = $2 AND ($4 = '' OR thread_id = $4)"
)


def _mark_read(
    user_id: str, room_id: str, thread_id: str, position: int
) -> list[tuple[str, tuple[str | int, ...]]]:
    """The statements that move a read position and recount what it leaves unread."""
    return [
        (_MARK_READ, (user_id, room_id, thread_id, position)),
        (_RECOUNT, (user_id, room_id, position, thread_id)),
    ]


_ACTION_COLUMNS = (
    "a.user_id, a.event_id, a.room_id, a.stream_ordering, a.thread_id, a.actions, a.highlight, a.ts"
)


def _action(row: Sequence[Any]) -> PushAction:
    user_id, event_id, room_id, stream, thread_id, actions, highlight, ts = row[:8]
    return PushAction(
        user_id,
        event_id,
        room_id,
        int(stream),
        thread_id,
        json.loads(actions),
        bool(highlight),
        int(ts),
    )


class PushActionStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- evaluation ------------------------------------------------------------------

    async def add_actions_txn(self, txn: Transaction, actions: Sequence[PushAction]) -> None:
        """Store the push actions of an event, and count them unread, inside the event's
        own transaction (evaluated once per event: its actions are new)."""
        await txn.executemany(
            "INSERT INTO event_push_actions (user_id, event_id, room_id, stream_ordering,"
            " thread_id, actions, highlight, ts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " ON CONFLICT DO NOTHING",
            [
                (
                    a.user_id,
                    a.event_id,
                    a.room_id,
                    a.stream_ordering,
                    a.thread_id,
                    json.dumps(a.actions, separators=(",", ":")),
                    a.highlight,
                    a.ts,
                )
                for a in actions
            ],
        )
        await txn.executemany(
            _COUNT_UP,
            [(a.room_id, a.user_id, a.thread_id, 1 if a.highlight else 0) for a in actions],
        )

    # -- read positions ----------------------------------------------------------------

    async def mark_read(self, user_id: str, room_id: str, thread_id: str, position: int) -> None:
        """Move a read position forward (never back: the furthest receipt wins), and
        recount what is still unread after it."""
        await self.db.execute_statements(
            "mark_push_actions_read", _mark_read(user_id, room_id, thread_id, position)
        )

    async def mark_read_txn(
        self, txn: Transaction, user_id: str, room_id: str, thread_id: str, position: int
    ) -> None:
        """:meth:`mark_read` inside a transaction (an event its user sent: spec, "Marking
        notifications as read")."""
        for sql, args in _mark_read(user_id, room_id, thread_id, position):
            await txn.queue(sql, *args)

    # -- pruning -------------------------------------------------------------------------

    async def prune_read(self, plain_before_ts: int, highlight_before_ts: int) -> int:
        """Delete the actions their user has read that are older than
        ``plain_before_ts`` (``highlight_before_ts`` for highlights); return how many.

        Unread counts only ever count actions after the read positions, and read
        positions only move forward, so a read action is never counted again: the
        counts stay exact. Unread actions stay, whatever their age (a receipt for an
        older event recounts from them)."""
        users = [
            r[0]
            for r in await self.db.fetchall(
                "push_readers", "SELECT DISTINCT user_id FROM push_read_positions"
            )
        ]
        deleted = 0
        for user_id in users:
            deleted += await self.db.execute(
                "prune_read_push_actions",
                "DELETE FROM event_push_actions WHERE user_id = $1 AND ts < $2"
                " AND (NOT highlight OR ts < $3)"
                " AND stream_ordering <= COALESCE((SELECT MAX(r.stream_ordering)"
                " FROM push_read_positions r WHERE r.user_id = event_push_actions.user_id"
                " AND r.room_id = event_push_actions.room_id"
                " AND r.thread_id IN ('', event_push_actions.thread_id)), 0)",
                user_id,
                plain_before_ts,
                highlight_before_ts,
            )
        return deleted

    # -- counts and lists ----------------------------------------------------------------

    async def unread_by_thread(self, user_id: str) -> list[tuple[str, str, int, int]]:
        """(room_id, thread_id, notifications, highlights) of the user's unread actions,
        for each thread that has any."""
        rows = await self.db.fetchall(
            "unread_push_counts",
            "SELECT room_id, thread_id, notifications, highlights FROM push_unread_counts"
            " WHERE user_id = $1 AND notifications > 0",
            user_id,
        )
        return [(r, t, int(n), int(h)) for r, t, n, h in rows]

    async def unread_after(self, user_id: str, after: int, limit: int) -> list[PushAction]:
        """The user's unread notifications after a stream position, oldest first (pushers)."""
        rows = await self.db.fetchall(
            "unread_push_actions_after",
            f"SELECT {_ACTION_COLUMNS} FROM event_push_actions a {_UNREAD_JOIN}"
            f" WHERE a.user_id = $1 AND a.stream_ordering > $2 AND a.stream_ordering > {_READ_UPTO}"
            " ORDER BY a.stream_ordering LIMIT $3",
            user_id,
            after,
            limit,
        )
        return [_action(r) for r in rows]

    async def notifications(
        self, user_id: str, before: int | None, limit: int, only_highlight: bool
    ) -> list[Notification]:
        """The user's notifications, newest first, before a stream position (/notifications)."""
        rows = await self.db.fetchall(
            "get_notifications",
            f"SELECT {_ACTION_COLUMNS}, {_READ_UPTO} FROM event_push_actions a {_UNREAD_JOIN}"
            " WHERE a.user_id = $1 AND a.stream_ordering < $2"
            + (" AND a.highlight" if only_highlight else "")
            + " ORDER BY a.stream_ordering DESC LIMIT $3",
            user_id,
            before if before is not None else 2**62,
            limit,
        )
        return [Notification(_action(r), int(r[3]) <= int(r[8])) for r in rows]

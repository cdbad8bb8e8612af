"""A user's membership history per room, as /sync needs it, and its cache.

Sync decides from these rows, bounded by stream positions, which section a room
belongs to (join, invite, knock, leave), whether it was newly joined or left
between two tokens, and which run of joins its timeline ends in. The cache of a user's
rows is valid while the notifier's per-user marker has not moved: every membership
change of the user wakes that user in the notifier right after it commits.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from homeserver.notifier import Notifier
from storage.sync import MembershipRow, SyncStore

LEFT = ("leave", "ban")


@dataclass(frozen=True)
class JoinRun:
    """The run of joins a timeline read from scratch ends in, and what came before it.

    Events from the first join of the run on are the user's to see; whether earlier
    ones are depends on the room's history visibility and on ``invited`` and
    ``earlier`` (see ``homeserver.sync.timelines``).
    """

    first: MembershipRow  # the first join of the run
    invited: MembershipRow | None  # the first of the invites right before it, if any
    earlier: frozenset[str]  # the memberships the user held before those

    @property
    def floor(self) -> int:
        """The position after which every event is visible to the user."""
        return self.first.stream - 1


class RoomMemberships:
    """The user's membership events in one room, oldest first."""

    __slots__ = ("_streams", "room_id", "rows")

    def __init__(self, room_id: str, rows: Sequence[MembershipRow]) -> None:
        self.room_id = room_id
        self.rows = list(rows)
        self._streams = [r.stream for r in self.rows]

    def _index_at(self, position: int) -> int:
        return bisect.bisect_right(self._streams, position) - 1

    def at(self, position: int) -> MembershipRow | None:
        """The user's membership event in force at ``position`` (None if none yet)."""
        index = self._index_at(position)
        return self.rows[index] if index >= 0 else None

    def between(self, after: int, upto: int) -> list[MembershipRow]:
        """The membership events in (after, upto]."""
        return self.rows[self._index_at(after) + 1 : self._index_at(upto) + 1]

    def join_run(self, position: int) -> JoinRun | None:
        """The unbroken run of joins in force at ``position`` or, when the user has left
        by then, the run just before leaving (None if there was none: an invite
        rejected, a knock withdrawn, a ban before joining; then only the user's own
        membership event is theirs to see).
        """
        index = self._index_at(position)
        if index < 0:
            return None
        if self.rows[index].membership != "join":
            index -= 1
        if index < 0 or self.rows[index].membership != "join":
            return None
        while index > 0 and self.rows[index - 1].membership == "join":
            index -= 1
        start = index
        while start > 0 and self.rows[start - 1].membership == "invite":
            start -= 1
        return JoinRun(
            self.rows[index],
            self.rows[start] if start < index else None,
            frozenset(r.membership for r in self.rows[:start]),
        )


class MembershipCache:
    """Users' membership histories by room, refreshed when the notifier says the
    user changed (bounded LRU)."""

    def __init__(self, store: SyncStore, notifier: Notifier, max_users: int = 10_000) -> None:
        self._store = store
        self._notifier = notifier
        self._max_users = max_users
        self._entries: OrderedDict[str, tuple[int, dict[str, RoomMemberships]]] = OrderedDict()
        self._epoch = 0  # moves on each invalidation, so a read racing one is not cached

    def invalidate_user(self, user_id: str) -> None:
        """A membership of the user changed in another process: read the history
        again on the next use."""
        self._entries.pop(user_id, None)
        self._epoch += 1

    def clear_caches(self) -> None:
        """Notices from the other processes may have been missed: read every user's
        history again (a read in flight is not cached)."""
        self._entries.clear()
        self._epoch += 1

    async def get(self, user_id: str) -> dict[str, RoomMemberships]:
        mark = self._notifier.user_change_position(user_id)
        cached = self._entries.get(user_id)
        if cached is not None and cached[0] == mark:
            self._entries.move_to_end(user_id)
            return cached[1]
        epoch = self._epoch
        rows = await self._store.membership_history(user_id)
        by_room: dict[str, list[MembershipRow]] = {}
        for row in rows:
            by_room.setdefault(row.room_id, []).append(row)
        histories = {room: RoomMemberships(room, r) for room, r in by_room.items()}
        # ``mark`` was read before the query: a change committed meanwhile moved the
        # marker, so this entry is refreshed on the next use.
        if self._epoch != epoch:
            return histories
        self._entries[user_id] = (mark, histories)
        self._entries.move_to_end(user_id)
        while len(self._entries) > self._max_users:
            self._entries.popitem(last=False)
        return histories

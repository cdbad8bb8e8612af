"""The rooms of a sliding sync request: the user's rooms, each list's filters and
order, and the windows (``ranges``) the client asked for.

A list is the user's rooms (joined, invited, knocked, banned; left only when the
user was kicked or left since the connection's last response, as Synapse shows
them) that pass its filters, ordered by bump stamp, newest first: the stream
position of the room's latest event of a type that bumps (its summary, kept on
write), or of the user's own membership event for rooms it is not joined to. One
query reads every room's summary, so an account in thousands of rooms costs one
query and a sort here, and only the rooms in a window are looked at further.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from homeserver.sliding_sync.request import ListFilters, ListRequest
from homeserver.sync.memberships import RoomMemberships
from storage.room_summaries import RoomSummary
from storage.stores import Stores
from storage.sync import MembershipRow

DIRECT = "m.direct"
TAG = "m.tag"
SPACE_CHILD = "m.space.child"
CREATE = "m.room.create"
ENCRYPTION = "m.room.encryption"


class UserRoom(NamedTuple):
    """A room of the user's, as of the response's token (a named tuple: an account
    in thousands of rooms makes one per room on every request)."""

    room_id: str
    membership: str
    membership_event_id: str
    membership_stream: int
    bump_stamp: int
    room_type: str | None = None
    is_encrypted: bool = False
    name: str | None = None
    newly_joined: bool = False


@dataclass(frozen=True)
class ListResult:
    name: str
    count: int
    ops: list[dict[str, Any]]
    room_ids: list[str]  # the rooms in its windows, in order


_STRIPPED = ("invite", "knock")


class UserRooms:
    """The user's rooms as of a response: membership rows, summaries, and the
    stripped state of invites; each room's ``UserRoom`` made when first asked for."""

    def __init__(
        self,
        rows: dict[str, MembershipRow],
        summaries: Mapping[str, RoomSummary],
        stripped: Mapping[str, list[dict[str, Any]]],
        newly_joined: set[str],
    ) -> None:
        self._rows = rows
        self._summaries = summaries
        self._stripped = stripped
        self._newly_joined = newly_joined
        self._made: dict[str, UserRoom] = {}
        self._ordered: list[str] | None = None
        # the newest bump stamp seen: beyond the response's token, an event is
        # committed whose position the stream has not reached yet
        self.newest_bump = 0

    def __contains__(self, room_id: object) -> bool:
        return room_id in self._rows

    def __bool__(self) -> bool:
        return bool(self._rows)

    def membership(self, room_id: str) -> str | None:
        row = self._rows.get(room_id)
        return None if row is None else row.membership

    def joined(self) -> list[str]:
        return [room_id for room_id, row in self._rows.items() if row.membership == "join"]

    def bump_stamp(self, room_id: str) -> int:
        row = self._rows[room_id]
        if row.membership == "join":
            summary = self._summaries.get(room_id)
            if summary is not None and summary.bump_stamp:
                return summary.bump_stamp
        return row.stream

    def ordered(self) -> list[str]:
        """Room IDs by bump stamp, newest first (ties by room ID)."""
        if self._ordered is None:
            summaries = self._summaries
            bumps: dict[str, int] = {}
            for room_id, row in self._rows.items():
                stamp = row.stream
                if row.membership == "join":
                    summary = summaries.get(room_id)
                    if summary is not None and summary.bump_stamp:
                        stamp = summary.bump_stamp
                bumps[room_id] = stamp
            self.newest_bump = max(bumps.values(), default=0)
            # a stable sort keeps the room ID order among equal stamps
            self._ordered = sorted(sorted(bumps), key=bumps.__getitem__, reverse=True)
        return self._ordered

    def get(self, room_id: str) -> UserRoom:
        made = self._made.get(room_id)
        if made is not None:
            return made
        row = self._rows[room_id]
        membership = row.membership
        summary = self._summaries.get(room_id)
        room_type: str | None = None
        encrypted = False
        name: str | None = None
        if membership in _STRIPPED:
            room_type, encrypted, name = _from_stripped(self._stripped.get(row.event_id, []))
        elif summary is not None:
            room_type, encrypted, name = summary.room_type, summary.is_encrypted, summary.name
        made = UserRoom(
            room_id,
            membership,
            row.event_id,
            row.stream,
            self.bump_stamp(room_id),
            room_type,
            encrypted,
            name,
            room_id in self._newly_joined,
        )
        self._made[room_id] = made
        return made


class RoomLists:
    def __init__(self, stores: Stores) -> None:
        self._stores = stores

    async def user_rooms(
        self,
        user_id: str,
        histories: Mapping[str, RoomMemberships],
        since: int | None,
        upto: int,
    ) -> UserRooms:
        """Every room a list may show (an index: rooms are looked at one by one only
        where a filter or a window needs them)."""
        chosen: dict[str, MembershipRow] = {}
        left_rows: dict[str, str] = {}
        newly_joined: set[str] = set()
        for room_id, history in histories.items():
            rows = history.rows
            current = rows[-1] if rows and rows[-1].stream <= upto else history.at(upto)
            if current is None:
                continue
            membership = current.membership
            if since is not None and current.stream > since:
                if membership == "join":
                    at_since = history.at(since)
                    if at_since is None or at_since.membership != "join":
                        newly_joined.add(room_id)
            elif membership == "leave":
                # left before the connection's last response: shown only if kicked
                left_rows[room_id] = current.event_id
            chosen[room_id] = current
        if left_rows:
            # a room left by the user's own choice stays out; one they were kicked
            # from is shown (as Synapse: the sender of the leave is someone else)
            events = await self._stores.events.get_events(list(left_rows.values()))
            for room_id, event_id in left_rows.items():
                stored = events.get(event_id)
                if stored is None or stored.event.sender == user_id:
                    del chosen[room_id]
        if chosen:
            forgotten = await self._stores.rooms.forgotten_rooms(user_id)
            for room_id in forgotten:
                row = chosen.get(room_id)
                if row is not None and row.membership in ("leave", "ban"):
                    del chosen[room_id]
        summaries = await self._stores.room_summaries.get_many(chosen) if chosen else {}
        invites = [row.event_id for row in chosen.values() if row.membership in _STRIPPED]
        stripped = await self._stores.sync.stripped_states(invites) if invites else {}
        return UserRooms(chosen, summaries, stripped, newly_joined)

    async def compute(
        self,
        user_id: str,
        lists: Mapping[str, ListRequest],
        rooms: UserRooms,
        dm_rooms: set[str],
    ) -> dict[str, ListResult]:
        if not lists:
            return {}
        ordered = rooms.ordered()
        tags = (
            await self._stores.account_data.per_room_of_type(user_id, TAG)
            if _filters_tags(lists.values())
            else {}
        )
        results: dict[str, ListResult] = {}
        for name, request in lists.items():
            filters = request.filters
            if filters is None:
                matching = ordered
            else:
                spaces = await self._space_children(filters.spaces, rooms)
                matching = [
                    room_id
                    for room_id in ordered
                    if _passes(rooms.get(room_id), filters, dm_rooms, tags.get(room_id), spaces)
                ]
            results[name] = _windows(name, matching, request)
        return results

    async def dm_rooms(self, user_id: str) -> set[str]:
        """The rooms of the user's ``m.direct`` account data."""
        content = await self._stores.account_data.get(user_id, None, DIRECT) or {}
        found: set[str] = set()
        for room_ids in content.values():
            if isinstance(room_ids, list):
                found.update(r for r in room_ids if isinstance(r, str))
        return found

    async def _space_children(
        self, spaces: tuple[str, ...] | None, rooms: UserRooms
    ) -> set[str] | None:
        """The rooms named by ``m.space.child`` state of the listed spaces the user is
        joined to (None: no space filter). Sub-spaces are not followed (MSC4186)."""
        if spaces is None:
            return None
        children: set[str] = set()
        for space_id in spaces:
            if rooms.membership(space_id) != "join":
                continue
            state = await self._stores.state.get_current_state(space_id)
            keys = [(t, k) for (t, k) in state if t == SPACE_CHILD]
            if not keys:
                continue
            events = await self._stores.events.get_events([state[k] for k in keys])
            for stored in events.values():
                # a child event with no "via" has been removed
                if stored.event.state_key and stored.event.content.get("via"):
                    children.add(stored.event.state_key)
        return children


def _filters_tags(lists: Collection[ListRequest]) -> bool:
    """Whether a list filters on tags (then every room's tags are read, once)."""
    return any(
        r.filters is not None and (r.filters.tags is not None or r.filters.not_tags is not None)
        for r in lists
    )


def _passes(
    room: UserRoom,
    f: ListFilters,
    dm_rooms: set[str],
    tags: Mapping[str, Any] | None,
    space_children: set[str] | None,
) -> bool:
    if f.is_dm is not None and (room.room_id in dm_rooms) != f.is_dm:
        return False
    if f.is_encrypted is not None and room.is_encrypted != f.is_encrypted:
        return False
    if f.is_invite is not None and (room.membership == "invite") != f.is_invite:
        return False
    if f.not_room_types is not None and room.room_type in f.not_room_types:
        return False
    if f.room_types is not None and room.room_type not in f.room_types:
        return False
    if f.room_name_like is not None and (
        room.name is None or f.room_name_like.lower() not in room.name.lower()
    ):
        return False
    room_tags = set((tags or {}).get("tags", {}) or {})
    if f.not_tags is not None and room_tags & set(f.not_tags):
        return False
    if f.tags is not None and not room_tags & set(f.tags):
        return False
    return space_children is None or room.room_id in space_children


def _windows(name: str, matching: list[str], request: ListRequest) -> ListResult:
    count = len(matching)
    ranges = request.ranges
    if ranges is None:
        ranges = ((0, max(count - 1, 0)),)
    ops: list[dict[str, Any]] = []
    in_window: list[str] = []
    seen: set[str] = set()
    for start, end in ranges:
        room_ids = matching[start : end + 1]
        ops.append({"op": "SYNC", "range": [start, end], "room_ids": room_ids})
        for room_id in room_ids:
            if room_id not in seen:
                seen.add(room_id)
                in_window.append(room_id)
    return ListResult(name, count, ops, in_window)


def _from_stripped(state: list[dict[str, Any]]) -> tuple[str | None, bool, str | None]:
    room_type: str | None = None
    encrypted = False
    name: str | None = None
    for event in state:
        kind = event.get("type")
        content = event.get("content") or {}
        if kind == CREATE:
            value = content.get("type")
            room_type = value if isinstance(value, str) else None
        elif kind == ENCRYPTION:
            encrypted = True
        elif kind == "m.room.name":
            value = content.get("name")
            name = value if isinstance(value, str) else None
    return room_type, encrypted, name

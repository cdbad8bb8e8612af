"""Who is in a room, as a given user may see it (client-server: "Room membership").

``GET /rooms/{roomId}/members`` (optionally ``at`` a token, filtered by membership),
``GET /rooms/{roomId}/joined_members``, and the state a user may read: the current
state while joined, the state as of their leave afterwards (none once banned).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from homeserver.errors import Forbidden
from homeserver.streams import SyncToken, TopologicalToken, parse_pagination_token
from storage.events import StoredEvent
from storage.state import StateMap
from storage.stores import Stores

MEMBERSHIPS = ("join", "invite", "knock", "leave", "ban")


@dataclass(frozen=True)
class MemberView:
    """What a user may see of a room: up to which stream position, and the state then."""

    membership: str
    # stream position of the user's leave (None while joined: no limit)
    until: int | None
    # the state after the user's leave (None while joined: use the current state)
    state_group: int | None


class MemberListService:
    def __init__(self, stores: Stores) -> None:
        self._stores = stores

    async def member_view(self, user_id: str, room_id: str) -> MemberView:
        """M_FORBIDDEN unless the user is joined, was joined and then left, or the room
        is world_readable (anyone may peek at its current state, as in Synapse). A
        banned user is turned away from the room's state and members, as Synapse does
        (only departed users with membership ``leave`` keep the state as they left it)."""
        if not await self._stores.rooms.room_exists(room_id):
            raise Forbidden("You are not a member of this room")
        state = await self._stores.state.get_current_state(room_id)
        member_id = state.get(("m.room.member", user_id))
        member = await self._stores.events.get_event(member_id) if member_id else None
        membership = (member.event.membership or "") if member is not None else ""
        if membership == "join":
            return MemberView(membership, None, None)
        if member is not None and membership == "leave" and member.state_group is not None:
            return MemberView(membership, member.stream_ordering, member.state_group)
        if await self._world_readable(state):
            return MemberView(membership or "peek", None, None)
        raise Forbidden("You are not a member of this room")

    async def _world_readable(self, state: StateMap) -> bool:
        event_id = state.get(("m.room.history_visibility", ""))
        stored = await self._stores.events.get_event(event_id) if event_id else None
        return (
            stored is not None
            and stored.event.content.get("history_visibility") == "world_readable"
        )

    async def visible_state(self, user_id: str, room_id: str) -> StateMap:
        """The state a user may read: current if joined, else as of when they left."""
        view = await self.member_view(user_id, room_id)
        if view.state_group is None:
            return await self._stores.state.get_current_state(room_id)
        return dict(await self._stores.state.get_state(view.state_group))

    async def visible_state_events(self, user_id: str, room_id: str) -> list[StoredEvent]:
        """The events of ``visible_state``, in the state map's order."""
        state = await self.visible_state(user_id, room_id)
        events = await self._stores.events.get_events(list(state.values()))
        return [events[e] for e in state.values() if e in events]

    async def visible_state_event(
        self, user_id: str, room_id: str, event_type: str, state_key: str
    ) -> StoredEvent | None:
        """One event of ``visible_state``, or None if the room has no such state."""
        state = await self.visible_state(user_id, room_id)
        event_id = state.get((event_type, state_key))
        return await self._stores.events.get_event(event_id) if event_id else None

    async def members(
        self,
        user_id: str,
        room_id: str,
        *,
        at: str | None = None,
        membership: str | None = None,
        not_membership: str | None = None,
    ) -> list[StoredEvent]:
        """GET /rooms/{roomId}/members: member events, as of ``at`` (a sync or pagination token).

        ``membership`` and ``not_membership`` together form an "or" condition, as the
        spec words it: the membership is ``membership`` or is not ``not_membership``.
        """
        view = await self.member_view(user_id, room_id)
        if at is None:
            state = await self.visible_state(user_id, room_id)
        else:
            position = _stream_of(parse_pagination_token(at))
            if view.until is not None:
                position = min(position, view.until)
            group = await self._stores.rooms.state_group_at(room_id, position)
            state = {} if group is None else dict(await self._stores.state.get_state(group))
        ids = [e for (t, _k), e in state.items() if t == "m.room.member"]
        events = await self._stores.events.get_events(ids)
        result = []
        for event_id in ids:
            stored = events.get(event_id)
            if stored is None:
                continue
            if _matches(stored.event.membership, membership, not_membership):
                result.append(stored)
        result.sort(key=lambda s: s.event.state_key or "")
        return result

    async def joined_members(self, user_id: str, room_id: str) -> dict[str, dict[str, Any]]:
        """GET /rooms/{roomId}/joined_members: joined users with their room display names."""
        view = await self.member_view(user_id, room_id)
        if view.membership != "join":
            raise Forbidden("You are not joined to this room")
        state = await self._stores.state.get_current_state(room_id)
        ids = [e for (t, _k), e in state.items() if t == "m.room.member"]
        joined: dict[str, dict[str, Any]] = {}
        for stored in (await self._stores.events.get_events(ids)).values():
            event = stored.event
            if event.membership != "join" or event.state_key is None:
                continue
            # both keys, null when unset, as Synapse answers (clients test for the key)
            displayname = event.content.get("displayname")
            avatar_url = event.content.get("avatar_url")
            joined[event.state_key] = {
                "display_name": displayname if isinstance(displayname, str) else None,
                "avatar_url": avatar_url if isinstance(avatar_url, str) else None,
            }
        return joined


def _stream_of(token: SyncToken | TopologicalToken) -> int:
    return token.events if isinstance(token, SyncToken) else token.stream


def _matches(value: str | None, membership: str | None, not_membership: str | None) -> bool:
    if membership is None and not_membership is None:
        return True
    if membership is not None and value == membership:
        return True
    return not_membership is not None and value != not_membership

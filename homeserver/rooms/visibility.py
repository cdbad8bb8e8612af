"""Which events of a room a user may see (client-server API: "Room History Visibility").

The decision itself is pure (``may_see``, ``is_event_visible``): it takes the
``history_visibility`` in force at the event, the user's membership at the event and
whether the user joined the room at some point after the event. ``HistoryVisibility``
gathers those facts for many events at once: the state group of each event (the
state *after* it) is resolved once per group, the few state events it names are
fetched in bulk, and per-group answers are cached (groups never change).

"At the event" uses the state after the event. It differs from the state before
the event only for the event's own state key, and the spec covers exactly those
two cases: for ``m.room.history_visibility`` events and for the user's own
``m.room.member`` events the user may see the event if the value before *or*
after it allows them to.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from homeserver.errors import Forbidden
from storage.events import StoredEvent
from storage.stores import Stores

WORLD_READABLE = "world_readable"
SHARED = "shared"
INVITED = "invited"
JOINED = "joined"
KNOWN_VISIBILITIES = (WORLD_READABLE, SHARED, INVITED, JOINED)

HISTORY_VISIBILITY = "m.room.history_visibility"
MEMBER = "m.room.member"


def visibility_value(raw: object) -> str:
    """A ``history_visibility`` value; absent or not understood means ``shared``."""
    return raw if isinstance(raw, str) and raw in KNOWN_VISIBILITIES else SHARED


def may_see(visibility: str, membership: str | None, joined_after: bool) -> bool:
    """The four rules of "Server behaviour" in the history visibility module.

    ``visibility``: the room's history_visibility at the event; ``membership``: the
    user's membership at the event (None if they had none); ``joined_after``: the
    user joined the room at some point after the event was sent.
    """
    if visibility == WORLD_READABLE:
        return True
    if membership == "join":
        return True
    if visibility == SHARED and joined_after:
        return True
    return membership == "invite" and visibility == INVITED


def is_event_visible(
    *,
    visibilities: Iterable[str],
    memberships: Iterable[str | None],
    joined_after: bool,
) -> bool:
    """Visible when any of the candidate values allows it.

    Normally each iterable holds one value (the value at the event). For a
    history_visibility event ``visibilities`` holds the values before and after it;
    for the user's own membership event ``memberships`` holds both.
    """
    member_values = list(memberships)
    return any(
        may_see(visibility, membership, joined_after)
        for visibility in visibilities
        for membership in member_values
    )


@dataclass(frozen=True)
class RoomAccess:
    """How a user may read a room's history now."""

    membership: str | None  # current membership, None when only peeking
    member_event: StoredEvent | None  # the current membership event
    world_readable: bool

    @property
    def joined(self) -> bool:
        return self.membership == "join"

    @property
    def departed(self) -> bool:
        """The user left or was banned: history stops at their membership event."""
        return self.membership in ("leave", "ban") and self.member_event is not None


class ExpiredEvents(Protocol):
    """Message retention (``homeserver/retention``): drops the events whose room's
    retention policy says clients may no longer get them."""

    async def drop_expired(self, events: Sequence[StoredEvent]) -> list[StoredEvent]: ...


class HistoryVisibility:
    """Filters events by what a user may see; batches and caches state lookups."""

    def __init__(
        self, stores: Stores, cache_size: int = 20_000, *, expired: ExpiredEvents | None = None
    ) -> None:
        self._stores = stores
        self._expired = expired
        self._cache_size = cache_size
        # state group -> history_visibility event ID in it (None: no such event)
        self._hv_by_group: OrderedDict[int, str | None] = OrderedDict()

    # -- room access ------------------------------------------------------------------

    async def room_access(
        self, user_id: str, room_id: str, *, allow_banned: bool = True
    ) -> RoomAccess:
        """The user's standing in the room; M_FORBIDDEN when they may not read it at all.

        Joined users read the room; users who left or were banned read what they
        could see before; anyone may read a room whose current history visibility is
        ``world_readable``. An unknown room is M_FORBIDDEN too (it does not reveal
        whether the room exists). With ``allow_banned=False`` a banned user is
        turned away whatever the visibility (``GET /threads`` lists "the user has
        been banned from the room" among its 403 reasons).
        """
        state = await self._stores.state.get_current_state(room_id)
        if not state:
            raise Forbidden("You are not allowed to view this room")
        member_id = state.get((MEMBER, user_id))
        member = await self._stores.events.get_event(member_id) if member_id else None
        membership = member.event.membership if member is not None else None
        world_readable = await self._current_visibility(state) == WORLD_READABLE
        access = RoomAccess(membership, member, world_readable)
        if membership == "ban" and not allow_banned:
            raise Forbidden("You are banned from this room")
        if access.joined or access.departed or world_readable:
            return access
        raise Forbidden("You are not allowed to view this room")

    async def _current_visibility(self, state: dict[tuple[str, str], str]) -> str:
        event_id = state.get((HISTORY_VISIBILITY, ""))
        if event_id is None:
            return SHARED
        stored = await self._stores.events.get_event(event_id)
        if stored is None:
            return SHARED
        return visibility_value(stored.event.content.get("history_visibility"))

    # -- filtering --------------------------------------------------------------------

    async def filter_events_for_user(
        self, user_id: str, events: Sequence[StoredEvent]
    ) -> list[StoredEvent]:
        """The events of ``events`` that ``user_id`` may see, in the same order.

        Outliers and events without known state are never visible, nor events past
        their room's message retention policy; events of several rooms may be mixed. An event of a sender who asked to be erased comes
        back pruned (as a redaction leaves it) unless the user was joined at it: use
        the returned events, not the given ones.
        """
        candidates = [e for e in events if e.state_group is not None and not e.outlier]
        candidates = await self.drop_expired(candidates)
        if not candidates:
            return []
        groups = {e.state_group for e in candidates if e.state_group is not None}
        hv_ids = await self._hv_ids(groups)
        member_ids = await self._member_ids(groups, user_id)
        wanted = {i for i in hv_ids.values() if i} | {i for i in member_ids.values() if i}
        # The values before a history_visibility change or the user's own membership change.
        for stored in candidates:
            if stored.replaces_state and self._own_or_hv(stored, user_id):
                wanted.add(stored.replaces_state)
        fetched = await self._stores.events.get_events(wanted) if wanted else {}
        erased = await self._stores.accounts.erased_among({e.event.sender for e in candidates})
        last_join = {}
        # A member now has joined after every event it does not see as a member: also
        # one that reached this server after the join (sent concurrently with it by a
        # server that had not seen the join yet), as Synapse shows ``shared`` history
        # to every current member.
        member_now: dict[str, bool] = {}
        for room_id in {e.event.room_id for e in candidates}:
            last_join[room_id] = await self._stores.events.last_join_stream(room_id, user_id)
            members = await self._stores.state.current_members(room_id)
            member_now[room_id] = members.get(user_id) == "join"

        visible: list[StoredEvent] = []
        for stored in candidates:
            assert stored.state_group is not None
            hv_event = fetched.get(hv_ids.get(stored.state_group) or "")
            visibilities = {
                visibility_value(hv_event.event.content.get("history_visibility"))
                if hv_event
                else SHARED
            }
            member_event = fetched.get(member_ids[stored.state_group] or "")
            memberships = {member_event.event.membership if member_event else None}
            before = fetched.get(stored.replaces_state) if stored.replaces_state else None
            event = stored.event
            if event.type == HISTORY_VISIBILITY and event.state_key == "":
                visibilities.add(
                    visibility_value(before.event.content.get("history_visibility"))
                    if before
                    else SHARED
                )
            elif event.type == MEMBER and event.state_key == user_id:
                memberships.add(before.event.membership if before else None)
            joined = last_join[event.room_id]
            joined_after = member_now[event.room_id] or (
                joined is not None
                and stored.stream_ordering is not None
                and joined > stored.stream_ordering
            )
            if is_event_visible(
                visibilities=visibilities, memberships=memberships, joined_after=joined_after
            ):
                if event.sender in erased and "join" not in memberships:
                    # the sender asked to be erased: only those who were in the room
                    # then see what they wrote (as Synapse)
                    stored = replace(stored, event=event.redacted())
                visible.append(stored)
        return visible

    async def drop_expired(self, events: Sequence[StoredEvent]) -> list[StoredEvent]:
        """``events`` without those past their room's retention policy (every
        event when message retention is off)."""
        if self._expired is None:
            return list(events)
        return await self._expired.drop_expired(events)

    async def may_see_event(self, user_id: str, stored: StoredEvent) -> bool:
        """Whether ``user_id`` may see this one event (for single event reads)."""
        return bool(await self.filter_events_for_user(user_id, [stored]))

    @staticmethod
    def _own_or_hv(stored: StoredEvent, user_id: str) -> bool:
        event = stored.event
        return (event.type == HISTORY_VISIBILITY and event.state_key == "") or (
            event.type == MEMBER and event.state_key == user_id
        )

    async def visibility_at(self, event_ids: Sequence[str]) -> dict[str, tuple[str | None, bool]]:
        """For each event: the history visibility in force at it (None: no such state
        event) and whether that state event replaced another. Events whose state is not
        known are left out."""
        stored = await self._stores.events.get_events(event_ids)
        hv_ids = await self._hv_ids(
            {e.state_group for e in stored.values() if e.state_group is not None}
        )
        wanted = {i for i in hv_ids.values() if i is not None}
        hv_events = await self._stores.events.get_events(wanted) if wanted else {}
        result: dict[str, tuple[str | None, bool]] = {}
        for event_id, event in stored.items():
            if event.state_group is None or event.state_group not in hv_ids:
                continue
            hv_id = hv_ids[event.state_group]
            if hv_id is None:
                result[event_id] = (None, False)
            elif (hv := hv_events.get(hv_id)) is not None:
                value = visibility_value(hv.event.content.get("history_visibility"))
                result[event_id] = (value, hv.replaces_state is not None)
        return result

    async def _hv_ids(self, groups: set[int]) -> dict[int, str | None]:
        """The m.room.history_visibility event ID of each group's state (cached; the
        groups not cached are read in one batch). Groups not found are left out."""
        result: dict[int, str | None] = {}
        missing: list[int] = []
        for group in groups:
            if group in self._hv_by_group:
                self._hv_by_group.move_to_end(group)
                result[group] = self._hv_by_group[group]
            else:
                missing.append(group)
        if missing:
            for group, state in (await self._stores.sync.state_groups(missing)).items():
                value = state.get((HISTORY_VISIBILITY, ""))
                result[group] = value
                self._hv_by_group[group] = value
            while len(self._hv_by_group) > self._cache_size:
                self._hv_by_group.popitem(last=False)
        return result

    async def _member_ids(self, groups: set[int], user_id: str) -> dict[int, str | None]:
        result: dict[int, str | None] = {}
        for group in groups:
            state = await self._stores.state.get_state(group)
            result[group] = state.get((MEMBER, user_id))
        return result

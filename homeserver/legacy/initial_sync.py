"""``GET /initialSync`` and ``GET /rooms/{roomId}/initialSync`` (client-server API r0;
the room snapshot is still the way to preview a world-readable room).

A snapshot of a room is its state, its latest ``limit`` events the user may see
(read backwards as /messages does, so ``messages.start`` pages further back through
/messages) and the user's account data for it. A room the user left (or was banned
from) is shown as it was at their departure: the state and the events up to their
membership event, no presence and no receipts. ``messages.end`` is a sync token: for
a room the user is in (or peeks into) the current one, for a departed room the
position of their departure; it is a valid ``from`` of ``/events`` and of /messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from homeserver.legacy.client_format import v1_client_event
from homeserver.legacy.ephemeral import LegacyEphemeral, Snapshot
from homeserver.legacy.event_stream import SyncPositions
from homeserver.rooms.history import Position, RoomHistory, after, position_token
from homeserver.rooms.serializer import EventSerializer
from homeserver.rooms.visibility import HistoryVisibility
from homeserver.streams import SyncToken
from storage.events import StoredEvent
from storage.stores import Stores
from storage.sync import MembershipRow

DEPARTED = ("leave", "ban")


class InitialSyncService:
    def __init__(
        self,
        stores: Stores,
        positions: SyncPositions,
        visibility: HistoryVisibility,
        history: RoomHistory,
        serializer: EventSerializer,
        ephemeral: LegacyEphemeral,
    ) -> None:
        self._stores = stores
        self._positions = positions
        self._visibility = visibility
        self._history = history
        self._serializer = serializer
        self._ephemeral = ephemeral

    # -- GET /initialSync -------------------------------------------------------------

    async def snapshot_all_rooms(
        self, user_id: str, device_id: str | None, *, limit: int, archived: bool
    ) -> dict[str, Any]:
        """Every room the user is invited to or joined (and, with ``archived``, left or
        was banned from, unless forgotten), presence, receipts and account data."""
        now = self._positions.current_token(None)
        histories = await self._positions.memberships.get(user_id)
        wanted = {"invite", "join", *(DEPARTED if archived else ())}
        forgotten = await self._stores.rooms.forgotten_rooms(user_id) if archived else set()
        rows = [
            row
            for room_id, history in histories.items()
            if (row := history.at(now.events)) is not None
            and row.membership in wanted
            and room_id not in forgotten
        ]
        joined = [r.room_id for r in rows if r.membership == "join"]
        snapshot = await self._ephemeral.snapshot(user_id, joined, now)
        public = set(await self._stores.rooms.public_room_ids())
        rooms = [
            await self._room_entry(user_id, device_id, row, limit, now, public, snapshot)
            for row in rows
        ]
        return {
            "rooms": rooms,
            "presence": snapshot.presence,
            "account_data": snapshot.global_account_data,
            "receipts": [e for events in snapshot.receipts.values() for e in events],
            "end": now.serialize(),
        }

    async def _room_entry(
        self,
        user_id: str,
        device_id: str | None,
        row: MembershipRow,
        limit: int,
        now: SyncToken,
        public: set[str],
        snapshot: Snapshot,
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "room_id": row.room_id,
            "membership": row.membership,
            "visibility": "public" if row.room_id in public else "private",
        }
        member = await self._stores.events.get_event(row.event_id)
        if member is None:
            return entry
        if row.membership == "invite":
            entry["inviter"] = member.event.sender
            entry["invite"] = (await self._client_events(user_id, device_id, [member]))[0]
            return entry
        if row.membership == "join":
            view = await self._current_view(user_id, device_id, row.room_id, limit, now)
        else:
            view = await self._departed_view(user_id, device_id, member, limit, now)
        entry.update(view)
        entry["account_data"] = snapshot.room_account_data.get(row.room_id, [])
        return entry

    # -- GET /rooms/{roomId}/initialSync ----------------------------------------------

    async def room_initial_sync(
        self, user_id: str, device_id: str | None, room_id: str, *, limit: int
    ) -> dict[str, Any]:
        """One room: the user's own (joined, or departed: as it was then), or a room
        whose history is world readable; M_FORBIDDEN otherwise."""
        access = await self._visibility.room_access(user_id, room_id)
        now = self._positions.current_token(None)
        result: dict[str, Any] = {"room_id": room_id}
        if access.membership is not None:
            result["membership"] = access.membership
        if access.departed and access.member_event is not None:
            result.update(
                await self._departed_view(user_id, device_id, access.member_event, limit, now)
            )
            result["presence"] = []
            result["receipts"] = []
        else:
            result.update(await self._current_view(user_id, device_id, room_id, limit, now))
            members = await self._stores.state.current_members(room_id)
            result["presence"] = await self._ephemeral.presence_of(
                u for u, m in members.items() if m == "join"
            )
            result["receipts"] = await self._ephemeral.room_receipts(user_id, room_id, now)
        result["visibility"] = (
            "public" if await self._stores.rooms.is_public(room_id) else "private"
        )
        result["account_data"] = await self._ephemeral.room_account_data(user_id, room_id, now)
        return result

    # -- views of one room ------------------------------------------------------------

    async def _current_view(
        self, user_id: str, device_id: str | None, room_id: str, limit: int, now: SyncToken
    ) -> dict[str, Any]:
        """The room's current state and latest events."""
        state = await self._stores.state.get_current_state(room_id)
        end_of_room = await self._history.end_of_room(room_id)
        messages = await self._messages(user_id, device_id, room_id, end_of_room, limit, now)
        return {
            "messages": messages,
            "state": await self._state_events(user_id, device_id, list(state.values())),
        }

    async def _departed_view(
        self,
        user_id: str,
        device_id: str | None,
        member: StoredEvent,
        limit: int,
        now: SyncToken,
    ) -> dict[str, Any]:
        """The room as it was when the user's membership event (a leave, a ban) came."""
        room_id = member.event.room_id
        state_ids: list[str] = []
        if member.state_group is not None:
            state_ids = list((await self._stores.state.get_state(member.state_group)).values())
        end = replace(now, events=member.stream_ordering or 0)
        messages = await self._messages(user_id, device_id, room_id, after(member), limit, end)
        return {
            "messages": messages,
            "state": await self._state_events(user_id, device_id, state_ids),
        }

    async def _messages(
        self,
        user_id: str,
        device_id: str | None,
        room_id: str,
        start: Position,
        limit: int,
        end: SyncToken,
    ) -> dict[str, Any]:
        """The latest ``limit`` events before ``start`` the user may see, oldest first."""
        scan = await self._history.scan(user_id, room_id, start, backwards=True, limit=limit)
        chunk = list(reversed(scan.events))
        return {
            "chunk": await self._client_events(user_id, device_id, chunk),
            "start": position_token(scan.position),
            "end": end.serialize(),
        }

    async def _state_events(
        self, user_id: str, device_id: str | None, event_ids: list[str]
    ) -> list[dict[str, Any]]:
        found = await self._stores.events.get_events(event_ids)
        return await self._client_events(
            user_id, device_id, [found[i] for i in event_ids if i in found]
        )

    async def _client_events(
        self, user_id: str, device_id: str | None, events: Sequence[StoredEvent]
    ) -> list[dict[str, Any]]:
        bodies = await self._serializer.serialize(
            events, user_id=user_id, device_id=device_id, bundle_aggregations=False
        )
        return [v1_client_event(b) for b in bodies]

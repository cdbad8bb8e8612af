"""Reading a room over federation: ``/event``, ``/state``, ``/state_ids``,
``/event_auth``, ``/backfill`` and ``/get_missing_events`` (s2s "Retrieving events",
"Retrieving event authorisation information", "Backfilling and retrieving missing
events").

Every room-scoped endpoint checks the room's server ACL for the requesting server
(s2s "Server ACLs": 403 ``M_FORBIDDEN``) and that the server takes part in the room.
Events go through :meth:`ServerVisibility.filter_for_server`, the server-side history
visibility rule: a server may see an event if any of its users could, i.e. the
room's ``history_visibility`` at the event is ``world_readable`` or ``shared``, or it
is ``invited`` and one of its users was invited or joined, or it is ``joined`` and
one of its users was joined. Events it may not see are served redacted by
``/backfill`` and ``/get_missing_events`` (so the DAG stays walkable) and refused by
``/event``. Events whose sender asked to be erased (deactivation with ``erase``)
are served redacted by all three, as Synapse does.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from aiohttp import web

from federation.server_acl import ServerAclChecker
from homeserver.clock import Clock
from homeserver.errors import BadJson, Forbidden, InvalidParam, MissingParam, NotFound
from homeserver.events import KNOWN_ROOM_VERSIONS
from homeserver.http.body import get_int, get_str_list, json_object, query_int
from homeserver.http.middleware import compact_dumps
from homeserver.rooms.history import closest_visible_event
from homeserver.rooms.visibility import HISTORY_VISIBILITY, MEMBER, visibility_value
from storage.events import StoredEvent
from storage.state import StateMap
from storage.stores import Stores

MAX_BACKFILL = 100
MAX_MISSING = 20
DEFAULT_MISSING = 10


def _server(user_id: str) -> str:
    return user_id.partition(":")[2]


def server_may_see(visibility: str, memberships: Iterable[str | None]) -> bool:
    """The server-side history visibility rule for one event (see the module doc)."""
    if visibility in ("world_readable", "shared"):
        return True
    values = set(memberships)
    if visibility == "invited":
        return bool(values & {"join", "invite"})
    return "join" in values


class ServerVisibility:
    """Which events of a room a server may see."""

    def __init__(self, stores: Stores) -> None:
        self._stores = stores

    async def host_in_room(self, server: str, room_id: str, state: StateMap | None = None) -> bool:
        """Whether ``server`` has a joined user in ``state`` (default: current state)."""
        if state is None:
            return server in await self._stores.state.joined_servers(room_id)
        ids = [e for (t, k), e in state.items() if t == MEMBER and _server(k) == server]
        events = await self._stores.events.get_events(ids)
        return any(s.event.membership == "join" for s in events.values())

    async def filter_for_server(
        self, server: str, events: Sequence[StoredEvent]
    ) -> list[tuple[StoredEvent, bool]]:
        """Each event with whether ``server`` may see it (same order)."""
        in_room_now: bool | None = None
        result: list[tuple[StoredEvent, bool]] = []
        for stored in events:
            if stored.state_group is None or stored.outlier:
                if in_room_now is None:
                    in_room_now = await self.host_in_room(server, stored.event.room_id)
                result.append((stored, in_room_now))
                continue
            result.append((stored, await self._visible(server, stored)))
        return result

    async def erased_senders(self, events: Iterable[StoredEvent]) -> set[str]:
        """The senders of ``events`` who asked to be erased."""
        senders = {stored.event.sender for stored in events}
        return await self._stores.accounts.erased_among(senders) if senders else set()

    async def _visible(self, server: str, stored: StoredEvent) -> bool:
        assert stored.state_group is not None
        state = await self._stores.state.get_state(stored.state_group)
        event = stored.event
        wanted = [e for (t, k), e in state.items() if t == MEMBER and _server(k) == server]
        hv_id = state.get((HISTORY_VISIBILITY, ""))
        own_change = stored.replaces_state is not None and (
            (event.type == HISTORY_VISIBILITY and event.state_key == "")
            or (event.type == MEMBER and _server(event.state_key or "") == server)
        )
        if own_change and stored.replaces_state is not None:
            wanted.append(stored.replaces_state)
        fetched = await self._stores.events.get_events([*wanted, *([hv_id] if hv_id else [])])
        hv = fetched.get(hv_id) if hv_id else None
        visibilities = {
            visibility_value(hv.event.content.get("history_visibility")) if hv else "shared"
        }
        memberships = [fetched[e].event.membership for e in wanted if e in fetched]
        before = fetched.get(stored.replaces_state or "") if own_change else None
        if before is not None and event.type == HISTORY_VISIBILITY:
            visibilities.add(visibility_value(before.event.content.get("history_visibility")))
        if not stored.replaces_state and event.type == HISTORY_VISIBILITY:
            visibilities.add("shared")
        return any(server_may_see(v, memberships) for v in visibilities)


class RoomReadHandlers:
    """The read endpoints; handlers take ``(origin, request)`` after X-Matrix auth."""

    def __init__(
        self,
        server_name: str,
        stores: Stores,
        acl: ServerAclChecker,
        visibility: ServerVisibility,
        clock: Clock,
    ) -> None:
        self._server_name = server_name
        self._stores = stores
        self._acl = acl
        self._visibility = visibility
        self._clock = clock

    def _txn(self, pdus: list[dict[str, Any]]) -> web.Response:
        body = {
            "origin": self._server_name,
            "origin_server_ts": self._clock.time_ms(),
            "pdus": pdus,
        }
        return web.json_response(body, dumps=compact_dumps)

    async def _room_access(self, origin: str, room_id: str) -> None:
        """ACL (403) and a known room (404) the origin takes part in (403)."""
        if await self._stores.events.room_version_id(room_id) is None:
            raise NotFound("Unknown room")
        await self._acl.check(origin, room_id)
        if not await self._visibility.host_in_room(origin, room_id):
            raise Forbidden(f"{origin} is not in the room")

    async def _event_in_room(self, room_id: str, event_id: str) -> StoredEvent:
        stored = await self._stores.events.get_event(event_id)
        if stored is None or stored.event.room_id != room_id or stored.rejected_reason:
            raise NotFound(f"Could not find event {event_id}")
        return stored

    async def on_get_event(self, origin: str, request: web.Request) -> web.Response:
        """GET /_matrix/federation/v1/event/{eventId} (s2s: getEvent)."""
        stored = await self._stores.events.get_event(request.match_info["eventId"])
        if stored is None or stored.rejected_reason:
            raise NotFound("Event not found")
        await self._acl.check(origin, stored.event.room_id)
        [(_, visible)] = await self._visibility.filter_for_server(origin, [stored])
        if not visible:
            raise Forbidden(f"{origin} may not see this event")
        erased = await self._visibility.erased_senders([stored])
        return self._txn([_pdu(stored, stored.event.sender not in erased)])

    async def _state_before(self, origin: str, room_id: str, request: web.Request) -> StateMap:
        event_id = request.query.get("event_id")
        if not event_id:
            raise MissingParam("Missing parameter: event_id")
        await self._room_access(origin, room_id)
        stored = await self._event_in_room(room_id, event_id)
        if stored.outlier or stored.state_group is None:
            raise NotFound(f"No state is known at {event_id}")
        state = dict(await self._stores.state.get_state(stored.state_group))
        key = stored.event.state_tuple
        if key is not None and state.get(key) == stored.event_id:
            if stored.replaces_state is None:
                del state[key]
            else:
                state[key] = stored.replaces_state
        return state

    async def on_get_state_ids(self, origin: str, request: web.Request) -> web.Response:
        """GET /_matrix/federation/v1/state_ids/{roomId} (s2s: getRoomStateIds)."""
        room_id = request.match_info["roomId"]
        state = await self._state_before(origin, room_id, request)
        chain = await self.auth_chain(list(state.values()), room_id)
        return web.json_response(
            {"pdu_ids": sorted(state.values()), "auth_chain_ids": [s.event_id for s in chain]},
            dumps=compact_dumps,
        )

    async def on_get_state(self, origin: str, request: web.Request) -> web.Response:
        """GET /_matrix/federation/v1/state/{roomId} (s2s: getRoomState)."""
        room_id = request.match_info["roomId"]
        state = await self._state_before(origin, room_id, request)
        events = await self._stores.events.get_events(list(state.values()))
        chain = await self.auth_chain(list(state.values()), room_id)
        return web.json_response(
            {
                "pdus": [_pdu(s, True) for s in events.values()],
                "auth_chain": [_pdu(s, True) for s in chain],
            },
            dumps=compact_dumps,
        )

    async def on_timestamp_to_event(self, origin: str, request: web.Request) -> web.Response:
        """GET /_matrix/federation/v1/timestamp_to_event/{roomId} (s2s:
        getEventByTimestamp): the closest event the origin may see."""
        room_id = request.match_info["roomId"]
        await self._room_access(origin, room_id)
        if "ts" not in request.query:
            raise MissingParam("Missing query parameter: ts")
        ts = query_int(request, "ts", 0)
        direction = request.query.get("dir")
        if direction not in ("f", "b"):
            raise InvalidParam("Query parameter 'dir' must be 'f' or 'b'")

        async def visible(events: list[StoredEvent]) -> list[StoredEvent]:
            return [
                e for e, shown in await self._visibility.filter_for_server(origin, events) if shown
            ]

        stored = await closest_visible_event(self._stores, room_id, ts, direction == "f", visible)
        return web.json_response(
            {"event_id": stored.event_id, "origin_server_ts": stored.event.origin_server_ts},
            dumps=compact_dumps,
        )

    async def on_get_event_auth(self, origin: str, request: web.Request) -> web.Response:
        """GET /_matrix/federation/v1/event_auth/{roomId}/{eventId} (s2s: getEventAuth)."""
        room_id = request.match_info["roomId"]
        await self._room_access(origin, room_id)
        stored = await self._event_in_room(room_id, request.match_info["eventId"])
        chain = await self.auth_chain(list(stored.event.auth_event_ids), room_id)
        return web.json_response(
            {"auth_chain": [_pdu(s, True) for s in chain]}, dumps=compact_dumps
        )

    async def auth_chain(
        self, event_ids: Sequence[str], room_id: str | None = None
    ) -> list[StoredEvent]:
        """The events and their auth events, recursively (ordered by depth).

        From room version 12 events no longer cite the create event; it is added
        to the chain of a ``room_id`` so the receiver can check the chain.
        """
        seen: dict[str, StoredEvent] = {}
        todo = list(dict.fromkeys(event_ids))
        version = await self._stores.events.room_version_id(room_id) if room_id else None
        rv = KNOWN_ROOM_VERSIONS.get(version) if version else None
        if room_id is not None and rv is not None and rv.room_id_from_create_event:
            todo.append("$" + room_id[1:])
        while todo:
            found = await self._stores.events.get_events(todo)
            todo = []
            for event_id, stored in found.items():
                if event_id in seen:
                    continue
                seen[event_id] = stored
                todo += [a for a in stored.event.auth_event_ids if a not in seen]
            todo = list(dict.fromkeys(todo))
        return sorted(seen.values(), key=lambda s: (s.depth, s.event_id))

    async def on_backfill(self, origin: str, request: web.Request) -> web.Response:
        """GET /_matrix/federation/v1/backfill/{roomId}?v=&limit= (s2s: backfillRoom).

        Newest first, as Synapse answers: the ``v`` events (the deepest) lead.
        """
        room_id = request.match_info["roomId"]
        starts = request.query.getall("v", [])
        if not starts:
            raise MissingParam("Missing parameter: v")
        limit = min(query_int(request, "limit", 10, minimum=0), MAX_BACKFILL)
        await self._room_access(origin, room_id)
        events = await self._walk_back(room_id, starts, set(), limit, 0, include_start=True)
        return self._txn(await self._served(origin, events[::-1]))

    async def on_get_missing_events(self, origin: str, request: web.Request) -> web.Response:
        """POST /_matrix/federation/v1/get_missing_events/{roomId} (s2s)."""
        room_id = request.match_info["roomId"]
        body = await json_object(request)
        # required by the spec; absent ones read as empty, as Synapse does
        earliest = get_str_list(body, "earliest_events", [])
        latest = get_str_list(body, "latest_events", [])
        limit = get_int(body, "limit", DEFAULT_MISSING)
        min_depth = get_int(body, "min_depth", 0)
        if limit < 0:
            raise BadJson("'limit' must not be negative")
        await self._room_access(origin, room_id)
        events = await self._walk_back(
            room_id, latest, set(earliest), min(limit, MAX_MISSING), min_depth, include_start=False
        )
        served = await self._served(origin, events)
        return web.json_response({"events": served}, dumps=compact_dumps)

    async def _walk_back(
        self,
        room_id: str,
        starts: Sequence[str],
        stop: set[str],
        limit: int,
        min_depth: int,
        *,
        include_start: bool,
    ) -> list[StoredEvent]:
        """Breadth-first over prev_events from ``starts``, newest (deepest) first."""
        result: dict[str, StoredEvent] = {}
        seen = set(starts) | stop
        frontier = list(dict.fromkeys(starts))
        first = True
        deadline = time.monotonic() + 10
        while frontier and len(result) < limit and time.monotonic() < deadline:
            found = await self._stores.events.get_events(frontier)
            nxt: list[str] = []
            for event_id in frontier:
                stored = found.get(event_id)
                if stored is None or stored.event.room_id != room_id:
                    continue
                if not first or include_start:
                    if stored.depth < min_depth or stored.outlier or stored.rejected_reason:
                        continue
                    if len(result) < limit:
                        result[event_id] = stored
                for prev in stored.event.prev_event_ids:
                    if prev not in seen:
                        seen.add(prev)
                        nxt.append(prev)
            frontier, first = nxt, False
        return sorted(result.values(), key=lambda s: (s.depth, s.stream_ordering or 0))

    async def _served(self, origin: str, events: Sequence[StoredEvent]) -> list[dict[str, Any]]:
        checked = await self._visibility.filter_for_server(origin, events)
        erased = await self._visibility.erased_senders(events)
        return [
            _pdu(stored, visible and stored.event.sender not in erased)
            for stored, visible in checked
        ]


def _pdu(stored: StoredEvent, whole: bool) -> dict[str, Any]:
    """The PDU as served: redacted when redacted here, or when not to be served
    whole (not visible to the server, or its sender erased)."""
    if stored.redacted_by or not whole:
        return dict(stored.event.redacted_pdu())
    return dict(stored.event.pdu)

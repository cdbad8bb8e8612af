"""The space hierarchy (``GET /rooms/{roomId}/hierarchy``, federation
``GET /hierarchy/{roomId}``) and room summaries (``GET /room_summary/{roomIdOrAlias}``).

A room this server is in is summarised from its current state; any other room is
asked of the servers its ``m.space.child`` event names (``via``) over federation. As
in Synapse, the walk is depth-first in the children's order, a room someone may not
see is left out with its children, each room appears once, and a page that stops
before the end keeps its place in a pagination session for five minutes.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from homeserver.clock import Clock
from homeserver.errors import Forbidden, InvalidParam, NotFound
from homeserver.spaces.rules import (
    RoomAccess,
    allowed_room_ids,
    ordered_children,
    server_may_see,
    user_may_see,
)
from storage.stores import Stores

logger = logging.getLogger(__name__)

MAX_ROOMS_PER_PAGE = 50
MAX_CHILDREN_OVER_FEDERATION = 50
MAX_VIA_SERVERS = 3
SESSION_LIFETIME_MS = 5 * 60 * 1000
SUMMARY_STATE = (
    ("m.room.create", ""),
    ("m.room.name", ""),
    ("m.room.topic", ""),
    ("m.room.canonical_alias", ""),
    ("m.room.avatar", ""),
    ("m.room.join_rules", ""),
    ("m.room.history_visibility", ""),
    ("m.room.guest_access", ""),
    ("m.room.encryption", ""),
)


@dataclass
class RemoteHierarchy:
    """What another server answered for ``GET /hierarchy/{roomId}``."""

    room: dict[str, Any]
    children_state: list[dict[str, Any]]
    children: dict[str, dict[str, Any]]
    inaccessible: frozenset[str]


class RemoteHierarchyLookup(Protocol):
    async def __call__(
        self, via: Sequence[str], room_id: str, suggested_only: bool
    ) -> RemoteHierarchy | None: ...


@dataclass
class RoomEntry:
    """One room of a hierarchy: its summary and its (ordered) child events."""

    room: dict[str, Any]
    children_state: list[dict[str, Any]] = field(default_factory=list)

    def client_json(self) -> dict[str, Any]:
        body = {k: v for k, v in self.room.items() if k != "allowed_room_ids"}
        body["children_state"] = self.children_state
        return body


@dataclass
class QueueEntry:
    room_id: str
    via: tuple[str, ...]
    depth: int = 0
    remote: dict[str, Any] | None = None  # the summary another server gave with its parent


@dataclass
class PaginationSession:
    user_id: str
    room_id: str
    suggested_only: bool
    max_depth: int | None
    queue: list[QueueEntry]
    processed: set[str]
    expires_ms: int


def access_of(summary: Mapping[str, Any]) -> RoomAccess:
    allowed = summary.get("allowed_room_ids")
    return RoomAccess(
        join_rule=summary.get("join_rule") if isinstance(summary.get("join_rule"), str) else None,
        world_readable=summary.get("world_readable") is True,
        allowed_room_ids=tuple(a for a in allowed if isinstance(a, str))
        if isinstance(allowed, list)
        else (),
    )


class SpaceService:
    def __init__(self, server_name: str, stores: Stores, clock: Clock) -> None:
        self._server_name = server_name
        self._stores = stores
        self._clock = clock
        self._sessions: dict[str, PaginationSession] = {}
        self.remote_hierarchy: RemoteHierarchyLookup | None = None

    # -- local rooms ---------------------------------------------------------------

    async def is_local(self, room_id: str) -> bool:
        """Whether this server is in the room (has a joined member)."""
        return self._server_name in await self._stores.state.joined_servers(room_id)

    async def _summary(self, room_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The summary of a room this server is in, and its current state's
        ``m.space.child`` events (as client events, unordered)."""
        state = await self._stores.state.get_current_state(room_id)
        wanted = {k: state[k] for k in SUMMARY_STATE if k in state}
        child_ids = [e for (t, _k), e in state.items() if t == "m.space.child"]
        found = await self._stores.events.get_events([*wanted.values(), *child_ids])

        def content(key: tuple[str, str]) -> Mapping[str, Any]:
            stored = found.get(wanted.get(key, ""))
            return stored.event.content if stored is not None else {}

        def text(key: tuple[str, str], name: str) -> str | None:
            value = content(key).get(name)
            return value if isinstance(value, str) and value else None

        members = await self._stores.state.current_members(room_id)
        create = content(("m.room.create", ""))
        version = create.get("room_version", "1")
        join_rules = content(("m.room.join_rules", ""))
        entry: dict[str, Any] = {
            "room_id": room_id,
            "room_version": version if isinstance(version, str) else "1",
            "name": text(("m.room.name", ""), "name"),
            "topic": text(("m.room.topic", ""), "topic"),
            "canonical_alias": text(("m.room.canonical_alias", ""), "alias"),
            "num_joined_members": sum(1 for m in members.values() if m == "join"),
            "avatar_url": text(("m.room.avatar", ""), "url"),
            "join_rule": text(("m.room.join_rules", ""), "join_rule"),
            "world_readable": text(("m.room.history_visibility", ""), "history_visibility")
            == "world_readable",
            "guest_can_join": text(("m.room.guest_access", ""), "guest_access") == "can_join",
            "room_type": text(("m.room.create", ""), "type"),
            "encryption": text(("m.room.encryption", ""), "algorithm"),
        }
        allowed = allowed_room_ids(join_rules)
        if allowed:
            entry["allowed_room_ids"] = list(allowed)
        children = [found[e].event.pdu for e in child_ids if e in found]
        return {k: v for k, v in entry.items() if v is not None}, children

    async def _membership(self, room_id: str, user_id: str) -> str | None:
        return (await self._stores.state.current_members(room_id)).get(user_id)

    async def _joined_rooms(self, user_id: str) -> set[str]:
        rooms = await self._stores.state.rooms_for_user(user_id)
        return {r for r, m in rooms.items() if m == "join"}

    async def _user_may_see_local(
        self, user_id: str, room_id: str, summary: Mapping[str, Any]
    ) -> bool:
        return user_may_see(
            access_of(summary),
            await self._membership(room_id, user_id),
            await self._joined_rooms(user_id),
        )

    async def _local_entry(
        self, room_id: str, suggested_only: bool, *, include_children: bool = True
    ) -> RoomEntry:
        summary, child_events = await self._summary(room_id)
        entry = RoomEntry(summary)
        if include_children and summary.get("room_type") == "m.space":
            children = ordered_children(child_events, suggested_only=suggested_only)
            entry.children_state = [c.stripped for c in children]
        return entry

    # -- the client API ------------------------------------------------------------

    async def hierarchy(
        self,
        user_id: str,
        room_id: str,
        *,
        suggested_only: bool = False,
        max_depth: int | None = None,
        limit: int | None = None,
        from_token: str | None = None,
    ) -> dict[str, Any]:
        """``GET /_matrix/client/v1/rooms/{roomId}/hierarchy``."""
        if limit is not None and limit <= 0:
            raise InvalidParam("limit must be a positive integer")
        if max_depth is not None and max_depth < 0:
            raise InvalidParam("max_depth must be a non-negative integer")
        await self._check_root(user_id, room_id)
        now = self._clock.time_ms()
        self._sessions = {t: s for t, s in self._sessions.items() if s.expires_ms > now}
        if from_token is not None:
            session = self._sessions.pop(from_token, None)
            if session is None or (
                session.user_id,
                session.room_id,
                session.suggested_only,
                session.max_depth,
            ) != (user_id, room_id, suggested_only, max_depth):
                raise InvalidParam("Unknown pagination token")
            queue, processed = session.queue, session.processed
        else:
            queue, processed = [QueueEntry(room_id, self._via_of(room_id))], set()
        page_size = min(limit or MAX_ROOMS_PER_PAGE, MAX_ROOMS_PER_PAGE)
        rooms: list[dict[str, Any]] = []
        while queue and len(rooms) < page_size:
            entry = queue.pop()
            if entry.room_id in processed:
                continue
            processed.add(entry.room_id)
            found, remote_children, inaccessible = await self._visit(
                user_id, entry, suggested_only, max_depth
            )
            if found is None:
                continue
            rooms.append(found.client_json())
            if max_depth is not None and entry.depth >= max_depth:
                continue
            # children pushed in reverse: the next to visit is the last of the stack
            for child in reversed(ordered_children(found.children_state)):
                if child.room_id in inaccessible:
                    continue
                queue.append(
                    QueueEntry(
                        child.room_id,
                        child.via,
                        entry.depth + 1,
                        remote_children.get(child.room_id),
                    )
                )
        body: dict[str, Any] = {"rooms": rooms}
        if queue:
            token = secrets.token_urlsafe(16)
            self._sessions[token] = PaginationSession(
                user_id,
                room_id,
                suggested_only,
                max_depth,
                queue,
                processed,
                now + SESSION_LIFETIME_MS,
            )
            body["next_batch"] = token
        return body

    def _via_of(self, room_id: str) -> tuple[str, ...]:
        _, _, server = room_id.partition(":")
        return (server,) if server and server != self._server_name else ()

    async def _check_root(self, user_id: str, room_id: str) -> None:
        refused = Forbidden(f"User {user_id} not in room {room_id}, and room previews are disabled")
        if await self.is_local(room_id):
            summary, _children = await self._summary(room_id)
            if not await self._user_may_see_local(user_id, room_id, summary):
                raise refused
            return
        remote = await self._ask(self._via_of(room_id), room_id, False)
        if remote is None or not await self._user_may_see_remote(user_id, room_id, remote.room):
            raise refused

    async def _visit(
        self, user_id: str, entry: QueueEntry, suggested_only: bool, max_depth: int | None
    ) -> tuple[RoomEntry | None, dict[str, dict[str, Any]], frozenset[str]]:
        """One room of the walk: its entry if the user may see it, and what its server
        said of its children (summaries, and the ones it will not show)."""
        if await self.is_local(entry.room_id):
            summary, _children = await self._summary(entry.room_id)
            if not await self._user_may_see_local(user_id, entry.room_id, summary):
                return None, {}, frozenset()
            return await self._local_entry(entry.room_id, suggested_only), {}, frozenset()
        at_max_depth = max_depth is not None and entry.depth >= max_depth
        if entry.remote is not None and (
            entry.remote.get("room_type") != "m.space" or at_max_depth
        ):
            found: RoomEntry | None = RoomEntry(entry.remote)
            children: dict[str, dict[str, Any]] = {}
            inaccessible: frozenset[str] = frozenset()
        else:
            remote = await self._ask(entry.via, entry.room_id, suggested_only)
            if remote is None:
                return None, {}, frozenset()
            found = RoomEntry(remote.room, remote.children_state)
            children, inaccessible = remote.children, remote.inaccessible
        if not await self._user_may_see_remote(user_id, entry.room_id, found.room):
            return None, {}, frozenset()
        return found, children, inaccessible

    async def _ask(
        self, via: Sequence[str], room_id: str, suggested_only: bool
    ) -> RemoteHierarchy | None:
        servers = [s for s in via if s != self._server_name][:MAX_VIA_SERVERS]
        if self.remote_hierarchy is None or not servers:
            return None
        return await self.remote_hierarchy(servers, room_id, suggested_only)

    async def _user_may_see_remote(
        self, user_id: str, room_id: str, summary: Mapping[str, Any]
    ) -> bool:
        """A room summarised by another server: anyone may preview it, or the user is
        in a room it allows, or has a membership here (an invite received)."""
        access = access_of(summary)
        joined = await self._joined_rooms(user_id)
        if user_may_see(access, None, joined):
            return True
        membership = (await self._stores.state.rooms_for_user(user_id)).get(room_id)
        return membership in ("join", "invite")

    async def room_summary(
        self, user_id: str | None, room_id: str, via: Sequence[str]
    ) -> dict[str, Any]:
        """``GET /_matrix/client/v1/room_summary/{roomIdOrAlias}``: the summary of a
        room the user may see (with their membership), else M_NOT_FOUND."""
        missing = NotFound("Room not found or is not accessible")
        if await self.is_local(room_id):
            summary, _children = await self._summary(room_id)
            membership = await self._membership(room_id, user_id) if user_id else None
            joined = await self._joined_rooms(user_id) if user_id else set()
            if not user_may_see(access_of(summary), membership, joined):
                raise missing
        else:
            remote = await self._ask([*via, *self._via_of(room_id)], room_id, False)
            if remote is None:
                raise missing
            summary = dict(remote.room)
            membership = None
            if user_id is not None:
                membership = (await self._stores.state.rooms_for_user(user_id)).get(room_id)
                if not await self._user_may_see_remote(user_id, room_id, summary):
                    raise missing
            elif not user_may_see(access_of(summary), None, ()):
                raise missing
        body = dict(summary)
        body.pop("children_state", None)
        if membership is not None:
            body["membership"] = membership
        return body

    # -- federation ------------------------------------------------------------------

    async def federation_hierarchy(
        self, origin: str, room_id: str, suggested_only: bool
    ) -> dict[str, Any]:
        """``GET /_matrix/federation/v1/hierarchy/{roomId}``: the room and its direct
        children this server is in, as far as ``origin`` may see them."""
        if not await self.is_local(room_id) or not await self._server_may_see(origin, room_id):
            raise NotFound(f"Unknown room: {room_id}")
        root = await self._local_entry(room_id, suggested_only)
        children: list[dict[str, Any]] = []
        inaccessible: list[str] = []
        for child in root.children_state[:MAX_CHILDREN_OVER_FEDERATION]:
            child_id = child["state_key"]
            if not await self.is_local(child_id):
                continue
            if await self._server_may_see(origin, child_id):
                summary, _events = await self._summary(child_id)
                children.append(summary)
            else:
                inaccessible.append(child_id)
        room = dict(root.room)
        room["children_state"] = root.children_state
        return {"room": room, "children": children, "inaccessible_children": inaccessible}

    async def _server_may_see(self, origin: str, room_id: str) -> bool:
        summary, _children = await self._summary(room_id)
        access = access_of(summary)
        in_room = origin in await self._stores.state.joined_servers(room_id)
        if not in_room:
            members = await self._stores.state.current_members(room_id)
            in_room = any(
                m == "invite" and u.partition(":")[2] == origin for u, m in members.items()
            )
        in_allowed = False
        for allowed in access.allowed_room_ids:
            if origin in await self._stores.state.joined_servers(allowed):
                in_allowed = True
                break
        return server_may_see(access, in_room, in_allowed)

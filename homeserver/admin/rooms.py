"""Server admins' view of rooms and their actions on them (Synapse admin API,
``docs/admin_api/rooms.md`` and ``room_membership.md``): the room list with its
orders and search, a room's details, members, state, messages and timestamp lookup
(for any room, without the history visibility rules of members), blocking, making
a user room admin, forward extremities, and forcing a local user into a room.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from homeserver.errors import Forbidden, InvalidParam, MatrixError, NotFound
from homeserver.events import PowerLevels, RoomID
from homeserver.events.identifiers import InvalidIdentifier
from homeserver.rooms.creator import EventCreator
from homeserver.rooms.directory import DirectoryService
from homeserver.rooms.history import START_OF_ROOM, RoomHistory, after, at, position_token
from homeserver.rooms.lanes import RoomLanes
from homeserver.rooms.membership import MembershipService
from homeserver.sync.filters import RoomEventFilter
from storage.database import Transaction
from storage.events import StoredEvent
from storage.room_admin import ForwardExtremity, RoomFacts
from storage.stores import Stores

# order_by value -> (key of a room's JSON entry, largest first)
ROOM_ORDERS: dict[str, tuple[str, bool]] = {
    "name": ("name", False),
    "alphabetical": ("name", False),
    "canonical_alias": ("canonical_alias", False),
    "joined_members": ("joined_members", True),
    "size": ("joined_members", True),
    "joined_local_members": ("joined_local_members", True),
    "version": ("version", True),
    "creator": ("creator", False),
    "encryption": ("encryption", False),
    "federatable": ("federatable", True),
    "public": ("public", True),
    "join_rules": ("join_rules", False),
    "guest_access": ("guest_access", False),
    "history_visibility": ("history_visibility", False),
    "state_events": ("state_events", True),
}


def check_room_id(room_id: str) -> None:
    """400 M_INVALID_PARAM unless ``room_id`` is a room ID."""
    try:
        RoomID.parse(room_id)
    except InvalidIdentifier as exc:
        raise InvalidParam(f"{room_id} is not a legal room ID") from exc


def _content_str(facts: RoomFacts, event_type: str, key: str) -> str | None:
    value = facts.contents.get(event_type, {}).get(key)
    return value if isinstance(value, str) else None


def room_entry(facts: RoomFacts) -> dict[str, Any]:
    """A room as the room list shows it."""
    create = facts.contents.get("m.room.create", {})
    room_type = create.get("type")
    return {
        "room_id": facts.room_id,
        "name": facts.name,
        "canonical_alias": facts.canonical_alias,
        "joined_members": facts.joined_members,
        "joined_local_members": facts.joined_local_members,
        "version": facts.version,
        "creator": facts.creator,
        "encryption": _content_str(facts, "m.room.encryption", "algorithm"),
        "federatable": create.get("m.federate", True) is not False,
        "public": facts.public,
        "join_rules": _content_str(facts, "m.room.join_rules", "join_rule"),
        "guest_access": _content_str(facts, "m.room.guest_access", "guest_access"),
        "history_visibility": _content_str(
            facts, "m.room.history_visibility", "history_visibility"
        ),
        "state_events": facts.state_events,
        "room_type": room_type if isinstance(room_type, str) else None,
    }


def _sort_key(key: str) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    def sort_key(entry: dict[str, Any]) -> tuple[Any, ...]:
        value = entry[key]
        # rooms without the value after those with it; ties in room ID order
        return (value is None, "" if value is None else value, entry["room_id"])

    return sort_key


@dataclass(frozen=True)
class RoomListQuery:
    order_by: str = "name"
    backwards: bool = False
    search_term: str | None = None
    public_rooms: bool | None = None
    empty_rooms: bool | None = None


@dataclass(frozen=True)
class AdminMessagesPage:
    chunk: list[StoredEvent]
    start: str
    end: str | None


class RoomAdmin:
    def __init__(
        self,
        server_name: str,
        stores: Stores,
        creator: EventCreator,
        membership: MembershipService,
        directory: DirectoryService,
        history: RoomHistory,
        lanes: RoomLanes,
    ) -> None:
        self._server_name = server_name
        self._stores = stores
        self._creator = creator
        self._membership = membership
        self._directory = directory
        self._history = history
        self._lanes = lanes

    def _is_mine(self, user_id: str) -> bool:
        return user_id.endswith(":" + self._server_name)

    async def _facts(self, room_id: str) -> RoomFacts:
        found = await self._stores.room_admin.room_facts(self._server_name, room_id)
        if not found:
            raise NotFound("Room not found")
        return found[0]

    # -- reading -------------------------------------------------------------------------

    async def list_rooms(self, query: RoomListQuery) -> list[dict[str, Any]]:
        """Every room matching the query, in its order (the handler pages)."""
        if query.order_by not in ROOM_ORDERS:
            raise InvalidParam(
                "Unknown value for order_by: " + query.order_by
                if query.order_by
                else "order_by must not be empty"
            )
        entries = [
            room_entry(f) for f in await self._stores.room_admin.room_facts(self._server_name)
        ]
        if query.search_term:
            term = query.search_term
            lowered = term.lower()
            entries = [
                e
                for e in entries
                if lowered in (e["name"] or "").lower()
                or lowered in (e["canonical_alias"] or "").partition(":")[0].lower()
                or term in e["room_id"]
            ]
        if query.public_rooms is not None:
            entries = [e for e in entries if e["public"] == query.public_rooms]
        if query.empty_rooms is not None:
            entries = [e for e in entries if (e["joined_members"] == 0) == query.empty_rooms]
        key, largest_first = ROOM_ORDERS[query.order_by]
        present = [e for e in entries if e[key] is not None]
        missing = [e for e in entries if e[key] is None]
        present.sort(key=_sort_key(key), reverse=largest_first != query.backwards)
        missing.sort(key=lambda e: e["room_id"])
        return present + missing

    async def details(self, room_id: str) -> dict[str, Any]:
        facts = await self._facts(room_id)
        body = room_entry(facts)
        body["avatar"] = _content_str(facts, "m.room.avatar", "url")
        body["topic"] = _content_str(facts, "m.room.topic", "topic")
        body["joined_local_devices"] = await self._stores.room_admin.local_devices_in_room(
            room_id, self._server_name
        )
        body["forgotten"] = await self._stores.room_admin.forgotten_by_all_local(
            room_id, self._server_name
        )
        return body

    async def members(self, room_id: str) -> list[str]:
        await self._facts(room_id)
        members = await self._stores.state.current_members(room_id)
        return sorted(u for u, m in members.items() if m == "join")

    async def state(self, room_id: str) -> list[StoredEvent]:
        await self._facts(room_id)
        state = await self._stores.state.get_current_state(room_id)
        found = await self._stores.events.get_events(list(state.values()))
        return [found[e] for e in state.values() if e in found]

    async def messages(
        self,
        room_id: str,
        *,
        backwards: bool,
        from_token: str | None,
        to_token: str | None,
        limit: int,
        event_filter: RoomEventFilter | None,
    ) -> AdminMessagesPage:
        """A page of the room's timeline as /messages gives it, whatever the history
        visibility (and without backfilling: what this server holds)."""
        await self._facts(room_id)
        if from_token is not None:
            start = await self._history.boundary(room_id, from_token)
        elif backwards:
            start = await self._history.end_of_room(room_id)
        else:
            start = START_OF_ROOM
        to = await self._history.boundary(room_id, to_token) if to_token is not None else None
        start_token = from_token if from_token is not None else position_token(start)
        chunk: list[StoredEvent] = []
        position = start
        exhausted = False
        while len(chunk) < limit and not exhausted:
            fetch = max(limit * 2, 20)
            rows = await self._history.rows_from(room_id, position, backwards, fetch, to)
            consumed = 0
            for stored in rows:
                consumed += 1
                position = at(stored) if backwards else after(stored)
                if event_filter is None or event_filter.matches(stored.event.pdu):
                    chunk.append(stored)
                    if len(chunk) >= limit:
                        break
            exhausted = len(rows) < fetch and consumed == len(rows)
        end = None if exhausted and not chunk else position_token(position)
        return AdminMessagesPage(chunk, start_token, end)

    async def event_at_timestamp(self, room_id: str, ts: int, *, forwards: bool) -> StoredEvent:
        await self._facts(room_id)
        found = await self._stores.events.events_by_timestamp(
            room_id, ts, forwards=forwards, limit=1
        )
        if not found:
            direction = "forward" if forwards else "backward"
            raise NotFound(f"Unable to find event from {ts} in {direction} direction")
        return found[0]

    # -- blocking ------------------------------------------------------------------------

    async def set_blocked(self, admin_id: str, room_id: str, block: bool) -> None:
        if block:
            await self._stores.room_admin.block(room_id, admin_id)
        else:
            await self._stores.room_admin.unblock(room_id)

    async def blocked_by(self, room_id: str) -> str | None:
        return await self._stores.room_admin.blocked_by(room_id)

    # -- forward extremities ---------------------------------------------------------------

    async def forward_extremities(self, room_id: str) -> list[ForwardExtremity]:
        await self._facts(room_id)
        return await self._stores.room_admin.forward_extremities(room_id)

    async def delete_forward_extremities(self, room_id: str) -> int:
        """Keep only the room's latest forward extremity; how many were deleted."""
        await self._facts(room_id)
        async with self._lanes.lane(room_id):
            extremities = await self._stores.room_admin.forward_extremities(room_id)
            if len(extremities) <= 1:
                return 0
            keep = extremities[0].event_id
            remove = [e.event_id for e in extremities[1:]]

            async def write(txn: Transaction) -> None:
                await self._stores.events.set_forward_extremities_txn(
                    txn, room_id, remove, [], [keep]
                )

            await self._stores.db.run_transaction("admin_delete_forward_extremities", write)
            return len(remove)

    # -- membership ----------------------------------------------------------------------

    async def resolve_room(self, room_id_or_alias: str) -> str:
        if room_id_or_alias.startswith("#"):
            room_id, _servers = await self._directory.resolve_alias(room_id_or_alias)
            return room_id
        check_room_id(room_id_or_alias)
        return room_id_or_alias

    async def _local_user(self, user_id: str) -> None:
        if not self._is_mine(user_id):
            raise MatrixError(400, "M_UNKNOWN", "This endpoint can only be used with local users")
        if await self._stores.accounts.get_user(user_id) is None:
            raise NotFound("User not found")

    async def _join_rule(self, room_id: str) -> str | None:
        state = await self._stores.state.get_current_state(room_id)
        events = await self._creator.state_events(state)
        join_rules = events.get(("m.room.join_rules", ""))
        rule = join_rules.content.get("join_rule") if join_rules is not None else None
        return rule if isinstance(rule, str) else None

    async def force_join(self, admin_id: str, room_id_or_alias: str, user_id: str) -> str:
        """Join a local user to a room this server is in; a room that is not public is
        joined after an invite from the admin, who must then be able to invite."""
        await self._local_user(user_id)
        room_id = await self.resolve_room(room_id_or_alias)
        if not await self._stores.rooms.room_exists(room_id):
            raise NotFound("Room not found")
        if not await self._membership.joins_locally(room_id):
            raise NotFound("Room not found")
        if await self._membership.membership_of(room_id, user_id) == "join":
            return room_id
        if await self._join_rule(room_id) != "public":
            if await self._membership.membership_of(room_id, user_id) != "invite":
                await self._membership.change(admin_id, room_id, user_id, "invite")
        await self._membership.join(user_id, room_id)
        return room_id

    async def make_room_admin(self, room_id_or_alias: str, user_id: str) -> None:
        """Give ``user_id`` the power of the most powerful local member (who sends the
        change); join them if the room is public, else invite them."""
        room_id = await self.resolve_room(room_id_or_alias)
        await self._facts(room_id)
        if not self._is_mine(user_id):
            raise MatrixError(400, "M_UNKNOWN", "Only local users can be admins of this room")
        rv = await self._creator.room_version(room_id)
        state = await self._stores.state.get_current_state(room_id)
        events = await self._creator.state_events(state)
        create = events.get(("m.room.create", ""))
        levels_event = events.get(("m.room.power_levels", ""))
        levels = PowerLevels(create, levels_event, rv)
        members = await self._stores.state.current_members(room_id)
        candidates = [u for u, m in members.items() if m == "join" and self._is_mine(u)]
        if not candidates:
            raise MatrixError(400, "M_UNKNOWN", "No local admin user in room")
        admin = max(sorted(candidates), key=lambda u: levels.user_level(u))
        admin_level = levels.user_level(admin)
        if admin_level < levels.required_level("m.room.power_levels", True):
            raise MatrixError(400, "M_UNKNOWN", "No local admin user in room")
        if levels.user_level(user_id) < admin_level:
            # (never a creator of a room v12+: their power is already infinite)
            content = dict(levels_event.content) if levels_event is not None else {}
            raw_users = content.get("users")
            users = dict(raw_users) if isinstance(raw_users, dict) else {}
            if admin_level == float("inf"):
                # the admin is such a creator: give the most a user can hold in "users"
                users[user_id] = max([100, *(v for v in users.values() if isinstance(v, int))])
            else:
                users[user_id] = admin_level
            content["users"] = users
            await self._creator.send(room_id, "m.room.power_levels", admin, content, state_key="")
        membership = members.get(user_id)
        if membership == "join":
            return
        if await self._join_rule(room_id) == "public":
            await self._membership.join(user_id, room_id)
        elif membership != "invite":
            try:
                await self._membership.change(admin, room_id, user_id, "invite")
            except Forbidden as exc:
                raise MatrixError(400, "M_UNKNOWN", exc.message) from exc

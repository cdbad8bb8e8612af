"""Which events an application service is interested in (Application Service API:
"Pushing events"), decided as Synapse decides it.

An event interests a service when its sender, or the target of a membership event,
is a user the service is interested in (its sender or its user namespace); when the
room ID matches its room namespace; when a *local* joined member of the room is in
its user namespace; or when the room has an alias in its alias namespace (the
room's local aliases in the directory, and its canonical alias). Ephemeral data of
a room (typing, receipts) interests a service under the same room rules.

The member check reads the state store's cached members and is itself cached per
room until the room's membership changes; aliases are read per batch (``RoomAliases``)
so an alias created a moment ago counts at once.
"""

from __future__ import annotations

from homeserver.appservice.registration import ApplicationService
from homeserver.events import Event
from storage.stores import Stores

CANONICAL_ALIAS = "m.room.canonical_alias"
_MEMBER_CACHE_SIZE = 50_000


class RoomAliases:
    """The aliases of rooms, read once per delivery batch."""

    def __init__(self, stores: Stores) -> None:
        self._stores = stores
        self._aliases: dict[str, list[str]] = {}

    async def of(self, room_id: str) -> list[str]:
        found = self._aliases.get(room_id)
        if found is None:
            found = list(await self._stores.rooms.aliases_for_room(room_id))
            found += await self._canonical(room_id)
            self._aliases[room_id] = found
        return found

    async def _canonical(self, room_id: str) -> list[str]:
        state = await self._stores.state.get_current_state(room_id)
        event_id = state.get((CANONICAL_ALIAS, ""))
        if event_id is None:
            return []
        stored = await self._stores.events.get_event(event_id)
        if stored is None or stored.redacted_by is not None:
            return []
        content = stored.event.content
        aliases = [content.get("alias")]
        alt = content.get("alt_aliases")
        if isinstance(alt, list):
            aliases += alt
        return [a for a in aliases if isinstance(a, str)]


class ServiceInterest:
    """Interest of the registered services in events, rooms and users."""

    def __init__(self, server_name: str, stores: Stores) -> None:
        self._suffix = ":" + server_name
        self._stores = stores
        # (service, room) -> (room's member generation, a local namespace member joined)
        self._members: dict[tuple[str, str], tuple[int, bool]] = {}

    def is_local(self, user_id: str) -> bool:
        return user_id.endswith(self._suffix)

    def aliases(self) -> RoomAliases:
        """A fresh alias reader (one per batch)."""
        return RoomAliases(self._stores)

    async def in_event(
        self, service: ApplicationService, event: Event, aliases: RoomAliases
    ) -> bool:
        if service.is_interested_in_user(event.sender):
            return True
        if (
            event.type == "m.room.member"
            and event.state_key is not None
            and service.is_interested_in_user(event.state_key)
        ):
            return True
        return await self.in_room(service, event.room_id, aliases)

    async def in_room(
        self, service: ApplicationService, room_id: str, aliases: RoomAliases
    ) -> bool:
        if service.is_interested_in_room_id(room_id):
            return True
        if await self.has_local_member(service, room_id):
            return True
        if service.aliases:
            for alias in await aliases.of(room_id):
                if service.is_interested_in_alias(alias):
                    return True
        return False

    async def has_local_member(self, service: ApplicationService, room_id: str) -> bool:
        """Whether a local joined member of the room is the service's (cached until the
        room's membership changes)."""
        state = self._stores.state
        generation = state.member_generation(room_id)
        key = (service.id, room_id)
        cached = self._members.get(key)
        if cached is not None and cached[0] == generation:
            return cached[1]
        members = await state.current_members(room_id)
        found = any(
            membership == "join"
            and user_id.endswith(self._suffix)
            and service.is_interested_in_user(user_id)
            for user_id, membership in members.items()
        )
        if state.member_generation(room_id) == generation:
            if len(self._members) >= _MEMBER_CACHE_SIZE:
                self._members.clear()
            self._members[key] = (generation, found)
        return found

    async def in_user_presence(
        self, service: ApplicationService, user_id: str, aliases: RoomAliases
    ) -> bool:
        """Presence of ``user_id``: a user of the service, or one sharing a room the
        service is interested in."""
        if service.is_interested_in_user(user_id):
            return True
        rooms = await self._stores.state.rooms_for_user(user_id)
        for room_id, membership in rooms.items():
            if membership == "join" and await self.in_room(service, room_id, aliases):
                return True
        return False

"""Room aliases and the published room directory.

Client-server API: "Room aliases" (``/directory/room/{roomAlias}``,
``/rooms/{roomId}/aliases``), "Published room directory" (``/directory/list/room/{roomId}``,
``/publicRooms``), and the check of ``m.room.canonical_alias`` events (M_BAD_ALIAS).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from homeserver.appservice import ApplicationService, AppServiceClient, AppServices
from homeserver.appservice.service import exclusive_error
from homeserver.appservice.thirdparty import parse_instance_id
from homeserver.config import HomeserverConfig
from homeserver.config.sections import DirectoryRule, directory_allows
from homeserver.errors import BadJson, Forbidden, InvalidParam, MatrixError, NotFound
from homeserver.events import (
    Event,
    InvalidIdentifier,
    PowerLevels,
    RoomAlias,
    is_valid_server_name,
)
from homeserver.rooms.creator import EventCreator
from storage.stores import Stores

MAX_ALIAS_BYTES = 255
MAX_PUBLIC_ROOMS_LIMIT = 500

# Resolves an alias of another server (federation installs one): (room_id, servers) or None.
RemoteAliasLookup = Callable[[str], Awaitable[tuple[str, list[str]] | None]]


def parse_alias(alias: str) -> RoomAlias:
    """A room alias, or M_INVALID_PARAM."""
    try:
        parsed = RoomAlias.parse(alias)
    except InvalidIdentifier as exc:
        raise InvalidParam(f"Invalid room alias: {alias}") from exc
    if len(alias.encode()) > MAX_ALIAS_BYTES:
        raise InvalidParam("Room alias too long")
    return parsed


@dataclass(frozen=True)
class PublicRoomsQuery:
    limit: int | None = None
    since: str | None = None
    search_term: str | None = None
    # None: every room type; otherwise the wanted types (None in the list: no type)
    room_types: list[str | None] | None = None
    # the main list and every application service's lists
    include_all_networks: bool = False
    # one network's list of an application service: "<appservice id>|<network id>"
    third_party_instance_id: str | None = None

    def __post_init__(self) -> None:
        if self.include_all_networks and self.third_party_instance_id is not None:
            raise InvalidParam("third_party_instance_id can't be used with include_all_networks")
        if self.third_party_instance_id is not None:
            parse_instance_id(self.third_party_instance_id)

    @property
    def filtered(self) -> bool:
        """Whether it filters the rooms (only the POST forms of /publicRooms can)."""
        return self.search_term is not None or self.room_types is not None


# Asks another server for its published rooms (federation installs one).
RemotePublicRooms = Callable[[str, PublicRoomsQuery], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class DirectoryRules:
    """Who may make aliases and publish rooms: ``alias_creation_rules``,
    ``room_list_publication_rules`` and ``require_membership_for_aliases`` (Synapse's
    options and defaults: any alias, no publication unless a rule allows it)."""

    alias_creation: tuple[DirectoryRule, ...] = (DirectoryRule(action="allow"),)
    publication: tuple[DirectoryRule, ...] = ()
    require_membership_for_aliases: bool = True

    @classmethod
    def from_config(cls, config: HomeserverConfig) -> DirectoryRules:
        return cls(
            alias_creation=config.alias_creation_rules,
            publication=config.room_list_publication_rules,
            require_membership_for_aliases=config.require_membership_for_aliases,
        )

    def may_create_alias(self, user_id: str, room_id: str, alias: str) -> bool:
        return directory_allows(self.alias_creation, user_id, room_id, (alias,))

    def may_publish(self, user_id: str, room_id: str, aliases: list[str]) -> bool:
        return directory_allows(self.publication, user_id, room_id, tuple(aliases))


class DirectoryService:
    def __init__(
        self,
        server_name: str,
        stores: Stores,
        creator: EventCreator,
        rules: DirectoryRules | None = None,
        appservices: AppServices | None = None,
    ) -> None:
        self._server_name = server_name
        self._stores = stores
        self._creator = creator
        self.rules = rules or DirectoryRules()
        self._appservices = appservices or AppServices((), AppServiceClient())
        self.remote_alias_lookup: RemoteAliasLookup | None = None
        self.remote_public_rooms: RemotePublicRooms | None = None

    # -- aliases -------------------------------------------------------------------

    async def resolve_alias(self, alias: str) -> tuple[str, list[str]]:
        """GET /directory/room/{roomAlias}: the room ID and servers; M_NOT_FOUND if unknown."""
        parsed = parse_alias(alias)
        if parsed.domain != self._server_name:
            found = None
            if self.remote_alias_lookup is not None:
                found = await self.remote_alias_lookup(alias)
            if found is None:
                raise NotFound(f"Room alias {alias} not found")
            return found
        local = await self._stores.rooms.get_alias(alias)
        if local is None and self._appservices.interested_in_alias(alias):
            # An application service may make the alias when asked (Application
            # Service API "Querying": /_matrix/app/v1/rooms/{roomAlias}).
            if await self._appservices.query_alias_exists(alias):
                local = await self._stores.rooms.get_alias(alias)
        if local is None:
            raise NotFound(f"Room alias {alias} not found")
        return local[0], local[1]

    async def create_alias(
        self,
        user_id: str,
        alias: str,
        room_id: str,
        *,
        app_service: ApplicationService | None = None,
    ) -> None:
        """PUT /directory/room/{roomAlias}: the user must be joined to the room (unless
        ``require_membership_for_aliases`` is off, or a server admin asks), the alias
        creation rules must allow it, and no application service may hold the alias
        exclusively (M_EXCLUSIVE). An application service (``app_service``, acting
        with its as_token) makes aliases of its own namespace, wherever it is."""
        parsed = parse_alias(alias)
        if parsed.domain != self._server_name:
            raise InvalidParam("Room alias must be on this server")
        if not room_id.startswith("!"):
            raise InvalidParam(f"Invalid room ID: {room_id}")
        if app_service is not None:
            if not app_service.is_interested_in_alias(alias):
                raise exclusive_error("room alias")
            if not await self._stores.rooms.room_exists(room_id):
                raise NotFound("Unknown room")
        else:
            if not await self._stores.rooms.room_exists(room_id):
                raise NotFound("Unknown room")
            if (
                self.rules.require_membership_for_aliases
                and not await self._is_admin(user_id)
                and await self._membership(room_id, user_id) != "join"
            ):
                raise Forbidden("You must be in the room to create an alias for it")
            if not self.rules.may_create_alias(user_id, room_id, alias):
                raise Forbidden("This user is not permitted to create this alias")
            self._check_alias_modifiable(user_id, alias)
        if not await self._stores.rooms.create_alias(alias, room_id, user_id, [self._server_name]):
            raise MatrixError(409, "M_UNKNOWN", f"Room alias {alias} already exists")

    async def delete_alias(
        self, user_id: str, alias: str, *, app_service: ApplicationService | None = None
    ) -> None:
        """DELETE /directory/room/{roomAlias}: its creator, a room admin or a server
        admin, unless an application service holds the alias exclusively (M_EXCLUSIVE);
        an application service (``app_service``) deletes any alias of its namespace."""
        parsed = parse_alias(alias)
        if parsed.domain != self._server_name:
            raise InvalidParam("Can only delete aliases on this server")
        if app_service is not None and not app_service.is_interested_in_alias(alias):
            raise exclusive_error("room alias")
        found = await self._stores.rooms.get_alias(alias)
        if found is None:
            raise NotFound(f"Room alias {alias} not found")
        room_id, _servers, creator = found
        if app_service is not None:
            await self._stores.rooms.delete_alias(alias)
            return
        if creator != user_id and not await self.may_change_room_list(user_id, room_id):
            raise Forbidden("You may not delete this alias")
        self._check_alias_modifiable(user_id, alias)
        await self._stores.rooms.delete_alias(alias)
        await self._drop_from_canonical_alias(user_id, room_id, alias)

    def _check_alias_modifiable(self, user_id: str, alias: str) -> None:
        """M_EXCLUSIVE if a service holds ``alias`` exclusively (its sender may act)."""
        for service in self._appservices.interested_in_alias(alias):
            if service.sender == user_id:
                return
            if service.is_exclusive_alias(alias):
                raise exclusive_error("room alias")

    async def _drop_from_canonical_alias(self, user_id: str, room_id: str, alias: str) -> None:
        """Remove a deleted alias from m.room.canonical_alias, if the user may send it.

        The spec lets servers do this and still succeed when the user may not.
        """
        key = ("m.room.canonical_alias", "")
        event = (await self._state_events(room_id, [key])).get(key)
        if event is None:
            return
        content = dict(event.content)
        changed = False
        if content.get("alias") == alias:
            del content["alias"]
            changed = True
        alt = content.get("alt_aliases")
        if isinstance(alt, list) and alias in alt:
            content["alt_aliases"] = [a for a in alt if a != alias]
            changed = True
        if not changed:
            return
        try:
            await self._creator.send(
                room_id, "m.room.canonical_alias", user_id, content, state_key=""
            )
        except MatrixError:
            pass  # the alias is gone either way

    async def local_aliases(self, user_id: str, room_id: str) -> list[str]:
        """GET /rooms/{roomId}/aliases: for members, or anyone if the room is world_readable."""
        if not room_id.startswith("!"):
            raise InvalidParam(f"Invalid room ID: {room_id}")
        if not await self._stores.rooms.room_exists(room_id):
            raise Forbidden("You are not in this room")
        if await self._membership(room_id, user_id) != "join":
            state = await self._state_events(room_id, [("m.room.history_visibility", "")])
            visibility = state.get(("m.room.history_visibility", ""))
            if visibility is None or visibility.content.get("history_visibility") != (
                "world_readable"
            ):
                raise Forbidden("You are not in this room")
        return await self._stores.rooms.aliases_for_room(room_id)

    async def check_canonical_alias(self, room_id: str, content: Mapping[str, Any]) -> None:
        """An m.room.canonical_alias event may only name aliases pointing to this room.

        Aliases on other servers cannot be checked without federation and are accepted.
        """
        aliases: list[str] = []
        alias = content.get("alias")
        if alias is not None:
            if not isinstance(alias, str):
                raise BadJson("'alias' must be a string")
            aliases.append(alias)
        alt = content.get("alt_aliases")
        if alt is not None:
            if not isinstance(alt, list) or not all(isinstance(a, str) for a in alt):
                raise BadJson("'alt_aliases' must be an array of strings")
            aliases.extend(alt)
        for name in aliases:
            parsed = parse_alias(name)
            if parsed.domain != self._server_name:
                continue
            found = await self._stores.rooms.get_alias(name)
            if found is None or found[0] != room_id:
                raise MatrixError(
                    400, "M_BAD_ALIAS", f"The alias {name} does not point to this room"
                )

    # -- the published room directory -----------------------------------------------

    async def visibility(self, room_id: str) -> str:
        """GET /directory/list/room/{roomId}."""
        if not await self._stores.rooms.room_exists(room_id):
            raise NotFound("Room not found")
        return "public" if await self._stores.rooms.is_public(room_id) else "private"

    async def set_visibility(self, user_id: str, room_id: str, visibility: str) -> None:
        """PUT /directory/list/room/{roomId}: a room admin or a server admin."""
        if visibility not in ("public", "private"):
            raise InvalidParam("visibility must be 'public' or 'private'")
        if not await self._stores.rooms.room_exists(room_id):
            raise NotFound("Room not found")
        if not await self.may_change_room_list(user_id, room_id):
            raise Forbidden("You may not change this room's visibility in the directory")
        if visibility == "public" and not await self.may_publish(user_id, room_id):
            raise Forbidden("Not allowed to publish room")
        await self._stores.rooms.set_public(room_id, visibility == "public")

    async def may_publish(self, user_id: str, room_id: str) -> bool:
        """Whether ``room_list_publication_rules`` let the user publish the room, by
        its local aliases and canonical alias."""
        aliases = await self._stores.rooms.aliases_for_room(room_id)
        key = ("m.room.canonical_alias", "")
        canonical = (await self._state_events(room_id, [key])).get(key)
        if canonical is not None and isinstance(canonical.content.get("alias"), str):
            aliases = [*aliases, canonical.content["alias"]]
        return self.rules.may_publish(user_id, room_id, aliases)

    async def _is_admin(self, user_id: str) -> bool:
        user = await self._stores.accounts.get_user(user_id)
        return user is not None and user.is_admin

    async def may_change_room_list(self, user_id: str, room_id: str) -> bool:
        """A server admin, or a joined member who may send m.room.canonical_alias."""
        if await self._is_admin(user_id):
            return True
        if await self._membership(room_id, user_id) != "join":
            return False
        state = await self._state_events(
            room_id, [("m.room.create", ""), ("m.room.power_levels", "")]
        )
        levels = PowerLevels(
            state.get(("m.room.create", "")),
            state.get(("m.room.power_levels", "")),
            await self._creator.room_version(room_id),
        )
        return levels.user_level(user_id) >= levels.required_level("m.room.canonical_alias", True)

    async def public_rooms(
        self, query: PublicRoomsQuery, *, server: str | None = None
    ) -> dict[str, Any]:
        """GET/POST /publicRooms: the published rooms of this server, or of ``server``
        (asked over federation, s2s "Published Room Directory")."""
        if server is not None and server != self._server_name:
            if not is_valid_server_name(server):
                raise InvalidParam(f"Invalid server name: {server}")
            if self.remote_public_rooms is None:
                raise NotFound(f"Can't fetch the room directory of {server}")
            return await self.remote_public_rooms(server, query)
        return await self.local_public_rooms(query)

    async def local_public_rooms(self, query: PublicRoomsQuery) -> dict[str, Any]:
        """This server's published rooms, largest first, in offset-token pages (also
        served to other servers)."""
        start = _parse_since(query.since)
        limit = query.limit
        if limit is not None and limit < 0:
            raise InvalidParam("limit must not be negative")
        entries = []
        for room_id in await self._listed_room_ids(query):
            entry = await self._public_entry(room_id)
            if entry is None or not _wanted(entry, query):
                continue
            entries.append(entry)
        entries.sort(key=lambda e: (-e["num_joined_members"], e["room_id"]))
        size = (
            min(limit, MAX_PUBLIC_ROOMS_LIMIT) if limit else MAX_PUBLIC_ROOMS_LIMIT
        )  # 0: no limit
        page = entries[start : start + size]
        result: dict[str, Any] = {"chunk": page, "total_room_count_estimate": len(entries)}
        if start + size < len(entries):
            result["next_batch"] = f"o{start + size}"
        if start > 0:
            result["prev_batch"] = f"o{max(0, start - size)}"
        return result

    async def _listed_room_ids(self, query: PublicRoomsQuery) -> list[str]:
        """The main list; or one network's list of an application service; or (with
        ``include_all_networks``) the main list and every service's lists."""
        rooms = self._stores.rooms
        if query.third_party_instance_id is not None:
            appservice_id, network_id = parse_instance_id(query.third_party_instance_id)
            return await rooms.appservice_public_room_ids(appservice_id, network_id)
        room_ids = await rooms.public_room_ids()
        if query.include_all_networks:
            listed = set(room_ids)
            room_ids += [r for r in await rooms.appservice_public_room_ids() if r not in listed]
        return room_ids

    async def set_appservice_visibility(
        self, app_service: ApplicationService | None, network_id: str, room_id: str, visibility: str
    ) -> None:
        """PUT/DELETE /directory/list/appservice/{networkId}/{roomId}: an application
        service (with its as_token) publishes a room in its list for one network."""
        if app_service is None:
            raise Forbidden("Only application services can edit their published room lists")
        if visibility not in ("public", "private"):
            raise InvalidParam("visibility must be 'public' or 'private'")
        if not network_id:
            raise InvalidParam("Missing network ID")
        if not room_id.startswith("!"):
            raise InvalidParam(f"Invalid room ID: {room_id}")
        if visibility == "public" and not await self._stores.rooms.room_exists(room_id):
            raise NotFound("Room not found")
        await self._stores.rooms.set_appservice_public(
            app_service.id, network_id, room_id, visibility == "public"
        )

    async def _public_entry(self, room_id: str) -> dict[str, Any] | None:
        members = await self._stores.state.current_members(room_id)
        joined = sum(1 for m in members.values() if m == "join")
        if joined == 0:
            return None
        keys = [
            ("m.room.create", ""),
            ("m.room.name", ""),
            ("m.room.topic", ""),
            ("m.room.canonical_alias", ""),
            ("m.room.avatar", ""),
            ("m.room.join_rules", ""),
            ("m.room.history_visibility", ""),
            ("m.room.guest_access", ""),
        ]
        state = await self._state_events(room_id, keys)

        def field(event_type: str, key: str) -> Any:
            event = state.get((event_type, ""))
            return event.content.get(key) if event is not None else None

        entry: dict[str, Any] = {
            "room_id": room_id,
            "num_joined_members": joined,
            "world_readable": field("m.room.history_visibility", "history_visibility")
            == "world_readable",
            "guest_can_join": field("m.room.guest_access", "guest_access") == "can_join",
        }
        for name, value in (
            ("name", field("m.room.name", "name")),
            ("topic", field("m.room.topic", "topic")),
            ("canonical_alias", field("m.room.canonical_alias", "alias")),
            ("avatar_url", field("m.room.avatar", "url")),
            ("join_rule", field("m.room.join_rules", "join_rule")),
            ("room_type", field("m.room.create", "type")),
        ):
            if isinstance(value, str) and value:
                entry[name] = value
        alt = field("m.room.canonical_alias", "alt_aliases")
        entry["_aliases"] = [a for a in alt if isinstance(a, str)] if isinstance(alt, list) else []
        return entry

    async def _membership(self, room_id: str, user_id: str) -> str | None:
        member = (await self._state_events(room_id, [("m.room.member", user_id)])).get(
            ("m.room.member", user_id)
        )
        return None if member is None else member.membership

    async def _state_events(
        self, room_id: str, keys: list[tuple[str, str]]
    ) -> dict[tuple[str, str], Event]:
        state = await self._stores.state.get_current_state(room_id)
        return await self._creator.state_events({k: state[k] for k in keys if k in state})


def _parse_since(since: str | None) -> int:
    if since is None or since == "":
        return 0
    try:
        if not since.startswith("o"):
            raise ValueError(since)
        start = int(since[1:])
    except ValueError as exc:
        raise InvalidParam("Invalid pagination token") from exc
    if start < 0:
        raise InvalidParam("Invalid pagination token")
    return start


def _wanted(entry: dict[str, Any], query: PublicRoomsQuery) -> bool:
    """Apply the room type filter and the generic search term; drop internal fields."""
    aliases = entry.pop("_aliases", [])
    if query.room_types is not None and entry.get("room_type") not in query.room_types:
        return False
    term = (query.search_term or "").strip().lower()
    if not term:
        return True
    haystack = [entry.get("name"), entry.get("topic"), entry.get("canonical_alias"), *aliases]
    return any(isinstance(h, str) and term in h.lower() for h in haystack)

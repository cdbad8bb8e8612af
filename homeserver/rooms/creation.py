"""Creating rooms (client-server API: POST /createRoom), in the spec's order of events."""

from __future__ import annotations

import copy
import secrets
import string
from dataclasses import dataclass, field
from typing import Any

from homeserver.errors import BadJson, MatrixError
from homeserver.events import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.rooms.creator import EventCreator
from homeserver.rooms.membership import MembershipService
from storage.stores import Stores

PRESETS: dict[str, dict[str, str]] = {
    "private_chat": {
        "join_rule": "invite",
        "history_visibility": "shared",
        "guest_access": "can_join",
    },
    "trusted_private_chat": {
        "join_rule": "invite",
        "history_visibility": "shared",
        "guest_access": "can_join",
    },
    "public_chat": {
        "join_rule": "public",
        "history_visibility": "shared",
        "guest_access": "forbidden",
    },
}


@dataclass
class RoomCreationRequest:
    visibility: str = "private"
    room_alias_name: str | None = None
    name: str | None = None
    topic: str | None = None
    invite: list[str] = field(default_factory=list)
    room_version: str | None = None
    creation_content: dict[str, Any] = field(default_factory=dict)
    initial_state: list[dict[str, Any]] = field(default_factory=list)
    preset: str | None = None
    is_direct: bool = False
    power_level_content_override: dict[str, Any] | None = None


def _local_room_id(server_name: str) -> str:
    alphabet = string.ascii_letters
    return "!" + "".join(secrets.choice(alphabet) for _ in range(18)) + ":" + server_name


def default_power_levels(
    rv: RoomVersion, creator: str, preset: str, invitees: list[str]
) -> dict[str, Any]:
    """The default m.room.power_levels content of a new room (createRoom step 3)."""
    users: dict[str, int] = {}
    if not rv.privileged_creators:
        users[creator] = 100
        if preset == "trusted_private_chat":
            for invitee in invitees:
                users[invitee] = 100
    events = {
        "m.room.name": 50,
        "m.room.power_levels": 100,
        "m.room.history_visibility": 100,
        "m.room.canonical_alias": 50,
        "m.room.avatar": 50,
        "m.room.tombstone": 150 if rv.privileged_creators else 100,
        "m.room.server_acl": 100,
        "m.room.encryption": 100,
    }
    return {
        "users": users,
        "users_default": 0,
        "events": events,
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": 50 if preset == "public_chat" else 0,
        "historical": 100,
        "notifications": {"room": 50},
    }


class RoomCreationService:
    def __init__(
        self,
        server_name: str,
        stores: Stores,
        creator: EventCreator,
        membership: MembershipService,
        default_room_version: str,
    ) -> None:
        self._server_name = server_name
        self._stores = stores
        self._creator = creator
        self._membership = membership
        self._default_version = default_room_version

    async def create_room(
        self, user_id: str, request: RoomCreationRequest
    ) -> tuple[str, str | None]:
        """Create the room; return its ID and the alias it got (if any)."""
        version_id = request.room_version or self._default_version
        rv = KNOWN_ROOM_VERSIONS.get(version_id)
        if rv is None:
            raise MatrixError(
                400, "M_UNSUPPORTED_ROOM_VERSION", f"Unsupported room version {version_id}"
            )
        preset = request.preset or (
            "public_chat" if request.visibility == "public" else "private_chat"
        )
        if preset not in PRESETS:
            raise BadJson(f"Unknown preset {preset}")
        alias: str | None = None
        if request.room_alias_name is not None:
            alias = f"#{request.room_alias_name}:{self._server_name}"
            self.check_alias_shape(alias, request.room_alias_name)
            if await self._stores.rooms.get_alias(alias) is not None:
                raise MatrixError(400, "M_ROOM_IN_USE", "Room alias already taken")

        content = dict(request.creation_content)
        content.pop("creator", None)
        content["room_version"] = rv.identifier
        if not rv.implicit_room_creator:
            content["creator"] = user_id
        if rv.additional_creators and preset == "trusted_private_chat":
            extra = content.get("additional_creators", [])
            if not isinstance(extra, list):
                raise BadJson("additional_creators must be an array")
            merged = list(dict.fromkeys([*extra, *request.invite]))
            if merged:
                content["additional_creators"] = merged
        room_id = None if rv.room_id_from_create_event else _local_room_id(self._server_name)
        create = await self._creator.create_room_event(rv, user_id, content, room_id)
        room_id = create.event.room_id
        send = self._creator.send

        await self._membership.creator_join(user_id, room_id)

        pl = default_power_levels(rv, user_id, preset, request.invite)
        if request.power_level_content_override:
            for key, value in request.power_level_content_override.items():
                pl[key] = copy.deepcopy(value)
        await send(room_id, "m.room.power_levels", user_id, pl, state_key="")

        if alias is not None:
            if not await self._stores.rooms.create_alias(
                alias, room_id, user_id, [self._server_name]
            ):
                raise MatrixError(400, "M_ROOM_IN_USE", "Room alias already taken")
            await send(room_id, "m.room.canonical_alias", user_id, {"alias": alias}, state_key="")

        settings = PRESETS[preset]
        initial_keys = {(e["type"], e.get("state_key", "")) for e in request.initial_state}
        for event_type, key, value in (
            ("m.room.join_rules", "join_rule", settings["join_rule"]),
            ("m.room.history_visibility", "history_visibility", settings["history_visibility"]),
            ("m.room.guest_access", "guest_access", settings["guest_access"]),
        ):
            if (event_type, "") not in initial_keys:
                await send(room_id, event_type, user_id, {key: value}, state_key="")

        for state_event in request.initial_state:
            await send(
                room_id,
                state_event["type"],
                user_id,
                state_event["content"],
                state_key=state_event.get("state_key", ""),
            )
        if request.name is not None:
            await send(room_id, "m.room.name", user_id, {"name": request.name}, state_key="")
        if request.topic is not None:
            topic_content = {
                "topic": request.topic,
                "m.topic": {"m.text": [{"mimetype": "text/plain", "body": request.topic}]},
            }
            await send(room_id, "m.room.topic", user_id, topic_content, state_key="")
        for invitee in request.invite:
            await self._membership.change(
                user_id, room_id, invitee, "invite", is_direct=request.is_direct or None
            )
        if request.visibility == "public":
            await self._stores.rooms.set_public(room_id, True)
        return room_id, alias

    @staticmethod
    def check_alias_shape(alias: str, localpart: str) -> None:
        if not localpart or any(c in localpart for c in ":# \t\n") or len(alias.encode()) > 255:
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid room alias")

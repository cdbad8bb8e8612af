"""Creating rooms (client-server API: POST /createRoom), in the spec's order of events.

The request is checked whole before anything is stored: parameter shapes here,
then the planned event sequence, authorized in memory by
:mod:`homeserver.rooms.creation_plan`. A request implying an invalid room gets
400 M_INVALID_ROOM_STATE and leaves no trace.
"""

from __future__ import annotations

import copy
import secrets
import string
from dataclasses import dataclass, field
from typing import Any

from homeserver.errors import BadJson, Forbidden, MatrixError
from homeserver.events import (
    KNOWN_ROOM_VERSIONS,
    SCALAR_KEYS,
    RoomVersion,
    is_valid_user_id,
    parse_power_level,
)
from homeserver.retention.policy import RETENTION, validate_retention_content
from homeserver.rooms.creation_plan import InvalidRoomState, PlannedEvent, Step
from homeserver.rooms.creator import EventCreator
from homeserver.rooms.directory import DirectoryRules
from homeserver.rooms.membership import MembershipService
from storage.stores import Stores

# A preset's guest_access "forbidden" is the room's state without the event, so
# public_chat sends none (as Synapse does); the private presets send "can_join".
PRESETS: dict[str, dict[str, str | None]] = {
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
        "guest_access": None,
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


def local_room_id(server_name: str) -> str:
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
        directory_rules: DirectoryRules | None = None,
    ) -> None:
        self._server_name = server_name
        self._stores = stores
        self._creator = creator
        self._membership = membership
        self._default_version = default_room_version
        self._directory_rules = directory_rules or DirectoryRules()

    async def create_room(
        self, user_id: str, request: RoomCreationRequest
    ) -> tuple[str, str | None]:
        """Create the room; return its ID and the alias it got (if any).

        Everything the request implies is checked before anything is stored: the
        shapes of the parameters, then the whole event sequence, built and
        authorized in memory (:mod:`homeserver.rooms.creation_plan`).
        """
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
        invitees = list(dict.fromkeys(request.invite))
        if user_id in invitees:
            raise InvalidRoomState("You cannot invite yourself to the room you create")
        check_initial_state(user_id, request.initial_state)
        if request.power_level_content_override is not None:
            check_power_levels_override(request.power_level_content_override, rv)

        content = self._create_content(rv, user_id, preset, request.creation_content, invitees)
        room_id = None if rv.room_id_from_create_event else local_room_id(self._server_name)
        if alias is not None and not self._directory_rules.may_create_alias(
            user_id, room_id or "", alias
        ):
            # (a room ID made from the create event is not known yet: its glob sees "")
            raise Forbidden("Not allowed to create alias")
        planned = plan_events(rv, user_id, preset, request, invitees, alias)
        room_id = await self.create_from_plan(
            user_id, rv, content, room_id, planned, is_direct=request.is_direct
        )
        if request.visibility == "public" and self._directory_rules.may_publish(
            user_id, room_id, [alias] if alias is not None else []
        ):
            # as Synapse: a room the rules do not let the user publish is still made
            await self._stores.rooms.set_public(room_id, True)
        return room_id, alias

    async def create_from_plan(
        self,
        user_id: str,
        rv: RoomVersion,
        create_content: dict[str, Any],
        room_id: str | None,
        planned: list[PlannedEvent],
        *,
        is_direct: bool = False,
    ) -> str:
        """Check the whole event sequence in memory, then make the room: its create
        event (``room_id`` None: derived from it), then each planned event in turn.
        Returns the room ID. (createRoom, and a room upgrade's replacement room.)"""
        self._creator.check_new_room(rv, user_id, create_content, room_id, planned)
        create = await self._creator.create_room_event(rv, user_id, create_content, room_id)
        new_room_id = create.event.room_id
        for step in planned:
            await self._send(user_id, new_room_id, step, is_direct=is_direct)
        return new_room_id

    @staticmethod
    def _create_content(
        rv: RoomVersion,
        user_id: str,
        preset: str,
        creation_content: dict[str, Any],
        invitees: list[str],
    ) -> dict[str, Any]:
        content = dict(creation_content)
        content.pop("creator", None)
        content["room_version"] = rv.identifier
        if not rv.implicit_room_creator:
            content["creator"] = user_id
        if rv.additional_creators and preset == "trusted_private_chat":
            extra = content.get("additional_creators", [])
            if not isinstance(extra, list):
                raise BadJson("additional_creators must be an array")
            merged = list(dict.fromkeys([*extra, *invitees]))
            if merged:
                content["additional_creators"] = merged
        return content

    async def _send(
        self, user_id: str, room_id: str, step: PlannedEvent, *, is_direct: bool
    ) -> None:
        if step.step is Step.CREATOR_JOIN:
            await self._membership.creator_join(user_id, room_id)
        elif step.step is Step.INVITE:
            await self._membership.change(
                user_id, room_id, step.state_key, "invite", is_direct=is_direct or None
            )
        else:
            if step.step is Step.CANONICAL_ALIAS:
                alias = step.content["alias"]
                if not await self._stores.rooms.create_alias(
                    alias, room_id, user_id, [self._server_name]
                ):
                    raise MatrixError(400, "M_ROOM_IN_USE", "Room alias already taken")
            await self._creator.send(
                room_id, step.type, user_id, step.content, state_key=step.state_key
            )

    @staticmethod
    def check_alias_shape(alias: str, localpart: str) -> None:
        if not localpart or any(c in localpart for c in ":# \t\n") or len(alias.encode()) > 255:
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid room alias")


def plan_events(
    rv: RoomVersion,
    user_id: str,
    preset: str,
    request: RoomCreationRequest,
    invitees: list[str],
    alias: str | None,
) -> list[PlannedEvent]:
    """The events after m.room.create, in the order createRoom prescribes."""
    planned = [PlannedEvent("m.room.member", user_id, {"membership": "join"}, Step.CREATOR_JOIN)]
    pl = default_power_levels(rv, user_id, preset, invitees)
    for key, value in (request.power_level_content_override or {}).items():
        pl[key] = copy.deepcopy(value)
    planned.append(PlannedEvent("m.room.power_levels", "", pl))
    if alias is not None:
        planned.append(
            PlannedEvent("m.room.canonical_alias", "", {"alias": alias}, Step.CANONICAL_ALIAS)
        )
    settings = PRESETS[preset]
    initial_keys = {(e["type"], e.get("state_key", "")) for e in request.initial_state}
    for event_type, key, value in (
        ("m.room.join_rules", "join_rule", settings["join_rule"]),
        ("m.room.history_visibility", "history_visibility", settings["history_visibility"]),
        ("m.room.guest_access", "guest_access", settings["guest_access"]),
    ):
        if value is not None and (event_type, "") not in initial_keys:
            planned.append(PlannedEvent(event_type, "", {key: value}))
    for state_event in request.initial_state:
        planned.append(
            PlannedEvent(
                state_event["type"], state_event.get("state_key", ""), state_event["content"]
            )
        )
    if request.name is not None:
        planned.append(PlannedEvent("m.room.name", "", {"name": request.name}))
    if request.topic is not None:
        topic_content = {
            "topic": request.topic,
            "m.topic": {"m.text": [{"mimetype": "text/plain", "body": request.topic}]},
        }
        planned.append(PlannedEvent("m.room.topic", "", topic_content))
    for invitee in invitees:
        invite: dict[str, Any] = {"membership": "invite"}
        if request.is_direct:
            invite["is_direct"] = True
        planned.append(PlannedEvent("m.room.member", invitee, invite, Step.INVITE))
    return planned


def check_initial_state(user_id: str, initial_state: list[dict[str, Any]]) -> None:
    """``initial_state`` may not replace the create event or set others' membership;
    a retention policy in it is checked as one sent later (400 M_BAD_JSON)."""
    for entry in initial_state:
        if entry["type"] == "m.room.create":
            raise InvalidRoomState("initial_state cannot hold m.room.create: use creation_content")
        if entry["type"] == "m.room.member" and entry.get("state_key", "") != user_id:
            raise InvalidRoomState("initial_state cannot set another user's membership: use invite")
        if entry["type"] == RETENTION and isinstance(entry.get("content"), dict):
            validate_retention_content(entry["content"], is_state=True)


def check_power_levels_override(override: dict[str, Any], rv: RoomVersion) -> None:
    """Levels in ``power_level_content_override`` must be levels the room version reads
    (integers; integer strings before v10), ``users`` keyed by user IDs."""
    for key in SCALAR_KEYS:
        if key in override and parse_power_level(override[key], rv) is None:
            raise InvalidRoomState(f"power_level_content_override: {key} must be an integer")
    for key in ("users", "events", "notifications"):
        if key not in override:
            continue
        levels = override[key]
        if not isinstance(levels, dict):
            raise InvalidRoomState(f"power_level_content_override: {key} must be an object")
        for name, level in levels.items():
            if key == "users" and not is_valid_user_id(name):
                raise InvalidRoomState(
                    f"power_level_content_override: {name!r} in users is not a user ID"
                )
            if parse_power_level(level, rv) is None:
                raise InvalidRoomState(
                    f"power_level_content_override: {key}.{name} must be an integer"
                )

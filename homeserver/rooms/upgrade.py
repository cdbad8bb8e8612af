"""Room upgrades (client-server API: "Room Upgrades", ``POST /rooms/{roomId}/upgrade``).

The server behaviour the spec lists, in Synapse's order (where the spec leaves the
details to the implementation, Synapse's choices are followed):

1. the user must be allowed to send ``m.room.tombstone`` in the old room: the
   tombstone is built and authorized first, and persisted only once the new room
   stands (its ID is the new room's ``predecessor.event_id``);
2. the replacement room is created with ``predecessor``, the new ``room_version``,
   the old room's ``type`` and ``m.federate``; its first state is copied from the old
   room (:data:`COPIED_STATE`, the spec's recommended list; a space's children too),
   with the upgrading user raised to the power needed to send all of it; the old
   room's bans follow;
3. the tombstone goes into the old room;
4. local aliases move to the new room, and so does the canonical alias (split off
   the old room's ``m.room.canonical_alias``);
5. each local member's settings for the room come along (:mod:`homeserver.rooms.
   upgrade_transfer`), and a published room stays published under its new ID;
6. the old room's ``events_default`` and ``invite`` are raised to
   ``max(50, users_default + 1)`` where the upgrading user may, and the new room gets
   the old room's exact power levels back.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping
from typing import Any

from homeserver.errors import BadJson, MatrixError, NotFound
from homeserver.events import (
    KNOWN_ROOM_VERSIONS,
    Event,
    RoomVersion,
    is_valid_user_id,
)
from homeserver.rooms.creation import RoomCreationService, default_power_levels, local_room_id
from homeserver.rooms.creation_plan import PlannedEvent, Step
from homeserver.rooms.creator import EventCreator
from homeserver.rooms.upgrade_transfer import UpgradeTransfer
from storage.stores import Stores

logger = logging.getLogger(__name__)

TOMBSTONE_BODY = "This room has been replaced"
# State copied to the replacement room (client-server API "Room Upgrades", step 3; the
# same list as Synapse). The first three are sent first, in createRoom's order.
COPIED_STATE = (
    "m.room.join_rules",
    "m.room.history_visibility",
    "m.room.guest_access",
    "m.room.name",
    "m.room.topic",
    "m.room.avatar",
    "m.room.encryption",
    "m.room.server_acl",
)
# Defaults of the replacement room where the old room lacks one (createRoom's
# private_chat preset, as Synapse creates replacement rooms with it).
PRESET_STATE = {
    "m.room.join_rules": {"join_rule": "invite"},
    "m.room.history_visibility": {"history_visibility": "shared"},
    "m.room.guest_access": {"guest_access": "can_join"},
}
SPACE_CHILD = "m.space.child"
POWER_LEVELS = ("m.room.power_levels", "")
CANONICAL_ALIAS = ("m.room.canonical_alias", "")
SCALAR_LEVELS = (
    "users_default",
    "events_default",
    "state_default",
    "ban",
    "kick",
    "redact",
    "invite",
)
MAP_LEVELS = ("users", "events", "notifications")


def unsupported_version(version: str) -> MatrixError:
    return MatrixError(400, "M_UNSUPPORTED_ROOM_VERSION", f"Unsupported room version {version}")


class RoomUpgradeService:
    def __init__(
        self,
        server_name: str,
        stores: Stores,
        creator: EventCreator,
        room_creation: RoomCreationService,
        transfer: UpgradeTransfer,
    ) -> None:
        self._server_name = server_name
        self._stores = stores
        self._creator = creator
        self._room_creation = room_creation
        self._transfer = transfer
        self._in_progress: set[str] = set()

    async def upgrade(
        self,
        user_id: str,
        old_room_id: str,
        new_version: str,
        additional_creators: list[str] | None = None,
    ) -> str:
        """Replace ``old_room_id`` by a new room of ``new_version``; the new room's ID.

        400 M_UNSUPPORTED_ROOM_VERSION for a version this server does not know, 404
        for a room it does not know, 403 if the user may not send the tombstone.
        """
        rv = KNOWN_ROOM_VERSIONS.get(new_version)
        if rv is None:
            raise unsupported_version(new_version)
        for creator in additional_creators or []:
            if not is_valid_user_id(creator):
                raise BadJson(f"Invalid user ID in additional_creators: {creator}")
        if not await self._stores.rooms.room_exists(old_room_id):
            raise NotFound(f"Unknown room {old_room_id}")
        if old_room_id in self._in_progress:
            raise MatrixError(400, "M_UNKNOWN", "An upgrade for this room is currently in progress")
        self._in_progress.add(old_room_id)
        try:
            return await self._upgrade(user_id, old_room_id, rv, additional_creators or [])
        finally:
            self._in_progress.discard(old_room_id)

    async def _upgrade(
        self, user_id: str, old_room_id: str, rv: RoomVersion, additional_creators: list[str]
    ) -> str:
        old_state = await self._stores.state.get_current_state(old_room_id)
        old_events = await self._creator.state_events(old_state)
        old_create = old_events.get(("m.room.create", ""))
        if old_create is None:
            raise NotFound(f"Unknown room {old_room_id}")
        create_content = self._create_content(
            user_id, old_create, old_room_id, rv, additional_creators
        )
        creators = {user_id, *additional_creators} if rv.privileged_creators else set()
        planned = self._plan(user_id, rv, old_events, creators)
        tombstone_content = {"body": TOMBSTONE_BODY, "replacement_room": ""}
        if rv.room_id_from_create_event:
            # The new room's ID comes from its create event, which cannot cite the
            # tombstone then (the spec lets v12+ omit predecessor.event_id): check the
            # user may send it, make the room, then send it.
            async with self._creator.lanes.lane(old_room_id):
                await self._creator.build_unpersisted(
                    old_room_id,
                    "m.room.tombstone",
                    user_id,
                    {**tombstone_content, "replacement_room": "!replacement"},
                    state_key="",
                )
            new_room_id = await self._room_creation.create_from_plan(
                user_id, rv, create_content, None, planned
            )
            await self._creator.send(
                old_room_id,
                "m.room.tombstone",
                user_id,
                {**tombstone_content, "replacement_room": new_room_id},
                state_key="",
            )
        else:
            new_room_id = local_room_id(self._server_name)
            async with self._creator.lanes.lane(old_room_id):
                tombstone, context = await self._creator.build_unpersisted(
                    old_room_id,
                    "m.room.tombstone",
                    user_id,
                    {**tombstone_content, "replacement_room": new_room_id},
                    state_key="",
                )
                create_content["predecessor"]["event_id"] = tombstone.event_id
                await self._room_creation.create_from_plan(
                    user_id, rv, create_content, new_room_id, planned
                )
                await self._creator.persist_built(tombstone, context)
        if await self._stores.rooms.is_public(old_room_id):
            await self._stores.rooms.set_public(new_room_id, True)
        logger.info("room %s upgraded to %s (version %s)", old_room_id, new_room_id, rv.identifier)
        await self._copy_bans(user_id, old_room_id, new_room_id)
        # the old room's state as the tombstone left it
        after = await self._creator.state_events(
            await self._stores.state.get_current_state(old_room_id)
        )
        await self._move_canonical_alias(user_id, old_room_id, new_room_id, after)
        await self._transfer.transfer(old_room_id, new_room_id)
        await self._restrict_old_room(user_id, old_room_id, after.get(POWER_LEVELS))
        old_pl = after.get(POWER_LEVELS)
        if old_pl is not None:
            await self._creator.send(
                new_room_id,
                "m.room.power_levels",
                user_id,
                _without(fixed_power_levels(old_pl.content), creators),
                state_key="",
            )
        return new_room_id

    # -- the replacement room ---------------------------------------------------------

    def _create_content(
        self,
        user_id: str,
        old_create: Event,
        old_room_id: str,
        rv: RoomVersion,
        additional_creators: list[str],
    ) -> dict[str, Any]:
        content: dict[str, Any] = {
            "room_version": rv.identifier,
            "predecessor": {"room_id": old_room_id},
        }
        if not rv.implicit_room_creator:
            content["creator"] = user_id
        if rv.additional_creators and additional_creators:
            content["additional_creators"] = list(dict.fromkeys(additional_creators))
        if old_create.content.get("m.federate", True) is False:
            content["m.federate"] = False
        room_type = old_create.content.get("type")
        if room_type is not None:
            content["type"] = room_type
        return content

    def _plan(
        self,
        user_id: str,
        rv: RoomVersion,
        old_events: Mapping[tuple[str, str], Event],
        creators: set[str],
    ) -> list[PlannedEvent]:
        """The replacement room's events after its create event."""
        planned = [
            PlannedEvent("m.room.member", user_id, {"membership": "join"}, Step.CREATOR_JOIN)
        ]
        old_pl = old_events.get(POWER_LEVELS)
        if old_pl is None:
            levels = default_power_levels(rv, user_id, "private_chat", [])
        else:
            levels = _with_power_to_copy(fixed_power_levels(old_pl.content), user_id)
        planned.append(PlannedEvent("m.room.power_levels", "", _without(levels, creators)))
        for event_type in COPIED_STATE:
            old = old_events.get((event_type, ""))
            if old is not None:
                planned.append(PlannedEvent(event_type, "", copy.deepcopy(dict(old.content))))
            elif event_type in PRESET_STATE:
                planned.append(PlannedEvent(event_type, "", PRESET_STATE[event_type]))
        old_create = old_events.get(("m.room.create", ""))
        if old_create is not None and old_create.content.get("type") == "m.space":
            for (event_type, state_key), event in sorted(old_events.items()):
                if event_type == SPACE_CHILD and event.content:
                    planned.append(
                        PlannedEvent(event_type, state_key, copy.deepcopy(dict(event.content)))
                    )
        return planned

    async def _copy_bans(self, user_id: str, old_room_id: str, new_room_id: str) -> None:
        """The old room's bans, each as its own event (one the new room refuses is
        skipped: the upgrade stands)."""
        members = await self._stores.state.current_members(old_room_id)
        banned = sorted(u for u, m in members.items() if m == "ban")
        if not banned:
            return
        state = await self._stores.state.get_current_state(old_room_id)
        keys = [("m.room.member", u) for u in banned]
        events = await self._creator.state_events({k: state[k] for k in keys if k in state})
        for (_type, target), ban in sorted(events.items()):
            try:
                await self._creator.send(
                    new_room_id,
                    "m.room.member",
                    user_id,
                    dict(ban.content),
                    state_key=target,
                )
            except MatrixError as exc:
                logger.warning("ban of %s not copied to %s: %s", target, new_room_id, exc.message)

    async def _move_canonical_alias(
        self,
        user_id: str,
        old_room_id: str,
        new_room_id: str,
        old_events: Mapping[tuple[str, str], Event],
    ) -> None:
        """Local aliases point at the new room; the old room's canonical alias event
        keeps only other servers' aliases, the new room's gets the local ones."""
        await self._stores.rooms.move_aliases(old_room_id, new_room_id)
        event = old_events.get(CANONICAL_ALIAS)
        if event is None:
            return
        old_content = dict(event.content)
        new_content: dict[str, Any] = {}
        alias = old_content.get("alias")
        if isinstance(alias, str) and self._is_local_alias(alias):
            new_content["alias"] = alias
            del old_content["alias"]
        alt = old_content.get("alt_aliases")
        if isinstance(alt, list) and alt:
            local = [a for a in alt if isinstance(a, str) and self._is_local_alias(a)]
            kept = [a for a in alt if a not in local]
            new_content["alt_aliases"] = local
            if kept:
                old_content["alt_aliases"] = kept
            else:
                del old_content["alt_aliases"]
        for room_id, content in ((old_room_id, old_content), (new_room_id, new_content)):
            try:
                await self._creator.send(
                    room_id, "m.room.canonical_alias", user_id, content, state_key=""
                )
            except MatrixError as exc:
                logger.warning("canonical alias of %s not updated: %s", room_id, exc.message)

    def _is_local_alias(self, alias: str) -> bool:
        return alias.startswith("#") and alias.partition(":")[2] == self._server_name

    async def _restrict_old_room(
        self, user_id: str, old_room_id: str, old_pl: Event | None
    ) -> None:
        """Stop ordinary members from speaking and inviting in the old room: its
        ``events_default`` and ``invite`` to ``max(50, users_default + 1)``, if the
        upgrading user may change its power levels (otherwise they stay)."""
        if old_pl is None:
            return
        content = fixed_power_levels(old_pl.content)
        restricted = max(_level(content.get("users_default"), 0) + 1, 50)
        changed = False
        for key in ("invite", "events_default"):
            if _level(content.get(key), 0) < restricted:
                content[key] = restricted
                changed = True
        if not changed:
            return
        try:
            await self._creator.send(
                old_room_id, "m.room.power_levels", user_id, content, state_key=""
            )
        except MatrixError as exc:
            logger.warning("power levels of %s not restricted: %s", old_room_id, exc.message)


def _level(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _as_level(value: Any) -> int | None:
    """A power level as an integer: integers, integer strings and finite numbers (old
    room versions allow those), None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def fixed_power_levels(content: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of power levels content with every level an integer (what old room
    versions allowed as strings or floats is converted; what is no level at all is
    dropped), so it is valid in any room version; other keys are kept as they are."""
    fixed: dict[str, Any] = {}
    for key, value in content.items():
        if key in SCALAR_LEVELS:
            level = _as_level(value)
            if level is not None:
                fixed[key] = level
        elif key in MAP_LEVELS and isinstance(value, Mapping):
            levels = {name: _as_level(v) for name, v in value.items()}
            fixed[key] = {name: v for name, v in levels.items() if v is not None}
        elif key not in MAP_LEVELS:
            fixed[key] = copy.deepcopy(value)
    return fixed


def _with_power_to_copy(levels: dict[str, Any], user_id: str) -> dict[str, Any]:
    """``levels`` with the upgrading user raised, if needed, to the level that lets
    them send all of the copied state and the bans (their own level comes back with
    the final power levels event)."""
    levels = copy.deepcopy(levels)
    events = levels.get("events")
    needed = max(
        _level(levels.get("state_default"), 50),
        _level(levels.get("ban"), 50),
        max((v for v in events.values()), default=0) if isinstance(events, dict) else 0,
    )
    users = levels.setdefault("users", {})
    if _level(users.get(user_id), _level(levels.get("users_default"), 0)) < needed:
        users[user_id] = needed
    return levels


def _without(levels: dict[str, Any], creators: set[str]) -> dict[str, Any]:
    """``levels`` without the room creators in ``users`` (room version 12: creators
    have infinite power and may not be listed)."""
    users = levels.get("users")
    if not creators or not isinstance(users, dict):
        return levels
    return {**levels, "users": {u: v for u, v in users.items() if u not in creators}}

"""The authorisation rules of every room version.

Spec: the "Authorisation rules" section of each room version (rooms
``v1-auth-rules``, ``v3-auth-rules``, v6, v7, ``v8-auth-rules``, v10, v11, v12) and
s2s "Checks performed on receipt of a PDU".

Two entry points, as the receipt checks use them:

* :func:`check_auth_events` - the rules "Considering the event's auth_events"
  (duplicates, selection, rejected entries, create present, same room);
* :func:`check_auth` - every other rule, against a state map (the auth events'
  state, the state before the event, or the current state).

Both raise :class:`AuthError` whose ``rule`` is a stable name (see
:mod:`.membership_rules`); they return None when the event is allowed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .auth_selection import auth_types_for_event
from .errors import AuthError, InvalidIdentifier
from .event import Event
from .identifiers import UserID, is_valid_user_id, server_name_of
from .membership_rules import AuthState, check_member_event, membership_of
from .power_levels import SCALAR_KEYS, PowerLevel, PowerLevels, parse_power_level, room_creators
from .room_versions import KNOWN_ROOM_VERSIONS, RoomVersion


def check_auth_events(
    event: Event, auth_events: Sequence[Event], room_version: RoomVersion | None = None
) -> None:
    """Rules "Considering the event's auth_events" (v1-v11 rule 2, v12 rule 3)."""
    rv = room_version or event.room_version
    if event.type == "m.room.create":
        return
    allowed = auth_types_for_event(rv, event.type, event.sender, event.state_key, event.content)
    seen: set[tuple[str, str]] = set()
    has_create = False
    for ev in auth_events:
        key = ev.state_tuple
        if key is None:
            raise AuthError("auth_events.selection", f"{ev.event_id} is not a state event")
        if key in seen:
            raise AuthError("auth_events.duplicate", f"duplicate auth event for {key}")
        seen.add(key)
        if key not in allowed:
            raise AuthError("auth_events.selection", f"{key} is not an expected auth event")
        if ev.rejected_reason is not None:
            raise AuthError("auth_events.rejected", f"auth event {ev.event_id} was rejected")
        if ev.room_id != event.room_id:
            raise AuthError("auth_events.room_id", f"auth event {ev.event_id} is in another room")
        has_create = has_create or key == ("m.room.create", "")
    if rv.create_event_in_auth_events and not has_create:
        raise AuthError("auth_events.no_create", "no m.room.create among the auth events")


def auth_state_from_events(
    auth_events: Sequence[Event], create_event: Event | None = None
) -> dict[tuple[str, str], Event]:
    """A state map of ``auth_events`` (plus the v12 create event, which is not cited)."""
    state = {ev.state_tuple: ev for ev in auth_events if ev.state_tuple is not None}
    if create_event is not None:
        state[("m.room.create", "")] = create_event
    return state


def check_auth(event: Event, state: AuthState, room_version: RoomVersion | None = None) -> None:
    """Apply the authorisation rules to ``event`` against ``state``.

    ``state`` maps ``(type, state_key)`` to events and must hold every key from
    :func:`auth_types_for_event` that exists; from v12 it must also hold the create
    event, which events no longer cite. Raises :class:`AuthError` on rejection.
    """
    rv = room_version or event.room_version
    if event.type == "m.room.create":
        _check_create(event, rv)
        return
    create = state.get(("m.room.create", ""))
    if create is None:
        raise AuthError("auth_events.no_create", "no m.room.create event in the state")
    if rv.room_id_from_create_event:
        if create.rejected_reason is not None or event.room_id != "!" + create.event_id[1:]:
            raise AuthError("room_id.create", "room_id is not an accepted create event's ID")
    elif create.room_id != event.room_id:
        raise AuthError("auth_events.room_id", "create event is in another room")
    sender_server = _server(event.sender, "sender")
    if create.content.get("m.federate") is False and sender_server != _server(
        create.sender, "create sender"
    ):
        raise AuthError("federate", "room is not federated and sender is on another server")
    if rv.aliases_auth_rule and event.type == "m.room.aliases":
        if event.state_key is None:
            raise AuthError("aliases.state_key", "m.room.aliases has no state_key")
        if event.state_key != sender_server:
            raise AuthError("aliases.domain", "sender's server does not match state_key")
        return
    levels = PowerLevels(create, state.get(("m.room.power_levels", "")), rv)
    if event.type == "m.room.member":
        check_member_event(event, state, create, levels, rv)
        return
    if membership_of(state, event.sender) != "join":
        raise AuthError("sender.joined", "sender is not joined to the room")
    sender_level = levels.user_level(event.sender)
    if event.type == "m.room.third_party_invite":
        if sender_level >= levels.invite:
            return
        raise AuthError("third_party_invite.level", "sender below the invite level")
    if levels.required_level(event.type, event.is_state) > sender_level:
        raise AuthError("event.level", f"sender cannot send {event.type}")
    sk = event.state_key
    if sk is not None and sk.startswith("@") and sk != event.sender:
        raise AuthError("state_key.user", "state_key names another user")
    if event.type == "m.room.power_levels":
        old = state.get(("m.room.power_levels", ""))
        _check_power_levels(event, old, create, sender_level, rv)
        return
    if rv.redaction_auth_rule and event.type == "m.room.redaction":
        if sender_level >= levels.redact:
            return
        redacts = event.redacts
        if redacts is not None and _domain_or_none(redacts) == _domain_or_none(event.event_id):
            return
        raise AuthError("redaction.level", "sender below the redact level, other server's event")


def _server(user_id: str, what: str) -> str:
    try:
        return server_name_of(user_id)
    except InvalidIdentifier as exc:
        raise AuthError("identifier", f"invalid {what}: {user_id!r}") from exc


def _domain_or_none(identifier: str) -> str | None:
    _, sep, domain = identifier.partition(":")
    return domain if sep else None


def _check_create(event: Event, rv: RoomVersion) -> None:
    """Rule 1: the ``m.room.create`` event."""
    if event.prev_event_ids or event.get("prev_events"):
        raise AuthError("create.prev_events", "m.room.create has prev_events")
    if rv.room_id_from_create_event:
        if "room_id" in event.pdu:
            raise AuthError("create.room_id", "m.room.create must not have a room_id")
    else:
        room_domain = _domain_or_none(event.room_id)
        if room_domain is None or room_domain != _domain_or_none(event.sender):
            raise AuthError("create.room_id", "room_id domain does not match sender domain")
    version = event.content.get("room_version", "1")
    if "room_version" in event.content and (
        not isinstance(version, str) or version not in KNOWN_ROOM_VERSIONS
    ):
        raise AuthError("create.room_version", f"unknown room version {version!r}")
    if rv.additional_creators and "additional_creators" in event.content:
        extra = event.content["additional_creators"]
        if not isinstance(extra, list) or not all(_valid_sender_id(u) for u in extra):
            raise AuthError("create.additional_creators", "additional_creators is invalid")
    if not rv.implicit_room_creator and "creator" not in event.content:
        raise AuthError("create.creator", "m.room.create has no creator")


def _valid_sender_id(value: Any) -> bool:
    """The user ID validation applied to ``sender`` (historical grammar, <= 255 bytes)."""
    return is_valid_user_id(value)


def _check_power_levels(
    event: Event,
    old_event: Event | None,
    create: Event,
    sender_level: PowerLevel,
    rv: RoomVersion,
) -> None:
    """Rule "If type is m.room.power_levels" (v1 rule 10, v6-v11 rule 9, v12 rule 10)."""
    content = event.content
    if rv.integer_only_power_levels:
        for key in SCALAR_KEYS:
            if key in content and parse_power_level(content[key], rv) is None:
                raise AuthError("power_levels.integers", f"{key} is not an integer")
        for key in ("events", "notifications"):
            if key in content:
                value = content[key]
                if not isinstance(value, Mapping) or any(
                    parse_power_level(v, rv) is None for v in value.values()
                ):
                    raise AuthError("power_levels.integers", f"{key} has non-integer values")
    users = content.get("users", {})
    if not isinstance(users, Mapping):
        raise AuthError("power_levels.users", "users is not an object")
    for user_id, level in users.items():
        if not _valid_pl_user(user_id) or parse_power_level(level, rv) is None:
            raise AuthError("power_levels.users", f"invalid users entry {user_id!r}")
    if rv.privileged_creators:
        creators = room_creators(create, rv)
        if any(u in creators for u in users):
            raise AuthError("power_levels.creators", "room creators cannot be in users")
    if old_event is None:
        return
    old = old_event.content
    for key in SCALAR_KEYS:
        before = _level_or_none(old, key, rv)
        after = _level_or_none(content, key, rv)
        if before == after:
            continue
        if before is not None and before > sender_level:
            raise AuthError("power_levels.change", f"cannot change {key} from above own level")
        if after is not None and after > sender_level:
            raise AuthError("power_levels.change", f"cannot set {key} above own level")
    maps = ("events", "notifications") if rv.notifications_power_levels else ("events",)
    for name in maps:
        _check_map_changes(name, old.get(name), content.get(name), sender_level, rv, False, "")
    _check_map_changes("users", old.get("users"), users, sender_level, rv, True, event.sender)


def _valid_pl_user(user_id: Any) -> bool:
    try:
        UserID.parse(user_id)
    except (InvalidIdentifier, TypeError):
        return False
    return True


def _level_or_none(content: Mapping[str, Any], key: str, rv: RoomVersion) -> int | None:
    return parse_power_level(content[key], rv) if key in content else None


def _as_levels(value: Any, rv: RoomVersion) -> dict[str, int]:
    if not isinstance(value, Mapping):
        return {}
    out: dict[str, int] = {}
    for k, v in value.items():
        parsed = parse_power_level(v, rv)
        if parsed is not None:
            out[k] = parsed
    return out


def _check_map_changes(
    name: str,
    old_value: Any,
    new_value: Any,
    sender_level: PowerLevel,
    rv: RoomVersion,
    is_users: bool,
    sender: str,
) -> None:
    """Entries changed/removed must not be above (users: at or above) the sender's level;
    entries added/changed must not be above it."""
    before = _as_levels(old_value, rv)
    after = _as_levels(new_value, rv)
    for key in before.keys() | after.keys():
        old_level = before.get(key)
        new_level = after.get(key)
        if old_level == new_level:
            continue
        if old_level is not None:
            if is_users:
                if key != sender and old_level >= sender_level:
                    raise AuthError(
                        "power_levels.users_change", f"cannot change {key}: level not below own"
                    )
            elif old_level > sender_level:
                raise AuthError(f"power_levels.{name}_change", f"cannot change {name}.{key}")
        if new_level is not None and new_level > sender_level:
            raise AuthError(
                f"power_levels.{name}_change", f"cannot set {name}.{key} above own level"
            )

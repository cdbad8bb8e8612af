"""The events of a new room, checked in memory before any of them is stored.

Client-server API ``POST /createRoom``: the request implies a sequence of events (the
create event, the creator's join, power levels, canonical alias, the preset's
events, ``initial_state``, name and topic, invites). :func:`check_planned_room`
builds each one as it will be sent (same room version, sender, content and order,
hashed and signed) and applies the room version's authorization rules against the
state the events before it make. A sequence that would fail part-way is refused
with 400 M_INVALID_ROOM_STATE before anything is persisted, so a bad request never
leaves a half-built room behind.

Pure: it imports the event core and the error type only, and does no IO.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from homeserver.errors import MatrixError, TooLarge
from homeserver.events import (
    AuthError,
    Event,
    EventBuilder,
    EventValidationError,
    RoomVersion,
    SigningKey,
    canonical_json,
    check_auth,
    validate_pdu,
)


class InvalidRoomState(MatrixError):
    """400 M_INVALID_ROOM_STATE: the state the createRoom parameters imply is invalid."""

    def __init__(self, message: str) -> None:
        super().__init__(400, "M_INVALID_ROOM_STATE", message)


class Step(Enum):
    """How a planned event is sent once the plan has been checked."""

    STATE = "state"  # a state event sent as it is
    CREATOR_JOIN = "creator_join"  # the creator's join (profile fields added)
    CANONICAL_ALIAS = "canonical_alias"  # the alias is created just before it
    INVITE = "invite"  # an invite (profile fields, stripped state, remote signing)


@dataclass(frozen=True)
class PlannedEvent:
    type: str
    state_key: str
    content: Mapping[str, Any]
    step: Step = Step.STATE


def check_planned_room(
    room_version: RoomVersion,
    sender: str,
    create_content: Mapping[str, Any],
    room_id: str | None,
    planned: Sequence[PlannedEvent],
    *,
    server_name: str,
    signing_key: SigningKey,
    origin_server_ts: int,
    max_event_bytes: int,
) -> None:
    """Build and authorize the create event and then every planned event, in order.

    ``room_id`` is None for room versions whose room ID derives from the create
    event. Raises 400 M_INVALID_ROOM_STATE naming the first event the rules reject,
    413 M_TOO_LARGE for an event over ``max_event_bytes``.
    """
    create = EventBuilder(
        room_version, "m.room.create", sender, create_content, room_id=room_id, state_key=""
    ).build(
        prev_event_ids=[],
        auth_event_ids=[],
        depth=1,
        server_name=server_name,
        signing_key=signing_key,
        origin_server_ts=origin_server_ts,
    )
    _check(create, {}, room_version, max_event_bytes)
    state: dict[tuple[str, str], Event] = {("m.room.create", ""): create}
    previous = create
    for depth, step in enumerate(planned, start=2):
        builder = EventBuilder(
            room_version,
            step.type,
            sender,
            step.content,
            room_id=create.room_id,
            state_key=step.state_key,
        )
        auth_types = builder.auth_types()
        event = builder.build(
            prev_event_ids=[previous.event_id],
            auth_event_ids=[state[k].event_id for k in sorted(auth_types) if k in state],
            depth=depth,
            server_name=server_name,
            signing_key=signing_key,
            origin_server_ts=origin_server_ts,
        )
        _check(event, state, room_version, max_event_bytes)
        state[(step.type, step.state_key)] = event
        previous = event


def _check(
    event: Event,
    state: Mapping[tuple[str, str], Event],
    room_version: RoomVersion,
    max_event_bytes: int,
) -> None:
    what = f"{event.type} ({event.state_key!r})" if event.is_state else event.type
    if len(canonical_json(event.pdu)) > max_event_bytes:
        raise TooLarge(f"The {what} event would be larger than {max_event_bytes} bytes")
    try:
        validate_pdu(dict(event.pdu), room_version)
        check_auth(event, state)
    except EventValidationError as exc:
        raise InvalidRoomState(f"The {what} event would be invalid: {exc}") from exc
    except AuthError as exc:
        raise InvalidRoomState(
            f"The {what} event would not be allowed ({exc.rule}): {exc}"
        ) from exc

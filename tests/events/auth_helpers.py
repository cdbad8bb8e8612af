"""Helpers for the authorisation rule tests."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.events import AuthError, Event, check_auth, sign_event_pdu

from .room_builder import RoomBuilder, signing_key_for

ALICE = "@alice:a.test"
BOB = "@bob:b.test"
CAROL = "@carol:c.test"
DAVE = "@dave:d.test"


def rejected(room: RoomBuilder, event: Event, rule: str | None = None) -> None:
    with pytest.raises(AuthError) as info:
        check_auth(event, room.auth_state_for(event))
    if rule is not None:
        assert info.value.rule == rule, info.value


def allowed(room: RoomBuilder, event: Event) -> None:
    check_auth(event, room.auth_state_for(event))


def make(room: RoomBuilder, *args: Any, **kwargs: Any) -> Event:
    """An event built on the room's head without auth-checking or applying it."""
    fork = room.fork()
    return fork.add(*args, check=False, **kwargs)


def member(room: RoomBuilder, sender: str, target: str, membership: str, **extra: Any) -> Event:
    return make(room, "m.room.member", sender, {"membership": membership, **extra}, target)


def cosign(event: Event, server: str) -> Event:
    """The event with an extra signature from ``server`` (same event ID)."""
    pdu = dict(event.pdu)
    pdu["signatures"] = {k: dict(v) for k, v in event.signatures.items()}
    sign_event_pdu(pdu, event.room_version, server, signing_key_for(server))
    return Event(pdu, event.room_version, event_id=event.event_id)

"""Build signed test rooms in a line: create, joins, power levels, messages, forks.

Reusable by later issues::

    room = RoomBuilder(KNOWN_ROOM_VERSIONS["12"])
    room.create_room(public=True)          # create, creator join, power levels, join rules
    room.join("@bob:b.test")
    fork = room.fork()                     # shares events and keys, own state and head
    fork.ban(room.creator, "@bob:b.test")
    room.message("@bob:b.test", "hi")

Every server gets a deterministic ed25519 key (``ed25519:1``); ``key_lookup`` serves
them for signature checks. Events are auth-checked against the builder's state as
they are made (pass ``check=False`` to make events the rules reject).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from signedjson.key import decode_signing_key_base64
from signedjson.types import SigningKey

from homeserver.events import (
    Event,
    EventBuilder,
    RoomVersion,
    ServerKey,
    auth_types_for_event,
    check_auth,
    encode_base64,
    server_name_of,
)

StateKey = tuple[str, str]

_V1_EVENT_IDS = itertools.count(1)


@functools.cache
def signing_key_for(server_name: str) -> SigningKey:
    """The deterministic test signing key of ``server_name`` (key ID ``ed25519:1``)."""
    seed = hashlib.sha256(server_name.encode()).digest()
    return decode_signing_key_base64("ed25519", "1", encode_base64(seed))


@functools.cache
def key_lookup(server_name: str, key_id: str) -> ServerKey | None:
    """A key lookup serving every server's test key."""
    if key_id != "ed25519:1":
        return None
    return ServerKey(signing_key_for(server_name).verify_key)


class RoomBuilder:
    """A linear (or forked) room history with its current state."""

    def __init__(
        self,
        room_version: RoomVersion,
        creator: str = "@alice:a.test",
        *,
        events: dict[str, Event] | None = None,
        room_id: str | None = None,
    ) -> None:
        self.room_version = room_version
        self.creator = creator
        self.events: dict[str, Event] = events if events is not None else {}
        self.state: dict[StateKey, str] = {}
        self.head: list[str] = []
        self.room_id = room_id or f"!room:{server_name_of(creator)}"
        self.clock = 1_000_000

    # -- plumbing --------------------------------------------------------------

    def fork(self) -> RoomBuilder:
        """A builder continuing from the same point: shared events, own state/head."""
        other = RoomBuilder(
            self.room_version, self.creator, events=self.events, room_id=self.room_id
        )
        other.state = dict(self.state)
        other.head = list(self.head)
        other.clock = self.clock
        return other

    def state_events(self) -> dict[StateKey, Event]:
        return {k: self.events[v] for k, v in self.state.items()}

    def auth_state_for(self, event: Event) -> dict[StateKey, Event]:
        keys = auth_types_for_event(
            self.room_version, event.type, event.sender, event.state_key, event.content
        )
        if self.room_version.room_id_from_create_event:
            keys.add(("m.room.create", ""))
        return {k: self.events[self.state[k]] for k in keys if k in self.state}

    def add(
        self,
        event_type: str,
        sender: str,
        content: Mapping[str, Any],
        state_key: str | None = None,
        *,
        prev: Sequence[str] | None = None,
        check: bool = True,
        redacts: str | None = None,
        ts: int | None = None,
    ) -> Event:
        """Make, sign, auth-check and apply an event on top of ``prev`` (default: head)."""
        rv = self.room_version
        builder = EventBuilder(
            room_version=rv,
            type=event_type,
            sender=sender,
            content=content,
            room_id=None
            if (rv.room_id_from_create_event and event_type == "m.room.create")
            else self.room_id,
            state_key=state_key,
            redacts=redacts,
        )
        auth_ids = sorted(self.state[k] for k in builder.auth_types() if k in self.state)
        prev_ids = list(self.head if prev is None else prev)
        depth = max((self.events[p].depth for p in prev_ids), default=0) + 1
        self.clock += 1
        server = server_name_of(sender)
        ref_hashes = {
            e: encode_base64(self.events[e].reference_hash()) for e in prev_ids + auth_ids
        }
        event = builder.build(
            prev_event_ids=prev_ids,
            auth_event_ids=auth_ids,
            depth=depth,
            server_name=server,
            signing_key=signing_key_for(server),
            origin_server_ts=self.clock if ts is None else ts,
            reference_hashes=ref_hashes,
            v1_event_id=f"${next(_V1_EVENT_IDS)}:{server}",
        )
        if event_type == "m.room.create" and rv.room_id_from_create_event:
            self.room_id = event.room_id
        if check:
            check_auth(event, self.auth_state_for(event))
        self.events[event.event_id] = event
        self.head = [event.event_id]
        if state_key is not None:
            self.state[(event_type, state_key)] = event.event_id
        return event

    # -- room operations ---------------------------------------------------------

    def create(self, **extra: Any) -> Event:
        content: dict[str, Any] = {"room_version": self.room_version.identifier, **extra}
        if not self.room_version.implicit_room_creator:
            content["creator"] = self.creator
        return self.add("m.room.create", self.creator, content, "")

    def create_room(
        self, *, public: bool = True, users: Mapping[str, int] | None = None, **create: Any
    ) -> RoomBuilder:
        """create, creator join, power levels (creator 100 before v12), join rules."""
        self.create(**create)
        self.join(self.creator)
        levels: dict[str, int] = dict(users or {})
        if not self.room_version.privileged_creators:
            levels.setdefault(self.creator, 100)
        self.power_levels(self.creator, users=levels)
        self.join_rules(self.creator, "public" if public else "invite")
        return self

    def member(
        self, sender: str, target: str, membership: str, *, check: bool = True, **extra: Any
    ) -> Event:
        content = {"membership": membership, **extra}
        return self.add("m.room.member", sender, content, target, check=check)

    def join(self, user: str, *, check: bool = True, **extra: Any) -> Event:
        return self.member(user, user, "join", check=check, **extra)

    def invite(self, sender: str, target: str) -> Event:
        return self.member(sender, target, "invite")

    def leave(self, user: str) -> Event:
        return self.member(user, user, "leave")

    def kick(self, sender: str, target: str) -> Event:
        return self.member(sender, target, "leave")

    def ban(self, sender: str, target: str) -> Event:
        return self.member(sender, target, "ban")

    def power_levels(self, sender: str, **content: Any) -> Event:
        return self.add("m.room.power_levels", sender, content, "")

    def join_rules(self, sender: str, rule: str, **extra: Any) -> Event:
        return self.add("m.room.join_rules", sender, {"join_rule": rule, **extra}, "")

    def topic(self, sender: str, topic: str) -> Event:
        return self.add("m.room.topic", sender, {"topic": topic}, "")

    def message(self, sender: str, body: str) -> Event:
        return self.add("m.room.message", sender, {"msgtype": "m.text", "body": body})

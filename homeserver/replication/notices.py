"""The notices one process publishes for the others (over Redis) and their wire form.

Every notice names the instance that wrote it. Stream notices carry the stream
position of the change; a reader applies a stream notice only once its view of that
stream (every writer's persisted position) has reached the position, so a woken
long-poll always finds the change readable. Cache notices are applied on receipt:
they only drop entries, which are read again from the database.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

# The streams of the sync token that writers announce, under Synapse's
# ``stream_writers`` names where Synapse has one.
EVENTS = "events"
RECEIPTS = "receipts"
TYPING = "typing"
PRESENCE = "presence"
ACCOUNT_DATA = "account_data"
TO_DEVICE = "to_device"
DEVICE_LISTS = "device_lists"
PUSH_RULES = "push_rules"
STREAMS = (EVENTS, RECEIPTS, TYPING, PRESENCE, ACCOUNT_DATA, TO_DEVICE, DEVICE_LISTS, PUSH_RULES)


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """``instance`` has persisted every position of ``stream`` it allocated up to
    ``position``, and will never again allocate one at or below it."""

    stream: str
    instance: str
    position: int


@dataclass(frozen=True, slots=True)
class RoomEventNotice:
    """A room event an event writer committed at ``position`` of the events stream
    (backfilled history is not announced). ``users`` are the users it touches directly
    (a membership's target, an invite's invitee ...). ``redacts``: the event a
    redaction redacts (its cached copies are stale)."""

    instance: str
    room_id: str
    position: int
    event_id: str
    type: str
    sender: str
    state_key: str | None
    users: tuple[str, ...] = ()
    redacts: str | None = None


@dataclass(frozen=True, slots=True)
class UserStreamNotice:
    """A change at ``position`` of a per-user stream (account data, to-device, device
    lists, push rules, presence) for ``users``."""

    instance: str
    stream: str
    position: int
    users: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RoomsStreamNotice:
    """A change at ``position`` of a per-room ephemeral stream (receipts, typing) in
    ``rooms``; ``data`` carries what readers cannot read from the database (typing:
    ``{room_id: [user_id, ...]}``)."""

    instance: str
    stream: str
    position: int
    rooms: tuple[str, ...]
    data: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class CacheNotice:
    """Entries of a named cache are stale everywhere (``keys`` empty: all of them)."""

    instance: str
    cache: str
    keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FederationQueued:
    """``instance`` queued PDUs or EDUs (in the database) for ``destinations``: their
    federation sender drains them."""

    instance: str
    destinations: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RemoteServerUp:
    """``destinations`` just talked to ``instance`` (or an admin reset their
    backoff): their federation sender ends any backoff and sends what is queued."""

    instance: str
    destinations: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PushersWake:
    """``notified`` users have new push actions (committed), ``read`` users read
    some: the pusher instance wakes their pushers (badge updates for ``read``)."""

    instance: str
    notified: tuple[str, ...] = ()
    read: tuple[str, ...] = ()


Notice = (
    StreamPosition
    | RoomEventNotice
    | UserStreamNotice
    | RoomsStreamNotice
    | CacheNotice
    | FederationQueued
    | RemoteServerUp
    | PushersWake
)

_KINDS: dict[str, type[Any]] = {
    "pos": StreamPosition,
    "ev": RoomEventNotice,
    "user": UserStreamNotice,
    "rooms": RoomsStreamNotice,
    "cache": CacheNotice,
    "fedq": FederationQueued,
    "fedup": RemoteServerUp,
    "push": PushersWake,
}
_KIND_OF = {cls: kind for kind, cls in _KINDS.items()}
_TUPLE_FIELDS = ("users", "rooms", "keys", "destinations", "notified", "read")


def encode_notice(notice: Notice) -> bytes:
    body: dict[str, Any] = {"k": _KIND_OF[type(notice)]}
    for name in notice.__slots__:
        value = getattr(notice, name)
        body[name] = list(value) if isinstance(value, tuple) else value
    return orjson.dumps(body)


def decode_notice(raw: bytes | str) -> Notice:
    """The notice ``encode_notice`` wrote; ValueError for anything else."""
    try:
        body = orjson.loads(raw)
        cls = _KINDS[body.pop("k")]
        for name in _TUPLE_FIELDS:
            if name in body:
                body[name] = tuple(body[name])
        notice: Notice = cls(**body)
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a replication notice: {raw[:80]!r}") from exc
    return notice


NoticeHandler = Callable[[Notice], Awaitable[None] | None]


class NoticePublisher(Protocol):
    """What writers call to tell the other processes (a no-op in a single process)."""

    def publish(self, notice: Notice) -> None: ...


class NoPublisher:
    """The single process's publisher: nobody else to tell."""

    def publish(self, notice: Notice) -> None:
        return None

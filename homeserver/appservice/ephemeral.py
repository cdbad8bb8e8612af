"""Ephemeral data for application services (MSC2409, MSC3202): typing, receipts and
presence for services whose registration has ``receive_ephemeral``; to-device
messages for their users when it has ``org.matrix.msc3202``.

Receipts and to-device messages are read from their streams after the service's
stored positions, so they survive a restart; typing and presence are remembered in
memory as they change (best effort: what changed while this server was down is not
sent, as Synapse does for typing). What goes out is what is current when the
transaction is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from homeserver.appservice.interest import RoomAliases, ServiceInterest
from homeserver.appservice.registration import ApplicationService
from homeserver.clock import Clock
from homeserver.presence import PresenceService
from storage.appservice import DEVICE_LISTS, RECEIPTS, TO_DEVICE
from storage.receipts import ReceiptRecord
from storage.stores import Stores

# Per transaction at most this many of each kind.
EPHEMERAL_LIMIT = 100
READ_PRIVATE = "m.read.private"

# The keys of the transaction body (the stable name and the MSC2409 name bridges read).
EPHEMERAL_KEYS = ("ephemeral", "de.sorunome.msc2409.ephemeral")
TO_DEVICE_KEY = "de.sorunome.msc2409.to_device"
DEVICE_LISTS_KEY = "org.matrix.msc3202.device_lists"


class TypingSource(Protocol):
    def typing_users(self, room_id: str) -> list[str]: ...


class PresenceSource(Protocol):
    async def presence_contents(self, user_ids: list[str]) -> dict[str, dict[str, Any]]: ...


class PositionSource(Protocol):
    def current_position(self) -> int: ...


@dataclass
class EphemeralFeeds:
    """The streams ephemeral data is read from (any may be missing)."""

    typing: TypingSource | None = None
    presence: PresenceSource | None = None
    receipts: PositionSource | None = None
    to_device: PositionSource | None = None
    device_lists: PositionSource | None = None

    def start_positions(self) -> dict[str, int]:
        """Where a service seen for the first time starts (nothing from before)."""
        positions: dict[str, int] = {}
        if self.receipts is not None:
            positions[RECEIPTS] = self.receipts.current_position()
        if self.to_device is not None:
            positions[TO_DEVICE] = self.to_device.current_position()
        if self.device_lists is not None:
            positions[DEVICE_LISTS] = self.device_lists.current_position()
        return positions


@dataclass
class PendingEphemeral:
    """What changed for one service since its last transaction (typing rooms and
    presence users, in memory)."""

    typing_rooms: set[str] = field(default_factory=set)
    presence_users: set[str] = field(default_factory=set)


@dataclass
class EphemeralBatch:
    ephemeral: list[dict[str, Any]]
    to_device: list[dict[str, Any]]
    positions: dict[str, int]
    more: bool  # a stream had more than one batch
    device_lists_changed: list[str] = field(default_factory=list)


class EphemeralCollector:
    """Builds the ephemeral part of a service's next transaction."""

    def __init__(
        self, stores: Stores, interest: ServiceInterest, feeds: EphemeralFeeds, clock: Clock
    ) -> None:
        self._stores = stores
        self._interest = interest
        self.feeds = feeds
        self._clock = clock

    async def collect(
        self,
        service: ApplicationService,
        pending: PendingEphemeral,
        positions: Mapping[str, int],
        aliases: RoomAliases,
    ) -> EphemeralBatch:
        batch = EphemeralBatch([], [], {}, False)
        if service.receive_ephemeral:
            batch.ephemeral += await self._typing(service, pending, aliases)
            batch.ephemeral += await self._receipts(service, positions, aliases, batch)
            batch.ephemeral += await self._presence(service, pending, aliases)
        if service.msc3202:
            batch.to_device += await self._to_device(service, positions, batch)
            batch.device_lists_changed = await self._device_lists(
                service, positions, aliases, batch
            )
        return batch

    async def _device_lists(
        self,
        service: ApplicationService,
        positions: Mapping[str, int],
        aliases: RoomAliases,
        batch: EphemeralBatch,
    ) -> list[str]:
        """MSC3202: users whose device lists changed since the last transaction and
        who are the service's users or share a room it is interested in (as Synapse;
        ``left`` stays empty there too)."""
        window = _unread_window(DEVICE_LISTS, self.feeds.device_lists, positions)
        if window is None:
            return []
        since, upto = window
        batch.positions[DEVICE_LISTS] = upto
        users, _ = await self._stores.e2e_keys.users_with_device_changes(since, upto, "")
        changed = []
        for user_id in sorted(users):
            if await self._interest.in_user_presence(service, user_id, aliases):
                changed.append(user_id)
        return changed

    async def _typing(
        self, service: ApplicationService, pending: PendingEphemeral, aliases: RoomAliases
    ) -> list[dict[str, Any]]:
        source = self.feeds.typing
        rooms, pending.typing_rooms = pending.typing_rooms, set()
        if source is None:
            return []
        found = []
        for room_id in sorted(rooms):
            if await self._interest.in_room(service, room_id, aliases):
                found.append(
                    {
                        "type": "m.typing",
                        "room_id": room_id,
                        "content": {"user_ids": source.typing_users(room_id)},
                    }
                )
        return found

    async def _receipts(
        self,
        service: ApplicationService,
        positions: Mapping[str, int],
        aliases: RoomAliases,
        batch: EphemeralBatch,
    ) -> list[dict[str, Any]]:
        window = _unread_window(RECEIPTS, self.feeds.receipts, positions)
        if window is None:
            return []
        records = await self._stores.appservice.receipts_between(*window, EPHEMERAL_LIMIT)
        _moved(batch, RECEIPTS, window[1], [r.stream_id for r in records])
        wanted: list[ReceiptRecord] = []
        for record in records:
            if record.receipt_type == READ_PRIVATE and not service.is_interested_in_user(
                record.user_id
            ):
                continue  # a private receipt goes only to the service of its user
            if await self._interest.in_room(service, record.room_id, aliases):
                wanted.append(record)
        return receipt_events(wanted)

    async def _presence(
        self, service: ApplicationService, pending: PendingEphemeral, aliases: RoomAliases
    ) -> list[dict[str, Any]]:
        source = self.feeds.presence
        users, pending.presence_users = pending.presence_users, set()
        if source is None or not users:
            return []
        wanted = [
            user_id
            for user_id in sorted(users)
            if await self._interest.in_user_presence(service, user_id, aliases)
        ]
        contents = await source.presence_contents(wanted)
        return [
            {"type": "m.presence", "sender": user_id, "content": contents[user_id]}
            for user_id in wanted
            if user_id in contents
        ]

    async def _to_device(
        self, service: ApplicationService, positions: Mapping[str, int], batch: EphemeralBatch
    ) -> list[dict[str, Any]]:
        window = _unread_window(TO_DEVICE, self.feeds.to_device, positions)
        if window is None:
            return []
        entries = await self._stores.appservice.inbox_between(*window, EPHEMERAL_LIMIT)
        _moved(batch, TO_DEVICE, window[1], [e.stream_id for e in entries])
        return [
            {
                "type": entry.event_type,
                "sender": entry.sender,
                "content": entry.content,
                "to_user_id": entry.user_id,
                "to_device_id": entry.device_id,
            }
            for entry in entries
            if service.is_interested_in_user(entry.user_id)
        ]


def _unread_window(
    stream: str, source: PositionSource | None, positions: Mapping[str, int]
) -> tuple[int, int] | None:
    """(since, upto] of a stream the service has not had yet (None: nothing new, or a
    stream not served)."""
    if source is None or stream not in positions:
        return None
    since, upto = positions[stream], source.current_position()
    return (since, upto) if since < upto else None


def _moved(batch: EphemeralBatch, stream: str, upto: int, read: list[int]) -> None:
    """Where the stream's position moves: to ``upto``, or to the last position read
    when a full batch was read (then more follows at once)."""
    if len(read) == EPHEMERAL_LIMIT:
        upto = read[-1]
        batch.more = True
    batch.positions[stream] = upto


def receipt_events(records: list[ReceiptRecord]) -> list[dict[str, Any]]:
    """One ``m.receipt`` event (with its ``room_id``) per room."""
    contents: dict[str, dict[str, Any]] = {}
    for record in records:
        data: dict[str, Any] = {"ts": record.ts}
        if record.thread_id is not None:
            data["thread_id"] = record.thread_id
        by_event = contents.setdefault(record.room_id, {}).setdefault(record.event_id, {})
        by_event.setdefault(record.receipt_type, {})[record.user_id] = data
    return [
        {"type": "m.receipt", "room_id": room_id, "content": content}
        for room_id, content in contents.items()
    ]


class PresenceFeed:
    """``PresenceSource`` over the presence service."""

    def __init__(self, presence: PresenceService, clock: Clock) -> None:
        self._presence = presence
        self._clock = clock

    async def presence_contents(self, user_ids: list[str]) -> dict[str, dict[str, Any]]:
        now = self._clock.time_ms()
        return {p.user_id: p.content(now) for p in await self._presence.states_of(user_ids)}


OTK_COUNT_KEY = "org.matrix.msc3202.device_one_time_keys_count"
FALLBACK_KEY = "org.matrix.msc3202.device_unused_fallback_key_types"


async def key_counts(
    stores: Stores,
    interest: ServiceInterest,
    service: ApplicationService,
    room_ids: set[str],
    to_device: list[dict[str, Any]],
) -> dict[str, Any]:
    """MSC3202: one-time key counts and unused fallback key types of the devices of the
    service's users a transaction concerns (its sender, its local users joined to the
    rooms of the transaction, the recipients of its to-device messages), as Synapse
    chooses them."""
    users = {service.sender}
    users.update(m["to_user_id"] for m in to_device)
    for room_id in room_ids:
        members = await stores.state.current_members(room_id)
        users.update(
            user_id
            for user_id, membership in members.items()
            if membership == "join"
            and interest.is_local(user_id)
            and service.is_interested_in_user(user_id)
        )
    counts: dict[str, dict[str, dict[str, int]]] = {}
    fallback: dict[str, dict[str, list[str]]] = {}
    for user_id in sorted(users):
        for device in await stores.devices.get_devices(user_id):
            device_id = device.device_id
            counts.setdefault(user_id, {})[device_id] = await stores.e2e_keys.count_one_time_keys(
                user_id, device_id
            )
            fallback.setdefault(user_id, {})[
                device_id
            ] = await stores.e2e_keys.unused_fallback_key_types(user_id, device_id)
    return {OTK_COUNT_KEY: counts, FALLBACK_KEY: fallback}

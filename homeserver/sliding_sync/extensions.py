"""The extensions of simplified sliding sync (MSC4186): ``to_device`` (MSC3885),
``e2ee`` (MSC3884), ``account_data`` (MSC3959), ``receipts`` (MSC3960) and
``typing`` (MSC3961), shaped as Synapse serves them (Element X is tested against it).

Each extension reads the stream /sync reads (the same services), between the
positions of two ``SyncToken``s: ``from_token`` (None on a connection's first
request) and ``to_token``. The room-scoped ones (account data, receipts, typing) apply
to the rooms their ``lists`` and ``rooms`` select: the rooms in the named lists'
windows plus the named room subscriptions, ``"*"`` naming every list or subscription
(the default of both).

Account data and receipts remember per connection which rooms they have sent
(:class:`ExtensionsState`, kept by the caller beside its connection state): a room
seen for the first time gets everything (account data: all of the room's; receipts:
those of the timeline events sent with it and the user's own), a room kept in scope
gets what changed since the previous response, and a room that left the scope with
changes unsent gets those changes when it comes back (Synapse's LIVE / PREVIOUSLY /
NEVER). Typing needs no memory: a room coming back into range shows who types now.

Where this differs from Synapse: receipts and typing are given for joined rooms only
(Synapse gives them for any room in the window, an invite's too); ``to_device.limit``
must not be negative (Synapse hands a negative limit to the database, which PostgreSQL
refuses); a negative ``since`` reads from the start, as in Synapse.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from homeserver.account_data import AccountDataService
from homeserver.e2ee.device_lists import DeviceListService
from homeserver.e2ee.keys import E2eKeyService
from homeserver.receipts import ReceiptService
from homeserver.sliding_sync.extension_request import (
    ACCOUNT_DATA,
    E2EE,
    RECEIPTS,
    TO_DEVICE,
    TYPING,
    WILDCARD,
    ExtensionsRequest,
    RoomScope,
    ToDeviceRequest,
    parse_extensions,
)
from homeserver.streams import SyncToken
from homeserver.to_device import ToDeviceService
from homeserver.typing import TypingService

__all__ = [
    "WILDCARD",
    "ExtensionsRequest",
    "ExtensionsState",
    "RoomScope",
    "SentRooms",
    "SlidingSyncExtensions",
    "ToDeviceRequest",
    "has_news",
    "parse_extensions",
]

# -- what a connection remembers -----------------------------------------------------------


@dataclass(frozen=True)
class SentRooms:
    """Rooms whose data of one extension the connection holds: ``live`` (up to the
    previous response) or ``behind`` (changes after the position given were not sent).
    A room in neither was never sent."""

    live: frozenset[str] = frozenset()
    behind: Mapping[str, int] = field(default_factory=dict)

    def after_response(
        self, sent: Collection[str], changed_unsent: Collection[str], since: int | None
    ) -> SentRooms:
        """``sent`` rooms are now up to date; live rooms among ``changed_unsent`` (they
        changed after ``since`` out of scope) fall behind at ``since``."""
        live = set(self.live)
        behind = dict(self.behind)
        for room_id in sent:
            behind.pop(room_id, None)
        live.update(sent)
        if since is not None:
            for room_id in changed_unsent:
                if room_id in live and room_id not in sent:
                    live.discard(room_id)
                    behind[room_id] = since
        return SentRooms(frozenset(live), behind)


@dataclass(frozen=True)
class ExtensionsState:
    """What a connection's extensions have sent; a new connection starts empty. Kept
    per ``pos`` beside the connection's other state (a retried ``pos`` reuses the state
    that ``pos`` was answered with): pass it to :meth:`SlidingSyncExtensions.compute_with_state`
    and store the state it returns under the new ``pos``."""

    account_data: SentRooms = SentRooms()
    receipts: SentRooms = SentRooms()


# -- the service ----------------------------------------------------------------------------


@dataclass
class _Split:
    """The rooms of a response by what the connection holds of them."""

    initial: set[str] = field(default_factory=set)
    live: set[str] = field(default_factory=set)
    behind: dict[int, set[str]] = field(default_factory=dict)  # since -> rooms


def _split(
    rooms: Collection[str],
    sent: SentRooms,
    incremental: bool,
    fresh: Collection[str] = (),
) -> _Split:
    split = _Split()
    for room_id in rooms:
        if not incremental or room_id in fresh:
            split.initial.add(room_id)
        elif room_id in sent.live:
            split.live.add(room_id)
        elif room_id in sent.behind:
            split.behind.setdefault(sent.behind[room_id], set()).add(room_id)
        else:
            split.initial.add(room_id)
    return split


class SlidingSyncExtensions:
    def __init__(
        self,
        to_device: ToDeviceService,
        keys: E2eKeyService,
        device_lists: DeviceListService,
        account_data: AccountDataService,
        receipts: ReceiptService,
        typing: TypingService,
    ) -> None:
        self._to_device = to_device
        self._keys = keys
        self._device_lists = device_lists
        self._account_data = account_data
        self._receipts = receipts
        self._typing = typing

    @classmethod
    def build(
        cls,
        to_device: ToDeviceService,
        keys: E2eKeyService,
        device_lists: DeviceListService,
        account_data: AccountDataService,
        receipts: ReceiptService,
        typing: TypingService,
    ) -> SlidingSyncExtensions:
        """The composition root's call: ``build(ephemeral.to_device, e2ee.keys,
        e2ee.device_lists, ephemeral.account_data, ephemeral.receipts, ephemeral.typing)``."""
        return cls(to_device, keys, device_lists, account_data, receipts, typing)

    def parse(self, raw: object) -> ExtensionsRequest:
        return parse_extensions(raw)

    async def compute(
        self,
        user_id: str,
        device_id: str | None,
        request: ExtensionsRequest,
        from_token: SyncToken | None,
        to_token: SyncToken,
        list_rooms: Mapping[str, Sequence[str]],
        subscribed_rooms: Sequence[str],
        all_rooms: Mapping[str, str],
        *,
        initial_rooms: Collection[str] = (),
        timelines: Mapping[str, Sequence[str]] | None = None,
    ) -> dict[str, Any]:
        """The response's ``extensions`` object, without memory of what was sent (every
        room in scope counts as held up to ``from_token``); see :meth:`compute_with_state`."""
        response, _ = await self.compute_with_state(
            user_id,
            device_id,
            request,
            from_token,
            to_token,
            list_rooms,
            subscribed_rooms,
            all_rooms,
            state=None,
            initial_rooms=initial_rooms,
            timelines=timelines,
        )
        return response

    async def compute_with_state(
        self,
        user_id: str,
        device_id: str | None,
        request: ExtensionsRequest,
        from_token: SyncToken | None,
        to_token: SyncToken,
        list_rooms: Mapping[str, Sequence[str]],
        subscribed_rooms: Sequence[str],
        all_rooms: Mapping[str, str],
        *,
        state: ExtensionsState | None,
        initial_rooms: Collection[str] = (),
        timelines: Mapping[str, Sequence[str]] | None = None,
    ) -> tuple[dict[str, Any], ExtensionsState]:
        """The response's ``extensions`` object (``{}`` when none is enabled; an enabled
        one is present even when empty, as Synapse serves it) and the connection's
        extension state after it.

        ``state``: what the connection's previous response left (None: no memory, every
        room in scope taken as held up to ``from_token``). ``initial_rooms``: rooms the
        response sends from scratch (``initial: true``): their receipts are sent afresh.
        ``timelines``: room -> IDs of the timeline events the response sends; a room
        sent the first time gets the receipts of those events and the user's own (None:
        every receipt of the room, as /sync gives)."""
        response: dict[str, Any] = {}
        new_state = ExtensionsState() if from_token is None else (state or ExtensionsState())
        if request.to_device is not None:
            response[TO_DEVICE] = await self._to_device_response(
                user_id, device_id, request.to_device, to_token
            )
        if request.e2ee:
            response[E2EE] = await self._e2ee_response(user_id, device_id, from_token, to_token)
        if request.account_data is not None:
            rooms = request.account_data.select(list_rooms, subscribed_rooms)
            response[ACCOUNT_DATA], sent = await self._account_data_response(
                user_id, rooms, from_token, to_token, new_state.account_data, state is not None
            )
            new_state = ExtensionsState(sent, new_state.receipts)
        if request.receipts is not None:
            rooms = request.receipts.select(list_rooms, subscribed_rooms)
            rooms = {r for r in rooms if all_rooms.get(r) == "join"}
            response[RECEIPTS], sent = await self._receipts_response(
                user_id,
                rooms,
                from_token,
                to_token,
                new_state.receipts,
                state is not None,
                initial_rooms,
                timelines,
            )
            new_state = ExtensionsState(new_state.account_data, sent)
        if request.typing is not None:
            rooms = request.typing.select(list_rooms, subscribed_rooms)
            joined = [r for r in rooms if all_rooms.get(r) == "join"]
            since = None if from_token is None else from_token.typing
            typing = self._typing.typing_for_sync(joined, since)
            response[TYPING] = {"rooms": {r: events[0] for r, events in typing.items()}}
        return response, new_state

    def has_updates(
        self,
        user_id: str,
        request: ExtensionsRequest,
        room_ids: Collection[str],
        since: SyncToken,
    ) -> bool:
        """Whether an enabled extension has news after ``since`` for the user or
        ``room_ids`` (no IO: the long-poll asks this on every wake-up)."""
        if request.to_device is not None and self._to_device.has_updates(user_id, since.to_device):
            return True
        if request.e2ee and self._device_lists.has_updates(user_id, room_ids, since.device_lists):
            return True
        if request.account_data is not None and self._account_data.has_updates(
            user_id, since.account_data
        ):
            return True
        if request.receipts is not None and self._receipts.has_updates(room_ids, since.receipts):
            return True
        return request.typing is not None and self._typing.has_updates(room_ids, since.typing)

    # -- each extension ------------------------------------------------------------------

    async def _to_device_response(
        self, user_id: str, device_id: str | None, request: ToDeviceRequest, to_token: SyncToken
    ) -> dict[str, Any]:
        upto = to_token.to_device
        if device_id is None:
            return {"next_batch": str(upto), "events": []}
        if request.since is not None and request.since > upto:
            # a since from the future (another process, a restore): nothing to give
            return {"next_batch": str(request.since), "events": []}
        if request.limit == 0:
            # nothing asked for: acknowledge up to since, skip nothing
            since = request.since or 0
            await self._to_device.to_device_for_sync(user_id, device_id, since, since)
            return {"next_batch": str(since), "events": []}
        events, position = await self._to_device.to_device_for_sync(
            user_id, device_id, request.since, upto, request.limit
        )
        return {"next_batch": str(position), "events": events}

    async def _e2ee_response(
        self, user_id: str, device_id: str | None, from_token: SyncToken | None, to_token: SyncToken
    ) -> dict[str, Any]:
        response: dict[str, Any] = {
            "device_one_time_keys_count": {},
            "device_unused_fallback_key_types": [],
        }
        if device_id is not None:
            response["device_one_time_keys_count"] = await self._keys.device_one_time_keys_count(
                user_id, device_id
            )
            response[
                "device_unused_fallback_key_types"
            ] = await self._keys.device_unused_fallback_key_types(user_id, device_id)
        if from_token is not None:
            changes = await self._device_lists.device_lists(user_id, from_token, to_token)
            response["device_lists"] = changes.to_json()
        return response

    async def _account_data_response(
        self,
        user_id: str,
        rooms: set[str],
        from_token: SyncToken | None,
        to_token: SyncToken,
        sent: SentRooms,
        remembered: bool,
    ) -> tuple[dict[str, Any], SentRooms]:
        since = None if from_token is None else from_token.account_data
        upto = to_token.account_data
        global_events = await self._account_data.global_for_sync(user_id, since, upto)
        by_room: dict[str, list[dict[str, Any]]] = {}
        if not remembered and since is not None:
            sent = SentRooms(frozenset(rooms))
        split = _split(rooms, sent, since is not None)
        if split.initial:
            by_room.update(
                await self._account_data.rooms_for_sync(user_id, split.initial, None, upto)
            )
        if split.live:
            by_room.update(
                await self._account_data.rooms_for_sync(user_id, split.live, since, upto)
            )
        for position, behind in split.behind.items():
            by_room.update(await self._account_data.rooms_for_sync(user_id, behind, position, upto))
        changed_unsent: set[str] = set()
        if since is not None and sent.live - rooms:
            changed_unsent = await self._account_data.rooms_with_changes(user_id, since, upto)
            changed_unsent -= rooms
        response = {"global": global_events, "rooms": by_room}
        return response, sent.after_response(rooms, changed_unsent, since)

    async def _receipts_response(
        self,
        user_id: str,
        rooms: set[str],
        from_token: SyncToken | None,
        to_token: SyncToken,
        sent: SentRooms,
        remembered: bool,
        initial_rooms: Collection[str],
        timelines: Mapping[str, Sequence[str]] | None,
    ) -> tuple[dict[str, Any], SentRooms]:
        since = None if from_token is None else from_token.receipts
        upto = to_token.receipts
        if not remembered and since is not None:
            sent = SentRooms(frozenset(rooms))
        split = _split(rooms, sent, since is not None, set(initial_rooms))
        by_room: dict[str, list[dict[str, Any]]] = {}
        if split.initial:
            if timelines is None:
                by_room.update(
                    await self._receipts.receipts_for_sync(user_id, split.initial, None, upto)
                )
            else:
                pairs = [(r, e) for r in split.initial for e in timelines.get(r, ())]
                by_room.update(
                    await self._receipts.receipts_initial(user_id, pairs, split.initial, upto)
                )
        if split.live:
            by_room.update(await self._receipts.receipts_for_sync(user_id, split.live, since, upto))
        for position, behind in split.behind.items():
            by_room.update(await self._receipts.receipts_for_sync(user_id, behind, position, upto))
        changed_unsent: set[str] = set()
        if since is not None:
            out_of_scope = sent.live - rooms
            changed_unsent = await self._receipts.rooms_with_changes(out_of_scope, since, upto)
        response = {"rooms": {r: events[0] for r, events in by_room.items() if events}}
        return response, sent.after_response(rooms, changed_unsent, since)


def has_news(extensions: Mapping[str, Any]) -> bool:
    """Whether an ``extensions`` response is worth answering a long-poll with (as
    Synapse: key counts alone are not; to-device events, device list changes, account
    data, receipts and typing are)."""
    to_device = extensions.get(TO_DEVICE)
    if to_device and to_device["events"]:
        return True
    e2ee = extensions.get(E2EE)
    if e2ee:
        lists = e2ee.get("device_lists")
        if lists and (lists["changed"] or lists["left"]):
            return True
    account_data = extensions.get(ACCOUNT_DATA)
    if account_data and (account_data["global"] or account_data["rooms"]):
        return True
    return any(extensions.get(name) and extensions[name]["rooms"] for name in (RECEIPTS, TYPING))

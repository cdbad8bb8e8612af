"""Typing, receipts, presence and account data as the legacy API shows them: flat
events, those of a room labelled with its ``room_id``.

The streams are read through the services that serve /sync (the same positions, the
same rules for who sees what); only the shape differs. ``changes`` reads what
changed between two tokens for the event stream, ``snapshot`` what is current for
the initial syncs.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from homeserver.account_data import TAG, AccountDataService
from homeserver.clock import Clock
from homeserver.legacy.client_format import in_room, presence_event
from homeserver.presence import PresenceService
from homeserver.receipts import ReceiptService
from homeserver.streams import SyncToken
from homeserver.typing import TypingService


@dataclass(frozen=True)
class Snapshot:
    """What /initialSync shows besides rooms: presence, receipts, account data."""

    presence: list[dict[str, Any]]
    receipts: dict[str, list[dict[str, Any]]]  # room -> [m.receipt, with room_id]
    global_account_data: list[dict[str, Any]]
    room_account_data: dict[str, list[dict[str, Any]]]  # room -> events, m.tag first


class LegacyEphemeral:
    def __init__(
        self,
        typing: TypingService,
        receipts: ReceiptService,
        presence: PresenceService,
        account_data: AccountDataService,
        clock: Clock,
    ) -> None:
        self._typing = typing
        self._receipts = receipts
        self.presence = presence
        self.account_data = account_data
        self._clock = clock

    # -- the event stream -------------------------------------------------------------

    async def changes(
        self,
        user_id: str,
        room_ids: Collection[str],
        since: SyncToken,
        now: SyncToken,
        *,
        explicit_room: str | None,
    ) -> list[dict[str, Any]]:
        """Presence of the user and of the members of ``room_ids``, typing and receipts
        of ``room_ids``, and the user's account data, changed between the tokens.
        For a request about one room (``explicit_room``) account data is that room's."""
        events: list[dict[str, Any]] = []
        for event in await self.presence.presence_for_sync(
            user_id, room_ids, since.presence, now.presence
        ):
            events.append(presence_event(event["sender"], event["content"]))
        for room_id, typing in self._typing.typing_for_sync(room_ids, since.typing).items():
            events += [in_room(e, room_id) for e in typing]
        receipts = await self._receipts.receipts_for_sync(
            user_id, room_ids, since.receipts, now.receipts
        )
        for room_id, receipt_events in receipts.items():
            events += [in_room(e, room_id) for e in receipt_events]
        data = await self.account_data.for_sync(
            user_id,
            since.account_data,
            now.account_data,
            None if explicit_room is None else {explicit_room},
        )
        if explicit_room is None:
            events += data.global_events
        for room_id, room_events in data.room_events.items():
            events += [in_room(e, room_id) for e in room_events]
        return events

    def has_updates(self, user_id: str, room_ids: Collection[str], token: SyncToken) -> bool:
        """Whether anything after ``token`` is waiting (without awaiting)."""
        return (
            self._typing.has_updates(room_ids, token.typing)
            or self._receipts.has_updates(room_ids, token.receipts)
            or self.presence.has_updates(user_id, room_ids, token.presence)
            or self.account_data.has_updates(user_id, token.account_data)
        )

    async def presence_of(self, user_ids: Iterable[str]) -> list[dict[str, Any]]:
        """The current presence of these users, offline ones too (none when presence
        is disabled)."""
        if not self.presence.enabled:
            return []
        now = self._clock.time_ms()
        states = await self.presence.states_of(sorted(set(user_ids)))
        return [presence_event(s.user_id, s.content(now)) for s in states]

    # -- the initial syncs ------------------------------------------------------------

    async def snapshot(
        self, user_id: str, joined_room_ids: Collection[str], now: SyncToken
    ) -> Snapshot:
        """The presence of the user and their room-mates (offline ones left out), every
        receipt of the joined rooms, and the account data the user stored (not what
        the server computes, such as the push rules, as Synapse does)."""
        presence = [
            presence_event(e["sender"], e["content"])
            for e in await self.presence.presence_for_sync(
                user_id, joined_room_ids, None, now.presence
            )
        ]
        receipts = await self._receipts.receipts_for_sync(
            user_id, joined_room_ids, None, now.receipts
        )
        data = await self.account_data.for_sync(user_id, None, now.account_data)
        computed = self.account_data.computed_types
        return Snapshot(
            presence,
            {r: [in_room(e, r) for e in events] for r, events in receipts.items()},
            [e for e in data.global_events if e["type"] not in computed],
            {r: room_account_data(events) for r, events in data.room_events.items()},
        )

    async def room_receipts(self, user_id: str, room_id: str, now: SyncToken) -> list[Any]:
        """Every receipt of one room the user may see, as ``m.receipt`` events."""
        found = await self._receipts.receipts_for_sync(user_id, [room_id], None, now.receipts)
        return [in_room(e, room_id) for e in found.get(room_id, [])]

    async def room_account_data(self, user_id: str, room_id: str, now: SyncToken) -> list[Any]:
        """The user's account data for one room, ``m.tag`` first."""
        data = await self.account_data.for_sync(user_id, None, now.account_data, {room_id})
        return room_account_data(data.room_events.get(room_id, []))


def room_account_data(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A room's account data as the initial syncs show it: the tags first (when there
    are any), then the other types."""
    tags = [e for e in events if e["type"] == TAG and e["content"].get("tags")]
    return tags + [e for e in events if e["type"] != TAG]

"""Per-room summaries for sliding sync, maintained on write.

A sliding sync room list sorts an account's rooms by bump stamp and filters them by
type and encryption; the window it returns names rooms and counts their members.
Reading that from each room's state would cost work for every room of the account,
so each room keeps one summary row (``storage/room_summaries.py``), changed inside
the transaction of the event that changes it:

- ``on_event_txn`` (a ``txn_hooks`` entry of the EventPersister) raises the bump
  stamp for an accepted live event of a bump type. Backfilled, rejected and
  soft-failed events never reach it; out-of-band memberships (outliers) are skipped.
  A redaction of a current name/avatar/... event recomputes the row.
- ``on_current_state_txn`` (a ``current_state_hooks`` entry) follows every change of
  the room's current state: a new state event, a fork resolved by a later event, a
  remote join replacing the state wholesale. It sets the fields whose state event
  changed and moves the member counts by the membership changes.

A room with no row yet (created before the summaries existed, or its first event
now) gets its whole row computed in the same transaction. ``fill_missing`` writes
the rows of every room held from before, at start-up, a few queries per 500 rooms.

The functions at the top are pure: which events bump, and what a summary holds
given the room's state.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any

from homeserver.events import KNOWN_ROOM_VERSIONS
from homeserver.events.redaction import redact
from homeserver.rooms.persister import CurrentStateChange
from storage.database import Transaction
from storage.events import StoredEvent
from storage.room_summaries import RoomSummary, SummaryInputs
from storage.stores import Stores

logger = logging.getLogger(__name__)

# The event types that count as activity in a room and move its bump stamp (as
# Synapse's SLIDING_SYNC_DEFAULT_BUMP_EVENT_TYPES, which Element X is tested against).
BUMP_EVENT_TYPES = frozenset(
    {
        "m.room.create",
        "m.room.message",
        "m.room.encrypted",
        "m.sticker",
        "m.call.invite",
        "m.poll.start",
        "m.beacon_info",
    }
)

# State (state key "") a summary is made from, and the fields each one sets.
SUMMARY_STATE_FIELDS: Mapping[str, tuple[str, ...]] = {
    "m.room.create": ("room_type",),
    "m.room.encryption": ("is_encrypted",),
    "m.room.name": ("name",),
    "m.room.avatar": ("avatar",),
    "m.room.canonical_alias": ("canonical_alias",),
    "m.room.tombstone": ("tombstone_successor",),
}
SUMMARY_STATE_TYPES = frozenset(SUMMARY_STATE_FIELDS)

# More member changes than this in one state change (a remote join replacing the
# state): count the members again rather than look up each old membership.
_RECOUNT_OVER = 100


def bumps(event_type: str) -> bool:
    """Whether an event of this type moves its room's bump stamp."""
    return event_type in BUMP_EVENT_TYPES


def _text(value: Any) -> str | None:
    """A string value of content, or None (not a string, or with a NUL byte, which
    PostgreSQL text cannot hold: as Synapse ignores those)."""
    if isinstance(value, str) and "\0" not in value:
        return value
    return None


def fields_from_state(
    contents: Mapping[str, Mapping[str, Any] | None],
) -> dict[str, Any]:
    """The summary fields that follow from the given state contents: event type ->
    the content of the current state event of that type (state key ""), or None when
    the room has none. Only the fields of the types given are returned."""
    fields: dict[str, Any] = {}
    for event_type, content in contents.items():
        if event_type not in SUMMARY_STATE_FIELDS:
            continue
        get = content.get if content is not None else (lambda _key: None)
        if event_type == "m.room.create":
            fields["room_type"] = _text(get("type"))
        elif event_type == "m.room.encryption":
            fields["is_encrypted"] = content is not None and get("algorithm") is not None
        elif event_type == "m.room.name":
            fields["name"] = _text(get("name"))
        elif event_type == "m.room.avatar":
            fields["avatar"] = _text(get("url"))
        elif event_type == "m.room.canonical_alias":
            fields["canonical_alias"] = _text(get("alias"))
        elif event_type == "m.room.tombstone":
            fields["tombstone_successor"] = _text(get("replacement_room"))
    return fields


def member_deltas(changes: Collection[tuple[str | None, str | None]]) -> tuple[int, int]:
    """(joined, invited) count changes of members going from one membership to
    another (None: not a member in that state)."""
    joined = sum((new == "join") - (old == "join") for old, new in changes)
    invited = sum((new == "invite") - (old == "invite") for old, new in changes)
    return joined, invited


def summary_from_state(
    room_id: str,
    contents: Mapping[str, Mapping[str, Any] | None],
    memberships: Mapping[str, int],
    bump_stamp: int,
) -> RoomSummary:
    """A whole summary: ``contents`` as for :func:`fields_from_state` (a type left
    out is absent from the state), ``memberships`` the number of current members of
    each membership, ``bump_stamp`` the latest bump event's stream ordering (0)."""
    every = {t: contents.get(t) for t in SUMMARY_STATE_TYPES}
    return RoomSummary(
        room_id=room_id,
        bump_stamp=bump_stamp,
        joined_count=memberships.get("join", 0),
        invited_count=memberships.get("invite", 0),
        **fields_from_state(every),
    )


def served_content(
    pdu: Mapping[str, Any], redacted: bool, room_version: str | None
) -> dict[str, Any]:
    """The content of a held event as clients see it (redacted when it has been)."""
    content = pdu.get("content")
    if redacted:
        version = KNOWN_ROOM_VERSIONS.get(room_version or "")
        content = redact(pdu, version).get("content") if version is not None else {}
    return dict(content) if isinstance(content, Mapping) else {}


def summary_from_inputs(inputs: SummaryInputs) -> RoomSummary:
    contents = {
        t: served_content(pdu, redacted, inputs.room_version)
        for t, (pdu, redacted) in inputs.state.items()
    }
    return summary_from_state(inputs.room_id, contents, inputs.memberships, inputs.bump_stamp)


# -- the service ---------------------------------------------------------------------


class RoomSummaries:
    """Keeps ``stores.room_summaries`` in step with the rooms (see the module doc)."""

    def __init__(self, stores: Stores) -> None:
        self._stores = stores

    async def compute(self, room_ids: Collection[str]) -> dict[str, RoomSummary]:
        """Summaries made afresh from the database (rooms with current state)."""
        inputs = await self._stores.room_summaries.read_inputs(
            room_ids, SUMMARY_STATE_TYPES, BUMP_EVENT_TYPES
        )
        return {room_id: summary_from_inputs(i) for room_id, i in inputs.items()}

    async def fill_missing(self, chunk: int = 500) -> int:
        """Write the summary of every room that has current state but no summary (held
        from before summaries existed); how many were written."""
        missing = await self._stores.room_summaries.rooms_missing()
        written = 0
        for start in range(0, len(missing), chunk):
            fresh = await self.compute(missing[start : start + chunk])
            written += await self._stores.room_summaries.insert_missing(list(fresh.values()))
        if written:
            logger.info("wrote the sliding sync summaries of %d rooms", written)
        return written

    async def _recompute_txn(self, txn: Transaction, room_id: str) -> None:
        store = self._stores.room_summaries
        inputs = await store.read_inputs_txn(txn, [room_id], SUMMARY_STATE_TYPES, BUMP_EVENT_TYPES)
        if room_id in inputs:
            await store.upsert_txn(txn, summary_from_inputs(inputs[room_id]))

    async def on_event_txn(self, txn: Transaction, stored: StoredEvent) -> None:
        """``txn_hooks`` entry: an accepted event entered the live timeline."""
        position = stored.stream_ordering
        if stored.outlier or position is None or position <= 0:
            return  # an out-of-band membership: no state of the room is held
        event = stored.event
        if bumps(event.type):
            if not await self._stores.room_summaries.bump_txn(txn, event.room_id, position):
                await self._recompute_txn(txn, event.room_id)
        if event.redacts is not None and event.type == "m.room.redaction":
            await self._on_redaction_txn(txn, event.room_id, event.redacts)

    async def _on_redaction_txn(self, txn: Transaction, room_id: str, target_id: str) -> None:
        target = await self._stores.events.get_event(target_id)
        if target is None or target.event.room_id != room_id:
            return
        key = target.event.state_tuple
        if key is None or key[0] not in SUMMARY_STATE_TYPES or key[1] != "":
            return
        current = await self._stores.state.get_current_state(room_id)
        if current.get(key) == target_id:
            # (whether the redaction applied is read in the transaction)
            await self._recompute_txn(txn, room_id)

    async def on_current_state_txn(self, txn: Transaction, change: CurrentStateChange) -> None:
        """``current_state_hooks`` entry: the room's current state changed."""
        old, new = change.old, change.new
        changed_types = [t for t in SUMMARY_STATE_TYPES if old.get((t, "")) != new.get((t, ""))]
        member_keys = [k for k in change.changes if k[0] == "m.room.member"]
        if not changed_types and not member_keys:
            return
        store = self._stores.room_summaries
        if not old or len(member_keys) > _RECOUNT_OVER:
            await self._recompute_txn(txn, change.room_id)
            return
        fields = await self._fields_for(change, changed_types)
        joined, invited = await self._member_deltas(change, member_keys)
        if not await store.update_txn(txn, change.room_id, fields, joined, invited):
            await self._recompute_txn(txn, change.room_id)

    async def _fields_for(
        self, change: CurrentStateChange, changed_types: list[str]
    ) -> dict[str, Any]:
        ids = {t: change.new.get((t, "")) for t in changed_types}
        wanted = [e for e in ids.values() if e is not None and e != change.event.event_id]
        held = await self._stores.events.get_events(wanted) if wanted else {}
        contents: dict[str, Mapping[str, Any] | None] = {}
        for event_type, event_id in ids.items():
            if event_id is None:
                contents[event_type] = None
            elif event_id == change.event.event_id:
                contents[event_type] = change.event.content
            elif event_id in held:
                stored = held[event_id]
                event = stored.event.redacted() if stored.redacted_by else stored.event
                contents[event_type] = event.content
            else:  # not readable: leave the field as it was
                logger.warning("summary of %s: state event %s not held", change.room_id, event_id)
        return fields_from_state(contents)

    async def _member_deltas(
        self, change: CurrentStateChange, member_keys: list[tuple[str, str]]
    ) -> tuple[int, int]:
        old_ids = [change.old[k] for k in member_keys if k in change.old]
        new_ids = [change.new[k] for k in member_keys if k in change.new]
        unknown_new = [e for e in new_ids if e not in change.memberships]
        held = await self._stores.events.get_events([*old_ids, *unknown_new])

        def membership(event_id: str | None) -> str | None:
            if event_id is None:
                return None
            if event_id in change.memberships:
                return change.memberships[event_id]
            stored = held.get(event_id)
            return None if stored is None else stored.event.membership

        return member_deltas(
            [(membership(change.old.get(k)), membership(change.new.get(k))) for k in member_keys]
        )

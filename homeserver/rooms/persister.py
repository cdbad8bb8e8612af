"""Persisting room events: one transaction per event (a batch of outliers: one for
the batch), visible only after it commits.

The caller holds the room's lane (``RoomLanes``) and hands over the event with its
``EventContext``: the state before it, and whether it was rejected, soft-failed or
is an outlier. In one transaction the persister stores the event and its edges, the
state group after it (a delta over the one before), membership rows, applies a
redaction, and moves the forward extremities and the current state. After the
commit it updates the caches and wakes the notifier.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from homeserver.clock import Clock
from homeserver.events import Event
from homeserver.metrics.components import EventMetrics
from homeserver.notifier import Notifier
from homeserver.replication.invalidation import room_event_notice
from homeserver.replication.notices import NoPublisher, NoticePublisher
from homeserver.rooms.state_resolution import StateResolver
from homeserver.streams import StreamPositions
from storage.database import Transaction
from storage.events import StoredEvent
from storage.state import StateKey, StateMap, state_delta
from storage.stores import Stores
from storage.sync import EventPosition

if TYPE_CHECKING:
    from homeserver.replication.forwarding import EventForwarder

logger = logging.getLogger(__name__)

# Called after an event committed (federation sending, typing, ...).
PersistedHook = Callable[[StoredEvent], Awaitable[None]]
# Called inside the event's own transaction, for derived rows that must commit with
# it (push actions): atomic with the event, and in the same /sync as it.
TxnHook = Callable[[Transaction, StoredEvent], Awaitable[None]]


@dataclass(frozen=True)
class CurrentStateChange:
    """A room's current state moving from ``old`` to ``new`` in an event's transaction
    (a state event, a fork resolved by a later event, a remote join replacing it)."""

    room_id: str
    old: StateMap
    new: StateMap
    # the membership of each member event of ``new`` that is not in ``old``
    memberships: dict[str, str]
    # the event being persisted (its content is not read back from the database)
    event: Event
    # what differs from ``old`` to ``new`` (None: the key went): read this, not the
    # whole maps, so that a change costs what changed, not the room's size
    changes: Mapping[StateKey, str | None]


# Called inside the transaction, right after the current_state rows changed, for
# rows derived from the current state (sliding sync's room summaries).
CurrentStateHook = Callable[[Transaction, CurrentStateChange], Awaitable[None]]
# called with the ID of an event a redaction has just taken effect on
RedactionHook = Callable[[Transaction, str], Awaitable[None]]


@dataclass
class EventContext:
    """What is known of an event when it is persisted."""

    state_before: StateMap
    state_group_before: int | None = None
    rejected_reason: str | None = None
    soft_failed: bool = False
    outlier: bool = False
    backfilled: bool = False
    txn_device_id: str | None = None
    txn_id: str | None = None
    # stripped state to keep for an invite or knock membership event
    stripped_state: list[dict[str, object]] | None = None
    extra_notify: list[str] = field(default_factory=list)
    # created here just now (not received): no earlier event can cite or redact it
    local: bool = False
    # an outlier membership of a local user in a room this server is not in (a remote
    # invite, a rejection, a knock): it gets a stream position so /sync sees it
    out_of_band: bool = False
    # the event is held as an outlier and now joins the timeline with this state
    # (s2s: an auth or state event later received as a new event)
    de_outlier: bool = False
    # our own join made through another server (no local member was left): the
    # forward extremities held from before are stale, this join replaces them and
    # the state after it is the room's current state (as Synapse forgets a room's
    # extremities and state when its last local member leaves)
    replaces_extremities: bool = False


class EventPersister:
    def __init__(
        self,
        stores: Stores,
        notifier: Notifier,
        resolver: StateResolver,
        clock: Clock,
        events_stream: StreamPositions,
        backfill_stream: StreamPositions,
    ) -> None:
        self._stores = stores
        self._notifier = notifier
        self._resolver = resolver
        self._clock = clock
        self.events_stream = events_stream
        self._backfill_stream = backfill_stream
        self.persisted_hooks: list[PersistedHook] = []
        # run inside the transaction of each accepted event that enters the timeline
        # (out-of-band memberships included; stored.outlier tells those apart)
        self.txn_hooks: list[TxnHook] = []
        # run inside the transaction of each event that changes a room's current state
        # (before its txn_hooks)
        self.current_state_hooks: list[CurrentStateHook] = []
        # run inside the transaction of each accepted event that enters the timeline,
        # backfilled history included (what indexes the whole timeline: search)
        self.timeline_txn_hooks: list[TxnHook] = []
        # run inside the transaction that marks an event redacted
        self.redaction_hooks: list[RedactionHook] = []
        # committed events waiting for every earlier position to finish, so that a
        # woken long-poll finds them readable (heap of (position, room, users))
        self._unannounced: list[tuple[int, str, list[str]]] = []
        self.metrics: EventMetrics | None = None  # set when metrics are on
        # with workers: events of rooms another process writes are persisted there,
        # and what this process commits is told to the others
        self.forwarder: EventForwarder | None = None
        self.publisher: NoticePublisher = NoPublisher()
        self.instance_name = "master"

    def announce(self) -> None:
        """Wake the listeners of every committed event the stream has reached."""
        current = self.events_stream.current()
        while self._unannounced and self._unannounced[0][0] <= current:
            position, room_id, users = heapq.heappop(self._unannounced)
            self._notifier.on_room_event(room_id, position, users)

    async def persist(self, event: Event, context: EventContext) -> StoredEvent:
        """Store ``event``; the caller holds the room's lane."""
        if self.forwarder is not None and self.forwarder.forwards(event.room_id):
            return await self.forwarder.persist(event, context)
        if await self._withheld_redaction(event, context):
            logger.info("withholding redaction %s: it cannot act on its target", event.event_id)
            context = replace(context, soft_failed=True)
        in_timeline = not context.outlier or context.out_of_band
        stream: StreamPositions | None = None
        if in_timeline:
            stream = self._backfill_stream if context.backfilled else self.events_stream
        # the position is taken inside the transaction (with several writers, from the
        # database's sequence: no round trip of its own); a retried transaction takes
        # a new one, and every one taken is finished below
        allocated: list[int] = []

        async def persist_txn(txn: Transaction) -> StoredEvent:
            position = None
            if stream is not None:
                position = await stream.allocate_txn(txn)
                allocated.append(position)
            return await self._persist_txn(txn, event, context, position)

        try:
            # Grouped: the transactions of concurrent senders (other rooms) share one
            # commit when they read nothing back, as a message's does.
            stored = await self._stores.db.run_transaction(
                "persist_event", persist_txn, group_commit=True
            )
            position = allocated[-1] if allocated else None
            if self.metrics is not None:
                self.metrics.on_persisted(event.type, event.sender)
            if position is not None and not context.backfilled and stored.rejected_reason is None:
                users = list(context.extra_notify)
                if event.type == "m.room.member" and event.state_key is not None:
                    users.append(event.state_key)
                heapq.heappush(self._unannounced, (position, event.room_id, users))
                self.publisher.publish(room_event_notice(self.instance_name, stored, users))
        finally:
            if stream is not None:
                for taken in allocated:
                    stream.finish(taken)
            self.announce()
        if context.backfilled:
            return stored  # history: nothing happens now because of it
        await self._after_persist(stored)
        return stored

    async def _withheld_redaction(self, event: Event, context: EventContext) -> bool:
        """Whether a received redaction is kept from clients (stored soft-failed):
        its target is held and the redaction can never act on it (another room's
        event, the create event, a rejected event, or a sender of another server
        without the redact level), as Synapse withholds such redactions. One whose
        target is not held yet is stored as usual (applied if the target comes)."""
        if (
            event.redacts is None
            or event.type != "m.room.redaction"
            or context.local
            or context.outlier
            or context.de_outlier
            or context.soft_failed
            or context.rejected_reason is not None
        ):
            return False
        target = await self._stores.events.get_event(event.redacts)
        if target is None or target.event_id == event.event_id:
            return False
        if target.rejected_reason is not None:
            return True
        return not await self._resolver.may_redact(event, target.event, context.state_before)

    async def _after_persist(self, stored: StoredEvent) -> None:
        for hook in self.persisted_hooks:
            try:
                await hook(stored)
            except Exception:
                logger.exception("after-persist hook failed for %s", stored.event_id)

    async def persist_outliers(
        self, items: Sequence[tuple[Event, EventContext]]
    ) -> list[StoredEvent]:
        """Store a batch of outliers (an auth chain, a room's state) in one
        transaction; the caller holds the room's lane.

        The same rows as :meth:`persist` of each in turn: the events and their edges,
        membership rows, redactions applied both ways. ``items`` must be plain
        outliers (no stream position: not out-of-band, not de-outliered), each after
        the batch's events it cites.
        """
        for event, context in items:
            if not context.outlier or context.out_of_band or context.de_outlier:
                raise ValueError(f"{event.event_id} is not a plain outlier")
        if not items:
            return []
        stored = await self._stores.db.run_transaction(
            "persist_outliers", lambda txn: self._persist_outliers_txn(txn, items)
        )
        if self.metrics is not None:
            for event, _context in items:
                self.metrics.on_persisted(event.type, event.sender)
        for one in stored:
            await self._after_persist(one)
        return stored

    async def _persist_outliers_txn(
        self, txn: Transaction, items: Sequence[tuple[Event, EventContext]]
    ) -> list[StoredEvent]:
        stores = self._stores
        stored = await stores.events.insert_outliers_txn(
            txn,
            [(event, context.rejected_reason) for event, context in items],
            received_ts=self._clock.time_ms(),
        )
        accepted = [(e, c) for e, c in items if c.rejected_reason is None]
        await stores.rooms.insert_memberships_txn(
            txn,
            [e for e, _c in accepted if e.type == "m.room.member" and e.state_key is not None],
            None,
        )
        everything = {e.event_id: e for e, _c in items}
        contexts = {e.event_id: c for e, c in accepted}
        for event, context in accepted:
            if (
                event.type == "m.room.member"
                and event.state_key is not None
                and context.stripped_state is not None
            ):
                await stores.rooms.store_stripped_state_txn(
                    txn, event.event_id, context.stripped_state
                )
            if event.redacts is None:
                continue
            target = everything.get(event.redacts)
            if target is None or target.room_id != event.room_id:
                await self._apply_redaction_txn(txn, event, context.state_before)
            elif event.redacts not in contexts and await self._resolver.may_redact(
                event, target, context.state_before
            ):
                # a rejected target of the batch (an accepted one is found below)
                await self._set_redacted_txn(txn, target.event_id, event.event_id)
        # Accepted redactions stored before, or in this batch, of the accepted events.
        redactions = await stores.events.redactions_of_many_txn(txn, list(contexts))
        for target_id, redaction_ids in redactions.items():
            for redaction_id in redaction_ids:
                redaction = everything.get(redaction_id)
                if redaction is None:
                    held = await stores.events.get_event(redaction_id)
                    redaction = None if held is None else held.event
                if redaction is not None and await self._resolver.may_redact(
                    redaction, everything[target_id], contexts[target_id].state_before
                ):
                    await self._set_redacted_txn(txn, target_id, redaction_id)
        return stored

    async def _persist_txn(
        self, txn: Transaction, event: Event, context: EventContext, position: int | None
    ) -> StoredEvent:
        stores = self._stores
        room_id = event.room_id
        state_key = event.state_tuple
        accepted = context.rejected_reason is None
        group_before = context.state_group_before
        if group_before is None and not context.outlier:
            group_before = await stores.state.store_state_group_txn(
                txn, room_id, context.state_before
            )
        group_after = group_before
        state_after = context.state_before
        # what the event changes of the state before it
        changes: dict[StateKey, str | None] = {}
        if state_key is not None and accepted and not context.outlier:
            state_after = dict(context.state_before)
            state_after[state_key] = event.event_id
            changes[state_key] = event.event_id
            group_after = await stores.state.store_state_group_txn(
                txn,
                room_id,
                state_after,
                prev_group=group_before,
                prev_state=context.state_before,
                changes=changes,
            )
        if context.de_outlier:
            assert position is not None  # not an outlier any more: in the timeline
            await stores.events.de_outlier_txn(txn, event.event_id, position, group_after)
            stored = StoredEvent(event, position, False, None, False, group_after, None)
        else:
            stored = await stores.events.insert_event_txn(
                txn,
                event,
                stream_ordering=position,
                received_ts=self._clock.time_ms(),
                state_group=group_after,
                outlier=context.outlier,
                rejected_reason=context.rejected_reason,
                soft_failed=context.soft_failed,
                txn_device_id=context.txn_device_id,
                txn_id=context.txn_id,
                replaces_state=context.state_before.get(state_key)
                if state_key is not None
                else None,
            )
        if (
            position is not None
            and position > 0
            and accepted
            and not context.soft_failed
            and not stored.outlier
        ):
            recent = EventPosition(room_id, event.event_id, position, stored.state_group)
            txn.call_after_commit(lambda: stores.sync.recent.committed(recent))
        if position is not None and position > 0 and accepted and event.type == "m.room.member":
            txn.call_after_commit(lambda: stores.sync.recent.membership_changed(room_id, position))
        if not context.outlier and not context.local:
            # (a new local event cites our forward extremities: nothing is missing)
            await stores.events.update_backward_extremities_txn(txn, event)
        if accepted and event.type == "m.room.member" and event.state_key is not None:
            # Backfilled history stays out of the membership streams (/sync).
            await stores.rooms.insert_membership_txn(
                txn, event, None if context.backfilled else position
            )
            if context.stripped_state is not None:
                await stores.rooms.store_stripped_state_txn(
                    txn, event.event_id, context.stripped_state
                )
        if accepted and not context.soft_failed and event.redacts is not None:
            await self._apply_redaction_txn(txn, event, context.state_before)
        if accepted and not context.local:
            # A redaction may have arrived before the event it redacts (a new local
            # event's ID is a fresh hash: nothing can have redacted it yet).
            for redaction_id in await stores.events.redactions_of_txn(txn, event.event_id):
                redaction = await stores.events.get_event(redaction_id)
                if redaction is not None and await self._resolver.may_redact(
                    redaction.event, event, context.state_before
                ):
                    await self._set_redacted_txn(txn, event.event_id, redaction_id)
        if accepted and not context.soft_failed and not context.outlier and not context.backfilled:
            await self._update_extremities_and_state_txn(
                txn,
                event,
                state_after,
                context.local,
                context.replaces_extremities,
                (group_before, changes, group_after),
            )
        if accepted and not context.soft_failed and not context.outlier:
            for hook in self.timeline_txn_hooks:
                await hook(txn, stored)
        if accepted and not context.soft_failed and not context.backfilled:
            if not context.outlier or context.out_of_band:
                # (an out-of-band membership, e.g. an invite over federation, is news
                # to its user: push evaluates it too)
                for hook in self.txn_hooks:
                    await hook(txn, stored)
        return stored

    async def _set_redacted_txn(self, txn: Transaction, event_id: str, redaction_id: str) -> None:
        await self._stores.events.set_redacted_by_txn(
            txn, event_id, redaction_id, self._clock.time_ms()
        )
        for hook in self.redaction_hooks:
            await hook(txn, event_id)

    async def _apply_redaction_txn(
        self, txn: Transaction, redaction: Event, state: StateMap
    ) -> None:
        """Apply a redaction when its sender may redact the target (rooms: redactions)."""
        target_id = redaction.redacts
        assert target_id is not None
        target = await self._stores.events.get_event(target_id)
        if target is None or target.event.room_id != redaction.room_id:
            return  # applied if the target arrives later (see _persist_txn)
        if await self._resolver.may_redact(redaction, target.event, state):
            await self._set_redacted_txn(txn, target_id, redaction.event_id)

    async def _update_extremities_and_state_txn(
        self,
        txn: Transaction,
        event: Event,
        state_after: StateMap,
        local: bool,
        replaces_extremities: bool = False,
        groups: tuple[int | None, Mapping[StateKey, str | None], int | None] = (None, {}, None),
    ) -> None:
        """Move the forward extremities, and the current state to what they resolve
        to. ``groups``: (the group of the state before the event, what the event
        changes of it, the group after it); when the current state is the group
        before, the change of the current state is known without comparing maps."""
        stores = self._stores
        room_id = event.room_id
        old_extremities = await stores.events.get_forward_extremities_txn(txn, room_id)
        # A new local event cannot be cited yet; a received one may already be.
        referenced = not local and await stores.events.is_referenced_txn(txn, event.event_id)
        if replaces_extremities:
            new_extremities = [event.event_id]
        else:
            new_extremities = [e for e in old_extremities if e not in set(event.prev_event_ids)]
            if not referenced:
                new_extremities.append(event.event_id)
        await stores.events.set_forward_extremities_txn(
            txn,
            room_id,
            remove=[e for e in old_extremities if e not in new_extremities],
            add=[e for e in new_extremities if e not in old_extremities],
            result=new_extremities,
        )
        old_state = await stores.state.get_current_state(room_id)
        group_before, event_changes, group_after = groups
        new_group: int | None = None
        if new_extremities == [event.event_id]:
            new_state = state_after
            new_group = group_after
            if group_before is not None and stores.state.current_group(room_id) == group_before:
                # the current state is the state before the event
                changes = {k: e for k, e in event_changes.items() if old_state.get(k) != e}
            else:
                changes = state_delta(old_state, new_state)
        else:
            new_state = await self._resolver.resolve_extremities(
                room_id, new_extremities, event, state_after
            )
            changes = state_delta(old_state, new_state)
        if not changes:
            return
        memberships = await self._memberships_of(changes, event)
        await stores.state.set_current_state_txn(
            txn, room_id, old_state, new_state, memberships, changes=changes, group=new_group
        )
        if self.current_state_hooks:
            change = CurrentStateChange(room_id, old_state, new_state, memberships, event, changes)
            for hook in self.current_state_hooks:
                await hook(txn, change)

    async def _memberships_of(
        self, changes: Mapping[StateKey, str | None], event: Event
    ) -> dict[str, str]:
        changed = [e for (t, _k), e in changes.items() if t == "m.room.member" and e is not None]
        result: dict[str, str] = {}
        if event.event_id in changed and event.membership is not None:
            result[event.event_id] = event.membership
        others = [e for e in changed if e not in result]
        if others:
            result.update(await self._stores.memberships_of(others))
        return result

"""Evaluating push rules for new events, unread counts and the notification list.

Client-server API, Push Notifications: "Server behaviour" (push rules of every local
user in the room but the sender), "Receiving notifications" (unread counts per room
and per thread), "Marking notifications as read", and getNotifications.

Evaluation runs inside the event's own transaction (the persister's ``txn_hooks``),
as Synapse does before persisting: the push actions commit atomically with the
event, so a crash can lose neither without the other, and an event and the count it
raises appear in the same /sync response without readers waiting for a worker.
Evaluation is pure CPU over cached room state (microseconds per recipient) and its
rows join the transaction's batched writes.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from homeserver.clock import Clock
from homeserver.errors import InvalidParam
from homeserver.events import KNOWN_ROOM_VERSIONS, Event, PowerLevels, parse_power_level
from homeserver.push.conditions import MessageContext, Recipient
from homeserver.push.rules_service import PushRulesService
from homeserver.replication.invalidation import UNREAD_COUNTS, CachePublisher
from homeserver.rooms.healing import DUMMY_EVENT
from homeserver.streams import MAX_POSITION
from homeserver.sync.extensions import UnreadCount
from storage.database import Transaction
from storage.events import StoredEvent
from storage.push_actions import UNTHREADED, Notification, PushAction
from storage.stores import Stores

logger = logging.getLogger(__name__)

MAIN_THREAD = "main"
THREAD_HOPS = 3
# Above this many changed keys a room state is loaded whole rather than derived.
DERIVE_MAX_CHANGES = 50
ROOM_STATE_CACHE = 512
UNREAD_CACHE = 10_000  # users whose unread counts are kept

NotifiedCallback = Callable[[set[str]], None]
_GONE = ("leave", "ban")


class IgnoredSenders(Protocol):
    """Who ignores whom (``m.ignored_user_list``; AccountDataService)."""

    async def ignoring(self, user_ids: Collection[str], sender: str) -> set[str]: ...


@dataclass(frozen=True)
class UnreadCounts:
    """A room's unread notifications: totals over every thread, the main timeline
    (``main``) and each thread by its root event ID (``per_thread``)."""

    notification: int = 0
    highlight: int = 0
    main: tuple[int, int] = (0, 0)
    per_thread: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class RoomPushState:
    """What push evaluation needs of a room at one state group."""

    local_joined: tuple[str, ...]
    member_count: int
    display_names: Mapping[str, str | None]
    power_levels: PowerLevels | None
    notification_levels: Mapping[str, int]


class PushEvaluator:
    def __init__(
        self,
        server_name: str,
        stores: Stores,
        rules: PushRulesService,
        clock: Clock,
        ignored: IgnoredSenders | None = None,
        *,
        room_state_cache_size: int = ROOM_STATE_CACHE,
        unread_cache_size: int = UNREAD_CACHE,
        cache_publisher: CachePublisher | None = None,
    ) -> None:
        self._suffix = ":" + server_name
        # tells the other processes whose unread counts changed
        self._cache_publisher = cache_publisher or CachePublisher()
        self._room_state_cache_size = room_state_cache_size
        self._unread_cache_size = unread_cache_size
        self._stores = stores
        self._rules = rules
        self._clock = clock
        # recipients who ignore the sender get no notification (set by the server once
        # account data is built)
        self.ignored = ignored
        self._room_states: OrderedDict[int, RoomPushState] = OrderedDict()
        # user -> room -> thread -> unread (notifications, highlights); an epoch per user
        # moves on each change, so a read that raced with a change is not cached. (Each
        # process sees the changes it commits; several writers would fan these out.)
        self._unread_cache: OrderedDict[str, dict[str, dict[str, tuple[int, int]]]] = OrderedDict()
        self._unread_epochs: dict[str, int] = {}
        # the epoch at which each cached entry's read started (see _count_up)
        self._unread_read_at: dict[str, int] = {}
        self._unread_cleared = 0  # moves on clear_caches, for the reads in flight then
        # told which users got new notifications (the pushers)
        self.on_notified: list[NotifiedCallback] = []
        # told which users sent a read receipt (the pushers update the badge)
        self.on_read: list[NotifiedCallback] = []

    # -- evaluation inside the event's transaction ------------------------------------------

    async def evaluate_in_txn(self, txn: Transaction, stored: StoredEvent) -> None:
        """The persister's in-transaction hook: store the event's push actions with it."""
        if stored.stream_ordering is None or stored.stream_ordering <= 0:
            return
        if stored.event.type == DUMMY_EVENT:
            return  # sent by the server to merge a fork: no one read or is told anything
        sender = stored.event.sender
        if sender.endswith(self._suffix):
            # Sending an event is a read receipt for it: the sender's notifications up to
            # it are read, in the event's thread (push.md, "Marking notifications as read").
            await self._stores.push_actions.mark_read_txn(
                txn,
                sender,
                stored.event.room_id,
                await self.thread_of(stored.event),
                stored.stream_ordering,
            )
            txn.call_after_commit(lambda: self._counts_changed((sender,)))
            if self._cache_publisher.publishes:
                txn.call_after_commit(lambda: self._cache_publisher.stale(UNREAD_COUNTS, [sender]))
        actions = await self.evaluate_event(stored)
        if not actions:
            return
        await self._stores.push_actions.add_actions_txn(txn, actions)
        users = {a.user_id for a in actions}
        if self._cache_publisher.publishes:
            txn.call_after_commit(lambda: self._cache_publisher.stale(UNREAD_COUNTS, users))
        # Before the COMMIT is sent: a count read starting from here on may or may not
        # see these actions, so it is not brought up to date with them (_count_up).
        committing = {user_id: self._bump_epoch(user_id) for user_id in users}

        def notified() -> None:
            self._count_up(actions, committing)
            for callback in self.on_notified:
                callback(users)

        txn.call_after_commit(notified)

    # -- evaluating one event -------------------------------------------------------------

    async def evaluate_event(self, stored: StoredEvent) -> list[PushAction]:
        """The push actions ``stored`` gives each local recipient who is notified."""
        event = stored.event
        if stored.stream_ordering is None:
            return []
        if stored.outlier:
            return await self._evaluate_out_of_band(stored)
        if stored.state_group is None:
            return []
        room = await self.room_state(event.room_id, stored.state_group, pending=stored)
        recipients = [u for u in room.local_joined if u != event.sender]
        invitee = event.state_key
        if (
            event.type == "m.room.member"
            and event.membership == "invite"
            and invitee is not None
            and invitee.endswith(self._suffix)
            and invitee != event.sender
            and invitee not in recipients
        ):
            recipients.append(invitee)
        if recipients and self.ignored is not None:
            ignoring = await self.ignored.ignoring(recipients, event.sender)
            if ignoring:
                recipients = [u for u in recipients if u not in ignoring]
        if not recipients:
            return []
        message = MessageContext.of(
            event.pdu,
            room_member_count=room.member_count,
            sender_power_level=(
                room.power_levels.user_level(event.sender) if room.power_levels else 0
            ),
            notification_levels=room.notification_levels,
        )
        rulesets = await self._rules.compiled_for_users(recipients)
        result: list[PushAction] = []
        thread_id: str | None = None
        now = self._clock.time_ms()
        for user_id in recipients:
            rule = rulesets[user_id].evaluate(
                message, Recipient(user_id, room.display_names.get(user_id))
            )
            if rule is None or not rule.notify:
                continue
            if thread_id is None:
                thread_id = await self.thread_of(event)
            result.append(
                PushAction(
                    user_id,
                    event.event_id,
                    event.room_id,
                    stored.stream_ordering,
                    thread_id,
                    list(rule.actions),
                    rule.highlight,
                    now,
                )
            )
        return result

    async def _evaluate_out_of_band(self, stored: StoredEvent) -> list[PushAction]:
        """An invite of a local user to a room this server is not in (received over
        federation): evaluated for the invitee alone. No room state is held here, so
        the room has no local members (as Synapse counts them), no power levels, and
        the invitee's display name is the one the invite carries."""
        event = stored.event
        invitee = event.state_key
        if (
            event.type != "m.room.member"
            or event.membership != "invite"
            or invitee is None
            or not invitee.endswith(self._suffix)
            or invitee == event.sender
            or stored.stream_ordering is None
        ):
            return []
        if self.ignored is not None and await self.ignored.ignoring([invitee], event.sender):
            return []
        message = MessageContext.of(
            event.pdu, room_member_count=0, sender_power_level=0, notification_levels={}
        )
        name = event.content.get("displayname")
        ruleset = (await self._rules.compiled_for_users([invitee]))[invitee]
        rule = ruleset.evaluate(
            message, Recipient(invitee, name if isinstance(name, str) else None)
        )
        if rule is None or not rule.notify:
            return []
        return [
            PushAction(
                invitee,
                event.event_id,
                event.room_id,
                stored.stream_ordering,
                MAIN_THREAD,
                list(rule.actions),
                rule.highlight,
                self._clock.time_ms(),
            )
        ]

    async def thread_of(self, event: Event) -> str:
        """The thread root an event belongs to, following relations at most 3 hops."""
        current: Event | None = event
        for _ in range(THREAD_HOPS):
            if current is None:
                break
            relates = current.content.get("m.relates_to")
            if not isinstance(relates, Mapping):
                break
            target = relates.get("event_id")
            if not isinstance(target, str):
                break
            if relates.get("rel_type") == "m.thread":
                return target
            parent = await self._stores.events.get_event(target)
            current = parent.event if parent is not None else None
        return MAIN_THREAD

    async def room_state(
        self, room_id: str, state_group: int, pending: StoredEvent | None = None
    ) -> RoomPushState:
        """The room at a state group; ``pending`` is an event of that state not yet
        committed (evaluation runs inside its transaction), so not yet readable."""
        cached = self._room_states.get(state_group)
        if cached is not None:
            self._room_states.move_to_end(state_group)
            return cached
        room = await self._derived_room_state(room_id, state_group, pending)
        if room is None:
            room = await self._load_room_state(room_id, state_group, pending)
        self._room_states[state_group] = room
        while len(self._room_states) > self._room_state_cache_size:
            self._room_states.popitem(last=False)
        return room

    async def _derived_room_state(
        self, room_id: str, state_group: int, pending: StoredEvent | None
    ) -> RoomPushState | None:
        """The room at a group made by a few changes from one already known: derived
        from it (a join in a large room costs what changed, not the whole room)."""
        parent = self._stores.state.change_from_parent(state_group)
        if parent is None:
            return None
        parent_group, changes = parent
        base = self._room_states.get(parent_group)
        if base is None or len(changes) > DERIVE_MAX_CHANGES:
            return None
        before = await self._stores.state.get_state(parent_group)
        member_keys = [k for k in changes if k[0] == "m.room.member"]
        wanted = [e for k in member_keys for e in (changes[k], before.get(k)) if e is not None]
        events = dict(await self._stores.events.get_events(wanted))
        if pending is not None:
            events[pending.event_id] = pending
        local = set(base.local_joined)
        names = dict(base.display_names)
        member_count = base.member_count
        for key in member_keys:
            user_id = key[1]
            old_id, new_id = before.get(key), changes[key]
            old = events.get(old_id) if old_id is not None else None
            new = events.get(new_id) if new_id is not None else None
            if (old_id is not None and old is None) or (new_id is not None and new is None):
                return None  # an event we cannot read: load the room whole
            was_joined = old is not None and old.event.membership == "join"
            is_joined = new is not None and new.event.membership == "join"
            member_count += int(is_joined) - int(was_joined)
            if not user_id.endswith(self._suffix):
                continue
            if is_joined:
                assert new is not None
                local.add(user_id)
                name = new.event.content.get("displayname")
                names[user_id] = name if isinstance(name, str) else None
            else:
                local.discard(user_id)
                names.pop(user_id, None)
        power_levels, levels = base.power_levels, base.notification_levels
        if ("m.room.power_levels", "") in changes or ("m.room.create", "") in changes:
            state = await self._stores.state.get_state(state_group)
            keys = [("m.room.create", ""), ("m.room.power_levels", "")]
            ids = [state[k] for k in keys if k in state]
            found = dict(await self._stores.events.get_events(ids))
            if pending is not None:
                found[pending.event_id] = pending
            power_levels, levels = await self._power_levels(room_id, state, found)
        # the order of local_joined is not significant: recipients are evaluated one by one
        return RoomPushState(tuple(sorted(local)), member_count, names, power_levels, levels)

    async def _load_room_state(
        self, room_id: str, state_group: int, pending: StoredEvent | None
    ) -> RoomPushState:
        state = await self._stores.state.get_state(state_group)
        members = {k[1]: e for k, e in state.items() if k[0] == "m.room.member"}
        # Only the events whose content matters are read whole: local members'
        # (display names), create and power levels. (A server joining a big room
        # evaluates its join against thousands of members, nearly all remote.)
        pending_id = pending.event_id if pending is not None else None
        memberships = await self._stores.memberships_of(
            [e for e in members.values() if e != pending_id]
        )
        if pending is not None and pending.event.membership is not None:
            memberships[pending.event_id] = pending.event.membership
        joined = [u for u, e in members.items() if memberships.get(e) == "join"]
        local = [u for u in joined if u.endswith(self._suffix)]
        wanted = [members[u] for u in local] + [
            state[k] for k in (("m.room.create", ""), ("m.room.power_levels", "")) if k in state
        ]
        events = dict(await self._stores.events.get_events(wanted))
        if pending is not None:
            events[pending.event_id] = pending
        names: dict[str, str | None] = {}
        for user_id in local:
            member = events.get(members[user_id])
            name = member.event.content.get("displayname") if member is not None else None
            names[user_id] = name if isinstance(name, str) else None
        power_levels, levels = await self._power_levels(room_id, state, events)
        return RoomPushState(tuple(sorted(local)), len(joined), names, power_levels, levels)

    async def _power_levels(
        self,
        room_id: str,
        state: Mapping[tuple[str, str], str],
        events: Mapping[str, StoredEvent],
    ) -> tuple[PowerLevels | None, dict[str, int]]:
        version_id = await self._stores.events.room_version_id(room_id)
        version = KNOWN_ROOM_VERSIONS.get(version_id or "")
        if version is None:
            return None, {}
        create = events.get(state.get(("m.room.create", ""), ""))
        power = events.get(state.get(("m.room.power_levels", ""), ""))
        levels: dict[str, int] = {}
        if power is not None:
            raw = power.event.content.get("notifications")
            if isinstance(raw, Mapping):
                for key, value in raw.items():
                    parsed = parse_power_level(value, version)
                    if parsed is not None:
                        levels[key] = parsed
        return (
            PowerLevels(create.event if create else None, power.event if power else None, version),
            levels,
        )

    # -- reading ---------------------------------------------------------------------------

    async def on_read_receipt(
        self, user_id: str, room_id: str, event_id: str, thread_id: str | None
    ) -> None:
        """A read receipt (m.read or m.read.private): notifications at or before the event
        are read, in ``thread_id`` only (``"main"`` or a thread root), or in every thread
        of the room when the receipt is unthreaded (None)."""
        stored = await self._stores.events.get_event(event_id)
        if stored is None or stored.stream_ordering is None or stored.event.room_id != room_id:
            return
        await self._stores.push_actions.mark_read(
            user_id,
            room_id,
            thread_id if thread_id is not None else UNTHREADED,
            stored.stream_ordering,
        )
        self._counts_changed((user_id,))
        self._cache_publisher.stale(UNREAD_COUNTS, [user_id])
        for callback in self.on_read:
            callback({user_id})

    def forget_counts(self, user_ids: Collection[str]) -> None:
        """Drop the cached counts of users after their push actions were purged, or
        another process changed them."""
        self._counts_changed(user_ids)

    def clear_caches(self) -> None:
        """Notices from the other processes may have been missed: read every user's
        counts again (a read in flight is not cached)."""
        self._unread_cleared += 1
        self._unread_cache.clear()
        self._unread_read_at.clear()

    def _counts_changed(self, user_ids: Collection[str]) -> None:
        """Drop the cached counts of users whose notifications or read positions
        changed (called once the change is committed)."""
        for user_id in user_ids:
            self._bump_epoch(user_id)
            self._unread_cache.pop(user_id, None)

    def _bump_epoch(self, user_id: str) -> int:
        epoch = self._unread_epochs.get(user_id, 0) + 1
        self._unread_epochs[user_id] = epoch
        return epoch

    def _count_up(self, actions: Collection[PushAction], committing: Mapping[str, int]) -> None:
        """Bring cached counts up to date with an event's committed push actions (each
        adds one notification, and one highlight if it highlights, to its thread, as
        the push_unread_counts row it counted up), so that the /sync of every woken
        recipient finds its counts without reading them again.

        Exact only for an entry read before the actions' transaction evaluated them
        (``committing``: the epoch then), whose read cannot have seen them; an entry
        read since may already count them, and is dropped."""
        for user_id, epoch in committing.items():
            self._bump_epoch(user_id)  # reads in flight now are not cached
            cached = self._unread_cache.get(user_id)
            if cached is None:
                continue
            if self._unread_read_at.get(user_id, epoch) >= epoch:
                self._unread_cache.pop(user_id, None)
                continue
            updated = dict(cached)  # new dicts: a caller may still hold the old ones
            for action in actions:
                if action.user_id != user_id:
                    continue
                threads = updated[action.room_id] = dict(updated.get(action.room_id, {}))
                notes, highlights = threads.get(action.thread_id, (0, 0))
                threads[action.thread_id] = (notes + 1, highlights + int(action.highlight))
            self._unread_cache[user_id] = updated

    async def _unread_by_room(self, user_id: str) -> Mapping[str, Mapping[str, tuple[int, int]]]:
        """room -> thread -> (notifications, highlights) of the user's unread
        notifications. Cached: every /sync response with a joined room asks, and the
        counts change only when the user is notified or reads."""
        cached = self._unread_cache.get(user_id)
        if cached is not None:
            self._unread_cache.move_to_end(user_id)
            return cached
        epoch = self._unread_epochs.get(user_id, 0)
        cleared = self._unread_cleared
        per_room: dict[str, dict[str, tuple[int, int]]] = {}
        for (
            room_id,
            thread_id,
            notes,
            highlights,
        ) in await self._stores.push_actions.unread_by_thread(user_id):
            per_room.setdefault(room_id, {})[thread_id] = (notes, highlights)
        # nothing changed meanwhile
        if self._unread_epochs.get(user_id, 0) == epoch and self._unread_cleared == cleared:
            self._unread_cache[user_id] = per_room
            self._unread_read_at[user_id] = epoch
            while len(self._unread_cache) > self._unread_cache_size:
                dropped, _counts = self._unread_cache.popitem(last=False)
                self._unread_read_at.pop(dropped, None)
        return per_room

    async def unread_counts(
        self, user_id: str, room_ids: Collection[str]
    ) -> dict[str, UnreadCounts]:
        """Unread notification and highlight counts of each room (for /sync)."""
        by_room = await self._unread_by_room(user_id)
        result = {}
        for room_id in room_ids:
            threads = dict(by_room.get(room_id, {}))
            main = threads.pop(MAIN_THREAD, (0, 0))
            result[room_id] = UnreadCounts(
                notification=main[0] + sum(n for n, _ in threads.values()),
                highlight=main[1] + sum(h for _, h in threads.values()),
                main=main,
                per_thread=threads,
            )
        return result

    async def unread_total(self, user_id: str) -> int:
        """The user's unread notifications across the rooms they are in or invited to
        (push ``counts.unread``): rooms they left or were banned from no longer count,
        as in Synapse's badge. (A room known only by an invite received over
        federation has no local membership row: it counts.)"""
        by_room = await self._unread_by_room(user_id)
        if not by_room:
            return 0
        memberships = await self._stores.state.rooms_for_user(user_id)
        return sum(
            n
            for room_id, threads in by_room.items()
            if memberships.get(room_id) not in _GONE
            for n, _ in threads.values()
        )

    async def notifications(
        self, user_id: str, from_token: str | None, limit: int, only_highlight: bool
    ) -> tuple[list[tuple[Notification, StoredEvent]], str | None]:
        """A page of the user's notifications with their events, newest first, and the
        next page's token. A notification whose event is gone is left out."""
        before: int | None = None
        if from_token is not None:
            try:
                before = int(from_token)
            except ValueError as exc:
                raise InvalidParam("Invalid 'from' token") from exc
            if not 0 <= before <= MAX_POSITION:
                raise InvalidParam("Invalid 'from' token")
        page = await self._stores.push_actions.notifications(user_id, before, limit, only_highlight)
        next_token = str(page[-1].action.stream_ordering) if len(page) == limit else None
        events = await self._stores.events.get_events([n.action.event_id for n in page])
        found = [(n, events[n.action.event_id]) for n in page if n.action.event_id in events]
        return found, next_token


class SyncUnreadCounter:
    """The ``UnreadCounter`` /sync calls (homeserver/sync/extensions.py)."""

    def __init__(self, evaluator: PushEvaluator) -> None:
        self._evaluator = evaluator

    async def unread_counts(
        self, user_id: str, room_ids: Collection[str]
    ) -> dict[str, UnreadCount]:
        counts = await self._evaluator.unread_counts(user_id, room_ids)
        return {
            room_id: UnreadCount(c.notification, c.highlight, c.main, c.per_thread)
            for room_id, c in counts.items()
        }

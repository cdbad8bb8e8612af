"""The rooms part of /sync (client-server API: "Syncing", GET /sync ``rooms``).

Work is batched across rooms: the user's memberships come from a cache; rooms whose
membership did not change are only looked at when the notifier says they changed
since the token; timelines of all rooms come from one statement, their events from
one ``get_events`` (``homeserver.sync.timelines``, which also decides what history
visibility shows of a room from before the user joined); the state groups needed
(timeline start, end, ``since``) are resolved together; state events of all rooms
are fetched and serialized at once.

State of a room in the response (spec: the ``state`` note in "Syncing"):
initial, full-state or newly joined: the full state at the start of the timeline
(a newly joined room's timeline is always ``limited``, as Synapse marks it);
otherwise the difference between the state at ``since`` and at the start of the
timeline, both read from state groups. With ``use_state_after`` the end of the
timeline replaces its start and timeline events are not left out.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from homeserver.notifier import Notifier
from homeserver.rooms.client_format import strip_for_filter
from homeserver.rooms.serializer import EventSerializer
from homeserver.sync.extensions import SyncPass, UnreadCounter
from homeserver.sync.lazy_members import SentMembers, lazy_section, members_wanted
from homeserver.sync.memberships import LEFT, JoinRun, MembershipCache, RoomMemberships
from homeserver.sync.result import JoinedRoom, LeftRoom
from homeserver.sync.timelines import TimelineRead, TimelineReader, VisibleEvents, event_view
from storage.events import StoredEvent
from storage.state import StateKey, StateMap
from storage.stores import Stores
from storage.sync import MembershipRow, SyncStore

MEMBER = "m.room.member"


@dataclass
class RoomPlan:
    """What to compute for one room of the response."""

    room_id: str
    joined: bool  # False: the leave section
    after: int  # the timeline holds events in (after, upto]
    upto: int
    full_state: bool  # state from nothing, not a delta from ``since``
    since: int | None
    no_state: bool = False  # never joined: only the user's own membership event
    own_event_id: str | None = None  # never joined: that event (maybe out of band)
    run: JoinRun | None = None  # from scratch: history visibility may show events before
    newly_joined: bool = False  # joined since the last sync: its timeline is ``limited``
    whole_history: bool = False  # read from scratch, the timeline holds all the user may see
    timeline: list[StoredEvent] = field(default_factory=list)
    limited: bool = False
    start_state: StateMap = field(default_factory=dict)
    end_state: StateMap = field(default_factory=dict)
    since_state: StateMap = field(default_factory=dict)
    state_ids: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def state_before(stored: StoredEvent, state_after: StateMap) -> StateMap:
    """The state before an event, from the state after it (a state event replaced one key)."""
    key = stored.event.state_tuple
    if key is None or state_after.get(key) != stored.event_id:
        return state_after
    before = dict(state_after)
    if stored.replaces_state is not None:
        before[key] = stored.replaces_state
    else:
        before.pop(key, None)
    return before


class RoomSyncer:
    def __init__(
        self,
        stores: Stores,
        sync_store: SyncStore,
        memberships: MembershipCache,
        notifier: Notifier,
        serializer: EventSerializer,
        visibility: VisibleEvents,
    ) -> None:
        self._stores = stores
        self._sync_store = sync_store
        self._memberships = memberships
        self._notifier = notifier
        self._serializer = serializer
        self._timelines = TimelineReader(stores, sync_store, visibility)
        self.unread_counter: UnreadCounter | None = None
        self._sent_members = SentMembers()
        self._versions_known: set[str] = set()

    async def fill(self, sync: SyncPass, *, use_state_after: bool) -> None:
        upto = sync.now.events
        since = None if sync.since is None else min(sync.since.events, upto)
        histories = await self._memberships.get(sync.user_id)
        plans, continuing, stripped = self._plan(sync, histories, since, upto)
        if continuing and since is not None:
            plans += await self._changed_rooms(continuing, since, upto)
        plans = await self._drop_forgotten(sync.user_id, plans)
        await self._know_room_versions([p.room_id for p in plans])
        await self._fetch_timelines(sync, plans)
        await self._load_state(plans, use_state_after=use_state_after)
        await self._summaries(sync.user_id, [p for p in plans if p.joined])
        self._choose_state(sync, plans, use_state_after=use_state_after)
        await self._render(sync, plans, stripped, use_state_after=use_state_after)

    # -- which rooms ------------------------------------------------------------------

    def _plan(
        self,
        sync: SyncPass,
        histories: dict[str, RoomMemberships],
        since: int | None,
        upto: int,
    ) -> tuple[list[RoomPlan], list[str], list[MembershipRow]]:
        room_filter = sync.filter.room
        from_scratch = since is None or sync.full_state
        plans: list[RoomPlan] = []
        continuing: list[str] = []
        stripped: list[MembershipRow] = []
        for room_id, history in histories.items():
            if not room_filter.allows_room(room_id):
                continue
            current = history.at(upto)
            if current is None:
                continue
            membership = current.membership
            if membership == "join":
                sync.joined_room_ids.append(room_id)
                at_since = history.at(since) if since is not None else None
                newly = since is not None and (
                    at_since is None
                    or at_since.membership != "join"
                    or any(r.membership != "join" for r in history.between(since, upto))
                )
                if from_scratch or newly:
                    run = history.join_run(upto)
                    assert run is not None
                    plan = self._from_scratch(room_id, True, run, upto, since)
                    plan.newly_joined = not from_scratch
                    plans.append(plan)
                else:
                    continuing.append(room_id)
            elif membership in ("invite", "knock"):
                if from_scratch or (since is not None and current.stream > since):
                    stripped.append(current)
            elif membership in LEFT:
                if from_scratch and not room_filter.include_leave:
                    continue
                if not from_scratch and since is not None and current.stream <= since:
                    continue
                plans.append(self._leave_plan(history, current, since, sync.full_state))
        return plans, continuing, stripped

    @staticmethod
    def _from_scratch(
        room_id: str, joined: bool, run: JoinRun, upto: int, since: int | None
    ) -> RoomPlan:
        """A full-state entry. Its timeline reads from the user's run of joins (and,
        history visibility permitting, from before it), or from ``since`` when the
        user was already joined then (``full_state=true``)."""
        if since is not None and since > run.floor:
            return RoomPlan(room_id, joined, since, upto, True, since)
        return RoomPlan(room_id, joined, run.floor, upto, True, since, run=run)

    @classmethod
    def _leave_plan(
        cls,
        history: RoomMemberships,
        left: MembershipRow,
        since: int | None,
        full_state: bool,
    ) -> RoomPlan:
        """The leave section's entry: its timeline ends at the user's departure."""
        run = history.join_run(left.stream)
        if run is None:  # never joined: a rejected invite or knock, a ban before joining
            return RoomPlan(
                left.room_id,
                False,
                left.stream - 1,
                left.stream,
                True,
                since,
                True,
                own_event_id=left.event_id,
            )
        if since is not None and not full_state:
            at_since = history.at(since)
            between = history.between(since, left.stream)
            if (
                at_since is not None
                and at_since.membership == "join"
                and all(r.membership == "join" for r in between[:-1])
            ):  # joined at ``since``: the events since then, the state delta
                return RoomPlan(left.room_id, False, since, left.stream, False, since)
        return cls._from_scratch(left.room_id, False, run, left.stream, since)

    async def _changed_rooms(self, rooms: list[str], since: int, upto: int) -> list[RoomPlan]:
        """Joined rooms with events after ``since`` (the notifier, seeded on first use)."""
        unknown = [r for r in rooms if not self._notifier.knows_room(r)]
        if unknown:
            epoch = self._notifier.changes_epoch()
            for room_id, position in (await self._sync_store.latest_positions(unknown)).items():
                self._notifier.seed_room(room_id, position, epoch)
        changed = self._notifier.rooms_changed_since(rooms, since)
        return [RoomPlan(r, True, since, upto, False, since) for r in changed]

    async def _drop_forgotten(self, user_id: str, plans: list[RoomPlan]) -> list[RoomPlan]:
        if all(p.joined for p in plans):
            return plans
        forgotten = await self._stores.rooms.forgotten_rooms(user_id)
        return [p for p in plans if p.joined or p.room_id not in forgotten]

    async def _know_room_versions(self, room_ids: list[str]) -> None:
        """Tell the event store every room's version in one query (a cold cache would
        look each room up while reading its events)."""
        unknown = [r for r in room_ids if r not in self._versions_known]
        if not unknown:
            return
        for room_id, version in (await self._sync_store.room_versions(unknown)).items():
            self._stores.events.remember_room_version(room_id, version)
            self._versions_known.add(room_id)

    # -- timelines --------------------------------------------------------------------

    async def _fetch_timelines(self, sync: SyncPass, plans: list[RoomPlan]) -> None:
        room_filter = sync.filter.room
        # A room never joined shows the user's own membership event alone: read by its
        # ID, as an out-of-band one (a rejection of a remote invite, made by the
        # resident or locally when no resident could be reached) is an outlier, not
        # in the room's timeline (as Synapse shows it).
        own = [p for p in plans if p.own_event_id is not None]
        if own and room_filter.timeline_limit > 0:
            found = await self._stores.events.get_events(
                [p.own_event_id for p in own if p.own_event_id]
            )
            for plan in own:
                stored = found.get(plan.own_event_id or "")
                if stored is not None and room_filter.timeline.matches(event_view(stored)):
                    plan.timeline = [stored]
        plans = [p for p in plans if p.own_event_id is None]
        reads = [TimelineRead(p.room_id, p.after, p.upto, p.run) for p in plans]
        await self._timelines.read(
            sync.user_id, reads, room_filter.timeline, room_filter.timeline_limit
        )
        for plan, read in zip(plans, reads, strict=True):
            # A room joined since the last sync is always ``limited`` (as Synapse
            # marks it): the client knows nothing of it before this timeline.
            plan.timeline, plan.limited = read.events, read.limited or plan.newly_joined
            plan.whole_history = plan.run is not None and not read.limited

    # -- state ------------------------------------------------------------------------

    async def _load_state(self, plans: list[RoomPlan], *, use_state_after: bool) -> None:
        empty = [p for p in plans if not p.timeline and not p.no_state]
        deltas = [p for p in plans if not p.full_state and p.since is not None]
        at_upto = await self._sync_store.latest_events([(p.room_id, 0, p.upto) for p in empty], 1)
        at_since = await self._sync_store.latest_events(
            [(p.room_id, 0, p.since) for p in deltas if p.since is not None], 1
        )
        groups: set[int] = set()
        for positions in (*at_upto.values(), *at_since.values()):
            groups.update(e.state_group for e in positions if e.state_group is not None)
        for plan in plans:
            if plan.timeline:
                for stored in (plan.timeline[0], plan.timeline[-1]):
                    if stored.state_group is not None:
                        groups.add(stored.state_group)
        maps = await self._sync_store.state_groups(groups)

        def group_state(positions: Sequence[Any]) -> StateMap:
            if not positions or positions[-1].state_group is None:
                return {}
            return maps.get(positions[-1].state_group, {})

        for plan in plans:
            if plan.timeline:
                first, last = plan.timeline[0], plan.timeline[-1]
                first_after = maps.get(first.state_group, {}) if first.state_group else {}
                plan.start_state = state_before(first, first_after)
                plan.end_state = maps.get(last.state_group, {}) if last.state_group else {}
            elif not plan.no_state:
                plan.start_state = plan.end_state = group_state(at_upto.get(plan.room_id, []))
            if not plan.full_state:
                plan.since_state = group_state(at_since.get(plan.room_id, []))

    def _choose_state(
        self, sync: SyncPass, plans: list[RoomPlan], *, use_state_after: bool
    ) -> None:
        state_filter = sync.filter.room.state
        if state_filter.matches_nothing:
            return
        lazy = state_filter.lazy_load_members
        held = self._sent_members.for_device(
            sync.user_id,
            sync.device_id,
            None if sync.since is None else sync.since.events,
            sync.now.events,
            dedupe=lazy and not state_filter.include_redundant_members,
        )
        for plan in plans:
            if plan.no_state:
                continue
            target = plan.end_state if use_state_after else plan.start_state
            if plan.full_state:
                section: dict[StateKey, str] = dict(target)
            else:
                section = {k: e for k, e in target.items() if plan.since_state.get(k) != e}
            if lazy:
                wanted = members_wanted(plan.timeline, use_state_after=use_state_after)
                if plan.full_state:
                    wanted.add(sync.user_id)
                    wanted.update(plan.summary.get("m.heroes", ()))
                section = lazy_section(section, target, wanted, full_state=plan.full_state)
                section = held.drop_held(plan.room_id, section)
            timeline_ids = set() if use_state_after else {e.event_id for e in plan.timeline}
            plan.state_ids = [
                event_id
                for (event_type, _key), event_id in sorted(section.items())
                if state_filter.allows_type(event_type) and event_id not in timeline_ids
            ]
            held.note_sent(plan.room_id, section, set(plan.state_ids), plan.timeline)
        held.commit()

    # -- summaries --------------------------------------------------------------------

    async def _summaries(self, user_id: str, plans: list[RoomPlan]) -> None:
        """``summary`` (spec: m.heroes only when the room has no name nor canonical alias)."""
        if not plans:
            return
        naming = [
            e
            for p in plans
            for key in (("m.room.name", ""), ("m.room.canonical_alias", ""))
            if (e := p.end_state.get(key)) is not None
        ]
        named_events = await self._stores.events.get_events(naming) if naming else {}
        state = self._stores.state
        counts = await state.member_counts([p.room_id for p in plans])
        unnamed = [p.room_id for p in plans if not self._has_name(p.end_state, named_events)]
        generations = {r: state.member_generation(r) for r in unnamed}
        heroes = await self._sync_store.heroes(unnamed, user_id, generations)
        for plan in plans:
            joined, invited = counts.get(plan.room_id, (0, 0))
            plan.summary = {"m.joined_member_count": joined, "m.invited_member_count": invited}
            if plan.room_id in heroes:
                plan.summary["m.heroes"] = heroes[plan.room_id]

    @staticmethod
    def _has_name(state: StateMap, events: dict[str, StoredEvent]) -> bool:
        for key, field_name in (
            (("m.room.name", ""), "name"),
            (("m.room.canonical_alias", ""), "alias"),
        ):
            event_id = state.get(key)
            stored = events.get(event_id) if event_id is not None else None
            if (
                stored is not None
                and stored.redacted_by is None
                and stored.event.content.get(field_name)
            ):
                return True
        return False

    # -- rendering --------------------------------------------------------------------

    async def _render(
        self,
        sync: SyncPass,
        plans: list[RoomPlan],
        stripped: list[MembershipRow],
        *,
        use_state_after: bool,
    ) -> None:
        state_filter = sync.filter.room.state
        wanted_ids = {e for p in plans for e in p.state_ids} | {r.event_id for r in stripped}
        fetched = await self._stores.events.get_events(wanted_ids) if wanted_ids else {}
        batch: list[StoredEvent] = []
        slices: dict[str, tuple[int, int, int]] = {}
        for plan in plans:
            state = [
                fetched[e]
                for e in plan.state_ids
                if e in fetched and state_filter.matches(event_view(fetched[e]))
            ]
            start = len(batch)
            batch += plan.timeline
            batch += state
            slices[plan.room_id] = (start, start + len(plan.timeline), len(batch))
            if plan.joined and sync.since is not None:
                self._note_arrivals(sync, [*state, *plan.timeline])
        # Aggregations are bundled for limited timelines only (client-server API,
        # "Aggregations of child events"): otherwise the client saw them arrive.
        bundled = {e.event_id for p in plans if p.limited for e in p.timeline}
        rendered = await self._format(sync, batch, bundled)
        for plan in plans:
            start, middle, end = slices[plan.room_id]
            first_pos = plan.timeline[0].stream_ordering if plan.timeline else None
            if plan.whole_history:
                # As Synapse gives it: a timeline read from scratch that holds the
                # room's whole visible history has the sync's position as prev_batch
                # (/messages from it reads those events again, as SyTest expects).
                first_pos = None
            prev_batch = sync.now.with_stream(
                "events", (first_pos - 1) if first_pos is not None else plan.upto
            ).serialize()
            room: JoinedRoom | LeftRoom
            if plan.joined:
                joined = room = sync.result.joined_room(plan.room_id)
                joined.always_send = plan.full_state
                joined.summary = plan.summary
            else:
                room = sync.result.leave[plan.room_id] = LeftRoom()
            room.timeline = rendered[start:middle]
            room.limited = plan.limited
            room.prev_batch = prev_batch
            room.state = rendered[middle:end]
            room.state_is_after = use_state_after
        await self._render_stripped(sync, stripped, fetched)

    @staticmethod
    def _note_arrivals(sync: SyncPass, events: Sequence[StoredEvent]) -> None:
        """The users who joined (or were invited, knocked) in a joined room of an
        incremental sync, from the room's state then timeline (presence gives theirs,
        as Synapse does); one who then left is no arrival."""
        for stored in events:
            event = stored.event
            if event.type != MEMBER or event.state_key is None:
                continue
            if event.membership in ("join", "invite", "knock"):
                sync.arrived_users.add(event.state_key)
            else:
                sync.arrived_users.discard(event.state_key)

    async def _render_stripped(
        self, sync: SyncPass, rows: list[MembershipRow], fetched: dict[str, StoredEvent]
    ) -> None:
        """Invites and knocks: the stripped state kept for the membership event, then
        the membership event itself."""
        if not rows:
            return
        kept = await self._sync_store.stripped_states([r.event_id for r in rows])
        events = [fetched[r.event_id] for r in rows if r.event_id in fetched]
        rendered = await self._serializer.serialize(
            events, user_id=sync.user_id, device_id=sync.device_id, include_room_id=False
        )
        for stored, body in zip(events, rendered, strict=True):
            unsigned = body.get("unsigned", {})
            carried = unsigned.pop("invite_room_state", None) or unsigned.pop(
                "knock_room_state", None
            )
            state = kept.get(stored.event_id) or (carried if isinstance(carried, list) else [])
            target = (
                sync.result.invite if stored.event.membership == "invite" else sync.result.knock
            )
            target[stored.event.room_id] = [*state, body]

    async def _format(
        self, sync: SyncPass, events: Sequence[StoredEvent], bundled: Collection[str]
    ) -> list[dict[str, Any]]:
        """Client events, with bundled aggregations for those of ``bundled``."""
        fields = sync.filter.event_fields
        if sync.filter.event_format == "federation":
            # The PDU as signed, with its ID (room versions 3 and later leave it out
            # of the PDU, but a client needs it to refer to the event).
            return [
                strip_for_filter({**e.event.pdu, "event_id": e.event_id}, fields) for e in events
            ]
        return await self._serializer.serialize(
            events,
            user_id=sync.user_id,
            device_id=sync.device_id,
            include_room_id=False,
            fields=fields,
            bundle_aggregations=bundled,
        )

    async def fill_unread(self, sync: SyncPass) -> None:
        """The unread counts of every joined room in the response; called once the
        extensions have added theirs (a room there only for a receipt or typing gets
        its real counts, not zeros that would reset the client's badge)."""
        rooms = sync.result.join
        if not rooms:
            return
        unread = await self._unread(
            sync.user_id, list(rooms), sync.filter.room.timeline.unread_thread_notifications
        )
        for room_id, room in rooms.items():
            if room_id in unread:
                room.unread_notifications, threads = unread[room_id]
                if threads:  # threads without notifications are left out
                    room.unread_thread_notifications = threads

    async def _unread(
        self, user_id: str, room_ids: Iterable[str], by_thread: bool
    ) -> dict[str, tuple[dict[str, int], dict[str, dict[str, int]]]]:
        """room -> (unread_notifications, unread_thread_notifications). ``by_thread``
        (the filter's unread_thread_notifications): the first counts the main timeline
        only and the second has each thread by its root (sync.yaml); otherwise the
        first counts every thread and the second is empty."""
        if self.unread_counter is None:
            return {}
        counts = await self.unread_counter.unread_counts(user_id, list(room_ids))

        def shown(notes: int, highlights: int) -> dict[str, int]:
            return {"highlight_count": highlights, "notification_count": notes}

        result = {}
        for room, c in counts.items():
            if by_thread and c.main is not None:
                threads = {root: shown(*pair) for root, pair in c.per_thread.items() if pair[0]}
                result[room] = (shown(*c.main), threads)
            else:
                result[room] = (shown(c.notification_count, c.highlight_count), {})
        return result

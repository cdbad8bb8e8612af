"""The ``rooms`` of a sliding sync response: what each room in a window or a
subscription sends, given what the connection already holds of it.

A room the connection never held (or held as an invite) is sent whole
(``initial``): its latest ``timeline_limit`` events the user may see, the
``required_state`` at the end of that timeline, name, avatar, heroes, counts. A room
it holds gets only what changed since: the events after what it holds, the state
that changed among what it asks for (and what a widened ``required_state`` newly
asks for), and the members lazy loading has not sent yet. A room with no change is
left out. Invites and knocks carry their stripped state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from homeserver.notifier import Notifier
from homeserver.rooms.serializer import EventSerializer
from homeserver.sliding_sync.connections import RoomStatus
from homeserver.sliding_sync.required_state import MEMBER, RequiredState, lazy_users_of
from homeserver.sliding_sync.room_list import UserRoom
from homeserver.streams import SyncToken
from homeserver.sync.extensions import UnreadCounter
from homeserver.sync.filters import RoomEventFilter
from homeserver.sync.memberships import RoomMemberships
from homeserver.sync.timelines import TimelineRead, TimelineReader
from storage.events import StoredEvent
from storage.state import StateMap
from storage.stores import Stores

NAME = ("m.room.name", "")
AVATAR = ("m.room.avatar", "")
CANONICAL_ALIAS = ("m.room.canonical_alias", "")


@dataclass
class RoomWant:
    """One room to consider for the response, and what its lists/subscription ask."""

    room: UserRoom
    required: RequiredState
    timeline_limit: int
    is_dm: bool = False


@dataclass
class _Work:
    want: RoomWant
    status: RoomStatus | None
    initial: bool
    after: int
    upto: int
    read: TimelineRead | None = None
    end_state: StateMap = field(default_factory=dict)
    since_state: StateMap = field(default_factory=dict)
    state_ids: list[str] = field(default_factory=list)
    lazy_users: set[str] = field(default_factory=set)
    changed: bool = False


class RoomResults:
    def __init__(
        self,
        stores: Stores,
        notifier: Notifier,
        serializer: EventSerializer,
        timelines: TimelineReader,
        unread: Mapping[str, UnreadCounter | None],
    ) -> None:
        self._stores = stores
        self._notifier = notifier
        self._serializer = serializer
        self._timelines = timelines
        # {"counter": ...}: the push unread counter, set once push is built
        self._unread = unread

    async def build(
        self,
        user_id: str,
        device_id: str,
        wants: Sequence[RoomWant],
        previous: Mapping[str, RoomStatus],
        from_token: SyncToken | None,
        to_token: SyncToken,
        histories: Mapping[str, RoomMemberships],
    ) -> tuple[dict[str, dict[str, Any]], dict[str, RoomStatus]]:
        """The response's rooms, and the new status of every room it sent."""
        results: dict[str, dict[str, Any]] = {}
        statuses: dict[str, RoomStatus] = {}
        stripped_rooms = [w for w in wants if w.room.membership in ("invite", "knock")]
        await self._stripped(user_id, device_id, stripped_rooms, previous, to_token, results)
        for want in stripped_rooms:
            if want.room.room_id in results:
                statuses[want.room.room_id] = RoomStatus(
                    to_token.events,
                    want.required,
                    frozenset(),
                    want.room.membership,
                    want.room.membership_stream,
                )
        works = await self._plan(
            [w for w in wants if w.room.membership not in ("invite", "knock")],
            previous,
            to_token,
            histories,
        )
        if not works:
            return results, statuses
        await self._read_timelines(user_id, works)
        await self._read_state(works)
        self._choose_state(user_id, works)
        events = await self._stores.events.get_events(
            {e for w in works for e in w.state_ids}
            | {e for k in (NAME, AVATAR) for w in works if (e := w.end_state.get(k))}
        )
        counts = await self._stores.state.member_counts([w.want.room.room_id for w in works])
        unread = await self._unread_counts(user_id, works)
        heroes = await self._heroes(user_id, works, events)
        rendered = await self._serialize_all(user_id, device_id, works, events)
        for work in works:
            room_id = work.want.room.room_id
            body = self._render(
                work, rendered, events, counts, unread, heroes, from_token, to_token
            )
            if body is None:
                continue
            results[room_id] = body
            status = work.status
            lazy_sent = status.lazy_sent if status is not None and not work.initial else frozenset()
            statuses[room_id] = RoomStatus(
                work.upto,
                work.want.required,
                lazy_sent | frozenset(work.lazy_users),
                work.want.room.membership,
                work.want.room.membership_stream,
            )
        return results, statuses

    # -- planning -------------------------------------------------------------------

    async def _plan(
        self,
        wants: Sequence[RoomWant],
        previous: Mapping[str, RoomStatus],
        to_token: SyncToken,
        histories: Mapping[str, RoomMemberships],
    ) -> list[_Work]:
        works: list[_Work] = []
        unknown = [w.room.room_id for w in wants if not self._notifier.knows_room(w.room.room_id)]
        if unknown:
            epoch = self._notifier.changes_epoch()
            for room_id, position in (await self._stores.sync.latest_positions(unknown)).items():
                self._notifier.seed_room(room_id, position, epoch)
        for want in wants:
            room = want.room
            upto = to_token.events if room.membership == "join" else room.membership_stream
            status = previous.get(room.room_id)
            held = status is not None and status.membership not in ("invite", "knock")
            if held and status is not None and not room.newly_joined:
                since = min(status.upto, upto)
                widened = want.required.widened_from(status.required) is not None
                changed = self._notifier.room_changed_since(room.room_id, since) and since < upto
                if not changed and not widened and status.membership == room.membership:
                    continue
                works.append(_Work(want, status, False, since, upto, changed=changed))
                continue
            history = histories.get(room.room_id)
            run = history.join_run(upto) if history is not None else None
            if run is None:
                # never joined (banned before joining): only the user's own event
                works.append(_Work(want, status, True, upto - 1, upto, changed=True))
                continue
            work = _Work(want, status, True, run.floor, upto, changed=True)
            work.read = TimelineRead(room.room_id, run.floor, upto, run)
            works.append(work)
        return works

    async def _read_timelines(self, user_id: str, works: list[_Work]) -> None:
        by_limit: dict[int, list[TimelineRead]] = {}
        for work in works:
            if work.read is None:
                work.read = TimelineRead(work.want.room.room_id, work.after, work.upto)
            if work.want.timeline_limit > 0:
                by_limit.setdefault(work.want.timeline_limit, []).append(work.read)
        for limit, reads in by_limit.items():
            await self._timelines.read(user_id, reads, RoomEventFilter(), limit)

    async def _read_state(self, works: list[_Work]) -> None:
        sync_store = self._stores.sync
        ends = await sync_store.latest_events([(w.want.room.room_id, 0, w.upto) for w in works], 1)
        starts = await sync_store.latest_events(
            [(w.want.room.room_id, 0, w.after) for w in works if not w.initial], 1
        )
        groups: set[int] = set()
        for positions in (*ends.values(), *starts.values()):
            groups.update(p.state_group for p in positions[-1:] if p.state_group is not None)
        maps = await sync_store.state_groups(groups)
        for work in works:
            room_id = work.want.room.room_id
            end = ends.get(room_id) or []
            if end and end[-1].state_group is not None:
                work.end_state = maps.get(end[-1].state_group, {})
            if not work.initial:
                start = starts.get(room_id) or []
                if start and start[-1].state_group is not None:
                    work.since_state = maps.get(start[-1].state_group, {})

    def _choose_state(self, user_id: str, works: list[_Work]) -> None:
        for work in works:
            required = work.want.required
            timeline = work.read.events if work.read is not None else []
            lazy = lazy_users_of(
                (e.event.type, e.event.sender, e.event.state_key) for e in timeline
            )
            if work.initial:
                keys = required.select(work.end_state.keys(), lazy)
                work.lazy_users = lazy if required.lazy_members else set()
            else:
                status = work.status
                assert status is not None
                sent = status.lazy_sent
                new_lazy = {u for u in lazy if u not in sent}
                delta = [k for k, v in work.end_state.items() if work.since_state.get(k) != v]
                delta_members = {k[1] for k in delta if k[0] == MEMBER}
                chosen = set(required.select(delta, new_lazy | (delta_members & (sent | lazy))))
                if required.lazy_members:
                    chosen.update((MEMBER, u) for u in new_lazy if (MEMBER, u) in work.end_state)
                    work.lazy_users = new_lazy
                widened = required.widened_from(status.required)
                if widened is not None:
                    chosen.update(widened.select(work.end_state.keys(), lazy))
                keys = [k for k in work.end_state if k in chosen]
            in_timeline = {e.event_id for e in timeline}
            work.state_ids = (
                [work.end_state[k] for k in keys if work.end_state[k] not in in_timeline]
                if not work.initial
                else [work.end_state[k] for k in keys]
            )

    # -- rendering ------------------------------------------------------------------

    async def _serialize_all(
        self,
        user_id: str,
        device_id: str,
        works: Sequence[_Work],
        events: Mapping[str, StoredEvent],
    ) -> dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
        """Every room's (timeline, required_state) in client format, in one pass (so
        bundled aggregations cost one set of queries for the whole response)."""
        batch: list[StoredEvent] = []
        slices: dict[str, tuple[int, int, int]] = {}
        bundled: set[str] = set()
        for work in works:
            timeline = work.read.events if work.read is not None else []
            state = [events[e] for e in work.state_ids if e in events]
            start = len(batch)
            batch += timeline
            batch += state
            slices[work.want.room.room_id] = (start, start + len(timeline), len(batch))
            if work.read is not None and work.read.limited:
                bundled.update(e.event_id for e in timeline)
        if not batch:
            return {}
        rendered = await self._serializer.serialize(
            batch,
            user_id=user_id,
            device_id=device_id,
            include_room_id=False,
            bundle_aggregations=bundled,
        )
        return {
            room_id: (rendered[start:middle], rendered[middle:end])
            for room_id, (start, middle, end) in slices.items()
        }

    def _render(
        self,
        work: _Work,
        rendered: Mapping[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]],
        events: Mapping[str, StoredEvent],
        counts: Mapping[str, tuple[int, int]],
        unread: Mapping[str, tuple[int, int]],
        heroes: Mapping[str, list[dict[str, Any]]],
        from_token: SyncToken | None,
        to_token: SyncToken,
    ) -> dict[str, Any] | None:
        room = work.want.room
        room_id = room.room_id
        read = work.read
        timeline = read.events if read is not None else []
        state = [events[e] for e in work.state_ids if e in events]
        widened = (
            work.status is not None
            and work.want.required.widened_from(work.status.required) is not None
        )
        if not work.initial and not timeline and not state and not widened:
            if work.status is not None and work.status.membership == room.membership:
                return None
        body: dict[str, Any] = {}
        if work.initial:
            body["initial"] = True
        name_changed = work.initial or any(
            work.since_state.get(k) != work.end_state.get(k) for k in (NAME, AVATAR)
        )
        if name_changed:
            name_event = events.get(work.end_state.get(NAME, ""))
            if name_event is not None and name_event.redacted_by is None:
                value = name_event.event.content.get("name")
                if isinstance(value, str) and value:
                    body["name"] = value
            avatar_event = events.get(work.end_state.get(AVATAR, ""))
            if avatar_event is not None and avatar_event.redacted_by is None:
                url = avatar_event.event.content.get("url")
                if isinstance(url, str) and url:
                    body["avatar"] = url
        if room_id in heroes and (work.initial or "name" not in body):
            body["heroes"] = heroes[room_id]
        timeline_json, state_json = rendered.get(room_id, ([], []))
        if state_json:
            body["required_state"] = state_json
        if timeline_json:
            body["timeline"] = timeline_json
        limited = bool(read is not None and read.limited)
        body["limited"] = limited
        first_pos = timeline[0].stream_ordering if timeline else None
        body["prev_batch"] = to_token.with_stream(
            "events", (first_pos - 1) if first_pos is not None else work.upto
        ).serialize()
        since = from_token.events if from_token is not None else None
        body["num_live"] = (
            0 if since is None else sum(1 for e in timeline if (e.stream_ordering or 0) > since)
        )
        joined, invited = counts.get(room_id, (0, 0))
        body["joined_count"] = joined
        body["invited_count"] = invited
        notes, highlights = unread.get(room_id, (0, 0))
        body["notification_count"] = notes
        body["highlight_count"] = highlights
        body["bump_stamp"] = room.bump_stamp
        if work.want.is_dm:
            body["is_dm"] = True
        return body

    async def _unread_counts(self, user_id: str, works: list[_Work]) -> dict[str, tuple[int, int]]:
        counter = self._unread.get("counter")
        joined = [w.want.room.room_id for w in works if w.want.room.membership == "join"]
        if counter is None or not joined:
            return {}
        counts = await counter.unread_counts(user_id, joined)
        return {room: (c.notification_count, c.highlight_count) for room, c in counts.items()}

    async def _heroes(
        self, user_id: str, works: list[_Work], events: Mapping[str, StoredEvent]
    ) -> dict[str, list[dict[str, Any]]]:
        """Heroes of rooms with neither name nor canonical alias: up to five other
        members, with their display names and avatars from their member events."""
        unnamed = []
        for work in works:
            name_event = events.get(work.end_state.get(NAME, ""))
            if name_event is not None and name_event.event.content.get("name"):
                continue
            unnamed.append(work)
        if not unnamed:
            return {}
        state = self._stores.state
        room_ids = [w.want.room.room_id for w in unnamed]
        generations = {r: state.member_generation(r) for r in room_ids}
        found = await self._stores.sync.heroes(room_ids, user_id, generations)
        wanted = {
            w.end_state[(MEMBER, hero)]
            for w in unnamed
            for hero in found.get(w.want.room.room_id, [])
            if (MEMBER, hero) in w.end_state
        }
        member_events = await self._stores.events.get_events(wanted) if wanted else {}
        result: dict[str, list[dict[str, Any]]] = {}
        for work in unnamed:
            room_id = work.want.room.room_id
            entries = []
            for hero in found.get(room_id, []):
                entry: dict[str, Any] = {"user_id": hero}
                stored = member_events.get(work.end_state.get((MEMBER, hero), ""))
                if stored is not None:
                    content = stored.event.content
                    if isinstance(content.get("displayname"), str):
                        entry["displayname"] = content["displayname"]
                    if isinstance(content.get("avatar_url"), str):
                        entry["avatar_url"] = content["avatar_url"]
                entries.append(entry)
            if entries:
                result[room_id] = entries
        return result

    async def _stripped(
        self,
        user_id: str,
        device_id: str,
        wants: Sequence[RoomWant],
        previous: Mapping[str, RoomStatus],
        to_token: SyncToken,
        results: dict[str, dict[str, Any]],
    ) -> None:
        """Invites and knocks the connection does not hold as they are now."""
        fresh = []
        for want in wants:
            status = previous.get(want.room.room_id)
            if (
                status is not None
                and status.membership == want.room.membership
                and status.membership_stream == want.room.membership_stream
            ):
                continue
            fresh.append((want, status))
        if not fresh:
            return
        ids = [w.room.membership_event_id for w, _ in fresh]
        kept = await self._stores.sync.stripped_states(ids)
        stored = await self._stores.events.get_events(ids)
        for want, status in fresh:
            event = stored.get(want.room.membership_event_id)
            if event is None:
                continue
            [rendered] = await self._serializer.serialize(
                [event], user_id=user_id, device_id=device_id, include_room_id=False
            )
            unsigned = rendered.get("unsigned", {})
            carried = unsigned.pop("invite_room_state", None) or unsigned.pop(
                "knock_room_state", None
            )
            state = kept.get(event.event_id) or (carried if isinstance(carried, list) else [])
            key = "invite_state" if want.room.membership == "invite" else "knock_state"
            body: dict[str, Any] = {
                key: [*state, rendered],
                "bump_stamp": want.room.bump_stamp,
                "notification_count": 0,
                "highlight_count": 0,
            }
            if status is None:
                body["initial"] = True
            if want.is_dm:
                body["is_dm"] = True
            name = want.room.name
            if name:
                body["name"] = name
            results[want.room.room_id] = body

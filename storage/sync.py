"""Batched reads for /sync: one statement for many rooms, never one per room.

Per-room "latest N events in a range" is a UNION ALL of small indexed subqueries
(each uses ``events_room_stream``), which both engines run without scanning a
room's whole history; state groups of many rooms are resolved with one recursive
query for the delta chains and one for their entries, and cached (groups never change).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from storage.cache_stats import CacheStats
from storage.database import Database
from storage.state import StateMap

_CHUNK = 100  # rooms per UNION ALL statement
_IN_CHUNK = 500  # values per IN (...) list


@dataclass(frozen=True)
class MembershipRow:
    """One of the user's membership events, in the room-events stream."""

    room_id: str
    event_id: str
    membership: str
    stream: int


@dataclass(frozen=True, slots=True)
class EventPosition:
    room_id: str
    event_id: str
    stream: int
    state_group: int | None


class RecentRoomEvents:
    """The latest timeline events of recently active rooms, kept in step with commits,
    so that /sync's "latest events in (after, upto]" of a busy room needs no query.

    A room's entry holds every timeline event (accepted, not soft-failed, not an
    outlier) committed with a stream position above its ``complete_after``. An entry
    starts when the room's first event commits after :meth:`start` (its
    ``complete_after`` is the highest position committed before: anything above that
    commits later and is added then); it keeps the newest ``per_room`` events
    (raising ``complete_after`` past what it drops), and the least recently active
    rooms are dropped beyond ``max_rooms``. One process writes: commits reach it
    through :meth:`committed`, called from the committing transaction's callbacks,
    before the stream position is marked finished.
    """

    def __init__(self, per_room: int = 100, max_rooms: int = 10_000) -> None:
        self._per_room = per_room
        self._max_rooms = max_rooms
        self._high: int | None = None  # highest position committed so far
        self._start = 0
        self._rooms: OrderedDict[str, tuple[list[EventPosition], int]] = OrderedDict()
        # room -> position of its latest membership change since start()
        self._member_changes: dict[str, int] = {}

    def start(self, committed_upto: int) -> None:
        """Begin tracking: every position up to ``committed_upto`` is committed."""
        self._high = self._start = committed_upto

    def membership_changed(self, room_id: str, stream: int) -> None:
        """A membership event of the room committed at ``stream`` (accepted, with a
        stream position: in the timeline, or out of band)."""
        if self._high is not None and stream > self._member_changes.get(room_id, 0):
            self._member_changes[room_id] = stream

    def memberships_unchanged(self, room_ids: Collection[str], since: int) -> bool:
        """True when no membership of these rooms changed after ``since`` (False when
        that is not known: before start(), or ``since`` is older than it)."""
        if self._high is None or since < self._start:
            return False
        return all(self._member_changes.get(r, 0) <= since for r in room_ids)

    def committed(self, event: EventPosition) -> None:
        if self._high is None:
            return
        entry = self._rooms.get(event.room_id)
        if entry is None:
            entry = ([], self._high)
        events, complete_after = entry
        if event.stream > complete_after:
            events.append(event)
            if len(events) > 1 and events[-2].stream > event.stream:
                events.sort(key=lambda e: e.stream)
            if len(events) > self._per_room:
                dropped = events[: len(events) - self._per_room]
                del events[: len(dropped)]
                complete_after = max(complete_after, dropped[-1].stream)
        self._rooms[event.room_id] = (events, complete_after)
        self._rooms.move_to_end(event.room_id)
        while len(self._rooms) > self._max_rooms:
            self._rooms.popitem(last=False)
        self._high = max(self._high, event.stream)

    def forget(self, room_id: str) -> None:
        """Drop the room's entry (its history was purged: the database answers)."""
        self._rooms.pop(room_id, None)

    def forget_all(self) -> None:
        """Commits of other processes may have been missed: drop every room's entry
        and what is known of memberships, and answer "not known" for every position
        up to the highest seen so far (entries start again above it)."""
        self._rooms.clear()
        self._member_changes.clear()
        if self._high is not None:
            self._start = self._high

    def committed_elsewhere(self, room_id: str, stream: int, *, membership: bool) -> None:
        """Another process committed an event of the room at ``stream``: the room's
        entry cannot follow that writer's commits (dropped: the database answers),
        and a membership change is remembered."""
        self._rooms.pop(room_id, None)
        if membership:
            self.membership_changed(room_id, stream)

    def latest(self, room_id: str, after: int, upto: int, limit: int) -> list[EventPosition] | None:
        """The room's latest ``limit`` timeline events in (after, upto], oldest first,
        or None when the entry cannot tell (the caller asks the database)."""
        entry = self._rooms.get(room_id)
        if entry is None:
            return None
        events, complete_after = entry
        found = [e for e in events if after < e.stream <= upto][-limit:]
        if after >= complete_after or len(found) >= limit:
            return found
        return None


def _heroes_without(active: list[str], inactive: list[str], user_id: str, limit: int) -> list[str]:
    """Joined or invited members other than the user, else departed ones."""
    return [u for u in active if u != user_id][:limit] or [u for u in inactive if u != user_id][
        :limit
    ]


def _marks(start: int, count: int) -> str:
    return ", ".join(f"${start + i}" for i in range(count))


class SyncStore:
    def __init__(
        self, db: Database, group_cache_size: int = 10_000, *, heroes_cache_size: int = 10_000
    ) -> None:
        self.db = db
        self._heroes_cache_size = heroes_cache_size
        self.recent = RecentRoomEvents()
        # room -> ((state generation, limit), joined/invited candidates, departed ones)
        self._heroes: dict[str, tuple[tuple[int | None, int], list[str], list[str]]] = {}
        self._groups: OrderedDict[int, StateMap] = OrderedDict()
        self._group_cache_size = group_cache_size
        self.state_group_cache_stats = CacheStats(
            "*stateGroupCache*", lambda: len(self._groups), group_cache_size
        )

    def invalidate_room(self, room_id: str, position: int, *, membership: bool) -> None:
        """Another process committed an event of the room at ``position`` (0: purged
        it): its recent events and heroes are not known here any more."""
        self.recent.committed_elsewhere(room_id, position, membership=membership)
        self._heroes.pop(room_id, None)

    def clear_caches(self) -> None:
        """Notices from the other processes may have been missed: drop every room's
        heroes and recent events (state groups never change: kept)."""
        self._heroes.clear()
        self.recent.forget_all()

    def forget_purged(self, room_id: str, groups: Iterable[int]) -> None:
        """Drop what is cached of a room whose history (or whole self) was purged."""
        self.recent.forget(room_id)
        self._heroes.pop(room_id, None)
        for group in groups:
            self._groups.pop(group, None)

    # -- memberships -----------------------------------------------------------------

    async def membership_history(self, user_id: str) -> list[MembershipRow]:
        """Every accepted membership event of the user with a stream position (timeline
        ones, and out-of-band outliers such as remote invites), oldest first."""
        rows = await self.db.fetchall(
            "sync_membership_history",
            "SELECT m.room_id, m.event_id, m.membership, m.stream_ordering"
            " FROM room_memberships m JOIN events e ON e.event_id = m.event_id"
            " WHERE m.user_id = $1 AND m.stream_ordering IS NOT NULL"
            " AND NOT e.soft_failed AND e.rejected_reason IS NULL"
            " ORDER BY m.stream_ordering",
            user_id,
        )
        return [MembershipRow(r[0], r[1], r[2], int(r[3])) for r in rows]

    # -- events per room -------------------------------------------------------------

    async def latest_events(
        self, ranges: Sequence[tuple[str, int, int]], limit: int
    ) -> dict[str, list[EventPosition]]:
        """For each (room, after, upto): its latest ``limit`` timeline events in
        (after, upto], oldest first. Rejected, soft-failed and outlier events are left out.
        """
        result: dict[str, list[EventPosition]] = {room: [] for room, _a, _u in ranges}
        unknown: list[tuple[str, int, int]] = []
        for room_id, after, upto in ranges:
            known = self.recent.latest(room_id, after, upto, limit)
            if known is None:
                unknown.append((room_id, after, upto))
            else:
                result[room_id] = known
        for start in range(0, len(unknown), _CHUNK):
            chunk = unknown[start : start + _CHUNK]
            parts = []
            args: list[Any] = [limit]
            for i, (room_id, after, upto) in enumerate(chunk):
                base = 2 + 3 * i
                parts.append(
                    "SELECT * FROM (SELECT room_id, event_id, stream_ordering, state_group"
                    f" FROM events WHERE room_id = ${base} AND stream_ordering > ${base + 1}"
                    f" AND stream_ordering <= ${base + 2} AND NOT outlier AND NOT soft_failed"
                    " AND rejected_reason IS NULL ORDER BY stream_ordering DESC LIMIT $1)"
                    f" AS r{i}"
                )
                args += [room_id, after, upto]
            rows = await self.db.fetchall("sync_latest_events", " UNION ALL ".join(parts), *args)
            for room_id, event_id, stream, group in rows:
                result[room_id].append(
                    EventPosition(
                        room_id, event_id, int(stream), None if group is None else int(group)
                    )
                )
        for events in result.values():
            events.sort(key=lambda e: e.stream)
        return result

    async def latest_positions(self, room_ids: Collection[str]) -> dict[str, int]:
        """The stream position of each room's latest timeline event (for the notifier)."""
        found = await self.latest_events([(r, 0, 2**62) for r in room_ids], 1)
        return {room: events[-1].stream for room, events in found.items() if events}

    # -- state groups ----------------------------------------------------------------

    async def state_groups(self, groups: Collection[int]) -> dict[int, StateMap]:
        """The full state of each group (do not mutate the results)."""
        result: dict[int, StateMap] = {}
        missing: list[int] = []
        for group in set(groups):
            cached = self._groups.get(group)
            if cached is not None:
                self._groups.move_to_end(group)
                result[group] = cached
            else:
                missing.append(group)
        stats = self.state_group_cache_stats
        stats.hits += len(result)
        stats.misses += len(missing)
        if not missing:
            return result
        prev: dict[int, int | None] = {}
        async with self.db.transaction("sync_state_groups", readonly=True) as txn:
            for start in range(0, len(missing), _IN_CHUNK):
                chunk = missing[start : start + _IN_CHUNK]
                rows = await txn.fetchall(
                    "WITH RECURSIVE chain(id, prev_group) AS ("
                    f" SELECT id, prev_group FROM state_groups WHERE id IN ({_marks(1, len(chunk))})"
                    " UNION SELECT g.id, g.prev_group FROM state_groups g"
                    " JOIN chain c ON g.id = c.prev_group)"
                    " SELECT id, prev_group FROM chain",
                    *chunk,
                )
                for group_id, prev_group in rows:
                    prev[int(group_id)] = None if prev_group is None else int(prev_group)
            deltas: dict[int, list[tuple[str, str, str | None]]] = {g: [] for g in prev}
            ids = list(prev)
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = ids[start : start + _IN_CHUNK]
                rows = await txn.fetchall(
                    "SELECT state_group, type, state_key, event_id FROM state_group_entries"
                    f" WHERE state_group IN ({_marks(1, len(chunk))})",
                    *chunk,
                )
                for group_id, event_type, state_key, event_id in rows:
                    deltas[int(group_id)].append((event_type, state_key, event_id))
        resolved: dict[int, StateMap] = {}

        def resolve(group: int) -> StateMap:
            chain: list[int] = []
            current: int | None = group
            base: StateMap = {}
            while current is not None:
                known = resolved.get(current) or self._groups.get(current)
                if known is not None:
                    base = dict(known)
                    break
                chain.append(current)
                current = prev.get(current)
            for member in reversed(chain):
                for event_type, state_key, event_id in deltas.get(member, ()):
                    if event_id is None:
                        base.pop((event_type, state_key), None)
                    else:
                        base[(event_type, state_key)] = event_id
                resolved[member] = dict(base)
            return base

        for group in missing:
            state = resolve(group)
            result[group] = state
            self._remember(group, state)
        return result

    def _remember(self, group: int, state: StateMap) -> None:
        self._groups[group] = state
        self._groups.move_to_end(group)
        while len(self._groups) > self._group_cache_size:
            self._groups.popitem(last=False)
            self.state_group_cache_stats.evictions += 1

    async def room_versions(self, room_ids: Collection[str]) -> dict[str, str]:
        result: dict[str, str] = {}
        ids = list(room_ids)
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start : start + _IN_CHUNK]
            rows = await self.db.fetchall(
                "sync_room_versions",
                f"SELECT room_id, room_version FROM rooms WHERE room_id IN ({_marks(1, len(chunk))})",
                *chunk,
            )
            result.update({r: v for r, v in rows})
        return result

    # -- summaries -------------------------------------------------------------------

    async def heroes(
        self,
        room_ids: Collection[str],
        exclude_user: str,
        generations: Mapping[str, int],
        limit: int = 5,
    ) -> dict[str, list[str]]:
        """Up to ``limit`` members of each room other than ``exclude_user`` for
        ``m.heroes``: joined or invited ones by stream order, else left or banned ones.

        Each room's candidates are cached until its state changes: ``generations``
        holds ``StateStore.member_generation`` of each room, read before the call.
        """
        result: dict[str, list[str]] = {}
        missing: list[str] = []
        for room_id in room_ids:
            cached = self._heroes.get(room_id)
            if cached is not None and cached[0] == (generations[room_id], limit):
                result[room_id] = _heroes_without(cached[1], cached[2], exclude_user, limit)
            else:
                missing.append(room_id)
        # the room's first limit + 1 of each kind: enough once any one user is left out
        found = await self._hero_candidates(missing, limit + 1)
        for room_id in missing:
            active, inactive = found.get(room_id, ([], []))
            result[room_id] = _heroes_without(active, inactive, exclude_user, limit)
            self._heroes[room_id] = ((generations[room_id], limit), active, inactive)
            if len(self._heroes) > self._heroes_cache_size:
                self._heroes.pop(next(iter(self._heroes)))
        return result

    async def _hero_candidates(
        self, room_ids: list[str], limit: int
    ) -> dict[str, tuple[list[str], list[str]]]:
        """Each room's first ``limit`` joined or invited members by stream order, and
        its first ``limit`` departed ones."""
        result: dict[str, tuple[list[str], list[str]]] = {}
        for start in range(0, len(room_ids), _IN_CHUNK):
            chunk = room_ids[start : start + _IN_CHUNK]
            rows = await self.db.fetchall(
                "sync_heroes",
                "SELECT room_id, state_key, active FROM (SELECT c.room_id, c.state_key,"
                " CASE WHEN c.membership IN ('join', 'invite') THEN 1 ELSE 0 END AS active,"
                " ROW_NUMBER() OVER (PARTITION BY c.room_id,"
                " CASE WHEN c.membership IN ('join', 'invite') THEN 1 ELSE 0 END"
                " ORDER BY e.stream_ordering) AS rn"
                " FROM current_state c JOIN events e ON e.event_id = c.event_id"
                " WHERE c.type = 'm.room.member'"
                f" AND c.room_id IN ({_marks(2, len(chunk))})) AS h WHERE rn <= $1"
                " ORDER BY room_id, active DESC, rn",
                limit,
                *chunk,
            )
            by_room: dict[str, dict[int, list[str]]] = {}
            for room_id, user_id, active in rows:
                by_room.setdefault(room_id, {}).setdefault(int(active), []).append(user_id)
            for room_id, groups in by_room.items():
                result[room_id] = (groups.get(1, []), groups.get(0, []))
        return result

    # -- invites and knocks ------------------------------------------------------------

    async def stripped_states(self, event_ids: Collection[str]) -> dict[str, list[dict[str, Any]]]:
        """The stripped state kept for each invite or knock membership event."""
        result: dict[str, list[dict[str, Any]]] = {}
        ids = list(event_ids)
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start : start + _IN_CHUNK]
            rows = await self.db.fetchall(
                "sync_stripped_states",
                "SELECT event_id, stripped_state FROM invite_state"
                f" WHERE event_id IN ({_marks(1, len(chunk))})",
                *chunk,
            )
            for event_id, raw in rows:
                result[event_id] = list(json.loads(raw))
        return result

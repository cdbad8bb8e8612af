"""Room state: state groups stored as deltas, and the current state of each room.

A state group is the full state of a room at some point. It is stored either as a
full snapshot or as a delta over an earlier group of the room (its base; the rows of a
delta give the keys that changed, NULL for a removed key). Each group records
``chain_entries``: the delta rows a read of it goes through above its snapshot. A new
group is a delta over its base unless that count would exceed the size of its own
state; then it is a snapshot. So:

- reading a group reads at most about twice its state's size in rows (the snapshot,
  no larger than the state was then, and the deltas, no more rows than the state), in
  one query;
- storage is linear in the changes: a snapshot of ``S`` keys is only written after
  more than ``S`` delta rows since the last one, so snapshots cost at most as many
  rows as the deltas (a room built one state event at a time: one delta row per
  event, and snapshots at sizes that double).

Groups never change once written, so resolved groups are cached freely. Groups
written before migration 0039 (a snapshot every 50 groups) read the same way.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping

from storage.database import Database, Transaction

StateKey = tuple[str, str]
StateMap = dict[StateKey, str]
StateDelta = dict[StateKey, str | None]

# Read a group: its chain of bases down to a snapshot, then every row of the chain,
# the snapshot first (rows of a later group win).
_READ_GROUP_SQL = (
    "WITH RECURSIVE chain(id, prev_group, hops) AS ("
    " SELECT id, prev_group, 0 FROM state_groups WHERE id = $1"
    " UNION ALL SELECT g.id, g.prev_group, c.hops + 1 FROM state_groups g"
    " JOIN chain c ON g.id = c.prev_group)"
    " SELECT c.hops, e.type, e.state_key, e.event_id FROM chain c"
    " JOIN state_group_entries e ON e.state_group = c.id ORDER BY c.hops DESC"
)


async def read_state_group_txn(txn: Transaction, group: int) -> StateMap:
    """The full state of a group, read from the database in one query."""
    state: StateMap = {}
    for _hops, event_type, state_key, event_id in await txn.fetchall(_READ_GROUP_SQL, group):
        if event_id is None:
            state.pop((event_type, state_key), None)
        else:
            state[(event_type, state_key)] = event_id
    return state


def state_delta(base: Mapping[StateKey, str], state: Mapping[StateKey, str]) -> StateDelta:
    """What changed from ``base`` to ``state`` (None: the key was removed)."""
    changed: StateDelta = dict(state.items() - base.items())
    for key in base.keys() - state.keys():
        changed[key] = None
    return changed


class StateStore:
    def __init__(self, db: Database, cache_size: int = 2_000) -> None:
        self.db = db
        self._groups: OrderedDict[int, StateMap] = OrderedDict()
        # group -> (hops down to its snapshot, delta rows on the way), committed ones
        self._chains: OrderedDict[int, tuple[int, int]] = OrderedDict()
        # group -> (the group it was made from, the keys that changed), recent ones
        self._parents: OrderedDict[int, tuple[int, StateDelta]] = OrderedDict()
        # room -> the last group this process wrote for it (committed)
        self._latest: dict[str, int] = {}
        self._cache_size = cache_size
        self._group_ids = db.id_generator("state_group_id_seq", "SELECT MAX(id) FROM state_groups")
        self._current: dict[str, StateMap] = {}
        # room -> a state group holding its current state, when known
        self._current_groups: dict[str, int] = {}
        # room -> user -> membership, kept in step with committed current state
        self._members: dict[str, dict[str, str]] = {}
        self._member_generation: dict[str, int] = {}
        self._cleared = 0  # added to every room's generation: moves on clear_caches
        # user -> room -> membership (current state), dropped when one of them changes
        self._user_rooms: OrderedDict[str, dict[str, str]] = OrderedDict()
        self._membership_epoch = 0
        self._counts: dict[str, tuple[int, tuple[int, int]]] = {}
        self._joined_servers: dict[str, tuple[int, frozenset[str]]] = {}

    # -- state groups -------------------------------------------------------------

    async def store_state_group_txn(
        self,
        txn: Transaction,
        room_id: str,
        state: Mapping[StateKey, str],
        *,
        prev_group: int | None = None,
        prev_state: Mapping[StateKey, str] | None = None,
        changes: Mapping[StateKey, str | None] | None = None,
    ) -> int:
        """The group holding ``state``: a new one, stored as a delta over a base group
        or as a snapshot (see the module's docstring), or the base itself when the
        state is the same.

        The base is ``prev_group`` (whose state is ``prev_state``) when given, else the
        last group this process wrote for the room if its state is at hand. A caller
        that knows ``state`` is ``prev_state`` with ``changes`` applied passes them, so
        that nothing compares the two whole maps.
        """
        base: int | None = None
        base_state: Mapping[StateKey, str] | None = None
        if prev_group is not None and prev_state is not None:
            base, base_state = prev_group, prev_state
        elif prev_group is None:
            latest = self._latest.get(room_id)
            if latest is not None:
                base_state = self._groups.get(latest)
                base = latest if base_state is not None else None
        delta: StateDelta | None = None
        if base is not None and base_state is not None:
            if changes is not None and base == prev_group:
                delta = {k: e for k, e in changes.items() if base_state.get(k) != e}
            else:
                delta = state_delta(base_state, state)
            if not delta:
                return base
        group = await self._group_ids.next_id_txn(txn)
        hops, entries_above = 0, 0
        if base is not None and delta is not None:
            chain = await self._chain_txn(txn, base)
            if chain is not None and chain[1] + len(delta) <= len(state):
                hops, entries_above = chain[0] + 1, chain[1] + len(delta)
        if hops:
            assert delta is not None
            rows: list[tuple[int, str, str, str | None]] = [
                (group, t, k, e) for (t, k), e in delta.items()
            ]
        else:
            rows = [(group, t, k, e) for (t, k), e in state.items()]
        await txn.queue(
            "INSERT INTO state_groups (id, room_id, prev_group, chain_length, chain_entries)"
            " VALUES ($1, $2, $3, $4, $5)",
            group,
            room_id,
            base if hops else None,
            hops,
            entries_above,
        )
        await txn.executemany(
            "INSERT INTO state_group_entries (state_group, type, state_key, event_id)"
            " VALUES ($1, $2, $3, $4)",
            rows,
        )
        if base is not None and delta is not None:
            self._parents[group] = (base, delta)
            if len(self._parents) > self._cache_size:
                self._parents.popitem(last=False)
        # Known at once, so code running inside this transaction (push evaluation) can
        # read it; a group whose transaction fails is never referenced, its ID never reused.
        self._remember(group, dict(state))

        def committed() -> None:
            self._chains[group] = (hops, entries_above)
            if len(self._chains) > self._cache_size * 10:
                self._chains.popitem(last=False)
            self._latest[room_id] = group

        txn.call_after_commit(committed)
        return group

    async def _chain_txn(self, txn: Transaction, group: int) -> tuple[int, int] | None:
        """(hops down to the snapshot, delta rows on the way) of a stored group."""
        known = self._chains.get(group)
        if known is not None:
            return known
        row = await txn.fetchone(
            "SELECT chain_length, chain_entries FROM state_groups WHERE id = $1", group
        )
        return None if row is None else (int(row[0]), int(row[1]))

    def change_from_parent(self, group: int) -> tuple[int, Mapping[StateKey, str | None]] | None:
        """(the group it was made from, what changed: None for a removed key) for a
        group made recently by this process; None when that is not known."""
        return self._parents.get(group)

    def _remember(self, group: int, state: StateMap) -> None:
        self._groups[group] = state
        if len(self._groups) > self._cache_size:
            self._groups.popitem(last=False)

    async def get_state(self, group: int) -> StateMap:
        """The full state of a group (do not mutate the result)."""
        cached = self._groups.get(group)
        if cached is not None:
            self._groups.move_to_end(group)
            return cached
        async with self.db.transaction("get_state_group", readonly=True) as txn:
            state = await read_state_group_txn(txn, group)
        self._remember(group, state)
        return state

    async def get_state_for_groups(self, groups: Collection[int]) -> dict[int, StateMap]:
        return {g: await self.get_state(g) for g in set(groups)}

    # -- current state ------------------------------------------------------------

    def current_group(self, room_id: str) -> int | None:
        """A state group whose state is the room's current state, when this process
        knows one (it wrote that state)."""
        return self._current_groups.get(room_id)

    async def get_current_state(self, room_id: str) -> StateMap:
        """The room's current state (cached; do not mutate the result)."""
        cached = self._current.get(room_id)
        if cached is not None:
            return cached
        generation = self.member_generation(room_id)
        rows = await self.db.fetchall(
            "get_current_state",
            "SELECT type, state_key, event_id FROM current_state WHERE room_id = $1",
            room_id,
        )
        state = {(t, k): e for t, k, e in rows}
        # Cache only if no write to the room committed while we were reading.
        if self.member_generation(room_id) == generation:
            self._current.setdefault(room_id, state)
        return state

    async def set_current_state_txn(
        self,
        txn: Transaction,
        room_id: str,
        old: Mapping[StateKey, str],
        new: Mapping[StateKey, str],
        memberships: Mapping[str, str],
        *,
        changes: Mapping[StateKey, str | None] | None = None,
        group: int | None = None,
    ) -> None:
        """Write the difference between ``old`` and ``new`` current state.

        ``memberships`` gives the membership of each member event ID in ``new``;
        ``changes``, when given, the difference (None: a removed key), so that the
        maps are not compared; ``group``, when known, a state group holding ``new``.
        """
        if changes is None:
            changes = state_delta(old, new)
        removed = [k for k, e in changes.items() if e is None]
        changed = [(k, e) for k, e in changes.items() if e is not None]
        await txn.executemany(
            "DELETE FROM current_state WHERE room_id = $1 AND type = $2 AND state_key = $3",
            [(room_id, t, k) for t, k in removed],
        )
        await txn.executemany(
            "INSERT INTO current_state (room_id, type, state_key, event_id, membership)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (room_id, type, state_key)"
            " DO UPDATE SET event_id = excluded.event_id, membership = excluded.membership",
            [(room_id, t, k, e, memberships.get(e)) for (t, k), e in changed],
        )
        snapshot = dict(new)
        member_changes = {k: memberships.get(e) for (t, k), e in changed if t == "m.room.member"}
        member_removals = [k for t, k in removed if t == "m.room.member"]

        def update_caches() -> None:
            self._current[room_id] = snapshot
            if group is None:
                self._current_groups.pop(room_id, None)
            else:
                self._current_groups[room_id] = group
            self._member_generation[room_id] = self._member_generation.get(room_id, 0) + 1
            if member_changes or member_removals:
                self._membership_epoch += 1
                for user_id in (*member_changes, *member_removals):
                    self._user_rooms.pop(user_id, None)
            members = self._members.get(room_id)
            if members is None:
                return
            for user_id, membership in member_changes.items():
                if membership is None:
                    members.pop(user_id, None)
                else:
                    members[user_id] = membership
            for user_id in member_removals:
                members.pop(user_id, None)

        txn.call_after_commit(update_caches)

    def forget_purged(
        self, room_id: str, groups: Iterable[int], members: Iterable[str], *, whole_room: bool
    ) -> None:
        """Drop what is cached of state groups deleted by a purge, and of the room's
        current state and memberships when the whole room is gone."""
        for group in groups:
            self._groups.pop(group, None)
            self._chains.pop(group, None)
            self._parents.pop(group, None)
        # (a rewritten group's chain changed; a dropped one is no base any more)
        self._latest.pop(room_id, None)
        if not whole_room:
            return
        self.forget_current_state(room_id)
        self._member_generation[room_id] = self._member_generation.get(room_id, 0) + 1
        self._counts.pop(room_id, None)
        self._joined_servers.pop(room_id, None)
        self._membership_epoch += 1
        for user_id in members:
            self._user_rooms.pop(user_id, None)

    def invalidate_room(self, room_id: str, members: Collection[str] = ()) -> None:
        """Another process changed the room's current state: drop what is cached of
        it (current state, members, counts, joined servers; caches keyed by
        ``member_generation`` follow), and the rooms of ``members``, whose membership
        changed. A read racing this is not cached (the generation moved)."""
        self.forget_current_state(room_id)
        self._member_generation[room_id] = self._member_generation.get(room_id, 0) + 1
        self._counts.pop(room_id, None)
        self._joined_servers.pop(room_id, None)
        if members:
            self._membership_epoch += 1
            for user_id in members:
                self._user_rooms.pop(user_id, None)

    def invalidate_purged_room(self, room_id: str) -> None:
        """Another process purged the room: :meth:`invalidate_room`, and the rooms of
        every user cached as having a membership in it."""
        holders = [u for u, rooms in self._user_rooms.items() if room_id in rooms]
        self.invalidate_room(room_id, holders)
        self._membership_epoch += 1
        self._latest.pop(room_id, None)

    def clear_caches(self) -> None:
        """Notices from the other processes may have been missed: drop the current
        state, members, counts and joined servers of every room, and every user's
        rooms (state groups never change: kept). Every room's generation moves, so
        reads in flight are not cached and caches keyed by it follow."""
        self._current.clear()
        self._current_groups.clear()
        self._members.clear()
        self._counts.clear()
        self._joined_servers.clear()
        self._user_rooms.clear()
        self._cleared += 1
        self._membership_epoch += 1

    def forget_current_state(self, room_id: str) -> None:
        self._current.pop(room_id, None)
        self._current_groups.pop(room_id, None)
        self._members.pop(room_id, None)

    async def rooms_for_user(self, user_id: str) -> dict[str, str]:
        """room_id -> membership, for every room where the user has a current membership
        (cached; do not mutate)."""
        cached = self._user_rooms.get(user_id)
        if cached is not None:
            self._user_rooms.move_to_end(user_id)
            return cached
        epoch = self._membership_epoch
        rows = await self.db.fetchall(
            "rooms_for_user",
            "SELECT room_id, membership FROM current_state WHERE state_key = $1 AND type = 'm.room.member'",
            user_id,
        )
        found = {r: m for r, m in rows}
        if self._membership_epoch == epoch:  # no membership changed meanwhile
            self._user_rooms[user_id] = found
            if len(self._user_rooms) > self._cache_size * 10:
                self._user_rooms.popitem(last=False)
        return found

    async def current_members(self, room_id: str) -> dict[str, str]:
        """user_id -> membership in the room's current state (cached; do not mutate)."""
        return (await self.current_members_many([room_id]))[room_id]

    def member_generation(self, room_id: str) -> int:
        """Changes whenever the room's current state changes (for caches built on it)."""
        return self._member_generation.get(room_id, 0) + self._cleared

    async def joined_servers(self, room_id: str) -> frozenset[str]:
        """Servers with a joined member in the room's current state (cached until the
        state changes)."""
        generation = self.member_generation(room_id)
        cached = self._joined_servers.get(room_id)
        if cached is not None and cached[0] == generation:
            return cached[1]
        members = await self.current_members(room_id)
        servers = frozenset(
            user.partition(":")[2] for user, m in members.items() if m == "join" and ":" in user
        )
        if self.member_generation(room_id) == generation:
            self._joined_servers[room_id] = (generation, servers)
        return servers

    async def member_counts(self, room_ids: Collection[str]) -> dict[str, tuple[int, int]]:
        """(joined, invited) counts of each room's current members (cached)."""
        result: dict[str, tuple[int, int]] = {}
        missing = []
        for room_id in room_ids:
            cached = self._counts.get(room_id)
            if cached is not None and cached[0] == self.member_generation(room_id):
                result[room_id] = cached[1]
            else:
                missing.append(room_id)
        generations = {r: self.member_generation(r) for r in missing}
        for room_id, members in (await self.current_members_many(missing)).items():
            values = list(members.values())
            counts = (values.count("join"), values.count("invite"))
            result[room_id] = counts
            if self.member_generation(room_id) == generations[room_id]:
                self._counts[room_id] = (generations[room_id], counts)
        return result

    async def current_members_many(self, room_ids: Collection[str]) -> dict[str, dict[str, str]]:
        """Current members of several rooms, with one query for those not cached."""
        result: dict[str, dict[str, str]] = {}
        missing: list[str] = []
        for room_id in room_ids:
            cached = self._members.get(room_id)
            if cached is not None:
                result[room_id] = cached
            else:
                missing.append(room_id)
        for start in range(0, len(missing), 500):
            chunk = missing[start : start + 500]
            generations = {r: self.member_generation(r) for r in chunk}
            marks = ", ".join(f"${i + 1}" for i in range(len(chunk)))
            rows = await self.db.fetchall(
                "current_members",
                "SELECT room_id, state_key, membership FROM current_state"
                f" WHERE type = 'm.room.member' AND room_id IN ({marks})",
                *chunk,
            )
            fresh: dict[str, dict[str, str]] = {r: {} for r in chunk}
            for room_id, user_id, membership in rows:
                fresh[room_id][user_id] = membership
            for room_id, members in fresh.items():
                result[room_id] = members
                # Cache only if no write to the room committed while we were reading.
                if self.member_generation(room_id) == generations[room_id]:
                    self._members.setdefault(room_id, members)
        return result

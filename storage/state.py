"""Room state: state groups stored as deltas, and the current state of each room.

A state group is the full state of a room at some point. It is stored either as a
full snapshot or as a delta over a previous group; chains of deltas are bounded so a
lookup reads at most ``MAX_CHAIN`` groups. Groups never change once written, so
resolved groups are cached freely.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping

from storage.database import Database, Transaction

StateKey = tuple[str, str]
StateMap = dict[StateKey, str]

MAX_CHAIN = 50


class StateStore:
    def __init__(self, db: Database, cache_size: int = 2_000) -> None:
        self.db = db
        self._groups: OrderedDict[int, StateMap] = OrderedDict()
        self._chains: OrderedDict[int, int] = OrderedDict()
        # group -> (the group it was made from, the keys that changed), recent ones
        self._parents: OrderedDict[int, tuple[int, dict[StateKey, str | None]]] = OrderedDict()
        self._cache_size = cache_size
        self._group_ids = db.id_generator("state_group_id_seq", "SELECT MAX(id) FROM state_groups")
        self._current: dict[str, StateMap] = {}
        # room -> user -> membership, kept in step with committed current state
        self._members: dict[str, dict[str, str]] = {}
        self._member_generation: dict[str, int] = {}
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
    ) -> int:
        """Store ``state`` as a new group (a delta over ``prev_group`` when given)."""
        group = await self._group_ids.next_id_txn(txn)
        chain = 0
        if prev_group is not None and prev_state is not None:
            known = self._chains.get(prev_group)
            if known is None:
                row = await txn.fetchone(
                    "SELECT chain_length FROM state_groups WHERE id = $1", prev_group
                )
                known = int(row[0]) if row is not None else MAX_CHAIN
            chain = known + 1
        if prev_group is None or prev_state is None or chain > MAX_CHAIN:
            await txn.queue(
                "INSERT INTO state_groups (id, room_id, prev_group, chain_length) VALUES ($1, $2, NULL, 0)",
                group,
                room_id,
            )
            entries: list[tuple[int, str, str, str | None]] = [
                (group, t, k, e) for (t, k), e in state.items()
            ]
        else:
            await txn.queue(
                "INSERT INTO state_groups (id, room_id, prev_group, chain_length) VALUES ($1, $2, $3, $4)",
                group,
                room_id,
                prev_group,
                chain,
            )
            entries = [
                (group, t, k, e) for (t, k), e in state.items() if prev_state.get((t, k)) != e
            ]
            entries += [(group, t, k, None) for (t, k) in prev_state if (t, k) not in state]
        await txn.executemany(
            "INSERT INTO state_group_entries (state_group, type, state_key, event_id) VALUES ($1, $2, $3, $4)",
            entries,
        )
        snapshot = dict(state)
        length = 0 if chain > MAX_CHAIN or prev_group is None or prev_state is None else chain
        if prev_group is not None and prev_state is not None:
            changes: dict[StateKey, str | None]
            if length == 0:  # stored whole: the change from its parent is still useful
                changes = {k: e for k, e in state.items() if prev_state.get(k) != e}
                changes.update({k: None for k in prev_state if k not in state})
            else:
                changes = {(t, k): e for _g, t, k, e in entries}
            self._parents[group] = (prev_group, changes)
            if len(self._parents) > self._cache_size:
                self._parents.popitem(last=False)

        # Known at once, so code running inside this transaction (push evaluation) can
        # read it; a group whose transaction fails is never referenced, its ID never reused.
        self._remember(group, snapshot)

        def remember_chain() -> None:
            self._chains[group] = length
            if len(self._chains) > self._cache_size * 10:
                self._chains.popitem(last=False)

        txn.call_after_commit(remember_chain)
        return group

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
            chain: list[int] = []
            current: int | None = group
            base: StateMap = {}
            while current is not None:
                hit = self._groups.get(current)
                if hit is not None:
                    base = dict(hit)
                    break
                chain.append(current)
                current = await txn.fetchval(
                    "SELECT prev_group FROM state_groups WHERE id = $1", current
                )
            for member in reversed(chain):
                rows = await txn.fetchall(
                    "SELECT type, state_key, event_id FROM state_group_entries WHERE state_group = $1",
                    member,
                )
                for t, k, e in rows:
                    if e is None:
                        base.pop((t, k), None)
                    else:
                        base[(t, k)] = e
        self._remember(group, base)
        return base

    async def get_state_for_groups(self, groups: Collection[int]) -> dict[int, StateMap]:
        return {g: await self.get_state(g) for g in set(groups)}

    # -- current state ------------------------------------------------------------

    async def get_current_state(self, room_id: str) -> StateMap:
        """The room's current state (cached; do not mutate the result)."""
        cached = self._current.get(room_id)
        if cached is not None:
            return cached
        generation = self._member_generation.get(room_id, 0)
        rows = await self.db.fetchall(
            "get_current_state",
            "SELECT type, state_key, event_id FROM current_state WHERE room_id = $1",
            room_id,
        )
        state = {(t, k): e for t, k, e in rows}
        # Cache only if no write to the room committed while we were reading.
        if self._member_generation.get(room_id, 0) == generation:
            self._current.setdefault(room_id, state)
        return state

    async def set_current_state_txn(
        self,
        txn: Transaction,
        room_id: str,
        old: Mapping[StateKey, str],
        new: Mapping[StateKey, str],
        memberships: Mapping[str, str],
    ) -> None:
        """Write the difference between ``old`` and ``new`` current state.

        ``memberships`` gives the membership of each member event ID in ``new``.
        """
        removed = [k for k in old if k not in new]
        changed = [(k, e) for k, e in new.items() if old.get(k) != e]
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
        if not whole_room:
            return
        self.forget_current_state(room_id)
        self._member_generation[room_id] = self._member_generation.get(room_id, 0) + 1
        self._counts.pop(room_id, None)
        self._joined_servers.pop(room_id, None)
        self._membership_epoch += 1
        for user_id in members:
            self._user_rooms.pop(user_id, None)

    def forget_current_state(self, room_id: str) -> None:
        self._current.pop(room_id, None)
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
        return self._member_generation.get(room_id, 0)

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
            generations = {r: self._member_generation.get(r, 0) for r in chunk}
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
                if self._member_generation.get(room_id, 0) == generations[room_id]:
                    self._members.setdefault(room_id, members)
        return result

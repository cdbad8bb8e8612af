"""State groups as deltas (storage/state.py): every group reads back exactly, a room
built one state event at a time costs rows linear in its changes, and databases with
groups written before migration 0039 read the same and take new groups on top."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage.database import Database
from storage.migrations import apply_migrations
from storage.state import StateKey, StateMap, StateStore
from storage.sync import SyncStore

_rooms = itertools.count()

# One step: (which earlier group to start from, counted back from the newest; the key
# to change; set it (True) or remove it; whether the caller names the group it starts
# from, or lets the store find its base).
STEP = st.tuples(
    st.integers(min_value=0, max_value=3),
    st.integers(min_value=0, max_value=12),
    st.booleans(),
    st.booleans(),
)


async def _store(
    db: Database,
    store: StateStore,
    room_id: str,
    state: StateMap,
    prev: tuple[int, StateMap] | None = None,
    changes: dict[StateKey, str | None] | None = None,
) -> int:
    async with db.transaction("store_group") as txn:
        if prev is None:
            return await store.store_state_group_txn(txn, room_id, state)
        return await store.store_state_group_txn(
            txn, room_id, state, prev_group=prev[0], prev_state=prev[1], changes=changes
        )


async def _room_rows(db: Database, room_id: str) -> tuple[int, int]:
    """(groups, entry rows) the room's groups take."""
    groups = await db.fetchval("t", "SELECT COUNT(*) FROM state_groups WHERE room_id = $1", room_id)
    entries = await db.fetchval(
        "t",
        "SELECT COUNT(*) FROM state_group_entries e JOIN state_groups g ON g.id = e.state_group"
        " WHERE g.room_id = $1",
        room_id,
    )
    return int(groups), int(entries)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=st.lists(STEP, min_size=1, max_size=120))
async def test_groups_read_back_exactly(
    database: Database, steps: list[tuple[int, int, bool, bool]]
) -> None:
    room_id = f"!room{next(_rooms)}:test"
    store = StateStore(database, cache_size=8)
    model: dict[int, StateMap] = {}
    order: list[int] = []
    state: StateMap = {("m.room.create", ""): "$create"}
    group = await _store(database, store, room_id, state)
    model[group] = dict(state)
    order.append(group)
    for n, (back, key, present, named) in enumerate(steps):
        base = order[max(0, len(order) - 1 - back)]
        state = dict(model[base])
        state_key: StateKey = ("k", str(key))
        if present:
            state[state_key] = f"$e{n}"
        else:
            state.pop(state_key, None)
        if named:
            change = {state_key: state.get(state_key)}
            group = await _store(
                database, store, room_id, state, (base, model[base]), changes=change
            )
        else:
            group = await _store(database, store, room_id, state)
        assert model.setdefault(group, dict(state)) == state
        order.append(group)
    # Read by stores that have cached nothing.
    fresh = StateStore(database)
    for group, expected in model.items():
        assert await fresh.get_state(group) == expected
    assert await SyncStore(database).state_groups(list(model)) == model
    # No read goes through more delta rows than its state holds.
    rows = await database.fetchall(
        "t", "SELECT id, chain_entries FROM state_groups WHERE room_id = $1", room_id
    )
    for group_id, chain_entries in rows:
        assert int(chain_entries) <= max(1, len(model[int(group_id)]))


async def _build_room(db: Database, store: StateStore, room_id: str, count: int) -> int:
    """A room built one state event at a time; returns its last group."""
    state: StateMap = {("m.room.create", ""): "$create"}
    group = await _store(db, store, room_id, state)
    for n in range(count):
        key: StateKey = ("m.room.member", f"@u{n}:test")
        after = {**state, key: f"$join{n}"}
        group = await _store(db, store, room_id, after, (group, state), changes={key: after[key]})
        state = after
    return group


async def test_storage_grows_linearly_with_the_changes(database: Database) -> None:
    store = StateStore(database)
    small, large = "!small:test", "!large:test"
    await _build_room(database, store, small, 300)
    last = await _build_room(database, store, large, 600)
    small_groups, small_rows = await _room_rows(database, small)
    large_groups, large_rows = await _room_rows(database, large)
    assert (small_groups, large_groups) == (301, 601)
    # One delta row per event, and snapshots at sizes that double: under 4 rows an
    # event, and twice the events cost about twice the rows (not four times).
    assert small_rows < 4 * 301
    assert large_rows < 4 * 601
    assert large_rows <= 2 * small_rows + 64
    assert len(await StateStore(database).get_state(last)) == 601


async def test_same_state_reuses_the_group(database: Database) -> None:
    store = StateStore(database)
    state: StateMap = {("m.room.create", ""): "$create", ("m.room.name", ""): "$name"}
    group = await _store(database, store, "!same:test", state)
    again = await _store(database, store, "!same:test", dict(state), (group, state), changes={})
    # the store finds the room's last group itself when none is named
    found = await _store(database, store, "!same:test", dict(state))
    assert again == found == group
    assert await _room_rows(database, "!same:test") == (1, 2)


async def test_removed_keys_read_back_removed(database: Database) -> None:
    store = StateStore(database)
    state: StateMap = {("m.room.create", ""): "$create"}
    for n in range(20):
        state[("k", str(n))] = f"$e{n}"
    group = await _store(database, store, "!rm:test", state)
    after = {k: e for k, e in state.items() if k[1] not in ("3", "7")}
    changed = await _store(
        database,
        store,
        "!rm:test",
        after,
        (group, state),
        changes={("k", "3"): None, ("k", "7"): None},
    )
    assert await StateStore(database).get_state(changed) == after
    assert await SyncStore(database).state_groups([changed]) == {changed: after}


# -- groups written before migration 0039 -----------------------------------------------


async def test_groups_from_before_the_migration_read_and_extend(database: Database) -> None:
    """Groups of the old scheme (a snapshot, then up to 50 deltas) get their chain
    counts, read back the same, and new groups chain onto them."""
    room_id = "!old:test"
    async with database.transaction("back_to_0038") as txn:
        await txn.execute("ALTER TABLE state_groups DROP COLUMN chain_entries")
        await txn.execute("DELETE FROM schema_version WHERE version = 39")
        # group 1: a snapshot of 3 keys; groups 2..6: one change each (6 removes one)
        await txn.execute(
            "INSERT INTO state_groups (id, room_id, prev_group, chain_length)"
            " VALUES (9001, $1, NULL, 0)",
            room_id,
        )
        await txn.executemany(
            "INSERT INTO state_group_entries (state_group, type, state_key, event_id)"
            " VALUES ($1, $2, $3, $4)",
            [
                (9001, "m.room.create", "", "$create"),
                (9001, "k", "a", "$a"),
                (9001, "k", "b", "$b"),
            ],
        )
        for group in range(2, 7):
            await txn.execute(
                "INSERT INTO state_groups (id, room_id, prev_group, chain_length)"
                " VALUES ($1, $2, $3, $4)",
                9000 + group,
                room_id,
                8999 + group,
                group - 1,
            )
            await txn.execute(
                "INSERT INTO state_group_entries (state_group, type, state_key, event_id)"
                " VALUES ($1, $2, $3, $4)",
                9000 + group,
                "k",
                "a" if group == 6 else f"n{group}",
                None if group == 6 else f"$n{group}",
            )
    assert await apply_migrations(database) >= 39
    rows = await database.fetchall(
        "t", "SELECT id, chain_entries FROM state_groups WHERE room_id = $1 ORDER BY id", room_id
    )
    assert [(int(g) - 9000, int(c)) for g, c in rows] == [
        (1, 0),
        (2, 1),
        (3, 2),
        (4, 3),
        (5, 4),
        (6, 5),
    ]
    expected: StateMap = {
        ("m.room.create", ""): "$create",
        ("k", "b"): "$b",
        **{("k", f"n{g}"): f"$n{g}" for g in range(2, 6)},
    }
    store = StateStore(database)
    assert await store.get_state(9006) == expected
    # A new group over the old chain: its count continues from the old one's.
    after = {**expected, ("k", "c"): "$c"}
    group = await _store(
        database, store, room_id, after, (9006, expected), changes={("k", "c"): "$c"}
    )
    chain = await database.fetchone(
        "t", "SELECT prev_group, chain_entries FROM state_groups WHERE id = $1", group
    )
    assert chain is not None and (int(chain[0]), int(chain[1])) == (9006, 6)
    assert await StateStore(database).get_state(group) == after
    # A change that leaves the chain longer than the state: a snapshot.
    again = {k: e for k, e in after.items() if k != ("k", "n2")}
    last = await _store(
        database, store, room_id, again, (group, after), changes={("k", "n2"): None}
    )
    chain = await database.fetchone(
        "t", "SELECT prev_group, chain_entries FROM state_groups WHERE id = $1", last
    )
    assert chain is not None and (chain[0], int(chain[1])) == (None, 0)
    assert await StateStore(database).get_state(last) == again

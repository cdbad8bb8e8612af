"""Every table that can hold a room's rows is one a room purge deletes from (or keeps
on purpose): a table added with a room_id or event_id column fails here until
``storage/purge.py`` accounts for it."""

from __future__ import annotations

from storage.database import Database
from storage.purge import EVENT_TABLES, KEPT_ROOM_TABLES, ROOM_TABLES, SEARCH_TABLES
from tests.admin.rooms.tables import tables_with_column


async def test_every_room_table_is_accounted_for(database: Database) -> None:
    by_room = await tables_with_column(database, "room_id")
    # state_groups are deleted by room too, before their entries' parents go
    assert by_room == (
        set(ROOM_TABLES) | set(KEPT_ROOM_TABLES) | set(SEARCH_TABLES) | {"state_groups"}
    )


async def test_every_event_table_is_accounted_for(database: Database) -> None:
    by_event = await tables_with_column(database, "event_id")
    by_room = await tables_with_column(database, "room_id")
    # state_group_entries are deleted by the room's state groups
    assert by_event - by_room == {t for t, _c in EVENT_TABLES} | {"state_group_entries"}

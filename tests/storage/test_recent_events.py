"""The in-memory latest events of busy rooms (``storage.sync.RecentRoomEvents``):
answers only what it knows to be complete, whatever order commits come in."""

from __future__ import annotations

from storage.sync import EventPosition, RecentRoomEvents


def pos(stream: int, room: str = "!r:x") -> EventPosition:
    return EventPosition(room, f"$e{stream}", stream, stream * 10)


def streams(found: list[EventPosition] | None) -> list[int] | None:
    return None if found is None else [e.stream for e in found]


def test_nothing_is_known_before_start_or_for_rooms_without_commits() -> None:
    recent = RecentRoomEvents()
    recent.committed(pos(1))
    assert recent.latest("!r:x", 0, 10, 5) is None
    recent.start(5)
    assert recent.latest("!r:x", 0, 10, 5) is None
    assert recent.latest("!other:x", 5, 10, 5) is None


def test_ranges_above_the_start_are_answered_in_order() -> None:
    recent = RecentRoomEvents()
    recent.start(5)
    recent.committed(pos(6))
    recent.committed(pos(7, "!other:x"))
    recent.committed(pos(8))
    recent.committed(pos(9))
    assert streams(recent.latest("!r:x", 5, 9, 10)) == [6, 8, 9]
    assert streams(recent.latest("!r:x", 6, 8, 10)) == [8]
    assert streams(recent.latest("!r:x", 5, 9, 2)) == [8, 9]
    # below the start: the database knows; but the latest 1 at or before 9 is known
    assert recent.latest("!r:x", 0, 9, 10) is None
    assert streams(recent.latest("!r:x", 0, 9, 1)) == [9]
    # !other's entry began after 6 committed (in another room, as far as it knows)
    assert recent.latest("!other:x", 5, 9, 10) is None
    assert streams(recent.latest("!other:x", 6, 9, 10)) == [7]


def test_a_room_first_seen_after_others_is_complete_only_above_what_was_committed() -> None:
    recent = RecentRoomEvents()
    recent.start(0)
    recent.committed(pos(1, "!a:x"))
    recent.committed(pos(3, "!a:x"))  # 2 (in !b) is still being written
    recent.committed(pos(2, "!b:x"))  # !b's entry starts at 3: its 2 may not be alone
    assert recent.latest("!b:x", 0, 3, 10) is None
    assert streams(recent.latest("!b:x", 3, 9, 10)) == []
    recent.committed(pos(4, "!b:x"))
    assert streams(recent.latest("!b:x", 3, 9, 10)) == [4]


def test_out_of_order_commits_are_kept_sorted() -> None:
    recent = RecentRoomEvents()
    recent.start(0)
    recent.committed(pos(1))
    recent.committed(pos(3))
    recent.committed(pos(2))
    assert streams(recent.latest("!r:x", 0, 3, 10)) == [1, 2, 3]


def test_dropping_old_events_and_rooms_keeps_answers_exact() -> None:
    recent = RecentRoomEvents(per_room=3, max_rooms=2)
    recent.start(0)
    for stream in range(1, 7):
        recent.committed(pos(stream))
    assert streams(recent.latest("!r:x", 3, 6, 10)) == [4, 5, 6]
    assert recent.latest("!r:x", 2, 6, 10) is None  # 3 was dropped
    assert streams(recent.latest("!r:x", 0, 6, 2)) == [5, 6]
    recent.committed(pos(7, "!a:x"))
    recent.committed(pos(8, "!b:x"))  # the least recently active room goes
    assert recent.latest("!r:x", 5, 6, 10) is None
    assert streams(recent.latest("!b:x", 7, 8, 10)) == [8]

"""The pure rules of homeserver/rooms/guest_access.py."""

from __future__ import annotations

from homeserver.rooms.guest_access import guest_access_in_stripped, guests_may_join


def test_only_can_join_admits_guests() -> None:
    assert guests_may_join({"guest_access": "can_join"})
    for content in (None, {}, {"guest_access": "forbidden"}, {"guest_access": "CAN_JOIN"}):
        assert not guests_may_join(content)
    assert not guests_may_join({"guest_access": ["can_join"]})


def test_guest_access_in_stripped_state() -> None:
    create = {"type": "m.room.create", "state_key": "", "content": {}}
    access = {
        "type": "m.room.guest_access",
        "state_key": "",
        "content": {"guest_access": "can_join"},
    }
    assert guest_access_in_stripped([create, access]) == {"guest_access": "can_join"}
    assert guest_access_in_stripped([create]) is None
    assert guest_access_in_stripped([]) is None
    # another state key is another event; bad content counts as empty
    assert guest_access_in_stripped([{**access, "state_key": "x"}]) is None
    assert guest_access_in_stripped([{**access, "content": "can_join"}]) == {}

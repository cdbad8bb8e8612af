"""The pure rules of the space hierarchy, and the parsing of a remote answer."""

from __future__ import annotations

from typing import Any

from federation.hierarchy import parse_answer
from homeserver.spaces.rules import (
    RoomAccess,
    allowed_room_ids,
    ordered_children,
    server_may_see,
    space_child,
    user_may_see,
    valid_order,
)


def child(room_id: str, ts: int = 0, **content: Any) -> dict[str, Any]:
    return {
        "type": "m.space.child",
        "state_key": room_id,
        "sender": "@a:hs",
        "origin_server_ts": ts,
        "content": {"via": ["hs"], **content},
    }


def test_order_is_printable_ascii_of_at_most_50() -> None:
    assert valid_order("abc ~") == "abc ~"
    assert valid_order("x" * 50) == "x" * 50
    for bad in ("x" * 51, "tab\t", "é", 5, None):
        assert valid_order(bad) is None


def test_children_need_a_via_and_sort_by_order_then_ts_then_id() -> None:
    assert space_child(child("!a", via=[])) is None
    assert space_child(child("!a", via=["", 3])) is None
    assert space_child({**child("!a"), "type": "m.space.parent"}) is None
    assert space_child({**child("!a"), "state_key": ""}) is None
    events = [
        child("!z", ts=5),
        child("!y", ts=5),
        child("!x", ts=1),
        child("!w", ts=9, order="b"),
        child("!v", ts=9, order="a"),
        child("!u", ts=0, order="\n"),  # an invalid order counts as none
    ]
    assert [c.room_id for c in ordered_children(events)] == ["!v", "!w", "!u", "!x", "!y", "!z"]
    events[0]["content"]["suggested"] = True
    assert [c.room_id for c in ordered_children(events, suggested_only=True)] == ["!z"]


def test_who_may_see_a_room() -> None:
    invite_only = RoomAccess("invite", False, ())
    assert not user_may_see(invite_only, None, set())
    assert not user_may_see(invite_only, "leave", set())
    assert user_may_see(invite_only, "invite", set())
    assert user_may_see(RoomAccess("knock", False, ()), None, set())
    assert user_may_see(RoomAccess("invite", True, ()), None, set())
    restricted = RoomAccess("restricted", False, ("!space",))
    assert user_may_see(restricted, None, {"!space"})
    assert not user_may_see(restricted, None, {"!other"})
    assert server_may_see(restricted, False, True)
    assert not server_may_see(restricted, False, False)
    assert server_may_see(invite_only, True, False)
    rules = {
        "join_rule": "restricted",
        "allow": [
            {"type": "m.room_membership", "room_id": "!s"},
            {"type": "other", "room_id": "!t"},
            "junk",
        ],
    }
    assert allowed_room_ids(rules) == ("!s",)
    assert allowed_room_ids({"join_rule": "public", "allow": rules["allow"]}) == ()


def test_a_remote_answer_keeps_what_has_the_spec_shape() -> None:
    answer = {
        "room": {"room_id": "!r", "name": "R", "children_state": [child("!a"), {"bad": 1}, 7]},
        "children": [{"room_id": "!a", "name": "A"}, {"name": "no id"}, "junk"],
        "inaccessible_children": ["!b", 5],
    }
    parsed = parse_answer("!r", answer)
    assert parsed is not None
    assert parsed.room == {"room_id": "!r", "name": "R"}
    assert [c["state_key"] for c in parsed.children_state] == ["!a"]
    assert set(parsed.children) == {"!a"} and parsed.inaccessible == frozenset({"!b"})
    assert parse_answer("!other", answer) is None
    assert parse_answer("!r", []) is None
    assert parse_answer("!r", {"room": "x"}) is None

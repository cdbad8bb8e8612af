"""The pure filter model: parsing, validation and matching (client-server API: Filtering)."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.errors import MatrixError
from homeserver.sync.filters import (
    DEFAULT_TIMELINE_LIMIT,
    MAX_LIMIT,
    Filter,
    RoomEventFilter,
    parse_filter,
)


def ev(
    type_: str = "m.room.message",
    sender: str = "@a:x",
    room_id: str = "!r:x",
    content: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {"type": type_, "sender": sender, "room_id": room_id, "content": content or {}}


def test_default_filter() -> None:
    f = parse_filter({})
    assert f == Filter()
    assert f.room.timeline_limit == DEFAULT_TIMELINE_LIMIT
    assert f.event_format == "client" and f.event_fields is None
    assert f.room.timeline.matches(ev())
    assert not f.room.include_leave and not f.lazy_load_members


def test_types_with_wildcards_and_not_types() -> None:
    f = parse_filter(
        {"room": {"timeline": {"types": ["m.room.*", "org.x"], "not_types": ["m.room.member"]}}}
    )
    t = f.room.timeline
    assert t.matches(ev("m.room.message"))
    assert t.matches(ev("m.room.topic"))
    assert t.matches(ev("org.x"))
    assert not t.matches(ev("org.xy"))
    assert not t.matches(ev("m.room.member"))  # not_types wins over types
    assert not t.matches(ev("m.call.invite"))
    star = parse_filter({"presence": {"not_types": ["*"]}}).presence
    assert not star.matches(ev("m.presence"))
    middle = RoomEventFilter(types=("m.*.invite",))
    assert middle.matches(ev("m.call.invite")) and not middle.matches(ev("m.call.answer"))
    dots = RoomEventFilter(types=("m.room.messag?",))
    assert not dots.matches(ev("m.room.message"))  # only * is special


def test_senders_rooms_and_contains_url() -> None:
    f = parse_filter(
        {
            "room": {
                "timeline": {
                    "senders": ["@a:x", "@b:x"],
                    "not_senders": ["@b:x"],
                    "rooms": ["!r:x", "!s:x"],
                    "not_rooms": ["!s:x"],
                    "contains_url": True,
                }
            }
        }
    )
    t = f.room.timeline
    with_url = {"url": "mxc://x/y"}
    assert t.matches(ev(content=with_url))
    assert not t.matches(ev())  # no url
    assert not t.matches(ev(sender="@b:x", content=with_url))
    assert not t.matches(ev(sender="@c:x", content=with_url))
    assert not t.matches(ev(room_id="!s:x", content=with_url))
    assert not t.matches(ev(room_id="!t:x", content=with_url))
    no_url = parse_filter({"room": {"timeline": {"contains_url": False}}}).room.timeline
    assert no_url.matches(ev()) and not no_url.matches(ev(content=with_url))
    assert RoomEventFilter(senders=frozenset()).matches_nothing
    assert RoomEventFilter(types=()).matches_nothing


def test_room_filter_and_flags() -> None:
    f = parse_filter(
        {
            "room": {
                "rooms": ["!a:x"],
                "not_rooms": ["!b:x"],
                "include_leave": True,
                "state": {"lazy_load_members": True, "include_redundant_members": True},
                "timeline": {"limit": 5, "unread_thread_notifications": True},
                "ephemeral": {"types": ["m.typing"]},
                "account_data": {"not_types": ["m.tag"]},
            },
            "presence": {"senders": ["@a:x"]},
            "account_data": {"limit": 3},
            "event_fields": ["type", "content.body"],
            "event_format": "federation",
        }
    )
    assert f.room.allows_room("!a:x")
    assert not f.room.allows_room("!b:x") and not f.room.allows_room("!c:x")
    assert f.room.include_leave
    assert f.lazy_load_members and f.include_redundant_members
    assert f.room.timeline_limit == 5 and f.room.timeline.unread_thread_notifications
    assert f.room.ephemeral.matches({"type": "m.typing"})
    assert not f.room.ephemeral.matches({"type": "m.receipt"})
    assert not f.room.account_data.matches({"type": "m.tag"})
    assert f.presence.matches({"type": "m.presence", "sender": "@a:x"})
    assert not f.presence.matches({"type": "m.presence", "sender": "@b:x"})
    assert f.account_data.limit == 3
    assert f.event_fields == ("type", "content.body")
    assert f.event_format == "federation"


def test_limit_is_capped() -> None:
    assert parse_filter({"room": {"timeline": {"limit": 10**9}}}).room.timeline_limit == MAX_LIMIT


def test_limit_zero_is_accepted() -> None:
    """The spec asks for a limit above 0, but clients send 0 for "state only" and
    Synapse accepts it."""
    assert parse_filter({"room": {"timeline": {"limit": 0}}}).room.timeline_limit == 0


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ([], "M_BAD_JSON"),
        ({"room": []}, "M_BAD_JSON"),
        ({"room": {"timeline": "x"}}, "M_BAD_JSON"),
        ({"room": {"timeline": {"limit": "10"}}}, "M_BAD_JSON"),
        ({"room": {"timeline": {"limit": True}}}, "M_BAD_JSON"),
        ({"room": {"timeline": {"limit": 1.5}}}, "M_BAD_JSON"),
        ({"room": {"timeline": {"limit": -1}}}, "M_INVALID_PARAM"),
        ({"room": {"timeline": {"types": "m.room.message"}}}, "M_BAD_JSON"),
        ({"room": {"timeline": {"types": [1]}}}, "M_BAD_JSON"),
        ({"room": {"timeline": {"not_types": None}}}, "M_BAD_JSON"),
        ({"room": {"timeline": {"senders": ["alice"]}}}, "M_BAD_JSON"),
        ({"room": {"state": {"not_rooms": ["#alias:x"]}}}, "M_BAD_JSON"),
        ({"room": {"rooms": ["notaroom"]}}, "M_BAD_JSON"),
        ({"room": {"include_leave": "yes"}}, "M_BAD_JSON"),
        ({"room": {"state": {"lazy_load_members": 1}}}, "M_BAD_JSON"),
        ({"room": {"timeline": {"contains_url": "true"}}}, "M_BAD_JSON"),
        ({"presence": {"limit": -3}}, "M_INVALID_PARAM"),
        ({"account_data": []}, "M_BAD_JSON"),
        ({"event_format": "xml"}, "M_BAD_JSON"),
        ({"event_fields": "type"}, "M_BAD_JSON"),
        ({"event_fields": [""]}, "M_BAD_JSON"),
    ],
)
def test_invalid_filters(body: Any, errcode: str) -> None:
    with pytest.raises(MatrixError) as err:
        parse_filter(body)
    assert err.value.errcode == errcode
    assert err.value.status == 400


def test_unknown_keys_are_ignored() -> None:
    assert parse_filter({"org.example": 1, "room": {"x": 2}}) == Filter()

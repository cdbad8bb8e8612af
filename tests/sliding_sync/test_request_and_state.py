"""The pure parts of sliding sync: the request body, required_state, connections."""

from __future__ import annotations

import pytest

from homeserver.errors import MatrixError
from homeserver.sliding_sync.connections import (
    ConnectionState,
    SlidingSyncConnections,
    UnknownPos,
    format_pos,
    parse_pos,
)
from homeserver.sliding_sync.request import parse_request
from homeserver.sliding_sync.required_state import RequiredState, lazy_users_of
from homeserver.streams import SyncToken

ME = "@me:test"


def test_a_full_request_is_parsed() -> None:
    request = parse_request(
        {
            "conn_id": "main",
            "lists": {
                "all": {
                    "ranges": [[0, 19], [40, 59]],
                    "timeline_limit": 10,
                    "required_state": [["m.room.name", ""]],
                    "filters": {"is_dm": True, "room_types": [None, "m.space"], "tags": ["u"]},
                },
                "everything": {
                    "ranges": [[0, 1]],
                    "slow_get_all_rooms": True,
                    "timeline_limit": 0,
                    "required_state": [],
                },
            },
            "room_subscriptions": {"!r:x": {"required_state": [["*", "*"]], "timeline_limit": 1}},
            "extensions": {"to_device": {"enabled": True}},
        }
    )
    assert request.conn_id == "main"
    assert request.lists["all"].ranges == ((0, 19), (40, 59))
    filters = request.lists["all"].filters
    assert filters is not None and filters.is_dm is True
    assert filters.room_types == (None, "m.space")
    assert request.lists["everything"].ranges is None  # slow_get_all_rooms
    assert request.room_subscriptions["!r:x"].timeline_limit == 1
    assert request.extensions == {"to_device": {"enabled": True}}
    assert parse_request({}).lists == {}


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"conn_id": 5},
        {"lists": []},
        {"lists": {"l": {"timeline_limit": 1}}},
        {"lists": {"l": {"required_state": [], "timeline_limit": "1"}}},
        {"lists": {"l": {"required_state": [], "timeline_limit": -1}}},
        {"lists": {"l": {"required_state": [], "timeline_limit": 1001}}},
        {"lists": {"l": {"required_state": [["a", 1]], "timeline_limit": 1}}},
        {"lists": {"l": {"required_state": [], "timeline_limit": 1, "ranges": [[0]]}}},
        {"lists": {"l": {"required_state": [], "timeline_limit": 1, "ranges": [[-1, 2]]}}},
        {"lists": {"l": {"required_state": [], "timeline_limit": 1, "ranges": [[2, 1]]}}},
        {"lists": {"l": {"required_state": [], "timeline_limit": 1, "filters": {"is_dm": 1}}}},
        {"lists": {"x" * 65: {"required_state": [], "timeline_limit": 1}}},
        {"room_subscriptions": {"#alias:x": {"required_state": [], "timeline_limit": 1}}},
        {"extensions": []},
    ],
)
def test_bad_bodies_are_400(body: object) -> None:
    with pytest.raises(MatrixError) as raised:
        parse_request(body)
    assert raised.value.status == 400
    assert raised.value.errcode in ("M_BAD_JSON", "M_INVALID_PARAM")


def test_required_state_matching() -> None:
    rs = RequiredState.parse(
        [["m.room.name", ""], ["m.space.child", "*"], ["m.room.member", "$LAZY"], ["x", "$ME"]],
        ME,
    )
    assert rs.wants(("m.room.name", ""))
    assert not rs.wants(("m.room.topic", ""))
    assert rs.wants(("m.space.child", "!any:x"))
    assert rs.wants(("x", ME))
    assert not rs.wants(("m.room.member", "@bob:x"))
    assert rs.wants(("m.room.member", "@bob:x"), {"@bob:x"})
    everything = RequiredState.parse([["*", "*"]], ME)
    assert everything.wants(("anything", "at all"))
    assert RequiredState.parse([], ME).is_empty


def test_widening() -> None:
    narrow = RequiredState.parse([["m.room.name", ""]], ME)
    wide = RequiredState.parse([["m.room.name", ""], ["m.room.topic", ""]], ME)
    assert wide.widened_from(narrow) is not None
    extra = wide.widened_from(narrow)
    assert extra is not None and extra.wants(("m.room.topic", ""))
    assert not extra.wants(("m.room.name", ""))
    assert narrow.widened_from(wide) is None
    assert narrow.widened_from(narrow) is None
    assert RequiredState.parse([["*", "*"]], ME).widened_from(narrow) is not None


def test_lazy_users() -> None:
    events = [("m.room.message", "@a:x", None), ("m.room.member", "@b:x", "@c:x")]
    assert lazy_users_of(events) == {"@a:x", "@b:x", "@c:x"}


def test_positions_round_trip_and_bad_ones() -> None:
    token = SyncToken(events=5, receipts=2)
    assert parse_pos(format_pos(7, token)) == (7, token)
    for bad in ("", "7", "x/s1", "7/garbage", "-1/s1"):
        with pytest.raises(UnknownPos):
            parse_pos(bad)


def test_connections_keep_recent_states_and_are_bounded() -> None:
    store = SlidingSyncConnections(max_connections=3)
    store.start("@u:x", "D", "", 0)
    first = store.record("@u:x", "D", "", ConnectionState(), 0, None)
    second = store.record("@u:x", "D", "", ConnectionState(), 0, first)
    assert store.get("@u:x", "D", "", first, 0) is not None  # a retry may name it
    third = store.record("@u:x", "D", "", ConnectionState(), 0, second)
    with pytest.raises(UnknownPos):
        store.get("@u:x", "D", "", first, 0)  # older than what the client built on
    assert store.get("@u:x", "D", "", third, 0) is not None
    with pytest.raises(UnknownPos):
        store.get("@u:x", "OTHER", "", third, 0)
    for conn in ("a", "b", "c"):
        store.record("@v:x", "D", conn, ConnectionState(), 0, None)
    with pytest.raises(UnknownPos):
        store.get("@u:x", "D", "", third, 0)  # dropped, least recently used
    # a new start forgets the connection's states
    pos = store.record("@v:x", "D", "a", ConnectionState(), 0, None)
    store.start("@v:x", "D", "a", 0)
    with pytest.raises(UnknownPos):
        store.get("@v:x", "D", "a", pos, 0)

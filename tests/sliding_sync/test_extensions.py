"""Sliding sync extensions (MSC4186 with MSC3885, MSC3884, MSC3959, MSC3960, MSC3961):
request parsing, scoping, and each extension on initial and incremental requests,
computed directly on a homeserver whose users and rooms are made through the API."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.errors import MatrixError
from homeserver.sliding_sync.extensions import (
    ExtensionsRequest,
    ExtensionsState,
    RoomScope,
    SentRooms,
    SlidingSyncExtensions,
    ToDeviceRequest,
    has_news,
    parse_extensions,
)
from homeserver.streams import SyncToken
from tests.conftest import HomeserverHarness
from tests.e2ee.helpers import KeyedDevice, login_again
from tests.rooms.helpers import User, make_user

ALL_ON = {
    "to_device": {"enabled": True},
    "e2ee": {"enabled": True},
    "account_data": {"enabled": True},
    "receipts": {"enabled": True},
    "typing": {"enabled": True},
}


def extensions_of(hs: HomeserverHarness) -> SlidingSyncExtensions:
    ephemeral = hs.server.ephemeral
    assert ephemeral is not None
    e2ee = hs.server.client.e2ee
    return SlidingSyncExtensions.build(
        ephemeral.to_device,
        e2ee.keys,
        e2ee.device_lists,
        ephemeral.account_data,
        ephemeral.receipts,
        ephemeral.typing,
    )


def now(hs: HomeserverHarness) -> SyncToken:
    return hs.server.client.sync.current_token(None)


async def rooms_of(hs: HomeserverHarness, user: User) -> dict[str, str]:
    return dict(await hs.server.stores.state.rooms_for_user(user.user_id))


class Conn:
    """One sliding sync connection's view: its token and its extension state."""

    def __init__(self, hs: HomeserverHarness, user: User, body: dict[str, Any]) -> None:
        self.hs = hs
        self.user = user
        self.ext = extensions_of(hs)
        self.request = self.ext.parse(body)
        self.token: SyncToken | None = None
        self.state: ExtensionsState | None = ExtensionsState()

    async def sync(
        self,
        lists: dict[str, list[str]] | None = None,
        subscribed: list[str] | None = None,
        **kw: Any,
    ) -> dict[str, Any]:
        all_rooms = await rooms_of(self.hs, self.user)
        if lists is None:
            lists = {"all": sorted(all_rooms)}
        to_token = now(self.hs)
        response, state = await self.ext.compute_with_state(
            self.user.user_id,
            self.user.device_id,
            self.request,
            self.token,
            to_token,
            lists,
            subscribed or [],
            all_rooms,
            state=self.state,
            **kw,
        )
        self.token, self.state = to_token, state
        return response


# -- parsing ------------------------------------------------------------------------------


def test_parse_defaults_and_unknown_names() -> None:
    parsed = parse_extensions({**ALL_ON, "io.example.unknown": {"enabled": True}})
    assert parsed.to_device == ToDeviceRequest(100, None)
    assert parsed.e2ee
    assert parsed.account_data == RoomScope(("*",), ("*",))
    assert parsed.receipts == RoomScope(("*",), ("*",))
    assert parsed.typing == RoomScope(("*",), ("*",))
    assert parse_extensions(None) == ExtensionsRequest()
    assert not parse_extensions({}).any_enabled


def test_parse_disabled_and_nulls() -> None:
    parsed = parse_extensions(
        {
            "to_device": {"enabled": False, "since": "5"},
            "e2ee": {"enabled": None},
            "account_data": None,
            "receipts": {"enabled": True, "lists": None, "rooms": []},
            "typing": {"lists": ["a"]},
        }
    )
    assert parsed == ExtensionsRequest(receipts=RoomScope(None, ()))


def test_parse_to_device_fields() -> None:
    parsed = parse_extensions({"to_device": {"enabled": True, "limit": 500, "since": "42"}})
    assert parsed.to_device == ToDeviceRequest(100, 42)  # at most 100, as Synapse
    parsed = parse_extensions({"to_device": {"enabled": True, "limit": 3}})
    assert parsed.to_device == ToDeviceRequest(3, None)
    parsed = parse_extensions({"to_device": {"enabled": True, "since": "-7"}})
    assert parsed.to_device == ToDeviceRequest(100, 0)  # from the start, as Synapse


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ([], "M_BAD_JSON"),
        ("x", "M_BAD_JSON"),
        ({"to_device": []}, "M_BAD_JSON"),
        ({"to_device": {"enabled": "yes"}}, "M_BAD_JSON"),
        ({"e2ee": {"enabled": 1}}, "M_BAD_JSON"),
        ({"to_device": {"enabled": True, "limit": "10"}}, "M_BAD_JSON"),
        ({"to_device": {"enabled": True, "limit": True}}, "M_BAD_JSON"),
        ({"to_device": {"enabled": True, "limit": 1.5}}, "M_BAD_JSON"),
        ({"to_device": {"enabled": True, "limit": -1}}, "M_INVALID_PARAM"),
        ({"to_device": {"enabled": True, "since": 5}}, "M_BAD_JSON"),
        ({"to_device": {"enabled": True, "since": "abc"}}, "M_INVALID_PARAM"),
        ({"to_device": {"enabled": True, "since": "-"}}, "M_INVALID_PARAM"),
        ({"to_device": {"enabled": True, "since": ""}}, "M_INVALID_PARAM"),
        ({"to_device": {"enabled": True, "since": " 1"}}, "M_INVALID_PARAM"),
        ({"to_device": {"enabled": True, "since": "1e3"}}, "M_INVALID_PARAM"),
        ({"to_device": {"enabled": True, "since": "99999999999999999999"}}, "M_INVALID_PARAM"),
        ({"to_device": {"enabled": False, "since": "x"}}, "M_INVALID_PARAM"),
        ({"account_data": {"enabled": True, "lists": "*"}}, "M_BAD_JSON"),
        ({"receipts": {"enabled": True, "rooms": [1]}}, "M_BAD_JSON"),
        ({"typing": {"enabled": True, "lists": [None]}}, "M_BAD_JSON"),
        ({"typing": "on"}, "M_BAD_JSON"),
    ],
)
def test_parse_bad_input(body: object, errcode: str) -> None:
    with pytest.raises(MatrixError) as caught:
        parse_extensions(body)
    assert caught.value.status == 400
    assert caught.value.errcode == errcode


# -- scoping ------------------------------------------------------------------------------

LISTS = {"a": ["!1", "!2"], "b": ["!2", "!3"], "c": []}
SUBS = ["!s1", "!s2"]


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        (RoomScope(), {"!1", "!2", "!3", "!s1", "!s2"}),
        (RoomScope(("a",), ()), {"!1", "!2"}),
        (RoomScope(("b", "nope"), None), {"!2", "!3"}),
        (RoomScope(None, ("!s2", "!1", "!other")), {"!s2"}),
        (RoomScope((), ()), set()),
        (RoomScope(None, None), set()),
        (RoomScope(("c",), ("*",)), {"!s1", "!s2"}),
    ],
)
def test_scope_selects_rooms(scope: RoomScope, expected: set[str]) -> None:
    assert scope.select(LISTS, SUBS) == expected


def test_sent_rooms_fall_behind_only_when_live() -> None:
    sent = SentRooms(frozenset({"!a", "!b"}), {"!c": 3})
    after = sent.after_response({"!a", "!d"}, {"!b", "!c", "!e"}, 7)
    assert after.live == {"!a", "!d"}
    assert after.behind == {"!b": 7, "!c": 3}


# -- nothing enabled ----------------------------------------------------------------------


async def test_nothing_enabled_gives_empty_object(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    conn = Conn(hs, alice, {"to_device": {"enabled": False}, "unknown": {"enabled": True}})
    assert await conn.sync() == {}
    assert await conn.sync() == {}


async def test_enabled_extensions_present_even_when_empty(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    conn = Conn(hs, alice, ALL_ON)
    first = await conn.sync()
    assert set(first) == {"to_device", "e2ee", "account_data", "receipts", "typing"}
    assert first["to_device"]["events"] == []
    assert "device_lists" not in first["e2ee"]  # only on incremental requests
    second = await conn.sync()
    assert second["e2ee"]["device_lists"] == {"changed": [], "left": []}
    assert second["account_data"] == {"global": [], "rooms": {}}
    assert second["receipts"] == {"rooms": {}}
    assert second["typing"] == {"rooms": {}}
    assert not has_news(second)


# -- to_device ----------------------------------------------------------------------------


async def send_to_device(sender: User, target: User, n: int, txn: str) -> None:
    messages = {target.user_id: {target.device_id: {"n": n}}}
    await sender.request("PUT", f"/sendToDevice/m.test/{txn}", {"messages": messages})


async def test_to_device_initial_incremental_and_acknowledged(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    for n in range(3):
        await send_to_device(bob, alice, n, f"t{n}")
    ext = extensions_of(hs)
    request = ext.parse({"to_device": {"enabled": True, "limit": 2}})

    async def compute(since: str | None) -> dict[str, Any]:
        req = request
        if since is not None:
            req = ext.parse({"to_device": {"enabled": True, "limit": 2, "since": since}})
        out = await ext.compute(alice.user_id, alice.device_id, req, None, now(hs), {}, [], {})
        return dict(out["to_device"])

    first = await compute(None)
    assert [e["content"]["n"] for e in first["events"]] == [0, 1]
    assert first["events"][0]["sender"] == bob.user_id
    assert first["events"][0]["type"] == "m.test"
    # the same since again: the same messages (not acknowledged yet)
    assert await compute(None) == first
    second = await compute(first["next_batch"])
    assert [e["content"]["n"] for e in second["events"]] == [2]
    assert int(second["next_batch"]) == now(hs).to_device
    third = await compute(second["next_batch"])
    assert third == {"next_batch": second["next_batch"], "events": []}
    # acknowledged messages are deleted: asking from the start finds none
    assert (await compute(None))["events"] == []
    assert has_news({"to_device": second}) and not has_news({"to_device": third})


async def test_to_device_since_from_the_future_and_no_device(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    await send_to_device(bob, alice, 1, "t1")
    ext = extensions_of(hs)
    ahead = str(now(hs).to_device + 50)
    request = ext.parse({"to_device": {"enabled": True, "since": ahead}})
    out = await ext.compute(alice.user_id, alice.device_id, request, None, now(hs), {}, [], {})
    assert out["to_device"] == {"next_batch": ahead, "events": []}
    request = ext.parse({"to_device": {"enabled": True}})
    out = await ext.compute(alice.user_id, None, request, None, now(hs), {}, [], {})
    assert out["to_device"] == {"next_batch": str(now(hs).to_device), "events": []}
    # limit 0: nothing given, nothing skipped
    request = ext.parse({"to_device": {"enabled": True, "limit": 0}})
    out = await ext.compute(alice.user_id, alice.device_id, request, None, now(hs), {}, [], {})
    assert out["to_device"] == {"next_batch": "0", "events": []}
    request = ext.parse({"to_device": {"enabled": True}})
    out = await ext.compute(alice.user_id, alice.device_id, request, None, now(hs), {}, [], {})
    assert len(out["to_device"]["events"]) == 1


async def test_to_device_has_updates(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    ext = extensions_of(hs)
    request = ext.parse({"to_device": {"enabled": True}})
    since = now(hs)
    assert not ext.has_updates(alice.user_id, request, [], since)
    await send_to_device(bob, alice, 1, "t1")
    assert ext.has_updates(alice.user_id, request, [], since)
    assert not ext.has_updates(alice.user_id, ExtensionsRequest(), [], since)


# -- e2ee ---------------------------------------------------------------------------------


async def test_e2ee_key_counts_and_device_lists(hs: HomeserverHarness) -> None:
    alice = KeyedDevice(await make_user(hs, "alice"))
    bob = await make_user(hs, "bob")
    room = await alice.user.create_room(preset="public_chat")
    await bob.join(room)
    await alice.upload(
        device_keys=alice.device_keys(),
        one_time_keys=alice.one_time_keys(3),
        fallback_keys=alice.one_time_keys(1, fallback=True),
    )
    conn = Conn(hs, alice.user, {"e2ee": {"enabled": True}})
    first = (await conn.sync())["e2ee"]
    assert first["device_one_time_keys_count"]["signed_curve25519"] == 3
    assert first["device_unused_fallback_key_types"] == ["signed_curve25519"]
    assert "device_lists" not in first
    assert not has_news({"e2ee": first})  # key counts alone are no news, as Synapse

    since = conn.token
    assert since is not None
    await login_again(hs, bob)  # a new device of bob's: a device list change
    assert conn.ext.has_updates(alice.user_id, conn.request, [room], since)
    second = (await conn.sync())["e2ee"]
    assert second["device_lists"] == {"changed": [bob.user_id], "left": []}
    assert has_news({"e2ee": second})

    await bob.leave(room)
    third = (await conn.sync())["e2ee"]
    assert third["device_lists"] == {"changed": [], "left": [bob.user_id]}


# -- account data -------------------------------------------------------------------------


async def put_global(user: User, data_type: str, content: dict[str, Any]) -> None:
    await user.request("PUT", f"/user/{user.user_id}/account_data/{data_type}", content)


async def put_room(user: User, room_id: str, data_type: str, content: dict[str, Any]) -> None:
    path = f"/user/{user.user_id}/rooms/{room_id}/account_data/{data_type}"
    await user.request("PUT", path, content)


async def test_account_data_initial_and_incremental(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room1 = await alice.create_room()
    room2 = await alice.create_room()
    await put_global(alice, "org.example.g", {"v": 1})
    await put_room(alice, room1, "org.example.r", {"v": 1})
    await put_room(alice, room2, "org.example.r", {"v": 2})
    await alice.request("PUT", f"/user/{alice.user_id}/rooms/{room1}/tags/u.work", {})
    conn = Conn(hs, alice, {"account_data": {"enabled": True}})

    first = (await conn.sync(lists={"a": [room1]}))["account_data"]
    types = {e["type"] for e in first["global"]}
    assert {"org.example.g", "m.push_rules"} <= types  # push rules on initial, as Synapse
    assert set(first["rooms"]) == {room1}
    room1_types = {e["type"]: e["content"] for e in first["rooms"][room1]}
    assert room1_types["org.example.r"] == {"v": 1}
    assert room1_types["m.tag"] == {"tags": {"u.work": {}}}

    await put_global(alice, "org.example.g", {"v": 2})
    await put_room(alice, room1, "org.example.r", {"v": 3})
    second = (await conn.sync(lists={"a": [room1]}))["account_data"]
    assert second["global"] == [{"type": "org.example.g", "content": {"v": 2}}]
    assert second["rooms"] == {room1: [{"type": "org.example.r", "content": {"v": 3}}]}
    assert has_news({"account_data": second})

    third = (await conn.sync(lists={"a": [room1]}))["account_data"]
    assert third == {"global": [], "rooms": {}}


async def test_account_data_rooms_entering_the_window(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room1 = await alice.create_room()
    room2 = await alice.create_room()
    room3 = await alice.create_room()
    await put_room(alice, room3, "org.example.r", {"v": "old"})
    conn = Conn(hs, alice, {"account_data": {"enabled": True, "rooms": []}})
    await conn.sync(lists={"a": [room1, room2]})
    # room2 leaves the window, changes while out, and comes back: it gets the change
    await put_room(alice, room2, "org.example.r", {"v": "while out"})
    out = (await conn.sync(lists={"a": [room1]}))["account_data"]
    assert out["rooms"] == {}
    await put_room(alice, room1, "org.example.r", {"v": "in"})
    out = (await conn.sync(lists={"a": [room1]}))["account_data"]
    assert out["rooms"] == {room1: [{"type": "org.example.r", "content": {"v": "in"}}]}
    out = (await conn.sync(lists={"a": [room1, room2]}))["account_data"]
    assert out["rooms"] == {room2: [{"type": "org.example.r", "content": {"v": "while out"}}]}
    # a room never sent gets all of its account data when it first comes into range
    out = (await conn.sync(lists={"a": [room3]}))["account_data"]
    assert out["rooms"] == {room3: [{"type": "org.example.r", "content": {"v": "old"}}]}
    # without memory (state None) every room in scope counts as held
    await put_room(alice, room2, "org.example.r", {"v": "again"})
    conn.state = None
    out = (await conn.sync(lists={"a": [room1, room3]}))["account_data"]
    assert out["rooms"] == {}


async def test_account_data_scoping_by_list_and_subscription(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    rooms = [await alice.create_room() for _ in range(3)]
    for index, room in enumerate(rooms):
        await put_room(alice, room, "org.example.r", {"i": index})
    lists = {"one": [rooms[0]], "two": [rooms[1]]}
    body = {"account_data": {"enabled": True, "lists": ["two"], "rooms": [rooms[2]]}}
    out = (await Conn(hs, alice, body).sync(lists=lists, subscribed=[rooms[2]]))["account_data"]
    assert set(out["rooms"]) == {rooms[1], rooms[2]}
    body = {"account_data": {"enabled": True, "lists": [], "rooms": [rooms[2]]}}
    out = (await Conn(hs, alice, body).sync(lists=lists, subscribed=[]))["account_data"]
    assert out["rooms"] == {}  # a room not subscribed to is not in scope


# -- receipts -----------------------------------------------------------------------------


async def read(user: User, room_id: str, event_id: str, receipt_type: str = "m.read") -> None:
    await user.request("POST", f"/rooms/{room_id}/receipt/{receipt_type}/{event_id}", {})


async def test_receipts_initial_with_timeline_and_incremental(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    carol = await make_user(hs, "carol")
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    await carol.join(room)
    old = await bob.send(room, "old")
    recent = await bob.send(room, "recent")
    await read(alice, room, old)  # alice's own: always sent
    await read(carol, room, old)  # on an event outside the timeline: not sent
    await read(bob, room, recent)
    await read(carol, room, recent, "m.read.private")  # another's private: never sent
    conn = Conn(hs, alice, {"receipts": {"enabled": True}})
    first = (await conn.sync(timelines={room: [recent]}))["receipts"]
    event = first["rooms"][room]
    assert event["type"] == "m.receipt"
    assert set(event["content"]) == {old, recent}
    assert set(event["content"][old]["m.read"]) == {alice.user_id}
    assert set(event["content"][recent]) == {"m.read"}
    assert set(event["content"][recent]["m.read"]) == {bob.user_id}

    since = conn.token
    assert since is not None
    newest = await alice.send(room, "newest")
    await read(carol, room, newest)
    assert conn.ext.has_updates(alice.user_id, conn.request, [room], since)
    second = (await conn.sync(timelines={room: [newest]}))["receipts"]
    assert second["rooms"] == {
        room: {
            "type": "m.receipt",
            "content": {newest: {"m.read": {carol.user_id: {"ts": hs.clock.time_ms()}}}},
        }
    }
    assert has_news({"receipts": second})
    # a room sent afresh (initial: true) gets the receipts of its timeline again
    third = (await conn.sync(initial_rooms=[room], timelines={room: [recent]}))["receipts"]
    assert set(third["rooms"][room]["content"]) == {old, recent}


async def test_receipts_without_timelines_all_of_the_room(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    first = await bob.send(room, "one")
    await read(bob, room, first)
    out = (await Conn(hs, alice, {"receipts": {"enabled": True}}).sync())["receipts"]
    assert set(out["rooms"][room]["content"][first]["m.read"]) == {bob.user_id}


async def test_receipts_scoping_joined_rooms_and_out_of_range(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room1 = await bob.create_room(preset="public_chat")
    room2 = await bob.create_room(preset="public_chat")
    invited = await bob.create_room()
    await alice.join(room1)
    await alice.join(room2)
    await bob.invite(invited, alice.user_id)
    e_invited = await bob.send(invited, "hidden")
    await read(bob, invited, e_invited)
    conn = Conn(hs, alice, {"receipts": {"enabled": True, "rooms": []}})
    out = (await conn.sync(lists={"a": [room1, room2, invited]}))["receipts"]
    assert invited not in out["rooms"]  # an invite shows no receipts
    # room2 leaves the window and gets a receipt; when it comes back it is sent
    e2 = await bob.send(room2, "two")
    await read(bob, room2, e2)
    out = (await conn.sync(lists={"a": [room1]}))["receipts"]
    assert out["rooms"] == {}
    out = (await conn.sync(lists={"a": [room1, room2]}))["receipts"]
    assert set(out["rooms"]) == {room2}
    assert set(out["rooms"][room2]["content"][e2]["m.read"]) == {bob.user_id}


# -- typing -------------------------------------------------------------------------------


async def typing(user: User, room_id: str, on: bool) -> None:
    body = {"typing": on, "timeout": 30_000} if on else {"typing": False}
    await user.request("PUT", f"/rooms/{room_id}/typing/{user.user_id}", body)


async def test_typing_initial_incremental_and_scoping(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room1 = await bob.create_room(preset="public_chat")
    room2 = await bob.create_room(preset="public_chat")
    await alice.join(room1)
    await alice.join(room2)
    await typing(bob, room1, True)
    await typing(bob, room2, True)
    conn = Conn(hs, alice, {"typing": {"enabled": True, "lists": ["a"], "rooms": []}})
    first = (await conn.sync(lists={"a": [room1], "b": [room2]}))["typing"]
    assert first == {"rooms": {room1: {"type": "m.typing", "content": {"user_ids": [bob.user_id]}}}}
    since = conn.token
    assert since is not None
    assert (await conn.sync(lists={"a": [room1]}))["typing"] == {"rooms": {}}
    await typing(bob, room1, False)
    assert conn.ext.has_updates(alice.user_id, conn.request, [room1], since)
    second = (await conn.sync(lists={"a": [room1]}))["typing"]
    assert second == {"rooms": {room1: {"type": "m.typing", "content": {"user_ids": []}}}}
    assert has_news({"typing": second})


async def test_typing_not_shown_for_rooms_not_joined(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await bob.create_room()
    await bob.invite(room, alice.user_id)
    await typing(bob, room, True)
    conn = Conn(hs, alice, {"typing": {"enabled": True}})
    assert (await conn.sync(lists={"a": [room]}))["typing"] == {"rooms": {}}


# -- all together -------------------------------------------------------------------------


async def test_all_extensions_together(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    conn = Conn(hs, alice, ALL_ON)
    await conn.sync()
    since = conn.token
    assert since is not None
    assert not conn.ext.has_updates(alice.user_id, conn.request, [room], since)
    await send_to_device(bob, alice, 1, "x1")
    event = await bob.send(room, "hi")
    await read(bob, room, event)
    await typing(bob, room, True)
    await put_room(alice, room, "org.example.r", {"v": 1})
    assert conn.ext.has_updates(alice.user_id, conn.request, [room], since)
    out = await conn.sync()
    assert len(out["to_device"]["events"]) == 1
    assert out["account_data"]["rooms"] == {room: [{"type": "org.example.r", "content": {"v": 1}}]}
    assert list(out["receipts"]["rooms"]) == [room]
    assert list(out["typing"]["rooms"]) == [room]
    assert has_news(out)

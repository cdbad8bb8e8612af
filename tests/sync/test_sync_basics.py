"""GET /sync: initial and incremental syncs, timelines, state, membership sections."""

from __future__ import annotations

from typing import Any

from tests.conftest import HomeserverHarness
from tests.rooms.helpers import User, make_user


def _types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


async def test_initial_sync_shape(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room(name="Lobby")
    event_id = await alice.send(room_id, "hello")
    body = await alice.sync()
    assert body["next_batch"].startswith("s")
    assert set(body["rooms"]) == {"join", "invite", "leave", "knock"}
    room = body["rooms"]["join"][room_id]
    timeline = room["timeline"]
    assert timeline["events"][-1]["event_id"] == event_id
    assert timeline["events"][-1]["unsigned"]["transaction_id"].startswith("t")
    assert "room_id" not in timeline["events"][-1]
    assert isinstance(timeline["limited"], bool)
    assert timeline["prev_batch"].startswith("s")
    assert room["ephemeral"] == {"events": []}
    assert room["account_data"] == {"events": []}
    assert room["unread_notifications"] == {"highlight_count": 0, "notification_count": 0}
    assert room["summary"]["m.joined_member_count"] == 1
    assert room["summary"]["m.invited_member_count"] == 0
    assert "m.heroes" not in room["summary"]  # the room has a name
    # timeline + state = the whole current state, without overlap
    state_ids = {e["event_id"] for e in room["state"]["events"]}
    timeline_ids = {e["event_id"] for e in timeline["events"]}
    assert not state_ids & timeline_ids
    all_types = _types(room["state"]["events"]) + _types(timeline["events"])
    assert {"m.room.create", "m.room.member", "m.room.power_levels", "m.room.name"} <= set(
        all_types
    )
    # filled by the account data and presence streams
    assert isinstance(body["account_data"]["events"], list)
    assert isinstance(body["presence"]["events"], list)


async def test_incremental_sync_returns_only_new_events(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room()
    first = await alice.sync()
    since = first["next_batch"]
    quiet = await alice.sync(since=since)
    assert quiet["rooms"]["join"] == {}
    assert quiet["next_batch"] == since
    e1 = await alice.send(room_id, "one")
    e2 = await alice.send(room_id, "two")
    body = await alice.sync(since=since)
    room = body["rooms"]["join"][room_id]
    assert [e["event_id"] for e in room["timeline"]["events"]] == [e1, e2]
    assert room["timeline"]["limited"] is False
    assert room["state"]["events"] == []
    assert body["next_batch"] != since
    again = await alice.sync(since=body["next_batch"])
    assert again["rooms"]["join"] == {}


async def test_limited_timeline_prev_batch_and_messages(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room()
    since = (await alice.sync())["next_batch"]
    sent = [await alice.send(room_id, f"m{i}") for i in range(8)]
    flt = '{"room": {"timeline": {"limit": 3}}}'
    room = (await alice.sync(since=since, filter=flt))["rooms"]["join"][room_id]
    timeline = room["timeline"]
    assert timeline["limited"] is True
    assert [e["event_id"] for e in timeline["events"]] == sent[-3:]
    # prev_batch continues backwards with /messages from just before the timeline
    older = await alice.request(
        "GET",
        f"/rooms/{room_id}/messages",
        params={"from": timeline["prev_batch"], "dir": "b", "limit": "2"},
    )
    assert [e["event_id"] for e in older["chunk"]] == [sent[4], sent[3]]
    # an initial sync with the same small limit is limited too
    initial = (await alice.sync(filter=flt))["rooms"]["join"][room_id]["timeline"]
    assert initial["limited"] is True and len(initial["events"]) == 3


async def test_state_delta_over_a_gap(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room()
    since = (await alice.sync())["next_batch"]
    await alice.request("PUT", f"/rooms/{room_id}/state/m.room.topic/", {"topic": "new"})
    for i in range(5):
        await alice.send(room_id, f"m{i}")
    flt = '{"room": {"timeline": {"limit": 2}}}'
    room = (await alice.sync(since=since, filter=flt))["rooms"]["join"][room_id]
    assert room["timeline"]["limited"] is True
    assert [(e["type"], e["content"]) for e in room["state"]["events"]] == [
        ("m.room.topic", {"topic": "new"})
    ]
    # the topic change inside a non-limited timeline is not repeated in state
    since = (await alice.sync())["next_batch"]
    await alice.request("PUT", f"/rooms/{room_id}/state/m.room.topic/", {"topic": "newer"})
    room = (await alice.sync(since=since))["rooms"]["join"][room_id]
    assert room["state"]["events"] == []
    assert room["timeline"]["events"][0]["content"] == {"topic": "newer"}
    assert room["timeline"]["events"][0]["unsigned"]["prev_content"] == {"topic": "new"}


async def test_use_state_after(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room()
    since = (await alice.sync())["next_batch"]
    topic = await alice.request("PUT", f"/rooms/{room_id}/state/m.room.topic/", {"topic": "t"})
    room = (await alice.sync(since=since, use_state_after="true"))["rooms"]["join"][room_id]
    assert "state" not in room
    assert [e["event_id"] for e in room["state_after"]["events"]] == [topic["event_id"]]
    initial = (await alice.sync(use_state_after="true"))["rooms"]["join"][room_id]
    types = {e["type"] for e in initial["state_after"]["events"]}
    assert {"m.room.create", "m.room.topic", "m.room.member"} <= types


async def test_invite_join_leave_forget(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room(name="Club", preset="private_chat")
    since = (await bob.sync())["next_batch"]
    await alice.invite(room_id, bob.user_id)

    body = await bob.sync(since=since)
    invite = body["rooms"]["invite"][room_id]["invite_state"]["events"]
    assert ("m.room.name", "") in [(e["type"], e["state_key"]) for e in invite]
    assert invite[-1]["type"] == "m.room.member"
    assert invite[-1]["state_key"] == bob.user_id
    assert invite[-1]["content"]["membership"] == "invite"
    assert body["rooms"]["join"] == {}
    since = body["next_batch"]
    assert (await bob.sync(since=since))["rooms"]["invite"] == {}
    assert room_id in (await bob.sync())["rooms"]["invite"]

    await bob.join(room_id)
    body = await bob.sync(since=since)
    assert body["rooms"]["invite"] == {}
    room = body["rooms"]["join"][room_id]
    # history visibility "shared": the room's history up to the join is bob's to see,
    # what the timeline does not hold is in the state at its start
    seen_types = {e["type"] for e in room["state"]["events"] + room["timeline"]["events"]}
    assert {"m.room.create", "m.room.power_levels", "m.room.name"} <= seen_types
    assert room["timeline"]["events"][-1]["state_key"] == bob.user_id
    assert room["summary"]["m.joined_member_count"] == 2
    since = body["next_batch"]

    await alice.send(room_id, "before bob leaves")
    await bob.leave(room_id)
    await alice.send(room_id, "after bob left")
    body = await bob.sync(since=since)
    assert room_id not in body["rooms"]["join"]
    left = body["rooms"]["leave"][room_id]
    bodies = [e["content"].get("body") for e in left["timeline"]["events"]]
    assert "before bob leaves" in bodies and "after bob left" not in bodies
    assert left["timeline"]["events"][-1]["content"]["membership"] == "leave"
    since = body["next_batch"]
    await alice.send(room_id, "later")
    assert (await bob.sync(since=since))["rooms"]["leave"] == {}

    include_leave = '{"room": {"include_leave": true}}'
    assert room_id not in (await bob.sync())["rooms"]["leave"]
    assert room_id in (await bob.sync(filter=include_leave))["rooms"]["leave"]
    await bob.request("POST", f"/rooms/{room_id}/forget", {})
    assert room_id not in (await bob.sync(filter=include_leave))["rooms"]["leave"]


async def test_rejected_invite_moves_to_leave_without_state(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room(preset="private_chat")
    await alice.send(room_id, "secret history")
    await alice.invite(room_id, bob.user_id)
    since = (await bob.sync())["next_batch"]
    await bob.leave(room_id)
    left = (await bob.sync(since=since))["rooms"]["leave"][room_id]
    assert [e["content"]["membership"] for e in left["timeline"]["events"]] == ["leave"]
    assert left["state"]["events"] == []


async def test_full_state_incremental(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room()
    since = (await alice.sync())["next_batch"]
    body = await alice.sync(since=since, full_state="true")
    room = body["rooms"]["join"][room_id]
    assert room["timeline"]["events"] == []
    assert {"m.room.create", "m.room.member"} <= {e["type"] for e in room["state"]["events"]}


async def test_heroes_for_unnamed_rooms(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    carol = await make_user(hs, "carol")
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id)
    await alice.invite(room_id, carol.user_id)
    summary = (await alice.sync())["rooms"]["join"][room_id]["summary"]
    assert summary["m.heroes"] == [bob.user_id, carol.user_id]
    assert summary["m.joined_member_count"] == 2
    assert summary["m.invited_member_count"] == 1


async def test_timeline_limit_zero_gives_the_state_only(hs: HomeserverHarness) -> None:
    """A JSON filter in the query with ``timeline.limit`` 0: no timeline events, and
    the state section is the whole (filtered) current state, initial or incremental."""
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await alice.send(room_id, "before")
    flt = '{"room": {"timeline": {"limit": 0}, "state": {"types": ["m.room.member"]}}}'
    body = await alice.sync(filter=flt)
    room = body["rooms"]["join"][room_id]
    assert room["timeline"]["events"] == []
    assert [(e["type"], e["state_key"]) for e in room["state"]["events"]] == [
        ("m.room.member", alice.user_id)
    ]
    await bob.join(room_id)
    await alice.send(room_id, "after")
    room = (await alice.sync(filter=flt, since=body["next_batch"]))["rooms"]["join"][room_id]
    assert room["timeline"]["events"] == []
    assert [(e["state_key"], e["content"]["membership"]) for e in room["state"]["events"]] == [
        (bob.user_id, "join")
    ]


async def test_bad_parameters(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    for params, errcode in [
        ({"since": "garbage"}, "M_UNKNOWN"),
        ({"since": "s1_x"}, "M_UNKNOWN"),
        ({"timeout": "soon"}, "M_INVALID_PARAM"),
        ({"timeout": "-5"}, "M_INVALID_PARAM"),
        ({"full_state": "maybe"}, "M_INVALID_PARAM"),
        ({"set_presence": "busy"}, "M_INVALID_PARAM"),
        ({"filter": "{not json"}, "M_BAD_JSON"),
        ({"filter": '{"room": {"timeline": {"limit": "ten"}}}'}, "M_BAD_JSON"),
        ({"filter": '{"room": {"timeline": {"limit": -1}}}'}, "M_INVALID_PARAM"),
        ({"filter": "12345"}, "M_INVALID_PARAM"),
        ({"filter": "abc"}, "M_INVALID_PARAM"),
    ]:
        err = await alice.request("GET", "/sync", params=params, expect=400)
        assert err["errcode"] == errcode, (params, err)
    for presence in ("online", "offline", "unavailable"):
        await alice.sync(set_presence=presence)
    resp = await hs.client.get("/_matrix/client/v3/sync")
    assert resp.status == 401
    assert (await resp.json())["errcode"] == "M_MISSING_TOKEN"


async def test_sync_tokens_survive_a_restart(make_homeserver: Any) -> None:
    first = await make_homeserver()
    alice = await make_user(first, "alice")
    room_id = await alice.create_room()
    since = (await alice.sync())["next_batch"]
    await alice.send(room_id, "before restart")

    second = await make_homeserver()
    alice.hs = second
    body = await alice.sync(since=since)
    bodies = [
        e["content"].get("body") for e in body["rooms"]["join"][room_id]["timeline"]["events"]
    ]
    assert bodies == ["before restart"]
    since = body["next_batch"]
    event_id = await alice.send(room_id, "after restart")
    body = await alice.sync(since=since)
    assert [e["event_id"] for e in body["rooms"]["join"][room_id]["timeline"]["events"]] == [
        event_id
    ]


async def test_knock_section(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room(
        name="Knockable",
        initial_state=[
            {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}
        ],
    )
    since = (await bob.sync())["next_batch"]
    await bob.request("POST", f"/knock/{room_id}", {})
    body = await bob.sync(since=since)
    knock = body["rooms"]["knock"][room_id]["knock_state"]["events"]
    assert knock[-1]["content"]["membership"] == "knock"
    assert knock[-1]["state_key"] == bob.user_id
    assert ("m.room.name", "") in [(e["type"], e["state_key"]) for e in knock]
    assert room_id not in body["rooms"]["join"]


async def test_transaction_id_only_for_the_sending_device(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room()
    await alice.send(room_id, "mine")
    login = await hs.client.post(
        "/_matrix/client/v3/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "alice"},
            "password": "correct horse",
        },
    )
    other = User(hs, alice.user_id, (await login.json())["access_token"], "other")
    mine = (await alice.sync())["rooms"]["join"][room_id]["timeline"]["events"][-1]
    theirs = (await other.sync())["rooms"]["join"][room_id]["timeline"]["events"][-1]
    assert "transaction_id" in mine["unsigned"]
    assert "transaction_id" not in theirs["unsigned"]


async def test_many_rooms_in_one_initial_sync(hs: HomeserverHarness) -> None:
    """More rooms than one batched statement holds (100): every room is complete."""
    alice = await make_user(hs, "alice")
    rooms = []
    for i in range(105):
        hs.clock.advance(0.001)  # v12 room IDs hash the create event's timestamp
        rooms.append(await alice.create_room(name=f"r{i}"))
    body = await alice.sync()
    assert set(body["rooms"]["join"]) == set(rooms)
    for room in body["rooms"]["join"].values():
        types = {e["type"] for e in room["state"]["events"] + room["timeline"]["events"]}
        assert {"m.room.create", "m.room.name", "m.room.member"} <= types
    since = body["next_batch"]
    await alice.send(rooms[-1], "last")
    assert list((await alice.sync(since=since))["rooms"]["join"]) == [rooms[-1]]


async def test_next_batch_reads_on_forwards_in_messages(hs: HomeserverHarness) -> None:
    """A sync's next_batch as ``from`` of /messages (dir=f): the events sent since,
    with an ``end`` to read on from."""
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room()
    await alice.send(room_id, "1")
    body = await alice.sync(filter='{"room": {"timeline": {"limit": 1}}}')
    second = await alice.send(room_id, "2")
    page = await alice.request(
        "GET",
        f"/rooms/{room_id}/messages",
        params={"from": body["next_batch"], "dir": "f"},
    )
    assert [e["event_id"] for e in page["chunk"]] == [second]
    assert page["chunk"][0]["content"]["body"] == "2"
    assert page["start"] == body["next_batch"] and page["end"]
    third = await alice.send(room_id, "3")
    page = await alice.request(
        "GET", f"/rooms/{room_id}/messages", params={"from": page["end"], "dir": "f"}
    )
    assert [e["event_id"] for e in page["chunk"]] == [third]


async def test_prev_batch_of_a_whole_history_timeline(hs: HomeserverHarness) -> None:
    """An initial sync whose timeline holds the room's whole history gives the sync's
    position as prev_batch, as Synapse does: /messages from it reads the timeline
    again (lazy-loading its sender), then comes to the start of the room."""
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room(preset="public_chat")
    message = await alice.send(room_id, "Here is the message content")
    body = await alice.sync()
    timeline = body["rooms"]["join"][room_id]["timeline"]
    assert timeline["limited"] is False
    assert timeline["events"][0]["type"] == "m.room.create"
    page = await alice.request(
        "GET",
        f"/rooms/{room_id}/messages",
        params={
            "dir": "b",
            "from": timeline["prev_batch"],
            "filter": '{"lazy_load_members": true}',
        },
    )
    assert page["chunk"][0]["event_id"] == message and page["end"]
    assert [(e["type"], e["state_key"]) for e in page["state"]] == [
        ("m.room.member", alice.user_id)
    ]
    rest = await alice.request(
        "GET", f"/rooms/{room_id}/messages", params={"dir": "b", "from": page["end"]}
    )
    assert "end" not in rest
    # a timeline cut by its limit continues just before its first event
    short = (await alice.sync(filter='{"room": {"timeline": {"limit": 2}}}'))["rooms"]["join"]
    older = await alice.request(
        "GET",
        f"/rooms/{room_id}/messages",
        params={"dir": "b", "from": short[room_id]["timeline"]["prev_batch"]},
    )
    assert message not in [e["event_id"] for e in older["chunk"]]

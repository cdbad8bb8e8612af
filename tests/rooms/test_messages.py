"""GET /rooms/{roomId}/messages: pagination both ways, tokens, limits, filters, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import HomeserverHarness
from tests.rooms.helpers import User, make_user


async def messages(user: User, room_id: str, expect: int = 200, **params: Any) -> Any:
    query = {k: (json.dumps(v) if isinstance(v, dict) else str(v)) for k, v in params.items()}
    return await user.request("GET", f"/rooms/{room_id}/messages", params=query, expect=expect)


def bodies(chunk: list[dict[str, Any]]) -> list[str]:
    return [e["content"]["body"] for e in chunk if e["type"] == "m.room.message"]


async def room_with_messages(hs: HomeserverHarness, count: int) -> tuple[User, str, list[str]]:
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room(preset="public_chat")
    ids = [await alice.send(room_id, f"m{i}") for i in range(count)]
    return alice, room_id, ids


async def test_backwards_from_the_end_and_round_trip(hs: HomeserverHarness) -> None:
    alice, room_id, _ids = await room_with_messages(hs, 12)
    page = await messages(alice, room_id, dir="b", limit=5)
    assert bodies(page["chunk"]) == ["m11", "m10", "m9", "m8", "m7"]
    assert page["start"] and page["end"]
    page2 = await messages(alice, room_id, dir="b", limit=5, **{"from": page["end"]})
    assert bodies(page2["chunk"]) == ["m6", "m5", "m4", "m3", "m2"]
    assert page2["start"] == page["end"]
    # Forwards from the end of page 2 goes back over page 1 without repeats.
    forward = await messages(alice, room_id, dir="f", limit=5, **{"from": page2["end"]})
    assert bodies(forward["chunk"]) == ["m2", "m3", "m4", "m5", "m6"]
    # Reaching the start of the room: the last page still has an end token (as
    # Synapse gives), and the page after it is empty and has none.
    rest = await messages(alice, room_id, dir="b", limit=100, **{"from": page2["end"]})
    assert bodies(rest["chunk"]) == ["m1", "m0"]
    assert rest["chunk"][-1]["type"] == "m.room.create"
    beyond = await messages(alice, room_id, dir="b", limit=100, **{"from": rest["end"]})
    assert beyond["chunk"] == [] and "end" not in beyond


async def test_forwards_from_the_start(hs: HomeserverHarness) -> None:
    alice, room_id, _ids = await room_with_messages(hs, 3)
    page = await messages(alice, room_id, dir="f", limit=100)
    assert page["chunk"][0]["type"] == "m.room.create"
    assert bodies(page["chunk"]) == ["m0", "m1", "m2"]
    after = await messages(alice, room_id, dir="f", limit=100, **{"from": page["end"]})
    assert after["chunk"] == [] and "end" not in after
    first = await messages(alice, room_id, dir="f", limit=2)
    assert [e["type"] for e in first["chunk"]] == ["m.room.create", "m.room.member"]
    nxt = await messages(alice, room_id, dir="f", limit=100, **{"from": first["end"]})
    assert len(first["chunk"]) + len(nxt["chunk"]) == len(page["chunk"])
    assert nxt["chunk"][0]["type"] == "m.room.power_levels"
    # forwards the room goes on: ``end`` reads what is sent later, then nothing more
    later = await alice.send(room_id, "later")
    sent = await messages(alice, room_id, dir="f", limit=100, **{"from": page["end"]})
    assert [e["event_id"] for e in sent["chunk"]] == [later]
    done = await messages(alice, room_id, dir="f", limit=100, **{"from": sent["end"]})
    assert done["chunk"] == [] and "end" not in done


async def test_to_token_bounds_the_page(hs: HomeserverHarness) -> None:
    alice, room_id, _ids = await room_with_messages(hs, 6)
    first = await messages(alice, room_id, dir="b", limit=2)
    second = await messages(alice, room_id, dir="b", limit=2, **{"from": first["end"]})
    # Backwards from the end to the end of page 2: exactly pages 1 and 2.
    both = await messages(alice, room_id, dir="b", limit=50, to=second["end"])
    assert bodies(both["chunk"]) == ["m5", "m4", "m3", "m2"]
    # Forwards from the end of page 2 up to the end of page 1.
    fwd = await messages(
        alice, room_id, dir="f", limit=50, to=first["end"], **{"from": second["end"]}
    )
    assert bodies(fwd["chunk"]) == ["m2", "m3"]


async def test_sync_style_tokens(hs: HomeserverHarness) -> None:
    alice, room_id, ids = await room_with_messages(hs, 4)
    max_stream = await hs.server.stores.events.max_stream_ordering()
    page = await messages(
        alice, room_id, dir="b", limit=2, **{"from": f"s{max_stream}_0_0_0_0_0_0_0"}
    )
    assert bodies(page["chunk"]) == ["m3", "m2"]
    # A token from before the last two messages were sent.
    event = await hs.server.stores.events.get_event(ids[2])
    assert event is not None and event.stream_ordering is not None
    page = await messages(
        alice, room_id, dir="b", limit=2, **{"from": f"s{event.stream_ordering - 1}"}
    )
    assert bodies(page["chunk"]) == ["m1", "m0"]
    page = await messages(
        alice, room_id, dir="f", limit=10, **{"from": f"s{event.stream_ordering - 1}"}
    )
    assert bodies(page["chunk"]) == ["m2", "m3"]


async def test_filter(hs: HomeserverHarness) -> None:
    alice, room_id, _ = await room_with_messages(hs, 3)
    bob = await make_user(hs, "bob")
    await bob.join(room_id)
    await bob.send(room_id, "from bob")
    await alice.send(room_id, "picture", msgtype="m.image", url="mxc://test.local/abc")
    page = await messages(alice, room_id, dir="b", filter={"types": ["m.room.message"]})
    assert all(e["type"] == "m.room.message" for e in page["chunk"])
    assert bodies(page["chunk"]) == ["picture", "from bob", "m2", "m1", "m0"]
    page = await messages(alice, room_id, dir="b", filter={"senders": [bob.user_id]})
    assert {e["sender"] for e in page["chunk"]} == {bob.user_id}
    page = await messages(alice, room_id, dir="b", filter={"not_types": ["m.room.*"]})
    assert page["chunk"] == []
    page = await messages(alice, room_id, dir="b", filter={"contains_url": True})
    assert bodies(page["chunk"]) == ["picture"]
    page = await messages(
        alice,
        room_id,
        dir="b",
        limit=2,
        filter={"types": ["m.room.message"], "lazy_load_members": True},
    )
    assert bodies(page["chunk"]) == ["picture", "from bob"]
    assert sorted(e["state_key"] for e in page["state"]) == sorted([alice.user_id, bob.user_id])
    assert all(e["type"] == "m.room.member" for e in page["state"])


async def test_limits(hs: HomeserverHarness) -> None:
    alice, room_id, _ = await room_with_messages(hs, 15)
    page = await messages(alice, room_id, dir="b")
    assert len(page["chunk"]) == 10  # the default
    page = await messages(alice, room_id, dir="b", limit=100000)
    assert page["chunk"][-1]["type"] == "m.room.create"
    page = await messages(alice, room_id, dir="b", limit=0)
    assert page["chunk"] == []


@pytest.mark.parametrize(
    ("params", "errcode"),
    [
        ({}, "M_MISSING_PARAM"),
        ({"dir": "x"}, "M_INVALID_PARAM"),
        ({"dir": "b", "limit": "ten"}, "M_INVALID_PARAM"),
        ({"dir": "b", "limit": "-1"}, "M_INVALID_PARAM"),
        ({"dir": "b", "from": "nonsense"}, "M_UNKNOWN"),
        ({"dir": "b", "from": "tX-1"}, "M_UNKNOWN"),
        ({"dir": "b", "to": "s-1"}, "M_UNKNOWN"),
        ({"dir": "b", "filter": "{not json"}, "M_INVALID_PARAM"),
        ({"dir": "b", "filter": '{"types": "m.room.message"}'}, "M_BAD_JSON"),
        ({"dir": "b", "filter": "12345"}, "M_INVALID_PARAM"),
    ],
)
async def test_bad_parameters(hs: HomeserverHarness, params: dict[str, str], errcode: str) -> None:
    alice, room_id, _ = await room_with_messages(hs, 1)
    err = await alice.request("GET", f"/rooms/{room_id}/messages", params=params, expect=400)
    assert err["errcode"] == errcode


async def test_access(hs: HomeserverHarness) -> None:
    _alice, room_id, _ = await room_with_messages(hs, 1)
    eve = await make_user(hs, "eve")
    err = await messages(eve, room_id, expect=403, dir="b")
    assert err["errcode"] == "M_FORBIDDEN"
    err = await messages(eve, "!unknown:test.local", expect=403, dir="b")
    assert err["errcode"] == "M_FORBIDDEN"
    resp = await hs.client.get(f"/_matrix/client/v3/rooms/{room_id}/messages?dir=b")
    assert resp.status == 401
    assert (await resp.json())["errcode"] == "M_MISSING_TOKEN"


async def test_bundled_edit_on_messages(hs: HomeserverHarness) -> None:
    alice, room_id, ids = await room_with_messages(hs, 1)
    edit = await alice.send(
        room_id,
        "* edited",
        **{
            "m.new_content": {"msgtype": "m.text", "body": "edited"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": ids[0]},
        },
    )
    page = await messages(alice, room_id, dir="b", limit=3)
    original = next(e for e in page["chunk"] if e["event_id"] == ids[0])
    assert original["content"]["body"] == "m0"  # content is not replaced
    assert original["unsigned"]["m.relations"]["m.replace"]["event_id"] == edit


async def test_paginating_from_sync_prev_batch(hs: HomeserverHarness) -> None:
    alice, room_id, ids = await room_with_messages(hs, 6)
    sync = await alice.sync(filter=json.dumps({"room": {"timeline": {"limit": 3}}}))
    room = sync["rooms"]["join"][room_id]
    timeline = [e["event_id"] for e in room["timeline"]["events"]]
    assert timeline == ids[3:]
    page = await messages(
        alice, room_id, dir="b", limit=3, **{"from": room["timeline"]["prev_batch"]}
    )
    assert [e["event_id"] for e in page["chunk"]] == [ids[2], ids[1], ids[0]]
    # Forwards from next_batch: nothing yet, then what was sent since.
    later = await alice.send(room_id, "later")
    page = await messages(alice, room_id, dir="f", **{"from": sync["next_batch"]})
    assert [e["event_id"] for e in page["chunk"]] == [later]

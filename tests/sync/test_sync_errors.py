"""/sync never answers 500: every malformed parameter is a Matrix error, a token
the server never gave is bounded to what it has, and nothing stored is lost."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import HomeserverHarness
from tests.rooms.helpers import make_user

# nested deeper than Python's json module recurses, short enough for a URL
DEEP = "[" * 1100 + "]" * 1100


async def test_malformed_parameters_are_matrix_errors(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    await alice.create_room()
    cases: list[tuple[dict[str, str], str]] = [
        ({"since": "s" + "9" * 30}, "M_UNKNOWN"),  # beyond any stream position
        ({"since": "s1_" + "9" * 20}, "M_UNKNOWN"),
        ({"since": "s" + "1" * 5000}, "M_UNKNOWN"),
        ({"since": "s1_2_3_4_5_6_7_8_9"}, "M_UNKNOWN"),
        ({"since": "s1__2"}, "M_UNKNOWN"),
        ({"since": "s-1"}, "M_UNKNOWN"),
        ({"since": "t1-2"}, "M_UNKNOWN"),
        ({"since": "s²"}, "M_UNKNOWN"),
        ({"filter": '{"room": ' + DEEP + "}"}, "M_BAD_JSON"),
        ({"filter": '{"room": {"timeline": {"limit": 1e400}}}'}, "M_BAD_JSON"),
        ({"filter": '{"room": {"timeline": {"limit": 99999999999999999999999}}}'}, ""),
        ({"filter": '{"room": {"rooms": [null]}}'}, "M_BAD_JSON"),
        ({"filter": '{"event_fields": [1]}'}, "M_BAD_JSON"),
        ({"filter": "[]"}, "M_INVALID_PARAM"),
        ({"filter": "²"}, "M_INVALID_PARAM"),
        ({"filter": "٣"}, "M_INVALID_PARAM"),
        ({"filter": "9" * 30}, "M_INVALID_PARAM"),
        ({"timeout": "9" * 5000}, "M_INVALID_PARAM"),
        ({"timeout": "1e3"}, "M_INVALID_PARAM"),
        ({"full_state": "yes"}, "M_INVALID_PARAM"),
        ({"use_state_after": "2"}, "M_INVALID_PARAM"),
        ({"set_presence": ""}, "M_INVALID_PARAM"),
    ]
    for params, errcode in cases:
        resp = await hs.client.get("/_matrix/client/v3/sync", params=params, headers=alice.auth)
        body = await resp.json()
        if not errcode:  # accepted (a limit is capped)
            assert resp.status == 200, (params, body)
            continue
        assert resp.status == 400, (params, resp.status, body)
        assert body["errcode"] == errcode, (params, body)
    # the filter endpoints read IDs the same way
    for bad_id in ("²", "٣", "9" * 30):
        err = await alice.request("GET", f"/user/{alice.user_id}/filter/{bad_id}", expect=404)
        assert err["errcode"] == "M_NOT_FOUND"
    resp = await hs.client.post(
        f"/_matrix/client/v3/user/{alice.user_id}/filter",
        data=('{"room": ' + "[" * 50_000 + "]" * 50_000 + "}").encode(),
        headers=alice.auth,
    )
    assert resp.status == 400 and (await resp.json())["errcode"] in ("M_NOT_JSON", "M_BAD_JSON")


def _with(token: str, stream: int, value: int) -> str:
    parts = token[1:].split("_")
    parts[stream] = str(value)
    return "s" + "_".join(parts)


async def test_a_token_from_the_future_is_bounded(hs: HomeserverHarness) -> None:
    """A token ahead of the server's streams (never given out: a crafted token, or a
    database restored from a backup) reads as the server's current position: no
    error, nothing skipped later; a to-device position ahead acknowledges nothing, so
    no message waiting for the device is deleted."""
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id)
    first = await alice.sync()
    await bob.request(
        "PUT",
        "/sendToDevice/m.test/txn1",
        {"messages": {alice.user_id: {alice.device_id: {"n": 1}}}},
    )
    future = first["next_batch"]
    for stream in range(8):
        future = _with(future, stream, 2**62)
    body = await alice.sync(since=future)
    assert body["rooms"]["join"] == {}
    assert [e["content"] for e in body["to_device"]["events"]] == [{"n": 1}]
    # the token given back is the server's; what comes later is there
    event_id = await bob.send(room_id, "later")
    later = await alice.sync(since=body["next_batch"])
    assert [e["event_id"] for e in later["rooms"]["join"][room_id]["timeline"]["events"]] == [
        event_id
    ]
    # the message was delivered by the first sync and is acknowledged now
    assert later["to_device"]["events"] == []


async def test_sync_with_every_filter_section(hs: HomeserverHarness) -> None:
    """A filter using every section and option at once is answered (no 500)."""
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat", name="All")
    await bob.join(room_id)
    await bob.send(room_id, "hi")
    await bob.leave(room_id)
    section: dict[str, Any] = {
        "limit": 3,
        "types": ["m.*"],
        "not_types": ["m.room.topic"],
        "senders": [alice.user_id, bob.user_id],
        "not_senders": ["@nobody:test.local"],
        "rooms": [room_id],
        "not_rooms": ["!other:test.local"],
        "contains_url": False,
        "lazy_load_members": True,
        "include_redundant_members": True,
        "unread_thread_notifications": True,
    }
    flt = json.dumps(
        {
            "event_fields": ["type", "content.body", "sender"],
            "event_format": "federation",
            "presence": {"limit": 1, "types": ["m.presence"]},
            "account_data": {"not_types": ["*"]},
            "room": {
                "include_leave": True,
                "rooms": [room_id],
                "timeline": section,
                "state": section,
                "ephemeral": section,
                "account_data": section,
            },
        }
    )
    first = await alice.sync(filter=flt, full_state="true", set_presence="unavailable")
    assert room_id in first["rooms"]["join"]
    await bob.join(room_id)
    second = await alice.sync(filter=flt, since=first["next_batch"], use_state_after="true")
    assert room_id in second["rooms"]["join"]

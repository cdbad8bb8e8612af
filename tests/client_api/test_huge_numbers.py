"""Integers beyond 64 bits in tokens and query parameters are bad input: 400, never a
500 from a database that cannot hold them (SQLite raised OverflowError).
timestamp_to_event's ``ts``: tests/rooms/test_context.py."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.conftest import HomeserverHarness
from tests.rooms.helpers import make_user

BIG = str(2**64)


@pytest.mark.parametrize(
    ("path", "errcode"),
    [
        ("/sync?timeout=0&since=s{big}_0_0_0_0_0_0_0", "M_UNKNOWN"),
        ("/sync?timeout=0&since=s1_0_0_0_0_0_0_{big}", "M_UNKNOWN"),
        ("/rooms/{room}/messages?dir=b&from=t{big}-1", "M_UNKNOWN"),
        ("/rooms/{room}/messages?dir=b&from=t1--{big}", "M_UNKNOWN"),
        ("/rooms/{room}/messages?dir=b&from=s{big}_0", "M_UNKNOWN"),
        ("/rooms/{room}/messages?dir=f&to=t{big}-1", "M_UNKNOWN"),
        ("/rooms/{room}/members?at=s{big}", "M_UNKNOWN"),
        ("/notifications?from={big}", "M_INVALID_PARAM"),
        ("/notifications?from=-1", "M_INVALID_PARAM"),
        ("/publicRooms?limit={big}", "M_INVALID_PARAM"),
    ],
)
async def test_integers_beyond_64_bits_are_400(
    hs: HomeserverHarness, path: str, errcode: str
) -> None:
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room(preset="public_chat")
    await alice.send(room_id, "still here")
    url = path.format(big=BIG, room=quote(room_id))
    err = await alice.request("GET", url, expect=400)
    assert err["errcode"] == errcode
    # and the largest 64-bit values are no error where they make sense
    top = str(2**63 - 1)
    page = await alice.request(
        "GET", f"/rooms/{quote(room_id)}/messages", params={"dir": "b", "from": f"t{top}-{top}"}
    )
    assert "still here" in [e["content"].get("body") for e in page["chunk"]]
    assert (await alice.request("GET", "/notifications", params={"from": top}))[
        "notifications"
    ] == []

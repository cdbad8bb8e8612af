"""Which endpoints a guest's token opens (client-server API: Guest access, "Client
behaviour"): the listed ones work, every other answers 403 M_GUEST_ACCESS_FORBIDDEN
and changes nothing."""

from __future__ import annotations

import re
from typing import Any

from client_api.guest_access import GUEST_ENDPOINTS
from tests.conftest import HarnessFactory
from tests.guests.helpers import GUEST_CONFIG, make_guest
from tests.rooms.helpers import make_user


def _forbidden(body: Any) -> bool:
    return isinstance(body, dict) and body.get("errcode") == "M_GUEST_ACCESS_FORBIDDEN"


async def test_every_listed_endpoint_is_a_route(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(**GUEST_CONFIG)
    served = set()
    for method, path, _handler in hs.server.routes_for({"client", "media"}):
        path = re.sub(r"^/_matrix/client/(?:v\d+|r0|api/v1|unstable)(?=/)", "", path)
        served.add((method, re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)))
    assert GUEST_ENDPOINTS <= served, GUEST_ENDPOINTS - served


async def test_guest_reaches_the_listed_endpoints(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(**GUEST_CONFIG)
    guest = await make_guest(hs)
    who = await guest.request("GET", "/account/whoami")
    assert who == {"user_id": guest.user_id, "device_id": guest.device_id, "is_guest": True}
    assert "next_batch" in await guest.sync(timeout=0)
    devices = await guest.request("GET", "/devices")
    assert [d["device_id"] for d in devices["devices"]] == [guest.device_id]
    await guest.request("PUT", f"/devices/{guest.device_id}", {"display_name": "kiosk"})
    assert (await guest.request("GET", f"/devices/{guest.device_id}"))["display_name"] == "kiosk"
    await guest.request("PUT", f"/profile/{guest.user_id}/displayname", {"displayname": "Visitor"})
    profile = await guest.request("GET", f"/profile/{guest.user_id}/displayname")
    assert profile == {"displayname": "Visitor"}
    await guest.request("DELETE", f"/profile/{guest.user_id}/displayname")
    assert await guest.request("GET", "/joined_rooms") == {"joined_rooms": []}
    assert "capabilities" in await guest.request("GET", "/capabilities")
    assert "device_keys" in await guest.request(
        "POST", "/keys/query", {"device_keys": {guest.user_id: []}}
    )
    await guest.request("PUT", "/sendToDevice/m.test/t1", {"messages": {}})
    assert "chunk" in await guest.request("GET", "/publicRooms")


async def test_guest_refused_elsewhere_and_nothing_changes(
    make_homeserver: HarnessFactory,
) -> None:
    hs = await make_homeserver(**GUEST_CONFIG)
    guest = await make_guest(hs)
    alice = await make_user(hs, "alice")
    room = await alice.create_room(preset="public_chat")
    await alice.request(
        "PUT", f"/rooms/{room}/state/m.room.guest_access/", {"guest_access": "can_join"}
    )
    await guest.join(room)
    rooms_before = await hs.server.db.fetchval("t", "SELECT COUNT(*) FROM rooms")
    refused: list[tuple[str, str, Any]] = [
        ("POST", "/createRoom", {}),
        ("PUT", f"/profile/{guest.user_id}/avatar_url", {"avatar_url": "mxc://a/b"}),
        ("PUT", f"/profile/{guest.user_id}/m.tz", {"m.tz": "Europe/Paris"}),
        ("DELETE", f"/profile/{guest.user_id}/avatar_url", None),
        ("POST", f"/rooms/{room}/invite", {"user_id": "@carol:test.local"}),
        ("POST", f"/rooms/{room}/kick", {"user_id": alice.user_id}),
        ("PUT", f"/rooms/{room}/typing/{guest.user_id}", {"typing": True, "timeout": 1000}),
        ("POST", f"/rooms/{room}/read_markers", {}),
        ("POST", f"/user/{guest.user_id}/filter", {}),
        ("PUT", f"/user/{guest.user_id}/account_data/m.test", {"a": 1}),
        ("GET", "/pushrules/", None),
        ("POST", "/account/password", {"new_password": "pw"}),
        ("POST", "/account/deactivate", {}),
        ("POST", "/logout", {}),
        ("POST", "/logout/all", {}),
        ("DELETE", f"/devices/{guest.device_id}", {}),
        ("POST", "/keys/device_signing/upload", {}),
        ("GET", "/room_keys/version", None),
        ("PUT", f"/directory/room/%23lobby:{hs.server.config.server_name}", {"room_id": room}),
        ("GET", f"/rooms/{room}/joined_members", None),
    ]
    for method, path, body in refused:
        answer = await guest.request(method, path, body, expect=403)
        assert _forbidden(answer), (method, path, answer)
    resp = await hs.client.post(
        "/_matrix/media/v3/upload", data=b"x", headers={**guest.auth, "Content-Type": "text/plain"}
    )
    assert resp.status == 403 and _forbidden(await resp.json())
    # Nothing changed: no room, no avatar, no account data, the token still works.
    assert await hs.server.db.fetchval("t", "SELECT COUNT(*) FROM rooms") == rooms_before
    assert "avatar_url" not in await guest.request("GET", f"/profile/{guest.user_id}")
    assert await hs.server.stores.account_data.get(guest.user_id, None, "m.test") is None
    assert (await guest.request("GET", "/account/whoami"))["is_guest"] is True
    assert (await alice.state(room, "m.room.member", guest.user_id))["membership"] == "join"
    # A full user's token is not held to the guest list.
    await alice.request("POST", f"/user/{alice.user_id}/filter", {})


async def test_guest_and_the_legacy_endpoints(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(**GUEST_CONFIG)
    guest = await make_guest(hs)
    alice = await make_user(hs, "alice")
    room = await alice.create_room(preset="public_chat")
    await alice.request(
        "PUT",
        f"/rooms/{room}/state/m.room.history_visibility/",
        {"history_visibility": "world_readable"},
    )
    # a world-readable room, by room: its initialSync and its event stream
    snapshot = await guest.request("GET", f"/rooms/{room}/initialSync")
    assert snapshot["room_id"] == room
    stream = await guest.request(
        "GET",
        "/events",
        params={"room_id": room, "timeout": "0", "from": snapshot["messages"]["end"]},
    )
    assert stream["chunk"] == []
    # the global ones are not for guests
    err = await guest.request("GET", "/events", params={"timeout": "0"}, expect=400)
    assert err["errcode"] == "M_MISSING_PARAM"
    err = await guest.request("GET", "/initialSync", expect=403)
    assert err["errcode"] == "M_GUEST_ACCESS_FORBIDDEN"
    resp = await hs.client.get("/_matrix/client/api/v1/initialSync", headers=guest.auth)
    assert resp.status == 403 and _forbidden(await resp.json())

"""Keys across servers: /keys/query and /keys/claim for users of another server, the
federation endpoints /user/keys/query, /user/keys/claim and /user/devices/{userId}
(s2s "End-to-End Encryption", "Device Management")."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp

from tests.e2ee.federation_helpers import V1, fed_error
from tests.e2ee.helpers import (
    KeyedDevice,
    login_again,
    signed,
    signing_key_named_by_public_key,
)
from tests.federation.rooms import settle, share_room
from tests.federation.servers import ServerFactory
from tests.rooms.helpers import make_user


async def test_query_and_claim_keys_of_a_user_on_another_server(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    _room_id, alice_user, bob_user = await share_room(a, b)
    alice = KeyedDevice(alice_user)
    await alice.upload(device_keys=alice.device_keys(), one_time_keys=alice.one_time_keys(2))
    await settle(a, b)

    body = {"device_keys": {alice.user_id: []}}
    answer = await bob_user.request("POST", "/keys/query", body)
    assert answer["failures"] == {}
    got = answer["device_keys"][alice.user_id][alice.device_id]
    assert got["keys"] == alice.device_keys()["keys"]
    assert got["signatures"] == alice.device_keys()["signatures"]
    # bob's server tracks alice (they share a room): the list is cached now
    cached = await b.server.stores.remote_devices.get_list(alice.user_id)
    assert cached is not None and not cached.stale

    claim = {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}}
    first = await bob_user.request("POST", "/keys/claim", claim)
    second = await bob_user.request("POST", "/keys/claim", claim)
    third = await bob_user.request("POST", "/keys/claim", claim)
    assert first["failures"] == {} and second["failures"] == {}
    keys = [next(iter(r["one_time_keys"][alice.user_id][alice.device_id])) for r in (first, second)]
    assert len(set(keys)) == 2  # each one-time key handed out once
    assert third["one_time_keys"] == {}  # none left (and no fallback key)


async def test_query_of_an_untracked_user_asks_their_server(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    carol = KeyedDevice(await make_user(a.harness, "carol"))
    await carol.upload(device_keys=carol.device_keys())
    _master_key, master_pub = signing_key_named_by_public_key()
    master = signed(
        {
            "user_id": carol.user_id,
            "usage": ["master"],
            "keys": {f"ed25519:{master_pub}": master_pub},
        },
        carol.user_id,
        carol.key,
    )
    await carol.user.request("POST", "/keys/device_signing/upload", {"master_key": master})
    dave = await make_user(b.harness, "dave")  # shares no room with carol

    answer = await dave.request("POST", "/keys/query", {"device_keys": {carol.user_id: []}})
    assert answer["failures"] == {}
    assert list(answer["device_keys"][carol.user_id]) == [carol.device_id]
    assert answer["master_keys"][carol.user_id]["keys"] == master["keys"]
    assert "user_signing_keys" not in answer or carol.user_id not in answer["user_signing_keys"]
    # not tracked: nothing cached
    assert await b.server.stores.remote_devices.get_list(carol.user_id) is None


async def test_unreachable_servers_are_reported_in_failures(
    federation_servers: ServerFactory,
) -> None:
    (a,) = await federation_servers(1)
    alice = await make_user(a.harness, "alice")
    ghost = "@ghost:localhost:1"
    answer = await alice.request("POST", "/keys/query", {"device_keys": {ghost: []}})
    assert set(answer["failures"]) == {"localhost:1"}
    assert answer["device_keys"] == {}
    claim = {"one_time_keys": {ghost: {"DEV": "signed_curve25519"}}}
    answer = await alice.request("POST", "/keys/claim", claim)
    assert set(answer["failures"]) == {"localhost:1"}
    assert answer["one_time_keys"] == {}


async def test_user_devices_endpoint(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    alice = KeyedDevice(await make_user(a.harness, "alice"))
    await alice.upload(device_keys=alice.device_keys())
    client = b.fed.client
    path = f"{V1}/user/devices/{quote(alice.user_id, safe='')}"
    answer = await client.get_json(a.server_name, path)
    assert answer["user_id"] == alice.user_id
    assert answer["stream_id"] > 0
    (device,) = answer["devices"]
    assert device["device_id"] == alice.device_id
    assert device["keys"] == alice.device_keys()

    # a device that uploaded no keys is left out (each listed device has ``keys``)
    await login_again(a.harness, alice.user)
    answer = await client.get_json(a.server_name, path)
    assert [d["device_id"] for d in answer["devices"]] == [alice.device_id]
    keyless = await make_user(a.harness, "carol")
    path = f"{V1}/user/devices/{quote(keyless.user_id, safe='')}"
    answer = await client.get_json(a.server_name, path)
    assert (answer["user_id"], answer["devices"]) == (keyless.user_id, [])

    # a user of another server, a user that does not exist, not a user ID
    other = f"@bob:{b.server_name}"
    error = await fed_error(client.get_json(a.server_name, f"{V1}/user/devices/{quote(other)}"))
    assert (error.status, error.errcode) == (400, "M_INVALID_PARAM")
    nobody = f"@nobody:{a.server_name}"
    error = await fed_error(client.get_json(a.server_name, f"{V1}/user/devices/{quote(nobody)}"))
    assert (error.status, error.errcode) == (404, "M_NOT_FOUND")
    error = await fed_error(client.get_json(a.server_name, f"{V1}/user/devices/notauser"))
    assert (error.status, error.errcode) == (400, "M_INVALID_PARAM")


async def test_user_keys_endpoints_validate_their_input(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    alice = KeyedDevice(await make_user(a.harness, "alice"))
    await alice.upload(device_keys=alice.device_keys(), one_time_keys=alice.one_time_keys(1))
    client = b.fed.client
    query, claim = f"{V1}/user/keys/query", f"{V1}/user/keys/claim"
    cases: list[tuple[str, Any, int, str]] = [
        (query, {}, 400, "M_MISSING_PARAM"),
        (query, {"device_keys": []}, 400, "M_BAD_JSON"),
        (query, {"device_keys": {alice.user_id: "all"}}, 400, "M_BAD_JSON"),
        (query, {"device_keys": {"not-a-user": []}}, 400, "M_INVALID_PARAM"),
        (query, {"device_keys": {f"@bob:{b.server_name}": []}}, 400, "M_INVALID_PARAM"),
        (claim, {}, 400, "M_MISSING_PARAM"),
        (claim, {"one_time_keys": {alice.user_id: ["signed_curve25519"]}}, 400, "M_BAD_JSON"),
        (claim, {"one_time_keys": {alice.user_id: {"D": 1}}}, 400, "M_BAD_JSON"),
        (claim, {"one_time_keys": {"@x:elsewhere.test": {"D": "a"}}}, 400, "M_INVALID_PARAM"),
    ]
    for path, body, status, errcode in cases:
        error = await fed_error(client.post_json(a.server_name, path, body))
        assert (error.status, error.errcode) == (status, errcode), (path, body, error)
    # nothing was claimed by the refused requests
    counts = await a.server.stores.e2e_keys.count_one_time_keys(alice.user_id, alice.device_id)
    assert counts == {"signed_curve25519": 1}

    # the server-side query gives no user-signing keys and the device's display name
    answer = await client.post_json(a.server_name, query, {"device_keys": {alice.user_id: []}})
    assert set(answer) == {"device_keys", "master_keys", "self_signing_keys"}
    assert list(answer["device_keys"][alice.user_id]) == [alice.device_id]


async def test_user_keys_endpoints_need_a_signed_request(
    federation_servers: ServerFactory,
) -> None:
    (a,) = await federation_servers(1)
    alice = await make_user(a.harness, "alice")
    async with aiohttp.ClientSession() as session:
        for method, path in (
            ("POST", f"{V1}/user/keys/query"),
            ("POST", f"{V1}/user/keys/claim"),
            ("GET", f"{V1}/user/devices/{quote(alice.user_id)}"),
        ):
            async with session.request(method, a.base_url + path, json={}, ssl=False) as response:
                assert response.status == 401, path
                assert (await response.json())["errcode"] == "M_UNAUTHORIZED"

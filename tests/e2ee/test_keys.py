"""/keys/upload, /keys/query, /keys/claim through the HTTP API, with real signatures."""

from __future__ import annotations

import asyncio

from tests.conftest import HomeserverHarness
from tests.e2ee.helpers import make_device, query, signed
from tests.rooms.helpers import V3, make_user


async def test_upload_query_claim_round_trip(hs: HomeserverHarness) -> None:
    alice = await make_device(hs, "alice")
    bob = await make_user(hs, "bob")
    await alice.user.request(
        "PUT", f"/devices/{alice.device_id}", {"display_name": "Alice's phone"}
    )
    otks = alice.one_time_keys(2)
    fallback = alice.one_time_keys(1, fallback=True)
    body = await alice.upload(
        device_keys=alice.device_keys(), one_time_keys=otks, fallback_keys=fallback
    )
    assert body["one_time_key_counts"] == {"signed_curve25519": 2}

    result = await query(bob, alice.user_id)
    device = result["device_keys"][alice.user_id][alice.device_id]
    assert device["keys"][f"ed25519:{alice.device_id}"] == alice.ed25519
    assert device["unsigned"] == {"device_display_name": "Alice's phone"}
    assert result["failures"] == {}

    claim = {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}}
    seen = set()
    for _ in range(2):
        got = await bob.request("POST", "/keys/claim", claim)
        ((key_name, key),) = got["one_time_keys"][alice.user_id][alice.device_id].items()
        assert key_name in otks and key == otks[key_name]
        seen.add(key_name)
    assert seen == set(otks)
    # exhausted: the fallback key, again and again
    for _ in range(2):
        got = await bob.request("POST", "/keys/claim", claim)
        assert got["one_time_keys"][alice.user_id][alice.device_id] == fallback
    e2ee = hs.server.client.e2ee.keys
    assert await e2ee.device_unused_fallback_key_types(alice.user_id, alice.device_id) == []
    counts = await e2ee.device_one_time_keys_count(alice.user_id, alice.device_id)
    assert counts == {"signed_curve25519": 0}
    # a new fallback key is unused again
    await alice.upload(fallback_keys=alice.one_time_keys(1, fallback=True))
    unused = await e2ee.device_unused_fallback_key_types(alice.user_id, alice.device_id)
    assert unused == ["signed_curve25519"]


async def test_claim_unknown_device_and_remote_user(hs: HomeserverHarness) -> None:
    bob = await make_user(hs, "bob")
    got = await bob.request(
        "POST",
        "/keys/claim",
        {
            "one_time_keys": {
                "@nobody:test.local": {"DEV": "signed_curve25519"},
                "@carol:elsewhere.example": {"DEV": "signed_curve25519"},
            }
        },
    )
    assert got["one_time_keys"] == {}
    assert "elsewhere.example" in got["failures"]
    result = await query(bob, "@carol:elsewhere.example", "@nobody:test.local")
    assert "elsewhere.example" in result["failures"]
    assert result["device_keys"] == {"@nobody:test.local": {}}


async def test_remote_hooks_are_used(hs: HomeserverHarness) -> None:
    bob = await make_user(hs, "bob")
    keys = hs.server.client.e2ee.keys
    asked = []

    async def remote_query(server: str, q: dict, timeout_ms: int) -> dict:
        asked.append((server, q))
        return {"device_keys": {"@carol:elsewhere.example": {"D": {"x": 1}}}}

    async def remote_claim(server: str, q: dict, timeout_ms: int) -> dict:
        return {"one_time_keys": {"@carol:elsewhere.example": {"D": {"curve25519:1": "k"}}}}

    keys.remote_key_query = remote_query
    keys.remote_key_claim = remote_claim
    result = await query(bob, "@carol:elsewhere.example")
    assert asked == [("elsewhere.example", {"@carol:elsewhere.example": []})]
    assert result["device_keys"]["@carol:elsewhere.example"] == {"D": {"x": 1}}
    assert result["failures"] == {}
    got = await bob.request(
        "POST", "/keys/claim", {"one_time_keys": {"@carol:elsewhere.example": {"D": "curve25519"}}}
    )
    assert got["one_time_keys"]["@carol:elsewhere.example"]["D"] == {"curve25519:1": "k"}


async def test_concurrent_claims_hand_out_each_key_once(hs: HomeserverHarness) -> None:
    alice = await make_device(hs, "alice")
    claimers = [await make_user(hs, f"claimer{i}") for i in range(3)]
    otks = alice.one_time_keys(12)
    fallback = alice.one_time_keys(1, fallback=True)
    await alice.upload(device_keys=alice.device_keys(), one_time_keys=otks, fallback_keys=fallback)
    claim = {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}}
    results = await asyncio.gather(
        *(claimers[i % 3].request("POST", "/keys/claim", claim) for i in range(20))
    )
    names = [next(iter(r["one_time_keys"][alice.user_id][alice.device_id])) for r in results]
    handed_otks = [n for n in names if n in otks]
    assert sorted(handed_otks) == sorted(otks)  # each exactly once
    assert names.count(next(iter(fallback))) == 8


async def test_device_keys_must_be_signed_and_match_requester(hs: HomeserverHarness) -> None:
    alice = await make_device(hs, "alice")
    bob = await make_user(hs, "bob")
    forged = alice.device_keys()
    forged["keys"][f"curve25519:{alice.device_id}"] = (
        "AAAA" + forged["keys"][f"curve25519:{alice.device_id}"][4:]
    )
    body = await alice.upload(expect=400, device_keys=forged)
    assert body["errcode"] == "M_INVALID_SIGNATURE"
    unsigned = alice.device_keys()
    del unsigned["signatures"]
    body = await alice.upload(expect=400, device_keys=unsigned)
    assert body["errcode"] == "M_BAD_JSON"
    body = await alice.upload(expect=400, device_keys=alice.device_keys(user_id=bob.user_id))
    assert body["errcode"] == "M_INVALID_PARAM"
    body = await alice.upload(expect=400, device_keys=alice.device_keys(device_id="OTHER"))
    assert body["errcode"] == "M_INVALID_PARAM"
    body = await alice.upload(expect=400, device_keys=alice.device_keys(algorithms="x"))
    assert body["errcode"] == "M_BAD_JSON"
    # nothing was stored
    result = await query(bob, alice.user_id)
    assert result["device_keys"][alice.user_id] == {}


async def test_changing_device_keys_is_refused(hs: HomeserverHarness) -> None:
    alice = await make_device(hs, "alice")
    keys = alice.device_keys()
    await alice.upload(device_keys=keys)
    await alice.upload(device_keys=keys)  # identical: fine
    original = alice.curve25519
    alice.curve25519 = "B" * 43
    body = await alice.upload(expect=400, device_keys=alice.device_keys())
    assert body["errcode"] == "M_INVALID_PARAM"
    result = await query(alice.user, alice.user_id)
    stored = result["device_keys"][alice.user_id][alice.device_id]
    assert stored["keys"][f"curve25519:{alice.device_id}"] == original


async def test_one_time_key_checks(hs: HomeserverHarness) -> None:
    alice = await make_device(hs, "alice")
    # a bad OTK signature fails the whole request, device keys included
    bad = alice.one_time_keys(1)
    (name,) = bad
    bad[name]["key"] = "C" * 43
    body = await alice.upload(expect=400, device_keys=alice.device_keys(), one_time_keys=bad)
    assert body["errcode"] == "M_INVALID_SIGNATURE"
    assert (await query(alice.user, alice.user_id))["device_keys"][alice.user_id] == {}
    # signed keys before any device keys
    body = await alice.upload(expect=400, one_time_keys=alice.one_time_keys(1))
    assert body["errcode"] == "M_INVALID_PARAM"
    otks = alice.one_time_keys(2)
    await alice.upload(device_keys=alice.device_keys(), one_time_keys=otks)
    again = await alice.upload(one_time_keys=otks)  # same ids, same content: no-op
    assert again["one_time_key_counts"]["signed_curve25519"] == 2
    changed = dict(otks)
    first = next(iter(changed))
    changed[first] = signed({"key": "D" * 43}, alice.user_id, alice.key)
    body = await alice.upload(expect=400, one_time_keys=changed)
    assert body["errcode"] == "M_INVALID_PARAM"
    # unsigned curve25519 keys are accepted as strings; bad names are refused
    body = await alice.upload(one_time_keys={"curve25519:U1": "E" * 43})
    assert body["one_time_key_counts"] == {"signed_curve25519": 2, "curve25519": 1}
    body = await alice.upload(expect=400, one_time_keys={"nocolon": "E" * 43})
    assert body["errcode"] == "M_INVALID_PARAM"
    body = await alice.upload(expect=400, one_time_keys={"signed_curve25519:X": "E" * 43})
    assert body["errcode"] == "M_BAD_JSON"
    two = alice.one_time_keys(2, fallback=True)
    body = await alice.upload(expect=400, fallback_keys=two)
    assert body["errcode"] == "M_INVALID_PARAM"


async def test_bad_requests(hs: HomeserverHarness) -> None:
    alice = await make_device(hs, "alice")
    resp = await hs.client.post(V3 + "/keys/upload", json={})
    assert resp.status == 401
    resp = await hs.client.post(V3 + "/keys/query", data=b"{nope", headers=alice.user.auth)
    assert (await resp.json())["errcode"] == "M_NOT_JSON"
    body = await alice.user.request("POST", "/keys/query", {}, expect=400)
    assert body["errcode"] == "M_MISSING_PARAM"
    body = await alice.user.request(
        "POST", "/keys/query", {"device_keys": {alice.user_id: "x"}}, expect=400
    )
    assert body["errcode"] == "M_BAD_JSON"
    body = await alice.user.request(
        "POST", "/keys/query", {"device_keys": {"notauser": []}}, expect=400
    )
    assert body["errcode"] == "M_INVALID_PARAM"
    body = await alice.user.request(
        "POST", "/keys/claim", {"one_time_keys": {alice.user_id: {"D": 5}}}, expect=400
    )
    assert body["errcode"] == "M_BAD_JSON"
    body = await alice.user.request("POST", "/keys/upload", {"one_time_keys": []}, expect=400)
    assert body["errcode"] == "M_BAD_JSON"
    body = await alice.user.request("GET", "/keys/changes", expect=400)
    assert body["errcode"] == "M_MISSING_PARAM"
    body = await alice.user.request(
        "GET", "/keys/changes", params={"from": "bad", "to": "s0"}, expect=400
    )
    assert body["errcode"] == "M_UNKNOWN"


async def test_concurrent_uploads_of_the_same_keys(hs: HomeserverHarness) -> None:
    alice = await make_device(hs, "alice")
    await alice.upload(device_keys=alice.device_keys())
    otks = alice.one_time_keys(5)
    results = await asyncio.gather(*(alice.upload(one_time_keys=otks) for _ in range(4)))
    assert all(r["one_time_key_counts"]["signed_curve25519"] == 5 for r in results)

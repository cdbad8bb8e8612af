"""/keys/upload, /keys/query, /keys/claim through the HTTP API, with real signatures."""

from __future__ import annotations

import asyncio
from typing import Any

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


async def test_device_keys_are_checked_for_shape_and_owner(hs: HomeserverHarness) -> None:
    alice = await make_device(hs, "alice")
    bob = await make_user(hs, "bob")
    bad_bodies: list[Any] = [
        "not an object",
        {k: v for k, v in alice.device_keys().items() if k != "signatures"},
        {k: v for k, v in alice.device_keys().items() if k != "algorithms"},
        {k: v for k, v in alice.device_keys().items() if k != "keys"},
        alice.device_keys(algorithms="x"),
        alice.device_keys(algorithms=[1]),
        alice.device_keys(keys={f"ed25519:{alice.device_id}": 5}),
        {**alice.device_keys(), "signatures": {alice.user_id: "sig"}},
        alice.device_keys(user_id=5),
        # keys of someone else, or of another device
        alice.device_keys(user_id=bob.user_id),
        alice.device_keys(device_id="OTHER"),
    ]
    for bad in bad_bodies:
        body = await alice.upload(expect=400, device_keys=bad, one_time_keys=alice.one_time_keys(1))
        assert body["errcode"] == "M_BAD_JSON", bad
    # nothing was stored, one-time keys of those requests neither
    result = await query(bob, alice.user_id)
    assert result["device_keys"][alice.user_id] == {}
    counts = await alice.upload()
    assert counts["one_time_key_counts"] == {"signed_curve25519": 0}


async def test_device_keys_are_kept_as_uploaded(hs: HomeserverHarness) -> None:
    """The server does not judge keys or signatures (clients verify them), so keys of
    algorithms it does not know, names it does not expect, a signature it cannot
    check and fields it has never heard of are stored and given back unchanged."""
    alice = await make_device(hs, "alice")
    bob = await make_user(hs, "bob")
    uploaded = {
        "user_id": alice.user_id,
        "device_id": alice.device_id,
        "algorithms": ["m.olm.curve25519-aes-sha256", "org.example.future"],
        "keys": {
            f"curve25519:{alice.device_id}": "curve25519+key",
            f"ed25519:{alice.device_id}": "ed25519+key",
            "ed25519:test": "c3op6BJi8aUnDGA541Q6TbTPmbiy1GqGv-zzXDQM9Us",
            "org.example.future:key": "whatever",
        },
        "signatures": {alice.user_id: {f"ed25519:{alice.device_id}": "self+signature"}},
        "org.example.extra": {"nested": [1, 2]},
    }
    body = await alice.upload(
        device_keys=uploaded, one_time_keys={"my_algorithm:my_id_1": "KIhHVkAQi8r41aPN"}
    )
    assert body["one_time_key_counts"] == {"signed_curve25519": 0, "my_algorithm": 1}
    result = await query(bob, alice.user_id)
    assert result["device_keys"][alice.user_id] == {alice.device_id: {**uploaded, "unsigned": {}}}
    # a forged signature too: the claiming client is the one to notice
    forged = alice.device_keys()
    forged["keys"][f"curve25519:{alice.device_id}"] = "AAAA"
    await alice.upload(device_keys=forged)
    result = await query(bob, alice.user_id)
    assert result["device_keys"][alice.user_id][alice.device_id]["keys"] == forged["keys"]


async def test_new_device_keys_replace_the_old_ones(hs: HomeserverHarness) -> None:
    alice = await make_device(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.user.create_room(preset="public_chat")
    await bob.join(room_id)
    keys = alice.device_keys()
    await alice.upload(device_keys=keys)
    since = (await bob.sync(timeout=0))["next_batch"]
    await alice.upload(device_keys=keys)  # identical: no change
    synced = await bob.sync(since=since, timeout=0)
    assert alice.user_id not in synced.get("device_lists", {}).get("changed", [])

    alice.curve25519 = "B" * 43
    await alice.upload(device_keys=alice.device_keys())
    synced = await bob.sync(since=since, timeout=0)
    assert alice.user_id in synced["device_lists"]["changed"]
    stored = (await query(bob, alice.user_id))["device_keys"][alice.user_id][alice.device_id]
    assert stored["keys"][f"curve25519:{alice.device_id}"] == "B" * 43


async def test_one_time_key_checks(hs: HomeserverHarness) -> None:
    alice = await make_device(hs, "alice")
    bad_keys: list[Any] = [
        {"nocolon": "E" * 43},
        {"two:colons:here": "E" * 43},
        {"signed_curve25519:X": 5},
        {"signed_curve25519:X": {"signatures": {}}},
        {"signed_curve25519:X": {"key": 5, "signatures": {}}},
        {"signed_curve25519:X": {"key": "k"}},
        {"signed_curve25519:X": {"key": "k", "signatures": {"u": {"k": 5}}}},
        {"signed_curve25519:X": {"key": "k", "signatures": {}, "fallback": "yes"}},
    ]
    for bad in bad_keys:
        body = await alice.upload(expect=400, device_keys=alice.device_keys(), one_time_keys=bad)
        assert body["errcode"] == "M_BAD_JSON", bad
        body = await alice.upload(expect=400, fallback_keys=bad)
        assert body["errcode"] == "M_BAD_JSON", bad
    # nothing of those requests was stored
    assert (await query(alice.user, alice.user_id))["device_keys"][alice.user_id] == {}
    assert (
        await hs.server.client.e2ee.keys.device_unused_fallback_key_types(
            alice.user_id, alice.device_id
        )
        == []
    )

    # signed keys may come before the device keys; unsigned ones are strings
    otks = alice.one_time_keys(2)
    await alice.upload(one_time_keys=otks)
    body = await alice.upload(one_time_keys={"curve25519:U1": "E" * 43})
    assert body["one_time_key_counts"] == {"signed_curve25519": 2, "curve25519": 1}
    # the same IDs with the same keys: nothing new, even signed again
    first = next(iter(otks))
    again = dict(otks)
    again[first] = {**otks[first], "signatures": {alice.user_id: {"ed25519:X": "other"}}}
    body = await alice.upload(one_time_keys=again)
    assert body["one_time_key_counts"]["signed_curve25519"] == 2
    # the same ID with another key is refused, and the request stores nothing
    changed = {
        first: signed({"key": "D" * 43}, alice.user_id, alice.key),
        "curve25519:U2": "F" * 43,
    }
    body = await alice.upload(expect=400, one_time_keys=changed)
    assert body["errcode"] == "M_INVALID_PARAM"
    body = await alice.upload()
    assert body["one_time_key_counts"] == {"signed_curve25519": 2, "curve25519": 1}
    # one fallback key per algorithm
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

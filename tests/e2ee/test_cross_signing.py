"""Cross-signing keys (UIA rules, shapes, signatures by the master key) and
/keys/signatures/upload, seen through /keys/query."""

from __future__ import annotations

from tests.conftest import HomeserverHarness
from tests.e2ee.helpers import (
    CrossSigning,
    KeyedDevice,
    changes,
    current_token,
    make_device,
    password_auth,
    query,
    signed,
)
from tests.rooms.helpers import make_user


async def setup(hs: HomeserverHarness, name: str) -> tuple[KeyedDevice, CrossSigning]:
    device = await make_device(hs, name)
    await device.upload(device_keys=device.device_keys())
    cs = CrossSigning(device.user_id)
    await device.user.request("POST", "/keys/device_signing/upload", cs.upload_body())
    return device, cs


async def test_first_upload_needs_no_uia_and_replacing_does(hs: HomeserverHarness) -> None:
    alice, cs = await setup(hs, "alice")
    # repeating the same keys is idempotent, without UIA
    await alice.user.request("POST", "/keys/device_signing/upload", cs.upload_body())
    new = CrossSigning(alice.user_id)
    body = new.upload_body()
    challenge = await alice.user.request("POST", "/keys/device_signing/upload", body, expect=401)
    assert ["m.login.password"] in [f["stages"] for f in challenge["flows"]]
    body["auth"] = password_auth(challenge["session"], alice.user_id)
    await alice.user.request("POST", "/keys/device_signing/upload", body)
    result = await query(alice.user, alice.user_id)
    assert result["master_keys"][alice.user_id]["keys"] == {
        f"ed25519:{new.master_pub}": new.master_pub
    }


async def test_query_shows_keys_and_user_signing_only_to_owner(hs: HomeserverHarness) -> None:
    alice, _ = await setup(hs, "alice")
    bob = await make_user(hs, "bob")
    own = await query(alice.user, alice.user_id)
    assert own["master_keys"][alice.user_id]["usage"] == ["master"]
    assert own["self_signing_keys"][alice.user_id]["usage"] == ["self_signing"]
    assert own["user_signing_keys"][alice.user_id]["usage"] == ["user_signing"]
    theirs = await query(bob, alice.user_id)
    assert alice.user_id in theirs["master_keys"]
    assert alice.user_id in theirs["self_signing_keys"]
    assert theirs["user_signing_keys"] == {}


async def test_bad_cross_signing_uploads(hs: HomeserverHarness) -> None:
    alice = await make_device(hs, "alice")
    cs = CrossSigning(alice.user_id)
    path = "/keys/device_signing/upload"
    # self-signing key without any master key
    body = await alice.user.request(
        "POST", path, {"self_signing_key": cs.upload_body()["self_signing_key"]}, expect=400
    )
    assert body["errcode"] == "M_MISSING_PARAM"
    # self-signing key signed by something else
    bad = cs.upload_body()
    bad["self_signing_key"] = cs.key("self_signing", cs.ssk_pub, cs.usk)
    body = await alice.user.request("POST", path, bad, expect=400)
    assert body["errcode"] == "M_INVALID_SIGNATURE"
    wrong_usage = cs.upload_body()
    wrong_usage["master_key"]["usage"] = ["self_signing"]
    body = await alice.user.request("POST", path, wrong_usage, expect=400)
    assert body["errcode"] == "M_INVALID_PARAM"
    two_keys = cs.upload_body()
    two_keys["master_key"]["keys"]["ed25519:other"] = "other"
    body = await alice.user.request("POST", path, two_keys, expect=400)
    assert body["errcode"] == "M_INVALID_PARAM"
    other_user = cs.upload_body()
    other_user["master_key"]["user_id"] = "@bob:test.local"
    body = await alice.user.request("POST", path, other_user, expect=400)
    assert body["errcode"] == "M_INVALID_PARAM"
    body = await alice.user.request("POST", path, {"master_key": "x"}, expect=400)
    assert body["errcode"] == "M_BAD_JSON"
    # nothing was stored by the failed requests
    assert (await query(alice.user, alice.user_id))["master_keys"] == {}


async def test_device_signature_by_self_signing_key(hs: HomeserverHarness) -> None:
    alice, cs = await setup(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await bob.create_room(preset="public_chat")
    await alice.user.join(room)
    start = current_token(hs)
    device_keys = alice.device_keys()
    del device_keys["signatures"]
    signed_device = signed(device_keys, alice.user_id, cs.ssk)
    result = await alice.user.request(
        "POST", "/keys/signatures/upload", {alice.user_id: {alice.device_id: signed_device}}
    )
    assert result["failures"] == {}
    seen = await query(bob, alice.user_id)
    sigs = seen["device_keys"][alice.user_id][alice.device_id]["signatures"][alice.user_id]
    assert f"ed25519:{cs.ssk_pub}" in sigs and f"ed25519:{alice.device_id}" in sigs
    assert alice.user_id in (await changes(bob, start, current_token(hs)))["changed"]


async def test_bad_signatures_are_reported_as_failures(hs: HomeserverHarness) -> None:
    alice, cs = await setup(hs, "alice")
    device_keys = alice.device_keys()
    del device_keys["signatures"]
    by_wrong_key = signed(device_keys, alice.user_id, cs.usk)
    tampered = signed(device_keys, alice.user_id, cs.ssk)
    tampered["algorithms"] = ["changed"]
    result = await alice.user.request(
        "POST",
        "/keys/signatures/upload",
        {alice.user_id: {alice.device_id: by_wrong_key, "NOSUCHDEVICE": tampered}},
    )
    failures = result["failures"][alice.user_id]
    assert failures[alice.device_id]["errcode"] == "M_INVALID_SIGNATURE"
    assert failures["NOSUCHDEVICE"]["errcode"] == "M_NOT_FOUND"
    # nothing was added
    seen = await query(alice.user, alice.user_id)
    sigs = seen["device_keys"][alice.user_id][alice.device_id]["signatures"][alice.user_id]
    assert list(sigs) == [f"ed25519:{alice.device_id}"]


async def test_master_key_signed_by_device_and_by_other_user(hs: HomeserverHarness) -> None:
    alice, alice_cs = await setup(hs, "alice")
    bob, bob_cs = await setup(hs, "bob")
    # alice's device signs her own master key
    master = alice_cs.key("master", alice_cs.master_pub)
    by_device = signed(master, alice.user_id, alice.key)
    result = await alice.user.request(
        "POST", "/keys/signatures/upload", {alice.user_id: {alice_cs.master_pub: by_device}}
    )
    assert result["failures"] == {}
    seen_by_bob = await query(bob.user, alice.user_id)
    master_sigs = seen_by_bob["master_keys"][alice.user_id]["signatures"][alice.user_id]
    assert f"ed25519:{alice.device_id}" in master_sigs

    # alice's user-signing key signs bob's master key: only alice sees it
    start = current_token(hs)
    bob_master = signed(bob_cs.key("master", bob_cs.master_pub), alice.user_id, alice_cs.usk)
    result = await alice.user.request(
        "POST", "/keys/signatures/upload", {bob.user_id: {bob_cs.master_pub: bob_master}}
    )
    assert result["failures"] == {}
    for_alice = await query(alice.user, bob.user_id)
    assert alice.user_id in for_alice["master_keys"][bob.user_id]["signatures"]
    for_bob = await query(bob.user, bob.user_id)
    assert alice.user_id not in for_bob["master_keys"][bob.user_id].get("signatures", {})
    end = current_token(hs)
    assert bob.user_id in (await changes(alice.user, start, end))["changed"]
    assert (await changes(bob.user, start, end))["changed"] == []

    # signing bob's self-signing key (not a master key) with the user-signing key fails
    bob_ssk = signed(
        bob_cs.key("self_signing", bob_cs.ssk_pub, bob_cs.master), alice.user_id, alice_cs.usk
    )
    result = await alice.user.request(
        "POST", "/keys/signatures/upload", {bob.user_id: {bob_cs.ssk_pub: bob_ssk}}
    )
    assert result["failures"][bob.user_id][bob_cs.ssk_pub]["errcode"] == "M_INVALID_SIGNATURE"


async def test_signatures_upload_bad_body(hs: HomeserverHarness) -> None:
    alice = await make_device(hs, "alice")
    body = await alice.user.request(
        "POST", "/keys/signatures/upload", {alice.user_id: "x"}, expect=400
    )
    assert body["errcode"] == "M_BAD_JSON"
    body = await alice.user.request("POST", "/keys/signatures/upload", {"x": {}}, expect=400)
    assert body["errcode"] == "M_INVALID_PARAM"


async def test_who_is_told_of_new_cross_signing_keys(hs: HomeserverHarness) -> None:
    """A new master or self-signing key is a change for everyone sharing a room with
    the user; a new user-signing key only for the user (nobody else sees what it
    signs), as Synapse notifies."""
    alice, cs = await setup(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await bob.create_room(preset="public_chat")
    await alice.user.join(room)

    start = current_token(hs)
    body = {"user_signing_key": cs.key("user_signing", CrossSigning(alice.user_id).usk_pub)}
    body["user_signing_key"] = signed(body["user_signing_key"], alice.user_id, cs.master)
    challenge = await alice.user.request("POST", "/keys/device_signing/upload", body, expect=401)
    body["auth"] = password_auth(challenge["session"], alice.user_id)
    await alice.user.request("POST", "/keys/device_signing/upload", body)
    end = current_token(hs)
    assert (await changes(bob, start, end))["changed"] == []
    assert (await changes(alice.user, start, end))["changed"] == [alice.user_id]

    new = CrossSigning(alice.user_id)
    ssk = {
        "self_signing_key": signed(new.key("self_signing", new.ssk_pub), alice.user_id, cs.master)
    }
    challenge = await alice.user.request("POST", "/keys/device_signing/upload", ssk, expect=401)
    ssk["auth"] = password_auth(challenge["session"], alice.user_id)
    await alice.user.request("POST", "/keys/device_signing/upload", ssk)
    assert (await changes(bob, end, current_token(hs)))["changed"] == [alice.user_id]


async def test_cross_signing_under_unstable(hs: HomeserverHarness) -> None:
    """``/unstable/keys/device_signing/upload`` and ``/unstable/keys/signatures/upload``
    (as first served, MSC1756; Synapse still serves them) are the same endpoints."""
    alice = await make_device(hs, "alice")
    await alice.upload(device_keys=alice.device_keys())
    cs = CrossSigning(alice.user_id)
    unstable = "/_matrix/client/unstable/keys"
    resp = await hs.client.post(
        f"{unstable}/device_signing/upload", json=cs.upload_body(), headers=alice.user.auth
    )
    assert resp.status == 200, await resp.json()
    device_keys = alice.device_keys()
    del device_keys["signatures"]
    resp = await hs.client.post(
        f"{unstable}/signatures/upload",
        json={alice.user_id: {alice.device_id: signed(device_keys, alice.user_id, cs.ssk)}},
        headers=alice.user.auth,
    )
    assert (await resp.json()) == {"failures": {}}
    seen = await query(alice.user, alice.user_id)
    assert seen["master_keys"][alice.user_id]["keys"] == {f"ed25519:{cs.master_pub}": cs.master_pub}
    sigs = seen["device_keys"][alice.user_id][alice.device_id]["signatures"][alice.user_id]
    assert f"ed25519:{cs.ssk_pub}" in sigs
    # and unauthenticated it is refused like the stable one
    resp = await hs.client.post(f"{unstable}/device_signing/upload", json=cs.upload_body())
    assert resp.status == 401


async def test_new_device_keys_drop_the_signatures_over_the_old_ones(
    hs: HomeserverHarness,
) -> None:
    alice, cs = await setup(hs, "alice")
    device_keys = alice.device_keys()
    del device_keys["signatures"]
    by_ssk = signed(device_keys, alice.user_id, cs.ssk)
    result = await alice.user.request(
        "POST", "/keys/signatures/upload", {alice.user_id: {alice.device_id: by_ssk}}
    )
    assert result["failures"] == {}
    # the same keys uploaded again: the signature stays
    await alice.upload(device_keys=alice.device_keys())
    seen = await query(alice.user, alice.user_id)
    sigs = seen["device_keys"][alice.user_id][alice.device_id]["signatures"][alice.user_id]
    assert f"ed25519:{cs.ssk_pub}" in sigs
    # new identity keys: the self-signing key signed the old ones, not these
    alice.curve25519 = "N" * 43
    await alice.upload(device_keys=alice.device_keys())
    seen = await query(alice.user, alice.user_id)
    sigs = seen["device_keys"][alice.user_id][alice.device_id]["signatures"][alice.user_id]
    assert list(sigs) == [f"ed25519:{alice.device_id}"]

"""Server-side key backup: versions, etag/count, better-key rules, wrong versions."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import HomeserverHarness
from tests.rooms.helpers import User, make_user

ALG = "m.megolm_backup.v1.curve25519-aes-sha2"
ROOM = "!room:test.local"


def key(first: int = 0, forwarded: int = 0, verified: bool = False, tag: str = "a") -> dict:
    return {
        "first_message_index": first,
        "forwarded_count": forwarded,
        "is_verified": verified,
        "session_data": {"ephemeral": tag, "ciphertext": tag, "mac": tag},
    }


async def new_version(user: User) -> str:
    body = await user.request(
        "POST", "/room_keys/version", {"algorithm": ALG, "auth_data": {"public_key": "pk"}}
    )
    return str(body["version"])


async def put(user: User, version: str, data: dict, expect: int = 200) -> Any:
    return await user.request(
        "PUT", f"/room_keys/keys/{ROOM}/sess", data, expect=expect, params={"version": version}
    )


async def test_versions_lifecycle(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    body = await alice.request("GET", "/room_keys/version", expect=404)
    assert body["errcode"] == "M_NOT_FOUND"
    first = await new_version(alice)
    info = await alice.request("GET", "/room_keys/version")
    assert info == {
        "algorithm": ALG,
        "auth_data": {"public_key": "pk"},
        "count": 0,
        "etag": info["etag"],
        "version": first,
    }
    second = await new_version(alice)
    assert int(second) > int(first)
    assert (await alice.request("GET", "/room_keys/version"))["version"] == second
    assert (await alice.request("GET", f"/room_keys/version/{first}"))["version"] == first
    await alice.request(
        "PUT", f"/room_keys/version/{second}", {"algorithm": ALG, "auth_data": {"public_key": "x"}}
    )
    assert (await alice.request("GET", "/room_keys/version"))["auth_data"] == {"public_key": "x"}
    body = await alice.request(
        "PUT", f"/room_keys/version/{second}", {"algorithm": "other", "auth_data": {}}, expect=400
    )
    assert body["errcode"] == "M_INVALID_PARAM"
    body = await alice.request(
        "PUT",
        f"/room_keys/version/{second}",
        {"algorithm": ALG, "auth_data": {}, "version": first},
        expect=400,
    )
    assert body["errcode"] == "M_INVALID_PARAM"
    await alice.request("DELETE", f"/room_keys/version/{second}")
    await alice.request("DELETE", f"/room_keys/version/{second}")  # again: fine
    await alice.request("GET", f"/room_keys/version/{second}", expect=404)
    assert (await alice.request("GET", "/room_keys/version"))["version"] == first
    await alice.request("DELETE", "/room_keys/version/999", expect=404)
    await alice.request("GET", "/room_keys/version/notanumber", expect=404)
    # versions are never reused
    assert int(await new_version(alice)) > int(second)
    # another user's backups are separate
    bob = await make_user(hs, "bob")
    await bob.request("GET", "/room_keys/version", expect=404)
    await bob.request("GET", f"/room_keys/version/{first}", expect=404)


async def test_bad_version_bodies(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    for bad in ({"auth_data": {}}, {"algorithm": 5, "auth_data": {}}):
        body = await alice.request("POST", "/room_keys/version", bad, expect=400)
        assert body["errcode"] in ("M_MISSING_PARAM", "M_BAD_JSON"), bad
    for bad in ({"algorithm": ALG}, {"algorithm": ALG, "auth_data": None}):
        body = await alice.request("POST", "/room_keys/version", bad, expect=400)
        assert body["errcode"] == "M_MISSING_PARAM", bad
    await alice.request("GET", "/room_keys/version", expect=404)  # none was made
    version = await new_version(alice)
    body = await alice.request(
        "PUT", f"/room_keys/version/{version}", {"algorithm": ALG}, expect=400
    )
    assert body["errcode"] == "M_MISSING_PARAM"
    assert (await alice.request("GET", "/room_keys/version"))["auth_data"] == {"public_key": "pk"}


async def test_opaque_data_of_any_json_type(hs: HomeserverHarness) -> None:
    """``auth_data`` and ``session_data`` are the client's: the spec describes
    objects, Synapse keeps any JSON value and SyTest sends strings; kept as given."""
    alice = await make_user(hs, "alice")
    created = await alice.request(
        "POST", "/room_keys/version", {"algorithm": ALG, "auth_data": "anopaquestring"}
    )
    version = created["version"]
    assert isinstance(version, str)
    info = await alice.request("GET", f"/room_keys/version/{version}")
    assert info["auth_data"] == "anopaquestring"
    await alice.request(
        "PUT",
        f"/room_keys/version/{version}",
        {"algorithm": ALG, "auth_data": ["a", 1], "version": version},
    )
    assert (await alice.request("GET", "/room_keys/version"))["auth_data"] == ["a", 1]
    data = {**key(), "session_data": "anopaquestring"}
    await put(alice, version, data)
    stored = await alice.request("GET", f"/room_keys/keys/{ROOM}/sess", params={"version": version})
    assert stored == data
    body = await put(alice, version, {**key(), "session_data": None}, expect=400)
    assert body["errcode"] == "M_MISSING_PARAM"


async def test_more_than_ten_versions(hs: HomeserverHarness) -> None:
    """Versions are numbers, compared as numbers ("10" comes after "9")."""
    alice = await make_user(hs, "alice")
    versions = [await new_version(alice) for _ in range(12)]
    assert [int(v) for v in versions] == sorted(int(v) for v in versions)
    assert (await alice.request("GET", "/room_keys/version"))["version"] == versions[-1]
    body = await put(alice, versions[9], key(), expect=403)
    assert body["current_version"] == versions[-1]
    await put(alice, versions[-1], key())


async def test_versions_created_at_once_are_distinct(hs: HomeserverHarness) -> None:
    """Ten creations at once all succeed, each with its own version (they race for
    the next number: the losers take the following ones)."""
    alice = await make_user(hs, "alice")
    versions = await asyncio.gather(*(new_version(alice) for _ in range(10)))
    assert sorted(int(v) for v in versions) == list(range(1, 11))
    assert (await alice.request("GET", "/room_keys/version"))["version"] == "10"


async def test_keys_etag_count_and_better_key_rules(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    version = await new_version(alice)
    first = await put(alice, version, key(first=5, forwarded=2, tag="orig"))
    assert first["count"] == 1
    # worse keys are ignored and leave the etag alone
    same = await put(alice, version, key(first=6, tag="worse"))
    assert same == first
    same = await put(alice, version, key(first=5, forwarded=3, tag="worse"))
    assert same == first
    # a lower first_message_index wins
    better = await put(alice, version, key(first=1, forwarded=9, tag="lower-index"))
    assert better["etag"] != first["etag"] and better["count"] == 1
    # verified beats everything unverified
    await put(alice, version, key(first=9, forwarded=9, verified=True, tag="verified"))
    stored = await alice.request("GET", f"/room_keys/keys/{ROOM}/sess", params={"version": version})
    assert stored == key(first=9, forwarded=9, verified=True, tag="verified")
    # an unverified key never replaces a verified one
    await put(alice, version, key(first=0, tag="unverified"))
    stored = await alice.request("GET", f"/room_keys/keys/{ROOM}/sess", params={"version": version})
    assert stored["session_data"]["ephemeral"] == "verified"
    # lower forwarded_count wins when the rest ties
    await put(alice, version, key(first=9, forwarded=1, verified=True, tag="fewer-forwards"))

    # bulk forms
    bulk = await alice.request(
        "PUT",
        "/room_keys/keys",
        {"rooms": {"!other:test.local": {"sessions": {"s1": key(), "s2": key()}}}},
        params={"version": version},
    )
    assert bulk["count"] == 3
    room = await alice.request(
        "PUT", f"/room_keys/keys/{ROOM}", {"sessions": {"s3": key()}}, params={"version": version}
    )
    assert room["count"] == 4
    everything = await alice.request("GET", "/room_keys/keys", params={"version": version})
    assert set(everything["rooms"]) == {ROOM, "!other:test.local"}
    assert set(everything["rooms"][ROOM]["sessions"]) == {"sess", "s3"}
    assert (await alice.request("GET", "/room_keys/version"))["count"] == 4
    empty = await alice.request(
        "GET", "/room_keys/keys/!none:test.local", params={"version": version}
    )
    assert empty == {"sessions": {}}
    await alice.request(
        "GET", "/room_keys/keys/!none:test.local/x", params={"version": version}, expect=404
    )

    deleted = await alice.request(
        "DELETE", f"/room_keys/keys/{ROOM}/sess", params={"version": version}
    )
    assert deleted["count"] == 3 and deleted["etag"] != room["etag"]
    deleted = await alice.request("DELETE", f"/room_keys/keys/{ROOM}", params={"version": version})
    assert deleted["count"] == 2
    deleted = await alice.request("DELETE", "/room_keys/keys", params={"version": version})
    assert deleted["count"] == 0


async def test_wrong_and_missing_versions(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    body = await put(alice, "1", key(), expect=404)
    assert body["errcode"] == "M_NOT_FOUND"
    old = await new_version(alice)
    current = await new_version(alice)
    body = await put(alice, old, key(), expect=403)
    assert body == {
        "errcode": "M_WRONG_ROOM_KEYS_VERSION",
        "error": body["error"],
        "current_version": current,
    }
    # reading an older version is fine
    assert await alice.request("GET", "/room_keys/keys", params={"version": old}) == {"rooms": {}}
    body = await alice.request("GET", "/room_keys/keys", expect=400)
    assert body["errcode"] == "M_MISSING_PARAM"
    body = await put(alice, current, {"first_message_index": 0}, expect=400)
    assert body["errcode"] == "M_MISSING_PARAM"
    body = await put(alice, current, {**key(), "is_verified": "yes"}, expect=400)
    assert body["errcode"] == "M_BAD_JSON"
    body = await put(alice, current, key(first=-1), expect=400)
    assert body["errcode"] == "M_INVALID_PARAM"
    await alice.request("DELETE", f"/room_keys/version/{current}")
    body = await alice.request("GET", "/room_keys/keys", params={"version": current}, expect=404)
    assert body["errcode"] == "M_NOT_FOUND"
    assert (await alice.request("GET", "/room_keys/version"))["count"] == 0

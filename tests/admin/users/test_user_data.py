"""A user's joined rooms, media, account data and pushers, through the admin API."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.admin.users.helpers import V1, admin_and_user, call, error_of, user_path
from tests.conftest import HomeserverHarness
from tests.media.helpers import download_path, stored_blobs, upload

USER = "@user:test.local"
C = "/_matrix/client/v3"


async def ok(hs: HomeserverHarness, method: str, path: str, token: str, body: Any = None) -> Any:
    status, payload = await call(hs, method, path, token, body)
    assert status == 200, (path, payload)
    return payload


async def test_joined_rooms(hs: HomeserverHarness) -> None:
    admin, user = await admin_and_user(hs)
    path = user_path(V1, USER, "/joined_rooms")
    assert await call(hs, "GET", path, admin) == (200, {"joined_rooms": [], "total": 0})
    first = (await ok(hs, "POST", f"{C}/createRoom", user, {}))["room_id"]
    second = (await ok(hs, "POST", f"{C}/createRoom", user, {}))["room_id"]
    invited = (await ok(hs, "POST", f"{C}/createRoom", admin, {"invite": [USER]}))["room_id"]
    await ok(hs, "POST", f"{C}/rooms/{second}/leave", user, {})
    status, body = await call(hs, "GET", path, admin)
    assert status == 200
    assert body == {"joined_rooms": [first], "total": 1}
    assert invited not in body["joined_rooms"]


async def test_list_and_delete_a_users_media(hs: HomeserverHarness) -> None:
    admin, user = await admin_and_user(hs)
    ids = []
    for i, (data, name) in enumerate([(b"aaaa", "b.txt"), (b"bb", "a.txt"), (b"cccccc", "c.txt")]):
        hs.clock.advance(1)
        ids.append(await upload(hs, user, data + bytes([i]), "text/plain", name))
    other = await upload(hs, admin, b"the admin's", "text/plain")
    path = user_path(V1, USER, "/media")
    status, body = await call(hs, "GET", path, admin)
    assert status == 200
    assert body["total"] == 3 and "next_token" not in body
    # newest first by default
    assert [m["media_id"] for m in body["media"]] == list(reversed(ids))
    newest = body["media"][0]
    assert newest["media_length"] == 7 and newest["media_type"] == "text/plain"
    assert newest["upload_name"] == "c.txt" and newest["quarantined_by"] is None
    assert newest["safe_from_quarantine"] is False
    assert newest["created_ts"] == hs.clock.time_ms()
    status, body = await call(hs, "GET", f"{path}?order_by=upload_name", admin)
    assert [m["upload_name"] for m in body["media"]] == ["a.txt", "b.txt", "c.txt"]
    status, body = await call(hs, "GET", f"{path}?order_by=media_length&dir=b", admin)
    assert [m["media_length"] for m in body["media"]] == [7, 5, 3]
    status, body = await call(hs, "GET", f"{path}?limit=2", admin)
    assert len(body["media"]) == 2 and body["next_token"] == 2
    status, body = await call(hs, "GET", f"{path}?limit=2&from=2", admin)
    assert [m["media_id"] for m in body["media"]] == [ids[0]] and "next_token" not in body
    for query in ("order_by=size", "dir=x", "from=-1", "limit=y"):
        assert await error_of(hs, "GET", f"{path}?{query}", admin) == (400, "M_INVALID_PARAM")
    assert len(stored_blobs(hs)) == 4
    # deleting: the oldest two, as ordered, rows and files
    status, body = await call(hs, "DELETE", f"{path}?order_by=created_ts&limit=2", admin)
    assert status == 200
    assert body == {"deleted_media": ids[:2], "total": 2}
    for media_id in ids[:2]:
        assert await hs.server.stores.media.get_media("test.local", media_id) is None
        response = await hs.client.get(
            download_path(media_id), headers={"Authorization": f"Bearer {user}"}
        )
        assert response.status == 404
    assert len(stored_blobs(hs)) == 2
    assert await hs.server.stores.media.get_media("test.local", ids[2]) is not None
    assert await hs.server.stores.media.get_media("test.local", other) is not None
    status, body = await call(hs, "DELETE", path, admin)
    assert body == {"deleted_media": [ids[2]], "total": 1}
    assert len(stored_blobs(hs)) == 1  # the admin's own
    assert (await call(hs, "GET", path, admin))[1] == {"media": [], "total": 0}


async def test_account_data(hs: HomeserverHarness) -> None:
    admin, user = await admin_and_user(hs)
    room_id = (await ok(hs, "POST", f"{C}/createRoom", user, {}))["room_id"]
    await ok(hs, "PUT", f"{C}/user/{quote(USER)}/account_data/org.example.a", user, {"a": 1})
    await ok(
        hs, "PUT", f"{C}/user/{quote(USER)}/rooms/{room_id}/account_data/m.tag", user, {"t": 2}
    )
    status, body = await call(hs, "GET", user_path(V1, USER, "/accountdata"), admin)
    assert status == 200
    data = body["account_data"]
    assert data["global"]["org.example.a"] == {"a": 1}
    assert data["rooms"] == {room_id: {"m.tag": {"t": 2}}}


async def test_pushers(hs: HomeserverHarness) -> None:
    admin, user = await admin_and_user(hs)
    path = user_path(V1, USER, "/pushers")
    assert await call(hs, "GET", path, admin) == (200, {"pushers": [], "total": 0})
    pusher = {
        "kind": "http",
        "app_id": "org.example.app",
        "pushkey": "key1",
        "app_display_name": "App",
        "device_display_name": "Phone",
        "lang": "en",
        "data": {"url": "https://push.example.org/_matrix/push/v1/notify"},
    }
    await ok(hs, "POST", f"{C}/pushers/set", user, pusher)
    status, body = await call(hs, "GET", path, admin)
    assert status == 200 and body["total"] == 1
    listed = body["pushers"][0]
    for key in ("kind", "app_id", "pushkey", "app_display_name", "device_display_name", "lang"):
        assert listed[key] == pusher[key]
    assert listed["data"]["url"] == pusher["data"]["url"]
    assert listed["profile_tag"] == ""


async def test_memberships(hs: HomeserverHarness) -> None:
    admin, user = await admin_and_user(hs)
    path = user_path(V1, USER, "/memberships")
    assert await call(hs, "GET", path, admin) == (200, {"memberships": {}})
    joined = (await ok(hs, "POST", f"{C}/createRoom", user, {}))["room_id"]
    left = (await ok(hs, "POST", f"{C}/createRoom", user, {}))["room_id"]
    await ok(hs, "POST", f"{C}/rooms/{left}/leave", user, {})
    invited = (await ok(hs, "POST", f"{C}/createRoom", admin, {"invite": [USER]}))["room_id"]
    status, body = await call(hs, "GET", path, admin)
    assert status == 200
    assert body == {"memberships": {joined: "join", left: "leave", invited: "invite"}}
    # a remote user: the rooms this server knows them in (none here)
    remote = user_path(V1, "@bob:elsewhere.example", "/memberships")
    assert await call(hs, "GET", remote, admin) == (200, {"memberships": {}})
    assert await error_of(hs, "GET", f"{V1}/users/bob/memberships", admin) == (
        400,
        "M_INVALID_PARAM",
    )


async def test_find_user_by_external_id_and_threepid(hs: HomeserverHarness) -> None:
    admin, _ = await admin_and_user(hs)
    await ok(
        hs,
        "PUT",
        f"/_synapse/admin/v2/users/{quote(USER)}",
        admin,
        {
            "external_ids": [{"auth_provider": "oidc-x", "external_id": "a/b@c"}],
            "threepids": [{"medium": "email", "address": "u@example.org"}],
        },
    )
    by_sso = f"{V1}/auth_providers/oidc-x/users/{quote('a/b@c', safe='')}"
    assert await call(hs, "GET", by_sso, admin) == (200, {"user_id": USER})
    assert await error_of(hs, "GET", f"{V1}/auth_providers/oidc-x/users/zz", admin) == (
        404,
        "M_NOT_FOUND",
    )
    by_email = f"{V1}/threepid/email/users/{quote('u@example.org')}"
    assert await call(hs, "GET", by_email, admin) == (200, {"user_id": USER})
    assert await error_of(hs, "GET", f"{V1}/threepid/msisdn/users/u%40example.org", admin) == (
        404,
        "M_NOT_FOUND",
    )

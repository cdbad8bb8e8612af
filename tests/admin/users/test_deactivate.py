"""POST /_synapse/admin/v1/deactivate/{userId}: what deactivation and erasure remove,
read back from the database."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.admin.users.helpers import V1, V2, admin_and_user, call, count, error_of, user_path
from tests.conftest import HomeserverHarness

USER = "@user:test.local"
C = "/_matrix/client/v3"

# rows every deactivation removes (as Synapse), and those only an erasure removes
ON_DEACTIVATION = (
    "access_tokens",
    "refresh_tokens",
    "devices",
    "user_threepids",
    "account_data",
    "push_rules",
    "e2e_device_keys",
    "e2e_one_time_keys",
    "pushers",
    "user_directory",
    "user_ips",  # with the devices
)
ON_ERASURE = (
    "receipts",
    "e2e_room_keys",
    "e2e_room_keys_versions",
    "device_inbox",
    "user_filters",
)


async def ok(hs: HomeserverHarness, method: str, path: str, token: str, body: Any = None) -> Any:
    status, payload = await call(hs, method, path, token, body)
    assert status == 200, (path, payload)
    return payload


async def give_user_data(hs: HomeserverHarness, admin: str, user: str) -> str:
    """A room the user is in, and a row of each kind that only serves the user."""
    room_id = (await ok(hs, "POST", f"{C}/createRoom", admin, {"preset": "public_chat"}))["room_id"]
    await ok(hs, "POST", f"{C}/join/{room_id}", user, {})
    sent = await ok(
        hs,
        "PUT",
        f"{C}/rooms/{room_id}/send/m.room.message/t1",
        user,
        {"body": "hi", "msgtype": "m.text"},
    )
    await ok(hs, "POST", f"{C}/rooms/{room_id}/receipt/m.read/{sent['event_id']}", user, {})
    await ok(hs, "PUT", f"{C}/user/{quote(USER)}/account_data/org.example.x", user, {"a": 1})
    await ok(
        hs,
        "PUT",
        f"{C}/user/{quote(USER)}/rooms/{room_id}/account_data/org.example.y",
        user,
        {"b": 2},
    )
    await ok(
        hs,
        "PUT",
        f"{C}/pushrules/global/override/mine",
        user,
        {"actions": ["notify"], "conditions": []},
    )
    await ok(
        hs, "POST", f"{C}/user/{quote(USER)}/filter", user, {"room": {"timeline": {"limit": 5}}}
    )
    whoami = await ok(hs, "GET", f"{C}/account/whoami", user)
    device_id = whoami["device_id"]
    await ok(
        hs,
        "POST",
        f"{C}/keys/upload",
        user,
        {
            "device_keys": {
                "user_id": USER,
                "device_id": device_id,
                "algorithms": ["m.olm.v1.curve25519-aes-sha2"],
                "keys": {f"curve25519:{device_id}": "abc", f"ed25519:{device_id}": "def"},
                "signatures": {USER: {f"ed25519:{device_id}": "sig"}},
            },
            "one_time_keys": {"curve25519:AAAA": "otk"},
        },
    )
    version = await ok(
        hs,
        "POST",
        f"{C}/room_keys/version",
        user,
        {"algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": {"public_key": "pk"}},
    )
    await ok(
        hs,
        "PUT",
        f"{C}/room_keys/keys/{room_id}/session1?version={version['version']}",
        user,
        {
            "first_message_index": 0,
            "forwarded_count": 0,
            "is_verified": False,
            "session_data": {"ciphertext": "c"},
        },
    )
    await ok(
        hs,
        "POST",
        f"{C}/pushers/set",
        user,
        {
            "kind": "http",
            "app_id": "org.example.app",
            "pushkey": "key1",
            "app_display_name": "App",
            "device_display_name": "Phone",
            "lang": "en",
            "data": {"url": "https://push.example.org/_matrix/push/v1/notify"},
        },
    )
    await ok(
        hs,
        "PUT",
        f"{C}/sendToDevice/org.example.ping/t1",
        admin,
        {"messages": {USER: {"*": {"ping": True}}}},
    )
    await ok(
        hs,
        "PUT",
        user_path(V2, USER),
        admin,
        {"threepids": [{"medium": "email", "address": "user@example.org"}]},
    )
    login = await hs.client.post(
        f"{C}/login",
        json={
            "type": "m.login.password",
            "user": "user",
            "password": "correct horse",
            "refresh_token": True,
        },
    )
    assert login.status == 200
    return str(room_id)


async def membership_of(hs: HomeserverHarness, room_id: str) -> str:
    return (await hs.server.stores.state.rooms_for_user(USER))[room_id]


@pytest.mark.parametrize("erase", [False, True])
async def test_deactivation_removes_the_users_rows(hs: HomeserverHarness, erase: bool) -> None:
    admin, user = await admin_and_user(hs)
    room_id = await give_user_data(hs, admin, user)
    for table in (*ON_DEACTIVATION, *ON_ERASURE):
        assert await count(hs, table, USER) > 0, table
    status, body = await call(hs, "POST", f"{V1}/deactivate/{quote(USER)}", admin, {"erase": erase})
    assert (status, body) == (200, {"id_server_unbind_result": "success"})
    for table in ON_DEACTIVATION:
        assert await count(hs, table, USER) == 0, table
    for table in ON_ERASURE:
        assert (await count(hs, table, USER) == 0) == erase, table
    assert await membership_of(hs, room_id) == "leave"
    record = await hs.server.stores.accounts.get_user(USER)
    assert record is not None and record.deactivated and record.password_hash is None
    erased = await hs.server.db.fetchval(
        "t", "SELECT COUNT(*) FROM erased_users WHERE user_id = $1", USER
    )
    assert int(erased) == (1 if erase else 0)
    profile = await hs.server.db.fetchone(
        "t", "SELECT displayname, avatar_url FROM profiles WHERE user_id = $1", USER
    )
    assert tuple(profile) == (None, None)
    assert await error_of(hs, "GET", f"{C}/account/whoami", user) == (401, "M_UNKNOWN_TOKEN")
    # the listing and the query say so
    _, queried = await call(hs, "GET", user_path(V2, USER), admin)
    assert queried["deactivated"] is True and queried["erased"] is erase
    assert queried["threepids"] == []
    # and the room's others saw the leave
    messages = await ok(hs, "GET", f"{C}/rooms/{room_id}/members", admin)
    memberships = {e["state_key"]: e["content"]["membership"] for e in messages["chunk"]}
    assert memberships[USER] == "leave"


async def test_deactivation_rejects_pending_invites(hs: HomeserverHarness) -> None:
    admin, _ = await admin_and_user(hs)
    room_id = (await ok(hs, "POST", f"{C}/createRoom", admin, {}))["room_id"]
    await ok(hs, "POST", f"{C}/rooms/{room_id}/invite", admin, {"user_id": USER})
    assert await membership_of(hs, room_id) == "invite"
    assert (await call(hs, "POST", f"{V1}/deactivate/{quote(USER)}", admin))[0] == 200
    assert await membership_of(hs, room_id) == "leave"


async def test_bad_erase_changes_nothing(hs: HomeserverHarness) -> None:
    admin, user = await admin_and_user(hs)
    path = f"{V1}/deactivate/{quote(USER)}"
    assert await error_of(hs, "POST", path, admin, {"erase": "yes"}) == (400, "M_BAD_JSON")
    record = await hs.server.stores.accounts.get_user(USER)
    assert record is not None and not record.deactivated
    assert (await call(hs, "GET", f"{C}/account/whoami", user))[0] == 200

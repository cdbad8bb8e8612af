"""Who the user directory never finds (support accounts, application service users),
finds only when asked (locked accounts: show_locked_users) or leaves out on request
(remote users: exclude_remote_users)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import HarnessFactory, HomeserverHarness
from tests.federation.membership_helpers import join_via
from tests.federation.servers import ServerFactory
from tests.rooms.helpers import User, make_user

ALL_USERS = {"search_all_users": True}


async def found(user: User, term: str) -> list[str]:
    body = await user.request("POST", "/user_directory/search", {"search_term": term})
    return [r["user_id"] for r in body["results"]]


async def admin_put(hs: HomeserverHarness, admin: User, user_id: str, body: Any) -> None:
    resp = await hs.client.put(f"/_synapse/admin/v2/users/{user_id}", json=body, headers=admin.auth)
    assert resp.status == 200, await resp.text()


async def test_locked_and_support_accounts(make_homeserver: HarnessFactory) -> None:
    for show_locked in (False, True):
        hs = await make_homeserver(user_directory={**ALL_USERS, "show_locked_users": show_locked})
        n = int(show_locked)  # both servers share the test's database
        admin = await make_user(hs, f"admin{n}")
        await hs.server.stores.accounts.set_admin(admin.user_id, True)
        alice = await make_user(hs, f"alice{n}")
        locked = await make_user(hs, f"bob{n}a")
        support = await make_user(hs, f"bob{n}b")
        plain = await make_user(hs, f"bob{n}c")
        term = f"bob{n}"
        assert await found(alice, term) == [locked.user_id, support.user_id, plain.user_id]
        await admin_put(hs, admin, locked.user_id, {"locked": True})
        await admin_put(hs, admin, support.user_id, {"user_type": "support"})
        expected = [locked.user_id, plain.user_id] if show_locked else [plain.user_id]
        assert await found(alice, term) == expected


async def test_application_service_users_are_left_out(
    make_homeserver: HarnessFactory, tmp_path: Path
) -> None:
    registration = tmp_path / "bridge.yaml"
    registration.write_text(
        "id: bridge\nurl: null\nas_token: as-secret\nhs_token: hs-secret\n"
        "sender_localpart: bridgebot\n"
        "namespaces:\n  users:\n    - {regex: '@bridge_.*:test.local', exclusive: true}\n"
        "  aliases: []\n  rooms: []\n"
    )
    hs = await make_homeserver(
        user_directory=ALL_USERS, app_service_config_files=[str(registration)]
    )
    alice = await make_user(hs, "alice")
    resp = await hs.client.post(
        "/_matrix/client/v3/register",
        json={"type": "m.login.application_service", "username": "bridge_bob"},
        headers={"Authorization": "Bearer as-secret"},
    )
    assert resp.status == 200, await resp.text()
    bob = await make_user(hs, "bobby")
    assert await found(alice, "bob") == [bob.user_id]
    assert await found(alice, "bridge") == []


async def test_exclude_remote_users(federation_servers: ServerFactory) -> None:
    for exclude in (False, True):
        a, b = await federation_servers(
            2, user_directory={**ALL_USERS, "exclude_remote_users": exclude}
        )
        alice = await make_user(a.harness, "alice")
        room = await alice.create_room(preset="public_chat")
        remote = await make_user(b.harness, "bobremote")
        local = await make_user(a.harness, "boblocal")
        await join_via(remote, room, a)
        expected = [local.user_id] if exclude else [local.user_id, remote.user_id]
        assert sorted(await found(alice, "bob")) == sorted(expected)

"""Guest accounts: ``POST /register?kind=guest``, and upgrading a guest to a full
account with ``guest_access_token`` (client-server API: Guest access)."""

from __future__ import annotations

from typing import Any

from tests.conftest import HarnessFactory, HomeserverHarness
from tests.guests.helpers import GUEST_CONFIG, make_guest
from tests.rooms.helpers import V3, User, make_user

REGISTER = V3 + "/register"


async def _upgrade(hs: HomeserverHarness, body: dict[str, Any], expect: int = 200) -> Any:
    """The two requests of a registration (UIA with m.login.dummy); the answer of the
    first that is not the UIA 401."""
    first = await hs.client.post(REGISTER, json=body)
    if first.status != 401:
        assert first.status == expect, await first.text()
        return await first.json()
    session = (await first.json())["session"]
    second = await hs.client.post(
        REGISTER, json={**body, "auth": {"type": "m.login.dummy", "session": session}}
    )
    assert second.status == expect, await second.text()
    return await second.json()


def _localpart(user: User) -> str:
    return user.user_id[1:].partition(":")[0]


async def _is_guest(hs: HomeserverHarness, user_id: str) -> bool:
    record = await hs.server.stores.accounts.get_user(user_id)
    assert record is not None
    return record.is_guest


async def test_guest_account_shape(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(**GUEST_CONFIG)
    guest = await make_guest(hs)
    other = await make_guest(hs)
    assert _localpart(guest).isdigit() and guest.user_id.endswith(":test.local")
    assert guest.user_id != other.user_id and guest.device_id
    assert await _is_guest(hs, guest.user_id)
    # no password: a guest cannot log in
    login = await hs.client.post(
        V3 + "/login",
        json={"type": "m.login.password", "user": guest.user_id, "password": ""},
    )
    assert login.status in (400, 403)


async def test_guest_upgrades_to_full_user_keeping_its_id(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(**GUEST_CONFIG)
    guest = await make_guest(hs)
    await guest.request("PUT", f"/profile/{guest.user_id}/displayname", {"displayname": "Kim"})
    alice = await make_user(hs, "alice")
    room = await alice.create_room(preset="public_chat")
    await alice.request(
        "PUT", f"/rooms/{room}/state/m.room.guest_access/", {"guest_access": "can_join"}
    )
    await guest.join(room)

    body = await _upgrade(
        hs,
        {
            "username": _localpart(guest),
            "password": "SIR_Arthur_David",
            "guest_access_token": guest.token,
            "initial_device_display_name": "laptop",
        },
    )
    assert body["user_id"] == guest.user_id
    full = User(hs, body["user_id"], body["access_token"], body["device_id"])
    who = await full.request("GET", "/account/whoami")
    assert who == {"user_id": guest.user_id, "device_id": full.device_id, "is_guest": False}
    assert not await _is_guest(hs, guest.user_id)
    # the guest token is dead; the profile and the room membership stay
    dead = await guest.request("GET", "/account/whoami", expect=401)
    assert dead["errcode"] == "M_UNKNOWN_TOKEN"
    assert (await full.request("GET", f"/profile/{full.user_id}"))["displayname"] == "Kim"
    assert (await alice.state(room, "m.room.member", full.user_id))["membership"] == "join"
    # a full user now: what guests may not do works, and the password logs in
    await full.create_room()
    login = await hs.client.post(
        V3 + "/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": _localpart(guest)},
            "password": "SIR_Arthur_David",
        },
    )
    assert login.status == 200 and (await login.json())["user_id"] == guest.user_id
    # and it is no guest any more: the old token cannot upgrade it again
    again = await _upgrade(
        hs,
        {"username": _localpart(guest), "password": "x", "guest_access_token": guest.token},
        expect=403,
    )
    assert again["errcode"] == "M_FORBIDDEN"


async def test_upgrade_refusals_leave_accounts_untouched(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(**GUEST_CONFIG)
    guest = await make_guest(hs)
    other = await make_guest(hs)
    alice = await make_user(hs, "alice")
    users_before = await hs.server.db.fetchval("t", "SELECT COUNT(*) FROM users")
    cases: list[tuple[dict[str, Any], int, str]] = [
        # another guest's token
        ({"username": _localpart(guest), "guest_access_token": other.token}, 403, "M_FORBIDDEN"),
        # a full user's token
        ({"username": _localpart(guest), "guest_access_token": alice.token}, 403, "M_FORBIDDEN"),
        # no such token
        ({"username": _localpart(guest), "guest_access_token": "syt_nope"}, 403, "M_FORBIDDEN"),
        # a guest's token for a full user's name
        ({"username": "alice", "guest_access_token": guest.token}, 403, "M_FORBIDDEN"),
        # the guest's name without its token
        ({"username": _localpart(guest)}, 400, "M_USER_IN_USE"),
        # no username to upgrade
        ({"guest_access_token": guest.token}, 400, "M_MISSING_PARAM"),
        # not a string
        ({"username": _localpart(guest), "guest_access_token": 7}, 400, "M_BAD_JSON"),
    ]
    for body, status, errcode in cases:
        answer = await _upgrade(hs, {**body, "password": "pw"}, expect=status)
        assert answer["errcode"] == errcode, (body, answer)
    assert await hs.server.db.fetchval("t", "SELECT COUNT(*) FROM users") == users_before
    for user in (guest, other):
        assert await _is_guest(hs, user.user_id)
        assert (await user.request("GET", "/account/whoami"))["is_guest"] is True
    assert not await _is_guest(hs, alice.user_id)


async def test_no_upgrade_while_registration_is_closed(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(enable_registration=False, **GUEST_CONFIG)
    guest = await make_guest(hs)
    answer = await _upgrade(
        hs,
        {"username": _localpart(guest), "password": "pw", "guest_access_token": guest.token},
        expect=403,
    )
    assert answer["errcode"] == "M_FORBIDDEN"
    assert await _is_guest(hs, guest.user_id)
